# conv2d wrappers (included by _kernels.pyx). Strict: float32, C-contiguous, NHWC activations,
# HWIO weights (kh, kw, c_in, c_out); the lenient edge is fastnn.ops.

PADDINGS = ("valid", "same", "causal")


cdef int _pos_pair(object v, str op, str name, int64_t *out) except -1:
    """v: an int or a pair of ints, each >= 1 -> out[0], out[1]."""
    cdef tuple t
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        t = (v, v)
    elif isinstance(v, (tuple, list)) and len(v) == 2:
        t = tuple(v)
    else:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, received {v!r}")
    for i in range(2):
        if isinstance(t[i], bool) or not isinstance(t[i], (int, np.integer)) or t[i] < 1:
            raise ValueError(f"{op}: {name} must be positive ints, received {v!r}")
        out[i] = t[i]
    return 0


cdef int _padding_code(object padding, str op) except -1:
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(f"{op}: padding must be one of {PADDINGS}, received {padding!r}")
    return PADDINGS.index(padding.lower())


cdef int _shape4(object shape, str op, str name, int64_t *out) except -1:
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(f"{op}: {name} must be a 4-tuple (batch, height, width, channels), "
                         f"received {shape!r}")
    for i in range(4):
        if isinstance(shape[i], bool) or not isinstance(shape[i], (int, np.integer)) \
                or shape[i] < 0:
            raise ValueError(f"{op}: {name} must hold non-negative ints, received {shape!r}")
        out[i] = shape[i]
    return 0


cdef fnn_conv2d_desc _conv_desc(str op, int64_t *xs, int64_t kh, int64_t kw, int64_t c_out,
                                object strides, object padding, object dilation) except *:
    """The descriptor of a convolution of an input of shape xs (4 values)."""
    cdef int64_t s[2]
    cdef int64_t dl[2]
    cdef fnn_conv2d_desc d
    _pos_pair(strides, op, "strides", s)
    _pos_pair(dilation, op, "dilation", dl)
    cdef int pad = _padding_code(padding, op)
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: kernel size must be positive, received ({kh}, {kw})")
    st = fnn_conv2d_desc_init(&d, xs[0], xs[1], xs[2], xs[3], c_out, kh, kw, s[0], s[1],
                              dl[0], dl[1], <fnn_padding>pad)
    if st != FNN_OK:
        raise ValueError(f"{op}: with padding='valid' the kernel ({kh}, {kw}) dilated by "
                         f"({dl[0]}, {dl[1]}) spans ({(kh - 1) * dl[0] + 1}, "
                         f"{(kw - 1) * dl[1] + 1}), larger than the input ({xs[1]}, {xs[2]})")
    return d


cdef int _check_f32_c(object x, str op, str name, int ndim) except -1:
    _check_f32(x, op, name, ndim)
    _check_c_contig(<cnp.ndarray>x, op, name)
    return 0


cdef inline const float *_cfptr(object x):
    return <const float *>cnp.PyArray_DATA(<cnp.ndarray>x)


def conv2d_fwd(x, w, bias=None, out=None, *, strides=1, padding="valid", dilation=1,
               int act=0, float act_alpha=0.0):
    """y = act(conv2d(x, w) + bias): x (batch, h, w, c_in), w (kh, kw, c_in, c_out).

    Strict: float32, C-contiguous. act indexes ACTIVATIONS (softmax excluded).
    Returns y (batch, out_h, out_w, c_out).
    """
    cdef str op = "conv2d_fwd"
    _check_f32_c(x, op, "x", 4)
    _check_f32_c(w, op, "w", 4)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"{op}: w.shape[2] (input channels) must equal x.shape[3]; received "
                         f"x.shape={x.shape}, w.shape={w.shape}")
    if act < 0 or act >= FNN_ACT_SOFTMAX:
        raise ValueError(f"{op}: act must be one of {ACTIVATIONS[:7]} (0..6), received {act}")
    cdef const float *bp = NULL
    if bias is not None:
        _check_f32_c(bias, op, "bias", 1)
        if bias.shape[0] != w.shape[3]:
            raise ValueError(f"{op}: bias must have shape ({w.shape[3]},), received {bias.shape}")
        bp = _cfptr(bias)
    cdef int64_t xs[4]
    for i in range(4):
        xs[i] = x.shape[i]
    cdef fnn_conv2d_desc d = _conv_desc(op, xs, w.shape[0], w.shape[1], w.shape[3], strides,
                                        padding, dilation)
    cdef cnp.ndarray y = _out_or_empty(out, (d.batch, d.out_h, d.out_w, d.c_out), op,
                                       (x, w, bias))
    cdef const float *xp = _cfptr(x)
    cdef const float *wp = _cfptr(w)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_conv2d_fwd_f32(&d, xp, wp, bp, <fnn_act>act, act_alpha, yp, nt)
    _raise_on_error(st, op)
    return y


def conv2d_bwd_data(dy, w, input_shape, out=None, *, strides=1, padding="valid", dilation=1):
    """dx (input_shape) = the gradient of conv2d_fwd's linear output with respect to x, given
    dy (batch, out_h, out_w, c_out) and w (kh, kw, c_in, c_out). Overwrites out."""
    cdef str op = "conv2d_bwd_data"
    _check_f32_c(dy, op, "dy", 4)
    _check_f32_c(w, op, "w", 4)
    cdef int64_t xs[4]
    _shape4(input_shape, op, "input_shape", xs)
    if xs[3] != w.shape[2]:
        raise ValueError(f"{op}: input_shape[3] ({xs[3]}) must equal w.shape[2] (input "
                         f"channels); received w.shape={w.shape}")
    cdef fnn_conv2d_desc d = _conv_desc(op, xs, w.shape[0], w.shape[1], w.shape[3], strides,
                                        padding, dilation)
    expected = (d.batch, d.out_h, d.out_w, d.c_out)
    if dy.shape != expected:
        raise ValueError(f"{op}: dy must have shape {expected} for input_shape "
                         f"{tuple(input_shape)} and w.shape={w.shape}, received {dy.shape}")
    cdef cnp.ndarray dx = _out_or_empty(out, (d.batch, d.h, d.w, d.c_in), op, (dy, w))
    cdef const float *dyp = _cfptr(dy)
    cdef const float *wp = _cfptr(w)
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_conv2d_bwd_data_f32(&d, dyp, wp, dxp, nt)
    _raise_on_error(st, op)
    return dx


def conv2d_bwd_filter(x, dy, kernel_size, out=None, out_bias=None, *, strides=1,
                      padding="valid", dilation=1, bint bias=True):
    """(dw, db): dw (kh, kw, c_in, c_out) = the gradient of conv2d_fwd's linear output with
    respect to w, db (c_out,) = dy summed over batch and pixels (None if not bias), given
    x (batch, h, w, c_in) and dy (batch, out_h, out_w, c_out). Overwrites out / out_bias."""
    cdef str op = "conv2d_bwd_filter"
    _check_f32_c(x, op, "x", 4)
    _check_f32_c(dy, op, "dy", 4)
    cdef int64_t k[2]
    _pos_pair(kernel_size, op, "kernel_size", k)
    cdef int64_t xs[4]
    for i in range(4):
        xs[i] = x.shape[i]
    cdef fnn_conv2d_desc d = _conv_desc(op, xs, k[0], k[1], dy.shape[3], strides, padding,
                                        dilation)
    expected = (d.batch, d.out_h, d.out_w, d.c_out)
    if dy.shape != expected:
        raise ValueError(f"{op}: dy must have shape {expected} for x.shape={x.shape} and "
                         f"kernel_size={kernel_size!r}, received {dy.shape}")
    cdef cnp.ndarray dw = _out_or_empty(out, (d.kh, d.kw, d.c_in, d.c_out), op, (x, dy))
    cdef cnp.ndarray db = None
    cdef float *dbp = NULL
    if bias:
        db = _out_or_empty(out_bias, (d.c_out,), op, (x, dy, dw))
        dbp = <float *>cnp.PyArray_DATA(db)
    elif out_bias is not None:
        raise ValueError(f"{op}: out_bias given with bias=False")
    cdef const float *xp = _cfptr(x)
    cdef const float *dyp = _cfptr(dy)
    cdef float *dwp = <float *>cnp.PyArray_DATA(dw)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_conv2d_bwd_filter_f32(&d, xp, dyp, dwp, dbp, nt)
    _raise_on_error(st, op)
    return dw, db


def conv2d_output_shape(input_shape, kernel_size, int64_t filters, *, strides=1,
                        padding="valid", dilation=1):
    """Output shape (batch, out_h, out_w, filters) of a convolution; ValueError if none."""
    cdef int64_t xs[4]
    cdef int64_t k[2]
    _shape4(input_shape, "conv2d", "input_shape", xs)
    _pos_pair(kernel_size, "conv2d", "kernel_size", k)
    cdef fnn_conv2d_desc d = _conv_desc("conv2d", xs, k[0], k[1], filters, strides, padding,
                                        dilation)
    return (d.batch, d.out_h, d.out_w, d.c_out)
