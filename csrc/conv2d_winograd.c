/* conv2d_winograd.c - 3x3, stride-1, undilated convolutions by Winograd's F(2x2, 3x3).
 *
 * Each 2x2 output tile of each channel pair costs 16 multiplies instead of 36: the 4x4 input
 * patch and the 3x3 filter are transformed (V = B^T d B, U = G g G^T), the 16 positions xi of
 * the transformed domain are 16 independent GEMMs over channels, M[xi] = V[xi] @ U[xi], and
 * the output tile is A^T M A (transforms: conv2d_wino_<isa>.c).
 *   forward: tiles of y from x and w;
 *   backward to the input: the same forward over dy with the flipped, transposed filter;
 *   backward to the weights: dU[xi] = sum over tiles of V[xi]^T dM[xi], dM = A g A^T of
 *     each 2x2 dy tile, then dw = G^T dU G; the bias gradient is dM at xi = (1, 1), the sum
 *     of each dy tile.
 * Tiles are processed in blocks of T (V and M of a block stay in L2) with the conv forward
 * and weight-gradient micro-kernels as the GEMM engines. The weight gradient sums blocks in
 * fixed groups, added in group order (bitwise identical for any thread count, as
 * conv2d_wgrad.c). Results differ from the direct algorithm by rounding only (the transforms
 * use 0, +-1 and 1/2). Outputs see exactly their own receptive field (the transforms' zero
 * pattern matches it), but a NaN or Inf in x reaches the weight gradient through whole 4x4
 * patches, so it may spread to more dw entries than the direct algorithm's.
 */
#include <string.h>

#include "conv2d_band.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Both channel counts at least this: below, the transforms (per tile, O(c_in + c_out)) cost
 * more than the 2.25x saved in the GEMMs (O(c_in * c_out)). Measured (32 x 32 images, batch
 * 32, 1 thread): forward and backward to the input break even near 16 channels; the weight
 * gradient, whose direct kernel wastes most of a tile on few channels, gains from 4. */
#define WINO_MIN_CHANNELS 16
#define WINO_WGRAD_MIN_CHANNELS 4
/* Forward and backward to the input only while the transformed filter (16 * c_in * c_out
 * floats) fits in L2 beside a block: with 256 x 256 channels on 8 x 8 images the direct
 * kernel was faster (its packed filter is reused over more pixels per pass). */
#define WINO_MAX_FILTER_FLOATS (16 * 128 * 128)

/* Floats of V and M (or dM) of one block of tiles: 384 KiB, a fifth of a 2 MiB L2, which
 * also holds the packed U (16 * c_in * c_out floats, 512 KiB at 64 x 128). */
#define WINO_BLOCK_FLOATS (96 * 1024)

#define WINO_MIN_WORK_PER_THREAD (128 * 1024)

int fnn_conv_winograd_applies(const fnn_conv2d_desc *d, int wgrad) {
    const int64_t min_c = wgrad ? WINO_WGRAD_MIN_CHANNELS : WINO_MIN_CHANNELS;
    return d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 && d->dil_h == 1 &&
           d->dil_w == 1 && d->c_in >= min_c && d->c_out >= min_c &&
           (wgrad || 16 * d->c_in * d->c_out <= WINO_MAX_FILTER_FLOATS);
}

/* Tiles per block (blocks run across images): a multiple of mr with V and M (c_in + c_out
 * floats per tile and xi) bounded, but at least WINO_MIN_BLOCK_TILES, the reuse each packed
 * U[xi] needs when it is too large for L2 beside them (the GEMMs then run xi by xi, with
 * U[xi] and the xi slices of V and M in L2). */
#define WINO_MIN_BLOCK_TILES 48
static int64_t block_tiles(int64_t c_in, int64_t c_out, int64_t mr, int64_t tiles) {
    int64_t t = WINO_BLOCK_FLOATS / (16 * (c_in + c_out)) / mr * mr;
    t = FNN_MAX(t, fnn_round_up(WINO_MIN_BLOCK_TILES, mr));
    return FNN_MIN(t, fnn_round_up(tiles, mr));
}

/* 4x4 input pixels of tile (ty, tx): src (h, w, c) read at (2ty - pt + i, 2tx - pl + j). */
static void tile_inputs(const float *src, int64_t h, int64_t w, int64_t c, int64_t ty,
                        int64_t tx, int64_t pt, int64_t pl, const float *zeros,
                        const float **pix) {
    for (int64_t i = 0; i < 4; i++) {
        const int64_t y = 2 * ty - pt + i;
        for (int64_t j = 0; j < 4; j++) {
            const int64_t x = 2 * tx - pl + j;
            pix[4 * i + j] =
                (y >= 0 && y < h && x >= 0 && x < w) ? src + (y * w + x) * c : zeros;
        }
    }
}

/* U = G g G^T for every (k, n), packed as the forward micro-kernel's B panels: panel jb,
 * position xi: c_in x nr floats. g(i, j) = w[tap * tap_stride + k * k_stride + n *
 * n_stride] with tap = i*3 + j, or (2-i)*3 + (2-j) when flip. */
static void pack_filter(const float *w, int64_t tap_stride, int64_t k_stride, int64_t n_stride,
                        int flip, int64_t c_in, int64_t c_out, int64_t nr, float *packed) {
    const int64_t npanels = fnn_ceil_div(c_out, nr);
    memset(packed, 0, (size_t)(npanels * 16 * c_in * nr) * sizeof(float));
    for (int64_t k = 0; k < c_in; k++)
        for (int64_t n = 0; n < c_out; n++) {
            float g[3][3], gg[4][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    const int64_t tap = flip ? (2 - i) * 3 + (2 - j) : i * 3 + j;
                    g[i][j] = w[tap * tap_stride + k * k_stride + n * n_stride];
                }
            for (int j = 0; j < 3; j++) { /* G g */
                gg[0][j] = g[0][j];
                gg[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
                gg[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
                gg[3][j] = g[2][j];
            }
            float *dst = packed + (n / nr * 16 * c_in + k) * nr + n % nr;
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                const float u[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                                    0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
                for (int j = 0; j < 4; j++) dst[(4 * i + j) * c_in * nr] = u[j];
            }
        }
}

/* y (batch, out_h, out_w, c_out) = act(conv3x3(src, w) + bias), src (batch, h, w, c_in) read
 * at (oy - pt + i, ox - pl + j). */
static fnn_status wino_conv(const float *src, int64_t batch, int64_t h, int64_t w,
                            int64_t c_in, int64_t pt, int64_t pl, const float *wt,
                            int64_t tap_stride, int64_t k_stride, int64_t n_stride, int flip,
                            const float *bias, fnn_act act, float act_alpha, float *y,
                            int64_t out_h, int64_t out_w, int64_t c_out, int n_threads) {
    const fnn_kernel_table *kt = fnn_kernels();
    const fnn_conv_cfg *cc = &kt->conv;
    const int64_t mr = cc->mr, nr = cc->nr, npanels = fnn_ceil_div(c_out, nr);
    const int64_t th = fnn_ceil_div(out_h, 2), tw = fnn_ceil_div(out_w, 2);
    const int64_t tiles = batch * th * tw, T = block_tiles(c_in, c_out, mr, tiles);
    const int64_t ntasks = fnn_ceil_div(tiles, T);
    float *packed = fnn_malloc((size_t)(npanels * 16 * c_in * nr) * sizeof(float));
    if (packed == NULL) return FNN_ERR_NOMEM;
    pack_filter(wt, tap_stride, k_stride, n_stride, flip, c_in, c_out, nr, packed);

    int nt = fnn_effective_threads(n_threads);
    const double work = (double)tiles * 16.0 * c_in * c_out;
    nt = (int)FNN_MIN((double)nt, FNN_MAX(1.0, work / WINO_MIN_WORK_PER_THREAD));
    nt = (int)FNN_MIN(nt, ntasks);
    /* xi planes one cache line longer than T rows: 16 planes T * c floats apart would share a
     * few L1 sets when T * c is a multiple of 1 KiB */
    const int64_t ldv = T * c_in + 16, ldm = T * c_out + 16;
    const int64_t ws_floats = 16 * (ldv + ldm) + 2 * c_in + 3 * c_out + 64;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(| : failed) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
        float *ws = fnn_malloc((size_t)ws_floats * sizeof(float));
        if (ws == NULL) failed = 1;
        int64_t k0 = 0, k1 = ntasks;
#ifdef _OPENMP
        k0 = ntasks * omp_get_thread_num() / omp_get_num_threads();
        k1 = ntasks * (omp_get_thread_num() + 1) / omp_get_num_threads();
#endif
        float *v = ws, *m = ws + 16 * ldv, *zeros = m + 16 * ldm;
        float *scratch = zeros + c_in + c_out, *bias0 = scratch + c_out;
        if (ws != NULL) {
            memset(ws, 0, (size_t)ws_floats * sizeof(float));
            if (bias != NULL) memcpy(bias0, bias, (size_t)c_out * sizeof(float));
        }
        const float *pix[16];
        float *rows[FNN_CONV_MAX_MR], *opix[4];
        const int64_t zero_off = 0;
        for (int64_t task = k0; task < k1 && ws != NULL; task++) {
            const int64_t t0 = task * T, count = FNN_MIN(T, tiles - t0);
            for (int64_t t = 0; t < count; t++) {
                const int64_t img = (t0 + t) / (th * tw), tile = (t0 + t) % (th * tw);
                tile_inputs(src + img * h * w * c_in, h, w, c_in, tile / tw, tile % tw, pt, pl,
                            zeros, pix);
                cc->wino_in(pix, c_in, v + t * c_in, ldv);
            }
            for (int64_t xi = 0; xi < 16; xi++)
                for (int64_t r0 = 0; r0 < count; r0 += mr)
                    for (int64_t jb = 0; jb < npanels; jb++) {
                        for (int64_t r = 0; r < mr; r++)
                            rows[r] = r0 + r < count ? m + xi * ldm + (r0 + r) * c_out + jb * nr
                                                     : NULL;
                        const float *bp = packed + (jb * 16 + xi) * c_in * nr;
                        cc->fwd(1, c_in, v + xi * ldv + r0 * c_in, c_in, &zero_off, &bp, NULL,
                                FNN_MIN(nr, c_out - jb * nr), rows);
                    }
            for (int64_t t = 0; t < count; t++) {
                const int64_t img = (t0 + t) / (th * tw), tile = (t0 + t) % (th * tw);
                const int64_t oy = tile / tw * 2, ox = tile % tw * 2;
                float *y_img = y + img * out_h * out_w * c_out;
                for (int64_t q = 0; q < 4; q++) {
                    const int64_t yy = oy + q / 2, xx = ox + q % 2;
                    opix[q] = yy < out_h && xx < out_w ? y_img + (yy * out_w + xx) * c_out
                                                       : scratch;
                }
                cc->wino_out(m + t * c_out, ldm, c_out, bias0, opix);
                if (act != FNN_ACT_LINEAR)
                    for (int64_t q = 0; q < 4; q += 2) {
                        if (opix[q] == scratch) continue;
                        const int64_t n = (opix[q + 1] == scratch ? 1 : 2) * c_out;
                        kt->act_fwd(act, act_alpha, opix[q], opix[q], n);
                    }
            }
        }
        fnn_free(ws);
        fnn_fp_leave(fp);
    }
    fnn_free(packed);
    return failed ? FNN_ERR_NOMEM : FNN_OK;
}

fnn_status fnn_conv_winograd_fwd(const fnn_conv2d_desc *d, const float *x, const float *w,
                                 const float *bias, fnn_act act, float act_alpha, float *y,
                                 int n_threads) {
    return wino_conv(x, d->batch, d->h, d->w, d->c_in, d->pad_top, d->pad_left, w,
                     d->c_in * d->c_out, d->c_out, 1, 0, bias, act, act_alpha, y, d->out_h,
                     d->out_w, d->c_out, n_threads);
}

fnn_status fnn_conv_winograd_bwd_data(const fnn_conv2d_desc *d, const float *dy,
                                      const float *w, float *dx, int n_threads) {
    /* dx[y] = sum_i dy[y + pt - i] w[i] = sum_i' dy[y - (2 - pt) + i'] w[2 - i']: a forward
     * over dy with the flipped filter, transposed (reduction over c_out), padding 2 - pt. */
    return wino_conv(dy, d->batch, d->out_h, d->out_w, d->c_out, 2 - d->pad_top,
                     2 - d->pad_left, w, d->c_in * d->c_out, 1, d->c_out, 1, NULL,
                     FNN_ACT_LINEAR, 0.0f, dx, d->h, d->w, d->c_in, n_threads);
}

fnn_status fnn_conv_winograd_bwd_filter(const fnn_conv2d_desc *d, const float *x,
                                        const float *dy, float *dw, float *db, int n_threads) {
    const fnn_conv_cfg *cc = &fnn_kernels()->conv;
    const int64_t c_in = d->c_in, c_out = d->c_out, mr = cc->wg_mr, nr = cc->wg_nr;
    const int64_t th = fnn_ceil_div(d->out_h, 2), tw = fnn_ceil_div(d->out_w, 2);
    const int64_t tiles = d->batch * th * tw, T = block_tiles(c_in, c_out, 4, tiles);
    const int64_t ntasks = fnn_ceil_div(tiles, T);
    const int64_t du_floats = 16 * c_in * c_out, part_floats = du_floats + c_out;
    const int64_t groups = conv_wgrad_groups(ntasks, part_floats);
    float *part = fnn_malloc((size_t)(groups * part_floats) * sizeof(float));
    if (part == NULL) return FNN_ERR_NOMEM;
    int nt = fnn_effective_threads(n_threads);
    const double work = (double)tiles * 16.0 * c_in * c_out;
    nt = (int)FNN_MIN((double)nt, FNN_MAX(1.0, work / WINO_MIN_WORK_PER_THREAD));
    nt = (int)FNN_MIN(nt, groups);
    const int64_t ldv = T * c_in + 16, ldm = T * c_out + 16; /* see wino_conv */
    const int64_t ws_floats = 16 * (ldv + ldm) + FNN_MAX(c_in, c_out) + 64;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(| : failed) if (nt > 1)
#endif
    {
        const unsigned int fp = fnn_fp_enter(); /* FTZ/DAZ, see internal.h */
        int tid = 0, tn = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        tn = omp_get_num_threads();
#endif
        float *ws = fnn_malloc((size_t)ws_floats * sizeof(float));
        if (ws == NULL) failed = 1;
        float *v = ws, *dm = ws + 16 * ldv, *zeros = dm + 16 * ldm;
        if (ws != NULL) memset(ws, 0, (size_t)ws_floats * sizeof(float));
        const float *pix[16];
        for (int64_t g = tid; g < groups && ws != NULL; g += tn) {
            float *du = part + g * part_floats, *pb = du + du_floats;
            memset(pb, 0, (size_t)c_out * sizeof(float));
            const int64_t k0 = ntasks * g / groups, k1 = ntasks * (g + 1) / groups;
            for (int64_t task = k0; task < k1; task++) {
                const int64_t t0 = task * T, count = FNN_MIN(T, tiles - t0);
                for (int64_t t = 0; t < count; t++) {
                    const int64_t img = (t0 + t) / (th * tw), tile = (t0 + t) % (th * tw);
                    const int64_t ty = tile / tw, tx = tile % tw;
                    const float *x_img = x + img * d->h * d->w * c_in;
                    const float *g_img = dy + img * d->out_h * d->out_w * c_out;
                    tile_inputs(x_img, d->h, d->w, c_in, ty, tx, d->pad_top, d->pad_left,
                                zeros, pix);
                    cc->wino_in(pix, c_in, v + t * c_in, ldv);
                    for (int64_t q = 0; q < 4; q++) {
                        const int64_t yy = 2 * ty + q / 2, xx = 2 * tx + q % 2;
                        pix[q] = yy < d->out_h && xx < d->out_w
                                     ? g_img + (yy * d->out_w + xx) * c_out
                                     : zeros;
                    }
                    cc->wino_grad(pix, c_out, dm + t * c_out, ldm);
                }
                for (int64_t xi = 0; xi < 16; xi++)
                    for (int64_t m0 = 0; m0 < c_in; m0 += mr)
                        for (int64_t n0 = 0; n0 < c_out; n0 += nr)
                            cc->wgrad(1, count, v + xi * ldv + m0, c_in, 0,
                                      dm + xi * ldm + n0, c_out, 0, task > k0,
                                      du + (xi * c_in + m0) * c_out + n0, c_out,
                                      FNN_MIN(mr, c_in - m0), FNN_MIN(nr, c_out - n0));
                cc->colsum(count, c_out, dm + 5 * ldm, c_out, pb); /* xi = (1, 1) */
            }
        }
        fnn_free(ws);
#ifdef _OPENMP
#pragma omp barrier
#endif
        /* partials in group order into group 0, then dw = G^T dU G per (ci, co) */
        const int64_t e0 = part_floats * tid / tn, e1 = part_floats * (tid + 1) / tn;
        for (int64_t g = 1; g < groups; g++)
            for (int64_t e = e0; e < e1; e++) part[e] += part[g * part_floats + e];
#ifdef _OPENMP
#pragma omp barrier
#endif
        const int64_t pairs = c_in * c_out, p0 = pairs * tid / tn, p1 = pairs * (tid + 1) / tn;
        for (int64_t p = p0; p < p1; p++) {
            float u[4][4], r[3][4];
            for (int xi = 0; xi < 16; xi++) u[xi / 4][xi % 4] = part[xi * pairs + p];
            for (int j = 0; j < 4; j++) { /* G^T u: rows 0..2 */
                r[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                r[1][j] = 0.5f * (u[1][j] - u[2][j]);
                r[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            for (int i = 0; i < 3; i++) { /* (G^T u) G */
                dw[(i * 3 + 0) * pairs + p] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
                dw[(i * 3 + 1) * pairs + p] = 0.5f * (r[i][1] - r[i][2]);
                dw[(i * 3 + 2) * pairs + p] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
            }
        }
        if (db != NULL && tid == 0) memcpy(db, part + du_floats, (size_t)c_out * sizeof(float));
        fnn_fp_leave(fp);
    }
    fnn_free(part);
    return failed ? FNN_ERR_NOMEM : FNN_OK;
}
