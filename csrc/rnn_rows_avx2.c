/* rnn_rows_avx2.c - the LSTM, SimpleRNN and GRU fused passes with AVX2+FMA, 8 units per vector.
 * Contract: internal.h, fnn_lstm_fwd_row_fn / fnn_lstm_bwd_row_fn / fnn_rnn_*_row_fn. The
 * tail uses the same arithmetic as the body with masked loads and stores, so every unit runs
 * the same instructions wherever it sits in a row. */
#include "internal.h"

#ifdef FNN_X86_64
#include <immintrin.h>

/* exp(x), Cephes expf: x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial, times 2^n built in
 * the exponent field. About 1 ulp. Inputs are clamped to [-87, 88] so 2^n stays a normal
 * float; the operand order of min/max lets NaN through. */
FNN_TARGET_AVX2 static inline __m256 exp_v(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
                                   _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

FNN_TARGET_AVX2 static inline __m256 sigmoid_v(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp_v(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* tanh: |x| < 0.625: Cephes tanhf's odd polynomial (no cancellation near 0); otherwise
 * 1 - 2 / (exp(2|x|) + 1) with x's sign. */
FNN_TARGET_AVX2 static inline __m256 tanh_v(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp_v(_mm256_add_ps(a, a));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

FNN_TARGET_AVX2 static inline __m256 act_v(fnn_act act, __m256 x) {
    switch (act) {
    case FNN_ACT_TANH: return tanh_v(x);
    case FNN_ACT_SIGMOID: return sigmoid_v(x);
    case FNN_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x); /* NaN stays NaN */
    default: return x;
    }
}

/* The activation's derivative from its output y. */
FNN_TARGET_AVX2 static inline __m256 dact_v(fnn_act act, __m256 y) {
    const __m256 one = _mm256_set1_ps(1.0f);
    switch (act) {
    case FNN_ACT_TANH: return _mm256_fnmadd_ps(y, y, one);
    case FNN_ACT_SIGMOID: return _mm256_mul_ps(y, _mm256_sub_ps(one, y));
    case FNN_ACT_RELU:
        return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), one);
    default: return one;
    }
}

/* Loads and stores of 8 floats, or of the first few under a lane mask (tail). */
FNN_TARGET_AVX2 static inline __m256 ld(const float *p, __m256i m, int full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

FNN_TARGET_AVX2 static inline void st(float *p, __m256i m, int full, __m256 v) {
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

/* Pre-activation of one gate: the input projection, plus the bias, plus the recurrent part
 * (each if any, in that order). */
FNN_TARGET_AVX2 static inline __m256 pre(const float *zx, const float *bias, const float *zh,
                                         __m256i m, int full) {
    __m256 v = ld(zx, m, full);
    if (bias != NULL) v = _mm256_add_ps(v, ld(bias, m, full));
    return zh != NULL ? _mm256_add_ps(v, ld(zh, m, full)) : v;
}

/* p + offset, NULL staying NULL */
static inline const float *off(const float *p, int64_t offset) {
    return p != NULL ? p + offset : NULL;
}

FNN_TARGET_AVX2 static inline void fwd_vec(fnn_act act, fnn_act ract, const float *zx,
                                           const float *bias, const float *zh, float *gates,
                                           int64_t s1, const float *c_prev, float *c_out,
                                           float *h_out, __m256i m, int full) {
    const int64_t s2 = 2 * s1, s3 = 3 * s1;
    const __m256 i = act_v(ract, pre(zx, bias, zh, m, full));
    const __m256 f = act_v(ract, pre(zx + s1, off(bias, s1), off(zh, s1), m, full));
    const __m256 g = act_v(act, pre(zx + s2, off(bias, s2), off(zh, s2), m, full));
    const __m256 o = act_v(ract, pre(zx + s3, off(bias, s3), off(zh, s3), m, full));
    const __m256 c = _mm256_fmadd_ps(f, ld(c_prev, m, full), _mm256_mul_ps(i, g));
    if (gates != NULL) {
        st(gates, m, full, i);
        st(gates + s1, m, full, f);
        st(gates + s2, m, full, g);
        st(gates + s3, m, full, o);
    }
    st(c_out, m, full, c);
    st(h_out, m, full, _mm256_mul_ps(o, act_v(act, c)));
}

FNN_TARGET_AVX2 static inline void bwd_vec(fnn_act act, fnn_act ract, float *zi, float *zf,
                                           float *zg, float *zo, const float *c,
                                           const float *c_prev, const float *dy,
                                           const float *dh, float *dc, __m256i m, int full) {
    const __m256 i = ld(zi, m, full), f = ld(zf, m, full);
    const __m256 g = ld(zg, m, full), o = ld(zo, m, full);
    const __m256 tc = act_v(act, ld(c, m, full));
    __m256 dhv = ld(dh, m, full);
    if (dy != NULL) dhv = _mm256_add_ps(dhv, ld(dy, m, full));
    const __m256 dcv =
        _mm256_fmadd_ps(_mm256_mul_ps(dhv, o), dact_v(act, tc), ld(dc, m, full));
    st(zo, m, full, _mm256_mul_ps(_mm256_mul_ps(dhv, tc), dact_v(ract, o)));
    st(zi, m, full, _mm256_mul_ps(_mm256_mul_ps(dcv, g), dact_v(ract, i)));
    st(zg, m, full, _mm256_mul_ps(_mm256_mul_ps(dcv, i), dact_v(act, g)));
    st(zf, m, full, _mm256_mul_ps(_mm256_mul_ps(dcv, ld(c_prev, m, full)), dact_v(ract, f)));
    st(dc, m, full, _mm256_mul_ps(dcv, f));
}

FNN_TARGET_AVX2 static inline __m256i tail_mask(int64_t left) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lanes);
}

FNN_TARGET_AVX2 void fnn_lstm_fwd_row_f32_avx2(int64_t n, fnn_act act, fnn_act ract,
                                               const float *zx, const float *bias,
                                               const float *zh, float *gates, int64_t stride,
                                               const float *c_prev, float *c_out,
                                               float *h_out) {
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        fwd_vec(act, ract, zx + j, off(bias, j), off(zh, j), gates != NULL ? gates + j : NULL,
                stride, c_prev + j, c_out + j, h_out + j, all, 1);
    if (j < n)
        fwd_vec(act, ract, zx + j, off(bias, j), off(zh, j), gates != NULL ? gates + j : NULL,
                stride, c_prev + j, c_out + j, h_out + j, tail_mask(n - j), 0);
}

FNN_TARGET_AVX2 void fnn_lstm_bwd_row_f32_avx2(int64_t n, fnn_act act, fnn_act ract, float *z,
                                               int64_t stride, const float *c,
                                               const float *c_prev, const float *dy,
                                               const float *dh, float *dc) {
    float *zi = z, *zf = z + stride, *zg = z + 2 * stride, *zo = z + 3 * stride;
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        bwd_vec(act, ract, zi + j, zf + j, zg + j, zo + j, c + j, c_prev + j,
                dy != NULL ? dy + j : NULL, dh + j, dc + j, all, 1);
    if (j < n)
        bwd_vec(act, ract, zi + j, zf + j, zg + j, zo + j, c + j, c_prev + j,
                dy != NULL ? dy + j : NULL, dh + j, dc + j, tail_mask(n - j), 0);
}

FNN_TARGET_AVX2 static inline void rnn_fwd_vec(fnn_act act, const float *zx, const float *bias,
                                               const float *zh, float *h_out, __m256i m,
                                               int full) {
    st(h_out, m, full, act_v(act, pre(zx, bias, zh, m, full)));
}

FNN_TARGET_AVX2 static inline void rnn_bwd_vec(fnn_act act, const float *h, const float *dy,
                                               const float *dh, float *dz, __m256i m,
                                               int full) {
    __m256 dhv = ld(dh, m, full);
    if (dy != NULL) dhv = _mm256_add_ps(dhv, ld(dy, m, full));
    st(dz, m, full, _mm256_mul_ps(dhv, dact_v(act, ld(h, m, full))));
}

FNN_TARGET_AVX2 static void rnn_fwd_row(int64_t n, fnn_act act, const float *zx,
                                         const float *bias, const float *zh, float *h_out) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        rnn_fwd_vec(act, zx + j, off(bias, j), off(zh, j), h_out + j, _mm256_set1_epi32(-1), 1);
    if (j < n)
        rnn_fwd_vec(act, zx + j, off(bias, j), off(zh, j), h_out + j, tail_mask(n - j), 0);
}

FNN_TARGET_AVX2 static void rnn_bwd_row(int64_t n, fnn_act act, const float *h,
                                         const float *dy, const float *dh, float *dz) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        rnn_bwd_vec(act, h + j, off(dy, j), dh + j, dz + j, _mm256_set1_epi32(-1), 1);
    if (j < n) rnn_bwd_vec(act, h + j, off(dy, j), dh + j, dz + j, tail_mask(n - j), 0);
}

/* GRU: the recurrent part of a gate, zh + rbias (each if any). */
FNN_TARGET_AVX2 static inline __m256 rec(const float *zh, const float *rbias, __m256i m,
                                         int full) {
    __m256 v = zh != NULL ? ld(zh, m, full) : _mm256_setzero_ps();
    return rbias != NULL ? _mm256_add_ps(v, ld(rbias, m, full)) : v;
}

FNN_TARGET_AVX2 static inline void gru_fwd_vec(fnn_act act, fnn_act ract, const float *zx,
                                               const float *bias, const float *zh,
                                               const float *rbias, const float *h_prev,
                                               float *gates, float *hn, int64_t s1,
                                               float *h_out, __m256i m, int full) {
    const int64_t s2 = 2 * s1;
    const __m256 z =
        act_v(ract, _mm256_add_ps(pre(zx, bias, NULL, m, full), rec(zh, rbias, m, full)));
    const __m256 r = act_v(ract, _mm256_add_ps(pre(zx + s1, off(bias, s1), NULL, m, full),
                                               rec(off(zh, s1), off(rbias, s1), m, full)));
    const __m256 h_h = rec(off(zh, s2), off(rbias, s2), m, full);
    const __m256 x_h = pre(zx + s2, off(bias, s2), NULL, m, full);
    const __m256 hh = act_v(act, _mm256_add_ps(x_h, _mm256_mul_ps(r, h_h)));
    if (gates != NULL) {
        st(gates, m, full, z);
        st(gates + s1, m, full, r);
        st(gates + s2, m, full, hh);
        st(hn, m, full, h_h);
    }
    const __m256 one_z = _mm256_sub_ps(_mm256_set1_ps(1.0f), z);
    st(h_out, m, full, _mm256_fmadd_ps(z, ld(h_prev, m, full), _mm256_mul_ps(one_z, hh)));
}

FNN_TARGET_AVX2 static inline void gru_bwd_vec(fnn_act act, fnn_act ract, float *zz, float *zr,
                                               float *zhh, float *hn, const float *h_prev,
                                               const float *dy, const float *dh,
                                               float *dh_direct, __m256i m, int full) {
    const __m256 z = ld(zz, m, full), r = ld(zr, m, full), hh = ld(zhh, m, full);
    __m256 dhv = ld(dh, m, full);
    if (dy != NULL) dhv = _mm256_add_ps(dhv, ld(dy, m, full));
    const __m256 one_z = _mm256_sub_ps(_mm256_set1_ps(1.0f), z);
    const __m256 dhh = _mm256_mul_ps(_mm256_mul_ps(dhv, one_z), dact_v(act, hh));
    const __m256 dz = _mm256_mul_ps(_mm256_mul_ps(dhv, _mm256_sub_ps(ld(h_prev, m, full), hh)),
                                    dact_v(ract, z));
    st(zr, m, full, _mm256_mul_ps(_mm256_mul_ps(dhh, ld(hn, m, full)), dact_v(ract, r)));
    st(zz, m, full, dz);
    st(zhh, m, full, dhh);
    st(hn, m, full, _mm256_mul_ps(dhh, r));
    st(dh_direct, m, full, _mm256_mul_ps(dhv, z));
}

FNN_TARGET_AVX2 static void gru_fwd_row(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                                        const float *bias, const float *zh, const float *rbias,
                                        const float *h_prev, float *gates, float *hn,
                                        int64_t stride, float *h_out) {
    for (int64_t j = 0; j < n; j += 8) {
        const int full = j + 8 <= n;
        const __m256i m = full ? _mm256_set1_epi32(-1) : tail_mask(n - j);
        gru_fwd_vec(act, ract, zx + j, off(bias, j), off(zh, j), off(rbias, j), h_prev + j,
                    gates != NULL ? gates + j : NULL, hn != NULL ? hn + j : NULL, stride,
                    h_out + j, m, full);
    }
}

FNN_TARGET_AVX2 static void gru_bwd_row(int64_t n, fnn_act act, fnn_act ract, float *z,
                                        int64_t stride, float *hn, const float *h_prev,
                                        const float *dy, const float *dh, float *dh_direct) {
    for (int64_t j = 0; j < n; j += 8) {
        const int full = j + 8 <= n;
        const __m256i m = full ? _mm256_set1_epi32(-1) : tail_mask(n - j);
        gru_bwd_vec(act, ract, z + j, z + stride + j, z + 2 * stride + j, hn + j, h_prev + j,
                    off(dy, j), dh + j, dh_direct + j, m, full);
    }
}

const fnn_rnn_rows fnn_rnn_rows_avx2 = {rnn_fwd_row, rnn_bwd_row, gru_fwd_row, gru_bwd_row};
#endif
