/* eltwise_avx512.c - AVX-512 activations, gradients and row reductions, 16 floats a step, the
 * last partial vector masked (see eltwise_avx2.c for why). Same algorithms and constants as
 * eltwise_avx2.c (see its header for the method and the error bounds). */
#include "eltwise_scalar.h"

#ifdef FNN_X86_64
#include <float.h>
#include <immintrin.h>
#include <math.h>

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693147182464599609375f
#define LN2_LO -1.904654299957768e-09f

static inline FNN_TARGET_AVX512 __m512 expm1_poly(__m512 r) {
    __m512 p = _mm512_set1_ps(1.9846914801746607e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3940617209300399e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333387784659863e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1666362434625626e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666666567325592e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(_mm512_mul_ps(r, r), p, r);
}

static inline FNN_TARGET_AVX512 __m512 reduce(__m512 x, __m512 *n) {
    *n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(LN2_HI), x);
    return _mm512_fnmadd_ps(*n, _mm512_set1_ps(LN2_LO), r);
}

static inline FNN_TARGET_AVX512 __m512 pow2i(__m512i n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
}

static inline FNN_TARGET_AVX512 __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
    __m512 n;
    const __m512 p = _mm512_add_ps(expm1_poly(reduce(x, &n)), _mm512_set1_ps(1.0f));
    const __m512i ni = _mm512_cvtps_epi32(n);
    const __m512i n1 = _mm512_srai_epi32(ni, 1);
    return _mm512_mul_ps(_mm512_mul_ps(p, pow2i(n1)), pow2i(_mm512_sub_epi32(ni, n1)));
}

static inline FNN_TARGET_AVX512 __m512 expm1_neg16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    __m512 n;
    const __m512 q = expm1_poly(reduce(x, &n));
    const __m512 s = pow2i(_mm512_cvtps_epi32(n));
    return _mm512_fmadd_ps(s, q, _mm512_sub_ps(s, _mm512_set1_ps(1.0f)));
}

static inline FNN_TARGET_AVX512 __m512 abs16(__m512 x) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

/* a / b for finite b >= 1 (every denominator here): a 14-bit reciprocal, one Newton step and
 * one residual correction of the quotient, within 1 ulp of a / b and about 3x the throughput
 * of vdivps (which runs on one port only). */
static inline FNN_TARGET_AVX512 __m512 div16(__m512 a, __m512 b) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 r = _mm512_rcp14_ps(b);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(b, r, one), r);
    const __m512 q = _mm512_mul_ps(a, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, b, a), r, q);
}

static inline FNN_TARGET_AVX512 __m512 sigmoid16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), abs16(x)));
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
    return div16(_mm512_mask_mov_ps(e, pos, one), _mm512_add_ps(one, e));
}

static inline FNN_TARGET_AVX512 __m512 tanh16(__m512 x) {
    const __m512 em1 = expm1_neg16(_mm512_mul_ps(abs16(x), _mm512_set1_ps(-2.0f)));
    const __m512 t = div16(_mm512_sub_ps(_mm512_setzero_ps(), em1),
                           _mm512_add_ps(em1, _mm512_set1_ps(2.0f)));
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

static inline FNN_TARGET_AVX512 __m512 elu16(__m512 x, __m512 alpha) {
    const __m512 em1 = expm1_neg16(_mm512_min_ps(_mm512_setzero_ps(), x));
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_mov_ps(_mm512_mul_ps(alpha, em1), pos, x);
}

static inline FNN_TARGET_AVX512 __m512 phi16(__m512 x, __m512 *e_out, __m512 *xs_out) {
    const __m512 xs =
        _mm512_min_ps(_mm512_set1_ps(20.0f), _mm512_max_ps(_mm512_set1_ps(-20.0f), x));
    const __m512 a = abs16(xs);
    const __m512 hi = _mm512_mul_ps(a, a);
    const __m512 lo = _mm512_fmsub_ps(a, a, hi);
    __m512 e = exp16(_mm512_mul_ps(hi, _mm512_set1_ps(-0.5f)));
    e = _mm512_fmadd_ps(e, _mm512_mul_ps(lo, _mm512_set1_ps(-0.5f)), e);
    __m512 p = _mm512_set1_ps(3.955731634050608e-3f);
    p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(3.958611190319061e-2f));
    p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(1.8018721044063568e-1f));
    p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(4.3427714705467224e-1f));
    p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(0.5f));
    __m512 q = _mm512_set1_ps(9.915407747030258e-3f);
    q = _mm512_fmadd_ps(q, a, _mm512_set1_ps(9.923510998487473e-2f));
    q = _mm512_fmadd_ps(q, a, _mm512_set1_ps(4.614095687866211e-1f));
    q = _mm512_fmadd_ps(q, a, _mm512_set1_ps(1.1899974346160889f));
    q = _mm512_fmadd_ps(q, a, _mm512_set1_ps(1.666439175605774f));
    q = _mm512_fmadd_ps(q, a, _mm512_set1_ps(1.0f));
    const __m512 tail = _mm512_mul_ps(e, div16(p, q));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    *e_out = e;
    *xs_out = xs;
    return _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), tail), neg, tail);
}

static inline FNN_TARGET_AVX512 __m512 gelu16(__m512 x) {
    __m512 e, xs;
    const __m512 cdf = phi16(x, &e, &xs);
    return _mm512_mul_ps(_mm512_max_ps(_mm512_set1_ps(-FLT_MAX), x), cdf);
}

static inline FNN_TARGET_AVX512 __m512 gelu_grad16(__m512 x) {
    __m512 e, xs;
    const __m512 cdf = phi16(x, &e, &xs);
    return _mm512_fmadd_ps(_mm512_mul_ps(xs, _mm512_set1_ps((float)FNN_INV_SQRT_2PI)), e, cdf);
}

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Lanes [0, rest) of a vector, rest >= 1 (all 16 when rest >= 16). */
static inline FNN_TARGET_AVX512 __mmask16 tail_mask(int64_t rest) {
    return rest >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rest) - 1u);
}

/* act of one vector (any act but softmax); act is a constant wherever this is inlined. */
static ALWAYS_INLINE FNN_TARGET_AVX512 __m512 act16(fnn_act act, __m512 alpha, __m512 v) {
    const __m512 zero = _mm512_setzero_ps();
    switch (act) {
    case FNN_ACT_RELU: return _mm512_max_ps(zero, v);
    case FNN_ACT_SIGMOID: return sigmoid16(v);
    case FNN_ACT_TANH: return tanh16(v);
    case FNN_ACT_GELU: return gelu16(v);
    case FNN_ACT_ELU: return elu16(v, alpha);
    case FNN_ACT_LEAKY_RELU:
        return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), alpha, v);
    default: return v;
    }
}

/* dL/dpreact of one vector from the output y (or preact p for gelu) and dy. */
static ALWAYS_INLINE FNN_TARGET_AVX512 __m512 grad16(fnn_act act, __m512 alpha, __m512 p,
                                                     __m512 y, __m512 g) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __mmask16 pos = _mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);
    switch (act) {
    case FNN_ACT_RELU: return _mm512_mask_mov_ps(_mm512_maskz_mov_ps(pos, g), nan, y);
    case FNN_ACT_SIGMOID: return _mm512_mul_ps(g, _mm512_mul_ps(y, _mm512_sub_ps(one, y)));
    case FNN_ACT_TANH:
        return _mm512_mul_ps(g, _mm512_mul_ps(_mm512_sub_ps(one, y), _mm512_add_ps(one, y)));
    case FNN_ACT_GELU: return _mm512_mul_ps(g, gelu_grad16(p));
    case FNN_ACT_ELU:
        return _mm512_mask_mov_ps(_mm512_mul_ps(g, _mm512_add_ps(y, alpha)), pos, g);
    case FNN_ACT_LEAKY_RELU:
        return _mm512_mask_mov_ps(_mm512_mask_mov_ps(_mm512_mul_ps(alpha, g), pos, g), nan, y);
    default: return g;
    }
}

/* The whole array with one formula: full vectors, then one masked vector for the rest, so an
 * element's result never depends on where it sits (the GEMM epilogue applies act per tile and
 * must equal a separate pass bit for bit). */
static ALWAYS_INLINE FNN_TARGET_AVX512 void fwd_loop(fnn_act act, float act_alpha,
                                                     const float *x, float *y, int64_t n) {
    const __m512 alpha = _mm512_set1_ps(act_alpha);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, act16(act, alpha, _mm512_maskz_loadu_ps(k, x + i)));
    }
}

static ALWAYS_INLINE FNN_TARGET_AVX512 void bwd_loop(fnn_act act, float act_alpha,
                                                     const float *pre, const float *y,
                                                     const float *dy, float *dx, int64_t n) {
    const __m512 alpha = _mm512_set1_ps(act_alpha), zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        const __m512 p = act == FNN_ACT_GELU ? _mm512_maskz_loadu_ps(k, pre + i) : zero;
        const __m512 v = act == FNN_ACT_GELU ? zero : _mm512_maskz_loadu_ps(k, y + i);
        const __m512 g = _mm512_maskz_loadu_ps(k, dy + i);
        _mm512_mask_storeu_ps(dx + i, k, grad16(act, alpha, p, v, g));
    }
}

FNN_TARGET_AVX512 void fnn_act_fwd_f32_avx512(fnn_act act, float act_alpha, const float *x,
                                              float *y, int64_t n) {
    switch (act) { /* one loop per act: the dispatch stays out of the loop */
    case FNN_ACT_RELU: fwd_loop(FNN_ACT_RELU, act_alpha, x, y, n); break;
    case FNN_ACT_SIGMOID: fwd_loop(FNN_ACT_SIGMOID, act_alpha, x, y, n); break;
    case FNN_ACT_TANH: fwd_loop(FNN_ACT_TANH, act_alpha, x, y, n); break;
    case FNN_ACT_GELU: fwd_loop(FNN_ACT_GELU, act_alpha, x, y, n); break;
    case FNN_ACT_ELU: fwd_loop(FNN_ACT_ELU, act_alpha, x, y, n); break;
    case FNN_ACT_LEAKY_RELU: fwd_loop(FNN_ACT_LEAKY_RELU, act_alpha, x, y, n); break;
    default: /* linear (softmax is row-wise, never here) */
        if (y != x) fwd_loop(FNN_ACT_LINEAR, act_alpha, x, y, n);
        break;
    }
}

FNN_TARGET_AVX512 void fnn_act_bwd_f32_avx512(fnn_act act, float act_alpha, const float *preact,
                                              const float *y, const float *dy, float *dx,
                                              int64_t n) {
    switch (act) {
    case FNN_ACT_RELU: bwd_loop(FNN_ACT_RELU, act_alpha, preact, y, dy, dx, n); break;
    case FNN_ACT_SIGMOID: bwd_loop(FNN_ACT_SIGMOID, act_alpha, preact, y, dy, dx, n); break;
    case FNN_ACT_TANH: bwd_loop(FNN_ACT_TANH, act_alpha, preact, y, dy, dx, n); break;
    case FNN_ACT_GELU: bwd_loop(FNN_ACT_GELU, act_alpha, preact, y, dy, dx, n); break;
    case FNN_ACT_ELU: bwd_loop(FNN_ACT_ELU, act_alpha, preact, y, dy, dx, n); break;
    case FNN_ACT_LEAKY_RELU: bwd_loop(FNN_ACT_LEAKY_RELU, act_alpha, preact, y, dy, dx, n); break;
    default: /* linear */
        if (dx != dy) bwd_loop(FNN_ACT_LINEAR, act_alpha, preact, y, dy, dx, n);
        break;
    }
}

/* Horizontal sum of 16 lanes in a fixed order (halving tree). */
static inline FNN_TARGET_AVX512 float hsum16(__m512 v) {
    const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), upper);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* The row reductions finish with a masked vector step too: rows are often shorter than a
 * vector (10 classes), where a scalar tail would be all the work. */

FNN_TARGET_AVX512 float fnn_row_max_f32_avx512(const float *x, int64_t n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(x + i));
    if (i < n) acc = _mm512_max_ps(acc, _mm512_mask_loadu_ps(acc, tail_mask(n - i), x + i));
    return _mm512_reduce_max_ps(acc);
}

FNN_TARGET_AVX512 float fnn_exp_sum_f32_avx512(const float *x, float shift, float *y, int64_t n) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        const __mmask16 k = tail_mask(n - i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), s));
        _mm512_mask_storeu_ps(y + i, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    return hsum16(acc);
}

FNN_TARGET_AVX512 float fnn_dot_f32_avx512(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        const __mmask16 k = tail_mask(n - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i),
                              acc);
    }
    return hsum16(acc);
}

#endif /* FNN_X86_64 */
