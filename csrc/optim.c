/* optim.c - SGD, Adam and RMSprop updates (Keras 3 rules), one fused pass over a parameter.
 *
 * Each rule is written once, as a static inline loop body in Keras's operation order. The
 * per-ISA kernels are that body compiled with the ISA's target attribute, so the compiler
 * vectorizes it (8 or 16 lanes); setup.py builds with -ffp-contract=off, so neither GCC nor
 * clang contracts a*b+c into FMA, and sqrt and division are correctly rounded, so every ISA,
 * every vector/tail split and the NumPy float32 reference in tests/test_optim_kernels.py agree
 * bit for bit. */
#include <math.h>

#include "internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Work per parameter in the relu units of fnn_eltwise_threads (eltwise.c), measured with
 * `python bench/bench_eltwise.py --threshold`: Adam and RMSprop (a sqrt and a division, 28 or
 * 24 bytes of traffic) about 3, SGD about 1. */
#define ADAM_COST 3.0
#define RMSPROP_COST 3.0
#define SGD_COST 1.0

/* ---- the rules ------------------------------------------------------------------------------ */

static ALWAYS_INLINE void sgd_body(const fnn_sgd_consts *c, int64_t n, float *FNN_RESTRICT param,
                                   const float *FNN_RESTRICT grad, float *FNN_RESTRICT vel) {
    const float lr = c->lr, mom = c->momentum;
    if (vel == NULL) {
        for (int64_t i = 0; i < n; i++) param[i] = param[i] - grad[i] * lr;
    } else if (c->nesterov) {
        for (int64_t i = 0; i < n; i++) {
            const float v = vel[i] * mom - grad[i] * lr;
            vel[i] = v;
            param[i] = param[i] + (v * mom - grad[i] * lr);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float v = vel[i] * mom - grad[i] * lr;
            vel[i] = v;
            param[i] = param[i] + v;
        }
    }
}

static ALWAYS_INLINE void adam_body(const fnn_adam_consts *c, int64_t n,
                                    float *FNN_RESTRICT param, const float *FNN_RESTRICT grad,
                                    float *FNN_RESTRICT m, float *FNN_RESTRICT v) {
    const float alpha = c->alpha, b1 = c->one_minus_beta_1, b2 = c->one_minus_beta_2;
    const float eps = c->epsilon;
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        const float mi = m[i] + (g - m[i]) * b1;
        const float vi = v[i] + (g * g - v[i]) * b2;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] - (mi * alpha) / (sqrtf(vi) + eps);
    }
}

static ALWAYS_INLINE void rmsprop_body(const fnn_rmsprop_consts *c, int64_t n,
                                       float *FNN_RESTRICT param, const float *FNN_RESTRICT grad,
                                       float *FNN_RESTRICT ms, float *FNN_RESTRICT mom) {
    const float lr = c->lr, rho = c->rho, omr = c->one_minus_rho, eps = c->epsilon;
    const float momentum = c->momentum;
    if (mom == NULL) {
        for (int64_t i = 0; i < n; i++) {
            const float g = grad[i];
            const float s = rho * ms[i] + omr * (g * g);
            ms[i] = s;
            param[i] = param[i] - (lr * g) / sqrtf(s + eps);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float g = grad[i];
            const float s = rho * ms[i] + omr * (g * g);
            ms[i] = s;
            const float u = momentum * mom[i] + (lr * g) / sqrtf(s + eps);
            mom[i] = u;
            param[i] = param[i] - u;
        }
    }
}

/* ---- per-ISA kernels (table entries) -------------------------------------------------------- */

void fnn_sgd_f32_ref(const fnn_sgd_consts *c, int64_t n, float *param, const float *grad,
                     float *velocity) {
    sgd_body(c, n, param, grad, velocity);
}
void fnn_adam_f32_ref(const fnn_adam_consts *c, int64_t n, float *param, const float *grad,
                      float *m, float *v) {
    adam_body(c, n, param, grad, m, v);
}
void fnn_rmsprop_f32_ref(const fnn_rmsprop_consts *c, int64_t n, float *param,
                         const float *grad, float *ms, float *mom) {
    rmsprop_body(c, n, param, grad, ms, mom);
}

#ifdef FNN_X86_64
FNN_TARGET_AVX2 void fnn_sgd_f32_avx2(const fnn_sgd_consts *c, int64_t n, float *param,
                                      const float *grad, float *velocity) {
    sgd_body(c, n, param, grad, velocity);
}
FNN_TARGET_AVX2 void fnn_adam_f32_avx2(const fnn_adam_consts *c, int64_t n, float *param,
                                       const float *grad, float *m, float *v) {
    adam_body(c, n, param, grad, m, v);
}
FNN_TARGET_AVX2 void fnn_rmsprop_f32_avx2(const fnn_rmsprop_consts *c, int64_t n, float *param,
                                          const float *grad, float *ms, float *mom) {
    rmsprop_body(c, n, param, grad, ms, mom);
}
FNN_TARGET_AVX512 void fnn_sgd_f32_avx512(const fnn_sgd_consts *c, int64_t n, float *param,
                                          const float *grad, float *velocity) {
    sgd_body(c, n, param, grad, velocity);
}
FNN_TARGET_AVX512 void fnn_adam_f32_avx512(const fnn_adam_consts *c, int64_t n, float *param,
                                           const float *grad, float *m, float *v) {
    adam_body(c, n, param, grad, m, v);
}
FNN_TARGET_AVX512 void fnn_rmsprop_f32_avx512(const fnn_rmsprop_consts *c, int64_t n,
                                              float *param, const float *grad, float *ms,
                                              float *mom) {
    rmsprop_body(c, n, param, grad, ms, mom);
}
#endif

/* ---- public entry points: constants as Keras computes them, then threads over ranges -------- */

static fnn_sgd_consts sgd_consts(double lr, double momentum, int nesterov) {
    return (fnn_sgd_consts){(float)lr, (float)momentum, nesterov != 0};
}

/* Keras: beta powers in float32 (powf of the float32 betas and step), then
 * alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), left to right in float32. */
static fnn_adam_consts adam_consts(double lr, double beta_1, double beta_2, double epsilon,
                                   int64_t step) {
    const float t = (float)step;
    const float b1p = powf((float)beta_1, t), b2p = powf((float)beta_2, t);
    const float alpha = (float)lr * sqrtf(1.0f - b2p) / (1.0f - b1p);
    return (fnn_adam_consts){alpha, (float)(1.0 - beta_1), (float)(1.0 - beta_2),
                             (float)epsilon};
}

static fnn_rmsprop_consts rmsprop_consts(double lr, double rho, double momentum,
                                         double epsilon) {
    return (fnn_rmsprop_consts){(float)lr, (float)rho, (float)(1.0 - rho), (float)momentum,
                                (float)epsilon};
}

typedef struct {
    const fnn_kernel_table *kt;
    const void *consts;
    float *param, *s1, *s2;
    const float *grad;
} optim_job;

static void sgd_range(void *ctx, int64_t b, int64_t e) {
    const optim_job *j = ctx;
    j->kt->sgd(j->consts, e - b, j->param + b, j->grad + b, j->s1 != NULL ? j->s1 + b : NULL);
}

static void adam_range(void *ctx, int64_t b, int64_t e) {
    const optim_job *j = ctx;
    j->kt->adam(j->consts, e - b, j->param + b, j->grad + b, j->s1 + b, j->s2 + b);
}

static void rmsprop_range(void *ctx, int64_t b, int64_t e) {
    const optim_job *j = ctx;
    j->kt->rmsprop(j->consts, e - b, j->param + b, j->grad + b, j->s1 + b,
                   j->s2 != NULL ? j->s2 + b : NULL);
}

fnn_status fnn_sgd_update_f32(int64_t n, float *param, const float *grad, float *velocity,
                              double lr, double momentum, int nesterov, int n_threads) {
    if (n < 0) return FNN_ERR_ARG;
    if (n == 0) return FNN_OK;
    if (param == NULL || grad == NULL || (momentum != 0.0 && velocity == NULL))
        return FNN_ERR_ARG;
    /* Keras: momentum == 0 has no velocity slot; the rule is w -= lr * g. */
    const fnn_sgd_consts c = sgd_consts(lr, momentum, nesterov);
    optim_job job = {fnn_kernels(), &c, param, momentum != 0.0 ? velocity : NULL, NULL, grad};
    fnn_parallel_ranges(n, 64, fnn_eltwise_threads(SGD_COST * (double)n, n_threads), sgd_range,
                        &job);
    return FNN_OK;
}

fnn_status fnn_adam_update_f32(int64_t n, float *param, const float *grad, float *m, float *v,
                               double lr, double beta_1, double beta_2, double epsilon,
                               int64_t step, int n_threads) {
    if (n < 0 || step < 1) return FNN_ERR_ARG;
    if (n == 0) return FNN_OK;
    if (param == NULL || grad == NULL || m == NULL || v == NULL) return FNN_ERR_ARG;
    const fnn_adam_consts c = adam_consts(lr, beta_1, beta_2, epsilon, step);
    optim_job job = {fnn_kernels(), &c, param, m, v, grad};
    fnn_parallel_ranges(n, 64, fnn_eltwise_threads(ADAM_COST * (double)n, n_threads), adam_range,
                        &job);
    return FNN_OK;
}

fnn_status fnn_rmsprop_update_f32(int64_t n, float *param, const float *grad, float *ms,
                                  float *mom, double lr, double rho, double momentum,
                                  double epsilon, int n_threads) {
    if (n < 0) return FNN_ERR_ARG;
    if (n == 0) return FNN_OK;
    if (param == NULL || grad == NULL || ms == NULL || (momentum > 0.0 && mom == NULL))
        return FNN_ERR_ARG;
    const fnn_rmsprop_consts c = rmsprop_consts(lr, rho, momentum, epsilon);
    optim_job job = {fnn_kernels(), &c, param, ms, momentum > 0.0 ? mom : NULL, grad};
    fnn_parallel_ranges(n, 64, fnn_eltwise_threads(RMSPROP_COST * (double)n, n_threads),
                        rmsprop_range, &job);
    return FNN_OK;
}

/* ---- fused with the weight-gradient GEMM (gemm.c's update mode) ----------------------------- */

void fnn_update_tile(const fnn_kernel_table *kt, const fnn_tile_update *u, const float *g,
                     int64_t ldg, int64_t rows, int64_t cols, int64_t i0, int64_t j0) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t off = (i0 + r) * u->ld + j0;
        const float *gr = g + r * ldg;
        float *s1 = u->s1 != NULL ? u->s1 + off : NULL, *s2 = u->s2 != NULL ? u->s2 + off : NULL;
        switch (u->rule) {
        case FNN_UPDATE_SGD: kt->sgd(u->consts, cols, u->param + off, gr, s1); break;
        case FNN_UPDATE_ADAM: kt->adam(u->consts, cols, u->param + off, gr, s1, s2); break;
        case FNN_UPDATE_RMSPROP: kt->rmsprop(u->consts, cols, u->param + off, gr, s1, s2); break;
        }
    }
}

static fnn_status gemm_update(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                              const float *a, int64_t lda, const float *b, int64_t ldb,
                              const fnn_tile_update *u, int n_threads) {
    const fnn_gemm_problem p = {ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, NULL, n, NULL,
                                FNN_ACT_LINEAR, 0.0f, u};
    const fnn_status st = fnn_gemm_check(&p);
    return st != FNN_OK ? st : fnn_gemm_update_run(&p, n_threads);
}

fnn_status fnn_gemm_sgd_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            float *param, float *velocity, double lr, double momentum,
                            int nesterov, int n_threads) {
    if (param == NULL || (momentum != 0.0 && velocity == NULL)) return FNN_ERR_ARG;
    const fnn_sgd_consts c = sgd_consts(lr, momentum, nesterov);
    const fnn_tile_update u = {FNN_UPDATE_SGD, &c, param,
                               momentum != 0.0 ? velocity : NULL, NULL, n};
    return gemm_update(ta, tb, m, n, k, a, lda, b, ldb, &u, n_threads);
}

fnn_status fnn_gemm_adam_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                             const float *a, int64_t lda, const float *b, int64_t ldb,
                             float *param, float *m_slot, float *v_slot, double lr,
                             double beta_1, double beta_2, double epsilon, int64_t step,
                             int n_threads) {
    if (step < 1 || param == NULL || m_slot == NULL || v_slot == NULL) return FNN_ERR_ARG;
    const fnn_adam_consts c = adam_consts(lr, beta_1, beta_2, epsilon, step);
    const fnn_tile_update u = {FNN_UPDATE_ADAM, &c, param, m_slot, v_slot, n};
    return gemm_update(ta, tb, m, n, k, a, lda, b, ldb, &u, n_threads);
}

fnn_status fnn_gemm_rmsprop_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                                const float *a, int64_t lda, const float *b, int64_t ldb,
                                float *param, float *ms, float *mom, double lr, double rho,
                                double momentum, double epsilon, int n_threads) {
    if (param == NULL || ms == NULL || (momentum > 0.0 && mom == NULL)) return FNN_ERR_ARG;
    const fnn_rmsprop_consts c = rmsprop_consts(lr, rho, momentum, epsilon);
    const fnn_tile_update u = {FNN_UPDATE_RMSPROP, &c, param, ms, momentum > 0.0 ? mom : NULL,
                               n};
    return gemm_update(ta, tb, m, n, k, a, lda, b, ldb, &u, n_threads);
}
