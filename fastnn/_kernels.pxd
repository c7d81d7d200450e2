# Line-for-line mirror of csrc/fastnn.h. No logic here.
from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    ctypedef enum fnn_status:
        FNN_OK
        FNN_ERR_ARG
        FNN_ERR_NOMEM
        FNN_ERR_UNSUPPORTED

    const char *fnn_status_str(fnn_status st) noexcept

    ctypedef enum fnn_isa:
        FNN_ISA_REF
        FNN_ISA_AVX2
        FNN_ISA_AVX512

    fnn_isa fnn_cpu_isa() noexcept
    fnn_isa fnn_get_isa() noexcept
    fnn_status fnn_set_isa(fnn_isa level) noexcept
    const char *fnn_isa_name(fnn_isa level) noexcept

    int fnn_openmp_enabled() noexcept
    int fnn_openmp_version() noexcept
    void fnn_set_num_threads(int n) noexcept
    int fnn_get_num_threads() noexcept
    int fnn_in_forked_child() noexcept

    ctypedef enum fnn_act:
        FNN_ACT_LINEAR
        FNN_ACT_RELU
        FNN_ACT_SIGMOID
        FNN_ACT_TANH
        FNN_ACT_GELU
        FNN_ACT_ELU
        FNN_ACT_LEAKY_RELU
        FNN_ACT_SOFTMAX

    ctypedef enum fnn_trans:
        FNN_NOTRANS
        FNN_TRANS

    fnn_status fnn_gemm_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                            float alpha, const float *a, int64_t lda, const float *b,
                            int64_t ldb, float beta, float *c, int64_t ldc,
                            int n_threads) noexcept
    fnn_status fnn_gemm_ex_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                               float alpha, const float *a, int64_t lda, const float *b,
                               int64_t ldb, float beta, float *c, int64_t ldc,
                               const float *bias, fnn_act act, float act_alpha,
                               int n_threads) noexcept

    ctypedef enum fnn_gemm_path:
        FNN_GEMM_AUTO
        FNN_GEMM_PACKED
        FNN_GEMM_SUP
        FNN_GEMM_NARROW

    void fnn_gemm_set_path(fnn_gemm_path path) noexcept

    ctypedef struct fnn_gemm_blocking:
        int64_t mr, nr, mc, kc, nc

    fnn_gemm_blocking fnn_gemm_get_blocking() noexcept
