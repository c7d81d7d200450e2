/* fastnn.h - the public C API of fastnn's kernels.
 *
 * Conventions for every function below:
 *   - float32, row-major ("C order"); sizes, strides and offsets are int64_t.
 *   - Inputs are `const float *`; outputs must not overlap inputs unless a comment says so.
 *   - `n_threads` is the most threads a call may use (>= 1); small problems run serially.
 *   - Nothing here prints, exits or aborts. Errors are values: FNN_OK (0) or a negative code,
 *     named by fnn_status_str(). Callers (the Cython layer) validate arguments first, so
 *     FNN_ERR_ARG after validation marks a bug.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FNN_OK = 0,
    FNN_ERR_ARG = -1,         /* NULL pointer, negative size, leading dimension too small */
    FNN_ERR_NOMEM = -2,       /* scratch allocation failed */
    FNN_ERR_UNSUPPORTED = -3, /* ISA not available on this CPU or not compiled in */
} fnn_status;

const char *fnn_status_str(fnn_status st);

/* ---------------------------------------------------------------------------------------------
 * Instruction-set dispatch. Levels are ordered: REF < AVX2 < AVX512.
 * fnn_cpu_isa() is the best level this CPU and OS support (probed once, at first use).
 * fnn_set_isa(level) selects the kernels every later call uses; it must not race with running
 * kernels (call it between calls). Returns FNN_ERR_UNSUPPORTED above fnn_cpu_isa().
 */
typedef enum { FNN_ISA_REF = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2 } fnn_isa;

fnn_isa fnn_cpu_isa(void);
fnn_isa fnn_get_isa(void);
fnn_status fnn_set_isa(fnn_isa level);
const char *fnn_isa_name(fnn_isa level);

/* OpenMP: 1 if compiled with OpenMP, and the runtime's version (_OPENMP macro, e.g. 201511). */
int fnn_openmp_enabled(void);
int fnn_openmp_version(void);

/* The process-wide thread count every kernel wrapper passes as n_threads (>= 1). Set once from
 * Python (fastnn.set_num_threads, threadpoolctl); read by every call, from any thread. */
void fnn_set_num_threads(int n);
int fnn_get_num_threads(void);

/* Set in a child process after fork(): the OpenMP runtime of the parent (libgomp) cannot start
 * a team in the child, so every kernel runs on one thread there. */
int fnn_in_forked_child(void);

/* Denormals (|x| < 2^-126): 1 (the default) runs every kernel with flush-to-zero and
 * denormals-are-zero, so denormal inputs read as zero and denormal results become zero, and
 * the kernels keep their speed (a denormal costs a ~100-cycle microcode assist otherwise);
 * 0 keeps IEEE gradual underflow. Normal numbers give the same bits either way. Set between
 * calls; the caller's floating-point mode is restored when each kernel returns. */
void fnn_set_flush_denormals(int enabled);
int fnn_get_flush_denormals(void);

/* ---------------------------------------------------------------------------------------------
 * Element-wise activations, shared by the GEMM epilogue and the layers.
 * act_alpha is the slope of leaky_relu and the alpha of elu; other activations ignore it.
 */
typedef enum {
    FNN_ACT_LINEAR = 0,
    FNN_ACT_RELU = 1,
    FNN_ACT_SIGMOID = 2,
    FNN_ACT_TANH = 3,
    FNN_ACT_GELU = 4, /* exact (erf) form, as Keras's gelu(approximate=False) */
    FNN_ACT_ELU = 5,
    FNN_ACT_LEAKY_RELU = 6,
    FNN_ACT_SOFTMAX = 7, /* over the last axis (a row); not allowed in the GEMM epilogue */
} fnn_act;

/* ---------------------------------------------------------------------------------------------
 * GEMM. C = alpha * op(A) @ op(B) + beta * C, then the epilogue: C = act(C + bias).
 * op(A) is m x k (A is m x k with row stride lda, or k x m if ta == FNN_TRANS); op(B) is k x n
 * (likewise with tb). C is m x n with row stride ldc. bias is NULL or n floats added to every
 * row. act is an fnn_act other than FNN_ACT_SOFTMAX; act_alpha its parameter.
 * beta == 0: C is write-only (never read; it may hold NaN). C must not overlap A, B or bias.
 * Each element of C is reduced over k in one fixed order whatever n_threads is, so results are
 * bitwise identical for every thread count.
 * Returns FNN_OK, FNN_ERR_ARG (NULL pointer with nonzero size, negative dim, ld too small,
 * softmax epilogue) or FNN_ERR_NOMEM.
 */
typedef enum { FNN_NOTRANS = 0, FNN_TRANS = 1 } fnn_trans;

fnn_status fnn_gemm_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float beta, float *c, int64_t ldc, int n_threads);

fnn_status fnn_gemm_ex_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
                           fnn_act act, float act_alpha, int n_threads);

/* Which GEMM path runs: FNN_GEMM_AUTO (by problem size), or forced to the packed (BLIS) path or
 * to the unpacked small-problem path. For tests and benchmarks; set between calls. */
typedef enum {
    FNN_GEMM_AUTO = 0,
    FNN_GEMM_PACKED = 1,
    FNN_GEMM_SUP = 2,
    FNN_GEMM_NARROW = 3, /* for n <= 16 on ISAs with a narrow kernel; else as FNN_GEMM_SUP */
} fnn_gemm_path;
void fnn_gemm_set_path(fnn_gemm_path path);

/* The blocking the selected ISA uses (for tests that probe block edges and for `info`). */
typedef struct {
    int64_t mr, nr, mc, kc, nc;
} fnn_gemm_blocking;

fnn_gemm_blocking fnn_gemm_get_blocking(void);

/* ---------------------------------------------------------------------------------------------
 * Element-wise kernels of a dense network: activations and their gradients, bias gradient,
 * fused softmax / sigmoid cross-entropy, optimizer updates, dropout (csrc/eltwise*.c, loss.c,
 * optim.c, dropout.c). All arrays are contiguous float32 unless stated otherwise.
 * Threads split arrays at multiples of 64 elements (whole rows for row-wise ops) and every
 * reduction has one fixed order, so results are bitwise identical for every n_threads.
 * Element-wise results may differ between ISAs by a few ulp (vector exp/tanh/erf), never with
 * an element's position: the GEMM epilogue and a separate fnn_act_fwd_f32 pass give the same
 * bits. Optimizer updates and dropout are bitwise identical on every ISA.
 */

/* y = act(x) over rows x cols. Softmax normalises each row (cols elements, max-subtracted);
 * the others are element-wise. y may be x itself (in place) but must not overlap it otherwise.
 * NaN propagates; act_alpha as for the GEMM epilogue (leaky_relu slope, elu alpha).
 * Returns FNN_OK or FNN_ERR_ARG (negative size, NULL with nonzero size, unknown act). */
fnn_status fnn_act_fwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                           const float *x, float *y, int n_threads);

/* dx = dL/dpreact, given y = act(preact) and dy = dL/dy, all rows x cols. Overwrites dx.
 * From y: relu (dy where y > 0), sigmoid dy*y*(1-y), tanh dy*(1-y)(1+y), elu (dy*(y+alpha) where
 * y <= 0), leaky_relu (alpha*dy where y <= 0), softmax y*(dy - sum_row(dy*y)); elu and
 * leaky_relu need act_alpha >= 0 (y > 0 exactly where preact > 0). From preact: gelu
 * (exact erf form); preact may be NULL for every other act. linear: dx = dy.
 * A NaN in y (or preact for gelu) gives NaN in dx. dx may be dy itself; it must not overlap
 * preact or y. Returns FNN_OK or FNN_ERR_ARG (also: gelu without preact, act_alpha < 0). */
fnn_status fnn_act_bwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                           const float *preact, const float *y, const float *dy, float *dx,
                           int n_threads);

/* db[j] = sum_i dy[i][j] over rows x cols (the bias gradient). Overwrites db (cols floats),
 * which must not overlap dy. Each column is summed in blocks of 64 rows, the block sums then
 * added in row order: one fixed order. Returns FNN_OK or FNN_ERR_ARG. */
fnn_status fnn_bias_grad_f32(int64_t rows, int64_t cols, const float *dy, float *db,
                             int n_threads);

/* Softmax cross-entropy on logits z (batch x classes), fused and max-subtracted:
 *   loss = mean_i(lse_i * sum_j t_ij - sum_j t_ij z_ij),  lse_i = log sum_j exp(z_ij),
 *   grad = (softmax(z_i) * sum_j t_ij - t_i) / batch, i.e. (softmax - onehot) / batch.
 * Sparse form: labels are int64 class indices (batch,), t = onehot(labels). Dense form: labels
 * are float targets (batch x classes), one-hot or soft. *loss receives the mean (accumulated in
 * double, per-row terms summed in a fixed order; 0 when batch == 0). grad may be NULL (loss
 * only); it must not overlap logits or labels. Returns FNN_OK or FNN_ERR_ARG (also: a sparse
 * label outside [0, classes), in which case grad and *loss are unspecified). */
fnn_status fnn_softmax_xent_sparse_f32(int64_t batch, int64_t classes, const float *logits,
                                       const int64_t *labels, float *grad, double *loss,
                                       int n_threads);
fnn_status fnn_softmax_xent_dense_f32(int64_t batch, int64_t classes, const float *logits,
                                      const float *labels, float *grad, double *loss,
                                      int n_threads);

/* Sigmoid binary cross-entropy on n logits z with targets t (stable form):
 *   loss = mean(max(z, 0) - z*t + log1p(exp(-|z|))),  grad = (sigmoid(z) - t) / n.
 * grad may be NULL; it must not overlap logits or labels. Returns FNN_OK or FNN_ERR_ARG. */
fnn_status fnn_sigmoid_bce_f32(int64_t n, const float *logits, const float *labels,
                               float *grad, double *loss, int n_threads);

/* Optimizer updates (Keras 3 rules), one fused pass over n parameters, in place. The
 * hyperparameters are doubles and become float32 constants as Keras computes them (1 - beta_1
 * in double, then rounded); the per-element arithmetic is float32 in Keras's operation order,
 * without FMA contraction, so every ISA gives the same bits. Slot arrays (velocity, m, v, ms,
 * mom) must not overlap param or grad or each other.
 *
 * SGD: momentum == 0 (velocity may be NULL): w -= lr*g. Otherwise v = momentum*v - lr*g, then
 *   w += v, or with nesterov w += momentum*v - lr*g.
 * Adam: step >= 1 counts updates. alpha = lr*sqrt(1 - beta_2^step) / (1 - beta_1^step) (float32
 *   powf); m += (g - m)*(1 - beta_1); v += (g*g - v)*(1 - beta_2);
 *   w -= m*alpha / (sqrt(v) + epsilon).
 * RMSprop (centered=False): ms = rho*ms + (1 - rho)*(g*g); inc = lr*g / sqrt(ms + epsilon);
 *   momentum > 0: mom = momentum*mom + inc, w -= mom (mom may be NULL when momentum == 0);
 *   else w -= inc.
 * Return FNN_OK or FNN_ERR_ARG (NULL array, n < 0, step < 1). */
fnn_status fnn_sgd_update_f32(int64_t n, float *param, const float *grad, float *velocity,
                              double lr, double momentum, int nesterov, int n_threads);
fnn_status fnn_adam_update_f32(int64_t n, float *param, const float *grad, float *m, float *v,
                               double lr, double beta_1, double beta_2, double epsilon,
                               int64_t step, int n_threads);
fnn_status fnn_rmsprop_update_f32(int64_t n, float *param, const float *grad, float *ms,
                                  float *mom, double lr, double rho, double momentum,
                                  double epsilon, int n_threads);

/* The same updates fused with the weight gradient that feeds them: G = op(A) op(B) (m x n, k
 * deep, A and B as in fnn_gemm_f32), and param (m x n, C order; slots likewise) is updated by
 * the rule above with grad = G, one tile at a time, as each tile of G is finished, so G is
 * never stored (a dense layer's dW = x^T dz goes straight into its optimizer step; past
 * k = 4 kc, a batch of thousands, and for problems small or narrow enough for the GEMM's
 * unpacked paths, G goes through a temporary m x n buffer). Bits: each element gets the rule's
 * exact arithmetic on a G element reduced over k in a fixed order, the same for every thread
 * count; identical to fnn_gemm_f32 followed by the update except for a large problem with
 * kc < k <= 4 kc (kc = 512 with AVX-512, 256 otherwise), where it is within float32 rounding
 * of it. k == 0 applies the rule with G = 0. param and the slots must not overlap A or B.
 * FNN_OK, FNN_ERR_ARG or FNN_ERR_NOMEM. */
fnn_status fnn_gemm_sgd_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            float *param, float *velocity, double lr, double momentum,
                            int nesterov, int n_threads);
fnn_status fnn_gemm_adam_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                             const float *a, int64_t lda, const float *b, int64_t ldb,
                             float *param, float *m_slot, float *v_slot, double lr,
                             double beta_1, double beta_2, double epsilon, int64_t step,
                             int n_threads);
fnn_status fnn_gemm_rmsprop_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                                const float *a, int64_t lda, const float *b, int64_t ldb,
                                float *param, float *ms, float *mom, double lr, double rho,
                                double momentum, double epsilon, int n_threads);

/* Inverted dropout over n elements, 0 <= rate < 1. Element i is kept when the 32-bit word i
 * of the counter-based stream keyed by seed (splitmix64 of seed, then of seed-key + counter)
 * is >= round(rate * 2^32), so the mask depends on (seed, i) only: the same for every thread
 * count and ISA. mask[i] = 1 (kept) or 0; y = x * mask * scale with scale = float(1/(1-rate))
 * (a dropped NaN stays NaN). y may be x itself.
 * Backward: dx = dy * mask * scale (overwrites dx; dx may be dy itself).
 * Return FNN_OK or FNN_ERR_ARG (rate outside [0, 1), NULL with n > 0). */
fnn_status fnn_dropout_fwd_f32(int64_t n, const float *x, float rate, uint64_t seed,
                               uint8_t *mask, float *y, int n_threads);
fnn_status fnn_dropout_bwd_f32(int64_t n, const float *dy, const uint8_t *mask, float rate,
                               float *dx, int n_threads);

/* ---------------------------------------------------------------------------------------------
 * LSTM over a whole sequence (rnn_fwd.c, rnn_bwd.c). Keras's layout and gate order:
 *   x                 (batch, seq_len, input_size)
 *   kernel            (input_size, 4*hidden_size)    columns: gates i | f | g(c) | o
 *   recurrent_kernel  (hidden_size, 4*hidden_size)   same column order
 *   bias              (4*hidden_size) or NULL
 *   h0, c0            (batch, hidden_size) or NULL (zeros)
 *   h_mask            (batch, hidden_size) or NULL: multiplies h_{s-1} where it enters the
 *                     recurrent GEMM (Keras's recurrent dropout: a mask fixed over the
 *                     sequence, its 1/(1-rate) scale included); y, h_last stay unmasked
 * Step s (s = 0..seq_len-1) reads input time index tau(s) = s, or seq_len-1-s when go_backwards:
 *   z = x[:, tau] @ kernel + bias + (h_{s-1} * h_mask) @ recurrent_kernel
 *   i = ract(z_i), f = ract(z_f), g = act(z_g), o = ract(z_o)      (ract: recurrent_activation)
 *   c_s = f * c_{s-1} + i * g,   h_s = o * act(c_s)
 * Outputs are in processing order (Keras's go_backwards returns the reversed sequence):
 *   y (batch, seq_len, hidden_size) holds h_s at [:, s]; h_last = h_{T-1}, c_last = c_{T-1}.
 * act and ract: FNN_ACT_TANH, FNN_ACT_SIGMOID, FNN_ACT_RELU or FNN_ACT_LINEAR
 * (others: FNN_ERR_UNSUPPORTED). Keras's defaults are act = tanh, ract = sigmoid.
 */
typedef struct {
    int64_t batch, seq_len, input_size, hidden_size;
    fnn_act activation;
    fnn_act recurrent_activation;
    int go_backwards; /* 0 or 1 */
} fnn_lstm_desc;

/* Forward over the whole sequence: one GEMM projects every step's input (x @ kernel + bias over
 * batch*seq_len rows), then per step one recurrent GEMM h_{s-1} @ recurrent_kernel and one
 * fused pass for the gate activations and the c/h update.
 * Inference: gates == NULL and c_seq == NULL; nothing is saved. y, h_last, c_last: any may be
 * NULL (not written).
 * Training: gates and c_seq non-NULL and y non-NULL. The forward then saves exactly what
 * fnn_lstm_bwd_f32 needs and nothing else:
 *   y      (batch, seq_len, hidden_size)      h_s (also the output sequence)
 *   c_seq  (batch, seq_len, hidden_size)      c_s
 *   gates  (batch, seq_len, 4*hidden_size)    activated i, f, g, o of step s at time tau(s)
 *   (plus the caller's own x, kernel, recurrent_kernel, h0, c0). act(c_s) is recomputed.
 * Outputs must not overlap inputs or each other. Runs on up to n_threads threads; results are
 * bitwise identical for every n_threads.
 * Returns FNN_OK, FNN_ERR_ARG (negative size, NULL required pointer, training buffers given
 * partly), FNN_ERR_UNSUPPORTED (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_lstm_fwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                            const float *recurrent_kernel, const float *bias, const float *h0,
                            const float *c0, const float *h_mask, float *y, float *h_last,
                            float *c_last, float *gates, float *c_seq, int n_threads);

/* Backward through time of a training forward with the same desc and inputs.
 * Inputs: x, kernel, recurrent_kernel, h0, c0 (NULL: zeros), h_mask (NULL: none) and the
 * saved y, c_seq; gates is IN/OUT: read as saved, then OVERWRITTEN with dL/dz (same layout),
 * so a forward's buffers serve one backward only. Output gradients: dy (batch, seq_len, hidden_size) or NULL (zero),
 * dh_last, dc_last (batch, hidden_size) or NULL (zero).
 * Gradients, all OVERWRITTEN (never accumulated): dx (batch, seq_len, input_size), dkernel,
 * drecurrent_kernel, dbias (4*hidden_size), dh0, dc0 (batch, hidden_size); dx, dbias, dh0 and
 * dc0 may be NULL (not computed). Per step: the fused gate-gradient pass, then
 * dh_{s-1} = dz_s @ recurrent_kernel^T and dx[:, tau(s)] = dz_s @ kernel^T; after the loop one
 * GEMM over every step gives dkernel = x^T @ dz, drecurrent_kernel = h_prev^T @ dz and dbias.
 * Outputs must not overlap inputs or each other. Bitwise identical for every n_threads.
 * Returns FNN_OK, FNN_ERR_ARG, FNN_ERR_UNSUPPORTED (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_lstm_bwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                            const float *recurrent_kernel, const float *h0, const float *c0,
                            const float *h_mask, const float *y, const float *c_seq,
                            float *gates, const float *dy, const float *dh_last,
                            const float *dc_last, float *dx, float *dkernel,
                            float *drecurrent_kernel, float *dbias, float *dh0, float *dc0,
                            int n_threads);

/* ---------------------------------------------------------------------------------------------
 * 2-D convolution. Activations NHWC: x (batch, h, w, c_in), y (batch, out_h, out_w, c_out).
 * Weights HWIO, the Keras kernel layout: w (kh, kw, c_in, c_out). Cross-correlation, as Keras:
 *   y[n, oy, ox, co] = act(bias[co] + sum_{i, j, ci} x[n, oy*stride_h + i*dil_h - pad_top,
 *                                                   ox*stride_w + j*dil_w - pad_left, ci]
 *                                                  * w[i, j, ci, co])
 * with x taken as 0 outside [0, h) x [0, w). pad_top / pad_left are the zero rows and columns
 * before the image; the padding after it is whatever out_h / out_w reach.
 */
typedef enum {
    FNN_PADDING_VALID = 0,  /* no padding: out = floor((in - (k-1)*dil - 1) / stride) + 1 */
    FNN_PADDING_SAME = 1,   /* out = ceil(in / stride); total padding max((out-1)*stride +
                               (k-1)*dil + 1 - in, 0), the odd one at the bottom / right as TF */
    FNN_PADDING_CAUSAL = 2, /* (k-1)*dil before, none after: out = ceil(in / stride) (Conv1D) */
} fnn_padding;

typedef struct {
    int64_t batch, h, w, c_in; /* input */
    int64_t c_out, kh, kw;     /* weights (kh, kw, c_in, c_out) */
    int64_t stride_h, stride_w, dil_h, dil_w;
    int64_t pad_top, pad_left; /* zeros before the image */
    int64_t out_h, out_w;      /* output grid */
} fnn_conv2d_desc;

/* Fills *d from the shapes and a padding rule. Returns FNN_ERR_ARG for a negative size, a
 * kernel, stride or dilation < 1, an unknown rule, or a 'valid' kernel larger than the input. */
fnn_status fnn_conv2d_desc_init(fnn_conv2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                int64_t c_in, int64_t c_out, int64_t kh, int64_t kw,
                                int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w,
                                fnn_padding padding);

/* Checks a descriptor filled by hand (any pads >= 0 and out sizes >= 0 are valid). */
fnn_status fnn_conv2d_desc_check(const fnn_conv2d_desc *d);

/* Forward: y = act(conv(x, w) + bias) as above. bias: NULL or c_out floats. act: any fnn_act
 * but FNN_ACT_SOFTMAX. y is write-only (may hold NaN) and must not overlap x, w or bias.
 * Returns FNN_OK, FNN_ERR_ARG (bad descriptor, NULL with nonzero size, softmax) or
 * FNN_ERR_NOMEM. Bitwise identical results for every n_threads. */
fnn_status fnn_conv2d_fwd_f32(const fnn_conv2d_desc *d, const float *x, const float *w,
                              const float *bias, fnn_act act, float act_alpha, float *y,
                              int n_threads);

/* Backward to the input: dx = d(sum(dy * y_linear)) / dx, i.e. the transposed convolution of
 * dy (batch, out_h, out_w, c_out) with w, shape (batch, h, w, c_in). dx is OVERWRITTEN (never
 * read) and must not overlap dy or w. Bitwise identical for every n_threads. */
fnn_status fnn_conv2d_bwd_data_f32(const fnn_conv2d_desc *d, const float *dy, const float *w,
                                   float *dx, int n_threads);

/* Backward to the weights and bias: dw (kh, kw, c_in, c_out) = sum over batch and output
 * pixels of x-patch (outer) dy; db (c_out) = sum of dy over batch and pixels (db may be NULL).
 * dw and db are OVERWRITTEN and must not overlap x or dy. The sum over pixels is split into
 * groups fixed by the shapes alone and added in a fixed order: bitwise identical results for
 * every n_threads. */
fnn_status fnn_conv2d_bwd_filter_f32(const fnn_conv2d_desc *d, const float *x, const float *dy,
                                     float *dw, float *db, int n_threads);

/* ---------------------------------------------------------------------------------------------
 * 2-D pooling, NHWC: x (batch, h, w, c), y (batch, out_h, out_w, c). Output pixel (oy, ox)
 * pools the window rows [oy*stride_h - pad_top, + pool_h) x columns [ox*stride_w - pad_left,
 * + pool_w) clipped to the image: padding is never part of a window (max ignores it, average
 * divides by the pixels inside the image, as Keras / TF). Global pooling is the window
 * (h, w) with 'valid' padding. Every window must hold at least one pixel (desc_check).
 */
typedef struct {
    int64_t batch, h, w, c;
    int64_t pool_h, pool_w, stride_h, stride_w;
    int64_t pad_top, pad_left, out_h, out_w;
} fnn_pool2d_desc;

/* Fills *d ('valid': out = floor((in - pool) / stride) + 1; 'same': out = ceil(in / stride)).
 * FNN_ERR_ARG: negative size, pool or stride < 1, causal padding, or a 'valid' pool larger
 * than the input. */
fnn_status fnn_pool2d_desc_init(fnn_pool2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                int64_t c, int64_t pool_h, int64_t pool_w, int64_t stride_h,
                                int64_t stride_w, fnn_padding padding);

/* Checks a descriptor filled by hand: sizes >= 0, pool and stride >= 1, every window
 * non-empty, h * w < 2^31 (argmax indices are int32). */
fnn_status fnn_pool2d_desc_check(const fnn_pool2d_desc *d);

/* Max pooling. y = the window maximum per channel; NaN propagates (a window holding a NaN gives
 * NaN). argmax (NULL, or int32 shaped as y) receives the input pixel of the maximum as
 * iy * w + ix within its image: the first maximum, or the last NaN; a window of -inf or of
 * NaN gives one of its own pixels, never an index outside the window. y and argmax are
 * write-only and must not overlap x. */
fnn_status fnn_maxpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                 int32_t *argmax, int n_threads);

/* Max pooling backward: dx[n, p, ch] = sum of dy[n, o, ch] over the outputs o whose argmax
 * is p. dx is OVERWRITTEN (every element written once: bitwise identical for any n_threads). */
fnn_status fnn_maxpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy,
                                 const int32_t *argmax, float *dx, int n_threads);

/* Average pooling: y = mean over the window's pixels inside the image. */
fnn_status fnn_avgpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                 int n_threads);

/* Average pooling backward: dx[p] = sum over windows o holding p of dy[o] / |window o|.
 * dx is OVERWRITTEN. */
fnn_status fnn_avgpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy, float *dx,
                                 int n_threads);

/* ---------------------------------------------------------------------------------------------
 * SimpleRNN (Elman) over a whole sequence (rnn_*.c, the LSTM's driver with one gate per unit).
 * Keras's layout: x (batch, seq_len, input_size), kernel (input_size, hidden_size),
 * recurrent_kernel (hidden_size, hidden_size), bias (hidden_size) or NULL, h0 and h_mask
 * (batch, hidden_size) or NULL, as the LSTM's. Per step s, with tau(s) as the LSTM's:
 *   h_s = act(x[:, tau] @ kernel + bias + (h_{s-1} * h_mask) @ recurrent_kernel)
 * desc->recurrent_activation is not used (but must be a supported code); act as the LSTM's.
 */
typedef fnn_lstm_desc fnn_rnn_desc;

/* Forward: y (batch, seq_len, hidden_size) holds h_s at [:, s] (processing order) or NULL;
 * h_last = h_{T-1} or NULL. Training needs nothing but y (fnn_simple_rnn_bwd_f32 reads h_s
 * there). Outputs must not overlap inputs or each other. Bitwise identical for every n_threads.
 * Returns FNN_OK, FNN_ERR_ARG, FNN_ERR_UNSUPPORTED (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_simple_rnn_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *bias,
                                  const float *h0, const float *h_mask, float *y, float *h_last,
                                  int n_threads);

/* Backward through time of a forward with the same desc and inputs, from its y. dy
 * (batch, seq_len, hidden_size) and dh_last (batch, hidden_size): output gradients or NULL
 * (zero). Gradients, all OVERWRITTEN: dx (batch, seq_len, input_size), dkernel,
 * drecurrent_kernel, dbias (hidden_size), dh0 (batch, hidden_size); dx, dbias and dh0 may be
 * NULL (not computed). Per step: dz_s = (dh_s + dy_s) * act'(h_s), dh_{s-1} = dz_s @
 * recurrent_kernel^T (times h_mask), dx[:, tau] = dz_s @ kernel^T; then one GEMM over every
 * step for the weight gradients. Bitwise identical for every n_threads.
 * Returns FNN_OK, FNN_ERR_ARG, FNN_ERR_UNSUPPORTED (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_simple_rnn_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *h0,
                                  const float *h_mask, const float *y, const float *dy,
                                  const float *dh_last, float *dx, float *dkernel,
                                  float *drecurrent_kernel, float *dbias, float *dh0,
                                  int n_threads);

/* ---------------------------------------------------------------------------------------------
 * GRU over a whole sequence (rnn_*.c, the LSTM's driver with three gates), Keras's reset_after=True
 * variant and layout: kernel (input_size, 3*hidden_size) and recurrent_kernel (hidden_size,
 * 3*hidden_size), columns z | r | h; bias (2, 3*hidden_size): input bias, then recurrent bias,
 * or NULL. h0, h_mask as the LSTM's. Per step s, with tau(s) as the LSTM's:
 *   x_q = x[:, tau] @ kernel_q + bias[0]_q,   h_q = (h_{s-1} * h_mask) @ U_q + bias[1]_q
 *   z = ract(x_z + h_z),  r = ract(x_r + h_r),  hh = act(x_h + r * h_h)
 *   h_s = z * h_{s-1} + (1 - z) * hh               (h_{s-1} unmasked here, as Keras)
 */

/* Forward: y (batch, seq_len, hidden_size) holds h_s (processing order) or NULL; h_last or
 * NULL. Inference: gates == NULL and hn_seq == NULL. Training: y, gates (batch, seq_len,
 * 3*hidden_size) and hn_seq (batch, seq_len, hidden_size): z, r, hh and h_h of step s at
 * time tau(s), what fnn_gru_bwd_f32 needs. Outputs must not overlap inputs or each other.
 * Bitwise identical for every n_threads. Returns FNN_OK, FNN_ERR_ARG, FNN_ERR_UNSUPPORTED
 * (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_gru_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *bias, const float *h0,
                           const float *h_mask, float *y, float *h_last, float *gates,
                           float *hn_seq, int n_threads);

/* Backward through time of a training forward with the same desc and inputs. gates and
 * hn_seq are IN/OUT: read as saved, then OVERWRITTEN (with dL/d(x-part pre-activations) and
 * dL/dh_h), so a forward's buffers serve one backward only. dy, dh_last: output gradients or
 * NULL (zero). Gradients, all OVERWRITTEN: dx, dkernel, drecurrent_kernel, dbias
 * (2, 3*hidden_size), dh0; dx, dbias and dh0 may be NULL. Per step: the fused pass, then
 * dh_{s-1} = dzh @ recurrent_kernel^T (times h_mask) + (dh_s + dy_s) * z and dx[:, tau] =
 * dzx @ kernel^T, where dzh is dzx with its h columns times r; after the loop four GEMMs
 * over every step give the weight gradients. Bitwise identical for every n_threads.
 * Returns FNN_OK, FNN_ERR_ARG, FNN_ERR_UNSUPPORTED (activation) or FNN_ERR_NOMEM. */
fnn_status fnn_gru_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *h0, const float *h_mask,
                           const float *y, float *gates, float *hn_seq, const float *dy,
                           const float *dh_last, float *dx, float *dkernel,
                           float *drecurrent_kernel, float *dbias, float *dh0, int n_threads);

#ifdef __cplusplus
}
#endif

#endif /* FASTNN_H */
