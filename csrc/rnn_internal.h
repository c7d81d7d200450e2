/* rnn_internal.h - private to the recurrent driver (rnn_common.c, rnn_fwd.c, rnn_bwd.c): the
 * cells, the time-loop tiling, the prefetch plan and the pieces forward and backward share
 * (defined, with their comments, in rnn_common.c). Not installed, not public.
 *
 * LSTM, GRU and SimpleRNN forward and backward through time over a whole sequence (contract:
 * fastnn.h). One driver runs the three cells (fnn_rnn_cell): they differ in the number of gates per
 * unit (4, 3 or 1; G = gates * hidden columns; the notes of these files are written for the
 * LSTM) and in the fused row passes (rnn_rows_ref.c and the ISA files). The forward is
 * rnn_fwd.c, the backward rnn_bwd.c; each file's header says how its pass runs.
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
#ifndef FASTNN_RNN_INTERNAL_H
#define FASTNN_RNN_INTERNAL_H

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The cells the driver runs: the LSTM (four gates i, f, g, o and a c state), the Elman
 * SimpleRNN (one gate, h_s = act(z)) and the GRU (gates z, r, h; reset after the recurrent
 * GEMM). They share everything but the fused row passes; the GRU's backward also splits dz. */
typedef enum { FNN_RNN_LSTM, FNN_RNN_SIMPLE, FNN_RNN_GRU } fnn_rnn_cell;

static inline int64_t fnn_rnn_gate_count(fnn_rnn_cell cell) {
    return cell == FNN_RNN_LSTM ? 4 : (cell == FNN_RNN_GRU ? 3 : 1);
}

/* The time-loop tiling: tm x tn threads own row blocks (mr rows) x unit blocks (nr units);
 * ukr is the packed micro-kernel of mr x nr tiles. */
typedef struct {
    int64_t mr, nr, n_rb, n_ub;
    int tm, tn;
    fnn_gemm_ukr_fn ukr;
} rnn_tiling;

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
} rnn_prefetch_plan;

#ifdef _OPENMP
#define FNN_RNN_THREAD_ID() omp_get_thread_num()
#else
#define FNN_RNN_THREAD_ID() 0
#endif

/* ---- shared pieces (rnn_common.c) ------------------------------------------------------------ */

/* FNN_ERR_ARG for a bad descriptor, FNN_ERR_UNSUPPORTED for an activation the passes lack. */
fnn_status fnn_rnn_check_desc(const fnn_lstm_desc *d);
/* Threads for a whole call of `work` multiply-adds (at most fnn_effective_threads). */
int fnn_rnn_call_threads(int n_threads, double work);
/* The time loop's tm x tn grid of tiles for nt threads. */
rnn_tiling fnn_rnn_make_tiling(const fnn_gemm_cfg *cfg, int64_t batch, int64_t hidden,
                               int64_t ng, int nt);
/* Thread t's tile: row blocks [rb0, rb1), unit blocks [ub0, ub1). 0 if t has none. */
int fnn_rnn_tile_of(const rnn_tiling *tl, int t, int64_t *rb0, int64_t *rb1, int64_t *ub0,
                    int64_t *ub1);
/* The k chunk of a weight panel that stays in L1 (fnn_rnn_panel_gemm's max_kc). */
int64_t fnn_rnn_panel_kc(const fnn_gemm_cfg *cfg, int64_t nr);
/* Thread t's share of a large GEMM split among nt threads (fnn_gemm_serial on it). */
void fnn_rnn_gemm_share(const fnn_gemm_cfg *cfg, const fnn_gemm_problem *p, int t, int nt,
                        float *ws);
/* Row blocks of C = Ap @ Bp + beta * C over one packed weight panel, by tl's kernel. */
void fnn_rnn_panel_gemm(const rnn_tiling *tl, int64_t k, int64_t max_kc, const float *ap,
                        int64_t a_panel, int64_t rb0, int64_t rb1, int64_t m, const float *bp,
                        int64_t cols, float beta, float *c, int64_t ldc);
/* Adds an array to a prefetch plan; issues part `part` of `parts` of a plan's prefetches. */
void fnn_rnn_plan_add(rnn_prefetch_plan *pl, const float *base, int64_t ld, int write);
void fnn_rnn_prefetch_part(const rnn_prefetch_plan *pl, int64_t part, int64_t parts);
/* dst[0, n) = src, or zeros when src is NULL. */
void fnn_rnn_copy_or_zero(float *dst, const float *src, int64_t n);
/* Packs rows [b0, b1), columns [c0, c1) of a matrix (times a mask) into packed A panels. */
void fnn_rnn_pack_rows(const float *src, int64_t ld, const float *mask, int64_t ld_mask,
                       int64_t b0, int64_t b1, int64_t c0, int64_t c1, int64_t mr, float *ap,
                       int64_t a_panel);

#endif
