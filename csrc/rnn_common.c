/* rnn_common.c - the pieces the recurrent forward (rnn_fwd.c) and backward (rnn_bwd.c) share:
 * the descriptor check, the thread count and time-loop tiling, GEMM shares, the panel GEMM of
 * a step, software prefetch and row packing. Prototypes and the driver's design notes:
 * rnn_internal.h. */
#include <string.h>

#include "rnn_internal.h"

/* A time-loop thread should get at least this many multiply-adds of recurrent GEMM per step,
 * the work of one step barrier: under OMP_WAIT_POLICY=PASSIVE a barrier costs about 5 us (a
 * futex wake-up; measured on the 2-core project machine with two threads crossing 2,000
 * barriers between equal slices of work), about 0.5 M multiply-adds of the AVX-512 micro-kernel
 * (~100 G multiply-adds/s). Smaller steps run the time loop on fewer threads. */
#define FNN_LSTM_MIN_STEP_WORK_PER_THREAD (512 * 1024)

/* Bytes of a packed weight panel that one micro-kernel k-loop streams: with the A panel of a
 * row block it must stay in L1 (48 KiB on the project machine) across the row blocks. */
#define FNN_LSTM_PANEL_BYTES (32 * 1024)

/* Whole-call work (multiply-adds) per thread below which the call runs on fewer threads; the
 * same break-even as the GEMM framework's threshold. */
#define FNN_LSTM_MIN_WORK_PER_THREAD (128 * 1024)

static int act_supported(fnn_act act) {
    return act == FNN_ACT_TANH || act == FNN_ACT_SIGMOID || act == FNN_ACT_RELU ||
           act == FNN_ACT_LINEAR;
}

fnn_status fnn_rnn_check_desc(const fnn_lstm_desc *d) {
    if (d == NULL || d->batch < 0 || d->seq_len < 0 || d->input_size < 0 ||
        d->hidden_size < 0 || (d->go_backwards != 0 && d->go_backwards != 1))
        return FNN_ERR_ARG;
    if (!act_supported(d->activation) || !act_supported(d->recurrent_activation))
        return FNN_ERR_UNSUPPORTED;
    return FNN_OK;
}

/* The row tile: the ISA's smaller packed kernel when it pads the batch to fewer rows (the batch
 * is every GEMM's m here, and padded rows cost as much as real ones: 64 rows take as long as 72
 * with 12-row tiles). Depends on the batch only, so results stay the same for any thread count. */
static void pick_rows(const fnn_gemm_cfg *cfg, int64_t batch, int64_t *mr, fnn_gemm_ukr_fn *ukr) {
    *mr = cfg->mr;
    *ukr = cfg->ukr;
    if (cfg->ukr_small != NULL &&
        fnn_round_up(batch, cfg->mr_small) < fnn_round_up(batch, cfg->mr)) {
        *mr = cfg->mr_small;
        *ukr = cfg->ukr_small;
    }
}

/* Chunks of at most FNN_LSTM_PANEL_BYTES of a weight panel, so that a chunk stays in L1 with
 * the row block's A chunk (a step of 384 ks is 48 KiB of panel, the whole L1, read again from
 * L2 by every row block otherwise). */
int64_t fnn_rnn_panel_kc(const fnn_gemm_cfg *cfg, int64_t nr) {
    return FNN_MAX(1, FNN_MIN(cfg->kc, FNN_LSTM_PANEL_BYTES / (nr * (int64_t)sizeof(float))));
}

/* Picks the tm x tn grid (tm*tn <= nt) with the smallest largest tile, preferring to split units
 * (row splits make two threads stream the same recurrent-kernel panels), then fewer threads. */
rnn_tiling fnn_rnn_make_tiling(const fnn_gemm_cfg *cfg, int64_t batch, int64_t hidden, int64_t ng,
                               int nt) {
    rnn_tiling tl = {cfg->mr, cfg->nr, 0, fnn_ceil_div(hidden, cfg->nr), 1, 1, cfg->ukr};
    pick_rows(cfg, batch, &tl.mr, &tl.ukr);
    tl.n_rb = fnn_ceil_div(batch, tl.mr);
    const double step_work = (double)ng * (double)batch * (double)hidden * (double)hidden;
    const int by_work = (int)FNN_MAX(1.0, step_work / FNN_LSTM_MIN_STEP_WORK_PER_THREAD);
    nt = FNN_MIN(nt, by_work);
    int64_t best = -1;
    for (int tn = nt; tn >= 1; tn--) {
        for (int tm = 1; tm * tn <= nt; tm++) {
            if (tm > tl.n_rb || tn > tl.n_ub) continue;
            const int64_t cost = fnn_ceil_div(tl.n_rb, tm) * fnn_ceil_div(tl.n_ub, tn);
            if (best < 0 || cost < best) {
                best = cost;
                tl.tm = tm;
                tl.tn = tn;
            }
        }
    }
    return tl;
}

/* Thread t's tile: row blocks [rb0, rb1), unit blocks [ub0, ub1). 0 if t has none. */
int fnn_rnn_tile_of(const rnn_tiling *tl, int t, int64_t *rb0, int64_t *rb1, int64_t *ub0,
                    int64_t *ub1) {
    if (t >= tl->tm * tl->tn) return 0;
    const int64_t rstep = fnn_ceil_div(tl->n_rb, tl->tm), ustep = fnn_ceil_div(tl->n_ub, tl->tn);
    *rb0 = (t / tl->tn) * rstep;
    *rb1 = FNN_MIN(tl->n_rb, *rb0 + rstep);
    *ub0 = (t % tl->tn) * ustep;
    *ub1 = FNN_MIN(tl->n_ub, *ub0 + ustep);
    return *rb0 < *rb1 && *ub0 < *ub1;
}

int fnn_rnn_call_threads(int n_threads, double work) {
    const int nt = fnn_effective_threads(n_threads);
    return (int)FNN_MAX(1.0, FNN_MIN((double)nt, work / FNN_LSTM_MIN_WORK_PER_THREAD));
}

/* Thread t's share of a GEMM whose C is split among nt threads, by rows (mr-aligned) or by
 * columns (nr-aligned). Every share packs the whole of the other operand, so C is split along
 * its longer side: the operand packed again by each thread is then the smaller one. */
void fnn_rnn_gemm_share(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p, int t, int nt,
                        float *ws) {
    if (p->m == 0 || p->n == 0) return;
    fnn_gemm_problem q = *p;
    const int64_t m_tiles = fnn_ceil_div(p->m, cfg->mr), n_tiles = fnn_ceil_div(p->n, cfg->nr);
    if (p->m >= p->n) {
        const int64_t step = fnn_ceil_div(m_tiles, nt) * cfg->mr;
        const int64_t m0 = t * step, m1 = FNN_MIN(p->m, m0 + step);
        if (m0 >= m1) return;
        q.m = m1 - m0;
        q.a = p->ta == FNN_NOTRANS ? p->a + m0 * p->lda : p->a + m0;
        q.c = p->c + m0 * p->ldc;
    } else {
        const int64_t step = fnn_ceil_div(n_tiles, nt) * cfg->nr;
        const int64_t n0 = t * step, n1 = FNN_MIN(p->n, n0 + step);
        if (n0 >= n1) return;
        q.n = n1 - n0;
        q.b = p->tb == FNN_NOTRANS ? p->b + n0 : p->b + n0 * p->ldb;
        q.c = p->c + n0;
        q.bias = p->bias != NULL ? p->bias + n0 : NULL;
    }
    fnn_gemm_serial(cfg, &q, ws);
}

/* C (row blocks [rb0, rb1) of an m-row matrix, `cols` <= nr columns) = Ap @ Bp + beta * C,
 * beta 0 or 1, with k steps, by tl's kernel. Ap: mr-row panels a_panel floats apart; Bp: one
 * nr-column panel.
 * k runs in equal chunks of at most max_kc (fnn_rnn_panel_kc: a chunk of Bp stays in L1 across
 * the row blocks); later chunks accumulate into C (a fixed order: the same sums for any tiling).
 * Edge tiles go through a stack tile and get the same sums as full tiles. */
void fnn_rnn_panel_gemm(const rnn_tiling *tl, int64_t k, int64_t max_kc, const float *ap,
                        int64_t a_panel, int64_t rb0, int64_t rb1, int64_t m, const float *bp,
                        int64_t cols, float beta, float *c, int64_t ldc) {
    FNN_ALIGNED(64) float tile[FNN_GEMM_MAX_MR * FNN_GEMM_MAX_NR];
    const int64_t mr = tl->mr, nr = tl->nr;
    const int64_t step = k > 0 ? fnn_ceil_div(k, fnn_ceil_div(k, max_kc)) : 1;
    for (int64_t pc = 0; pc < k; pc += step) {
        const int64_t kc = FNN_MIN(step, k - pc);
        const float bt = pc == 0 ? beta : 1.0f;
        for (int64_t rb = rb0; rb < rb1; rb++) {
            const int64_t rows = FNN_MIN(mr, m - rb * mr);
            const float *a = ap + rb * a_panel + pc * mr;
            float *ct = c + rb * mr * ldc;
            if (rows == mr && cols == nr) {
                tl->ukr(kc, 1.0f, a, bp + pc * nr, bt, ct, ldc);
                continue;
            }
            tl->ukr(kc, 1.0f, a, bp + pc * nr, 0.0f, tile, nr);
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                    float *dst = ct + i * ldc + j;
                    *dst = bt == 0.0f ? tile[i * nr + j] : tile[i * nr + j] + *dst;
                }
        }
    }
}

void fnn_rnn_plan_add(rnn_prefetch_plan *pl, const float *base, int64_t ld, int write) {
    pl->base[pl->n_arr] = base;
    pl->ld[pl->n_arr] = ld;
    pl->write[pl->n_arr] = write;
    pl->n_arr++;
}

/* Issues the prefetches of part `part` of `parts` of the plan's segments. */
void fnn_rnn_prefetch_part(const rnn_prefetch_plan *pl, int64_t part, int64_t parts) {
#if defined(__GNUC__) || defined(__clang__)
    const int64_t total = pl->n_seg * pl->n_arr;
    for (int64_t i = part * total / parts; i < (part + 1) * total / parts; i++) {
        const int a = (int)(i % pl->n_arr);
        const float *p = pl->base[a] + (pl->b0 + i / pl->n_arr) * pl->ld[a];
        for (int64_t k = 0; k < pl->n; k += 16) {
            if (pl->write[a])
                __builtin_prefetch(p + k, 1, 2);
            else
                __builtin_prefetch(p + k, 0, 2);
        }
    }
#else
    (void)pl, (void)part, (void)parts;
#endif
}

void fnn_rnn_copy_or_zero(float *dst, const float *src, int64_t n) {
    if (src != NULL)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        memset(dst, 0, (size_t)n * sizeof(float));
}

/* Packs rows [b0, b1) of a row-major matrix (row b at src + b * ld), columns [c0, c1), times
 * mask (row b at mask + b * ld_mask; NULL: none), into the packed A panels of a micro-kernel:
 * element (b, c) goes to ap[(b / mr) * a_panel + c * mr + b % mr]. Rows go four at a time
 * where a panel allows, so each packed cache line is filled in a quarter of the passes. */
void fnn_rnn_pack_rows(const float *src, int64_t ld, const float *mask, int64_t ld_mask, int64_t b0,
                       int64_t b1, int64_t c0, int64_t c1, int64_t mr, float *ap, int64_t a_panel) {
    for (int64_t b = b0; b < b1;) {
        float *dst = ap + (b / mr) * a_panel + b % mr;
        const float *s0 = src + b * ld;
        if (b % mr + 4 <= mr && b + 4 <= b1 && mask == NULL) {
            const float *s1 = s0 + ld, *s2 = s1 + ld, *s3 = s2 + ld;
            for (int64_t c = c0; c < c1; c++) {
                float *d = dst + c * mr;
                d[0] = s0[c];
                d[1] = s1[c];
                d[2] = s2[c];
                d[3] = s3[c];
            }
            b += 4;
        } else {
            if (mask != NULL)
                for (int64_t c = c0; c < c1; c++) dst[c * mr] = s0[c] * mask[b * ld_mask + c];
            else
                for (int64_t c = c0; c < c1; c++) dst[c * mr] = s0[c];
            b += 1;
        }
    }
}