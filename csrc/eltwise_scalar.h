/* eltwise_scalar.h - the scalar formula of every activation and its gradient, in one place:
 * the reference kernels (eltwise.c). The vector kernels (eltwise_avx2.c, eltwise_avx512.c)
 * write the same formulas with vector math and finish arrays with a masked vector instead of a
 * scalar tail, so within an ISA an element's result never depends on its position (the GEMM
 * epilogue applies act per tile and must match a separate pass bit for bit). Private.
 *
 * NaN semantics, shared with the vector kernels: a NaN input gives a NaN output; comparisons
 * are written so that NaN falls through to the branch that propagates it. Gradients use the
 * activation's output y (relu, sigmoid, tanh, elu, leaky_relu; act_alpha >= 0) or its input
 * (gelu), as fnn_act_bwd_f32 documents.
 */
#ifndef FASTNN_ELTWISE_SCALAR_H
#define FASTNN_ELTWISE_SCALAR_H

#include <math.h>

#include "internal.h"

#define FNN_SQRT1_2 0.70710678118654752440
#define FNN_INV_SQRT_2PI 0.39894228040143267794

static inline float fnn_relu_f(float x) { return x < 0.0f ? 0.0f : x; }

static inline float fnn_sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x); /* NaN lands here too */
    return e / (1.0f + e);
}

static inline float fnn_tanh_f(float x) { return tanhf(x); }

/* gelu(x) = x * Phi(x) = 0.5 x erfc(-x/sqrt2), in double so the ref is an oracle (the erfc
 * form keeps relative accuracy for negative x, where 1 + erf cancels). Below -40 the result is
 * -0 in float32 anyway; the test also makes gelu(-inf) = -0 instead of -inf * 0 = NaN. */
static inline float fnn_gelu_f(float x) {
    if (x < -40.0f) return -0.0f;
    const double xd = x;
    return (float)(0.5 * xd * erfc(-xd * FNN_SQRT1_2));
}

/* gelu'(x) = Phi(x) + x phi(x); x clamped to +-40 in the second term so that +-inf give 1, 0. */
static inline float fnn_gelu_grad_f(float x) {
    double xd = x;
    const double cdf = 0.5 * erfc(-xd * FNN_SQRT1_2);
    if (xd < -40.0) xd = -40.0;
    if (xd > 40.0) xd = 40.0;
    return (float)(cdf + xd * FNN_INV_SQRT_2PI * exp(-0.5 * xd * xd));
}

static inline float fnn_elu_f(float x, float alpha) { return x > 0.0f ? x : alpha * expm1f(x); }

static inline float fnn_leaky_relu_f(float x, float alpha) { return x < 0.0f ? alpha * x : x; }

static inline float fnn_act_scalar(fnn_act act, float alpha, float x) {
    switch (act) {
    case FNN_ACT_RELU: return fnn_relu_f(x);
    case FNN_ACT_SIGMOID: return fnn_sigmoid_f(x);
    case FNN_ACT_TANH: return fnn_tanh_f(x);
    case FNN_ACT_GELU: return fnn_gelu_f(x);
    case FNN_ACT_ELU: return fnn_elu_f(x, alpha);
    case FNN_ACT_LEAKY_RELU: return fnn_leaky_relu_f(x, alpha);
    default: return x;
    }
}

/* Gradients. `y != y` is the NaN test: a NaN output passes through instead of being masked. */
static inline float fnn_relu_grad_f(float y, float dy) {
    return y > 0.0f ? dy : (y != y ? y : 0.0f);
}
static inline float fnn_sigmoid_grad_f(float y, float dy) { return dy * (y * (1.0f - y)); }
/* 1 - y^2 as (1 - y)(1 + y): no cancellation as |y| -> 1 (1 - y is exact there). */
static inline float fnn_tanh_grad_f(float y, float dy) { return dy * ((1.0f - y) * (1.0f + y)); }
static inline float fnn_elu_grad_f(float y, float dy, float alpha) {
    return y > 0.0f ? dy : dy * (y + alpha);
}
static inline float fnn_leaky_relu_grad_f(float y, float dy, float alpha) {
    return y > 0.0f ? dy : (y != y ? y : alpha * dy);
}

static inline float fnn_act_grad_scalar(fnn_act act, float alpha, float preact, float y,
                                        float dy) {
    switch (act) {
    case FNN_ACT_RELU: return fnn_relu_grad_f(y, dy);
    case FNN_ACT_SIGMOID: return fnn_sigmoid_grad_f(y, dy);
    case FNN_ACT_TANH: return fnn_tanh_grad_f(y, dy);
    case FNN_ACT_GELU: return dy * fnn_gelu_grad_f(preact);
    case FNN_ACT_ELU: return fnn_elu_grad_f(y, dy, alpha);
    case FNN_ACT_LEAKY_RELU: return fnn_leaky_relu_grad_f(y, dy, alpha);
    default: return dy;
    }
}

#endif /* FASTNN_ELTWISE_SCALAR_H */
