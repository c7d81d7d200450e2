/* conv2d_ukr_avx2.c - AVX2+FMA conv micro-kernels. Contracts: internal.h (fnn_conv_*_ukr_fn).
 *   forward 6x16: 12 ymm accumulators, two B vectors per k step, the 6 pixel values broadcast
 *     from the band in place (rows lda floats apart, two base pointers);
 *   weight gradient 6x16: the same register tile, the 6 values of one step contiguous, B read
 *     from dy with masked loads;
 *   dot 4: 4 pixels, vectors along the reduction, one transpose-and-add for the 4 sums. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

#define MR 6

FNN_TARGET_AVX2 static inline __m256i lane_mask(int64_t n) {
    const int64_t c = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

FNN_TARGET_AVX2 void fnn_conv_fwd_ukr_f32_avx2_6x16(int64_t ntaps, int64_t kc, const float *a,
                                                    int64_t lda, const int64_t *a_off,
                                                    const float *const *b, const float *bias,
                                                    int64_t n_valid, float *const *c_rows) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();

    for (int64_t t = 0; t < ntaps; t++) {
        const float *p0 = a + a_off[t], *p3 = p0 + 3 * lda;
        const float *bp = b[t];
        for (int64_t kk = 0; kk < kc; kk++) {
            const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 3
            for (int i = 0; i < 3; i++) {
                const __m256 x = _mm256_broadcast_ss(p0 + i * lda);
                acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
                const __m256 y = _mm256_broadcast_ss(p3 + i * lda);
                acc[3 + i][0] = _mm256_fmadd_ps(y, b0, acc[3 + i][0]);
                acc[3 + i][1] = _mm256_fmadd_ps(y, b1, acc[3 + i][1]);
            }
            p0++, p3++;
            bp += 16;
        }
    }

    const __m256i m0 = lane_mask(n_valid), m1 = lane_mask(n_valid - 8);
    const __m256 bias0 = bias != NULL ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
    const __m256 bias1 = bias != NULL ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        float *c = c_rows[r];
        if (c == NULL) continue;
        _mm256_maskstore_ps(c, m0, _mm256_add_ps(acc[r][0], bias0));
        _mm256_maskstore_ps(c + 8, m1, _mm256_add_ps(acc[r][1], bias1));
    }
}

FNN_TARGET_AVX2 void fnn_conv_wgrad_ukr_f32_avx2_6x16(int64_t nseg, int64_t len, const float *a,
                                                      int64_t lda, int64_t a_seg,
                                                      const float *b, int64_t ldb,
                                                      int64_t b_seg, int accumulate, float *c,
                                                      int64_t ldc, int64_t m_valid,
                                                      int64_t n_valid) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const __m256i m0 = lane_mask(n_valid), m1 = lane_mask(n_valid - 8);

    for (int64_t s = 0; s < nseg; s++) {
        const float *pa = a + s * a_seg, *pb = b + s * b_seg;
        for (int64_t kk = 0; kk < len; kk++) {
            const __m256 b0 = _mm256_maskload_ps(pb, m0), b1 = _mm256_maskload_ps(pb + 8, m1);
#pragma GCC unroll 6
            for (int r = 0; r < MR; r++) {
                const __m256 x = _mm256_broadcast_ss(pa + r);
                acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            }
            pa += lda;
            pb += ldb;
        }
    }

#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        if (r >= m_valid) break;
        float *row = c + r * ldc;
        __m256 v0 = acc[r][0], v1 = acc[r][1];
        if (accumulate) {
            v0 = _mm256_add_ps(_mm256_maskload_ps(row, m0), v0);
            v1 = _mm256_add_ps(_mm256_maskload_ps(row + 8, m1), v1);
        }
        _mm256_maskstore_ps(row, m0, v0);
        _mm256_maskstore_ps(row + 8, m1, v1);
    }
}

#define DOT_MR 4

FNN_TARGET_AVX2 void fnn_conv_dot_ukr_f32_avx2_4(int64_t ntaps, int64_t kc, const float *a,
                                                 int64_t lda, const int64_t *a_off,
                                                 const float *const *w, int64_t ldw,
                                                 const float *bias, int64_t n_out,
                                                 float *const *c_rows) {
    const int64_t k8 = kc & ~(int64_t)7;
    const __m256i tail = lane_mask(kc - k8);
    for (int64_t n = 0; n < n_out; n++) {
        __m256 acc[DOT_MR];
#pragma GCC unroll 4
        for (int r = 0; r < DOT_MR; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t t = 0; t < ntaps; t++) {
            const float *p0 = a + a_off[t];
            const float *wn = w[t] + n * ldw;
            int64_t kk = 0;
            for (; kk < k8; kk += 8) {
                const __m256 wv = _mm256_loadu_ps(wn + kk);
#pragma GCC unroll 4
                for (int i = 0; i < DOT_MR; i++)
                    acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(p0 + i * lda + kk), wv, acc[i]);
            }
            if (kk < kc) {
                const __m256 wv = _mm256_maskload_ps(wn + kk, tail);
#pragma GCC unroll 4
                for (int i = 0; i < DOT_MR; i++)
                    acc[i] = _mm256_fmadd_ps(_mm256_maskload_ps(p0 + i * lda + kk, tail), wv,
                                             acc[i]);
            }
        }
        /* [s0 s1 s2 s3] from four 8-lane vectors */
        const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
        const __m256 u = _mm256_hadd_ps(t0, t1);
        const __m128 s = _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
        FNN_ALIGNED(16) float sums[DOT_MR];
        _mm_store_ps(sums, s);
        const float bn = bias != NULL ? bias[n] : 0.0f;
        for (int r = 0; r < DOT_MR; r++)
            if (c_rows[r] != NULL) c_rows[r][n] = sums[r] + bn;
    }
}
#endif
