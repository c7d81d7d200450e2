/* conv2d_wino_ref.c - portable C Winograd F(2x2, 3x3) tile transforms and column sum: the
 * fallback on any CPU and the oracle of the ISA versions. Contracts: internal.h
 * (fnn_wino_*_fn, fnn_colsum_fn).
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   (input:  V = B^T d B)
 *   A^T = [1 1 1 0; 0 1 -1 -1]                      (output: Y = A^T M A; gradient: A g A^T)
 */
#include "internal.h"

static void in_ref(const float *const *pix, int64_t c, float *v, int64_t ld) {
    for (int64_t ch = 0; ch < c; ch++) {
        float t[4][4];
        for (int j = 0; j < 4; j++) { /* t = B^T d */
            const float d0 = pix[j][ch], d1 = pix[4 + j][ch];
            const float d2 = pix[8 + j][ch], d3 = pix[12 + j][ch];
            t[0][j] = d0 - d2;
            t[1][j] = d1 + d2;
            t[2][j] = d2 - d1;
            t[3][j] = d1 - d3;
        }
        for (int i = 0; i < 4; i++) { /* V = t B */
            v[(4 * i) * ld + ch] = t[i][0] - t[i][2];
            v[(4 * i + 1) * ld + ch] = t[i][1] + t[i][2];
            v[(4 * i + 2) * ld + ch] = t[i][2] - t[i][1];
            v[(4 * i + 3) * ld + ch] = t[i][1] - t[i][3];
        }
    }
}

static void out_ref(const float *m, int64_t ld, int64_t c, const float *bias,
                    float *const *pix) {
    for (int64_t ch = 0; ch < c; ch++) {
        float s[2][4];
        for (int j = 0; j < 4; j++) { /* s = A^T m */
            const float m0 = m[j * ld + ch], m1 = m[(4 + j) * ld + ch];
            const float m2 = m[(8 + j) * ld + ch], m3 = m[(12 + j) * ld + ch];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
        }
        for (int i = 0; i < 2; i++) { /* Y = s A */
            pix[2 * i][ch] = s[i][0] + s[i][1] + s[i][2] + bias[ch];
            pix[2 * i + 1][ch] = s[i][1] - s[i][2] - s[i][3] + bias[ch];
        }
    }
}

static void grad_ref(const float *const *pix, int64_t c, float *dm, int64_t ld) {
    for (int64_t ch = 0; ch < c; ch++) {
        const float g00 = pix[0][ch], g01 = pix[1][ch], g10 = pix[2][ch], g11 = pix[3][ch];
        /* r = A g (4 x 2), then dm = r A^T (4 x 4) */
        const float r[4][2] = {{g00, g01}, {g00 + g10, g01 + g11}, {g00 - g10, g01 - g11},
                               {-g10, -g11}};
        for (int i = 0; i < 4; i++) {
            dm[(4 * i) * ld + ch] = r[i][0];
            dm[(4 * i + 1) * ld + ch] = r[i][0] + r[i][1];
            dm[(4 * i + 2) * ld + ch] = r[i][0] - r[i][1];
            dm[(4 * i + 3) * ld + ch] = -r[i][1];
        }
    }
}

static void colsum_ref(int64_t rows, int64_t cols, const float *x, int64_t ldx, float *acc) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) acc[j] += x[r * ldx + j];
}

const fnn_wino_fns fnn_wino_fns_ref = {in_ref, out_ref, grad_ref, colsum_ref};
