/* gemm_pack_avx512.c - AVX-512 transposing pack: rows of a matrix into k-major micro-panels, by
 * 16x16 in-register transposes (64 shuffles per 256 floats instead of a scalar store each).
 * Contract: internal.h, fnn_gemm_pack_t_fn. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

/* In-place transpose of 16 vectors: afterwards r[j] holds element j of every input vector. */
FNN_TARGET_AVX512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[4q + s] now holds, in each 128-bit lane L, element s of rows 4q..4q+3 at column 4L+s'
     * positions; two 128-bit shuffle stages gather the lanes. */
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        const __m512 a = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x88);
        const __m512 b = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xdd);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x88);
        const __m512 d = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xdd);
        t[s] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[4 + s] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[8 + s] = _mm512_shuffle_f32x4(a, c, 0xdd);
        t[12 + s] = _mm512_shuffle_f32x4(b, d, 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

FNN_TARGET_AVX512 void fnn_gemm_pack_t_f32_avx512(const float *FNN_RESTRICT src, int64_t ld,
                                                  int64_t rows, int64_t kc, int64_t width,
                                                  float *FNN_RESTRICT dst) {
    for (int64_t r0 = 0; r0 < width; r0 += 16) {
        const int64_t group = FNN_MIN(16, width - r0);          /* lanes stored per k step */
        const int64_t valid = FNN_MAX(0, FNN_MIN(group, rows - r0)); /* rows that exist */
        const __mmask16 store_mask = (__mmask16)((1u << group) - 1u);
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
            const int64_t kn = FNN_MIN(16, kc - k0);
            const __mmask16 load_mask = (__mmask16)((1u << kn) - 1u);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < valid ? _mm512_maskz_loadu_ps(load_mask, src + (r0 + i) * ld + k0)
                                 : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t kk = 0; kk < kn; kk++)
                _mm512_mask_storeu_ps(dst + (k0 + kk) * width + r0, store_mask, r[kk]);
        }
    }
}
#endif
