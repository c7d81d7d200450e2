/* lstm.c - LSTM, GRU and SimpleRNN forward and backward through time over a whole sequence
 * (contract: fastnn.h). One driver runs the three cells (rnn_cell): they differ in the number
 * of gates per unit (4, 3 or 1; G = gates * hidden columns; the text below is written for
 * the LSTM) and in the fused row passes (lstm_ref.c and the ISA files). The SimpleRNN has no
 * c state and its backward reads h_s from y. The GRU saves the recurrent part of its
 * candidate in c_seq's place (hn); its backward's dz differs between the input projection
 * (dzx: dx, dkernel) and the recurrent GEMM (dzh: dh_{s-1}, drecurrent_kernel), and the
 * z * h_{s-1} path adds to dh_{s-1} directly (carried in dc's place); the weight gradients
 * then take four GEMMs (gru_weight_grads).
 *
 * Forward. One GEMM projects every step's input: Z = x @ kernel + bias over batch*seq_len rows,
 * batch-major (batch, seq_len, 4*hidden), written straight into the caller's gates buffer
 * (training) or a workspace (inference). Then per step s the micro-kernel adds
 * h_{s-1} @ recurrent_kernel into Z[:, tau(s)] from panels packed once per call, and one fused
 * pass (kt->lstm_fwd_row) turns the step's four gates into activated gates, c_s and h_s.
 *
 * Backward. Per step the fused pass (kt->lstm_bwd_row) overwrites the saved gates with dz_s and
 * carries dc, then one micro-kernel pass over panels of [recurrent_kernel^T | kernel^T] packed
 * once gives dh_{s-1} = dz_s @ recurrent_kernel^T and dx[:, tau] = dz_s @ kernel^T (dz_s is
 * still in cache and already packed). After the loop one large GEMM over every step,
 * [x | h_prev | 1]^T @ dz, gives dkernel, drecurrent_kernel and dbias together (dz is packed
 * once; the column of ones makes the bias gradient a GEMM row).
 *
 * Threads: one parallel region per call. The large GEMMs are split among all threads by rows or
 * columns (fnn_gemm_serial on each share). For the time loop the (batch x hidden) plane is cut
 * into tiles aligned to the micro-kernel (mr rows x nr units); each thread keeps one tile for the
 * whole sequence and computes all four gate columns of its units, so its fused pass needs
 * nothing from other threads. The pass writes the thread's part of h_s (backward: dz_s)
 * directly into the packed A panel of the next GEMM, double-buffered, so one barrier per step is
 * enough: it orders "every part of h_s packed" before "anyone reads h_s".
 *
 * Determinism: every GEMM element is one micro-kernel k-loop over its full k (edge tiles give
 * the same sums through a stack tile), the fused passes treat every unit alike, and column sums
 * run over rows in a fixed order, so results are bitwise identical for any n_threads.
 */
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

/* ---- shared pieces --------------------------------------------------------------------------- */

static int act_supported(fnn_act act) {
    return act == FNN_ACT_TANH || act == FNN_ACT_SIGMOID || act == FNN_ACT_RELU ||
           act == FNN_ACT_LINEAR;
}

static fnn_status check_desc(const fnn_lstm_desc *d) {
    if (d == NULL || d->batch < 0 || d->seq_len < 0 || d->input_size < 0 ||
        d->hidden_size < 0 || (d->go_backwards != 0 && d->go_backwards != 1))
        return FNN_ERR_ARG;
    if (!act_supported(d->activation) || !act_supported(d->recurrent_activation))
        return FNN_ERR_UNSUPPORTED;
    return FNN_OK;
}

/* The cells the driver runs: the LSTM (four gates i, f, g, o and a c state), the Elman
 * SimpleRNN (one gate, h_s = act(z)) and the GRU (gates z, r, h; reset after the recurrent
 * GEMM). They share everything but the fused row passes; the GRU's backward also splits dz. */
typedef enum { RNN_LSTM, RNN_SIMPLE, RNN_GRU } rnn_cell;

static int64_t gate_count(rnn_cell cell) {
    return cell == RNN_LSTM ? 4 : (cell == RNN_GRU ? 3 : 1);
}

/* The time-loop tiling: tm x tn threads own row blocks (mr rows) x unit blocks (nr units);
 * ukr is the packed micro-kernel of mr x nr tiles. */
typedef struct {
    int64_t mr, nr, n_rb, n_ub;
    int tm, tn;
    fnn_gemm_ukr_fn ukr;
} tiling;

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
static int64_t panel_kc(const fnn_gemm_cfg *cfg, int64_t nr) {
    return FNN_MAX(1, FNN_MIN(cfg->kc, FNN_LSTM_PANEL_BYTES / (nr * (int64_t)sizeof(float))));
}

/* Picks the tm x tn grid (tm*tn <= nt) with the smallest largest tile, preferring to split units
 * (row splits make two threads stream the same recurrent-kernel panels), then fewer threads. */
static tiling make_tiling(const fnn_gemm_cfg *cfg, int64_t batch, int64_t hidden, int64_t ng,
                          int nt) {
    tiling tl = {cfg->mr, cfg->nr, 0, fnn_ceil_div(hidden, cfg->nr), 1, 1, cfg->ukr};
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

/* Whether the forward fuses the input projection into each step's GEMM (k = input + hidden,
 * A = [x_tau | h_{s-1}]) instead of one GEMM over all steps before the loop. Fused, the
 * projections never go through memory: the separate GEMM writes batch * seq_len * 4 * hidden
 * floats that the loop then reads back (64 x 50 x 1024 floats, 13 MB: about a third of the
 * forward's time on the project machine). But each step's GEMM computes whole row tiles, so a
 * batch that fills its tiles poorly pays the padding on the projection too: fused when padding
 * adds at most a quarter, and the input fits one k chunk of the ISA (the fused step then gives
 * the separate GEMM's bits: results do not depend on the batch size a row is computed in).
 * Depends on the shapes only (the same sums for any thread count). */
static int fused_step(const fnn_gemm_cfg *cfg, const tiling *tl, int64_t batch, int64_t input) {
    return input <= cfg->kc && 4 * fnn_round_up(batch, tl->mr) <= 5 * batch;
}

/* Thread t's tile: row blocks [rb0, rb1), unit blocks [ub0, ub1). 0 if t has none. */
static int tile_of(const tiling *tl, int t, int64_t *rb0, int64_t *rb1, int64_t *ub0,
                   int64_t *ub1) {
    if (t >= tl->tm * tl->tn) return 0;
    const int64_t rstep = fnn_ceil_div(tl->n_rb, tl->tm), ustep = fnn_ceil_div(tl->n_ub, tl->tn);
    *rb0 = (t / tl->tn) * rstep;
    *rb1 = FNN_MIN(tl->n_rb, *rb0 + rstep);
    *ub0 = (t % tl->tn) * ustep;
    *ub1 = FNN_MIN(tl->n_ub, *ub0 + ustep);
    return *rb0 < *rb1 && *ub0 < *ub1;
}

static int call_threads(int n_threads, double work) {
    const int nt = fnn_effective_threads(n_threads);
    return (int)FNN_MAX(1.0, FNN_MIN((double)nt, work / FNN_LSTM_MIN_WORK_PER_THREAD));
}

/* Thread t's share of a GEMM whose C is split among nt threads, by rows (mr-aligned) or by
 * columns (nr-aligned). Every share packs the whole of the other operand, so C is split along
 * its longer side: the operand packed again by each thread is then the smaller one. */
static void gemm_share(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p, int t, int nt,
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
 * k runs in equal chunks of at most max_kc (panel_kc: a chunk of Bp stays in L1 across the
 * row blocks); later chunks accumulate into C (a fixed order: the same sums for any tiling).
 * Edge tiles go through a stack tile and get the same sums as full tiles. */
static void panel_gemm(const tiling *tl, int64_t k, int64_t max_kc, const float *ap,
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

/* Software prefetch of the rows a step's fused pass will stream. Those rows live in the big
 * per-sequence buffers, out of cache; fetching them in slices between the micro-kernel calls
 * of the step's GEMM overlaps the misses with arithmetic. A hint: no effect on results.
 * Segment i of a plan is array i % n_arr of row b0 + i / n_arr: n floats at base + b * ld. */
typedef struct {
    const float *base[6];
    int64_t ld[6];
    int write[6];
    int n_arr;
    int64_t b0, n, n_seg;
} prefetch_plan;

static void plan_add(prefetch_plan *pl, const float *base, int64_t ld, int write) {
    pl->base[pl->n_arr] = base;
    pl->ld[pl->n_arr] = ld;
    pl->write[pl->n_arr] = write;
    pl->n_arr++;
}

/* Issues the prefetches of part `part` of `parts` of the plan's segments. */
static void prefetch_part(const prefetch_plan *pl, int64_t part, int64_t parts) {
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

static void copy_or_zero(float *dst, const float *src, int64_t n) {
    if (src != NULL)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        memset(dst, 0, (size_t)n * sizeof(float));
}

/* Packs rows [b0, b1) of a row-major matrix (row b at src + b * ld), columns [c0, c1), times
 * mask (row b at mask + b * ld_mask; NULL: none), into the packed A panels of a micro-kernel:
 * element (b, c) goes to ap[(b / mr) * a_panel + c * mr + b % mr]. Rows go four at a time
 * where a panel allows, so each packed cache line is filled in a quarter of the passes. */
static void pack_rows(const float *src, int64_t ld, const float *mask, int64_t ld_mask,
                      int64_t b0, int64_t b1, int64_t c0, int64_t c1, int64_t mr, float *ap,
                      int64_t a_panel) {
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

#ifdef _OPENMP
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* ---- forward --------------------------------------------------------------------------------- */

typedef struct {
    const fnn_kernel_table *kt;
    const fnn_lstm_desc *d;
    rnn_cell cell;
    int64_t ng;    /* gates per unit: 4 (LSTM) or 1 (SimpleRNN) */
    int training;  /* LSTM: gates and c_seq are saved */
    tiling tl;
    const float *x, *kernel, *rkernel, *bias, *h0, *c0;
    const float *h_mask; /* NULL or (batch, hidden): multiplies h_{s-1} in the recurrent GEMM */
    float *y, *h_last, *c_last, *c_seq;
    float *z;      /* (batch, seq_len, G): x @ kernel + bias; training: the gates buffer */
    float *zh;     /* (batch, G): h_{s-1} @ recurrent_kernel of the current step */
    float *zx;     /* fused step: (batch, G), x_tau @ kernel + bias of the step */
    float *ap[2];  /* packed h_{s-1} / h_s: n_rb panels of a_panel floats */
    int64_t a_panel;
    int64_t kx;    /* fused step (input_size) or not (0): A's first kx columns are x_tau */
    float *bp;     /* packed [kernel; recurrent_kernel] (first kx rows from kernel): panel
                    * (ub, q) at (ub*ng + q) * (kx + hidden) * nr */
    float *cbuf;   /* LSTM inference: c state (batch, hidden) */
    float *hbuf;   /* when y == NULL: h state (batch, hidden) */
    const float *zeros; /* hidden zeros: c_{-1} when c0 == NULL (training) */
    float *ws;     /* per-thread GEMM scratch, ws_floats each */
    int64_t ws_floats;
} fwd_ctx;

static void fwd_thread(const fwd_ctx *cx, int t, int nt) {
    /* FTZ/DAZ on this thread for the call (see internal.h); the caller's mode comes back */
    const unsigned int fp_mode = fnn_fp_enter();
    const fnn_lstm_desc *d = cx->d;
    const fnn_gemm_cfg *cfg = &cx->kt->gemm;
    const int64_t B = d->batch, T = d->seq_len, I = d->input_size, H = d->hidden_size;
    const int64_t ng = cx->ng, G = ng * H, kx = cx->kx, mr = cx->tl.mr, nr = cx->tl.nr;
    const int64_t b_panel = (kx + H) * nr;
    const int training = cx->training, lstm = cx->cell == RNN_LSTM;

    /* Separate step: the input projection of every step in one GEMM. Fused step: none. */
    if (kx == 0) {
        const fnn_gemm_problem proj = {FNN_NOTRANS, FNN_NOTRANS, B * T, G, I, 1.0f, cx->x, I,
                                       cx->kernel, G, 0.0f, cx->z, G, cx->bias, FNN_ACT_LINEAR,
                                       0.0f};
        gemm_share(cfg, &proj, t, nt, cx->ws + t * cx->ws_floats);
    }
    /* The weight panels: kx rows of kernel, then recurrent_kernel. */
    for (int64_t pnl = t; pnl < cx->tl.n_ub * ng; pnl += nt) {
        const int64_t ub = pnl / ng, q = pnl % ng, cols = FNN_MIN(nr, H - ub * nr);
        float *dst = cx->bp + pnl * b_panel;
        for (int64_t k = 0; k < kx + H; k++) {
            const float *src = (k < kx ? cx->kernel + k * G : cx->rkernel + (k - kx) * G) +
                               q * H + ub * nr;
            memcpy(dst + k * nr, src, (size_t)cols * sizeof(float));
            if (cols < nr) memset(dst + k * nr + cols, 0, (size_t)(nr - cols) * sizeof(float));
        }
    }
    /* Fused step: threads of one row group (tile_of: rows by t / tn) split x's columns; they
     * pack x_tau of the rows into the A panels for every step (whether or not they own units). */
    int64_t xb0 = 0, xb1 = 0, xc0 = 0, xc1 = 0;
    if (kx > 0 && t < cx->tl.tm * cx->tl.tn) {
        const int64_t rstep = fnn_ceil_div(cx->tl.n_rb, cx->tl.tm), g = t % cx->tl.tn;
        xb0 = FNN_MIN(B, (t / cx->tl.tn) * rstep * mr);
        xb1 = FNN_MIN(B, (t / cx->tl.tn + 1) * rstep * mr);
        xc0 = g * kx / cx->tl.tn;
        xc1 = (g + 1) * kx / cx->tl.tn;
        const int64_t tau0 = d->go_backwards ? T - 1 : 0;
        pack_rows(cx->x + tau0 * I, T * I, NULL, 0, xb0, xb1, xc0, xc1, mr, cx->ap[0],
                  cx->a_panel);
    }

    int64_t rb0 = 0, rb1 = 0, ub0 = 0, ub1 = 0;
    const int has_tile = tile_of(&cx->tl, t, &rb0, &rb1, &ub0, &ub1);
    const int64_t b0 = rb0 * mr, b1 = FNN_MIN(B, rb1 * mr);
    const int64_t j0 = ub0 * nr, j1 = FNN_MIN(H, ub1 * nr);
    if (has_tile) { /* c state, h0 packed, zero padding rows of both A buffers */
        for (int64_t b = b0; b < rb1 * mr; b++) {
            float *a0 = cx->ap[0] + (b / mr) * cx->a_panel + b % mr + kx * mr;
            float *a1 = cx->ap[1] + (b / mr) * cx->a_panel + b % mr + kx * mr;
            if (b >= B && ub0 == 0) /* padding rows: x's columns too, once per row group */
                for (int64_t c = 0; c < kx; c++) a0[(c - kx) * mr] = a1[(c - kx) * mr] = 0.0f;
            for (int64_t j = j0; j < j1; j++) {
                float v = b < B && cx->h0 != NULL ? cx->h0[b * H + j] : 0.0f;
                if (b < B && cx->h_mask != NULL) v *= cx->h_mask[b * H + j];
                a0[j * mr] = v;
                a1[j * mr] = 0.0f;
            }
            if (lstm && !training && b < B)
                copy_or_zero(cx->cbuf + b * H + j0, cx->c0 != NULL ? cx->c0 + b * H + j0 : NULL,
                             j1 - j0);
        }
    }
#pragma omp barrier

    for (int64_t s = 0; s < T; s++) {
        const int64_t tau = d->go_backwards ? T - 1 - s : s;
        if (has_tile) {
            /* The recurrent part goes to the small zh buffer (cache-resident) rather than into
             * z (which the micro-kernel would have to read back from memory); h_{-1} = 0 adds
             * nothing. */
            const int recurrent = s > 0 || cx->h0 != NULL; /* h_{-1} = 0 adds nothing */
            prefetch_plan pl = {{NULL}, {0}, {0}, 0, b0, j1 - j0, b1 - b0};
            if (kx == 0 || training) /* z: projections (read) or the gates buffer (written) */
                for (int64_t q = 0; q < ng; q++)
                    plan_add(&pl, cx->z + tau * G + q * H + j0, T * G, kx > 0);
            if (training) plan_add(&pl, cx->c_seq + s * H + j0, T * H, 1);
            if (cx->y != NULL) plan_add(&pl, cx->y + s * H + j0, T * H, 1);
            /* Fused: x_tau @ kernel into zx over the panels' first kx rows, in one chunk of
             * the ISA's kc as the separate projection GEMM takes it, then + bias below: the
             * same bits as that GEMM, so results do not depend on which path a batch takes. */
            const int64_t parts = (ub1 - ub0) * ng * ((kx > 0) + recurrent);
            int64_t part = 0;
            for (int64_t ub = ub0; ub < ub1 && kx > 0; ub++)
                for (int64_t q = 0; q < ng; q++) {
                    prefetch_part(&pl, part++, parts);
                    panel_gemm(&cx->tl, kx, cfg->kc, cx->ap[s & 1], cx->a_panel, rb0, rb1, B,
                               cx->bp + (ub * ng + q) * b_panel, FNN_MIN(nr, H - ub * nr), 0.0f,
                               cx->zx + q * H + ub * nr, G);
                }
            for (int64_t ub = ub0; ub < ub1 && recurrent; ub++)
                for (int64_t q = 0; q < ng; q++) {
                    prefetch_part(&pl, part++, parts);
                    panel_gemm(&cx->tl, H, panel_kc(cfg, nr), cx->ap[s & 1] + kx * mr,
                               cx->a_panel, rb0, rb1, B, cx->bp + (ub * ng + q) * b_panel + kx * nr,
                               FNN_MIN(nr, H - ub * nr), 0.0f, cx->zh + q * H + ub * nr, G);
                }
            for (int64_t b = b0; b < b1; b++) {
                float *zrow = cx->z + (b * T + tau) * G;
                float *h_out = cx->y != NULL ? cx->y + (b * T + s) * H : cx->hbuf + b * H;
                /* fused: the bias goes on in the pass, as the projection GEMM adds it */
                const float *zx = kx > 0 ? cx->zx + b * G : zrow;
                const float *bias = kx > 0 && cx->bias != NULL ? cx->bias + j0 : NULL;
                const float *zh = recurrent ? cx->zh + b * G + j0 : NULL;
                if (lstm) {
                    float *c_out = training ? cx->c_seq + (b * T + s) * H : cx->cbuf + b * H;
                    const float *c_prev = c_out;
                    if (training)
                        c_prev = s > 0 ? c_out - H : (cx->c0 != NULL ? cx->c0 + b * H : cx->zeros);
                    cx->kt->lstm_fwd_row(j1 - j0, d->activation, d->recurrent_activation,
                                         zx + j0, bias, zh, training ? zrow + j0 : NULL, H,
                                         c_prev + j0, c_out + j0, h_out + j0);
                    if (s == T - 1 && cx->c_last != NULL)
                        memcpy(cx->c_last + b * H + j0, c_out + j0,
                               (size_t)(j1 - j0) * sizeof(float));
                } else if (cx->cell == RNN_GRU) { /* h_prev unmasked; hbuf: h_out in place */
                    const float *h_prev = s > 0 ? (cx->y != NULL ? h_out - H : h_out)
                                                : (cx->h0 != NULL ? cx->h0 + b * H : cx->zeros);
                    const float *rbias = cx->bias != NULL ? cx->bias + G + j0 : NULL;
                    float *hn = training ? cx->c_seq + (b * T + tau) * H + j0 : NULL;
                    cx->kt->rnn.gru_fwd(j1 - j0, d->activation, d->recurrent_activation,
                                        zx + j0, bias, zh, rbias, h_prev + j0,
                                        training ? zrow + j0 : NULL, hn, H, h_out + j0);
                } else {
                    cx->kt->rnn.fwd(j1 - j0, d->activation, zx + j0, bias, zh, h_out + j0);
                }
                if (s == T - 1 && cx->h_last != NULL)
                    memcpy(cx->h_last + b * H + j0, h_out + j0, (size_t)(j1 - j0) * sizeof(float));
            }
            if (s < T - 1) /* h_s (times the mask) into the next step's packed A panel */
                pack_rows(cx->y != NULL ? cx->y + s * H : cx->hbuf, cx->y != NULL ? T * H : H,
                          cx->h_mask, H, b0, b1, j0, j1, mr, cx->ap[(s + 1) & 1] + kx * mr,
                          cx->a_panel);
        }
        if (s < T - 1 && xb0 < xb1) /* x_tau of the next step, this thread's columns */
            pack_rows(cx->x + (d->go_backwards ? T - 2 - s : s + 1) * I, T * I, NULL, 0, xb0,
                      xb1, xc0, xc1, mr, cx->ap[(s + 1) & 1], cx->a_panel);
        if (s < T - 1) {
#pragma omp barrier
        }
    }
    fnn_fp_leave(fp_mode);
}

/* The forward of either cell (fnn_lstm_fwd_f32's arguments; SimpleRNN: c0, c_last, gates and
 * c_seq NULL). */
static fnn_status rnn_fwd(rnn_cell cell, const fnn_lstm_desc *desc, const float *x,
                         const float *kernel, const float *recurrent_kernel, const float *bias,
                         const float *h0, const float *c0, const float *h_mask, float *y,
                         float *h_last, float *c_last, float *gates, float *c_seq,
                         int n_threads) {
    fnn_status st = check_desc(desc);
    if (st != FNN_OK) return st;
    const int64_t B = desc->batch, T = desc->seq_len, I = desc->input_size;
    const int64_t ng = gate_count(cell), H = desc->hidden_size, G = ng * H;
    const int training = gates != NULL || c_seq != NULL;
    if (training && (gates == NULL || c_seq == NULL || (y == NULL && B * T * H > 0)))
        return FNN_ERR_ARG;
    if ((x == NULL && B * T * I > 0) || (kernel == NULL && I * G > 0) ||
        (recurrent_kernel == NULL && H * G > 0))
        return FNN_ERR_ARG;
    if (B == 0 || H == 0) return FNN_OK;
    if (T == 0) {
        if (h_last != NULL) copy_or_zero(h_last, h0, B * H);
        if (c_last != NULL) copy_or_zero(c_last, c0, B * H);
        return FNN_OK;
    }

    fwd_ctx cx = {0};
    cx.kt = fnn_kernels();
    const fnn_gemm_cfg *cfg = &cx.kt->gemm;
    const int nt = call_threads(n_threads, (double)B * T * G * (double)(I + H));
    cx.d = desc;
    cx.cell = cell, cx.ng = ng, cx.training = training;
    cx.tl = make_tiling(cfg, B, H, ng, nt);
    cx.x = x, cx.kernel = kernel, cx.rkernel = recurrent_kernel, cx.bias = bias;
    cx.h0 = h0, cx.c0 = c0, cx.h_mask = h_mask;
    cx.y = y, cx.h_last = h_last, cx.c_last = c_last, cx.c_seq = c_seq;
    cx.kx = fused_step(cfg, &cx.tl, B, I) ? I : 0;
    cx.a_panel = fnn_round_up(cx.tl.mr * (cx.kx + H), 16);
    cx.ws_floats = cx.kx > 0 ? 0 : fnn_round_up(fnn_gemm_serial_ws_floats(cfg, B * T, G, I), 16);

    /* One allocation, cut into 64-byte aligned pieces. */
    const int64_t n_z = training || cx.kx > 0 ? 0 : fnn_round_up(B * T * G, 16);
    const int64_t n_ap = cx.tl.n_rb * cx.a_panel;
    const int64_t n_bp = cx.tl.n_ub * ng * (cx.kx + H) * cx.tl.nr;
    const int64_t n_state = fnn_round_up(B * H, 16);
    const int64_t n_c = cell == RNN_LSTM && !training ? n_state : 0, n_h = y == NULL ? n_state : 0;
    const int64_t n_zero = fnn_round_up(H, 16), n_zh = fnn_round_up(B * G, 16);
    const int64_t n_zx = cx.kx > 0 ? n_zh : 0;
    const int64_t total =
        n_z + n_zh + n_zx + 2 * n_ap + n_bp + n_c + n_h + n_zero + nt * cx.ws_floats;
    float *mem = fnn_malloc((size_t)total * sizeof(float));
    if (mem == NULL) return FNN_ERR_NOMEM;
    float *p = mem;
    cx.z = training ? gates : p; /* fused inference: not used */
    p += n_z;
    cx.zh = p, p += n_zh;
    cx.zx = p, p += n_zx;
    cx.ap[0] = p, p += n_ap;
    cx.ap[1] = p, p += n_ap;
    cx.bp = p, p += n_bp;
    cx.cbuf = p, p += n_c;
    cx.hbuf = p, p += n_h;
    memset(p, 0, (size_t)n_zero * sizeof(float));
    cx.zeros = p, p += n_zero;
    cx.ws = p;

    if (nt == 1) {
        fwd_thread(&cx, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        fwd_thread(&cx, THREAD_ID(), nt);
    }
    fnn_free(mem);
    return FNN_OK;
}

fnn_status fnn_lstm_fwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                            const float *recurrent_kernel, const float *bias, const float *h0,
                            const float *c0, const float *h_mask, float *y, float *h_last,
                            float *c_last, float *gates, float *c_seq, int n_threads) {
    return rnn_fwd(RNN_LSTM, desc, x, kernel, recurrent_kernel, bias, h0, c0, h_mask, y, h_last,
                   c_last, gates, c_seq, n_threads);
}

fnn_status fnn_gru_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *bias, const float *h0,
                           const float *h_mask, float *y, float *h_last, float *gates,
                           float *hn_seq, int n_threads) {
    return rnn_fwd(RNN_GRU, desc, x, kernel, recurrent_kernel, bias, h0, NULL, h_mask, y, h_last,
                   NULL, gates, hn_seq, n_threads);
}

fnn_status fnn_simple_rnn_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *bias,
                                  const float *h0, const float *h_mask, float *y, float *h_last,
                                  int n_threads) {
    return rnn_fwd(RNN_SIMPLE, desc, x, kernel, recurrent_kernel, bias, h0, NULL, h_mask, y,
                   h_last, NULL, NULL, NULL, n_threads);
}

/* ---- backward -------------------------------------------------------------------------------- */

typedef struct {
    const fnn_kernel_table *kt;
    const fnn_lstm_desc *d;
    rnn_cell cell;
    int64_t ng;
    tiling tl;
    const float *x, *kernel, *rkernel, *h0, *c0, *h_mask, *y, *c_seq, *dy, *dh_last, *dc_last;
    float *gates;  /* LSTM: the saved gates; SimpleRNN: scratch. Overwritten with dz */
    float *hn;     /* GRU: saved h_h (batch, seq_len, hidden), step s at tau(s); IN/OUT: dzh_h */
    float *dx, *dkernel, *drkernel, *dbias, *dh0, *dc0;
    float *ap[2];  /* packed dz_s: n_rb panels of a_panel floats (k = G = ng*hidden) */
    float *apx[2]; /* packed dz_s for dx: GRU: its own (dzx), else ap */
    int64_t a_panel;
    float *bp;     /* packed [recurrent_kernel^T | kernel^T]: n_ub unit panels, then n_ib input
                    * panels (only when dx is wanted), G*nr floats each */
    int64_t n_ib;
    float *dh;     /* (batch, hidden): dL/dh_s flowing back from step s+1 (plus dh_last) */
    float *dc;     /* LSTM: (batch, hidden): dL/dc_s */
    float *xh;     /* (batch*seq_len, input + hidden + 1): [x | h_{s-1} | 1] at row b*T + tau(s) */
    float *dwu;    /* (input + hidden + 1, G) = xh^T @ dz: [dkernel; drecurrent; dbias] */
    const float *zeros;
    float *ws;
    int64_t ws_floats;
} bwd_ctx;

/* Rows [r0, r1) of xh: x's row, then h_{s-1} (y one step back; h0 or zeros at s = 0) times
 * h_mask if any, then 1, whose column of xh^T @ dz is dbias. */
static void build_xh(const bwd_ctx *cx, int64_t r0, int64_t r1) {
    const fnn_lstm_desc *d = cx->d;
    const int64_t T = d->seq_len, I = d->input_size, H = d->hidden_size, ld = I + H + 1;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / T, tau = r % T, s = d->go_backwards ? T - 1 - tau : tau;
        const float *h_prev =
            s > 0 ? cx->y + (b * T + s - 1) * H : (cx->h0 != NULL ? cx->h0 + b * H : cx->zeros);
        float *row = cx->xh + r * ld;
        if (I > 0) memcpy(row, cx->x + r * I, (size_t)I * sizeof(float));
        if (cx->h_mask != NULL)
            for (int64_t j = 0; j < H; j++) row[I + j] = h_prev[j] * cx->h_mask[b * H + j];
        else
            memcpy(row + I, h_prev, (size_t)H * sizeof(float));
        row[I + H] = 1.0f;
    }
}

/* GRU: dkernel = x^T @ dzx, drecurrent_kernel = h_prev^T @ dzh, dbias = [sum dzx; sum dzh],
 * where dzx (the gates buffer) and dzh share the z and r columns and dzh's h columns are in
 * hn. Four GEMMs on thread t's shares (disjoint parts of dwu, no barrier between), into
 * dwu as the LSTM's one: rows [dkernel; drecurrent_kernel; recurrent dbias; input dbias].
 * ws is sized for the LSTM's (m, G, rows) GEMM, which is no smaller in any dimension (and
 * fnn_gemm_serial_ws_floats grows with each). */
static void gru_weight_grads(const bwd_ctx *cx, int t, int nt, float *ws) {
    const fnn_gemm_cfg *cfg = &cx->kt->gemm;
    const int64_t I = cx->d->input_size, H = cx->d->hidden_size, G = 3 * H;
    const int64_t rows = cx->d->batch * cx->d->seq_len, m = I + H + 1;
    const float *xh = cx->xh, *hn = cx->hn;
    float *dwu = cx->dwu;
    /* {m, n, a (columns of xh), b, ldb, c} of each: z and r columns of all rows; h columns
     * of x rows; h columns of h_prev rows and the ones row; the input dbias' h columns */
    const struct {
        int64_t m, n;
        const float *a, *b;
        int64_t ldb;
        float *c;
    } part[4] = {{m, 2 * H, xh, cx->gates, G, dwu},
                 {I, H, xh, cx->gates + 2 * H, G, dwu + 2 * H},
                 {H + 1, H, xh + I, hn, H, dwu + I * G + 2 * H},
                 {1, H, xh + I + H, cx->gates + 2 * H, G, dwu + m * G + 2 * H}};
    for (int i = 0; i < 4; i++) {
        const fnn_gemm_problem p = {FNN_TRANS, FNN_NOTRANS, part[i].m,   part[i].n,
                                    rows,      1.0f,        part[i].a,   m,
                                    part[i].b, part[i].ldb, 0.0f,        part[i].c,
                                    G,         NULL,        FNN_ACT_LINEAR, 0.0f};
        gemm_share(cfg, &p, t, nt, ws);
    }
#pragma omp barrier
    /* the input dbias' z and r columns are the recurrent one's */
    if (t == 0) memcpy(dwu + m * G, dwu + (m - 1) * G, (size_t)(2 * H) * sizeof(float));
}

static void bwd_thread(const bwd_ctx *cx, int t, int nt) {
    /* FTZ/DAZ on this thread for the call (see internal.h); the caller's mode comes back */
    const unsigned int fp_mode = fnn_fp_enter();
    const fnn_lstm_desc *d = cx->d;
    const fnn_gemm_cfg *cfg = &cx->kt->gemm;
    const int64_t B = d->batch, T = d->seq_len, I = d->input_size, H = d->hidden_size;
    const int64_t ng = cx->ng, G = ng * H, mr = cx->tl.mr, nr = cx->tl.nr, b_panel = G * nr;
    const int64_t n_ub = cx->tl.n_ub, rows = B * T;
    const int lstm = cx->cell == RNN_LSTM, gru = cx->cell == RNN_GRU;
    float *ws = cx->ws + t * cx->ws_floats;

    /* Panel p: [c, j] = U[p*nr + j, c] (p < n_ub), or kernel[(p - n_ub)*nr + j, c]. */
    for (int64_t pnl = t; pnl < n_ub + cx->n_ib; pnl += nt) {
        const float *src = pnl < n_ub ? cx->rkernel : cx->kernel;
        const int64_t j0 = (pnl < n_ub ? pnl : pnl - n_ub) * nr;
        const int64_t cols = FNN_MIN(nr, (pnl < n_ub ? H : I) - j0);
        float *dst = cx->bp + pnl * b_panel;
        for (int64_t j = 0; j < nr; j++)
            for (int64_t c = 0; c < G; c++)
                dst[c * nr + j] = j < cols ? src[(j0 + j) * G + c] : 0.0f;
    }
    int64_t rb0 = 0, rb1 = 0, ub0 = 0, ub1 = 0;
    const int has_tile = tile_of(&cx->tl, t, &rb0, &rb1, &ub0, &ub1);
    const int64_t b0 = rb0 * mr, b1 = FNN_MIN(B, rb1 * mr);
    const int64_t j0 = ub0 * nr, j1 = FNN_MIN(H, ub1 * nr), nj = j1 - j0;
    /* This thread's input panels for dx: threads of one unit column of the grid share them. */
    const int64_t istep = fnn_ceil_div(cx->n_ib, cx->tl.tn);
    const int64_t ib0 = has_tile ? FNN_MIN(cx->n_ib, (t % cx->tl.tn) * istep) : 0;
    const int64_t ib1 = has_tile ? FNN_MIN(cx->n_ib, ib0 + istep) : 0;
    if (has_tile) {
        for (int64_t b = b0; b < b1; b++) {
            copy_or_zero(cx->dh + b * H + j0, cx->dh_last ? cx->dh_last + b * H + j0 : NULL, nj);
            if (lstm)
                copy_or_zero(cx->dc + b * H + j0, cx->dc_last ? cx->dc_last + b * H + j0 : NULL,
                             nj);
        }
        for (int64_t b = B; b < rb1 * mr; b++) /* padding rows of the packed dz panels */
            for (int64_t q = 0; q < ng; q++)
                for (int64_t j = j0; j < j1; j++) {
                    const int64_t at = (b / mr) * cx->a_panel + (q * H + j) * mr + b % mr;
                    cx->ap[0][at] = cx->ap[1][at] = cx->apx[0][at] = cx->apx[1][at] = 0.0f;
                }
    }
#pragma omp barrier

    for (int64_t s = T - 1; s >= 0; s--) {
        const int64_t tau = d->go_backwards ? T - 1 - s : s;
        const int need_dh = s > 0 || cx->dh0 != NULL;
        float *ap = cx->ap[s & 1];
        if (has_tile) {
            for (int64_t b = b0; b < b1; b++) {
                float *zrow = cx->gates + (b * T + tau) * G;
                const float *dy = cx->dy != NULL ? cx->dy + (b * T + s) * H + j0 : NULL;
                if (lstm) {
                    const float *c = cx->c_seq + (b * T + s) * H;
                    const float *c_prev =
                        s > 0 ? c - H : (cx->c0 != NULL ? cx->c0 + b * H : cx->zeros);
                    cx->kt->lstm_bwd_row(nj, d->activation, d->recurrent_activation, zrow + j0,
                                         H, c + j0, c_prev + j0, dy, cx->dh + b * H + j0,
                                         cx->dc + b * H + j0);
                } else if (gru) { /* dc: the part of dL/dh_{s-1} through z * h_{s-1} */
                    const float *h_prev = s > 0 ? cx->y + (b * T + s - 1) * H
                                                : (cx->h0 != NULL ? cx->h0 + b * H : cx->zeros);
                    cx->kt->rnn.gru_bwd(nj, d->activation, d->recurrent_activation, zrow + j0,
                                        H, cx->hn + (b * T + tau) * H + j0, h_prev + j0, dy,
                                        cx->dh + b * H + j0, cx->dc + b * H + j0);
                } else {
                    cx->kt->rnn.bwd(nj, d->activation, cx->y + (b * T + s) * H + j0, dy,
                                    cx->dh + b * H + j0, zrow + j0);
                }
            }
            /* dz_s into this step's packed A panels. GRU: dzx (the gates buffer) for dx;
             * dzh (dzx but dz_h * r, from c_seq) for dh_{s-1}. */
            for (int64_t q = 0; q < ng && (need_dh || cx->dx != NULL); q++) {
                const int64_t c0 = q * H + j0, c1 = q * H + j1;
                const float *dz = cx->gates + tau * G;
                if (gru && cx->dx != NULL)
                    pack_rows(dz, T * G, NULL, 0, b0, b1, c0, c1, mr, cx->apx[s & 1], cx->a_panel);
                if (gru && q == 2 && need_dh) /* hn's column j is dzh's 2H + j */
                    pack_rows(cx->hn + tau * H, T * H, NULL, 0, b0, b1, j0, j1, mr,
                              ap + 2 * H * mr, cx->a_panel);
                else if (!gru || need_dh)
                    pack_rows(dz, T * G, NULL, 0, b0, b1, c0, c1, mr, ap, cx->a_panel);
            }
        }
#pragma omp barrier
        /* dh_{s-1} = dz_s @ U^T for this tile; dx[:, tau] = dz_s @ kernel^T for its input
         * panels. The next step's pass reads only this tile's dh: no second barrier. */
        prefetch_plan pl = {{NULL}, {0}, {0}, 0, b0, nj, s > 0 ? b1 - b0 : 0};
        if (s > 0) { /* the rows the next step's pass reads */
            const int64_t tau1 = d->go_backwards ? T - s : s - 1;
            for (int64_t q = 0; q < ng; q++)
                plan_add(&pl, cx->gates + tau1 * G + q * H + j0, T * G, 1);
            if (gru)
                plan_add(&pl, cx->hn + tau1 * H + j0, T * H, 1);
            else
                plan_add(&pl, (lstm ? cx->c_seq : cx->y) + (s - 1) * H + j0, T * H, 0);
            if (cx->dy != NULL) plan_add(&pl, cx->dy + (s - 1) * H + j0, T * H, 0);
        }
        const int64_t parts = (need_dh ? ub1 - ub0 : 0) + (ib1 - ib0);
        if (has_tile && need_dh)
            for (int64_t ub = ub0; ub < ub1; ub++) {
                prefetch_part(&pl, ub - ub0, parts);
                panel_gemm(&cx->tl, G, panel_kc(cfg, nr), ap, cx->a_panel, rb0, rb1, B,
                           cx->bp + ub * b_panel, FNN_MIN(nr, H - ub * nr), 0.0f,
                           cx->dh + ub * nr, H);
            }
        if (has_tile && need_dh && (cx->h_mask != NULL || gru)) /* the GEMM: dL/d(h * mask) */
            for (int64_t b = b0; b < b1; b++)
                for (int64_t j = j0; j < j1; j++) {
                    float v = cx->dh[b * H + j];
                    if (cx->h_mask != NULL) v *= cx->h_mask[b * H + j];
                    cx->dh[b * H + j] = gru ? v + cx->dc[b * H + j] : v;
                }
        for (int64_t ib = ib0; ib < ib1; ib++) {
            if (has_tile && need_dh) prefetch_part(&pl, ub1 - ub0 + ib - ib0, parts);
            panel_gemm(&cx->tl, G, panel_kc(cfg, nr), cx->apx[s & 1], cx->a_panel, rb0, rb1, B,
                       cx->bp + (n_ub + ib) * b_panel, FNN_MIN(nr, I - ib * nr), 0.0f,
                       cx->dx + tau * I + ib * nr, T * I);
        }
    }
    if (has_tile)
        for (int64_t b = b0; b < b1; b++) {
            if (cx->dh0 != NULL)
                memcpy(cx->dh0 + b * H + j0, cx->dh + b * H + j0, (size_t)nj * sizeof(float));
            if (cx->dc0 != NULL)
                memcpy(cx->dc0 + b * H + j0, cx->dc + b * H + j0, (size_t)nj * sizeof(float));
        }

    /* dkernel, drecurrent_kernel and dbias in one GEMM over every step: xh^T @ dz. */
    const int64_t rstep = fnn_ceil_div(rows, nt);
    build_xh(cx, FNN_MIN(rows, t * rstep), FNN_MIN(rows, (t + 1) * rstep));
#pragma omp barrier
    const int64_t m = I + H + 1;
    if (gru)
        gru_weight_grads(cx, t, nt, ws);
    else {
        const fnn_gemm_problem dwu = {FNN_TRANS,  FNN_NOTRANS, m,    G,    rows, 1.0f,
                                      cx->xh,     m,           cx->gates, G,    0.0f,
                                      cx->dwu,    G,           NULL, FNN_ACT_LINEAR, 0.0f};
        gemm_share(cfg, &dwu, t, nt, ws);
    }
#pragma omp barrier
    const int64_t mstep = fnn_ceil_div(m, nt);
    for (int64_t r = t * mstep; r < FNN_MIN(m, (t + 1) * mstep); r++) {
        float *dst = r < I ? cx->dkernel + r * G
                           : (r < I + H ? cx->drkernel + (r - I) * G : cx->dbias);
        if (dst == NULL) continue;
        if (gru && r == m - 1) /* GRU dbias (2, G): input (dwu row m), then recurrent */
            memcpy(dst + G, cx->dwu + r * G, (size_t)G * sizeof(float));
        memcpy(dst, cx->dwu + (gru && r == m - 1 ? m : r) * G, (size_t)G * sizeof(float));
    }
    fnn_fp_leave(fp_mode);
}

/* The backward of either cell (fnn_lstm_bwd_f32's arguments; SimpleRNN: c0, c_seq, gates,
 * dc_last and dc0 NULL, dz goes to scratch). */
static fnn_status rnn_bwd(rnn_cell cell, const fnn_lstm_desc *desc, const float *x,
                         const float *kernel, const float *recurrent_kernel, const float *h0,
                         const float *c0, const float *h_mask, const float *y,
                         const float *c_seq, float *hn_seq, float *gates, const float *dy,
                         const float *dh_last, const float *dc_last, float *dx, float *dkernel,
                         float *drecurrent_kernel, float *dbias, float *dh0, float *dc0,
                         int n_threads) {
    fnn_status st = check_desc(desc);
    if (st != FNN_OK) return st;
    const int64_t B = desc->batch, T = desc->seq_len, I = desc->input_size;
    const int64_t ng = gate_count(cell), H = desc->hidden_size, G = ng * H;
    const int64_t n_seq = B * T * H;
    const int saved = cell != RNN_SIMPLE, gru = cell == RNN_GRU; /* gates + c_seq or hn */
    const int64_t n_bias = gru ? 2 * G : G;
    if ((x == NULL && B * T * I > 0) || (kernel == NULL && I * G > 0) ||
        (recurrent_kernel == NULL && H * G > 0) || (dkernel == NULL && I * G > 0) ||
        (drecurrent_kernel == NULL && H * G > 0) ||
        ((y == NULL || (saved && ((gru ? hn_seq : c_seq) == NULL || gates == NULL))) &&
         n_seq > 0))
        return FNN_ERR_ARG;
    if (n_seq == 0) { /* nothing flows: zero weight gradients, states pass through */
        if (I * G > 0) memset(dkernel, 0, (size_t)(I * G) * sizeof(float));
        if (H * G > 0) memset(drecurrent_kernel, 0, (size_t)(H * G) * sizeof(float));
        if (dbias != NULL && G > 0) memset(dbias, 0, (size_t)n_bias * sizeof(float));
        if (dx != NULL && B * T * I > 0) memset(dx, 0, (size_t)(B * T * I) * sizeof(float));
        if (dh0 != NULL && B * H > 0) copy_or_zero(dh0, dh_last, B * H);
        if (dc0 != NULL && B * H > 0) copy_or_zero(dc0, dc_last, B * H);
        return FNN_OK;
    }

    bwd_ctx cx = {0};
    cx.kt = fnn_kernels();
    const fnn_gemm_cfg *cfg = &cx.kt->gemm;
    const int nt = call_threads(n_threads, (double)B * T * G * (double)(2 * I + 2 * H));
    cx.d = desc;
    cx.cell = cell, cx.ng = ng;
    cx.tl = make_tiling(cfg, B, H, ng, nt);
    cx.x = x, cx.kernel = kernel, cx.rkernel = recurrent_kernel, cx.h0 = h0, cx.c0 = c0;
    cx.h_mask = h_mask, cx.y = y, cx.c_seq = c_seq, cx.dy = dy, cx.dh_last = dh_last, cx.dc_last = dc_last;
    cx.gates = gates, cx.hn = hn_seq, cx.dx = dx, cx.dkernel = dkernel;
    cx.drkernel = drecurrent_kernel;
    cx.dbias = dbias, cx.dh0 = dh0, cx.dc0 = dc0;
    cx.a_panel = fnn_round_up(cx.tl.mr * G, 16);
    cx.n_ib = dx != NULL ? fnn_ceil_div(I, cx.tl.nr) : 0;
    const int64_t rows = B * T, m = I + H + 1;
    cx.ws_floats = fnn_round_up(fnn_gemm_serial_ws_floats(cfg, m, G, rows), 16);

    const int64_t n_ap = cx.tl.n_rb * cx.a_panel;
    const int64_t n_bp = (cx.tl.n_ub + cx.n_ib) * G * cx.tl.nr;
    const int64_t n_state = fnn_round_up(B * H, 16), n_zero = fnn_round_up(H, 16);
    const int64_t n_xh = fnn_round_up(rows * m, 16), n_dwu = fnn_round_up((m + gru) * G, 16);
    const int64_t n_dz = saved ? 0 : fnn_round_up(rows * G, 16);
    const int64_t n_apx = gru && dx != NULL ? n_ap : 0;
    const int64_t total = 2 * (n_ap + n_apx) + n_bp + 2 * n_state + n_xh + n_dwu + n_dz + n_zero +
                          nt * cx.ws_floats;
    float *mem = fnn_malloc((size_t)total * sizeof(float));
    if (mem == NULL) return FNN_ERR_NOMEM;
    float *p = mem;
    if (!saved) cx.gates = p, p += n_dz;
    cx.ap[0] = p, p += n_ap;
    cx.ap[1] = p, p += n_ap;
    cx.apx[0] = n_apx > 0 ? p : cx.ap[0], p += n_apx;
    cx.apx[1] = n_apx > 0 ? p : cx.ap[1], p += n_apx;
    cx.bp = p, p += n_bp;
    cx.dh = p, p += n_state;
    cx.dc = p, p += n_state;
    cx.xh = p, p += n_xh;
    cx.dwu = p, p += n_dwu;
    memset(p, 0, (size_t)n_zero * sizeof(float));
    cx.zeros = p, p += n_zero;
    cx.ws = p;

    if (nt == 1) {
        bwd_thread(&cx, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        bwd_thread(&cx, THREAD_ID(), nt);
    }
    fnn_free(mem);
    return FNN_OK;
}

fnn_status fnn_lstm_bwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                            const float *recurrent_kernel, const float *h0, const float *c0,
                            const float *h_mask, const float *y, const float *c_seq,
                            float *gates, const float *dy, const float *dh_last,
                            const float *dc_last, float *dx, float *dkernel,
                            float *drecurrent_kernel, float *dbias, float *dh0, float *dc0,
                            int n_threads) {
    return rnn_bwd(RNN_LSTM, desc, x, kernel, recurrent_kernel, h0, c0, h_mask, y, c_seq, NULL,
                   gates, dy, dh_last, dc_last, dx, dkernel, drecurrent_kernel, dbias, dh0, dc0,
                   n_threads);
}

fnn_status fnn_simple_rnn_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *h0,
                                  const float *h_mask, const float *y, const float *dy,
                                  const float *dh_last, float *dx, float *dkernel,
                                  float *drecurrent_kernel, float *dbias, float *dh0,
                                  int n_threads) {
    return rnn_bwd(RNN_SIMPLE, desc, x, kernel, recurrent_kernel, h0, NULL, h_mask, y, NULL, NULL,
                   NULL, dy, dh_last, NULL, dx, dkernel, drecurrent_kernel, dbias, dh0, NULL,
                   n_threads);
}

fnn_status fnn_gru_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *h0, const float *h_mask,
                           const float *y, float *gates, float *hn_seq, const float *dy,
                           const float *dh_last, float *dx, float *dkernel,
                           float *drecurrent_kernel, float *dbias, float *dh0, int n_threads) {
    return rnn_bwd(RNN_GRU, desc, x, kernel, recurrent_kernel, h0, NULL, h_mask, y, NULL, hn_seq,
                   gates, dy, dh_last, NULL, dx, dkernel, drecurrent_kernel, dbias, dh0, NULL,
                   n_threads);
}
