/* conv2d_ukr_avx512.c - AVX-512 conv micro-kernels. Contracts: internal.h (fnn_conv_*_ukr_fn).
 *   forward 12x32: 24 zmm accumulators, two B vectors per k step, the 12 pixel values
 *     broadcast from the band in place (rows lda floats apart, four base pointers);
 *   weight gradient 12x32: the same register tile, with the 12 values of one step contiguous
 *     (input channels of one pixel) and B read from dy with masked loads;
 *   dot 8: 8 pixels, vectors along the reduction, one transpose-and-add for the 8 sums.
 * n_valid < 32 is handled by masked loads and stores, so edge tiles need no stack copy. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

#define MR 12

static inline __mmask16 lane_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

FNN_TARGET_AVX512 void fnn_conv_fwd_ukr_f32_avx512_12x32(int64_t ntaps, int64_t kc,
                                                         const float *a, int64_t lda,
                                                         const int64_t *a_off,
                                                         const float *const *b,
                                                         const float *bias, int64_t n_valid,
                                                         float *const *c_rows) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();

    for (int64_t t = 0; t < ntaps; t++) {
        const float *p0 = a + a_off[t], *p3 = p0 + 3 * lda, *p6 = p0 + 6 * lda,
                    *p9 = p0 + 9 * lda;
        const float *bp = b[t];
        for (int64_t kk = 0; kk < kc; kk++) {
            const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
            const float *base[4] = {p0, p3, p6, p9};
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++)
#pragma GCC unroll 3
                for (int i = 0; i < 3; i++) {
                    const __m512 x = _mm512_set1_ps(base[g][i * lda]);
                    acc[3 * g + i][0] = _mm512_fmadd_ps(x, b0, acc[3 * g + i][0]);
                    acc[3 * g + i][1] = _mm512_fmadd_ps(x, b1, acc[3 * g + i][1]);
                }
            p0++, p3++, p6++, p9++;
            bp += 32;
        }
    }

    const __mmask16 m0 = lane_mask(n_valid), m1 = lane_mask(n_valid - 16);
    const __m512 bias0 = bias != NULL ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 =
        bias != NULL ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        float *c = c_rows[r];
        if (c == NULL) continue;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(acc[r][0], bias0));
        _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(acc[r][1], bias1));
    }
}

FNN_TARGET_AVX512 void fnn_conv_wgrad_ukr_f32_avx512_12x32(int64_t nseg, int64_t len,
                                                           const float *a, int64_t lda,
                                                           int64_t a_seg, const float *b,
                                                           int64_t ldb, int64_t b_seg,
                                                           int accumulate, float *c,
                                                           int64_t ldc, int64_t m_valid,
                                                           int64_t n_valid) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const __mmask16 m0 = lane_mask(n_valid), m1 = lane_mask(n_valid - 16);

    for (int64_t s = 0; s < nseg; s++) {
        const float *pa = a + s * a_seg, *pb = b + s * b_seg;
        for (int64_t kk = 0; kk < len; kk++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, pb);
            const __m512 b1 = _mm512_maskz_loadu_ps(m1, pb + 16);
#pragma GCC unroll 12
            for (int r = 0; r < MR; r++) {
                const __m512 x = _mm512_set1_ps(pa[r]);
                acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            }
            pa += lda;
            pb += ldb;
        }
    }

#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= m_valid) break;
        float *row = c + r * ldc;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (accumulate) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), v1);
        }
        _mm512_mask_storeu_ps(row, m0, v0);
        _mm512_mask_storeu_ps(row + 16, m1, v1);
    }
}

/* The 8 lane sums of v[0..7], in order, in one ymm. */
FNN_TARGET_AVX512 static inline __m256 hsum8(const __m512 *v) {
    __m256 y[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        y[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]), _mm512_extractf32x8_ps(v[i], 1));
    const __m256 t0 = _mm256_hadd_ps(y[0], y[1]), t1 = _mm256_hadd_ps(y[2], y[3]);
    const __m256 t2 = _mm256_hadd_ps(y[4], y[5]), t3 = _mm256_hadd_ps(y[6], y[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

#define DOT_MR 8

FNN_TARGET_AVX512 void fnn_conv_dot_ukr_f32_avx512_8(int64_t ntaps, int64_t kc, const float *a,
                                                     int64_t lda, const int64_t *a_off,
                                                     const float *const *w, int64_t ldw,
                                                     const float *bias, int64_t n_out,
                                                     float *const *c_rows) {
    const int64_t k16 = kc & ~(int64_t)15;
    const __mmask16 tail = lane_mask(kc - k16);
    for (int64_t n = 0; n < n_out; n++) {
        __m512 acc[DOT_MR];
#pragma GCC unroll 8
        for (int r = 0; r < DOT_MR; r++) acc[r] = _mm512_setzero_ps();
        for (int64_t t = 0; t < ntaps; t++) {
            const float *p0 = a + a_off[t], *p4 = p0 + 4 * lda;
            const float *wn = w[t] + n * ldw;
            int64_t kk = 0;
            for (; kk < k16; kk += 16) {
                const __m512 wv = _mm512_loadu_ps(wn + kk);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(p0 + i * lda + kk), wv, acc[i]);
                    acc[4 + i] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(p4 + i * lda + kk), wv, acc[4 + i]);
                }
            }
            if (tail) {
                const __m512 wv = _mm512_maskz_loadu_ps(tail, wn + kk);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, p0 + i * lda + kk), wv,
                                             acc[i]);
                    acc[4 + i] = _mm512_fmadd_ps(
                        _mm512_maskz_loadu_ps(tail, p4 + i * lda + kk), wv, acc[4 + i]);
                }
            }
        }
        FNN_ALIGNED(32) float sums[DOT_MR];
        _mm256_store_ps(sums, hsum8(acc));
        const float bn = bias != NULL ? bias[n] : 0.0f;
        for (int r = 0; r < DOT_MR; r++)
            if (c_rows[r] != NULL) c_rows[r][n] = sums[r] + bn;
    }
}
#endif
