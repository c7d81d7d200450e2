/* rnn_fwd.c - LSTM, GRU and SimpleRNN forward through time over a whole sequence (contract:
 * fastnn.h; the driver's shared pieces, threads and determinism: rnn_internal.h). The SimpleRNN
 * has no c state. The GRU saves the recurrent part of its candidate in c_seq's place (hn).
 *
 * Forward. One GEMM projects every step's input: Z = x @ kernel + bias over batch*seq_len rows,
 * batch-major (batch, seq_len, 4*hidden), written straight into the caller's gates buffer
 * (training) or a workspace (inference). Then per step s the micro-kernel adds
 * h_{s-1} @ recurrent_kernel into Z[:, tau(s)] from panels packed once per call, and one fused
 * pass (kt->lstm_fwd_row) turns the step's four gates into activated gates, c_s and h_s.
 */
#include <string.h>

#include "rnn_internal.h"

/* Whether the forward fuses the input projection into each step's GEMM (k = input + hidden,
 * A = [x_tau | h_{s-1}]) instead of one GEMM over all steps before the loop. Fused, the
 * projections never go through memory: the separate GEMM writes batch * seq_len * 4 * hidden
 * floats that the loop then reads back (64 x 50 x 1024 floats, 13 MB: about a third of the
 * forward's time on the project machine). But each step's GEMM computes whole row tiles, so a
 * batch that fills its tiles poorly pays the padding on the projection too: fused when padding
 * adds at most a quarter, and the input fits one k chunk of the ISA (the fused step then gives
 * the separate GEMM's bits: results do not depend on the batch size a row is computed in).
 * Depends on the shapes only (the same sums for any thread count). */
static int fused_step(const fnn_gemm_cfg *cfg, const rnn_tiling *tl, int64_t batch, int64_t input) {
    return input <= cfg->kc && 4 * fnn_round_up(batch, tl->mr) <= 5 * batch;
}

typedef struct {
    const fnn_kernel_table *kt;
    const fnn_lstm_desc *d;
    fnn_rnn_cell cell;
    int64_t ng;    /* gates per unit: 4 (LSTM) or 1 (SimpleRNN) */
    int training;  /* LSTM: gates and c_seq are saved */
    rnn_tiling tl;
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
    const int training = cx->training, lstm = cx->cell == FNN_RNN_LSTM;

    /* Separate step: the input projection of every step in one GEMM. Fused step: none. */
    if (kx == 0) {
        const fnn_gemm_problem proj = {FNN_NOTRANS, FNN_NOTRANS, B * T, G, I, 1.0f, cx->x, I,
                                       cx->kernel, G, 0.0f, cx->z, G, cx->bias, FNN_ACT_LINEAR,
                                       0.0f};
        fnn_rnn_gemm_share(cfg, &proj, t, nt, cx->ws + t * cx->ws_floats);
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
    /* Fused step: threads of one row group (fnn_rnn_tile_of: rows by t / tn) split x's columns;
     * they pack x_tau of the rows into the A panels for every step (whether or not they own
     * units). */
    int64_t xb0 = 0, xb1 = 0, xc0 = 0, xc1 = 0;
    if (kx > 0 && t < cx->tl.tm * cx->tl.tn) {
        const int64_t rstep = fnn_ceil_div(cx->tl.n_rb, cx->tl.tm), g = t % cx->tl.tn;
        xb0 = FNN_MIN(B, (t / cx->tl.tn) * rstep * mr);
        xb1 = FNN_MIN(B, (t / cx->tl.tn + 1) * rstep * mr);
        xc0 = g * kx / cx->tl.tn;
        xc1 = (g + 1) * kx / cx->tl.tn;
        const int64_t tau0 = d->go_backwards ? T - 1 : 0;
        fnn_rnn_pack_rows(cx->x + tau0 * I, T * I, NULL, 0, xb0, xb1, xc0, xc1, mr, cx->ap[0],
                          cx->a_panel);
    }

    int64_t rb0 = 0, rb1 = 0, ub0 = 0, ub1 = 0;
    const int has_tile = fnn_rnn_tile_of(&cx->tl, t, &rb0, &rb1, &ub0, &ub1);
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
                fnn_rnn_copy_or_zero(cx->cbuf + b * H + j0,
                                     cx->c0 != NULL ? cx->c0 + b * H + j0 : NULL, j1 - j0);
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
            rnn_prefetch_plan pl = {{NULL}, {0}, {0}, 0, b0, j1 - j0, b1 - b0};
            if (kx == 0 || training) /* z: projections (read) or the gates buffer (written) */
                for (int64_t q = 0; q < ng; q++)
                    fnn_rnn_plan_add(&pl, cx->z + tau * G + q * H + j0, T * G, kx > 0);
            if (training) fnn_rnn_plan_add(&pl, cx->c_seq + s * H + j0, T * H, 1);
            if (cx->y != NULL) fnn_rnn_plan_add(&pl, cx->y + s * H + j0, T * H, 1);
            /* Fused: x_tau @ kernel into zx over the panels' first kx rows, in one chunk of
             * the ISA's kc as the separate projection GEMM takes it, then + bias below: the
             * same bits as that GEMM, so results do not depend on which path a batch takes. */
            const int64_t parts = (ub1 - ub0) * ng * ((kx > 0) + recurrent);
            int64_t part = 0;
            for (int64_t ub = ub0; ub < ub1 && kx > 0; ub++)
                for (int64_t q = 0; q < ng; q++) {
                    fnn_rnn_prefetch_part(&pl, part++, parts);
                    fnn_rnn_panel_gemm(&cx->tl, kx, cfg->kc, cx->ap[s & 1], cx->a_panel, rb0, rb1,
                                       B, cx->bp + (ub * ng + q) * b_panel,
                                       FNN_MIN(nr, H - ub * nr), 0.0f, cx->zx + q * H + ub * nr, G);
                }
            for (int64_t ub = ub0; ub < ub1 && recurrent; ub++)
                for (int64_t q = 0; q < ng; q++) {
                    fnn_rnn_prefetch_part(&pl, part++, parts);
                    fnn_rnn_panel_gemm(&cx->tl, H, fnn_rnn_panel_kc(cfg, nr),
                                       cx->ap[s & 1] + kx * mr, cx->a_panel, rb0, rb1, B,
                                       cx->bp + (ub * ng + q) * b_panel + kx * nr,
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
                } else if (cx->cell == FNN_RNN_GRU) { /* h_prev unmasked; hbuf: h_out in place */
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
                fnn_rnn_pack_rows(cx->y != NULL ? cx->y + s * H : cx->hbuf,
                                  cx->y != NULL ? T * H : H, cx->h_mask, H, b0, b1, j0, j1, mr,
                                  cx->ap[(s + 1) & 1] + kx * mr, cx->a_panel);
        }
        if (s < T - 1 && xb0 < xb1) /* x_tau of the next step, this thread's columns */
            fnn_rnn_pack_rows(cx->x + (d->go_backwards ? T - 2 - s : s + 1) * I, T * I, NULL, 0,
                              xb0, xb1, xc0, xc1, mr, cx->ap[(s + 1) & 1], cx->a_panel);
        if (s < T - 1) {
#pragma omp barrier
        }
    }
    fnn_fp_leave(fp_mode);
}

/* The forward of either cell (fnn_lstm_fwd_f32's arguments; SimpleRNN: c0, c_last, gates and
 * c_seq NULL). */
static fnn_status rnn_fwd(fnn_rnn_cell cell, const fnn_lstm_desc *desc, const float *x,
                         const float *kernel, const float *recurrent_kernel, const float *bias,
                         const float *h0, const float *c0, const float *h_mask, float *y,
                         float *h_last, float *c_last, float *gates, float *c_seq,
                         int n_threads) {
    fnn_status st = fnn_rnn_check_desc(desc);
    if (st != FNN_OK) return st;
    const int64_t B = desc->batch, T = desc->seq_len, I = desc->input_size;
    const int64_t ng = fnn_rnn_gate_count(cell), H = desc->hidden_size, G = ng * H;
    const int training = gates != NULL || c_seq != NULL;
    if (training && (gates == NULL || c_seq == NULL || (y == NULL && B * T * H > 0)))
        return FNN_ERR_ARG;
    if ((x == NULL && B * T * I > 0) || (kernel == NULL && I * G > 0) ||
        (recurrent_kernel == NULL && H * G > 0))
        return FNN_ERR_ARG;
    if (B == 0 || H == 0) return FNN_OK;
    if (T == 0) {
        if (h_last != NULL) fnn_rnn_copy_or_zero(h_last, h0, B * H);
        if (c_last != NULL) fnn_rnn_copy_or_zero(c_last, c0, B * H);
        return FNN_OK;
    }

    fwd_ctx cx = {0};
    cx.kt = fnn_kernels();
    const fnn_gemm_cfg *cfg = &cx.kt->gemm;
    const int nt = fnn_rnn_call_threads(n_threads, (double)B * T * G * (double)(I + H));
    cx.d = desc;
    cx.cell = cell, cx.ng = ng, cx.training = training;
    cx.tl = fnn_rnn_make_tiling(cfg, B, H, ng, nt);
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
    const int64_t n_c = cell == FNN_RNN_LSTM && !training ? n_state : 0;
    const int64_t n_h = y == NULL ? n_state : 0;
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
        fwd_thread(&cx, FNN_RNN_THREAD_ID(), nt);
    }
    fnn_free(mem);
    return FNN_OK;
}

fnn_status fnn_lstm_fwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                            const float *recurrent_kernel, const float *bias, const float *h0,
                            const float *c0, const float *h_mask, float *y, float *h_last,
                            float *c_last, float *gates, float *c_seq, int n_threads) {
    return rnn_fwd(FNN_RNN_LSTM, desc, x, kernel, recurrent_kernel, bias, h0, c0, h_mask, y,
                   h_last, c_last, gates, c_seq, n_threads);
}

fnn_status fnn_gru_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                           const float *recurrent_kernel, const float *bias, const float *h0,
                           const float *h_mask, float *y, float *h_last, float *gates,
                           float *hn_seq, int n_threads) {
    return rnn_fwd(FNN_RNN_GRU, desc, x, kernel, recurrent_kernel, bias, h0, NULL, h_mask, y,
                   h_last, NULL, gates, hn_seq, n_threads);
}

fnn_status fnn_simple_rnn_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                                  const float *recurrent_kernel, const float *bias,
                                  const float *h0, const float *h_mask, float *y, float *h_last,
                                  int n_threads) {
    return rnn_fwd(FNN_RNN_SIMPLE, desc, x, kernel, recurrent_kernel, bias, h0, NULL, h_mask, y,
                   h_last, NULL, NULL, NULL, n_threads);
}