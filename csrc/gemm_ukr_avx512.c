/* gemm_ukr_avx512.c - AVX-512 micro-kernels.
 *   packed 12x32: 24 zmm accumulators, two B vectors per k step, A broadcast from the packed
 *                 panel (contract: internal.h, fnn_gemm_ukr_fn); packed 8x32 the same with 16
 *                 (fnn_gemm_cfg.ukr_small);
 *   sup 8x32:     16 accumulators, A and B read in place (fnn_gemm_sup_fn), for small problems
 *                 where packing would cost more than it saves;
 *   narrow 16xN:  16 accumulators of one vector each, for n <= 16 (a dense layer's 10 outputs):
 *                 B and C accessed under a column mask (fnn_gemm_narrow_fn). */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

/* C rows [0, rows) = alpha * acc + beta * C (beta == 0: C not read). */
FNN_TARGET_AVX512 static inline void store_tile(__m512 (*acc)[2], int rows, float alpha,
                                                float beta, float *FNN_RESTRICT c,
                                                int64_t ldc) {
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            float *row = c + i * ldc;
            _mm512_storeu_ps(row, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row),
                                                  _mm512_mul_ps(va, acc[i][0])));
            _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16),
                                                       _mm512_mul_ps(va, acc[i][1])));
        }
    }
}

/* The packed kernel body for MR rows (MR * 2 accumulators). */
#define PACKED_BODY(MR)                                                                        \
    __m512 acc[MR][2];                                                                         \
    _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] =            \
        _mm512_setzero_ps();                                                                   \
    for (int64_t kk = 0; kk < kc; kk++) {                                                      \
        const __m512 b0 = _mm512_load_ps(bp);                                                  \
        const __m512 b1 = _mm512_load_ps(bp + 16);                                             \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                               \
            const __m512 a = _mm512_set1_ps(ap[i]);                                            \
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);                                     \
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);                                     \
        }                                                                                      \
        ap += MR;                                                                              \
        bp += 32;                                                                              \
    }                                                                                          \
    store_tile(acc, MR, alpha, beta, c, ldc)

FNN_TARGET_AVX512 void fnn_gemm_ukr_f32_avx512_12x32(int64_t kc, float alpha,
                                                     const float *FNN_RESTRICT ap,
                                                     const float *FNN_RESTRICT bp, float beta,
                                                     float *FNN_RESTRICT c, int64_t ldc) {
    PACKED_BODY(12);
}

/* 8 rows: for row counts that 12 would pad (64 rows are 8 x 8 but 6 x 12 - 8). */
FNN_TARGET_AVX512 void fnn_gemm_ukr_f32_avx512_8x32(int64_t kc, float alpha,
                                                    const float *FNN_RESTRICT ap,
                                                    const float *FNN_RESTRICT bp, float beta,
                                                    float *FNN_RESTRICT c, int64_t ldc) {
    PACKED_BODY(8);
}
#undef PACKED_BODY

#undef MR
#define MR 8

FNN_TARGET_AVX512 void fnn_gemm_sup_f32_avx512_8x32(int64_t kc, float alpha,
                                                    const float *FNN_RESTRICT a, int64_t rs_a,
                                                    int64_t cs_a, const float *FNN_RESTRICT b,
                                                    int64_t rs_b, float beta,
                                                    float *FNN_RESTRICT c, int64_t ldc) {
    __m512 acc[MR][2];
    const float *rows[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        rows[i] = a + i * rs_a;
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        const int64_t off = kk * cs_a;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512 av = _mm512_set1_ps(rows[i][off]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        b += rs_b;
    }
    store_tile(acc, MR, alpha, beta, c, ldc);
}
#undef MR
#define MR 16

FNN_TARGET_AVX512 void fnn_gemm_narrow_f32_avx512_16xn(int64_t kc, float alpha,
                                                       const float *FNN_RESTRICT a,
                                                       int64_t rs_a, int64_t cs_a,
                                                       const float *FNN_RESTRICT b, int64_t rs_b,
                                                       float beta, float *FNN_RESTRICT c,
                                                       int64_t ldc, int64_t n_valid) {
    const __mmask16 mask = (__mmask16)((1u << n_valid) - 1u);
    __m512 acc[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc[i] = _mm512_setzero_ps();
    if (rs_a == 1) {
        /* A's column is contiguous (transposed A, or a packed edge): one pointer, constant
         * offsets. Sixteen row pointers would not fit in the 16 general registers. */
        for (int64_t kk = 0; kk < kc; kk++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mask, b);
#pragma GCC unroll 16
            for (int i = 0; i < MR; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bv, acc[i]);
            a += cs_a;
            b += rs_b;
        }
    } else {
        /* Rows of A contiguous: two groups of eight row pointers, so each group's addresses
         * stay in registers. */
        const float *lo = a, *hi = a + 8 * rs_a;
        const int64_t r3 = 3 * rs_a, r5 = 5 * rs_a, r6 = 6 * rs_a, r7 = 7 * rs_a;
        for (int64_t kk = 0; kk < kc; kk++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mask, b);
            const float *rows[MR] = {lo,          lo + rs_a, lo + 2 * rs_a, lo + r3,
                                     lo + 4 * rs_a, lo + r5, lo + r6,       lo + r7,
                                     hi,          hi + rs_a, hi + 2 * rs_a, hi + r3,
                                     hi + 4 * rs_a, hi + r5, hi + r6,       hi + r7};
#pragma GCC unroll 16
            for (int i = 0; i < MR; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(*rows[i]), bv, acc[i]);
            lo += cs_a;
            hi += cs_a;
            b += rs_b;
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        __m512 v = _mm512_mul_ps(va, acc[i]);
        if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, c + i * ldc), v);
        _mm512_mask_storeu_ps(c + i * ldc, mask, v);
    }
}
#endif
