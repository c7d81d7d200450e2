/* rnn_rows_avx512.c - the LSTM, SimpleRNN and GRU fused passes with AVX-512, 16 units per vector.
 * Contract: internal.h, fnn_lstm_fwd_row_fn / fnn_lstm_bwd_row_fn / fnn_rnn_*_row_fn. Tails
 * use masked loads and stores, so every unit runs the same instructions wherever it sits in a
 * row. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

/* exp(x), Cephes expf: x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial, scaled by 2^n with
 * scalef. About 1 ulp. Inputs are clamped to [-87, 88] (results stay finite and normal); the
 * operand order of min/max lets NaN through. */
FNN_TARGET_AVX512 static inline __m512 exp_v(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), _mm512_min_ps(_mm512_set1_ps(88.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
                                   _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

FNN_TARGET_AVX512 static inline __m512 sigmoid_v(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp_v(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* tanh: |x| < 0.625: Cephes tanhf's odd polynomial (no cancellation near 0); otherwise
 * 1 - 2 / (exp(2|x|) + 1) with x's sign. */
FNN_TARGET_AVX512 static inline __m512 tanh_v(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 a = _mm512_andnot_ps(sign, x);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = exp_v(_mm512_add_ps(a, a));
    __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    big = _mm512_or_ps(big, _mm512_and_ps(sign, x));
    const __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(is_small, big, small);
}

FNN_TARGET_AVX512 static inline __m512 act_v(fnn_act act, __m512 x) {
    switch (act) {
    case FNN_ACT_TANH: return tanh_v(x);
    case FNN_ACT_SIGMOID: return sigmoid_v(x);
    case FNN_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), x); /* NaN stays NaN */
    default: return x;
    }
}

/* The activation's derivative from its output y. */
FNN_TARGET_AVX512 static inline __m512 dact_v(fnn_act act, __m512 y) {
    const __m512 one = _mm512_set1_ps(1.0f);
    switch (act) {
    case FNN_ACT_TANH: return _mm512_fnmadd_ps(y, y, one);
    case FNN_ACT_SIGMOID: return _mm512_mul_ps(y, _mm512_sub_ps(one, y));
    case FNN_ACT_RELU:
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), one);
    default: return one;
    }
}

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* p + offset, NULL staying NULL */
static inline const float *off(const float *p, int64_t offset) {
    return p != NULL ? p + offset : NULL;
}

/* Pre-activation of one gate: the input projection, plus the bias, plus the recurrent part
 * (each if any, in that order). */
FNN_TARGET_AVX512 static inline __m512 pre(const float *zx, const float *bias, const float *zh,
                                           __mmask16 m) {
    __m512 v = _mm512_maskz_loadu_ps(m, zx);
    if (bias != NULL) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
    return zh != NULL ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, zh)) : v;
}

FNN_TARGET_AVX512 void fnn_lstm_fwd_row_f32_avx512(int64_t n, fnn_act act, fnn_act ract,
                                                   const float *zx, const float *bias,
                                                   const float *zh, float *gates,
                                                   int64_t stride, const float *c_prev,
                                                   float *c_out, float *h_out) {
    const int64_t s1 = stride, s2 = 2 * stride, s3 = 3 * stride;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const float *b = off(bias, j), *h = off(zh, j);
        const __m512 i = act_v(ract, pre(zx + j, b, h, m));
        const __m512 f = act_v(ract, pre(zx + s1 + j, off(b, s1), off(h, s1), m));
        const __m512 g = act_v(act, pre(zx + s2 + j, off(b, s2), off(h, s2), m));
        const __m512 o = act_v(ract, pre(zx + s3 + j, off(b, s3), off(h, s3), m));
        const __m512 c = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c_prev + j),
                                         _mm512_mul_ps(i, g));
        if (gates != NULL) {
            _mm512_mask_storeu_ps(gates + j, m, i);
            _mm512_mask_storeu_ps(gates + s1 + j, m, f);
            _mm512_mask_storeu_ps(gates + s2 + j, m, g);
            _mm512_mask_storeu_ps(gates + s3 + j, m, o);
        }
        _mm512_mask_storeu_ps(c_out + j, m, c);
        _mm512_mask_storeu_ps(h_out + j, m, _mm512_mul_ps(o, act_v(act, c)));
    }
}

FNN_TARGET_AVX512 void fnn_lstm_bwd_row_f32_avx512(int64_t n, fnn_act act, fnn_act ract,
                                                   float *z, int64_t stride, const float *c,
                                                   const float *c_prev, const float *dy,
                                                   const float *dh, float *dc) {
    float *zi = z, *zf = z + stride, *zg = z + 2 * stride, *zo = z + 3 * stride;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 i = _mm512_maskz_loadu_ps(m, zi + j);
        const __m512 f = _mm512_maskz_loadu_ps(m, zf + j);
        const __m512 g = _mm512_maskz_loadu_ps(m, zg + j);
        const __m512 o = _mm512_maskz_loadu_ps(m, zo + j);
        const __m512 tc = act_v(act, _mm512_maskz_loadu_ps(m, c + j));
        __m512 dhv = _mm512_maskz_loadu_ps(m, dh + j);
        if (dy != NULL) dhv = _mm512_add_ps(dhv, _mm512_maskz_loadu_ps(m, dy + j));
        const __m512 dcv = _mm512_fmadd_ps(_mm512_mul_ps(dhv, o), dact_v(act, tc),
                                           _mm512_maskz_loadu_ps(m, dc + j));
        _mm512_mask_storeu_ps(zo + j, m, _mm512_mul_ps(_mm512_mul_ps(dhv, tc), dact_v(ract, o)));
        _mm512_mask_storeu_ps(zi + j, m, _mm512_mul_ps(_mm512_mul_ps(dcv, g), dact_v(ract, i)));
        _mm512_mask_storeu_ps(zg + j, m, _mm512_mul_ps(_mm512_mul_ps(dcv, i), dact_v(act, g)));
        _mm512_mask_storeu_ps(
            zf + j, m,
            _mm512_mul_ps(_mm512_mul_ps(dcv, _mm512_maskz_loadu_ps(m, c_prev + j)),
                          dact_v(ract, f)));
        _mm512_mask_storeu_ps(dc + j, m, _mm512_mul_ps(dcv, f));
    }
}

FNN_TARGET_AVX512 static void rnn_fwd_row(int64_t n, fnn_act act, const float *zx,
                                           const float *bias, const float *zh, float *h_out) {
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        _mm512_mask_storeu_ps(h_out + j, m, act_v(act, pre(zx + j, off(bias, j), off(zh, j), m)));
    }
}

FNN_TARGET_AVX512 static void rnn_bwd_row(int64_t n, fnn_act act, const float *h,
                                           const float *dy, const float *dh, float *dz) {
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 dhv = _mm512_maskz_loadu_ps(m, dh + j);
        if (dy != NULL) dhv = _mm512_add_ps(dhv, _mm512_maskz_loadu_ps(m, dy + j));
        const __m512 hv = _mm512_maskz_loadu_ps(m, h + j);
        _mm512_mask_storeu_ps(dz + j, m, _mm512_mul_ps(dhv, dact_v(act, hv)));
    }
}

/* GRU: the recurrent part of a gate, zh + rbias (each if any). */
FNN_TARGET_AVX512 static inline __m512 rec(const float *zh, const float *rbias, __mmask16 m) {
    const __m512 v = zh != NULL ? _mm512_maskz_loadu_ps(m, zh) : _mm512_setzero_ps();
    return rbias != NULL ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, rbias)) : v;
}

FNN_TARGET_AVX512 static void gru_fwd_row(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                                          const float *bias, const float *zh,
                                          const float *rbias, const float *h_prev, float *gates,
                                          float *hn, int64_t stride, float *h_out) {
    const int64_t s1 = stride, s2 = 2 * stride;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const float *b = off(bias, j), *h = off(zh, j), *rb = off(rbias, j);
        const __m512 z = act_v(ract, _mm512_add_ps(pre(zx + j, b, NULL, m), rec(h, rb, m)));
        const __m512 r = act_v(ract, _mm512_add_ps(pre(zx + s1 + j, off(b, s1), NULL, m),
                                                   rec(off(h, s1), off(rb, s1), m)));
        const __m512 h_h = rec(off(h, s2), off(rb, s2), m);
        const __m512 hh = act_v(
            act, _mm512_add_ps(pre(zx + s2 + j, off(b, s2), NULL, m), _mm512_mul_ps(r, h_h)));
        if (gates != NULL) {
            _mm512_mask_storeu_ps(gates + j, m, z);
            _mm512_mask_storeu_ps(gates + s1 + j, m, r);
            _mm512_mask_storeu_ps(gates + s2 + j, m, hh);
            _mm512_mask_storeu_ps(hn + j, m, h_h);
        }
        const __m512 one_z = _mm512_sub_ps(_mm512_set1_ps(1.0f), z);
        _mm512_mask_storeu_ps(h_out + j, m,
                              _mm512_fmadd_ps(z, _mm512_maskz_loadu_ps(m, h_prev + j),
                                              _mm512_mul_ps(one_z, hh)));
    }
}

FNN_TARGET_AVX512 static void gru_bwd_row(int64_t n, fnn_act act, fnn_act ract, float *z,
                                          int64_t stride, float *hn, const float *h_prev,
                                          const float *dy, const float *dh, float *dh_direct) {
    float *zz = z, *zr = z + stride, *zhh = z + 2 * stride;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 zg = _mm512_maskz_loadu_ps(m, zz + j), r = _mm512_maskz_loadu_ps(m, zr + j);
        const __m512 hh = _mm512_maskz_loadu_ps(m, zhh + j);
        __m512 dhv = _mm512_maskz_loadu_ps(m, dh + j);
        if (dy != NULL) dhv = _mm512_add_ps(dhv, _mm512_maskz_loadu_ps(m, dy + j));
        const __m512 one_z = _mm512_sub_ps(_mm512_set1_ps(1.0f), zg);
        const __m512 dhh = _mm512_mul_ps(_mm512_mul_ps(dhv, one_z), dact_v(act, hh));
        const __m512 diff = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, h_prev + j), hh);
        const __m512 hnv = _mm512_maskz_loadu_ps(m, hn + j);
        _mm512_mask_storeu_ps(zz + j, m, _mm512_mul_ps(_mm512_mul_ps(dhv, diff), dact_v(ract, zg)));
        _mm512_mask_storeu_ps(zr + j, m, _mm512_mul_ps(_mm512_mul_ps(dhh, hnv), dact_v(ract, r)));
        _mm512_mask_storeu_ps(zhh + j, m, dhh);
        _mm512_mask_storeu_ps(hn + j, m, _mm512_mul_ps(dhh, r));
        _mm512_mask_storeu_ps(dh_direct + j, m, _mm512_mul_ps(dhv, zg));
    }
}

const fnn_rnn_rows fnn_rnn_rows_avx512 = {rnn_fwd_row, rnn_bwd_row, gru_fwd_row, gru_bwd_row};
#endif
