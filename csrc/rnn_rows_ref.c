/* rnn_rows_ref.c - the fused passes of the LSTM, SimpleRNN and GRU in portable scalar C: the ref
 * ISA's, and the oracle the vector passes (rnn_rows_avx2.c, rnn_rows_avx512.c) are tested against.
 * Contract: internal.h, fnn_lstm_fwd_row_fn / fnn_lstm_bwd_row_fn / fnn_rnn_rows. */
#include <math.h>

#include "internal.h"

static inline float act_f(fnn_act act, float x) {
    switch (act) {
    case FNN_ACT_TANH: return tanhf(x);
    case FNN_ACT_SIGMOID:
        if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
        return expf(x) / (1.0f + expf(x));
    case FNN_ACT_RELU: return x < 0.0f ? 0.0f : x;
    default: return x;
    }
}

/* The activation's derivative from its output y. */
static inline float dact_f(fnn_act act, float y) {
    switch (act) {
    case FNN_ACT_TANH: return 1.0f - y * y;
    case FNN_ACT_SIGMOID: return y * (1.0f - y);
    case FNN_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    default: return 1.0f;
    }
}

void fnn_lstm_fwd_row_f32_ref(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                              const float *bias, const float *zh, float *gates, int64_t stride,
                              const float *c_prev, float *c_out, float *h_out) {
    for (int64_t j = 0; j < n; j++) {
        float z[4];
        for (int q = 0; q < 4; q++) {
            z[q] = zx[q * stride + j];
            if (bias != NULL) z[q] += bias[q * stride + j];
            if (zh != NULL) z[q] += zh[q * stride + j];
        }
        const float i = act_f(ract, z[0]), f = act_f(ract, z[1]);
        const float g = act_f(act, z[2]), o = act_f(ract, z[3]);
        const float c = f * c_prev[j] + i * g;
        if (gates != NULL) {
            gates[j] = i;
            gates[stride + j] = f;
            gates[2 * stride + j] = g;
            gates[3 * stride + j] = o;
        }
        c_out[j] = c;
        h_out[j] = o * act_f(act, c);
    }
}

void fnn_lstm_bwd_row_f32_ref(int64_t n, fnn_act act, fnn_act ract, float *z, int64_t stride,
                              const float *c, const float *c_prev, const float *dy,
                              const float *dh, float *dc) {
    float *zi = z, *zf = z + stride, *zg = z + 2 * stride, *zo = z + 3 * stride;
    for (int64_t j = 0; j < n; j++) {
        const float i = zi[j], f = zf[j], g = zg[j], o = zo[j];
        const float tc = act_f(act, c[j]);
        const float dhv = dy != NULL ? dh[j] + dy[j] : dh[j];
        const float dcv = dc[j] + dhv * o * dact_f(act, tc);
        zo[j] = dhv * tc * dact_f(ract, o);
        zi[j] = dcv * g * dact_f(ract, i);
        zg[j] = dcv * i * dact_f(act, g);
        zf[j] = dcv * c_prev[j] * dact_f(ract, f);
        dc[j] = dcv * f;
    }
}

static void rnn_fwd_row_ref(int64_t n, fnn_act act, const float *zx, const float *bias,
                            const float *zh, float *h_out) {
    for (int64_t j = 0; j < n; j++) {
        float z = zx[j];
        if (bias != NULL) z += bias[j];
        if (zh != NULL) z += zh[j];
        h_out[j] = act_f(act, z);
    }
}

static void rnn_bwd_row_ref(int64_t n, fnn_act act, const float *h, const float *dy,
                            const float *dh, float *dz) {
    for (int64_t j = 0; j < n; j++) {
        const float dhv = dy != NULL ? dh[j] + dy[j] : dh[j];
        dz[j] = dhv * dact_f(act, h[j]);
    }
}

static void gru_fwd_row_ref(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                            const float *bias, const float *zh, const float *rbias,
                            const float *h_prev, float *gates, float *hn, int64_t stride,
                            float *h_out) {
    for (int64_t j = 0; j < n; j++) {
        float x3[3], h3[3];
        for (int q = 0; q < 3; q++) {
            x3[q] = zx[q * stride + j];
            if (bias != NULL) x3[q] += bias[q * stride + j];
            h3[q] = zh != NULL ? zh[q * stride + j] : 0.0f;
            if (rbias != NULL) h3[q] += rbias[q * stride + j];
        }
        const float z = act_f(ract, x3[0] + h3[0]), r = act_f(ract, x3[1] + h3[1]);
        const float hh = act_f(act, x3[2] + r * h3[2]);
        if (gates != NULL) {
            gates[j] = z;
            gates[stride + j] = r;
            gates[2 * stride + j] = hh;
            hn[j] = h3[2];
        }
        h_out[j] = z * h_prev[j] + (1.0f - z) * hh;
    }
}

static void gru_bwd_row_ref(int64_t n, fnn_act act, fnn_act ract, float *z, int64_t stride,
                            float *hn, const float *h_prev, const float *dy, const float *dh,
                            float *dh_direct) {
    float *zz = z, *zr = z + stride, *zhh = z + 2 * stride;
    for (int64_t j = 0; j < n; j++) {
        const float zg = zz[j], r = zr[j], hh = zhh[j];
        const float dhv = dy != NULL ? dh[j] + dy[j] : dh[j];
        const float dhh = dhv * (1.0f - zg) * dact_f(act, hh);
        zz[j] = dhv * (h_prev[j] - hh) * dact_f(ract, zg);
        zr[j] = dhh * hn[j] * dact_f(ract, r);
        zhh[j] = dhh;
        hn[j] = dhh * r;
        dh_direct[j] = dhv * zg;
    }
}

const fnn_rnn_rows fnn_rnn_rows_ref = {rnn_fwd_row_ref, rnn_bwd_row_ref, gru_fwd_row_ref,
                                       gru_bwd_row_ref};
