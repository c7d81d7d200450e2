/* gemm.c - the GEMM framework: blocking loops, packing, threading, epilogue. No intrinsics.
 *
 * Loop nest (BLIS): jc over nc -> pc over kc (pack a B panel) -> ic over mc (pack an A block)
 * -> jr over nr -> ir over mr -> micro-kernel. Threads split C into a tm x tn grid of
 * sub-matrices (aligned to mr and nr) and each runs the whole loop nest on its own part with its
 * own packing buffers, so a call needs no barrier and every element of C is reduced over k in
 * the same order whatever the thread count (bitwise-reproducible results).
 */
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Work (multiply-adds, m*n*k) each thread must get before a call uses it. fastnn's OpenMP
 * threads sleep as soon as a region ends (OMP_WAIT_POLICY=PASSIVE, see fastnn/_config.py), so
 * each region pays a futex wake-up of tens of microseconds on the project VM. Measured on it
 * with square GEMMs, 1 vs 2 threads alternating in one run (`python -m fastnn.bench --only gemm
 * --threads 1,2`): 2 threads ran 0.84-1.0x as fast as 1 at 128^3, 0.90-1.18x at 256^3,
 * 1.41-1.85x at 512^3, 1.89x at 1024^3. 10 M multiply-adds per thread (~270^3 on two threads)
 * is where the second thread reliably pays. */
#define FNN_GEMM_MIN_WORK_PER_THREAD (10.0 * 1024 * 1024)

/* Scratch for one thread: a packed A block and a packed B panel, each 64-byte aligned. */
static int64_t pack_a_floats(const fnn_gemm_cfg *cfg, int64_t m, int64_t k) {
    return fnn_round_up(FNN_MIN(cfg->mc, fnn_round_up(m, cfg->mr)) * FNN_MIN(cfg->kc, k), 16);
}

static int64_t pack_b_floats(const fnn_gemm_cfg *cfg, int64_t n, int64_t k) {
    return fnn_round_up(FNN_MIN(cfg->nc, fnn_round_up(n, cfg->nr)) * FNN_MIN(cfg->kc, k), 16);
}

/* Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into mr-row micro-panels: panel r holds
 * kc steps of mr floats. Rows past mc are zero. */
static void pack_a(fnn_gemm_pack_t_fn pack_t, const fnn_gemm_problem *p, int64_t mr, int64_t i0,
                   int64_t mc, int64_t p0, int64_t kc, float *FNN_RESTRICT ap) {
    for (int64_t ir = 0; ir < mc; ir += mr) {
        const int64_t rows = FNN_MIN(mr, mc - ir);
        float *FNN_RESTRICT dst = ap + ir * kc;
        if (p->ta == FNN_NOTRANS) { /* rows of A become columns of the panel: transpose */
            pack_t(p->a + (i0 + ir) * p->lda + p0, p->lda, rows, kc, mr, dst);
            continue;
        }
        /* op(A) = A^T: the panel's rows are A's rows */
        const float *FNN_RESTRICT src = p->a + p0 * p->lda + i0 + ir;
        if (rows == mr && (mr == 12 || mr == 8)) {
            /* Full AVX-512 panels (12 rows, or the 8-row kernel's): fixed-size copies the
             * compiler inlines as vector moves, about 3x faster than the element loop. */
            if (mr == 12)
                for (int64_t kk = 0; kk < kc; kk++)
                    memcpy(dst + kk * 12, src + kk * p->lda, 12 * sizeof(float));
            else
                for (int64_t kk = 0; kk < kc; kk++)
                    memcpy(dst + kk * 8, src + kk * p->lda, 8 * sizeof(float));
            continue;
        }
        for (int64_t kk = 0; kk < kc; kk++) {
            const float *FNN_RESTRICT row = src + kk * p->lda;
            float *FNN_RESTRICT out = dst + kk * mr;
            for (int64_t i = 0; i < rows; i++) out[i] = row[i];
            for (int64_t i = rows; i < mr; i++) out[i] = 0.0f;
        }
    }
}

/* Packs rows [p0, p0+kc) x columns [j0, j0+nc) of op(B) into nr-column micro-panels: panel r
 * holds kc steps of nr floats. Columns past nc are zero. */
static void pack_b(fnn_gemm_pack_t_fn pack_t, const fnn_gemm_problem *p, int64_t nr, int64_t p0,
                   int64_t kc, int64_t j0, int64_t nc, float *FNN_RESTRICT bp) {
    for (int64_t jr = 0; jr < nc; jr += nr) {
        const int64_t cols = FNN_MIN(nr, nc - jr);
        float *FNN_RESTRICT dst = bp + jr * kc;
        if (p->tb == FNN_NOTRANS && cols == FNN_GEMM_MAX_NR && nr == FNN_GEMM_MAX_NR) {
            /* The common full AVX-512 panel: a fixed-size copy the compiler inlines as vector
             * moves (a variable-size one became a memmove call per 128-byte row). */
            for (int64_t kk = 0; kk < kc; kk++)
                memcpy(dst + kk * FNN_GEMM_MAX_NR, p->b + (p0 + kk) * p->ldb + j0 + jr,
                       FNN_GEMM_MAX_NR * sizeof(float));
        } else if (p->tb == FNN_NOTRANS) {
            for (int64_t kk = 0; kk < kc; kk++) {
                const float *FNN_RESTRICT src = p->b + (p0 + kk) * p->ldb + j0 + jr;
                float *FNN_RESTRICT row = dst + kk * nr;
                for (int64_t j = 0; j < cols; j++) row[j] = src[j];
                for (int64_t j = cols; j < nr; j++) row[j] = 0.0f;
            }
        } else {
            pack_t(p->b + (j0 + jr) * p->ldb + p0, p->ldb, cols, kc, nr, dst);
        }
    }
}

/* C tile (rows x cols at c) = act(C + bias). */
static void epilogue(const fnn_kernel_table *kt, const fnn_gemm_problem *p, float *c,
                     int64_t rows, int64_t cols, int64_t j0) {
    for (int64_t i = 0; i < rows; i++) {
        float *row = c + i * p->ldc;
        if (p->bias != NULL)
            for (int64_t j = 0; j < cols; j++) row[j] += p->bias[j0 + j];
        if (p->act != FNN_ACT_LINEAR) kt->act_fwd(p->act, p->act_alpha, row, row, cols);
    }
}

/* Edge tiles: the micro-kernel wrote a full tile (row stride ld) with beta = 0; merge its valid
 * rows x cols into C as C = tile + beta * C (beta == 0: C not read). */
static void merge_tile(const float *tile, int64_t ld, int64_t rows, int64_t cols, float beta,
                       float *c, int64_t ldc) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            const float v = tile[i * ld + j];
            c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
        }
}

/* k == 0 or alpha == 0: C = act(beta * C + bias) over rows [m0, m1) and columns [n0, n1). */
static void scale_only(const fnn_kernel_table *kt, const fnn_gemm_problem *p, int64_t m0,
                       int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t i = m0; i < m1; i++) {
        float *row = p->c + i * p->ldc;
        for (int64_t j = n0; j < n1; j++) row[j] = p->beta == 0.0f ? 0.0f : p->beta * row[j];
    }
    if (p->bias != NULL || p->act != FNN_ACT_LINEAR)
        epilogue(kt, p, p->c + m0 * p->ldc + n0, m1 - m0, n1 - n0, n0);
}

/* Update mode's gradient block: one packed A block's rows by one B panel's columns. */
static int64_t grad_block_floats(const fnn_gemm_cfg *cfg, int64_t m, int64_t n) {
    return FNN_MIN(cfg->mc, fnn_round_up(m, cfg->mr)) *
           fnn_round_up(FNN_MIN(cfg->nc, fnn_round_up(n, cfg->nr)), 16);
}

/* The loop nest over C's rows [m0, m1) and columns [n0, n1), on the calling thread. In update
 * mode (p->upd) each A block's tiles go into the gradient block gp (grad_block_floats, ld a
 * multiple of 16), which then updates the parameter row by row: the update streams through
 * whole rows, as the unfused pass does, while the gradient block stays in cache. */
static void gemm_block(const fnn_kernel_table *kt, const fnn_gemm_cfg *cfg,
                       const fnn_gemm_problem *p, int64_t m0, int64_t m1, int64_t n0,
                       int64_t n1, float *ap, float *bp, float *gp) {
    const int64_t mr = cfg->mr, nr = cfg->nr;
    const int has_epilogue = p->bias != NULL || p->act != FNN_ACT_LINEAR;
    FNN_ALIGNED(64) float tile[FNN_GEMM_MAX_MR * FNN_GEMM_MAX_NR];

    if (p->k == 0 || p->alpha == 0.0f) {
        scale_only(kt, p, m0, m1, n0, n1);
        return;
    }
    for (int64_t jc = n0; jc < n1; jc += cfg->nc) {
        const int64_t nc = FNN_MIN(cfg->nc, n1 - jc);
        for (int64_t pc = 0; pc < p->k; pc += cfg->kc) {
            const int64_t kc = FNN_MIN(cfg->kc, p->k - pc);
            const float beta = pc == 0 ? p->beta : 1.0f;
            const int last_k = pc + kc >= p->k;
            pack_b(cfg->pack_t, p, nr, pc, kc, jc, nc, bp);
            for (int64_t ic = m0; ic < m1; ic += cfg->mc) {
                const int64_t mc = FNN_MIN(cfg->mc, m1 - ic);
                pack_a(cfg->pack_t, p, mr, ic, mc, pc, kc, ap);
                const int64_t ldg = fnn_round_up(nc, 16);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    const int64_t cols = FNN_MIN(nr, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        const int64_t rows = FNN_MIN(mr, mc - ir);
                        if (p->upd != NULL) { /* k is one block: the tile is final */
                            float *g = gp + ir * ldg + jr;
                            if (rows == mr && cols == nr) {
                                cfg->ukr(kc, 1.0f, ap + ir * kc, bp + jr * kc, 0.0f, g, ldg);
                            } else {
                                cfg->ukr(kc, 1.0f, ap + ir * kc, bp + jr * kc, 0.0f, tile, nr);
                                merge_tile(tile, nr, rows, cols, 0.0f, g, ldg);
                            }
                            continue;
                        }
                        float *c = p->c + (ic + ir) * p->ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            cfg->ukr(kc, p->alpha, ap + ir * kc, bp + jr * kc, beta, c, p->ldc);
                        } else {
                            /* Edge tile: full micro-kernel into a stack tile, copy back. */
                            cfg->ukr(kc, p->alpha, ap + ir * kc, bp + jr * kc, 0.0f, tile, nr);
                            merge_tile(tile, nr, rows, cols, beta, c, p->ldc);
                        }
                        if (last_k && has_epilogue) epilogue(kt, p, c, rows, cols, jc + jr);
                    }
                }
                if (p->upd != NULL) fnn_update_tile(kt, p->upd, gp, ldg, mc, nc, ic, jc);
            }
        }
    }
}

/* Small problems: no packing. Full tiles read A and B in place; the edge panel of A (fewer
 * than sup_mr rows), an edge panel of B (fewer than sup_nr columns), and every B panel when B
 * is transposed are first copied to zero-padded scratch, so the kernel never reads outside the
 * operands. ws holds sup_ws_floats() floats. */
static int64_t sup_ws_floats(const fnn_gemm_cfg *cfg, int64_t k) {
    return fnn_round_up(cfg->sup_mr * k, 16) + fnn_round_up(cfg->sup_nr * k, 16);
}

static void gemm_sup_block(const fnn_kernel_table *kt, const fnn_gemm_cfg *cfg,
                           const fnn_gemm_problem *p, int64_t m0, int64_t m1, int64_t n0,
                           int64_t n1, float *ws) {
    const int64_t mr = cfg->sup_mr, nr = cfg->sup_nr, k = p->k;
    const int has_epilogue = p->bias != NULL || p->act != FNN_ACT_LINEAR;
    const int64_t rs_a = p->ta == FNN_NOTRANS ? p->lda : 1;
    const int64_t cs_a = p->ta == FNN_NOTRANS ? 1 : p->lda;
    float *a_edge = ws, *b_panel = ws + fnn_round_up(mr * k, 16);
    FNN_ALIGNED(64) float tile[FNN_GEMM_MAX_MR * FNN_GEMM_MAX_NR];

    if (k == 0 || p->alpha == 0.0f) {
        scale_only(kt, p, m0, m1, n0, n1);
        return;
    }
    const int64_t m_full = m0 + (m1 - m0) / mr * mr;
    if (m_full < m1) pack_a(cfg->pack_t, p, mr, m_full, m1 - m_full, 0, k, a_edge);
    for (int64_t jr = n0; jr < n1; jr += nr) {
        const int64_t cols = FNN_MIN(nr, n1 - jr);
        const float *b = b_panel;
        int64_t rs_b = nr;
        if (p->tb == FNN_NOTRANS && cols == nr) {
            b = p->b + jr;
            rs_b = p->ldb;
        } else {
            pack_b(cfg->pack_t, p, nr, 0, k, jr, cols, b_panel);
        }
        for (int64_t ir = m0; ir < m1; ir += mr) {
            const int64_t rows = FNN_MIN(mr, m1 - ir);
            const float *a = ir < m_full ? p->a + ir * rs_a : a_edge;
            const int64_t rs = ir < m_full ? rs_a : 1, cs = ir < m_full ? cs_a : mr;
            float *c = p->c + ir * p->ldc + jr;
            if (rows == mr && cols == nr) {
                cfg->sup(k, p->alpha, a, rs, cs, b, rs_b, p->beta, c, p->ldc);
            } else {
                cfg->sup(k, p->alpha, a, rs, cs, b, rs_b, 0.0f, tile, nr);
                merge_tile(tile, nr, rows, cols, p->beta, c, p->ldc);
            }
            if (has_epilogue) epilogue(kt, p, c, rows, cols, jr);
        }
    }
}

/* Narrow problems (n <= narrow_nr): one masked 16-row kernel call per row tile; A in place
 * (its edge rows packed), B in place unless transposed (then packed once, nr = narrow_nr). */
static int64_t narrow_ws_floats(const fnn_gemm_cfg *cfg, int64_t k) {
    return fnn_round_up(cfg->narrow_mr * k, 16) + fnn_round_up(cfg->narrow_nr * k, 16);
}

static void gemm_narrow_block(const fnn_kernel_table *kt, const fnn_gemm_cfg *cfg,
                              const fnn_gemm_problem *p, int64_t m0, int64_t m1, float *ws) {
    const int64_t mr = cfg->narrow_mr, k = p->k, n = p->n;
    const int has_epilogue = p->bias != NULL || p->act != FNN_ACT_LINEAR;
    const int64_t rs_a = p->ta == FNN_NOTRANS ? p->lda : 1;
    const int64_t cs_a = p->ta == FNN_NOTRANS ? 1 : p->lda;
    float *a_edge = ws, *b_packed = ws + fnn_round_up(mr * k, 16);
    FNN_ALIGNED(64) float tile[FNN_GEMM_MAX_MR * FNN_GEMM_MAX_NR];

    if (k == 0 || p->alpha == 0.0f) {
        scale_only(kt, p, m0, m1, 0, n);
        return;
    }
    const float *b = p->b;
    int64_t rs_b = p->ldb;
    if (p->tb == FNN_TRANS) {
        pack_b(cfg->pack_t, p, cfg->narrow_nr, 0, k, 0, n, b_packed);
        b = b_packed;
        rs_b = cfg->narrow_nr;
    }
    const int64_t m_full = m0 + (m1 - m0) / mr * mr;
    for (int64_t ir = m0; ir < m1; ir += mr) {
        const int64_t rows = FNN_MIN(mr, m1 - ir);
        float *c = p->c + ir * p->ldc;
        if (rows == mr) {
            cfg->narrow(k, p->alpha, p->a + ir * rs_a, rs_a, cs_a, b, rs_b, p->beta, c, p->ldc,
                        n);
        } else {
            pack_a(cfg->pack_t, p, mr, m_full, rows, 0, k, a_edge);
            cfg->narrow(k, p->alpha, a_edge, 1, mr, b, rs_b, 0.0f, tile, FNN_GEMM_MAX_NR, n);
            merge_tile(tile, FNN_GEMM_MAX_NR, rows, n, p->beta, c, p->ldc);
        }
        if (has_epilogue) epilogue(kt, p, c, rows, n, 0);
    }
}

static volatile int forced_path = FNN_GEMM_AUTO;

void fnn_gemm_set_path(fnn_gemm_path path) { forced_path = path; }

static fnn_gemm_path choose_path(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p) {
    const int narrow_ok = cfg->narrow != NULL && p->n <= cfg->narrow_nr;
    switch (forced_path) {
    case FNN_GEMM_PACKED: return FNN_GEMM_PACKED;
    case FNN_GEMM_SUP: return FNN_GEMM_SUP;
    case FNN_GEMM_NARROW: return narrow_ok ? FNN_GEMM_NARROW : FNN_GEMM_SUP;
    default: break;
    }
    if (narrow_ok) return FNN_GEMM_NARROW;
    if ((double)p->m * (double)p->n * (double)p->k <= cfg->sup_max_work) return FNN_GEMM_SUP;
    return FNN_GEMM_PACKED;
}

int64_t fnn_gemm_serial_ws_floats(const fnn_gemm_cfg *cfg, int64_t m, int64_t n, int64_t k) {
    const int64_t packed = pack_a_floats(cfg, m, k) + pack_b_floats(cfg, n, k);
    return FNN_MAX(packed, FNN_MAX(sup_ws_floats(cfg, k), narrow_ws_floats(cfg, k)));
}

void fnn_gemm_serial(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p, float *ws) {
    const fnn_kernel_table *kt = fnn_kernels();
    switch (choose_path(cfg, p)) {
    case FNN_GEMM_NARROW: gemm_narrow_block(kt, cfg, p, 0, p->m, ws); break;
    case FNN_GEMM_SUP: gemm_sup_block(kt, cfg, p, 0, p->m, 0, p->n, ws); break;
    default:
        gemm_block(kt, cfg, p, 0, p->m, 0, p->n, ws, ws + pack_a_floats(cfg, p->m, p->k), NULL);
    }
}

fnn_status fnn_gemm_check(const fnn_gemm_problem *p) {
    if (p->m < 0 || p->n < 0 || p->k < 0) return FNN_ERR_ARG;
    if (p->act == FNN_ACT_SOFTMAX || (int)p->act < 0 || (int)p->act > FNN_ACT_SOFTMAX)
        return FNN_ERR_ARG;
    if (p->m == 0 || p->n == 0) return FNN_OK;
    if (p->upd == NULL && (p->c == NULL || p->ldc < p->n)) return FNN_ERR_ARG; /* upd: no C */
    if (p->k == 0) return FNN_OK;
    const int64_t a_cols = p->ta == FNN_NOTRANS ? p->k : p->m;
    const int64_t b_cols = p->tb == FNN_NOTRANS ? p->n : p->k;
    if (p->a == NULL || p->b == NULL || p->lda < a_cols || p->ldb < b_cols) return FNN_ERR_ARG;
    return FNN_OK;
}

/* Splits n_threads into a tm x tn grid over C that minimises the largest per-thread share of
 * micro-kernel work plus its packing traffic. */
static void thread_grid(int64_t mr, int64_t nr, int64_t m, int64_t n, int64_t k, int nt,
                        int *tm_out, int *tn_out) {
    const int64_t m_tiles = fnn_ceil_div(m, mr), n_tiles = fnn_ceil_div(n, nr);
    double best = -1.0;
    for (int tm = 1; tm <= nt; tm++) {
        if (nt % tm != 0) continue;
        const int tn = nt / tm;
        if (tm > m_tiles || tn > n_tiles) continue;
        const double rows = (double)fnn_ceil_div(m_tiles, tm) * mr;
        const double cols = (double)fnn_ceil_div(n_tiles, tn) * nr;
        /* flops / 2 plus ~8 multiply-adds worth of time per packed element */
        const double cost = rows * cols * k + 8.0 * k * (rows + cols);
        if (best < 0 || cost < best) {
            best = cost;
            *tm_out = tm;
            *tn_out = tn;
        }
    }
    if (best < 0) { /* fewer tiles than threads in both directions */
        *tm_out = (int)FNN_MIN(m_tiles, nt);
        *tn_out = 1;
    }
}

/* How one call splits C over its threads: thread t owns rows [(t / tn) * m_step, +m_step) and
 * columns [(t % tn) * n_step, +n_step). */
typedef struct {
    fnn_gemm_path path;
    int tn;
    int64_t m_step, n_step, ws_a, ws_b, ws_floats;
} gemm_split;

static fnn_status gemm_part(const fnn_kernel_table *kt, const fnn_gemm_cfg *cfg,
                            const fnn_gemm_problem *p, const gemm_split *split, int t) {
    const int64_t m0 = (t / split->tn) * split->m_step, n0 = (t % split->tn) * split->n_step;
    const int64_t m1 = FNN_MIN(p->m, m0 + split->m_step);
    const int64_t n1 = FNN_MIN(p->n, n0 + split->n_step);
    if (m0 >= m1 || n0 >= n1) return FNN_OK;
    float *ws = fnn_thread_scratch(FNN_SCRATCH_GEMM, split->ws_floats);
    if (ws == NULL) return FNN_ERR_NOMEM;
    const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ on this thread, see internal.h */
    /* update mode with a G buffer (fnn_gemm_update_run): this thread's part of G as a plain
     * GEMM, then its update from it */
    const fnn_tile_update *buffered = p->c != NULL ? p->upd : NULL;
    fnn_gemm_problem plain;
    if (buffered != NULL) {
        plain = *p;
        plain.upd = NULL;
        p = &plain;
    }
    switch (split->path) {
    case FNN_GEMM_NARROW: gemm_narrow_block(kt, cfg, p, m0, m1, ws); break;
    case FNN_GEMM_SUP: gemm_sup_block(kt, cfg, p, m0, m1, n0, n1, ws); break;
    default:
        gemm_block(kt, cfg, p, m0, m1, n0, n1, ws, ws + split->ws_a,
                   ws + split->ws_a + split->ws_b);
    }
    if (buffered != NULL)
        fnn_update_tile(kt, buffered, p->c + m0 * p->ldc + n0, p->ldc, m1 - m0, n1 - n0, m0,
                        n0);
    fnn_fp_leave(fp);
    return FNN_OK;
}

/* Splits the problem over up to n_threads threads (one parallel region) along `path`. */
static fnn_status run_split(const fnn_kernel_table *kt, const fnn_gemm_cfg *cfg,
                            const fnn_gemm_problem *p, fnn_gemm_path path, int n_threads) {
    const int64_t mr = path == FNN_GEMM_NARROW ? cfg->narrow_mr
                       : path == FNN_GEMM_SUP  ? cfg->sup_mr
                                               : cfg->mr;
    const int64_t nr = path == FNN_GEMM_NARROW ? cfg->narrow_nr
                       : path == FNN_GEMM_SUP  ? cfg->sup_nr
                                               : cfg->nr;
    const double work = (double)p->m * (double)p->n * (double)p->k;
    int nt = fnn_effective_threads(n_threads);
    if (work < (double)nt * FNN_GEMM_MIN_WORK_PER_THREAD)
        nt = (int)FNN_MAX(1.0, work / FNN_GEMM_MIN_WORK_PER_THREAD);
    int tm = 1, tn = 1;
    if (nt > 1) thread_grid(mr, nr, p->m, p->n, p->k, nt, &tm, &tn);
    nt = tm * tn;

    const int64_t m_step = fnn_ceil_div(fnn_ceil_div(p->m, mr), tm) * mr;
    const int64_t n_step = fnn_ceil_div(fnn_ceil_div(p->n, nr), tn) * nr;
    const int64_t ws_a = pack_a_floats(cfg, m_step, p->k);
    const int64_t ws_b = pack_b_floats(cfg, n_step, p->k);
    /* update mode's gradient block (its buffered mode computes G into p->c instead) */
    const int64_t ws_g =
        p->upd != NULL && p->c == NULL ? grad_block_floats(cfg, m_step, n_step) : 0;
    const int64_t ws_floats = path == FNN_GEMM_NARROW ? narrow_ws_floats(cfg, p->k)
                              : path == FNN_GEMM_SUP    ? sup_ws_floats(cfg, p->k)
                                                        : ws_a + ws_b + ws_g;
    const gemm_split split = {path, tn, m_step, n_step, ws_a, ws_b, ws_floats};
    if (nt == 1) return gemm_part(kt, cfg, p, &split, 0);
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(| : failed)
    failed |= gemm_part(kt, cfg, p, &split, omp_get_thread_num()) != FNN_OK;
#endif
    return failed ? FNN_ERR_NOMEM : FNN_OK;
}

fnn_status fnn_gemm_run(const fnn_gemm_problem *p, int n_threads) {
    if (p->m == 0 || p->n == 0) return FNN_OK;
    const fnn_kernel_table *kt = fnn_kernels();
    return run_split(kt, &kt->gemm, p, choose_path(&kt->gemm, p), n_threads);
}

/* Update mode's widest B panel: the gradient block (mc x nc floats, 384 KiB with AVX-512's
 * mc = 192) stays in L2 between the micro-kernels writing it and the update reading it. */
#define FNN_GEMM_UPDATE_NC 512

/* Deepest k (in multiples of the ISA's kc) that update mode runs in one block; deeper gradients
 * (a batch of thousands) go through a whole G buffer instead, see fnn_gemm_update_run. */
#define FNN_GEMM_UPDATE_MAX_KC 4

/* Update mode (internal.h): the packed path with k in one block. Past kc, mc and nc shrink as
 * k grows so that the packed A block and B panel keep about their usual size (nc at least a
 * quarter of FNN_GEMM_UPDATE_NC at the deepest k). Past FNN_GEMM_UPDATE_MAX_KC * kc the
 * panels would grow with k, and the rows of A would be packed again for every narrow B panel;
 * and small or narrow problems (a layer of 10 units) are faster on their own unpacked paths
 * than padded to the packed kernel's tiles; and k == 0 (G = 0, which still moves the optimizer
 * state) is the GEMM's own zero case. There the GEMM runs as usual into an m x n buffer, and
 * each thread updates from its own part of it (the bits of GEMM + update, one parallel
 * region). */
fnn_status fnn_gemm_update_run(const fnn_gemm_problem *p, int n_threads) {
    if (p->m == 0 || p->n == 0) return FNN_OK;
    const fnn_kernel_table *kt = fnn_kernels();
    fnn_gemm_cfg cfg = kt->gemm;
    const fnn_gemm_path path = choose_path(&cfg, p);
    if (p->k == 0 || p->k > FNN_GEMM_UPDATE_MAX_KC * cfg.kc || path != FNN_GEMM_PACKED) {
        fnn_gemm_problem q = *p;
        q.c = fnn_malloc((size_t)(p->m * p->n) * sizeof(float));
        if (q.c == NULL) return FNN_ERR_NOMEM;
        q.ldc = p->n;
        const fnn_status st = run_split(kt, &cfg, &q, path, n_threads);
        fnn_free(q.c);
        return st;
    }
    cfg.nc = FNN_MIN(cfg.nc, FNN_GEMM_UPDATE_NC);
    if (p->k > cfg.kc) { /* one k block: shrink mc and nc to keep the buffers' size */
        cfg.mc = FNN_MAX(cfg.mr, cfg.mc * cfg.kc / p->k / cfg.mr * cfg.mr);
        cfg.nc = FNN_MAX(cfg.nr, cfg.nc * cfg.kc / p->k / cfg.nr * cfg.nr);
    }
    cfg.kc = FNN_MAX(cfg.kc, p->k);
    return run_split(kt, &cfg, p, FNN_GEMM_PACKED, n_threads);
}

fnn_status fnn_gemm_ex_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
                           fnn_act act, float act_alpha, int n_threads) {
    const fnn_gemm_problem p = {ta,   tb, m, n, k,    alpha, a,   lda,      b,
                                ldb,  beta, c, ldc, bias, act, act_alpha};
    fnn_status st = fnn_gemm_check(&p);
    if (st != FNN_OK) return st;
    return fnn_gemm_run(&p, n_threads);
}

fnn_status fnn_gemm_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float beta, float *c, int64_t ldc, int n_threads) {
    return fnn_gemm_ex_f32(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL,
                           FNN_ACT_LINEAR, 0.0f, n_threads);
}
