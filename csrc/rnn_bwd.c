/* rnn_bwd.c - LSTM, GRU and SimpleRNN backward through time over a whole sequence (contract:
 * fastnn.h; the driver's shared pieces, threads and determinism: rnn_internal.h). The
 * SimpleRNN's backward reads h_s from y. The GRU's forward saved the recurrent part of its
 * candidate in c_seq's place (hn); its backward's dz differs between the input projection
 * (dzx: dx, dkernel) and the recurrent GEMM (dzh: dh_{s-1}, drecurrent_kernel), and the
 * z * h_{s-1} path adds to dh_{s-1} directly (carried in dc's place); the weight gradients
 * then take four GEMMs (gru_weight_grads).
 *
 * Backward. Per step the fused pass (kt->lstm_bwd_row) overwrites the saved gates with dz_s and
 * carries dc, then one micro-kernel pass over panels of [recurrent_kernel^T | kernel^T] packed
 * once gives dh_{s-1} = dz_s @ recurrent_kernel^T and dx[:, tau] = dz_s @ kernel^T (dz_s is
 * still in cache and already packed). After the loop one large GEMM over every step,
 * [x | h_prev | 1]^T @ dz, gives dkernel, drecurrent_kernel and dbias together (dz is packed
 * once; the column of ones makes the bias gradient a GEMM row).
 */
#include <string.h>

#include "rnn_internal.h"

typedef struct {
    const fnn_kernel_table *kt;
    const fnn_lstm_desc *d;
    fnn_rnn_cell cell;
    int64_t ng;
    rnn_tiling tl;
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
        fnn_rnn_gemm_share(cfg, &p, t, nt, ws);
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
    const int lstm = cx->cell == FNN_RNN_LSTM, gru = cx->cell == FNN_RNN_GRU;
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
    const int has_tile = fnn_rnn_tile_of(&cx->tl, t, &rb0, &rb1, &ub0, &ub1);
    const int64_t b0 = rb0 * mr, b1 = FNN_MIN(B, rb1 * mr);
    const int64_t j0 = ub0 * nr, j1 = FNN_MIN(H, ub1 * nr), nj = j1 - j0;
    /* This thread's input panels for dx: threads of one unit column of the grid share them. */
    const int64_t istep = fnn_ceil_div(cx->n_ib, cx->tl.tn);
    const int64_t ib0 = has_tile ? FNN_MIN(cx->n_ib, (t % cx->tl.tn) * istep) : 0;
    const int64_t ib1 = has_tile ? FNN_MIN(cx->n_ib, ib0 + istep) : 0;
    if (has_tile) {
        for (int64_t b = b0; b < b1; b++) {
            fnn_rnn_copy_or_zero(cx->dh + b * H + j0, cx->dh_last ? cx->dh_last + b * H + j0 : NULL,
                                 nj);
            if (lstm)
                fnn_rnn_copy_or_zero(cx->dc + b * H + j0,
                                     cx->dc_last ? cx->dc_last + b * H + j0 : NULL, nj);
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
                    fnn_rnn_pack_rows(dz, T * G, NULL, 0, b0, b1, c0, c1, mr, cx->apx[s & 1],
                                      cx->a_panel);
                if (gru && q == 2 && need_dh) /* hn's column j is dzh's 2H + j */
                    fnn_rnn_pack_rows(cx->hn + tau * H, T * H, NULL, 0, b0, b1, j0, j1, mr,
                                      ap + 2 * H * mr, cx->a_panel);
                else if (!gru || need_dh)
                    fnn_rnn_pack_rows(dz, T * G, NULL, 0, b0, b1, c0, c1, mr, ap, cx->a_panel);
            }
        }
#pragma omp barrier
        /* dh_{s-1} = dz_s @ U^T for this tile; dx[:, tau] = dz_s @ kernel^T for its input
         * panels. The next step's pass reads only this tile's dh: no second barrier. */
        rnn_prefetch_plan pl = {{NULL}, {0}, {0}, 0, b0, nj, s > 0 ? b1 - b0 : 0};
        if (s > 0) { /* the rows the next step's pass reads */
            const int64_t tau1 = d->go_backwards ? T - s : s - 1;
            for (int64_t q = 0; q < ng; q++)
                fnn_rnn_plan_add(&pl, cx->gates + tau1 * G + q * H + j0, T * G, 1);
            if (gru)
                fnn_rnn_plan_add(&pl, cx->hn + tau1 * H + j0, T * H, 1);
            else
                fnn_rnn_plan_add(&pl, (lstm ? cx->c_seq : cx->y) + (s - 1) * H + j0, T * H, 0);
            if (cx->dy != NULL) fnn_rnn_plan_add(&pl, cx->dy + (s - 1) * H + j0, T * H, 0);
        }
        const int64_t parts = (need_dh ? ub1 - ub0 : 0) + (ib1 - ib0);
        if (has_tile && need_dh)
            for (int64_t ub = ub0; ub < ub1; ub++) {
                fnn_rnn_prefetch_part(&pl, ub - ub0, parts);
                fnn_rnn_panel_gemm(&cx->tl, G, fnn_rnn_panel_kc(cfg, nr), ap, cx->a_panel, rb0, rb1,
                                   B, cx->bp + ub * b_panel, FNN_MIN(nr, H - ub * nr), 0.0f,
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
            if (has_tile && need_dh) fnn_rnn_prefetch_part(&pl, ub1 - ub0 + ib - ib0, parts);
            fnn_rnn_panel_gemm(&cx->tl, G, fnn_rnn_panel_kc(cfg, nr), cx->apx[s & 1], cx->a_panel,
                               rb0, rb1, B, cx->bp + (n_ub + ib) * b_panel,
                               FNN_MIN(nr, I - ib * nr), 0.0f, cx->dx + tau * I + ib * nr, T * I);
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
        fnn_rnn_gemm_share(cfg, &dwu, t, nt, ws);
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
static fnn_status rnn_bwd(fnn_rnn_cell cell, const fnn_lstm_desc *desc, const float *x,
                         const float *kernel, const float *recurrent_kernel, const float *h0,
                         const float *c0, const float *h_mask, const float *y,
                         const float *c_seq, float *hn_seq, float *gates, const float *dy,
                         const float *dh_last, const float *dc_last, float *dx, float *dkernel,
                         float *drecurrent_kernel, float *dbias, float *dh0, float *dc0,
                         int n_threads) {
    fnn_status st = fnn_rnn_check_desc(desc);
    if (st != FNN_OK) return st;
    const int64_t B = desc->batch, T = desc->seq_len, I = desc->input_size;
    const int64_t ng = fnn_rnn_gate_count(cell), H = desc->hidden_size, G = ng * H;
    const int64_t n_seq = B * T * H;
    const int saved = cell != FNN_RNN_SIMPLE, gru = cell == FNN_RNN_GRU; /* gates + c_seq or hn */
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
        if (dh0 != NULL && B * H > 0) fnn_rnn_copy_or_zero(dh0, dh_last, B * H);
        if (dc0 != NULL && B * H > 0) fnn_rnn_copy_or_zero(dc0, dc_last, B * H);
        return FNN_OK;
    }

    bwd_ctx cx = {0};
    cx.kt = fnn_kernels();
    const fnn_gemm_cfg *cfg = &cx.kt->gemm;
    const int nt = fnn_rnn_call_threads(n_threads, (double)B * T * G * (double)(2 * I + 2 * H));
    cx.d = desc;
    cx.cell = cell, cx.ng = ng;
    cx.tl = fnn_rnn_make_tiling(cfg, B, H, ng, nt);
    cx.x = x, cx.kernel = kernel, cx.rkernel = recurrent_kernel, cx.h0 = h0, cx.c0 = c0;
    cx.h_mask = h_mask, cx.y = y, cx.c_seq = c_seq, cx.dy = dy, cx.dh_last = dh_last;
    cx.dc_last = dc_last;
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
        bwd_thread(&cx, FNN_RNN_THREAD_ID(), nt);
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
    return rnn_bwd(FNN_RNN_LSTM, desc, x, kernel, recurrent_kernel, h0, c0, h_mask, y, c_seq, NULL,
                   gates, dy, dh_last, dc_last, dx, dkernel, drecurrent_kernel, dbias, dh0, dc0,
                   n_threads);
}

fnn_status fnn_simple_rnn_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *h0,
                                  const float *h_mask, const float *y, const float *dy,
                                  const float *dh_last, float *dx, float *dkernel,
                                  float *drecurrent_kernel, float *dbias, float *dh0,
                                  int n_threads) {
    return rnn_bwd(FNN_RNN_SIMPLE, desc, x, kernel, recurrent_kernel, h0, NULL, h_mask, y, NULL,
                   NULL, NULL, dy, dh_last, NULL, dx, dkernel, drecurrent_kernel, dbias, dh0,
                   NULL, n_threads);
}

fnn_status fnn_gru_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *h0, const float *h_mask,
                           const float *y, float *gates, float *hn_seq, const float *dy,
                           const float *dh_last, float *dx, float *dkernel,
                           float *drecurrent_kernel, float *dbias, float *dh0, int n_threads) {
    return rnn_bwd(FNN_RNN_GRU, desc, x, kernel, recurrent_kernel, h0, NULL, h_mask, y, NULL,
                   hn_seq, gates, dy, dh_last, NULL, dx, dkernel, drecurrent_kernel, dbias, dh0,
                   NULL, n_threads);
}