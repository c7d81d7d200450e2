/* conv2d_band.c - the band layouts of conv2d jobs and the packing of their weights. The
 * layouts are described in conv2d_band.h. */
#include <string.h>

#include "conv2d_band.h"

fnn_status conv_job_alloc(conv_job *j, int64_t ntaps) {
    memset(j, 0, sizeof(*j));
    j->ntaps = ntaps;
    int64_t *mem = fnn_malloc((size_t)(5 * ntaps + 1) * sizeof(int64_t));
    if (mem == NULL) return FNN_ERR_NOMEM;
    j->off_h = mem;
    j->off_w = mem + ntaps;
    j->tap_id = mem + 2 * ntaps;
    j->a_off = mem + 3 * ntaps;
    j->slot_phase = mem + 4 * ntaps + 1;
    return FNN_OK;
}

void conv_job_free(conv_job *j) {
    fnn_free(j->off_h);
    fnn_free(j->wpack);
    fnn_free((void *)j->bptr);
    memset(j, 0, sizeof(*j));
}

void conv_job_geometry(conv_job *j, int64_t src_h, int64_t src_w, int64_t cs, int64_t ss_h,
                       int64_t ss_w, int64_t out_h, int64_t out_w) {
    j->src_h = src_h;
    j->src_w = src_w;
    j->cs = cs;
    j->ss_h = ss_h;
    j->ss_w = ss_w;
    j->out_h = out_h;
    j->out_w = out_w;
}

static void q_range(const int64_t *off, int64_t n, int64_t ss, int64_t *qmin, int64_t *qmax) {
    *qmin = *qmax = n > 0 ? conv_floor_div(off[0], ss) : 0;
    for (int64_t t = 1; t < n; t++) {
        const int64_t q = conv_floor_div(off[t], ss);
        *qmin = FNN_MIN(*qmin, q);
        *qmax = FNN_MAX(*qmax, q);
    }
}

int64_t conv_job_row_floats(const conv_job *j, int im2col) {
    if (im2col) return j->out_w * j->ntaps * j->cs;
    int64_t qmin, qmax;
    q_range(j->off_w, j->ntaps, j->ss_w, &qmin, &qmax);
    /* every slot used (at most ss_h * ss_w, at most ntaps) */
    return FNN_MIN(j->ntaps, j->ss_h * j->ss_w) * (j->out_w + qmax - qmin) * j->cs;
}

void conv_job_layout(conv_job *j, int im2col, int64_t rows, int64_t mr_max) {
    j->im2col = im2col && j->ntaps > 0;
    j->rows = rows;
    j->nbands = fnn_ceil_div(j->out_h, rows);
    if (j->im2col) {
        j->wrow = j->out_w;
        j->kc = j->lda = j->ntaps * j->cs;
        j->uk_taps = 1;
        j->a_off[0] = 0;
        j->nslot = 0;
        j->direct_ok = 0;
        j->buf_floats = (rows * j->out_w + mr_max + 1) * j->kc + 16;
        return;
    }
    int64_t qmax_h, qmax_w;
    q_range(j->off_h, j->ntaps, j->ss_h, &j->qmin_h, &qmax_h);
    q_range(j->off_w, j->ntaps, j->ss_w, &j->qmin_w, &qmax_w);
    j->wrow = j->out_w + qmax_w - j->qmin_w;
    j->kc = j->lda = j->cs;
    j->uk_taps = j->ntaps;
    j->slot_rows = rows + (qmax_h - j->qmin_h) + 1 + fnn_ceil_div(mr_max, j->wrow);
    j->slot_floats = fnn_round_up(j->slot_rows * j->wrow * j->cs, 16);
    j->nslot = 0;
    for (int64_t t = 0; t < j->ntaps; t++) {
        const int64_t qh = conv_floor_div(j->off_h[t], j->ss_h);
        const int64_t qw = conv_floor_div(j->off_w[t], j->ss_w);
        const int64_t ph = (j->off_h[t] - qh * j->ss_h) * j->ss_w + (j->off_w[t] - qw * j->ss_w);
        int64_t s = 0;
        while (s < j->nslot && j->slot_phase[s] != ph) s++;
        if (s == j->nslot) j->slot_phase[j->nslot++] = ph;
        j->a_off[t] = s * j->slot_floats +
                      ((qh - j->qmin_h) * j->wrow + (qw - j->qmin_w)) * j->cs;
    }
    j->buf_floats = j->nslot * j->slot_floats + 16;
    j->direct_ok = j->ntaps == 1 && j->off_h[0] == 0 && j->off_w[0] == 0 && j->ss_h == 1 &&
                   j->ss_w == 1 && j->wrow == j->src_w && j->out_w == j->src_w &&
                   j->out_h == j->src_h;
}

/* Copies one band row: dst[x] = src((qmin_w + x)*ss_w + rho_w) for x < wrow, 0 outside. */
static void layout_row(const conv_job *j, const float *row, int64_t rho_w, float *dst) {
    const int64_t cs = j->cs, wrow = j->wrow;
    int64_t x_lo = 0, x_hi;
    while (x_lo < wrow && (j->qmin_w + x_lo) * j->ss_w + rho_w < 0) x_lo++;
    x_hi = x_lo;
    while (x_hi < wrow && (j->qmin_w + x_hi) * j->ss_w + rho_w < j->src_w) x_hi++;
    memset(dst, 0, (size_t)(x_lo * cs) * sizeof(float));
    if (j->ss_w == 1) {
        memcpy(dst + x_lo * cs, row + (j->qmin_w + x_lo + rho_w) * cs,
               (size_t)((x_hi - x_lo) * cs) * sizeof(float));
    } else {
        for (int64_t x = x_lo; x < x_hi; x++)
            memcpy(dst + x * cs, row + ((j->qmin_w + x) * j->ss_w + rho_w) * cs,
                   (size_t)cs * sizeof(float));
    }
    memset(dst + x_hi * cs, 0, (size_t)((wrow - x_hi) * cs) * sizeof(float));
}

static void layout_im2col(const conv_job *j, const float *src, int64_t a0, int64_t a1,
                          float *buf) {
    const int64_t cs = j->cs, kc = j->kc, out_w = j->out_w;
    for (int64_t t = 0; t < j->ntaps; t++) {
        /* output columns b whose source column b*ss_w + off lies in [0, src_w) */
        const int64_t off = j->off_w[t];
        const int64_t b_lo = FNN_MIN(out_w, FNN_MAX(0, -conv_floor_div(off, j->ss_w)));
        const int64_t b_hi =
            FNN_MAX(b_lo, FNN_MIN(out_w, -conv_floor_div(off - j->src_w, j->ss_w)));
        for (int64_t a = a0; a < a1; a++) {
            float *dst = buf + (a - a0) * out_w * kc + t * cs;
            const int64_t y = a * j->ss_h + j->off_h[t];
            const int inside = y >= 0 && y < j->src_h;
            const int64_t lo = inside ? b_lo : out_w, hi = inside ? b_hi : out_w;
            for (int64_t b = 0; b < lo; b++)
                for (int64_t c = 0; c < cs; c++) dst[b * kc + c] = 0.0f;
            if (lo == hi) {
                /* the whole row is padding */
            } else if (cs == 1) { /* one channel: a strided copy (the c_in = 1 first layer) */
                const float *s = src + y * j->src_w + off;
                for (int64_t b = lo; b < hi; b++) dst[b * kc] = s[b * j->ss_w];
            } else {
                for (int64_t b = lo; b < hi; b++) {
                    const float *s = src + (y * j->src_w + b * j->ss_w + off) * cs;
                    for (int64_t c = 0; c < cs; c++) dst[b * kc + c] = s[c];
                }
            }
            for (int64_t b = hi; b < out_w; b++)
                for (int64_t c = 0; c < cs; c++) dst[b * kc + c] = 0.0f;
        }
    }
    float *end = buf + (a1 - a0) * out_w * kc;
    memset(end, 0, (size_t)(buf + j->buf_floats - end) * sizeof(float));
}

const float *conv_band_layout(const conv_job *j, const float *src_img, const float *src_end,
                              int64_t a0, int64_t a1, float *buf) {
    if (j->im2col) {
        layout_im2col(j, src_img, a0, a1, buf);
        return buf;
    }
    const int64_t row_floats = j->wrow * j->cs;
    if (j->direct_ok && src_img + a0 * row_floats + j->slot_floats <= src_end)
        return src_img + a0 * row_floats;
    for (int64_t s = 0; s < j->nslot; s++) {
        const int64_t rho_h = j->slot_phase[s] / j->ss_w, rho_w = j->slot_phase[s] % j->ss_w;
        float *slot = buf + s * j->slot_floats;
        for (int64_t u = 0; u < j->slot_rows; u++) {
            const int64_t y = (a0 + j->qmin_h + u) * j->ss_h + rho_h;
            float *dst = slot + u * row_floats;
            if (y < 0 || y >= j->src_h)
                memset(dst, 0, (size_t)row_floats * sizeof(float));
            else
                layout_row(j, src_img + y * j->src_w * j->cs, rho_w, dst);
        }
    }
    return buf;
}

fnn_status conv_job_prepare(const fnn_conv_cfg *cc, conv_job *j, const float *w,
                            int64_t tap_stride, int64_t k_stride, int64_t n_stride, int64_t n,
                            int64_t batch, int n_threads) {
    /* The phase layout even for one source channel: a tap of kc = 1 costs the forward
     * micro-kernel little (measured on the c_in = 1 benchmark layer: 4x faster than im2col). */
    const int im2col = 0;
    const int64_t per_row = FNN_MAX(1, conv_job_row_floats(j, im2col));
    const int64_t bands_per_image = fnn_ceil_div(FNN_MAX(n_threads, 1), FNN_MAX(batch, 1));
    int64_t rows = FNN_MIN(CONV_BAND_FLOATS / per_row, fnn_ceil_div(j->out_h, bands_per_image));
    rows = FNN_MAX(1, FNN_MIN(rows, j->out_h));
    const int64_t mr_max = FNN_MAX(FNN_MAX(cc->mr, cc->dot_mr), cc->wg_mr);
    conv_job_layout(j, im2col, rows, mr_max);

    const int64_t ntaps = j->ntaps, cs = j->cs, nr = cc->nr;
    j->n = n;
    j->dot = n <= FNN_CONV_DOT_MAX_N && 4 * n <= nr;
    const int64_t npanels = j->dot ? 1 : fnn_ceil_div(n, nr);
    const int64_t pack_floats = j->dot ? n * ntaps * cs : npanels * ntaps * cs * nr;
    j->wpack = fnn_malloc((size_t)(pack_floats + 16) * sizeof(float));
    j->bptr = fnn_malloc((size_t)(npanels * FNN_MAX(ntaps, 1)) * sizeof(float *));
    if (j->wpack == NULL || j->bptr == NULL) return FNN_ERR_NOMEM;
    if (j->dot) {
        /* wpack[nn][t][kk]: one contiguous row of ntaps*cs per output */
        for (int64_t nn = 0; nn < n; nn++)
            for (int64_t t = 0; t < ntaps; t++) {
                const float *src = w + j->tap_id[t] * tap_stride + nn * n_stride;
                float *dst = j->wpack + (nn * ntaps + t) * cs;
                for (int64_t kk = 0; kk < cs; kk++) dst[kk] = src[kk * k_stride];
            }
        for (int64_t t = 0; t < j->uk_taps; t++) j->bptr[t] = j->wpack + t * cs;
        return FNN_OK;
    }
    /* wpack[panel][t][kk][jj]: kc x nr panels, zero past n */
    for (int64_t jb = 0; jb < npanels; jb++)
        for (int64_t t = 0; t < ntaps; t++) {
            float *dst = j->wpack + (jb * ntaps + t) * cs * nr;
            const float *src = w + j->tap_id[t] * tap_stride;
            for (int64_t kk = 0; kk < cs; kk++)
                for (int64_t jj = 0; jj < nr; jj++) {
                    const int64_t nn = jb * nr + jj;
                    dst[kk * nr + jj] = nn < n ? src[kk * k_stride + nn * n_stride] : 0.0f;
                }
        }
    for (int64_t jb = 0; jb < npanels; jb++)
        for (int64_t t = 0; t < j->uk_taps; t++)
            j->bptr[jb * j->uk_taps + t] = j->wpack + (jb * ntaps + t) * cs * nr;
    return FNN_OK;
}
