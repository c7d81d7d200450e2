/* dropout.c - inverted dropout with masks drawn from a counter-based stream.
 *
 * The random words come from splitmix64 (Steele, Lea, Flood 2014) used as a counter-based
 * generator: key = mix(seed), and 64-bit word j = mix(key + (j + 1) * golden_gamma), whose low
 * and high halves decide elements 2j and 2j + 1. A word depends only on (seed, j), so the mask
 * is the same whatever the thread count, split or ISA. The forward kernel is one loop body
 * compiled per ISA (the compiler vectorizes the 64-bit multiplies: vpmullq on AVX-512). */
#include "internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Work per element in the relu units of fnn_eltwise_threads (eltwise.c), measured with
 * `python bench/bench_eltwise.py --threshold`: the forward pass (a hash per two elements, 9
 * bytes of traffic) about 2.5, the backward about 1. */
#define FWD_COST 2.5
#define BWD_COST 1.0

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ull

static ALWAYS_INLINE uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define WORDS 64 /* 64-bit words (128 elements) hashed per block */

/* Elements [i0, i0 + n), i0 even; x, mask, y point at element i0. Per block: hash the words
 * into a buffer of 32-bit halves (low half: element 2j), then apply them: two simple loops the
 * compiler vectorizes. */
static ALWAYS_INLINE void dropout_body(uint64_t key, uint32_t threshold, float scale, int64_t i0,
                                       int64_t n, const float *x, uint8_t *FNN_RESTRICT mask,
                                       float *y) {
    FNN_ALIGNED(64) uint32_t halves[2 * WORDS];
    const uint64_t j0 = (uint64_t)i0 / 2 + 1;
    for (int64_t b = 0; b < n; b += 2 * WORDS) {
        const int64_t len = FNN_MIN(2 * WORDS, n - b);
        const uint64_t jb = j0 + (uint64_t)b / 2;
        for (int64_t j = 0; j < WORDS; j++) {
            const uint64_t w = mix64(key + (jb + (uint64_t)j) * GOLDEN_GAMMA);
            halves[2 * j] = (uint32_t)w;
            halves[2 * j + 1] = (uint32_t)(w >> 32);
        }
        for (int64_t i = 0; i < len; i++) {
            const uint8_t keep = halves[i] >= threshold;
            mask[b + i] = keep;
            y[b + i] = x[b + i] * (keep ? scale : 0.0f);
        }
    }
}

void fnn_dropout_f32_ref(uint64_t key, uint32_t threshold, float scale, int64_t i0, int64_t n,
                         const float *x, uint8_t *mask, float *y) {
    dropout_body(key, threshold, scale, i0, n, x, mask, y);
}

#ifdef FNN_X86_64
FNN_TARGET_AVX2 void fnn_dropout_f32_avx2(uint64_t key, uint32_t threshold, float scale,
                                          int64_t i0, int64_t n, const float *x, uint8_t *mask,
                                          float *y) {
    dropout_body(key, threshold, scale, i0, n, x, mask, y);
}
FNN_TARGET_AVX512 void fnn_dropout_f32_avx512(uint64_t key, uint32_t threshold, float scale,
                                              int64_t i0, int64_t n, const float *x,
                                              uint8_t *mask, float *y) {
    dropout_body(key, threshold, scale, i0, n, x, mask, y);
}
#endif

typedef struct {
    const fnn_kernel_table *kt;
    uint64_t key;
    uint32_t threshold;
    float scale;
    const float *x;
    const uint8_t *mask_in;
    uint8_t *mask;
    float *y;
} dropout_job;

static void fwd_range(void *ctx, int64_t b, int64_t e) {
    const dropout_job *j = ctx;
    j->kt->dropout(j->key, j->threshold, j->scale, b, e - b, j->x + b, j->mask + b, j->y + b);
}

static void bwd_range(void *ctx, int64_t b, int64_t e) {
    const dropout_job *j = ctx;
    const uint8_t *FNN_RESTRICT mask = j->mask_in;
    const float *dy = j->x;
    float *dx = j->y;
    const float scale = j->scale;
    for (int64_t i = b; i < e; i++) dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
}

/* P(keep) = 1 - threshold / 2^32 = 1 - rate, to within 2^-33. */
static uint32_t keep_threshold(float rate) {
    const double t = (double)rate * 4294967296.0 + 0.5;
    return t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
}

fnn_status fnn_dropout_fwd_f32(int64_t n, const float *x, float rate, uint64_t seed,
                               uint8_t *mask, float *y, int n_threads) {
    if (n < 0 || !(rate >= 0.0f && rate < 1.0f)) return FNN_ERR_ARG;
    if (n == 0) return FNN_OK;
    if (x == NULL || mask == NULL || y == NULL) return FNN_ERR_ARG;
    dropout_job job = {fnn_kernels(), mix64(seed), keep_threshold(rate),
                       (float)(1.0 / (1.0 - (double)rate)), x, NULL, mask, y};
    fnn_parallel_ranges(n, 64, fnn_eltwise_threads(FWD_COST * (double)n, n_threads), fwd_range,
                        &job);
    return FNN_OK;
}

fnn_status fnn_dropout_bwd_f32(int64_t n, const float *dy, const uint8_t *mask, float rate,
                               float *dx, int n_threads) {
    if (n < 0 || !(rate >= 0.0f && rate < 1.0f)) return FNN_ERR_ARG;
    if (n == 0) return FNN_OK;
    if (dy == NULL || mask == NULL || dx == NULL) return FNN_ERR_ARG;
    dropout_job job = {fnn_kernels(), 0, 0, (float)(1.0 / (1.0 - (double)rate)), dy, mask,
                       NULL, dx};
    fnn_parallel_ranges(n, 64, fnn_eltwise_threads(BWD_COST * (double)n, n_threads), bwd_range,
                        &job);
    return FNN_OK;
}
