/* gemm_ukr_ref.c - portable C micro-kernels (4x16, packed and sup) and the transposing pack:
 * the fallback on any CPU and the oracle the ISA kernels are tested against. Contracts:
 * internal.h. */
#include "internal.h"

#define MR 4
#define NR 16

void fnn_gemm_ukr_f32_ref_4x16(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                               const float *FNN_RESTRICT bp, float beta, float *FNN_RESTRICT c,
                               int64_t ldc) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t kk = 0; kk < kc; kk++) {
        for (int i = 0; i < MR; i++) {
            const float a = ap[kk * MR + i];
            for (int j = 0; j < NR; j++) acc[i][j] += a * bp[kk * NR + j];
        }
    }
    for (int i = 0; i < MR; i++) {
        float *row = c + i * ldc;
        for (int j = 0; j < NR; j++)
            row[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * row[j];
    }
}

void fnn_gemm_sup_f32_ref_4x16(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                               int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                               int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t kk = 0; kk < kc; kk++) {
        for (int i = 0; i < MR; i++) {
            const float av = a[i * rs_a + kk * cs_a];
            for (int j = 0; j < NR; j++) acc[i][j] += av * b[kk * rs_b + j];
        }
    }
    for (int i = 0; i < MR; i++) {
        float *row = c + i * ldc;
        for (int j = 0; j < NR; j++)
            row[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * row[j];
    }
}

void fnn_gemm_pack_t_f32_ref(const float *FNN_RESTRICT src, int64_t ld, int64_t rows,
                             int64_t kc, int64_t width, float *FNN_RESTRICT dst) {
    /* Read the rows side by side so the writes stay contiguous (strided scalar stores ran at
     * ~4 cycles per element). */
    const float *row[FNN_GEMM_MAX_NR];
    for (int64_t r = 0; r < rows; r++) row[r] = src + r * ld;
    for (int64_t kk = 0; kk < kc; kk++) {
        float *FNN_RESTRICT out = dst + kk * width;
        for (int64_t r = 0; r < rows; r++) out[r] = row[r][kk];
        for (int64_t r = rows; r < width; r++) out[r] = 0.0f;
    }
}
