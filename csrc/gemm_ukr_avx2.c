/* gemm_ukr_avx2.c - AVX2+FMA micro-kernels, 6x16: 12 ymm accumulators, two B vectors per k
 * step, A broadcast. The packed kernel reads packed panels (fnn_gemm_ukr_fn); the sup kernel
 * reads A and B in place (fnn_gemm_sup_fn). Contracts: internal.h. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

#define MR 6

/* C rows [0, MR) = alpha * acc + beta * C (beta == 0: C not read). */
FNN_TARGET_AVX2 static inline void store_tile(__m256 (*acc)[2], float alpha, float beta,
                                              float *FNN_RESTRICT c, int64_t ldc) {
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
    store_tile(acc, alpha, beta, c, ldc);
}

FNN_TARGET_AVX2 void fnn_gemm_sup_f32_avx2_6x16(int64_t kc, float alpha,
                                                const float *FNN_RESTRICT a, int64_t rs_a,
                                                int64_t cs_a, const float *FNN_RESTRICT b,
                                                int64_t rs_b, float beta, float *FNN_RESTRICT c,
                                                int64_t ldc) {
    __m256 acc[MR][2];
    const float *rows[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        rows[i] = a + i * rs_a;
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        const int64_t off = kk * cs_a;
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 av = _mm256_broadcast_ss(rows[i] + off);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        b += rs_b;
    }
    store_tile(acc, alpha, beta, c, ldc);
}
#endif
