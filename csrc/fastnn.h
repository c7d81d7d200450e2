/* fastnn.h - the public C API of fastnn's kernels.
 *
 * Conventions for every function below:
 *   - float32, row-major ("C order"); sizes, strides and offsets are int64_t.
 *   - Inputs are `const float *`; outputs must not overlap inputs unless a comment says so.
 *   - `n_threads` is the most threads a call may use (>= 1); small problems run serially.
 *   - Nothing here prints, exits or aborts. Errors are values: FNN_OK (0) or a negative code,
 *     named by fnn_status_str(). Callers (the Cython layer) validate arguments first, so
 *     FNN_ERR_ARG after validation marks a bug.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FNN_OK = 0,
    FNN_ERR_ARG = -1,         /* NULL pointer, negative size, leading dimension too small */
    FNN_ERR_NOMEM = -2,       /* scratch allocation failed */
    FNN_ERR_UNSUPPORTED = -3, /* ISA not available on this CPU or not compiled in */
} fnn_status;

const char *fnn_status_str(fnn_status st);

/* ---------------------------------------------------------------------------------------------
 * Instruction-set dispatch. Levels are ordered: REF < AVX2 < AVX512.
 * fnn_cpu_isa() is the best level this CPU and OS support (probed once, at first use).
 * fnn_set_isa(level) selects the kernels every later call uses; it must not race with running
 * kernels (call it between calls). Returns FNN_ERR_UNSUPPORTED above fnn_cpu_isa().
 */
typedef enum { FNN_ISA_REF = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2 } fnn_isa;

fnn_isa fnn_cpu_isa(void);
fnn_isa fnn_get_isa(void);
fnn_status fnn_set_isa(fnn_isa level);
const char *fnn_isa_name(fnn_isa level);

/* OpenMP: 1 if compiled with OpenMP, and the runtime's version (_OPENMP macro, e.g. 201511). */
int fnn_openmp_enabled(void);
int fnn_openmp_version(void);

/* The process-wide thread count every kernel wrapper passes as n_threads (>= 1). Set once from
 * Python (fastnn.set_num_threads, threadpoolctl); read by every call, from any thread. */
void fnn_set_num_threads(int n);
int fnn_get_num_threads(void);

/* Set in a child process after fork(): the OpenMP runtime of the parent (libgomp) cannot start
 * a team in the child, so every kernel runs on one thread there. */
int fnn_in_forked_child(void);

/* ---------------------------------------------------------------------------------------------
 * Element-wise activations, shared by the GEMM epilogue and the layers.
 * act_alpha is the slope of leaky_relu and the alpha of elu; other activations ignore it.
 */
typedef enum {
    FNN_ACT_LINEAR = 0,
    FNN_ACT_RELU = 1,
    FNN_ACT_SIGMOID = 2,
    FNN_ACT_TANH = 3,
    FNN_ACT_GELU = 4, /* exact (erf) form, as Keras's gelu(approximate=False) */
    FNN_ACT_ELU = 5,
    FNN_ACT_LEAKY_RELU = 6,
    FNN_ACT_SOFTMAX = 7, /* over the last axis (a row); not allowed in the GEMM epilogue */
} fnn_act;

/* ---------------------------------------------------------------------------------------------
 * GEMM. C = alpha * op(A) @ op(B) + beta * C, then the epilogue: C = act(C + bias).
 * op(A) is m x k (A is m x k with row stride lda, or k x m if ta == FNN_TRANS); op(B) is k x n
 * (likewise with tb). C is m x n with row stride ldc. bias is NULL or n floats added to every
 * row. act is an fnn_act other than FNN_ACT_SOFTMAX; act_alpha its parameter.
 * beta == 0: C is write-only (never read; it may hold NaN). C must not overlap A, B or bias.
 * Each element of C is reduced over k in one fixed order whatever n_threads is, so results are
 * bitwise identical for every thread count.
 * Returns FNN_OK, FNN_ERR_ARG (NULL pointer with nonzero size, negative dim, ld too small,
 * softmax epilogue) or FNN_ERR_NOMEM.
 */
typedef enum { FNN_NOTRANS = 0, FNN_TRANS = 1 } fnn_trans;

fnn_status fnn_gemm_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float beta, float *c, int64_t ldc, int n_threads);

fnn_status fnn_gemm_ex_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
                           fnn_act act, float act_alpha, int n_threads);

/* Which GEMM path runs: FNN_GEMM_AUTO (by problem size), or forced to the packed (BLIS) path or
 * to the unpacked small-problem path. For tests and benchmarks; set between calls. */
typedef enum {
    FNN_GEMM_AUTO = 0,
    FNN_GEMM_PACKED = 1,
    FNN_GEMM_SUP = 2,
    FNN_GEMM_NARROW = 3, /* for n <= 16 on ISAs with a narrow kernel; else as FNN_GEMM_SUP */
} fnn_gemm_path;
void fnn_gemm_set_path(fnn_gemm_path path);

/* The blocking the selected ISA uses (for tests that probe block edges and for `info`). */
typedef struct {
    int64_t mr, nr, mc, kc, nc;
} fnn_gemm_blocking;

fnn_gemm_blocking fnn_gemm_get_blocking(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTNN_H */
