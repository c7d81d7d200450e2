/* gemm_ukr_avx2.c - AVX2+FMA micro-kernel, 6x16: 12 ymm accumulators, two B vectors per k
 * step, A broadcast from the packed panel. Contract: internal.h, fnn_gemm_ukr_fn. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

#define MR 6

FNN_TARGET_AVX2 void fnn_gemm_ukr_f32_avx2_6x16(int64_t kc, float alpha,
                                                const float *FNN_RESTRICT ap,
                                                const float *FNN_RESTRICT bp, float beta,
                                                float *FNN_RESTRICT c, int64_t ldc) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

    for (int64_t kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_load_ps(bp);
        const __m256 b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 a = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += MR;
        bp += 16;
    }

    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            float *row = c + i * ldc;
            _mm256_storeu_ps(row, _mm256_fmadd_ps(vb, _mm256_loadu_ps(row),
                                                  _mm256_mul_ps(va, acc[i][0])));
            _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8),
                                                      _mm256_mul_ps(va, acc[i][1])));
        }
    }
}
#endif
