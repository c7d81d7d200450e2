/* conv2d_wino_avx512.c - AVX-512 Winograd F(2x2, 3x3) tile transforms and column sum, 16
 * channels per vector, masked tails. Same arithmetic, in the same order, as
 * conv2d_wino_ref.c. Contracts: internal.h (fnn_wino_*_fn, fnn_colsum_fn). */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

static inline __mmask16 lane_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

FNN_TARGET_AVX512 static void in_avx512(const float *const *pix, int64_t c, float *v,
                                        int64_t ld) {
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = lane_mask(c - c0);
        __m512 d[16];
        for (int q = 0; q < 16; q++) d[q] = _mm512_maskz_loadu_ps(k, pix[q] + c0);
        for (int i = 0; i < 4; i++) {
            __m512 t[4]; /* row i of t = B^T d */
            for (int j = 0; j < 4; j++) {
                const __m512 d0 = d[j], d1 = d[4 + j], d2 = d[8 + j], d3 = d[12 + j];
                t[j] = i == 0   ? _mm512_sub_ps(d0, d2)
                       : i == 1 ? _mm512_add_ps(d1, d2)
                       : i == 2 ? _mm512_sub_ps(d2, d1)
                                : _mm512_sub_ps(d1, d3);
            }
            float *o = v + 4 * i * ld + c0;
            _mm512_mask_storeu_ps(o, k, _mm512_sub_ps(t[0], t[2]));
            _mm512_mask_storeu_ps(o + ld, k, _mm512_add_ps(t[1], t[2]));
            _mm512_mask_storeu_ps(o + 2 * ld, k, _mm512_sub_ps(t[2], t[1]));
            _mm512_mask_storeu_ps(o + 3 * ld, k, _mm512_sub_ps(t[1], t[3]));
        }
    }
}

FNN_TARGET_AVX512 static void out_avx512(const float *m, int64_t ld, int64_t c,
                                         const float *bias, float *const *pix) {
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = lane_mask(c - c0);
        const __m512 b = _mm512_maskz_loadu_ps(k, bias + c0);
        __m512 s[2][4];
        for (int j = 0; j < 4; j++) { /* s = A^T m */
            const __m512 m0 = _mm512_maskz_loadu_ps(k, m + j * ld + c0);
            const __m512 m1 = _mm512_maskz_loadu_ps(k, m + (4 + j) * ld + c0);
            const __m512 m2 = _mm512_maskz_loadu_ps(k, m + (8 + j) * ld + c0);
            const __m512 m3 = _mm512_maskz_loadu_ps(k, m + (12 + j) * ld + c0);
            s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        for (int i = 0; i < 2; i++) { /* Y = s A */
            const __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]);
            const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]);
            _mm512_mask_storeu_ps(pix[2 * i] + c0, k, _mm512_add_ps(y0, b));
            _mm512_mask_storeu_ps(pix[2 * i + 1] + c0, k, _mm512_add_ps(y1, b));
        }
    }
}

FNN_TARGET_AVX512 static void grad_avx512(const float *const *pix, int64_t c, float *dm,
                                          int64_t ld) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = lane_mask(c - c0);
        const __m512 g00 = _mm512_maskz_loadu_ps(k, pix[0] + c0);
        const __m512 g01 = _mm512_maskz_loadu_ps(k, pix[1] + c0);
        const __m512 g10 = _mm512_maskz_loadu_ps(k, pix[2] + c0);
        const __m512 g11 = _mm512_maskz_loadu_ps(k, pix[3] + c0);
        const __m512 r[4][2] = {{g00, g01},
                                {_mm512_add_ps(g00, g10), _mm512_add_ps(g01, g11)},
                                {_mm512_sub_ps(g00, g10), _mm512_sub_ps(g01, g11)},
                                {_mm512_sub_ps(zero, g10), _mm512_sub_ps(zero, g11)}};
        for (int i = 0; i < 4; i++) {
            float *o = dm + 4 * i * ld + c0;
            _mm512_mask_storeu_ps(o, k, r[i][0]);
            _mm512_mask_storeu_ps(o + ld, k, _mm512_add_ps(r[i][0], r[i][1]));
            _mm512_mask_storeu_ps(o + 2 * ld, k, _mm512_sub_ps(r[i][0], r[i][1]));
            _mm512_mask_storeu_ps(o + 3 * ld, k, _mm512_sub_ps(zero, r[i][1]));
        }
    }
}

FNN_TARGET_AVX512 static void colsum_avx512(int64_t rows, int64_t cols, const float *x,
                                            int64_t ldx, float *acc) {
    for (int64_t c0 = 0; c0 < cols; c0 += 32) {
        /* even and odd rows in separate sums (two add chains per vector), added at the end */
        const __mmask16 k0 = lane_mask(cols - c0), k1 = c0 + 16 < cols ? lane_mask(cols - c0 - 16) : 0;
        __m512 e0 = _mm512_maskz_loadu_ps(k0, acc + c0), e1 = _mm512_maskz_loadu_ps(k1, acc + c0 + 16);
        __m512 o0 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps();
        int64_t r = 0;
        for (; r + 1 < rows; r += 2) {
            const float *p = x + r * ldx + c0;
            e0 = _mm512_add_ps(e0, _mm512_maskz_loadu_ps(k0, p));
            e1 = _mm512_add_ps(e1, _mm512_maskz_loadu_ps(k1, p + 16));
            o0 = _mm512_add_ps(o0, _mm512_maskz_loadu_ps(k0, p + ldx));
            o1 = _mm512_add_ps(o1, _mm512_maskz_loadu_ps(k1, p + ldx + 16));
        }
        if (r < rows) {
            e0 = _mm512_add_ps(e0, _mm512_maskz_loadu_ps(k0, x + r * ldx + c0));
            e1 = _mm512_add_ps(e1, _mm512_maskz_loadu_ps(k1, x + r * ldx + c0 + 16));
        }
        _mm512_mask_storeu_ps(acc + c0, k0, _mm512_add_ps(e0, o0));
        _mm512_mask_storeu_ps(acc + c0 + 16, k1, _mm512_add_ps(e1, o1));
    }
}

const fnn_wino_fns fnn_wino_fns_avx512 = {in_avx512, out_avx512, grad_avx512, colsum_avx512};
#endif
