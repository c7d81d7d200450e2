/* internal.h - private declarations shared by the kernel files. Not installed, not public. */
#ifndef FASTNN_INTERNAL_H
#define FASTNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fastnn.h"

#if defined(_MSC_VER)
#define FNN_RESTRICT __restrict
#define FNN_TARGET_AVX2
#define FNN_TARGET_AVX512
#define FNN_ALIGNED(n) __declspec(align(n))
#else
#define FNN_RESTRICT __restrict__
#define FNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FNN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define FNN_ALIGNED(n) __attribute__((aligned(n)))
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define FNN_X86_64 1
#endif

/* ---------------------------------------------------------------------------------------------
 * Floating-point mode of kernel code: flush-to-zero (FTZ) and denormals-are-zero (DAZ) on,
 * unless fnn_set_flush_denormals(0) asked for IEEE gradual underflow. Without them a denormal (|x| < 2^-126 = 1.18e-38) input or result costs a microcode assist
 * of ~100+ cycles per instruction: bench/bench_denormals.py measured matmul 17x (ref) to 190x
 * (AVX-512) slower and the activations up to 60x slower on denormal inputs (Sapphire Rapids).
 * With them, numbers in the normal range give bit-identical results; a denormal input reads
 * as zero and a result below 2^-126 becomes zero (as TensorFlow, hence Keras, computes).
 * MXCSR is per thread: every thread that runs kernel code calls fnn_fp_enter() before and
 * fnn_fp_leave() after, inside each parallel region (OpenMP threads are shared with other
 * libraries) and around serial work on the caller's thread, which gets its mode back. The
 * places: gemm_part (gemm.c), fnn_parallel_ranges (eltwise.c: element-wise, loss, optimizer
 * and dropout kernels), the recurrent threads (rnn_*.c), the conv2d / winograd / wgrad regions and
 * the pooling loops. A new parallel region (or serial kernel loop) does the same. */
extern volatile int fnn_flush_denormals_flag; /* dispatch.c; fnn_set_flush_denormals() */
#if defined(FNN_X86_64)
#include <xmmintrin.h>
#define FNN_MXCSR_FTZ_DAZ 0x8040u /* bit 15 flush-to-zero, bit 6 denormals-are-zero */
static inline unsigned int fnn_fp_enter(void) {
    const unsigned int saved = _mm_getcsr();
    if (fnn_flush_denormals_flag) _mm_setcsr(saved | FNN_MXCSR_FTZ_DAZ);
    return saved;
}
static inline void fnn_fp_leave(unsigned int saved) { _mm_setcsr(saved); }
#else
static inline unsigned int fnn_fp_enter(void) { return 0; }
static inline void fnn_fp_leave(unsigned int saved) { (void)saved; }
#endif

#define FNN_ALIGN 64
#define FNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FNN_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int64_t fnn_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t fnn_round_up(int64_t a, int64_t b) { return fnn_ceil_div(a, b) * b; }

/* 64-byte aligned scratch memory; fnn_free(NULL) is a no-op. Never static: every call (and
 * every thread of a call) allocates its own, so threads may call in at once. */
void *fnn_malloc(size_t bytes);
void fnn_free(void *ptr);

/* Per-thread scratch, cached between calls: a 64-byte aligned buffer of at least `floats` floats
 * owned by the calling OS thread (so threads never share it), grown on demand and freed when the
 * thread exits. Saves an mmap + page faults per call on mid-size problems. Each slot is one
 * buffer: a kernel that calls the GEMM framework uses FNN_SCRATCH_OP for its own scratch, never
 * FNN_SCRATCH_GEMM. Returns NULL when out of memory. */
typedef enum { FNN_SCRATCH_GEMM = 0, FNN_SCRATCH_OP = 1, FNN_SCRATCH_SLOTS = 2 } fnn_scratch_slot;
float *fnn_thread_scratch(fnn_scratch_slot slot, int64_t floats);

/* ---------------------------------------------------------------------------------------------
 * GEMM micro-kernel contract.
 * Computes one full MR x NR tile: C = alpha * Ap @ Bp + beta * C, where
 *   Ap is a packed A micro-panel: kc steps of MR floats (column p of the tile's A rows),
 *   Bp is a packed B micro-panel: kc steps of NR floats (row p of the tile's B columns),
 * both 64-byte aligned and zero-padded by the packing, so the k-loop never branches.
 * C has row stride ldc (elements). beta == 0: C is never read. kc may be 0 (then C = beta * C,
 * or 0 if beta == 0). Single-threaded; takes no sizes but kc and ldc.
 */
typedef void (*fnn_gemm_ukr_fn)(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                                const float *FNN_RESTRICT bp, float beta, float *FNN_RESTRICT c,
                                int64_t ldc);

void fnn_gemm_ukr_f32_ref_4x16(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                               const float *FNN_RESTRICT bp, float beta, float *FNN_RESTRICT c,
                               int64_t ldc);
void fnn_gemm_ukr_f32_avx2_6x16(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                                const float *FNN_RESTRICT bp, float beta, float *FNN_RESTRICT c,
                                int64_t ldc);
void fnn_gemm_ukr_f32_avx512_12x32(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                                   const float *FNN_RESTRICT bp, float beta,
                                   float *FNN_RESTRICT c, int64_t ldc);
void fnn_gemm_ukr_f32_avx512_8x32(int64_t kc, float alpha, const float *FNN_RESTRICT ap,
                                  const float *FNN_RESTRICT bp, float beta,
                                  float *FNN_RESTRICT c, int64_t ldc);

/* Small-problem ("sup", after BLIS) micro-kernel contract: the same full MR x NR tile
 * C = alpha * A @ B + beta * C from UNPACKED operands: A(i, p) = a[i*rs_a + p*cs_a] and
 * B(p, j) = b[p*rs_b + j] (rows of B contiguous). All mr rows of A and nr columns of B must be
 * readable: the framework packs edge panels. beta == 0: C is never read. Single-threaded. */
typedef void (*fnn_gemm_sup_fn)(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                                int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                                int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc);

void fnn_gemm_sup_f32_ref_4x16(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                               int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                               int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc);
void fnn_gemm_sup_f32_avx2_6x16(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                                int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                                int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc);
void fnn_gemm_sup_f32_avx512_8x32(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                                  int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                                  int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc);

/* Narrow micro-kernel contract, for n <= nr (a dense layer with few outputs): rows [0, MR) and
 * columns [0, n_valid) of C = alpha * A @ B + beta * C, operands as for fnn_gemm_sup_fn except
 * that only the n_valid columns of B and C are touched (masked loads and stores), so B and C
 * need no padding. All MR rows of A must be readable. */
typedef void (*fnn_gemm_narrow_fn)(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                                   int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                                   int64_t rs_b, float beta, float *FNN_RESTRICT c, int64_t ldc,
                                   int64_t n_valid);

void fnn_gemm_narrow_f32_avx512_16xn(int64_t kc, float alpha, const float *FNN_RESTRICT a,
                                     int64_t rs_a, int64_t cs_a, const float *FNN_RESTRICT b,
                                     int64_t rs_b, float beta, float *FNN_RESTRICT c,
                                     int64_t ldc, int64_t n_valid);

/* Transposing pack contract: dst[kk*width + r] = src[r*ld + kk] for r < rows and kk < kc;
 * zero for rows <= r < width. Packs A's rows (width mr) and a transposed B's columns (width nr)
 * into k-major micro-panels. rows <= width. */
typedef void (*fnn_gemm_pack_t_fn)(const float *FNN_RESTRICT src, int64_t ld, int64_t rows,
                                   int64_t kc, int64_t width, float *FNN_RESTRICT dst);

void fnn_gemm_pack_t_f32_ref(const float *FNN_RESTRICT src, int64_t ld, int64_t rows,
                             int64_t kc, int64_t width, float *FNN_RESTRICT dst);
void fnn_gemm_pack_t_f32_avx512(const float *FNN_RESTRICT src, int64_t ld, int64_t rows,
                                int64_t kc, int64_t width, float *FNN_RESTRICT dst);

/* Largest register tile of any ISA: sizes the stack tile used for edge tiles. */
#define FNN_GEMM_MAX_MR 16 /* also the narrow kernel's rows */
#define FNN_GEMM_MAX_NR 32

/* Block sizes and micro-kernels of one ISA. mc is a multiple of mr, nc a multiple of nr.
 * Problems of at most sup_max_work multiply-adds take the unpacked sup path (sup_mr x sup_nr);
 * problems with n <= narrow_nr take the narrow kernel when the ISA has one (narrow != NULL). */
typedef struct {
    int64_t mr, nr, mc, kc, nc;
    fnn_gemm_ukr_fn ukr;
    int64_t sup_mr, sup_nr;
    double sup_max_work;
    fnn_gemm_sup_fn sup;
    int64_t narrow_mr, narrow_nr;
    fnn_gemm_narrow_fn narrow;
    fnn_gemm_pack_t_fn pack_t;
    /* A packed kernel of fewer rows (mr_small x nr; NULL if none), for callers that tile a
     * fixed small row count themselves (the LSTM's batch: 64 rows are 8 x 8, 6 x 12 - 8). */
    int64_t mr_small;
    fnn_gemm_ukr_fn ukr_small;
} fnn_gemm_cfg;

/* ---------------------------------------------------------------------------------------------
 * Element-wise kernels of one ISA. Each works on n contiguous floats; y may alias x.
 */
typedef void (*fnn_act_fwd_fn)(fnn_act act, float act_alpha, const float *x, float *y,
                               int64_t n);

void fnn_act_fwd_f32_ref(fnn_act act, float act_alpha, const float *x, float *y, int64_t n);

/* ---------------------------------------------------------------------------------------------
 * More element-wise kernels of one ISA (eltwise*.c, optim.c, dropout.c). Each is
 * single-threaded and works on n contiguous elements; the public wrappers split work between
 * threads. act_fwd / act_bwd take any fnn_act but softmax (row-wise: see eltwise.c). The
 * scalar formulas live in eltwise_scalar.h (ref kernels); the vector kernels mask their last
 * partial vector, so an element's result never depends on its position in the array.
 */
typedef void (*fnn_act_bwd_fn)(fnn_act act, float act_alpha, const float *preact,
                               const float *y, const float *dy, float *dx, int64_t n);
/* Largest of x[0..n), n >= 1 (NaN handling: unspecified, the caller's exp sum propagates it). */
typedef float (*fnn_row_max_fn)(const float *x, int64_t n);
/* y[i] = exp(x[i] - shift); returns sum_i y[i], lanes summed in a fixed order. y may be x. */
typedef float (*fnn_exp_sum_fn)(const float *x, float shift, float *y, int64_t n);
/* sum_i a[i] * b[i], lanes summed in a fixed order. */
typedef float (*fnn_dot_fn)(const float *a, const float *b, int64_t n);

void fnn_act_bwd_f32_ref(fnn_act act, float act_alpha, const float *preact, const float *y,
                         const float *dy, float *dx, int64_t n);
float fnn_row_max_f32_ref(const float *x, int64_t n);
float fnn_exp_sum_f32_ref(const float *x, float shift, float *y, int64_t n);
float fnn_dot_f32_ref(const float *a, const float *b, int64_t n);
void fnn_act_fwd_f32_avx2(fnn_act act, float act_alpha, const float *x, float *y, int64_t n);
void fnn_act_bwd_f32_avx2(fnn_act act, float act_alpha, const float *preact, const float *y,
                          const float *dy, float *dx, int64_t n);
float fnn_row_max_f32_avx2(const float *x, int64_t n);
float fnn_exp_sum_f32_avx2(const float *x, float shift, float *y, int64_t n);
float fnn_dot_f32_avx2(const float *a, const float *b, int64_t n);
void fnn_act_fwd_f32_avx512(fnn_act act, float act_alpha, const float *x, float *y, int64_t n);
void fnn_act_bwd_f32_avx512(fnn_act act, float act_alpha, const float *preact, const float *y,
                            const float *dy, float *dx, int64_t n);
float fnn_row_max_f32_avx512(const float *x, int64_t n);
float fnn_exp_sum_f32_avx512(const float *x, float shift, float *y, int64_t n);
float fnn_dot_f32_avx512(const float *a, const float *b, int64_t n);

/* Optimizer updates over n elements with their float32 constants (optim.c computes them from
 * the double hyperparameters). Compiler-vectorized per ISA, never FMA-contracted: every ISA
 * gives the same bits. */
typedef struct {
    float lr, momentum;
    int nesterov;
} fnn_sgd_consts;
typedef struct {
    float alpha, one_minus_beta_1, one_minus_beta_2, epsilon;
} fnn_adam_consts;
typedef struct {
    float lr, rho, one_minus_rho, momentum, epsilon;
} fnn_rmsprop_consts;
typedef void (*fnn_sgd_fn)(const fnn_sgd_consts *c, int64_t n, float *param, const float *grad,
                           float *velocity);
typedef void (*fnn_adam_fn)(const fnn_adam_consts *c, int64_t n, float *param,
                            const float *grad, float *m, float *v);
typedef void (*fnn_rmsprop_fn)(const fnn_rmsprop_consts *c, int64_t n, float *param,
                               const float *grad, float *ms, float *mom);

void fnn_sgd_f32_ref(const fnn_sgd_consts *c, int64_t n, float *param, const float *grad,
                     float *velocity);
void fnn_adam_f32_ref(const fnn_adam_consts *c, int64_t n, float *param, const float *grad,
                      float *m, float *v);
void fnn_rmsprop_f32_ref(const fnn_rmsprop_consts *c, int64_t n, float *param,
                         const float *grad, float *ms, float *mom);
void fnn_sgd_f32_avx2(const fnn_sgd_consts *c, int64_t n, float *param, const float *grad,
                      float *velocity);
void fnn_adam_f32_avx2(const fnn_adam_consts *c, int64_t n, float *param, const float *grad,
                       float *m, float *v);
void fnn_rmsprop_f32_avx2(const fnn_rmsprop_consts *c, int64_t n, float *param,
                          const float *grad, float *ms, float *mom);
void fnn_sgd_f32_avx512(const fnn_sgd_consts *c, int64_t n, float *param, const float *grad,
                        float *velocity);
void fnn_adam_f32_avx512(const fnn_adam_consts *c, int64_t n, float *param, const float *grad,
                         float *m, float *v);
void fnn_rmsprop_f32_avx512(const fnn_rmsprop_consts *c, int64_t n, float *param,
                            const float *grad, float *ms, float *mom);

/* Threads worth waking for `work` streaming-element units (see eltwise.c), at most n_threads. */
int fnn_eltwise_threads(double work, int n_threads);

/* Calls fn(ctx, begin, end) on nt contiguous ranges covering [0, n), each starting at a
 * multiple of `align`, so the split (and a vector kernel's tail) never depends on nt beyond
 * which thread runs a range. Opens one parallel region when nt > 1. */
typedef void (*fnn_range_fn)(void *ctx, int64_t begin, int64_t end);
void fnn_parallel_ranges(int64_t n, int64_t align, int nt, fnn_range_fn fn, void *ctx);

/* Dropout forward over elements [i0, i0 + n) of an array (x, mask, y point at element i0; i0
 * even): mask[i] = word(key, i0 + i) >= threshold, y[i] = x[i] * (mask[i] ? scale : 0). */
typedef void (*fnn_dropout_fn)(uint64_t key, uint32_t threshold, float scale, int64_t i0,
                               int64_t n, const float *x, uint8_t *mask, float *y);
void fnn_dropout_f32_ref(uint64_t key, uint32_t threshold, float scale, int64_t i0, int64_t n,
                         const float *x, uint8_t *mask, float *y);
void fnn_dropout_f32_avx2(uint64_t key, uint32_t threshold, float scale, int64_t i0, int64_t n,
                          const float *x, uint8_t *mask, float *y);
void fnn_dropout_f32_avx512(uint64_t key, uint32_t threshold, float scale, int64_t i0,
                            int64_t n, const float *x, uint8_t *mask, float *y);

/* ---------------------------------------------------------------------------------------------
 * LSTM fused gate passes of one ISA (rnn_rows_ref.c, rnn_rows_avx2.c, rnn_rows_avx512.c). One call
 * handles n consecutive units of one batch row: each gate array points at the i gate of the
 * first unit, and the f, g, o gates sit at +stride, +2*stride, +3*stride (stride = hidden_size).
 * Every unit goes through the same arithmetic wherever it sits in the row (vector tails are
 * masked, never scalar), so results do not depend on how rows are split among threads.
 *   fwd: pre-activations (zx + bias) + zh: zx the input projection, bias (NULL: none; the
 *        same stride as zx) added to it first, zh the recurrent part (NULL: zero); activated
 *        i, f, g, o to gates (NULL: not stored; may alias zx). c_out = f*c_prev + i*g,
 *        h_out = o*act(c_out). c_prev may alias c_out.
 *   bwd: z in: activated gates; out: dL/dz. c = c_s, c_prev = c_{s-1}; dh = dL/dh_s from the
 *        next step, plus dy if dy != NULL; dc in: dL/dc_s from the next step; out: dL/dc_{s-1}.
 * act and ract are FNN_ACT_TANH, _SIGMOID, _RELU or _LINEAR (checked by the caller). */
typedef void (*fnn_lstm_fwd_row_fn)(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                                    const float *bias, const float *zh, float *gates,
                                    int64_t stride, const float *c_prev, float *c_out,
                                    float *h_out);
typedef void (*fnn_lstm_bwd_row_fn)(int64_t n, fnn_act act, fnn_act ract, float *z,
                                    int64_t stride, const float *c, const float *c_prev,
                                    const float *dy, const float *dh, float *dc);

void fnn_lstm_fwd_row_f32_ref(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                              const float *bias, const float *zh, float *gates, int64_t stride,
                              const float *c_prev, float *c_out, float *h_out);
void fnn_lstm_bwd_row_f32_ref(int64_t n, fnn_act act, fnn_act ract, float *z, int64_t stride,
                              const float *c, const float *c_prev, const float *dy,
                              const float *dh, float *dc);
void fnn_lstm_fwd_row_f32_avx2(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                               const float *bias, const float *zh, float *gates, int64_t stride,
                               const float *c_prev, float *c_out, float *h_out);
void fnn_lstm_bwd_row_f32_avx2(int64_t n, fnn_act act, fnn_act ract, float *z, int64_t stride,
                               const float *c, const float *c_prev, const float *dy,
                               const float *dh, float *dc);
void fnn_lstm_fwd_row_f32_avx512(int64_t n, fnn_act act, fnn_act ract, const float *zx,
                                 const float *bias, const float *zh, float *gates, int64_t stride,
                                 const float *c_prev, float *c_out, float *h_out);
void fnn_lstm_bwd_row_f32_avx512(int64_t n, fnn_act act, fnn_act ract, float *z,
                                 int64_t stride, const float *c, const float *c_prev,
                                 const float *dy, const float *dh, float *dc);

/* SimpleRNN and GRU fused passes of one ISA: n consecutive units of one batch row, the same
 * arithmetic for every unit wherever it sits (masked vector tails).
 *   fwd: h_out = act((zx + bias) + zh); bias (NULL: none) and zh (NULL: zero) as the LSTM's.
 *   bwd: dz = (dh + dy) * act'(h), from h = h_s; dy NULL: zero.
 *   gru_fwd: gates z, r, h at +0, +stride, +2*stride of zx (input projection), bias (input
 *        bias, NULL: none), zh (h_{s-1} @ U, NULL: zero), rbias (recurrent bias, NULL: none):
 *        x_q = zx_q + bias_q, h_q = zh_q + rbias_q; z = ract(x_z + h_z),
 *        r = ract(x_r + h_r), hh = act(x_h + r * h_h), h_out = z * h_prev + (1 - z) * hh.
 *        gates (NULL: not stored) gets z, r, hh and hn gets h_h (the candidate's recurrent
 *        part). h_out may be h_prev.
 *   gru_bwd: z in: saved z, r, hh; out: dL/dz for the input projection (dzx). hn in: saved
 *        h_h; out: dL/dh_h = dzx_h * r (the h columns of dzh; dzh's z, r columns are dzx's).
 *        dh_direct = (dh + dy) * z, the part of dL/dh_{s-1} not through U.
 * act and ract are FNN_ACT_TANH, _SIGMOID, _RELU or _LINEAR (checked by the caller). */
typedef struct {
    void (*fwd)(int64_t n, fnn_act act, const float *zx, const float *bias, const float *zh,
                float *h_out);
    void (*bwd)(int64_t n, fnn_act act, const float *h, const float *dy, const float *dh,
                float *dz);
    void (*gru_fwd)(int64_t n, fnn_act act, fnn_act ract, const float *zx, const float *bias,
                    const float *zh, const float *rbias, const float *h_prev, float *gates,
                    float *hn, int64_t stride, float *h_out);
    void (*gru_bwd)(int64_t n, fnn_act act, fnn_act ract, float *z, int64_t stride, float *hn,
                    const float *h_prev, const float *dy, const float *dh, float *dh_direct);
} fnn_rnn_rows;

/* One per ISA, defined next to its functions (rnn_rows_ref.c, _avx2.c, _avx512.c). */
extern const fnn_rnn_rows fnn_rnn_rows_ref, fnn_rnn_rows_avx2, fnn_rnn_rows_avx512;

/* ---------------------------------------------------------------------------------------------
 * conv2d micro-kernels. conv2d.c is their framework: it lays a band of the source image out so
 * that the pixels of a tile are lda floats apart and each filter tap is one offset (a_off[t]),
 * then reduces over taps and channels in registers. Contracts:
 *
 * Forward tile: MR output pixels x NR output channels, a batch-reduce over ntaps taps.
 *   acc[r][j] = sum_{t < ntaps} sum_{kk < kc} a[r*lda + a_off[t] + kk] * b[t][kk*NR + j]
 *   for r with c_rows[r] != NULL: c_rows[r][j] = acc[r][j] + (bias ? bias[j] : 0), j < n_valid.
 * All MR rows of a are read (the caller keeps them in bounds; rows with c_rows[r] == NULL are
 * computed and dropped). b[t] is a packed panel of kc steps of NR floats, 64-byte aligned and
 * zero past n_valid. ntaps or kc may be 0 (the tile is then the bias, or 0).
 */
typedef void (*fnn_conv_fwd_ukr_fn)(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                    const int64_t *a_off, const float *const *b,
                                    const float *bias, int64_t n_valid, float *const *c_rows);

/* Few-output tile (a layer with 1..8 output channels, or the input gradient of one with 1..8
 * input channels): MR pixels x n_out outputs, reduced along kc with vectors.
 *   c_rows[r][n] = sum_t sum_{kk < kc} a[r*lda + a_off[t] + kk] * w[t][n*ldw + kk]
 *                  + (bias ? bias[n] : 0),  for r with c_rows[r] != NULL, n < n_out.
 * a is read as in the forward tile; w[t] rows need no alignment. n_out <= FNN_CONV_DOT_MAX_N. */
#define FNN_CONV_DOT_MAX_N 8
typedef void (*fnn_conv_dot_ukr_fn)(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                    const int64_t *a_off, const float *const *w, int64_t ldw,
                                    const float *bias, int64_t n_out, float *const *c_rows);

/* Weight-gradient tile: MR rows (filter rows: input channels of one tap) x NR columns (output
 * channels), reduced over nseg segments of len steps each (a segment is one output row):
 *   acc[r][j] = sum_{s < nseg} sum_{kk < len} a[s*a_seg + kk*lda + r] * b[s*b_seg + kk*ldb + j]
 *   c[r*ldc + j] = (accumulate ? c[r*ldc + j] : 0) + acc[r][j],  r < m_valid, j < n_valid.
 * All MR floats of each a step are read (the caller keeps them in bounds); b only for
 * j < n_valid; c only for r < m_valid, j < n_valid. */
typedef void (*fnn_conv_wgrad_ukr_fn)(int64_t nseg, int64_t len, const float *a, int64_t lda,
                                      int64_t a_seg, const float *b, int64_t ldb, int64_t b_seg,
                                      int accumulate, float *c, int64_t ldc, int64_t m_valid,
                                      int64_t n_valid);

/* Winograd F(2x2, 3x3) transforms (conv2d_wino_<isa>.c), vectorized along c channels; every
 * pixel pointer is valid (the caller points missing input pixels at zeros and missing outputs
 * at a scratch row).
 *   in:   v[xi*ld + ch] = (B^T d B)[xi], d the 4x4 input patch of pixels pix[0..15];
 *   out:  pix[0..3] (the 2x2 output tile) = A^T m A + bias, m[xi*ld + ch];
 *   grad: dm[xi*ld + ch] = (A g A^T)[xi], g the 2x2 output-gradient tile pix[0..3];
 *   colsum: acc[j] += sum_{r < rows} x[r*ldx + j], j < cols, in an order fixed by rows
 *     (the ISAs may differ: AVX-512 sums even and odd rows apart). */
typedef void (*fnn_wino_in_fn)(const float *const *pix, int64_t c, float *v, int64_t ld);
typedef void (*fnn_wino_out_fn)(const float *m, int64_t ld, int64_t c, const float *bias,
                                float *const *pix);
typedef void (*fnn_wino_grad_fn)(const float *const *pix, int64_t c, float *dm, int64_t ld);
typedef void (*fnn_colsum_fn)(int64_t rows, int64_t cols, const float *x, int64_t ldx,
                              float *acc);

typedef struct {
    int64_t mr, nr; /* forward tile */
    fnn_conv_fwd_ukr_fn fwd;
    int64_t dot_mr; /* few-output tile (pixels) */
    fnn_conv_dot_ukr_fn dot;
    int64_t wg_mr, wg_nr; /* weight-gradient tile */
    fnn_conv_wgrad_ukr_fn wgrad;
    fnn_wino_in_fn wino_in;
    fnn_wino_out_fn wino_out;
    fnn_wino_grad_fn wino_grad;
    fnn_colsum_fn colsum;
} fnn_conv_cfg;

/* The Winograd transforms and colsum of each ISA (conv2d_wino_<isa>.c), for dispatch.c. */
typedef struct {
    fnn_wino_in_fn in;
    fnn_wino_out_fn out;
    fnn_wino_grad_fn grad;
    fnn_colsum_fn colsum;
} fnn_wino_fns;
extern const fnn_wino_fns fnn_wino_fns_ref;
#ifdef FNN_X86_64
extern const fnn_wino_fns fnn_wino_fns_avx2;
extern const fnn_wino_fns fnn_wino_fns_avx512;
#endif

void fnn_conv_fwd_ukr_f32_ref_4x16(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                   const int64_t *a_off, const float *const *b,
                                   const float *bias, int64_t n_valid, float *const *c_rows);
void fnn_conv_dot_ukr_f32_ref_4(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                const int64_t *a_off, const float *const *w, int64_t ldw,
                                const float *bias, int64_t n_out, float *const *c_rows);
void fnn_conv_wgrad_ukr_f32_ref_4x16(int64_t nseg, int64_t len, const float *a, int64_t lda,
                                     int64_t a_seg, const float *b, int64_t ldb, int64_t b_seg,
                                     int accumulate, float *c, int64_t ldc, int64_t m_valid,
                                     int64_t n_valid);
void fnn_conv_fwd_ukr_f32_avx2_6x16(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                    const int64_t *a_off, const float *const *b,
                                    const float *bias, int64_t n_valid, float *const *c_rows);
void fnn_conv_dot_ukr_f32_avx2_4(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                 const int64_t *a_off, const float *const *w, int64_t ldw,
                                 const float *bias, int64_t n_out, float *const *c_rows);
void fnn_conv_wgrad_ukr_f32_avx2_6x16(int64_t nseg, int64_t len, const float *a, int64_t lda,
                                      int64_t a_seg, const float *b, int64_t ldb, int64_t b_seg,
                                      int accumulate, float *c, int64_t ldc, int64_t m_valid,
                                      int64_t n_valid);
void fnn_conv_fwd_ukr_f32_avx512_12x32(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                       const int64_t *a_off, const float *const *b,
                                       const float *bias, int64_t n_valid, float *const *c_rows);
void fnn_conv_dot_ukr_f32_avx512_8(int64_t ntaps, int64_t kc, const float *a, int64_t lda,
                                   const int64_t *a_off, const float *const *w, int64_t ldw,
                                   const float *bias, int64_t n_out, float *const *c_rows);
void fnn_conv_wgrad_ukr_f32_avx512_12x32(int64_t nseg, int64_t len, const float *a, int64_t lda,
                                         int64_t a_seg, const float *b, int64_t ldb,
                                         int64_t b_seg, int accumulate, float *c, int64_t ldc,
                                         int64_t m_valid, int64_t n_valid);

/* Pooling rows (pool2d.c): one output row (forward) or one input row (backward) of one image,
 * all channels. The same C body compiled per ISA (vectorized along the channels). */
typedef void (*fnn_pool_fwd_row_fn)(const fnn_pool2d_desc *d, const float *x_img, int64_t oy,
                                    float *y_row, int32_t *idx_row);
/* cov[2*ix], cov[2*ix + 1]: the output columns [lo, hi) whose windows hold input column ix. */
typedef void (*fnn_pool_bwd_row_fn)(const fnn_pool2d_desc *d, const float *dy_img,
                                    const int32_t *idx_img, const int64_t *cov, int64_t iy,
                                    float *dx_row);
typedef struct {
    fnn_pool_fwd_row_fn max_fwd, avg_fwd; /* avg_fwd ignores idx_row */
    fnn_pool_bwd_row_fn max_bwd, avg_bwd; /* avg_bwd ignores idx_img */
} fnn_pool_cfg;

extern const fnn_pool_cfg fnn_pool_cfg_ref;
#ifdef FNN_X86_64
extern const fnn_pool_cfg fnn_pool_cfg_avx2;
extern const fnn_pool_cfg fnn_pool_cfg_avx512;
#endif

/* The kernel table of the selected ISA. Filled once per fnn_set_isa(); callers never see ISAs. */
typedef struct {
    fnn_isa isa;
    fnn_gemm_cfg gemm;
    fnn_act_fwd_fn act_fwd;
    /* element-wise kernels of a dense network (eltwise*.c, optim.c, dropout.c) */
    fnn_act_bwd_fn act_bwd;
    fnn_row_max_fn row_max;
    fnn_exp_sum_fn exp_sum;
    fnn_dot_fn dot;
    fnn_sgd_fn sgd;
    fnn_adam_fn adam;
    fnn_rmsprop_fn rmsprop;
    fnn_dropout_fn dropout;
    /* LSTM (rnn_*.c): fused gate passes, filled in dispatch.c's init_tables(). */
    fnn_lstm_fwd_row_fn lstm_fwd_row;
    fnn_lstm_bwd_row_fn lstm_bwd_row;
    /* conv2d / pool2d (conv2d*.c, pool2d.c) */
    fnn_conv_cfg conv;
    fnn_pool_cfg pool;
    /* SimpleRNN and GRU (rnn_*.c): fused row passes, filled in dispatch.c. */
    fnn_rnn_rows rnn;
} fnn_kernel_table;

const fnn_kernel_table *fnn_kernels(void);

/* y = softmax(x) over one row of cols >= 1 floats with the given table's kernels; y may be x. */
void fnn_softmax_row(const fnn_kernel_table *kt, const float *x, float *y, int64_t cols);

/* ---------------------------------------------------------------------------------------------
 * The GEMM framework's internal entry points, for conv2d, lstm and the public wrappers.
 */
typedef struct {
    fnn_trans ta, tb;
    int64_t m, n, k;
    float alpha;
    const float *a;
    int64_t lda;
    const float *b;
    int64_t ldb;
    float beta;
    float *c;
    int64_t ldc;
    const float *bias; /* NULL or n floats */
    fnn_act act;       /* epilogue activation; FNN_ACT_LINEAR for none */
    float act_alpha;
    /* NULL, or: C is a gradient that is never stored. Each finished tile of op(A) op(B) goes
     * straight into this optimizer update of the parameter (beta, bias, act unused; alpha
     * must be 1; c NULL, except in the deep mode of fnn_gemm_update_run). */
    const struct fnn_tile_update *upd;
} fnn_gemm_problem;

/* An optimizer update applied tile by tile to an m x n row-major parameter (row stride ld) and
 * its slots (same layout; NULL where the rule has none), with the constants optim.c computes. */
typedef enum { FNN_UPDATE_SGD, FNN_UPDATE_ADAM, FNN_UPDATE_RMSPROP } fnn_update_rule;
typedef struct fnn_tile_update {
    fnn_update_rule rule;
    const void *consts; /* fnn_sgd_consts, fnn_adam_consts or fnn_rmsprop_consts */
    float *param, *s1, *s2;
    int64_t ld;
} fnn_tile_update;

/* param[i0 + r, j0 + c] etc. updated with gradient g[r * ldg + c] for r < rows, c < cols; the
 * same per-element arithmetic (and bits) as the whole-array update. */
void fnn_update_tile(const fnn_kernel_table *kt, const fnn_tile_update *u, const float *g,
                     int64_t ldg, int64_t rows, int64_t cols, int64_t i0, int64_t j0);

/* Fused weight-gradient step: G = op(A) op(B) (m x n, k deep) computed block by block, each
 * block applied to u's parameter as soon as it is final, so G never exists in memory. Up to a
 * few kc deep, the whole k depth goes through each tile in one pass (one packed block; mc and
 * nc shrink as k grows past kc to keep the packing buffers about the same size); deeper, G is
 * computed as usual into a temporary buffer. Either way the bits do not depend on the thread
 * count. p->c must be NULL; p->upd must be set. */
fnn_status fnn_gemm_update_run(const fnn_gemm_problem *p, int n_threads);

/* Checks a problem's arguments: FNN_OK or FNN_ERR_ARG. */
fnn_status fnn_gemm_check(const fnn_gemm_problem *p);

/* Runs one validated problem on up to n_threads threads (opens at most one parallel region). */
fnn_status fnn_gemm_run(const fnn_gemm_problem *p, int n_threads);

/* Single-threaded GEMM for callers that are already inside a parallel region (a conv tile, an
 * LSTM step). ws is scratch of at least fnn_gemm_serial_ws_floats(m, n, k) floats, 64-byte
 * aligned. Never opens a parallel region. */
int64_t fnn_gemm_serial_ws_floats(const fnn_gemm_cfg *cfg, int64_t m, int64_t n, int64_t k);
void fnn_gemm_serial(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p, float *ws);

/* Thread count a call really gets: 1 in a forked child or without OpenMP. */
int fnn_effective_threads(int n_threads);

#endif /* FASTNN_INTERNAL_H */
