/* pool2d.c - max and average pooling, forward and backward, NHWC (contract: fastnn.h).
 *
 * Work is split into rows of one image: output rows for the forward, input rows for the
 * backward. The backward gathers: each dx pixel sums the dy of the (few) windows that hold it,
 * selected by argmax (max) or weighted by 1 / |window| (average), so every dx element is written
 * once, rows are independent, and no zero fill or scatter is needed.
 *
 * The row bodies below are plain C vectorized along the channels by the compiler; each ISA
 * compiles them under its target attribute (the wrappers at the end), and dispatch.c picks.
 */
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_MSC_VER)
#define POOL_INLINE static __forceinline
#else
#define POOL_INLINE static inline __attribute__((always_inline))
#endif

/* Elements (input plus output floats) a second thread must get before it pays for waking it:
 * pooling streams memory at a few elements per ns, so a fork/join of ~5-10 us is ~64 k. */
#define POOL_MIN_WORK_PER_THREAD (64 * 1024)

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

fnn_status fnn_pool2d_desc_check(const fnn_pool2d_desc *d) {
    if (d == NULL || d->batch < 0 || d->h < 0 || d->w < 0 || d->c < 0 || d->out_h < 0 ||
        d->out_w < 0 || d->pool_h < 1 || d->pool_w < 1 || d->stride_h < 1 || d->stride_w < 1 ||
        d->pad_top < 0 || d->pad_left < 0 || d->h * d->w > INT32_MAX)
        return FNN_ERR_ARG;
    /* every window holds a pixel: the first ends after the image starts and the last
     * starts before it ends */
    if (d->out_h > 0 && (d->h == 0 || d->pad_top >= d->pool_h ||
                         (d->out_h - 1) * d->stride_h - d->pad_top >= d->h))
        return FNN_ERR_ARG;
    if (d->out_w > 0 && (d->w == 0 || d->pad_left >= d->pool_w || (d->out_w - 1) * d->stride_w - d->pad_left >= d->w))
        return FNN_ERR_ARG;
    return FNN_OK;
}

static fnn_status pool_size(int64_t in, int64_t k, int64_t stride, fnn_padding padding,
                            int64_t *out, int64_t *pad) {
    if (padding == FNN_PADDING_VALID) {
        if (in < k) return FNN_ERR_ARG;
        *out = (in - k) / stride + 1;
        *pad = 0;
        return FNN_OK;
    }
    if (padding == FNN_PADDING_SAME) {
        *out = fnn_ceil_div(in, stride);
        *pad = FNN_MAX((*out - 1) * stride + k - in, 0) / 2;
        return FNN_OK;
    }
    return FNN_ERR_ARG;
}

fnn_status fnn_pool2d_desc_init(fnn_pool2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                int64_t c, int64_t pool_h, int64_t pool_w, int64_t stride_h,
                                int64_t stride_w, fnn_padding padding) {
    if (d == NULL) return FNN_ERR_ARG;
    fnn_pool2d_desc r = {batch, h, w, c, pool_h, pool_w, stride_h, stride_w, 0, 0, 0, 0};
    if (batch < 0 || h < 0 || w < 0 || c < 0 || pool_h < 1 || pool_w < 1 || stride_h < 1 ||
        stride_w < 1)
        return FNN_ERR_ARG;
    fnn_status st = pool_size(h, pool_h, stride_h, padding, &r.out_h, &r.pad_top);
    if (st == FNN_OK) st = pool_size(w, pool_w, stride_w, padding, &r.out_w, &r.pad_left);
    if (st == FNN_OK) st = fnn_pool2d_desc_check(&r);
    if (st == FNN_OK) *d = r;
    return st;
}

/* --- row bodies (compiled once per ISA by the wrappers below) ---------------------------- */

POOL_INLINE void window(int64_t o, int64_t stride, int64_t pad, int64_t pool, int64_t n,
                        int64_t *lo, int64_t *hi) {
    const int64_t s = o * stride - pad;
    *lo = FNN_MAX(s, 0);
    *hi = FNN_MIN(s + pool, n);
}

POOL_INLINE void max_fwd_body(const fnn_pool2d_desc *d, const float *x, int64_t oy,
                              float *y_row, int32_t *idx_row) {
    const int64_t ch = d->c, w = d->w;
    int64_t y0, y1, x0, x1;
    window(oy, d->stride_h, d->pad_top, d->pool_h, d->h, &y0, &y1);
    for (int64_t ox = 0; ox < d->out_w; ox++) {
        window(ox, d->stride_w, d->pad_left, d->pool_w, d->w, &x0, &x1);
        float *FNN_RESTRICT yo = y_row + ox * ch;
        const float *FNN_RESTRICT first = x + (y0 * w + x0) * ch;
        for (int64_t c = 0; c < ch; c++) yo[c] = first[c];
        if (idx_row == NULL) {
            for (int64_t iy = y0; iy < y1; iy++)
                for (int64_t ix = x0; ix < x1; ix++) {
                    const float *FNN_RESTRICT p = x + (iy * w + ix) * ch;
                    for (int64_t c = 0; c < ch; c++) {
                        const float v = p[c];
                        yo[c] = (v > yo[c] || v != v) ? v : yo[c];
                    }
                }
            continue;
        }
        int32_t *FNN_RESTRICT io = idx_row + ox * ch;
        const int32_t i_first = (int32_t)(y0 * w + x0);
        for (int64_t c = 0; c < ch; c++) io[c] = i_first;
        /* the first pixel is compared with itself: a no-op, unless NaN (same index) */
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) {
                const float *FNN_RESTRICT p = x + (iy * w + ix) * ch;
                const int32_t pi = (int32_t)(iy * w + ix);
                for (int64_t c = 0; c < ch; c++) {
                    const float v = p[c];
                    const int take = v > yo[c] || v != v; /* NaN propagates (last NaN wins) */
                    yo[c] = take ? v : yo[c];
                    io[c] = take ? pi : io[c];
                }
            }
    }
}

POOL_INLINE void avg_fwd_body(const fnn_pool2d_desc *d, const float *x, int64_t oy,
                              float *y_row, int32_t *idx_row) {
    const int64_t ch = d->c, w = d->w;
    int64_t y0, y1, x0, x1;
    (void)idx_row;
    window(oy, d->stride_h, d->pad_top, d->pool_h, d->h, &y0, &y1);
    for (int64_t ox = 0; ox < d->out_w; ox++) {
        window(ox, d->stride_w, d->pad_left, d->pool_w, d->w, &x0, &x1);
        float *FNN_RESTRICT yo = y_row + ox * ch;
        for (int64_t c = 0; c < ch; c++) yo[c] = 0.0f;
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) {
                const float *FNN_RESTRICT p = x + (iy * w + ix) * ch;
                for (int64_t c = 0; c < ch; c++) yo[c] += p[c];
            }
        const float count = (float)((y1 - y0) * (x1 - x0));
        for (int64_t c = 0; c < ch; c++) yo[c] /= count;
    }
}

/* Output rows [lo, hi) whose windows hold input row i. */
POOL_INLINE void covering(int64_t i, int64_t stride, int64_t pad, int64_t pool, int64_t n_out,
                          int64_t *lo, int64_t *hi) {
    *lo = FNN_MAX(0, floor_div(i + pad - pool, stride) + 1);
    *hi = FNN_MIN(n_out, floor_div(i + pad, stride) + 1);
}

POOL_INLINE void max_bwd_body(const fnn_pool2d_desc *d, const float *dy, const int32_t *idx,
                              const int64_t *cov, int64_t iy, float *dx_row) {
    const int64_t ch = d->c, w = d->w;
    int64_t oy0, oy1;
    covering(iy, d->stride_h, d->pad_top, d->pool_h, d->out_h, &oy0, &oy1);
    for (int64_t ix = 0; ix < w; ix++) {
        float *FNN_RESTRICT g = dx_row + ix * ch;
        const int32_t pi = (int32_t)(iy * w + ix);
        for (int64_t c = 0; c < ch; c++) g[c] = 0.0f;
        for (int64_t oy = oy0; oy < oy1; oy++)
            for (int64_t ox = cov[2 * ix]; ox < cov[2 * ix + 1]; ox++) {
                const float *FNN_RESTRICT go = dy + (oy * d->out_w + ox) * ch;
                const int32_t *FNN_RESTRICT io = idx + (oy * d->out_w + ox) * ch;
                for (int64_t c = 0; c < ch; c++) g[c] += io[c] == pi ? go[c] : 0.0f;
            }
    }
}

POOL_INLINE void avg_bwd_body(const fnn_pool2d_desc *d, const float *dy, const int32_t *idx,
                              const int64_t *cov, int64_t iy, float *dx_row) {
    const int64_t ch = d->c, w = d->w;
    int64_t oy0, oy1, y0, y1, x0, x1;
    (void)idx;
    covering(iy, d->stride_h, d->pad_top, d->pool_h, d->out_h, &oy0, &oy1);
    for (int64_t ix = 0; ix < w; ix++) {
        float *FNN_RESTRICT g = dx_row + ix * ch;
        for (int64_t c = 0; c < ch; c++) g[c] = 0.0f;
        for (int64_t oy = oy0; oy < oy1; oy++) {
            window(oy, d->stride_h, d->pad_top, d->pool_h, d->h, &y0, &y1);
            for (int64_t ox = cov[2 * ix]; ox < cov[2 * ix + 1]; ox++) {
                window(ox, d->stride_w, d->pad_left, d->pool_w, d->w, &x0, &x1);
                const float count = (float)((y1 - y0) * (x1 - x0));
                const float *FNN_RESTRICT go = dy + (oy * d->out_w + ox) * ch;
                for (int64_t c = 0; c < ch; c++) g[c] += go[c] / count;
            }
        }
    }
}

/* --- drivers -------------------------------------------------------------------------------- */

static int pool_threads(int n_threads, double work, int64_t tasks) {
    int nt = fnn_effective_threads(n_threads);
    nt = (int)FNN_MIN((double)nt, FNN_MAX(1.0, work / POOL_MIN_WORK_PER_THREAD));
    return (int)FNN_MAX(1, FNN_MIN(nt, tasks));
}

static fnn_status pool_fwd(const fnn_pool2d_desc *d, const float *x, float *y, int32_t *idx,
                           fnn_pool_fwd_row_fn row, int n_threads) {
    if (fnn_pool2d_desc_check(d) != FNN_OK) return FNN_ERR_ARG;
    const int64_t ysize = d->batch * d->out_h * d->out_w * d->c;
    if (ysize == 0) return FNN_OK;
    if (x == NULL || y == NULL) return FNN_ERR_ARG;
    const int64_t tasks = d->batch * d->out_h, row_len = d->out_w * d->c;
    const double work = (double)d->batch * d->h * d->w * d->c + (double)ysize;
    const int nt = pool_threads(n_threads, work, tasks);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t n = t / d->out_h, oy = t % d->out_h;
            row(d, x + n * d->h * d->w * d->c, oy, y + t * row_len,
                idx ? idx + t * row_len : NULL);
        }
        fnn_fp_leave(fp);
    }
    return FNN_OK;
}

static fnn_status pool_bwd(const fnn_pool2d_desc *d, const float *dy, const int32_t *idx,
                           float *dx, fnn_pool_bwd_row_fn row, int n_threads) {
    if (fnn_pool2d_desc_check(d) != FNN_OK) return FNN_ERR_ARG;
    const int64_t xsize = d->batch * d->h * d->w * d->c;
    if (xsize == 0) return FNN_OK;
    const int64_t ysize = d->batch * d->out_h * d->out_w * d->c;
    if (dx == NULL || (ysize > 0 && dy == NULL)) return FNN_ERR_ARG;
    int64_t *cov = fnn_malloc((size_t)(2 * d->w) * sizeof(int64_t));
    if (cov == NULL) return FNN_ERR_NOMEM;
    for (int64_t ix = 0; ix < d->w; ix++)
        covering(ix, d->stride_w, d->pad_left, d->pool_w, d->out_w, &cov[2 * ix],
                 &cov[2 * ix + 1]);
    const int64_t tasks = d->batch * d->h, row_len = d->w * d->c;
    const int64_t y_img = d->out_h * d->out_w * d->c;
    const int nt = pool_threads(n_threads, (double)xsize + (double)ysize, tasks);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t n = t / d->h, iy = t % d->h;
            row(d, dy + n * y_img, idx ? idx + n * y_img : NULL, cov, iy, dx + t * row_len);
        }
        fnn_fp_leave(fp);
    }
    fnn_free(cov);
    return FNN_OK;
}

fnn_status fnn_maxpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                 int32_t *argmax, int n_threads) {
    return pool_fwd(d, x, y, argmax, fnn_kernels()->pool.max_fwd, n_threads);
}

fnn_status fnn_maxpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy,
                                 const int32_t *argmax, float *dx, int n_threads) {
    if (d != NULL && d->batch * d->out_h * d->out_w * d->c > 0 && argmax == NULL)
        return FNN_ERR_ARG;
    return pool_bwd(d, dy, argmax, dx, fnn_kernels()->pool.max_bwd, n_threads);
}

fnn_status fnn_avgpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                 int n_threads) {
    return pool_fwd(d, x, y, NULL, fnn_kernels()->pool.avg_fwd, n_threads);
}

fnn_status fnn_avgpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy, float *dx,
                                 int n_threads) {
    return pool_bwd(d, dy, NULL, dx, fnn_kernels()->pool.avg_bwd, n_threads);
}

/* --- per-ISA instances ------------------------------------------------------------------- */

static void max_fwd_ref(const fnn_pool2d_desc *d, const float *x, int64_t oy, float *y_row,
                        int32_t *idx_row) {
    max_fwd_body(d, x, oy, y_row, idx_row);
}
static void avg_fwd_ref(const fnn_pool2d_desc *d, const float *x, int64_t oy, float *y_row,
                        int32_t *idx_row) {
    avg_fwd_body(d, x, oy, y_row, idx_row);
}
static void max_bwd_ref(const fnn_pool2d_desc *d, const float *dy, const int32_t *idx,
                        const int64_t *cov, int64_t iy, float *dx_row) {
    max_bwd_body(d, dy, idx, cov, iy, dx_row);
}
static void avg_bwd_ref(const fnn_pool2d_desc *d, const float *dy, const int32_t *idx,
                        const int64_t *cov, int64_t iy, float *dx_row) {
    avg_bwd_body(d, dy, idx, cov, iy, dx_row);
}
const fnn_pool_cfg fnn_pool_cfg_ref = {max_fwd_ref, avg_fwd_ref, max_bwd_ref, avg_bwd_ref};

#ifdef FNN_X86_64
FNN_TARGET_AVX2 static void max_fwd_avx2(const fnn_pool2d_desc *d, const float *x, int64_t oy,
                                         float *y_row, int32_t *idx_row) {
    max_fwd_body(d, x, oy, y_row, idx_row);
}
FNN_TARGET_AVX2 static void avg_fwd_avx2(const fnn_pool2d_desc *d, const float *x, int64_t oy,
                                         float *y_row, int32_t *idx_row) {
    avg_fwd_body(d, x, oy, y_row, idx_row);
}
FNN_TARGET_AVX2 static void max_bwd_avx2(const fnn_pool2d_desc *d, const float *dy,
                                         const int32_t *idx, const int64_t *cov, int64_t iy,
                                         float *dx_row) {
    max_bwd_body(d, dy, idx, cov, iy, dx_row);
}
FNN_TARGET_AVX2 static void avg_bwd_avx2(const fnn_pool2d_desc *d, const float *dy,
                                         const int32_t *idx, const int64_t *cov, int64_t iy,
                                         float *dx_row) {
    avg_bwd_body(d, dy, idx, cov, iy, dx_row);
}
const fnn_pool_cfg fnn_pool_cfg_avx2 = {max_fwd_avx2, avg_fwd_avx2, max_bwd_avx2, avg_bwd_avx2};

FNN_TARGET_AVX512 static void max_fwd_avx512(const fnn_pool2d_desc *d, const float *x,
                                             int64_t oy, float *y_row, int32_t *idx_row) {
    max_fwd_body(d, x, oy, y_row, idx_row);
}
FNN_TARGET_AVX512 static void avg_fwd_avx512(const fnn_pool2d_desc *d, const float *x,
                                             int64_t oy, float *y_row, int32_t *idx_row) {
    avg_fwd_body(d, x, oy, y_row, idx_row);
}
FNN_TARGET_AVX512 static void max_bwd_avx512(const fnn_pool2d_desc *d, const float *dy,
                                             const int32_t *idx, const int64_t *cov,
                                             int64_t iy, float *dx_row) {
    max_bwd_body(d, dy, idx, cov, iy, dx_row);
}
FNN_TARGET_AVX512 static void avg_bwd_avx512(const fnn_pool2d_desc *d, const float *dy,
                                             const int32_t *idx, const int64_t *cov,
                                             int64_t iy, float *dx_row) {
    avg_bwd_body(d, dy, idx, cov, iy, dx_row);
}
const fnn_pool_cfg fnn_pool_cfg_avx512 = {max_fwd_avx512, avg_fwd_avx512, max_bwd_avx512,
                                          avg_bwd_avx512};
#endif
