# Line-for-line mirror of csrc/fastnn.h. No logic here.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

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
    void fnn_set_flush_denormals(int enabled) noexcept
    int fnn_get_flush_denormals() noexcept

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

    fnn_status fnn_act_fwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                               const float *x, float *y, int n_threads) noexcept
    fnn_status fnn_act_bwd_f32(fnn_act act, float act_alpha, int64_t rows, int64_t cols,
                               const float *preact, const float *y, const float *dy, float *dx,
                               int n_threads) noexcept
    fnn_status fnn_bias_grad_f32(int64_t rows, int64_t cols, const float *dy, float *db,
                                 int n_threads) noexcept
    fnn_status fnn_softmax_xent_sparse_f32(int64_t batch, int64_t classes, const float *logits,
                                           const int64_t *labels, float *grad, double *loss,
                                           int n_threads) noexcept
    fnn_status fnn_softmax_xent_dense_f32(int64_t batch, int64_t classes, const float *logits,
                                          const float *labels, float *grad, double *loss,
                                          int n_threads) noexcept
    fnn_status fnn_sigmoid_bce_f32(int64_t n, const float *logits, const float *labels,
                                   float *grad, double *loss, int n_threads) noexcept
    fnn_status fnn_sgd_update_f32(int64_t n, float *param, const float *grad, float *velocity,
                                  double lr, double momentum, int nesterov,
                                  int n_threads) noexcept
    fnn_status fnn_adam_update_f32(int64_t n, float *param, const float *grad, float *m,
                                   float *v, double lr, double beta_1, double beta_2,
                                   double epsilon, int64_t step, int n_threads) noexcept
    fnn_status fnn_rmsprop_update_f32(int64_t n, float *param, const float *grad, float *ms,
                                      float *mom, double lr, double rho, double momentum,
                                      double epsilon, int n_threads) noexcept
    fnn_status fnn_gemm_sgd_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                                const float *a, int64_t lda, const float *b, int64_t ldb,
                                float *param, float *velocity, double lr, double momentum,
                                int nesterov, int n_threads) noexcept
    fnn_status fnn_gemm_adam_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n, int64_t k,
                                 const float *a, int64_t lda, const float *b, int64_t ldb,
                                 float *param, float *m_slot, float *v_slot, double lr,
                                 double beta_1, double beta_2, double epsilon, int64_t step,
                                 int n_threads) noexcept
    fnn_status fnn_gemm_rmsprop_f32(fnn_trans ta, fnn_trans tb, int64_t m, int64_t n,
                                    int64_t k, const float *a, int64_t lda, const float *b,
                                    int64_t ldb, float *param, float *ms, float *mom, double lr,
                                    double rho, double momentum, double epsilon,
                                    int n_threads) noexcept
    fnn_status fnn_dropout_fwd_f32(int64_t n, const float *x, float rate, uint64_t seed,
                                   uint8_t *mask, float *y, int n_threads) noexcept
    fnn_status fnn_dropout_bwd_f32(int64_t n, const float *dy, const uint8_t *mask, float rate,
                                   float *dx, int n_threads) noexcept

    ctypedef struct fnn_lstm_desc:
        int64_t batch, seq_len, input_size, hidden_size
        fnn_act activation
        fnn_act recurrent_activation
        int go_backwards

    fnn_status fnn_lstm_fwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                                const float *recurrent_kernel, const float *bias,
                                const float *h0, const float *c0, const float *h_mask,
                                float *y, float *h_last, float *c_last, float *gates,
                                float *c_seq, int n_threads) noexcept
    fnn_status fnn_lstm_bwd_f32(const fnn_lstm_desc *desc, const float *x, const float *kernel,
                                const float *recurrent_kernel, const float *h0,
                                const float *c0, const float *h_mask, const float *y,
                                const float *c_seq, float *gates, const float *dy,
                                const float *dh_last, const float *dc_last, float *dx,
                                float *dkernel, float *drecurrent_kernel, float *dbias,
                                float *dh0, float *dc0, int n_threads) noexcept
    # --- conv2d ---------------------------------------------------------------------------
    ctypedef enum fnn_padding:
        FNN_PADDING_VALID
        FNN_PADDING_SAME
        FNN_PADDING_CAUSAL

    ctypedef struct fnn_conv2d_desc:
        int64_t batch, h, w, c_in
        int64_t c_out, kh, kw
        int64_t stride_h, stride_w, dil_h, dil_w
        int64_t pad_top, pad_left
        int64_t out_h, out_w

    fnn_status fnn_conv2d_desc_init(fnn_conv2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                    int64_t c_in, int64_t c_out, int64_t kh, int64_t kw,
                                    int64_t stride_h, int64_t stride_w, int64_t dil_h,
                                    int64_t dil_w, fnn_padding padding) noexcept
    fnn_status fnn_conv2d_desc_check(const fnn_conv2d_desc *d) noexcept
    fnn_status fnn_conv2d_fwd_f32(const fnn_conv2d_desc *d, const float *x, const float *w,
                                  const float *bias, fnn_act act, float act_alpha, float *y,
                                  int n_threads) noexcept
    fnn_status fnn_conv2d_bwd_data_f32(const fnn_conv2d_desc *d, const float *dy,
                                       const float *w, float *dx, int n_threads) noexcept
    fnn_status fnn_conv2d_bwd_filter_f32(const fnn_conv2d_desc *d, const float *x,
                                         const float *dy, float *dw, float *db,
                                         int n_threads) noexcept

    # --- pool2d ---------------------------------------------------------------------------
    ctypedef struct fnn_pool2d_desc:
        int64_t batch, h, w, c
        int64_t pool_h, pool_w, stride_h, stride_w
        int64_t pad_top, pad_left, out_h, out_w

    fnn_status fnn_pool2d_desc_init(fnn_pool2d_desc *d, int64_t batch, int64_t h, int64_t w,
                                    int64_t c, int64_t pool_h, int64_t pool_w,
                                    int64_t stride_h, int64_t stride_w,
                                    fnn_padding padding) noexcept
    fnn_status fnn_pool2d_desc_check(const fnn_pool2d_desc *d) noexcept
    fnn_status fnn_maxpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                     int32_t *argmax, int n_threads) noexcept
    fnn_status fnn_maxpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy,
                                     const int32_t *argmax, float *dx, int n_threads) noexcept
    fnn_status fnn_avgpool2d_fwd_f32(const fnn_pool2d_desc *d, const float *x, float *y,
                                     int n_threads) noexcept
    fnn_status fnn_avgpool2d_bwd_f32(const fnn_pool2d_desc *d, const float *dy, float *dx,
                                     int n_threads) noexcept
    # --- SimpleRNN (rnn_*.c) ----------------------------------------------------------
    ctypedef fnn_lstm_desc fnn_rnn_desc
    fnn_status fnn_simple_rnn_fwd_f32(const fnn_rnn_desc *desc, const float *x,
                                      const float *kernel, const float *recurrent_kernel,
                                      const float *bias, const float *h0, const float *h_mask,
                                      float *y, float *h_last, int n_threads) noexcept
    fnn_status fnn_simple_rnn_bwd_f32(const fnn_rnn_desc *desc, const float *x,
                                      const float *kernel, const float *recurrent_kernel,
                                      const float *h0, const float *h_mask, const float *y,
                                      const float *dy, const float *dh_last, float *dx,
                                      float *dkernel, float *drecurrent_kernel, float *dbias,
                                      float *dh0, int n_threads) noexcept
    # --- GRU (rnn_*.c) ----------------------------------------------------------------
    fnn_status fnn_gru_fwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                               const float *recurrent_kernel, const float *bias,
                               const float *h0, const float *h_mask, float *y, float *h_last,
                               float *gates, float *hn_seq, int n_threads) noexcept
    fnn_status fnn_gru_bwd_f32(const fnn_rnn_desc *desc, const float *x, const float *kernel,
                               const float *recurrent_kernel, const float *h0,
                               const float *h_mask, const float *y, float *gates,
                               float *hn_seq, const float *dy, const float *dh_last,
                               float *dx, float *dkernel, float *drecurrent_kernel,
                               float *dbias, float *dh0, int n_threads) noexcept
