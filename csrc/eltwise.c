/* eltwise.c - activations and their gradients (reference kernels and the public, threaded
 * entry points), row-wise softmax, the bias gradient, and the range splitter the other
 * element-wise files share. The scalar formulas live in eltwise_scalar.h; the vector kernels
 * of each ISA in eltwise_avx2.c / eltwise_avx512.c, reached through the kernel table. */
#include "eltwise_scalar.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Work a thread must get before waking it pays, in "relu units" (one element of a streaming
 * pass such as relu forward: 0.19 ns on one core of the project machine). Measured with
 * `python bench/bench_eltwise.py --threshold`: an OpenMP fork/join with the PASSIVE wait
 * policy costs 5-7 us, so 2 threads break even near 12 us of work (relu at n = 52 K, adam at
 * 19 K, dropout at 30 K); 64 K units (~12 us) per thread leaves a margin. Measured on the
 * shared 2-core machine, so only the order of magnitude is trustworthy. */
#define FNN_ELTWISE_MIN_WORK_PER_THREAD (64 * 1024)

/* Cost per element of each activation in relu units (same measurement, AVX-512 kernels):
 * sigmoid / tanh / elu 4-5, gelu 6-8. Softmax is charged per element and per row (below). */
static double act_cost(fnn_act act) {
    switch (act) {
    case FNN_ACT_SIGMOID:
    case FNN_ACT_TANH:
    case FNN_ACT_ELU:
    case FNN_ACT_SOFTMAX: return 4.0;
    case FNN_ACT_GELU: return 8.0;
    default: return 1.0;
    }
}

/* Work of an activation pass over rows x cols; a softmax row also pays a fixed ~60 units
 * (the max and sum reductions, the reciprocal). */
static double act_work(fnn_act act, int64_t rows, int64_t cols) {
    const double per_row = act == FNN_ACT_SOFTMAX ? 64.0 : 0.0;
    return (double)rows * ((double)cols * act_cost(act) + per_row);
}

int fnn_eltwise_threads(double work, int n_threads) {
    int nt = fnn_effective_threads(n_threads);
    const double most = work / FNN_ELTWISE_MIN_WORK_PER_THREAD;
    if (most < nt) nt = most < 1.0 ? 1 : (int)most;
    return nt;
}

void fnn_parallel_ranges(int64_t n, int64_t align, int nt, fnn_range_fn fn, void *ctx) {
    if (n <= 0) return;
    const int64_t step = fnn_round_up(fnn_ceil_div(n, nt > 0 ? nt : 1), align);
    if (nt <= 1 || step >= n) {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ on this thread, see internal.h */
        fn(ctx, 0, n);
        fnn_fp_leave(fp);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int fp = fnn_fp_enter();
        const int64_t begin = (int64_t)omp_get_thread_num() * step;
        if (begin < n) fn(ctx, begin, FNN_MIN(n, begin + step));
        fnn_fp_leave(fp);
    }
#else
    const unsigned int fp = fnn_fp_enter();
    fn(ctx, 0, n);
    fnn_fp_leave(fp);
#endif
}

/* ---- reference kernels (the table entries of FNN_ISA_REF) ---------------------------------- */

void fnn_act_fwd_f32_ref(fnn_act act, float act_alpha, const float *x, float *y, int64_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = fnn_relu_f(x[i]);
        break;
    case FNN_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = fnn_leaky_relu_f(x[i], act_alpha);
        break;
    case FNN_ACT_LINEAR:
    case FNN_ACT_SOFTMAX: /* never reaches here: row-wise, below */
        if (y != x)
            for (int64_t i = 0; i < n; i++) y[i] = x[i];
        break;
    default:
        for (int64_t i = 0; i < n; i++) y[i] = fnn_act_scalar(act, act_alpha, x[i]);
        break;
    }
}

void fnn_act_bwd_f32_ref(fnn_act act, float act_alpha, const float *preact, const float *y,
                         const float *dy, float *dx, int64_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (int64_t i = 0; i < n; i++) dx[i] = fnn_relu_grad_f(y[i], dy[i]);
        break;
    case FNN_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) dx[i] = fnn_sigmoid_grad_f(y[i], dy[i]);
        break;
    case FNN_ACT_TANH:
        for (int64_t i = 0; i < n; i++) dx[i] = fnn_tanh_grad_f(y[i], dy[i]);
        break;
    case FNN_ACT_GELU:
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * fnn_gelu_grad_f(preact[i]);
        break;
    case FNN_ACT_ELU:
        for (int64_t i = 0; i < n; i++) dx[i] = fnn_elu_grad_f(y[i], dy[i], act_alpha);
        break;
    case FNN_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) dx[i] = fnn_leaky_relu_grad_f(y[i], dy[i], act_alpha);
        break;
    default:
        if (dx != dy)
            for (int64_t i = 0; i < n; i++) dx[i] = dy[i];
        break;
    }
}

float fnn_row_max_f32_ref(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float fnn_exp_sum_f32_ref(const float *x, float shift, float *y, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - shift);
        sum += y[i];
    }
    return sum;
}

float fnn_dot_f32_ref(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* ---- softmax rows, shared by the public entry points and loss.c ---------------------------- */

void fnn_softmax_row(const fnn_kernel_table *kt, const float *x, float *y, int64_t cols) {
    const float m = kt->row_max(x, cols);
    const float inv = 1.0f / kt->exp_sum(x, m, y, cols);
    for (int64_t j = 0; j < cols; j++) y[j] *= inv;
}

static void softmax_grad_row(const fnn_kernel_table *kt, const float *y, const float *dy,
                             float *dx, int64_t cols) {
    const float dot = kt->dot(dy, y, cols);
    for (int64_t j = 0; j < cols; j++) dx[j] = y[j] * (dy[j] - dot);
}

/* ---- public entry points ------------------------------------------------------------------- */

typedef struct {
    const fnn_kernel_table *kt;
    fnn_act act;
    float alpha;
    int64_t cols;
    const float *preact, *x, *dy;
    float *y;
} act_job;

static void act_fwd_range(void *ctx, int64_t begin, int64_t end) {
    const act_job *j = ctx;
    if (j->act == FNN_ACT_SOFTMAX) {
        for (int64_t r = begin; r < end; r++)
            fnn_softmax_row(j->kt, j->x + r * j->cols, j->y + r * j->cols, j->cols);
    } else {
        j->kt->act_fwd(j->act, j->alpha, j->x + begin, j->y + begin, end - begin);
    }
}

/* For the backward job, x is y (the activation's output) and y is dx. */
static void act_bwd_range(void *ctx, int64_t begin, int64_t end) {
    const act_job *j = ctx;
    if (j->act == FNN_ACT_SOFTMAX) {
        for (int64_t r = begin; r < end; r++)
            softmax_grad_row(j->kt, j->x + r * j->cols, j->dy + r * j->cols, j->y + r * j->cols,
                             j->cols);
    } else {
        const float *pre = j->preact != NULL ? j->preact + begin : NULL;
        const float *out = j->x != NULL ? j->x + begin : NULL;
        j->kt->act_bwd(j->act, j->alpha, pre, out, j->dy + begin, j->y + begin, end - begin);
    }
}

static int act_valid(fnn_act act) { return (int)act >= 0 && (int)act <= FNN_ACT_SOFTMAX; }

fnn_status fnn_act_fwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                           const float *x, float *y, int n_threads) {
    if (rows < 0 || cols < 0 || !act_valid(act)) return FNN_ERR_ARG;
    const int64_t n = rows * cols;
    if (n == 0) return FNN_OK;
    if (x == NULL || y == NULL) return FNN_ERR_ARG;
    act_job job = {fnn_kernels(), act, act_alpha, cols, NULL, x, NULL, y};
    const int nt = fnn_eltwise_threads(act_work(act, rows, cols), n_threads);
    if (act == FNN_ACT_SOFTMAX)
        fnn_parallel_ranges(rows, 1, nt, act_fwd_range, &job);
    else
        fnn_parallel_ranges(n, 64, nt, act_fwd_range, &job);
    return FNN_OK;
}

fnn_status fnn_act_bwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                           const float *preact, const float *y, const float *dy, float *dx,
                           int n_threads) {
    if (rows < 0 || cols < 0 || !act_valid(act)) return FNN_ERR_ARG;
    if ((act == FNN_ACT_ELU || act == FNN_ACT_LEAKY_RELU) && !(act_alpha >= 0.0f))
        return FNN_ERR_ARG;
    const int64_t n = rows * cols;
    if (n == 0) return FNN_OK;
    if (dy == NULL || dx == NULL || (act == FNN_ACT_GELU ? preact == NULL : y == NULL))
        return FNN_ERR_ARG;
    act_job job = {fnn_kernels(), act, act_alpha, cols, preact, y, dy, dx};
    const int nt = fnn_eltwise_threads(act_work(act, rows, cols), n_threads);
    if (act == FNN_ACT_SOFTMAX)
        fnn_parallel_ranges(rows, 1, nt, act_bwd_range, &job);
    else
        fnn_parallel_ranges(n, 64, nt, act_bwd_range, &job);
    return FNN_OK;
}

/* ---- bias gradient -------------------------------------------------------------------------- */

#define BIAS_ROW_BLOCK 64  /* rows summed into a block partial before it joins the total */
#define BIAS_COL_TILE 512  /* columns per tile: two stack rows of 2 KiB stay in L1 */

typedef struct {
    int64_t rows, cols;
    const float *dy;
    float *db;
} bias_job;

/* Column tiles [begin, end) of db: per tile, rows in blocks of 64 into `part`, each block
 * partial added to `acc` in row order. Vectorizes over columns; the order is fixed. */
static void bias_grad_range(void *ctx, int64_t begin, int64_t end) {
    const bias_job *j = ctx;
    FNN_ALIGNED(64) float acc[BIAS_COL_TILE], part[BIAS_COL_TILE];
    for (int64_t c0 = begin; c0 < end; c0 += BIAS_COL_TILE) {
        const int64_t w = FNN_MIN(BIAS_COL_TILE, end - c0);
        for (int64_t c = 0; c < w; c++) acc[c] = 0.0f;
        for (int64_t r0 = 0; r0 < j->rows; r0 += BIAS_ROW_BLOCK) {
            const int64_t r1 = FNN_MIN(j->rows, r0 + BIAS_ROW_BLOCK);
            const float *row = j->dy + r0 * j->cols + c0;
            for (int64_t c = 0; c < w; c++) part[c] = row[c];
            for (int64_t r = r0 + 1; r < r1; r++) {
                row += j->cols;
                for (int64_t c = 0; c < w; c++) part[c] += row[c];
            }
            for (int64_t c = 0; c < w; c++) acc[c] += part[c];
        }
        for (int64_t c = 0; c < w; c++) j->db[c0 + c] = acc[c];
    }
}

fnn_status fnn_bias_grad_f32(int64_t rows, int64_t cols, const float *dy, float *db,
                             int n_threads) {
    if (rows < 0 || cols < 0) return FNN_ERR_ARG;
    if (cols == 0) return FNN_OK;
    if (db == NULL || (rows > 0 && dy == NULL)) return FNN_ERR_ARG;
    bias_job job = {rows, cols, dy, db};
    const int nt = fnn_eltwise_threads((double)rows * cols, n_threads);
    fnn_parallel_ranges(cols, 64, nt, bias_grad_range, &job);
    return FNN_OK;
}
