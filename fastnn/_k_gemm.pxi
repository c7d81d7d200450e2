# GEMM wrappers (included by _kernels.pyx): the strict `gemm` used inside fastnn, and the
# lenient public `matmul` (fastnn.ops.matmul) that maps any layout onto it.

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu", "softmax")


cdef object _gemm_core(cnp.ndarray a, cnp.ndarray b, object out, bint ta, bint tb,
                       float alpha, float beta, object bias, int act, float act_alpha,
                       str op):
    """C = act(alpha*op(a)@op(b) + beta*C + bias). a and b: float32, 2-D, rows contiguous."""
    cdef int64_t lda = _row_stride(a, op, "a"), ldb = _row_stride(b, op, "b")
    cdef int64_t m = a.shape[1] if ta else a.shape[0]
    cdef int64_t ka = a.shape[0] if ta else a.shape[1]
    cdef int64_t kb = b.shape[1] if tb else b.shape[0]
    cdef int64_t n = b.shape[0] if tb else b.shape[1]
    if ka != kb:
        raise ValueError(f"{op}: inner dimensions differ: op(a) is {m}x{ka}, op(b) is "
                         f"{kb}x{n} (a.shape={(<object>a).shape}, b.shape={(<object>b).shape}, "
                         f"trans_a={bool(ta)}, trans_b={bool(tb)})")
    if act < 0 or act >= FNN_ACT_SOFTMAX:
        raise ValueError(f"{op}: act must be one of {ACTIVATIONS[:7]} (0..6), received {act}")
    cdef const float *bias_ptr = NULL
    if bias is not None:
        _check_f32(bias, op, "bias", 1)
        if bias.shape[0] != n or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bias):
            raise ValueError(f"{op}: bias must be contiguous with shape ({n},), "
                             f"received shape {(<object>bias).shape}")
        _check_aligned(<cnp.ndarray>bias, op, "bias")
        bias_ptr = <const float *>cnp.PyArray_DATA(<cnp.ndarray>bias)
    if out is None and beta != 0.0:
        raise ValueError(f"{op}: beta={beta} needs an `out` array to accumulate into")
    cdef cnp.ndarray c = _out_or_empty(out, (m, n), op, (a, b, bias))
    cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(b)
    cdef float *cp = <float *>cnp.PyArray_DATA(c)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    cdef int64_t ldc = n if n > 0 else 1
    with nogil:
        st = fnn_gemm_ex_f32(FNN_TRANS if ta else FNN_NOTRANS, FNN_TRANS if tb else FNN_NOTRANS,
                             m, n, ka, alpha, ap, lda, bp, ldb, beta, cp, ldc, bias_ptr,
                             <fnn_act>act, act_alpha, nt)
    _raise_on_error(st, op)
    return c


def gemm(a, b, out=None, *, bint trans_a=False, bint trans_b=False, float alpha=1.0,
         float beta=0.0, bias=None, int act=0, float act_alpha=0.0):
    """out = act(alpha * op(a) @ op(b) + beta * out + bias), op(x) = x.T if trans_x.

    Strict: a and b are float32 2-D arrays with contiguous rows (C order or row slices of it);
    out, if given, is C-contiguous float32 (m, n), writeable, not overlapping a, b or bias.
    act is an index into ACTIVATIONS (softmax excluded); act_alpha its slope/alpha.
    """
    _check_f32(a, "gemm", "a", 2)
    _check_f32(b, "gemm", "b", 2)
    return _gemm_core(<cnp.ndarray>a, <cnp.ndarray>b, out, trans_a, trans_b, alpha, beta,
                      bias, act, act_alpha, "gemm")


cdef inline bint _rows_contiguous(cnp.ndarray x) noexcept:
    cdef int64_t rows = x.shape[0], cols = x.shape[1]
    if cols > 1 and x.strides[1] != 4:
        return False
    return rows <= 1 or (x.strides[0] >= 4 * cols and x.strides[0] % 4 == 0)


cdef cnp.ndarray _as_gemm_operand(cnp.ndarray x, bint *trans):
    """x itself (rows contiguous), its transpose (columns contiguous: x.T passes with no copy),
    or, for any other strides or data not aligned to 4 bytes, one aligned C-ordered copy."""
    trans[0] = False
    cdef cnp.ndarray xt
    if cnp.PyArray_ISALIGNED(x):
        if _rows_contiguous(x):
            return x
        xt = x.T
        if _rows_contiguous(xt):
            trans[0] = True
            return xt
    # Not np.ascontiguousarray: it returns an unaligned C-ordered array as it is.
    return np.array(x, dtype=np.float32, order="C", copy=True)


def matmul(a, b, out=None):
    """a @ b for float32 2-D arrays: (m, k) @ (k, n) -> (m, n).

    C- and Fortran-ordered inputs (so x.T too) and row slices are used without a copy; any other
    strides, or data not aligned to 4 bytes, are copied once. float32 only: other dtypes raise
    TypeError rather than being cast silently. out, if given, must be a C-contiguous, aligned,
    writeable float32 (m, n) array that does not overlap a or b.
    """
    _check_f32(a, "matmul", "a", -1)
    _check_f32(b, "matmul", "b", -1)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: a and b must be 2-D, received a.shape={(<object>a).shape}, "
                         f"b.shape={(<object>b).shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: a.shape[1] ({a.shape[1]}) != b.shape[0] ({b.shape[0]}); "
                         f"a.shape={(<object>a).shape}, b.shape={(<object>b).shape}")
    cdef bint ta, tb
    cdef cnp.ndarray a2 = _as_gemm_operand(<cnp.ndarray>a, &ta)
    cdef cnp.ndarray b2 = _as_gemm_operand(<cnp.ndarray>b, &tb)
    if out is not None:
        _check_f32(out, "matmul", "out", -1)
        if out.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"matmul: out must have shape {(a.shape[0], b.shape[1])}, "
                             f"received {(<object>out).shape}")
        for name, x in (("a", a), ("b", b)):
            if _overlap(<cnp.ndarray>out, <cnp.ndarray>x):
                raise ValueError(f"matmul: out overlaps {name} in memory; pass a separate array")
    return _gemm_core(a2, b2, out, ta, tb, 1.0, 0.0, None, 0, 0.0, "matmul")
