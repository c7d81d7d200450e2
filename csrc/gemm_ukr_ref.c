/* gemm_ukr_ref.c - portable C micro-kernel (4x16): the fallback on any CPU and the oracle the
 * ISA kernels are tested against. Contract: internal.h, fnn_gemm_ukr_fn. */
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
