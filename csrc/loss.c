/* loss.c - softmax cross-entropy and sigmoid binary cross-entropy on logits, each fused with
 * its gradient in one pass over the logits.
 *
 * Determinism: rows (elements for bce) are cut into fixed blocks; each block's loss is summed
 * in double in order, then the block sums in block order, whatever the thread count. Row sums
 * of exp are taken in fixed 256-column chunks, with or without a gradient buffer, so the loss
 * does not depend on whether the gradient is asked for either. */
#include <math.h>

#include "internal.h"

#define XENT_ROW_BLOCK 32   /* rows per partial loss sum */
#define XENT_COL_CHUNK 256  /* columns per exp-sum call (stack scratch when grad is NULL) */
#define BCE_BLOCK 1024      /* elements per partial loss sum */
#define STACK_BLOCKS 512    /* partial sums kept on the stack before falling back to malloc */
/* Work in the relu units of fnn_eltwise_threads (eltwise.c), from `python
 * bench/bench_eltwise.py --threshold`: an exp and a division per logit (~4) plus a fixed
 * ~250 per row (max, sum, log, label), as 10-class rows cost ~6 ns per logit; bce ~8. */
#define XENT_COST_PER_ELEM 4.0
#define XENT_COST_PER_ROW 256.0
#define BCE_COST 8.0

typedef struct {
    const fnn_kernel_table *kt;
    int64_t rows, cols;
    const float *logits;
    const int64_t *sparse; /* or NULL */
    const float *dense;    /* or NULL */
    float *grad;           /* or NULL */
    double *block_loss;
} xent_job;

/* exp(z - m) into out (or scratch) in fixed chunks; returns the sum. */
static float row_exp_sum(const fnn_kernel_table *kt, const float *z, float m, float *out,
                         int64_t cols) {
    FNN_ALIGNED(64) float scratch[XENT_COL_CHUNK];
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; c += XENT_COL_CHUNK) {
        const int64_t w = FNN_MIN(XENT_COL_CHUNK, cols - c);
        sum += kt->exp_sum(z + c, m, out != NULL ? out + c : scratch, w);
    }
    return sum;
}

static double xent_row(const xent_job *j, int64_t r) {
    const int64_t cols = j->cols;
    const float *z = j->logits + r * cols;
    float *g = j->grad != NULL ? j->grad + r * cols : NULL;
    const float m = j->kt->row_max(z, cols);
    const float s = row_exp_sum(j->kt, z, m, g, cols);
    /* lse - z_j = log(s) + (m - z_j): subtract m first, so a large max is not absorbed. */
    const double log_s = log((double)s);
    const float batch = (float)j->rows, inv_s = 1.0f / s;
    if (j->sparse != NULL) {
        const int64_t label = j->sparse[r];
        if (g != NULL) {
            const float p_label = g[label] * inv_s;
            for (int64_t c = 0; c < cols; c++) g[c] = (g[c] * inv_s) / batch;
            g[label] = (p_label - 1.0f) / batch;
        }
        return log_s + ((double)m - (double)z[label]);
    }
    const float *t = j->dense + r * cols;
    double tsum = 0.0, tz = 0.0; /* tz = sum_j t_j (m - z_j) */
    for (int64_t c = 0; c < cols; c++) {
        tsum += t[c];
        tz += (double)t[c] * ((double)m - (double)z[c]);
    }
    if (g != NULL) {
        const float ts = (float)tsum;
        for (int64_t c = 0; c < cols; c++) g[c] = ((g[c] * inv_s) * ts - t[c]) / batch;
    }
    return log_s * tsum + tz;
}

static void xent_range(void *ctx, int64_t b, int64_t e) {
    const xent_job *j = ctx;
    for (int64_t blk = b; blk < e; blk++) {
        const int64_t r1 = FNN_MIN(j->rows, (blk + 1) * XENT_ROW_BLOCK);
        double sum = 0.0;
        for (int64_t r = blk * XENT_ROW_BLOCK; r < r1; r++) sum += xent_row(j, r);
        j->block_loss[blk] = sum;
    }
}

/* Runs fn over nblocks blocks and returns the sum of the block losses in block order. */
static fnn_status run_blocks(int64_t nblocks, int nt, fnn_range_fn fn, void *job,
                             double **block_loss, double *total) {
    double stack[STACK_BLOCKS];
    double *partial = nblocks <= STACK_BLOCKS ? stack : fnn_malloc(nblocks * sizeof(double));
    if (partial == NULL) return FNN_ERR_NOMEM;
    *block_loss = partial;
    fnn_parallel_ranges(nblocks, 1, nt, fn, job);
    double sum = 0.0;
    for (int64_t blk = 0; blk < nblocks; blk++) sum += partial[blk];
    *total = sum;
    if (partial != stack) fnn_free(partial);
    return FNN_OK;
}

static fnn_status softmax_xent(int64_t batch, int64_t classes, const float *logits,
                               const int64_t *sparse, const float *dense, float *grad,
                               double *loss, int n_threads) {
    if (batch < 0 || classes < 0 || loss == NULL) return FNN_ERR_ARG;
    *loss = 0.0;
    if (batch == 0) return FNN_OK;
    if (classes == 0 || logits == NULL || (sparse == NULL && dense == NULL)) return FNN_ERR_ARG;
    if (sparse != NULL)
        for (int64_t r = 0; r < batch; r++)
            if (sparse[r] < 0 || sparse[r] >= classes) return FNN_ERR_ARG;
    xent_job job = {fnn_kernels(), batch, classes, logits, sparse, dense, grad, NULL};
    const int64_t nblocks = fnn_ceil_div(batch, XENT_ROW_BLOCK);
    const int nt = fnn_eltwise_threads(
        (double)batch * (XENT_COST_PER_ELEM * (double)classes + XENT_COST_PER_ROW), n_threads);
    double total;
    const fnn_status st = run_blocks(nblocks, nt, xent_range, &job, &job.block_loss, &total);
    if (st == FNN_OK) *loss = total / (double)batch;
    return st;
}

fnn_status fnn_softmax_xent_sparse_f32(int64_t batch, int64_t classes, const float *logits,
                                       const int64_t *labels, float *grad, double *loss,
                                       int n_threads) {
    if (labels == NULL && batch > 0) return FNN_ERR_ARG;
    return softmax_xent(batch, classes, logits, labels, NULL, grad, loss, n_threads);
}

fnn_status fnn_softmax_xent_dense_f32(int64_t batch, int64_t classes, const float *logits,
                                      const float *labels, float *grad, double *loss,
                                      int n_threads) {
    if (labels == NULL && batch > 0) return FNN_ERR_ARG;
    return softmax_xent(batch, classes, logits, NULL, labels, grad, loss, n_threads);
}

/* ---- sigmoid binary cross-entropy ----------------------------------------------------------- */

typedef struct {
    int64_t n;
    const float *z, *t;
    float *grad;
    double *block_loss;
} bce_job;

static void bce_range(void *ctx, int64_t b, int64_t e) {
    const bce_job *j = ctx;
    const float count = (float)j->n;
    for (int64_t blk = b; blk < e; blk++) {
        const int64_t i1 = FNN_MIN(j->n, (blk + 1) * BCE_BLOCK);
        double sum = 0.0;
        for (int64_t i = blk * BCE_BLOCK; i < i1; i++) {
            const float z = j->z[i], t = j->t[i];
            const float ez = expf(-fabsf(z)); /* exp(-|z|) in (0, 1]: never overflows */
            sum += (double)(z > 0.0f ? z : 0.0f) - (double)z * t + (double)log1pf(ez);
            if (j->grad != NULL) {
                const float sig = (z >= 0.0f ? 1.0f : ez) / (1.0f + ez);
                j->grad[i] = (sig - t) / count;
            }
        }
        j->block_loss[blk] = sum;
    }
}

fnn_status fnn_sigmoid_bce_f32(int64_t n, const float *logits, const float *labels,
                               float *grad, double *loss, int n_threads) {
    if (n < 0 || loss == NULL) return FNN_ERR_ARG;
    *loss = 0.0;
    if (n == 0) return FNN_OK;
    if (logits == NULL || labels == NULL) return FNN_ERR_ARG;
    bce_job job = {n, logits, labels, grad, NULL};
    const int64_t nblocks = fnn_ceil_div(n, BCE_BLOCK);
    const int nt = fnn_eltwise_threads(BCE_COST * (double)n, n_threads);
    double total;
    const fnn_status st = run_blocks(nblocks, nt, bce_range, &job, &job.block_loss, &total);
    if (st == FNN_OK) *loss = total / (double)n;
    return st;
}
