/* conv2d.c - 2-D convolution, NHWC activations and HWIO weights: forward and backward to the
 * input on the conv micro-kernels (contracts: fastnn.h, internal.h). The backward to the
 * weights is conv2d_wgrad.c, the 3x3 fast path conv2d_winograd.c; the band layout they share
 * is conv2d_band.c.
 *
 * Both passes here are "jobs" (conv2d_band.h): an output grid whose pixel (a, b) is
 *     out(a, b) = sum_t src(a*ss_h + off_h[t], b*ss_w + off_w[t]) @ B_t      (src = 0 outside)
 *   forward:  src = x, ss = stride, off = tap*dil - pad, B_t = w[tap]; one job for all images.
 *   backward to the input: the transposed convolution, split by the residue of the dx row and
 *     column modulo the stride. Each residue class is a stride-1 job over dy with the taps that
 *     reach it and B_t = w[tap]^T, writing every dx element of the class once (no col2im
 *     scatter, no zero fill, one writer per element: bitwise identical for any thread count).
 * A job runs in bands of output rows: the band of the source is laid out once per band and
 * thread (conv2d_band.c) so that the micro-kernel reads it in place, and the weights are
 * packed once per call. Bands are the unit of threading.
 */
#include <string.h>

#include "conv2d_band.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Multiply-adds a second thread must get before it pays for waking it (same measurement as
 * FNN_GEMM_MIN_WORK_PER_THREAD: bench/bench_conv2d.py --threshold breaks even near 100 k). */
#define CONV_MIN_WORK_PER_THREAD (128 * 1024)

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

fnn_status fnn_conv2d_desc_check(const fnn_conv2d_desc *d) {
    if (d == NULL) return FNN_ERR_ARG;
    if (d->batch < 0 || d->h < 0 || d->w < 0 || d->c_in < 0 || d->c_out < 0) return FNN_ERR_ARG;
    if (d->kh < 1 || d->kw < 1 || d->stride_h < 1 || d->stride_w < 1 || d->dil_h < 1 ||
        d->dil_w < 1)
        return FNN_ERR_ARG;
    if (d->pad_top < 0 || d->pad_left < 0 || d->out_h < 0 || d->out_w < 0) return FNN_ERR_ARG;
    return FNN_OK;
}

static fnn_status out_size(int64_t in, int64_t k, int64_t stride, int64_t dil,
                           fnn_padding padding, int64_t *out, int64_t *pad) {
    const int64_t eff = (k - 1) * dil + 1;
    switch (padding) {
    case FNN_PADDING_VALID:
        if (in < eff) return FNN_ERR_ARG;
        *out = (in - eff) / stride + 1;
        *pad = 0;
        return FNN_OK;
    case FNN_PADDING_SAME: {
        *out = fnn_ceil_div(in, stride);
        const int64_t total = FNN_MAX((*out - 1) * stride + eff - in, 0);
        *pad = total / 2; /* TF / Keras: the odd row or column goes after the image */
        return FNN_OK;
    }
    case FNN_PADDING_CAUSAL:
        *out = fnn_ceil_div(in, stride);
        *pad = eff - 1;
        return FNN_OK;
    }
    return FNN_ERR_ARG;
}

fnn_status fnn_conv2d_desc_init(fnn_conv2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                int64_t c_in, int64_t c_out, int64_t kh, int64_t kw,
                                int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w,
                                fnn_padding padding) {
    if (d == NULL) return FNN_ERR_ARG;
    fnn_conv2d_desc r = {batch, h, w, c_in, c_out, kh, kw, stride_h, stride_w, dil_h, dil_w,
                         0, 0, 0, 0};
    fnn_status st = fnn_conv2d_desc_check(&r);
    if (st != FNN_OK) return st;
    st = out_size(h, kh, stride_h, dil_h, padding, &r.out_h, &r.pad_top);
    if (st == FNN_OK) st = out_size(w, kw, stride_w, dil_w, padding, &r.out_w, &r.pad_left);
    if (st == FNN_OK) *d = r;
    return st;
}

/* --- running jobs ----------------------------------------------------------------------- */

/* Tile pass over one band [a0, a1) of a job whose source band is laid out in buf. */
static void band_tiles(const fnn_conv_cfg *cc, const conv_job *j, const float *buf, int64_t a0,
                       int64_t a1, float *dst, const float *bias) {
    const int64_t nv = (a1 - a0) * j->wrow;
    const int64_t mr = j->dot ? cc->dot_mr : cc->mr;
    float *rows[FNN_CONV_MAX_MR];
    int64_t a = a0, b = 0; /* output pixel of virtual pixel v0 */
    for (int64_t v0 = 0; v0 < nv; v0 += mr) {
        int any = 0;
        for (int64_t r = 0, ar = a, br = b; r < mr; r++) {
            rows[r] = NULL;
            if (v0 + r < nv && br < j->out_w) {
                rows[r] = dst + ((ar * j->ds_h + j->d0_h) * j->dst_w + br * j->ds_w + j->d0_w) *
                                    j->dst_c;
                any = 1;
            }
            if (++br == j->wrow) br = 0, ar++;
        }
        b += mr;
        a += b / j->wrow;
        b %= j->wrow;
        if (!any) continue;
        const float *a = buf + v0 * j->lda;
        if (j->dot) {
            cc->dot(j->uk_taps, j->kc, a, j->lda, j->a_off, (const float *const *)j->bptr,
                    j->kc * j->uk_taps, bias, j->n, rows);
            continue;
        }
        for (int64_t jb = 0; jb * cc->nr < j->n; jb++) {
            const int64_t n0 = jb * cc->nr;
            if (jb > 0)
                for (int64_t r = 0; r < mr; r++)
                    if (rows[r] != NULL) rows[r] += cc->nr;
            cc->fwd(j->uk_taps, j->kc, a, j->lda, j->a_off,
                    (const float *const *)j->bptr + jb * j->uk_taps,
                    bias != NULL ? bias + n0 : NULL, FNN_MIN(cc->nr, j->n - n0), rows);
        }
    }
}

/* Runs njobs jobs over every image: out images of dst_img floats, source images of
 * src_img floats (src_total: the whole source, for the in-place check). */
static fnn_status run_jobs(const fnn_conv_cfg *cc, conv_job *jobs, int64_t njobs,
                           int64_t batch, const float *src, int64_t src_img, float *dst,
                           int64_t dst_img, const float *bias, fnn_act act, float act_alpha,
                           double work, int n_threads) {
    const fnn_kernel_table *kt = fnn_kernels();
    int64_t ntasks = 0, buf_floats = 0;
    for (int64_t q = 0; q < njobs; q++) {
        ntasks += batch * jobs[q].nbands;
        buf_floats = FNN_MAX(buf_floats, jobs[q].buf_floats);
    }
    if (ntasks == 0) return FNN_OK;
    int nt = fnn_effective_threads(n_threads);
    nt = (int)FNN_MIN((double)nt, FNN_MAX(1.0, work / CONV_MIN_WORK_PER_THREAD));
    nt = (int)FNN_MIN(nt, ntasks);
    const float *src_end = src + batch * src_img;
    int failed = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(| : failed) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
        float *buf = fnn_malloc((size_t)buf_floats * sizeof(float));
        if (buf == NULL) failed = 1;
        int64_t t0 = 0, t1 = ntasks;
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), tn = omp_get_num_threads();
        t0 = ntasks * tid / tn;
        t1 = ntasks * (tid + 1) / tn;
#endif
        for (int64_t task = t0; task < t1 && buf != NULL; task++) {
            int64_t q = 0, rest = task;
            while (rest >= batch * jobs[q].nbands) rest -= batch * jobs[q].nbands, q++;
            const conv_job *j = &jobs[q];
            const int64_t img = rest / j->nbands, band = rest % j->nbands;
            const int64_t a0 = band * j->rows, a1 = FNN_MIN(j->out_h, a0 + j->rows);
            const float *sb = conv_band_layout(j, src + img * src_img, src_end, a0, a1, buf);
            float *out = dst + img * dst_img;
            band_tiles(cc, j, sb, a0, a1, out, bias);
            if (act != FNN_ACT_LINEAR) { /* forward only: the band's rows are contiguous */
                float *o = out + a0 * j->out_w * j->dst_c;
                kt->act_fwd(act, act_alpha, o, o, (a1 - a0) * j->out_w * j->dst_c);
            }
        }
        fnn_free(buf);
        fnn_fp_leave(fp);
    }
    return failed ? FNN_ERR_NOMEM : FNN_OK;
}

static int fwd_args_ok(const fnn_conv2d_desc *d, const float *x, const float *w, const float *y) {
    if (fnn_conv2d_desc_check(d) != FNN_OK) return 0;
    const int64_t xs = d->batch * d->h * d->w * d->c_in, ws = d->kh * d->kw * d->c_in * d->c_out;
    const int64_t ys = d->batch * d->out_h * d->out_w * d->c_out;
    return !((xs > 0 && x == NULL) || (ws > 0 && w == NULL) || (ys > 0 && y == NULL));
}

/* A 1x1, stride-1, unpadded convolution over the whole batch is one GEMM over its pixels: the
 * batch is folded into the rows so the band layout is the input itself (no copy). */
static int is_pointwise(const fnn_conv2d_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_top == 0 &&
           d->pad_left == 0 && d->out_h == d->h && d->out_w == d->w;
}

fnn_status fnn_conv2d_fwd_f32(const fnn_conv2d_desc *d, const float *x, const float *w,
                              const float *bias, fnn_act act, float act_alpha, float *y,
                              int n_threads) {
    if (!fwd_args_ok(d, x, w, y) || (int)act < 0 || (int)act >= (int)FNN_ACT_SOFTMAX)
        return FNN_ERR_ARG;
    if (d->batch == 0 || d->out_h == 0 || d->out_w == 0 || d->c_out == 0) return FNN_OK;
    if (fnn_conv_winograd_applies(d, 0))
        return fnn_conv_winograd_fwd(d, x, w, bias, act, act_alpha, y, n_threads);
    const fnn_conv_cfg *cc = &fnn_kernels()->conv;
    fnn_conv2d_desc e = *d;
    if (is_pointwise(d)) { /* fold the batch into the rows */
        e.h = e.out_h = d->batch * d->h;
        e.batch = 1;
    }
    const int64_t ntaps = e.kh * e.kw;
    conv_job j;
    fnn_status st = conv_job_alloc(&j, ntaps);
    if (st != FNN_OK) return st;
    for (int64_t i = 0; i < e.kh; i++)
        for (int64_t t = 0; t < e.kw; t++) {
            j.off_h[i * e.kw + t] = i * e.dil_h - e.pad_top;
            j.off_w[i * e.kw + t] = t * e.dil_w - e.pad_left;
            j.tap_id[i * e.kw + t] = i * e.kw + t;
        }
    conv_job_geometry(&j, e.h, e.w, e.c_in, e.stride_h, e.stride_w, e.out_h, e.out_w);
    j.ds_h = j.ds_w = 1;
    j.d0_h = j.d0_w = 0;
    j.dst_w = e.out_w;
    j.dst_c = e.c_out;
    /* w[tap][ci][co]: tap stride c_in*c_out, reduction (ci) stride c_out, output stride 1 */
    st = conv_job_prepare(cc, &j, w, e.c_in * e.c_out, e.c_out, 1, e.c_out, e.batch,
                          n_threads);
    if (st == FNN_OK) {
        const double work = (double)e.batch * e.out_h * e.out_w * ntaps * e.c_in * e.c_out;
        st = run_jobs(cc, &j, 1, e.batch, x, e.h * e.w * e.c_in, y, e.out_h * e.out_w * e.c_out,
                      bias, act, act_alpha, work, n_threads);
    }
    conv_job_free(&j);
    return st;
}

fnn_status fnn_conv2d_bwd_data_f32(const fnn_conv2d_desc *d, const float *dy, const float *w,
                                   float *dx, int n_threads) {
    if (!fwd_args_ok(d, dx, w, dy)) return FNN_ERR_ARG;
    const int64_t dx_size = d->batch * d->h * d->w * d->c_in;
    if (dx_size == 0) return FNN_OK;
    if (d->out_h == 0 || d->out_w == 0 || d->c_out == 0) {
        memset(dx, 0, (size_t)dx_size * sizeof(float));
        return FNN_OK;
    }
    if (fnn_conv_winograd_applies(d, 0)) return fnn_conv_winograd_bwd_data(d, dy, w, dx, n_threads);
    const fnn_conv_cfg *cc = &fnn_kernels()->conv;
    fnn_conv2d_desc e = *d;
    if (is_pointwise(d)) {
        e.h = e.out_h = d->batch * d->h;
        e.batch = 1;
    }
    const int64_t sh = e.stride_h, sw = e.stride_w, nclass = sh * sw;
    conv_job *jobs = fnn_malloc((size_t)nclass * sizeof(conv_job));
    if (jobs == NULL) return FNN_ERR_NOMEM;
    int64_t made = 0;
    fnn_status st = FNN_OK;
    for (int64_t cy = 0; cy < sh && st == FNN_OK; cy++)
        for (int64_t cx = 0; cx < sw && st == FNN_OK; cx++) {
            /* dx row y is in class cy when y + pad_top = cy (mod sh); for y = sh*q + cy - pad,
             * tap i reaches it from dy row q + (cy - i*dil)/sh when sh divides cy - i*dil. */
            const int64_t q_lo = -floor_div(cy - e.pad_top, sh); /* ceil((pad - cy) / sh) */
            const int64_t q_hi = floor_div(e.h - 1 + e.pad_top - cy, sh);
            const int64_t p_lo = -floor_div(cx - e.pad_left, sw);
            const int64_t p_hi = floor_div(e.w - 1 + e.pad_left - cx, sw);
            if (q_hi < q_lo || p_hi < p_lo) continue;
            int64_t ntaps = 0;
            for (int64_t i = 0; i < e.kh; i++)
                for (int64_t t = 0; t < e.kw; t++)
                    if ((cy - i * e.dil_h) % sh == 0 && (cx - t * e.dil_w) % sw == 0) ntaps++;
            conv_job *j = &jobs[made];
            st = conv_job_alloc(j, ntaps);
            if (st != FNN_OK) break;
            made++;
            int64_t n = 0;
            for (int64_t i = 0; i < e.kh; i++)
                for (int64_t t = 0; t < e.kw; t++)
                    if ((cy - i * e.dil_h) % sh == 0 && (cx - t * e.dil_w) % sw == 0) {
                        j->off_h[n] = q_lo + (cy - i * e.dil_h) / sh;
                        j->off_w[n] = p_lo + (cx - t * e.dil_w) / sw;
                        j->tap_id[n++] = i * e.kw + t;
                    }
            conv_job_geometry(j, e.out_h, e.out_w, e.c_out, 1, 1, q_hi - q_lo + 1,
                              p_hi - p_lo + 1);
            j->ds_h = sh;
            j->ds_w = sw;
            j->d0_h = sh * q_lo + cy - e.pad_top;
            j->d0_w = sw * p_lo + cx - e.pad_left;
            j->dst_w = e.w;
            j->dst_c = e.c_in;
            /* B_t = w[tap]^T: reduction over co (stride 1), outputs ci (stride c_out) */
            st = conv_job_prepare(cc, j, w, e.c_in * e.c_out, 1, e.c_out, e.c_in, e.batch,
                                  n_threads);
        }
    if (st == FNN_OK) {
        const double work = (double)e.batch * e.out_h * e.out_w * e.kh * e.kw * e.c_in * e.c_out;
        st = run_jobs(cc, jobs, made, e.batch, dy, e.out_h * e.out_w * e.c_out, dx,
                      e.h * e.w * e.c_in, NULL, FNN_ACT_LINEAR, 0.0f, work, n_threads);
    }
    for (int64_t q = 0; q < made; q++) conv_job_free(&jobs[q]);
    fnn_free(jobs);
    return st;
}
