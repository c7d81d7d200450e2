/* conv2d_wgrad.c - conv2d backward to the weights and the bias (contract: fastnn.h).
 *
 *   dw[tap][ci][co] = sum_{n, a, b} x_pad(n, a*stride_h + i*dil_h - pad_top, ...)[ci] * dy[n, a, b, co]
 *
 * The input is laid out band by band exactly as for the forward pass (conv2d_band.h), and
 * the weight-gradient micro-kernel reduces a tile of dw (input channels of one tap x output
 * channels) over all pixels of the band in registers, reading the band and dy in place. With
 * few input channels the band is laid out as im2col rows and a tile spans taps.
 *
 * Reproducibility: bands (output rows of one image) are fixed by the shapes alone, and the
 * bands are cut into at most CONV_WGRAD_MAX_GROUPS consecutive groups, also fixed by the shapes (conv2d_band.h). Each
 * group sums its bands in order into its own partial dw; the partials are then added in group
 * order. Threads take whole groups, so every element is the same sum in the same order for
 * any thread count. Group 0 sums straight into dw.
 */
#include <string.h>

#include "conv2d_band.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* A band should reduce over at least this many pixels, so that loading and storing a dw tile
 * (2*MR*NR floats) costs little beside its MR*NR*pixels multiply-adds. */
#define WG_MIN_BAND_PIXELS 256

/* Below this many input channels a tap fills less than half a tile: use im2col rows. */
#define WG_IM2COL_MAX_CIN 8

/* Sums one band's contribution into the partial pw (and pb); acc == 0 overwrites. */
static void wgrad_band(const fnn_conv_cfg *cc, const conv_job *j, const float *band,
                       const float *dyb, int64_t nrows, int64_t c_in, int64_t c_out, int acc,
                       float *pw, float *pb) {
    const int64_t mr = cc->wg_mr, nr = cc->wg_nr;
    /* phase layout: per tap, rows = input channels, segments = output rows;
     * im2col layout: one tap, rows = (tap, ci) pairs, one segment over all band pixels. */
    const int64_t m = j->im2col ? j->kc : c_in;
    const int64_t nseg = j->im2col ? 1 : nrows;
    const int64_t len = j->im2col ? nrows * j->out_w : j->out_w;
    for (int64_t t = 0; t < j->uk_taps; t++) {
        const int64_t row0 = j->im2col ? 0 : j->tap_id[t] * c_in;
        for (int64_t m0 = 0; m0 < m; m0 += mr)
            for (int64_t n0 = 0; n0 < c_out; n0 += nr)
                cc->wgrad(nseg, len, band + j->a_off[t] + m0, j->lda, j->wrow * j->cs,
                          dyb + n0, c_out, j->out_w * c_out, acc, pw + (row0 + m0) * c_out + n0,
                          c_out, FNN_MIN(mr, m - m0), FNN_MIN(nr, c_out - n0));
    }
    if (pb != NULL) {
        if (!acc) memset(pb, 0, (size_t)c_out * sizeof(float));
        cc->colsum(nrows * j->out_w, c_out, dyb, c_out, pb);
    }
}

fnn_status fnn_conv2d_bwd_filter_f32(const fnn_conv2d_desc *d, const float *x, const float *dy,
                                     float *dw, float *db, int n_threads) {
    if (fnn_conv2d_desc_check(d) != FNN_OK) return FNN_ERR_ARG;
    const int64_t ntaps = d->kh * d->kw, c_in = d->c_in, c_out = d->c_out;
    const int64_t wsize = ntaps * c_in * c_out, pixels = d->batch * d->out_h * d->out_w;
    if ((wsize > 0 && dw == NULL) || (pixels * c_out > 0 && dy == NULL) ||
        (pixels > 0 && d->h * d->w * c_in > 0 && x == NULL))
        return FNN_ERR_ARG;
    if (pixels == 0 || c_out == 0) {
        if (wsize > 0) memset(dw, 0, (size_t)wsize * sizeof(float));
        if (db != NULL && c_out > 0) memset(db, 0, (size_t)c_out * sizeof(float));
        return FNN_OK;
    }
    if (fnn_conv_winograd_applies(d, 1))
        return fnn_conv_winograd_bwd_filter(d, x, dy, dw, db, n_threads);
    const fnn_conv_cfg *cc = &fnn_kernels()->conv;
    fnn_conv2d_desc e = *d;
    if (e.kh == 1 && e.kw == 1 && e.stride_h == 1 && e.stride_w == 1 && e.pad_top == 0 &&
        e.pad_left == 0 && e.out_h == e.h && e.out_w == e.w) { /* pointwise: fold the batch */
        e.h = e.out_h = d->batch * d->h;
        e.batch = 1;
    }
    conv_job j;
    fnn_status st = conv_job_alloc(&j, ntaps);
    if (st != FNN_OK) return st;
    for (int64_t i = 0; i < e.kh; i++)
        for (int64_t t = 0; t < e.kw; t++) {
            j.off_h[i * e.kw + t] = i * e.dil_h - e.pad_top;
            j.off_w[i * e.kw + t] = t * e.dil_w - e.pad_left;
            j.tap_id[i * e.kw + t] = i * e.kw + t;
        }
    conv_job_geometry(&j, e.h, e.w, c_in, e.stride_h, e.stride_w, e.out_h, e.out_w);
    /* Band rows from the shapes only (never the thread count): enough pixels per band, and
     * the laid-out band bounded. */
    const int im2col = c_in < WG_IM2COL_MAX_CIN && ntaps > 1;
    const int64_t per_row = FNN_MAX(1, conv_job_row_floats(&j, im2col));
    int64_t rows = FNN_MAX(fnn_ceil_div(WG_MIN_BAND_PIXELS, e.out_w), 1);
    rows = FNN_MAX(1, FNN_MIN(FNN_MIN(rows, CONV_BAND_FLOATS / per_row), e.out_h));
    conv_job_layout(&j, im2col, rows, FNN_MAX(FNN_MAX(cc->mr, cc->dot_mr), cc->wg_mr));

    const int64_t ntasks = e.batch * j.nbands;
    const int64_t part_floats = wsize + (db != NULL ? c_out : 0);
    const int64_t groups = conv_wgrad_groups(ntasks, part_floats);
    float *part = NULL;
    if (groups > 1) {
        part = fnn_malloc((size_t)((groups - 1) * part_floats) * sizeof(float));
        if (part == NULL) {
            conv_job_free(&j);
            return FNN_ERR_NOMEM;
        }
    }
    int nt = fnn_effective_threads(n_threads);
    const double work = (double)pixels * wsize;
    nt = (int)FNN_MIN((double)nt, FNN_MAX(1.0, work / (128.0 * 1024.0)));
    nt = (int)FNN_MIN(nt, groups);
    const float *x_end = x + e.batch * e.h * e.w * c_in;
    int failed = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(| : failed) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
        float *buf = fnn_malloc((size_t)j.buf_floats * sizeof(float));
        if (buf == NULL) failed = 1;
        int tid = 0, tn = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        tn = omp_get_num_threads();
#endif
        for (int64_t g = tid; g < groups && buf != NULL; g += tn) {
            float *pw = g == 0 ? dw : part + (g - 1) * part_floats;
            float *pb = db == NULL ? NULL : g == 0 ? db : pw + wsize;
            const int64_t t0 = ntasks * g / groups, t1 = ntasks * (g + 1) / groups;
            for (int64_t task = t0; task < t1; task++) {
                const int64_t img = task / j.nbands, band = task % j.nbands;
                const int64_t a0 = band * j.rows, a1 = FNN_MIN(e.out_h, a0 + j.rows);
                const float *xi = x + img * e.h * e.w * c_in;
                const float *bl = conv_band_layout(&j, xi, x_end, a0, a1, buf);
                const float *dyb = dy + ((img * e.out_h + a0) * e.out_w) * c_out;
                wgrad_band(cc, &j, bl, dyb, a1 - a0, c_in, c_out, task > t0, pw, pb);
            }
        }
        fnn_free(buf);
        if (groups > 1) {
#ifdef _OPENMP
#pragma omp barrier
#endif
            /* dw = ((p0 + p1) + p2) + ...: the same order for every element and thread count */
            const int64_t e0 = part_floats * tid / tn, e1 = part_floats * (tid + 1) / tn;
            for (int64_t g = 1; g < groups; g++) {
                const float *p = part + (g - 1) * part_floats;
                for (int64_t q = e0; q < e1; q++) {
                    if (q < wsize)
                        dw[q] += p[q];
                    else
                        db[q - wsize] += p[q];
                }
            }
        }
        fnn_fp_leave(fp);
    }
    fnn_free(part);
    conv_job_free(&j);
    return failed ? FNN_ERR_NOMEM : FNN_OK;
}
