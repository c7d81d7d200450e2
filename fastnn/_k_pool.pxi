# pool2d wrappers (included by _kernels.pyx). Strict: float32 (int32 argmax), C-contiguous,
# NHWC; the lenient edge is fastnn.ops.


cdef fnn_pool2d_desc _pool_desc(str op, int64_t *xs, object pool_size, object strides,
                                object padding) except *:
    cdef int64_t k[2]
    cdef int64_t s[2]
    cdef fnn_pool2d_desc d
    _pos_pair(pool_size, op, "pool_size", k)
    _pos_pair(pool_size if strides is None else strides, op, "strides", s)
    cdef int pad = _padding_code(padding, op)
    if pad == FNN_PADDING_CAUSAL:
        raise ValueError(f"{op}: padding must be 'valid' or 'same', received {padding!r}")
    if xs[1] * xs[2] > 2**31 - 1:
        raise ValueError(f"{op}: height * width must be < 2**31, received ({xs[1]}, {xs[2]})")
    st = fnn_pool2d_desc_init(&d, xs[0], xs[1], xs[2], xs[3], k[0], k[1], s[0], s[1],
                              <fnn_padding>pad)
    if st != FNN_OK:
        raise ValueError(f"{op}: with padding='valid' the pool ({k[0]}, {k[1]}) is larger than "
                         f"the input ({xs[1]}, {xs[2]})")
    return d


cdef int _x_shape(object x, int64_t *xs) except -1:
    for i in range(4):
        xs[i] = x.shape[i]
    return 0


def max_pool2d_fwd(x, out=None, out_indices=None, *, pool_size=2, strides=None,
                   padding="valid", bint indices=True):
    """(y, argmax): max pooling of x (batch, h, w, c); argmax (int32, shaped as y) holds the
    input pixel iy * w + ix of each maximum, or is None when indices=False."""
    cdef str op = "max_pool2d_fwd"
    _check_f32_c(x, op, "x", 4)
    cdef int64_t xs[4]
    _x_shape(x, xs)
    cdef fnn_pool2d_desc d = _pool_desc(op, xs, pool_size, strides, padding)
    shape = (d.batch, d.out_h, d.out_w, d.c)
    cdef cnp.ndarray y = _out_or_empty(out, shape, op, (x,))
    cdef cnp.ndarray idx = None
    cdef int32_t *ip = NULL
    if indices:
        if out_indices is None:
            idx = np.empty(shape, dtype=np.int32)
        else:
            if not isinstance(out_indices, np.ndarray) or out_indices.dtype != np.int32:
                raise TypeError(f"{op}: out_indices must be an int32 ndarray")
            if out_indices.shape != shape or not out_indices.flags.c_contiguous \
                    or not out_indices.flags.writeable:
                raise ValueError(f"{op}: out_indices must be a writeable C-contiguous array of "
                                 f"shape {shape}, received {out_indices.shape}")
            if _overlap(<cnp.ndarray>out_indices, <cnp.ndarray>x) or \
                    _overlap(<cnp.ndarray>out_indices, y):
                raise ValueError(f"{op}: out_indices overlaps x or out in memory")
            idx = out_indices
        ip = <int32_t *>cnp.PyArray_DATA(idx)
    elif out_indices is not None:
        raise ValueError(f"{op}: out_indices given with indices=False")
    cdef const float *xp = _cfptr(x)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_maxpool2d_fwd_f32(&d, xp, yp, ip, nt)
    _raise_on_error(st, op)
    return y, idx


def max_pool2d_bwd(dy, argmax, input_shape, out=None, *, pool_size=2, strides=None,
                   padding="valid"):
    """dx (input_shape): each dy routed to the input pixel its argmax (from max_pool2d_fwd)
    names. Overwrites out."""
    cdef str op = "max_pool2d_bwd"
    _check_f32_c(dy, op, "dy", 4)
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int32:
        raise TypeError(f"{op}: argmax must be an int32 ndarray, received "
                        f"{getattr(argmax, 'dtype', type(argmax).__name__)}")
    _check_c_contig(<cnp.ndarray>argmax, op, "argmax")  # and aligned: read as int32
    cdef int64_t xs[4]
    _shape4(input_shape, op, "input_shape", xs)
    cdef fnn_pool2d_desc d = _pool_desc(op, xs, pool_size, strides, padding)
    shape = (d.batch, d.out_h, d.out_w, d.c)
    if dy.shape != shape or argmax.shape != shape:
        raise ValueError(f"{op}: dy and argmax must have shape {shape} for input_shape "
                         f"{tuple(input_shape)}, received {dy.shape} and {argmax.shape}")
    cdef cnp.ndarray dx = _out_or_empty(out, (d.batch, d.h, d.w, d.c), op, (dy, argmax))
    cdef const float *gp = _cfptr(dy)
    cdef const int32_t *ip = <const int32_t *>cnp.PyArray_DATA(<cnp.ndarray>argmax)
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_maxpool2d_bwd_f32(&d, gp, ip, dxp, nt)
    _raise_on_error(st, op)
    return dx


def avg_pool2d_fwd(x, out=None, *, pool_size=2, strides=None, padding="valid"):
    """Average pooling of x (batch, h, w, c); windows clipped to the image."""
    cdef str op = "avg_pool2d_fwd"
    _check_f32_c(x, op, "x", 4)
    cdef int64_t xs[4]
    _x_shape(x, xs)
    cdef fnn_pool2d_desc d = _pool_desc(op, xs, pool_size, strides, padding)
    cdef cnp.ndarray y = _out_or_empty(out, (d.batch, d.out_h, d.out_w, d.c), op, (x,))
    cdef const float *xp = _cfptr(x)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_avgpool2d_fwd_f32(&d, xp, yp, nt)
    _raise_on_error(st, op)
    return y


def avg_pool2d_bwd(dy, input_shape, out=None, *, pool_size=2, strides=None, padding="valid"):
    """dx (input_shape) of average pooling. Overwrites out."""
    cdef str op = "avg_pool2d_bwd"
    _check_f32_c(dy, op, "dy", 4)
    cdef int64_t xs[4]
    _shape4(input_shape, op, "input_shape", xs)
    cdef fnn_pool2d_desc d = _pool_desc(op, xs, pool_size, strides, padding)
    shape = (d.batch, d.out_h, d.out_w, d.c)
    if dy.shape != shape:
        raise ValueError(f"{op}: dy must have shape {shape} for input_shape "
                         f"{tuple(input_shape)}, received {dy.shape}")
    cdef cnp.ndarray dx = _out_or_empty(out, (d.batch, d.h, d.w, d.c), op, (dy,))
    cdef const float *gp = _cfptr(dy)
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_avgpool2d_bwd_f32(&d, gp, dxp, nt)
    _raise_on_error(st, op)
    return dx


def pool2d_output_shape(input_shape, pool_size, strides=None, padding="valid"):
    """Output shape (batch, out_h, out_w, c) of a pooling; ValueError if none."""
    cdef int64_t xs[4]
    _shape4(input_shape, "pool2d", "input_shape", xs)
    cdef fnn_pool2d_desc d = _pool_desc("pool2d", xs, pool_size, strides, padding)
    return (d.batch, d.out_h, d.out_w, d.c)
