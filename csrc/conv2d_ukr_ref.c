/* conv2d_ukr_ref.c - portable C conv micro-kernels: the fallback on any CPU and the oracle the
 * ISA kernels are tested against. Contracts: internal.h (fnn_conv_*_ukr_fn). */
#include "internal.h"

#define MR 4
#define NR 16

void fnn_conv_fwd_ukr_f32_ref_4x16(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                   const int64_t *a_off, const float *const *b,
                                   const float *bias, int64_t n_valid, float *const *c_rows) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t t = 0; t < ntaps; t++) {
        const float *at = a + a_off[t], *bt = b[t];
        for (int64_t kk = 0; kk < kc; kk++)
            for (int r = 0; r < MR; r++) {
                const float av = at[r * lda + kk];
                for (int j = 0; j < NR; j++) acc[r][j] += av * bt[kk * NR + j];
            }
    }
    for (int r = 0; r < MR; r++) {
        if (c_rows[r] == NULL) continue;
        for (int64_t j = 0; j < n_valid; j++)
            c_rows[r][j] = acc[r][j] + (bias != NULL ? bias[j] : 0.0f);
    }
}

void fnn_conv_dot_ukr_f32_ref_4(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                const int64_t *a_off, const float *const *w, int64_t ldw,
                                const float *bias, int64_t n_out, float *const *c_rows) {
    for (int r = 0; r < MR; r++) {
        if (c_rows[r] == NULL) continue;
        for (int64_t n = 0; n < n_out; n++) {
            float s = 0.0f;
            for (int64_t t = 0; t < ntaps; t++) {
                const float *ar = a + r * lda + a_off[t], *wn = w[t] + n * ldw;
                for (int64_t kk = 0; kk < kc; kk++) s += ar[kk] * wn[kk];
            }
            c_rows[r][n] = s + (bias != NULL ? bias[n] : 0.0f);
        }
    }
}

void fnn_conv_wgrad_ukr_f32_ref_4x16(int64_t nseg, int64_t len, const float *a, int64_t lda,
                                     int64_t a_seg, const float *b, int64_t ldb, int64_t b_seg,
                                     int accumulate, float *c, int64_t ldc, int64_t m_valid,
                                     int64_t n_valid) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t s = 0; s < nseg; s++) {
        const float *as = a + s * a_seg, *bs = b + s * b_seg;
        for (int64_t kk = 0; kk < len; kk++)
            for (int r = 0; r < MR; r++) {
                const float av = as[kk * lda + r];
                for (int64_t j = 0; j < n_valid; j++) acc[r][j] += av * bs[kk * ldb + j];
            }
    }
    for (int64_t r = 0; r < m_valid; r++)
        for (int64_t j = 0; j < n_valid; j++)
            c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}
