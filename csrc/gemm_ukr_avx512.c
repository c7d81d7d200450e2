/* gemm_ukr_avx512.c - AVX-512 micro-kernel, 12x32: 24 zmm accumulators, two B vectors per k
 * step, A broadcast from memory (folded into the FMA as an embedded broadcast).
 * Contract: internal.h, fnn_gemm_ukr_fn. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

#define MR 12

FNN_TARGET_AVX512 void fnn_gemm_ukr_f32_avx512_12x32(int64_t kc, float alpha,
                                                     const float *FNN_RESTRICT ap,
                                                     const float *FNN_RESTRICT bp, float beta,
                                                     float *FNN_RESTRICT c, int64_t ldc) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

    for (int64_t kk = 0; kk < kc; kk++) {
        const __m512 b0 = _mm512_load_ps(bp);
        const __m512 b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += MR;
        bp += 32;
    }

    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            float *row = c + i * ldc;
            _mm512_storeu_ps(row, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row),
                                                  _mm512_mul_ps(va, acc[i][0])));
            _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16),
                                                       _mm512_mul_ps(va, acc[i][1])));
        }
    }
}
#endif
