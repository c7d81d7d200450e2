#define _POSIX_C_SOURCE 200809L /* posix_memalign under -std=c11 */
/* dispatch.c - CPU probe, ISA selection and the per-ISA kernel tables.
 * The only file that asks the CPU what it supports. */
#include <stdlib.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif

/* Block sizes. L1d 48 KiB, L2 2 MiB per core on the Sapphire Rapids project machine; the same
 * ratios hold on Skylake-X .. Zen 4 (L1d 32-48 KiB, L2 0.5-2 MiB).
 *   kc: the B micro-panel (kc x nr floats) stays in L1 while A micro-panels stream past it;
 *   mc: the packed A block (mc x kc) fills about a third of L2;
 *   nc: the packed B panel (kc x nc) lives in L2/L3.
 * Each triple was then checked by the sweep in bench/bench_gemm.py (--sweep-blocking). */
static const fnn_gemm_cfg gemm_cfg_ref = {.mr = 4,
                                          .nr = 16,
                                          .mc = 128,
                                          .kc = 256,
                                          .nc = 2048,
                                          .ukr = fnn_gemm_ukr_f32_ref_4x16,
                                          .sup_mr = 4,
                                          .sup_nr = 16,
                                          .sup_max_work = 64.0 * 64 * 64,
                                          .sup = fnn_gemm_sup_f32_ref_4x16,
                                          .pack_t = fnn_gemm_pack_t_f32_ref};

#ifdef FNN_X86_64
/* 6x16: 12 ymm accumulators + 2 B vectors + 1 broadcast (15 of 16 registers). kc 256: a B
 * micro-panel of 16 KiB, a third of L1. mc 144: A block of 144 KiB. */
static const fnn_gemm_cfg gemm_cfg_avx2 = {.mr = 6,
                                           .nr = 16,
                                           .mc = 144,
                                           .kc = 256,
                                           .nc = 3072,
                                           .ukr = fnn_gemm_ukr_f32_avx2_6x16,
                                           .sup_mr = 6,
                                           .sup_nr = 16,
                                           .sup_max_work = 128.0 * 128 * 128,
                                           .sup = fnn_gemm_sup_f32_avx2_6x16,
                                           .pack_t = fnn_gemm_pack_t_f32_ref};
/* 12x32: 24 zmm accumulators + 2 B vectors, A broadcast from memory. kc 512: the B micro-panel
 * (64 KiB) no longer fits L1 and is re-read from L2 (2 MiB per core) for each A micro-panel,
 * which the 128-byte-per-24-FMA read rate easily sustains; the longer k loop halves the C tile
 * loads/stores and the packing calls per multiply-add. mc 192: A block of 384 KiB in L2;
 * nc 2048: a 4 MiB B panel in L3. Chosen over (192, 256, 3072) and (120, 512, 1536)
 * by interleaved runs at 1024^2-4096^2 against NumPy on the project machine (noisy: the ratio
 * to NumPy at 2048^2 was 0.93-1.02 against 0.78-0.92 for kc 256). Small problems never reach
 * this path (sup_max_work). */
static const fnn_gemm_cfg gemm_cfg_avx512 = {.mr = 12,
                                             .nr = 32,
                                             .mc = 192,
                                             .kc = 512,
                                             .nc = 2048,
                                             .ukr = fnn_gemm_ukr_f32_avx512_12x32,
                                             .sup_mr = 8,
                                             .sup_nr = 32,
                                             /* sup beat packed up to 192^3 (interleaved
                                              * runs: 128^3 146 vs 121 GFLOP/s, 192^3 152 vs
                                              * 147, 256^3 154 vs 160) */
                                             .sup_max_work = 192.0 * 192 * 192,
                                             .sup = fnn_gemm_sup_f32_avx512_8x32,
                                             .narrow_mr = 16,
                                             .narrow_nr = 16,
                                             .narrow = fnn_gemm_narrow_f32_avx512_16xn,
                                             .pack_t = fnn_gemm_pack_t_f32_avx512,
                                             .mr_small = 8,
                                             .ukr_small = fnn_gemm_ukr_f32_avx512_8x32};
#endif

/* conv2d micro-kernels (conv2d_ukr_<isa>.c): tile shapes as the GEMM's, see each file. */
static const fnn_conv_cfg conv_cfg_ref = {.mr = 4,
                                          .nr = 16,
                                          .fwd = fnn_conv_fwd_ukr_f32_ref_4x16,
                                          .dot_mr = 4,
                                          .dot = fnn_conv_dot_ukr_f32_ref_4,
                                          .wg_mr = 4,
                                          .wg_nr = 16,
                                          .wgrad = fnn_conv_wgrad_ukr_f32_ref_4x16};

#ifdef FNN_X86_64
static const fnn_conv_cfg conv_cfg_avx2 = {.mr = 6,
                                           .nr = 16,
                                           .fwd = fnn_conv_fwd_ukr_f32_avx2_6x16,
                                           .dot_mr = 4,
                                           .dot = fnn_conv_dot_ukr_f32_avx2_4,
                                           .wg_mr = 6,
                                           .wg_nr = 16,
                                           .wgrad = fnn_conv_wgrad_ukr_f32_avx2_6x16};
static const fnn_conv_cfg conv_cfg_avx512 = {.mr = 12,
                                             .nr = 32,
                                             .fwd = fnn_conv_fwd_ukr_f32_avx512_12x32,
                                             .dot_mr = 8,
                                             .dot = fnn_conv_dot_ukr_f32_avx512_8,
                                             .wg_mr = 12,
                                             .wg_nr = 32,
                                             .wgrad = fnn_conv_wgrad_ukr_f32_avx512_12x32};
#endif

static fnn_kernel_table table_ref = {
    .isa = FNN_ISA_REF,
    .act_fwd = fnn_act_fwd_f32_ref,
    .act_bwd = fnn_act_bwd_f32_ref,
    .row_max = fnn_row_max_f32_ref,
    .exp_sum = fnn_exp_sum_f32_ref,
    .dot = fnn_dot_f32_ref,
    .sgd = fnn_sgd_f32_ref,
    .adam = fnn_adam_f32_ref,
    .rmsprop = fnn_rmsprop_f32_ref,
    .dropout = fnn_dropout_f32_ref,
};
#ifdef FNN_X86_64
static fnn_kernel_table table_avx2 = {
    .isa = FNN_ISA_AVX2,
    .act_fwd = fnn_act_fwd_f32_avx2,
    .act_bwd = fnn_act_bwd_f32_avx2,
    .row_max = fnn_row_max_f32_avx2,
    .exp_sum = fnn_exp_sum_f32_avx2,
    .dot = fnn_dot_f32_avx2,
    .sgd = fnn_sgd_f32_avx2,
    .adam = fnn_adam_f32_avx2,
    .rmsprop = fnn_rmsprop_f32_avx2,
    .dropout = fnn_dropout_f32_avx2,
};
static fnn_kernel_table table_avx512 = {
    .isa = FNN_ISA_AVX512,
    .act_fwd = fnn_act_fwd_f32_avx512,
    .act_bwd = fnn_act_bwd_f32_avx512,
    .row_max = fnn_row_max_f32_avx512,
    .exp_sum = fnn_exp_sum_f32_avx512,
    .dot = fnn_dot_f32_avx512,
    .sgd = fnn_sgd_f32_avx512,
    .adam = fnn_adam_f32_avx512,
    .rmsprop = fnn_rmsprop_f32_avx512,
    .dropout = fnn_dropout_f32_avx512,
};
#endif

/* The only global mutable state: which table is selected, and the CPU's best level. Written
 * under the GIL at import and by fnn_set_isa() between calls. */
static const fnn_kernel_table *selected = NULL;
static int cpu_isa = -1;
static volatile int forked_child = 0;
static volatile int num_threads = 1;

static void child_after_fork(void) { forked_child = 1; }

static void set_wino(fnn_conv_cfg *cc, const fnn_wino_fns *f) {
    cc->wino_in = f->in;
    cc->wino_out = f->out;
    cc->wino_grad = f->grad;
    cc->colsum = f->colsum;
}

static void init_tables(void) {
    table_ref.gemm = gemm_cfg_ref;
    table_ref.conv = conv_cfg_ref;
    set_wino(&table_ref.conv, &fnn_wino_fns_ref);
    table_ref.pool = fnn_pool_cfg_ref;
#ifdef FNN_X86_64
    table_avx2.gemm = gemm_cfg_avx2;
    table_avx512.gemm = gemm_cfg_avx512;
    table_avx2.conv = conv_cfg_avx2;
    table_avx512.conv = conv_cfg_avx512;
    set_wino(&table_avx2.conv, &fnn_wino_fns_avx2);
    set_wino(&table_avx512.conv, &fnn_wino_fns_avx512);
    table_avx2.pool = fnn_pool_cfg_avx2;
    table_avx512.pool = fnn_pool_cfg_avx512;
#endif
    /* LSTM fused gate passes */
    table_ref.lstm_fwd_row = fnn_lstm_fwd_row_f32_ref;
    table_ref.lstm_bwd_row = fnn_lstm_bwd_row_f32_ref;
#ifdef FNN_X86_64
    table_avx2.lstm_fwd_row = fnn_lstm_fwd_row_f32_avx2;
    table_avx2.lstm_bwd_row = fnn_lstm_bwd_row_f32_avx2;
    table_avx512.lstm_fwd_row = fnn_lstm_fwd_row_f32_avx512;
    table_avx512.lstm_bwd_row = fnn_lstm_bwd_row_f32_avx512;
#endif
    /* SimpleRNN and GRU fused passes */
    table_ref.rnn = fnn_rnn_rows_ref;
#ifdef FNN_X86_64
    table_avx2.rnn = fnn_rnn_rows_avx2;
    table_avx512.rnn = fnn_rnn_rows_avx512;
#endif
}

fnn_isa fnn_cpu_isa(void) {
    if (cpu_isa < 0) {
        int level = FNN_ISA_REF;
#if defined(FNN_X86_64) && (defined(__GNUC__) || defined(__clang__))
        /* __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state. */
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = FNN_ISA_AVX2;
        if (level == FNN_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            level = FNN_ISA_AVX512;
#endif
        init_tables();
#if !defined(_WIN32)
        pthread_atfork(NULL, NULL, child_after_fork);
#endif
        cpu_isa = level;
    }
    return (fnn_isa)cpu_isa;
}

fnn_status fnn_set_isa(fnn_isa level) {
    if ((int)level < FNN_ISA_REF || (int)level > (int)fnn_cpu_isa()) return FNN_ERR_UNSUPPORTED;
    switch (level) {
#ifdef FNN_X86_64
    case FNN_ISA_AVX512: selected = &table_avx512; break;
    case FNN_ISA_AVX2: selected = &table_avx2; break;
#endif
    default: selected = &table_ref; break;
    }
    return FNN_OK;
}

const fnn_kernel_table *fnn_kernels(void) {
    if (selected == NULL) fnn_set_isa(fnn_cpu_isa());
    return selected;
}

fnn_isa fnn_get_isa(void) { return fnn_kernels()->isa; }

const char *fnn_isa_name(fnn_isa level) {
    switch (level) {
    case FNN_ISA_REF: return "ref";
    case FNN_ISA_AVX2: return "avx2";
    case FNN_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

const char *fnn_status_str(fnn_status st) {
    switch (st) {
    case FNN_OK: return "ok";
    case FNN_ERR_ARG: return "invalid argument";
    case FNN_ERR_NOMEM: return "out of memory";
    case FNN_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

int fnn_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fnn_openmp_version(void) {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

int fnn_in_forked_child(void) { return forked_child; }

volatile int fnn_flush_denormals_flag = 1;

void fnn_set_flush_denormals(int enabled) { fnn_flush_denormals_flag = enabled != 0; }

int fnn_get_flush_denormals(void) { return fnn_flush_denormals_flag; }

void fnn_set_num_threads(int n) { num_threads = n < 1 ? 1 : n; }

int fnn_get_num_threads(void) { return num_threads; }

int fnn_effective_threads(int n_threads) {
#ifdef _OPENMP
    if (forked_child || n_threads < 1) return 1;
    return n_threads;
#else
    (void)n_threads;
    return 1;
#endif
}

void *fnn_malloc(size_t bytes) {
    void *ptr = NULL;
    if (bytes == 0) bytes = FNN_ALIGN;
    bytes = (size_t)fnn_round_up((int64_t)bytes, FNN_ALIGN);
#if defined(_WIN32)
    ptr = _aligned_malloc(bytes, FNN_ALIGN);
#else
    if (posix_memalign(&ptr, FNN_ALIGN, bytes) != 0) ptr = NULL;
#endif
    return ptr;
}

void fnn_free(void *ptr) {
#if defined(_WIN32)
    _aligned_free(ptr);
#else
    free(ptr);
#endif
}

#if !defined(_WIN32)
typedef struct {
    float *ptr[FNN_SCRATCH_SLOTS];
    int64_t floats[FNN_SCRATCH_SLOTS];
} scratch_cache;

static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;

static void scratch_release(void *arg) {
    scratch_cache *cache = arg;
    for (int s = 0; s < FNN_SCRATCH_SLOTS; s++) fnn_free(cache->ptr[s]);
    free(cache);
}

static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_release); }

float *fnn_thread_scratch(fnn_scratch_slot slot, int64_t floats) {
    /* never NULL for a request of 0 floats (a k == 0 GEMM as a thread's first call asked for
     * 0 and got the empty slot's NULL, which reads as out of memory) */
    floats = FNN_MAX(floats, 16);
    pthread_once(&scratch_once, scratch_make_key);
    scratch_cache *cache = pthread_getspecific(scratch_key);
    if (cache == NULL) {
        cache = calloc(1, sizeof *cache);
        if (cache == NULL || pthread_setspecific(scratch_key, cache) != 0) {
            free(cache);
            return NULL;
        }
    }
    if (cache->floats[slot] < floats) {
        fnn_free(cache->ptr[slot]);
        cache->ptr[slot] = fnn_malloc((size_t)floats * sizeof(float));
        cache->floats[slot] = cache->ptr[slot] != NULL ? floats : 0;
    }
    return cache->ptr[slot];
}
#else
#error "fnn_thread_scratch: add a Windows (FlsAlloc) implementation"
#endif

fnn_gemm_blocking fnn_gemm_get_blocking(void) {
    const fnn_gemm_cfg *cfg = &fnn_kernels()->gemm;
    fnn_gemm_blocking b = {cfg->mr, cfg->nr, cfg->mc, cfg->kc, cfg->nc};
    return b;
}
