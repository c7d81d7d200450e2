/* eltwise_avx2.c - AVX2+FMA activations, gradients and row reductions, 8 floats a step, the
 * last partial vector masked (maskload/maskstore) rather than finished in scalar code: every
 * element gets the same formula wherever it sits, so the GEMM epilogue (which applies act per
 * tile row) equals a separate pass bit for bit. Contracts: internal.h (fnn_act_fwd_fn and on).
 *
 * Vector math (errors measured by tests/test_eltwise.py against float64 over dense grids):
 *   exp:   x = n ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 split in two floats, FMA), expm1(r) by a
 *          degree-7 minimax polynomial (relative error 2.4e-10), scaled by 2^n in two factors
 *          so results down to the subnormal range are right: <= 1 ulp.
 *   expm1: same reduction, 2^n * expm1(r) + (2^n - 1) with one FMA; for x <= 0: <= 2 ulp.
 *   tanh:  -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x: <= 3 ulp.
 *   Phi:   the normal CDF for gelu. Phi(-a) = exp(-a^2/2) * R(a), a = |x|, with a^2 split exactly
 *          by FMA and R a (4,5) rational fit of Phi(-a) exp(a^2/2) (relative error 1e-8,
 *          positive coefficients, so Horner does not cancel): gelu <= 4 ulp.
 * Clamps keep NaN: _mm256_max_ps(c, x) / _mm256_min_ps(c, x) return x when x is NaN.
 */
#include "eltwise_scalar.h"

#ifdef FNN_X86_64
#include <float.h>
#include <immintrin.h>
#include <math.h>

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693147182464599609375f
#define LN2_LO -1.904654299957768e-09f

/* expm1(r) for |r| <= ln2/2: r + r^2 * P(r). */
static inline FNN_TARGET_AVX2 __m256 expm1_poly(__m256 r) {
    __m256 p = _mm256_set1_ps(1.9846914801746607e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3940617209300399e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333387784659863e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1666362434625626e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666666567325592e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    return _mm256_fmadd_ps(_mm256_mul_ps(r, r), p, r);
}

/* n = round(x / ln2) and r = x - n ln2. */
static inline FNN_TARGET_AVX2 __m256 reduce(__m256 x, __m256 *n) {
    *n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_fnmadd_ps(*n, _mm256_set1_ps(LN2_HI), x);
    return _mm256_fnmadd_ps(*n, _mm256_set1_ps(LN2_LO), r);
}

static inline FNN_TARGET_AVX2 __m256 pow2i(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

static inline FNN_TARGET_AVX2 __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x); /* exp(-104) < FLT_TRUE_MIN / 2: 0 */
    x = _mm256_min_ps(_mm256_set1_ps(88.8f), x);   /* exp(88.8) > FLT_MAX: inf */
    __m256 n;
    const __m256 p = _mm256_add_ps(expm1_poly(reduce(x, &n)), _mm256_set1_ps(1.0f));
    /* 2^n for n in [-150, 128] as 2^n1 * 2^n2, both normal. */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i(n1)), pow2i(_mm256_sub_epi32(ni, n1)));
}

/* expm1(x) for x <= 0 (or NaN). */
static inline FNN_TARGET_AVX2 __m256 expm1_neg8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x); /* keeps 2^n normal; expm1(-87) = -1 */
    __m256 n;
    const __m256 q = expm1_poly(reduce(x, &n));
    const __m256 s = pow2i(_mm256_cvtps_epi32(n));
    return _mm256_fmadd_ps(s, q, _mm256_sub_ps(s, _mm256_set1_ps(1.0f)));
}

static inline FNN_TARGET_AVX2 __m256 abs8(__m256 x) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* a / b for finite b >= 1 (every denominator here): a 12-bit reciprocal, one Newton step and
 * one residual correction of the quotient, within 1 ulp of a / b and cheaper than vdivps. */
static inline FNN_TARGET_AVX2 __m256 div8(__m256 a, __m256 b) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 r = _mm256_rcp_ps(b);
    r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(b, r, one), r);
    const __m256 q = _mm256_mul_ps(a, r);
    return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, b, a), r, q);
}

static inline FNN_TARGET_AVX2 __m256 sigmoid8(__m256 x) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), abs8(x)));
    const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
    const __m256 num = _mm256_blendv_ps(e, _mm256_set1_ps(1.0f), pos);
    return div8(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline FNN_TARGET_AVX2 __m256 tanh8(__m256 x) {
    const __m256 a = abs8(x);
    const __m256 em1 = expm1_neg8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    const __m256 t = div8(_mm256_sub_ps(_mm256_setzero_ps(), em1),
                          _mm256_add_ps(em1, _mm256_set1_ps(2.0f)));
    return _mm256_or_ps(t, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
}

static inline FNN_TARGET_AVX2 __m256 elu8(__m256 x, __m256 alpha) {
    const __m256 em1 = expm1_neg8(_mm256_min_ps(_mm256_setzero_ps(), x));
    const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(alpha, em1), x, pos);
}

/* Phi(x) (normal CDF); also returns e = exp(-xs^2/2) and xs = x clamped to [-20, 20]. */
static inline FNN_TARGET_AVX2 __m256 phi8(__m256 x, __m256 *e_out, __m256 *xs_out) {
    const __m256 xs =
        _mm256_min_ps(_mm256_set1_ps(20.0f), _mm256_max_ps(_mm256_set1_ps(-20.0f), x));
    const __m256 a = abs8(xs);
    const __m256 hi = _mm256_mul_ps(a, a);
    const __m256 lo = _mm256_fmsub_ps(a, a, hi); /* a^2 = hi + lo exactly */
    __m256 e = exp8(_mm256_mul_ps(hi, _mm256_set1_ps(-0.5f)));
    e = _mm256_fmadd_ps(e, _mm256_mul_ps(lo, _mm256_set1_ps(-0.5f)), e);
    __m256 p = _mm256_set1_ps(3.955731634050608e-3f);
    p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(3.958611190319061e-2f));
    p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(1.8018721044063568e-1f));
    p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(4.3427714705467224e-1f));
    p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(0.5f));
    __m256 q = _mm256_set1_ps(9.915407747030258e-3f);
    q = _mm256_fmadd_ps(q, a, _mm256_set1_ps(9.923510998487473e-2f));
    q = _mm256_fmadd_ps(q, a, _mm256_set1_ps(4.614095687866211e-1f));
    q = _mm256_fmadd_ps(q, a, _mm256_set1_ps(1.1899974346160889f));
    q = _mm256_fmadd_ps(q, a, _mm256_set1_ps(1.666439175605774f));
    q = _mm256_fmadd_ps(q, a, _mm256_set1_ps(1.0f));
    const __m256 tail = _mm256_mul_ps(e, div8(p, q)); /* Phi(-|x|) */
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    *e_out = e;
    *xs_out = xs;
    return _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), tail), tail, neg);
}

static inline FNN_TARGET_AVX2 __m256 gelu8(__m256 x) {
    __m256 e, xs;
    const __m256 cdf = phi8(x, &e, &xs);
    return _mm256_mul_ps(_mm256_max_ps(_mm256_set1_ps(-FLT_MAX), x), cdf); /* -inf -> -0 */
}

static inline FNN_TARGET_AVX2 __m256 gelu_grad8(__m256 x) {
    __m256 e, xs;
    const __m256 cdf = phi8(x, &e, &xs);
    return _mm256_fmadd_ps(_mm256_mul_ps(xs, _mm256_set1_ps((float)FNN_INV_SQRT_2PI)), e, cdf);
}

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Lanes [0, rest) of a vector as a maskload/maskstore mask, 1 <= rest < 8. */
static inline FNN_TARGET_AVX2 __m256i tail_mask(int64_t rest) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rest), lanes);
}

/* act of one vector (any act but softmax); act is a constant wherever this is inlined. */
static ALWAYS_INLINE FNN_TARGET_AVX2 __m256 act8(fnn_act act, __m256 alpha, __m256 v) {
    const __m256 zero = _mm256_setzero_ps();
    switch (act) {
    case FNN_ACT_RELU: return _mm256_max_ps(zero, v);
    case FNN_ACT_SIGMOID: return sigmoid8(v);
    case FNN_ACT_TANH: return tanh8(v);
    case FNN_ACT_GELU: return gelu8(v);
    case FNN_ACT_ELU: return elu8(v, alpha);
    case FNN_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(v, _mm256_mul_ps(alpha, v), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    default: return v;
    }
}

/* dL/dpreact of one vector from the output y (or preact p for gelu) and dy. */
static ALWAYS_INLINE FNN_TARGET_AVX2 __m256 grad8(fnn_act act, __m256 alpha, __m256 p, __m256 y,
                                                  __m256 g) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 pos = _mm256_cmp_ps(y, zero, _CMP_GT_OQ);
    const __m256 nan = _mm256_cmp_ps(y, y, _CMP_UNORD_Q);
    switch (act) {
    case FNN_ACT_RELU: return _mm256_blendv_ps(_mm256_and_ps(pos, g), y, nan);
    case FNN_ACT_SIGMOID: return _mm256_mul_ps(g, _mm256_mul_ps(y, _mm256_sub_ps(one, y)));
    case FNN_ACT_TANH:
        return _mm256_mul_ps(g, _mm256_mul_ps(_mm256_sub_ps(one, y), _mm256_add_ps(one, y)));
    case FNN_ACT_GELU: return _mm256_mul_ps(g, gelu_grad8(p));
    case FNN_ACT_ELU: return _mm256_blendv_ps(_mm256_mul_ps(g, _mm256_add_ps(y, alpha)), g, pos);
    case FNN_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(_mm256_blendv_ps(_mm256_mul_ps(alpha, g), g, pos), y, nan);
    default: return g;
    }
}

/* The whole array with one formula: full vectors, then one masked vector for the rest, so an
 * element's result never depends on where it sits (the GEMM epilogue applies act per tile and
 * must equal a separate pass bit for bit). */
static ALWAYS_INLINE FNN_TARGET_AVX2 void fwd_loop(fnn_act act, float act_alpha, const float *x,
                                                  float *y, int64_t n) {
    const __m256 alpha = _mm256_set1_ps(act_alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, act8(act, alpha, _mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, k, act8(act, alpha, _mm256_maskload_ps(x + i, k)));
    }
}

static ALWAYS_INLINE FNN_TARGET_AVX2 void bwd_loop(fnn_act act, float act_alpha,
                                                  const float *pre, const float *y,
                                                  const float *dy, float *dx, int64_t n) {
    const __m256 alpha = _mm256_set1_ps(act_alpha), zero = _mm256_setzero_ps();
    const int gelu = act == FNN_ACT_GELU;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 p = gelu ? _mm256_loadu_ps(pre + i) : zero;
        const __m256 v = gelu ? zero : _mm256_loadu_ps(y + i);
        _mm256_storeu_ps(dx + i, grad8(act, alpha, p, v, _mm256_loadu_ps(dy + i)));
    }
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        const __m256 p = gelu ? _mm256_maskload_ps(pre + i, k) : zero;
        const __m256 v = gelu ? zero : _mm256_maskload_ps(y + i, k);
        _mm256_maskstore_ps(dx + i, k, grad8(act, alpha, p, v, _mm256_maskload_ps(dy + i, k)));
    }
}

FNN_TARGET_AVX2 void fnn_act_fwd_f32_avx2(fnn_act act, float act_alpha, const float *x,
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

FNN_TARGET_AVX2 void fnn_act_bwd_f32_avx2(fnn_act act, float act_alpha, const float *preact,
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

/* Horizontal sum / max of 8 lanes in a fixed order. */
static inline FNN_TARGET_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline FNN_TARGET_AVX2 float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* The row reductions finish with a masked vector step too: rows are often shorter than a
 * vector (10 classes), where a scalar tail would be all the work. */

FNN_TARGET_AVX2 float fnn_row_max_f32_avx2(const float *x, int64_t n) {
    __m256 acc = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        const __m256 v =
            _mm256_blendv_ps(acc, _mm256_maskload_ps(x + i, k), _mm256_castsi256_ps(k));
        acc = _mm256_max_ps(acc, v);
    }
    return hmax8(acc);
}

FNN_TARGET_AVX2 float fnn_exp_sum_f32_avx2(const float *x, float shift, float *y, int64_t n) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), s));
        _mm256_maskstore_ps(y + i, k, e);
        acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
    }
    return hsum8(acc);
}

FNN_TARGET_AVX2 float fnn_dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k), acc);
    }
    return hsum8(acc);
}

#endif /* FNN_X86_64 */
