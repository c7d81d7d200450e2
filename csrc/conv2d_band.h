/* conv2d_band.h - private to the conv2d files: the job description and band layout they
 * share (conv2d_band.c). Not installed, not public. */
#ifndef FASTNN_CONV2D_BAND_H
#define FASTNN_CONV2D_BAND_H

#include "internal.h"

/* Largest micro-kernel row count of any ISA (sizes the tiles' row-pointer arrays). */
#define FNN_CONV_MAX_MR 16

static inline int64_t conv_floor_div(int64_t a, int64_t b) { /* b > 0 */
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* A job: an output grid (out_h x out_w) whose pixel (a, b) is
 *     out(a, b) = sum_t src(a*ss_h + off_h[t], b*ss_w + off_w[t]) @ B_t,
 * src being one image (src_h, src_w, cs), 0 outside it, and B_t (cs x n) the weights of tap
 * tap_id[t]. Output pixel (a, b) lives at dst + ((a*ds_h + d0_h)*dst_w + b*ds_w + d0_w)*dst_c.
 *
 * Band layout, for output rows [a0, a0 + rows) (conv_band_layout):
 *   phase (im2col == 0): the zero-padded source rows the band reads, split into one slot per
 *     residue (rho_h, rho_w) of the source row / column modulo ss that some tap uses. Slot
 *     pixel (u, x) holds src((a0 + qmin_h + u)*ss_h + rho_h, (qmin_w + x)*ss_w + rho_w), and
 *     each row has wrow = out_w + (qmax_w - qmin_w) pixels. Output pixel (a, b) of tap t is
 *     then at buf + ((a - a0)*wrow + b)*cs + a_off[t]: consecutive "virtual" pixels
 *     v = (a - a0)*wrow + b are cs floats apart, across rows (pixels with b >= out_w are
 *     computed and dropped).
 *   im2col (im2col == 1, few source channels): one row of ntaps*cs floats per output pixel,
 *     wrow = out_w, a single micro-kernel tap.
 * Slack rows after the band keep every read of a partial last tile inside the buffer. */
typedef struct {
    int64_t src_h, src_w, cs, ss_h, ss_w, out_h, out_w;
    int64_t ntaps;
    int64_t *off_h, *off_w, *tap_id;
    int64_t ds_h, ds_w, d0_h, d0_w, dst_w, dst_c;
    /* layout, set by conv_job_layout */
    int im2col;
    int64_t rows, nbands;
    int64_t wrow, lda, kc, uk_taps; /* what the micro-kernel sees */
    int64_t *a_off;                 /* uk_taps offsets into the band */
    int64_t qmin_h, qmin_w, nslot, slot_rows, slot_floats, buf_floats;
    int64_t *slot_phase; /* slot -> rho_h * ss_w + rho_w */
    int direct_ok;       /* the phase layout is the source itself (1x1, stride 1, no padding) */
    /* weights, set by conv_job_prepare */
    int dot;             /* few outputs: the dot micro-kernel */
    int64_t n;           /* outputs per pixel */
    float *wpack;        /* packed weights */
    const float **bptr;  /* per panel (gemm) and micro-kernel tap: B pointers */
} conv_job;

fnn_status conv_job_alloc(conv_job *j, int64_t ntaps);
void conv_job_free(conv_job *j);

/* Sets the source and output grids; the caller fills off_h, off_w, tap_id and dst fields. */
void conv_job_geometry(conv_job *j, int64_t src_h, int64_t src_w, int64_t cs, int64_t ss_h,
                       int64_t ss_w, int64_t out_h, int64_t out_w);

/* Bytes of source a band may lay out (about a quarter of a 2 MiB L2). */
#define CONV_BAND_FLOATS (64 * 1024)

/* Chooses the layout for bands of `rows` output rows; mr_max bounds the rows a micro-kernel
 * tile reads. */
void conv_job_layout(conv_job *j, int im2col, int64_t rows, int64_t mr_max);

/* Per-row floats of a layout (to choose rows before calling conv_job_layout). */
int64_t conv_job_row_floats(const conv_job *j, int im2col);

/* Chooses layout, band rows (at least ceil(n_threads / batch) bands per image when rows
 * allow) and kernel (dot for few outputs), and packs the weights, whose element for tap
 * tap_id, reduction index kk < cs and output nn < n is w[tap*tap_stride + kk*k_stride +
 * nn*n_stride]. */
fnn_status conv_job_prepare(const fnn_conv_cfg *cc, conv_job *j, const float *w,
                            int64_t tap_stride, int64_t k_stride, int64_t n_stride, int64_t n,
                            int64_t batch, int n_threads);

/* Lays out output rows [a0, a1) of the job's source image src_img into buf (buf_floats
 * floats) and returns it, or returns a pointer into the source itself when the layout would
 * be a plain copy that stays before src_end. */
const float *conv_band_layout(const conv_job *j, const float *src_img, const float *src_end,
                              int64_t a0, int64_t a1, float *buf);

/* Weight gradients sum their work items (bands, tile blocks) in at most this many groups of
 * consecutive items, fixed by the shapes, each into a partial of part_floats floats, then add
 * the partials in group order: bitwise identical for every thread count. The partials'
 * memory is bounded by CONV_WGRAD_PART_FLOATS, so large layers get fewer groups. */
#define CONV_WGRAD_MAX_GROUPS 16
#define CONV_WGRAD_PART_FLOATS (8 * 1024 * 1024)
static inline int64_t conv_wgrad_groups(int64_t items, int64_t part_floats) {
    const int64_t by_memory = FNN_MAX(1, CONV_WGRAD_PART_FLOATS / FNN_MAX(part_floats, 1));
    return FNN_MAX(1, FNN_MIN(FNN_MIN(items, CONV_WGRAD_MAX_GROUPS), by_memory));
}

/* The Winograd F(2x2, 3x3) path (conv2d_winograd.c): 3x3, stride 1, no dilation, enough
 * channels. Same contracts as the fnn_conv2d_* entries it serves. */
int fnn_conv_winograd_applies(const fnn_conv2d_desc *d, int wgrad);
fnn_status fnn_conv_winograd_fwd(const fnn_conv2d_desc *d, const float *x, const float *w,
                                 const float *bias, fnn_act act, float act_alpha, float *y,
                                 int n_threads);
fnn_status fnn_conv_winograd_bwd_data(const fnn_conv2d_desc *d, const float *dy,
                                      const float *w, float *dx, int n_threads);
fnn_status fnn_conv_winograd_bwd_filter(const fnn_conv2d_desc *d, const float *x,
                                        const float *dy, float *dw, float *db, int n_threads);

#endif /* FASTNN_CONV2D_BAND_H */
