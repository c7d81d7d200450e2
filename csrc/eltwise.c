/* eltwise.c - element-wise activations. The scalar formula of each lives in one static inline
 * function, used by the reference kernel and by the tails of the vector kernels. */
#include <math.h>

#include "internal.h"

/* relu(NaN) is NaN: the comparison is written so that NaN falls through to x. */
static inline float relu_f(float x) { return x < 0.0f ? 0.0f : x; }
static inline float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}
static inline float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static inline float elu_f(float x, float alpha) { return x > 0.0f ? x : alpha * expm1f(x); }
static inline float leaky_relu_f(float x, float alpha) { return x < 0.0f ? alpha * x : x; }

void fnn_act_fwd_f32_ref(fnn_act act, float act_alpha, const float *x, float *y, int64_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = relu_f(x[i]);
        break;
    case FNN_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) y[i] = sigmoid_f(x[i]);
        break;
    case FNN_ACT_TANH:
        for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    case FNN_ACT_GELU:
        for (int64_t i = 0; i < n; i++) y[i] = gelu_f(x[i]);
        break;
    case FNN_ACT_ELU:
        for (int64_t i = 0; i < n; i++) y[i] = elu_f(x[i], act_alpha);
        break;
    case FNN_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = leaky_relu_f(x[i], act_alpha);
        break;
    default:
        if (y != x)
            for (int64_t i = 0; i < n; i++) y[i] = x[i];
        break;
    }
}
