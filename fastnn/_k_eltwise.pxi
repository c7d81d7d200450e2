# Element-wise wrappers (included by _kernels.pyx): activations and their gradients, the bias
# gradient, fused softmax / sigmoid cross-entropy, optimizer updates, dropout. Strict: float32
# C-contiguous arrays of exactly the expected shape (labels int64, masks uint8), no casts, no
# copies. An `out` never overlaps an input, except where a docstring allows `out` to BE an
# input (same buffer: an in-place update).


cdef inline int _check_array(object x, str op, str name, int typenum, str dtype) except -1:
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, received {type(x).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>x) != typenum:
        raise TypeError(f"{op}: {name} must be {dtype}, received {x.dtype}")
    _check_c_contig(<cnp.ndarray>x, op, name)
    return 0


cdef inline int _check_same(object x, object ref, str op, str name, str ref_name,
                            int typenum=cnp.NPY_FLOAT32, str dtype="float32") except -1:
    """x: C-contiguous, dtype typenum, the shape of ref."""
    _check_array(x, op, name, typenum, dtype)
    if (<object>x).shape != (<object>ref).shape:
        raise ValueError(f"{op}: {name} must have the shape of {ref_name} "
                         f"{(<object>ref).shape}, received {(<object>x).shape}")
    return 0


cdef inline int _check_writeable(cnp.ndarray x, str op, str name) except -1:
    if not cnp.PyArray_ISWRITEABLE(x):
        raise ValueError(f"{op}: {name} must be writeable (received a read-only array)")
    return 0


cdef inline bint _same_buffer(object a, object b):
    """a and b are the same C-contiguous buffer (an in-place call), not a partial overlap."""
    return (b is not None and cnp.PyArray_DATA(<cnp.ndarray>a) == cnp.PyArray_DATA(<cnp.ndarray>b)
            and (<object>a).shape == (<object>b).shape)


cdef cnp.ndarray _out_like(object out, object ref, str op, tuple inputs, object may_be=None):
    """A new float32 array shaped like ref, or `out` after the checks of _out_or_empty; out
    may be exactly `may_be` (in place)."""
    if out is not None and _same_buffer(out, may_be):
        _check_writeable(<cnp.ndarray>out, op, "out")
        inputs = tuple(x for x in inputs if x is not may_be)
    return _out_or_empty(out, (<object>ref).shape, op, inputs)


cdef inline int _check_disjoint(tuple arrays, tuple names, str op) except -1:
    cdef int i, k
    for i in range(len(arrays)):
        for k in range(i + 1, len(arrays)):
            if arrays[i] is not None and arrays[k] is not None and _overlap(
                    <cnp.ndarray>arrays[i], <cnp.ndarray>arrays[k]):
                raise ValueError(f"{op}: {names[i]} and {names[k]} overlap in memory; "
                                 "pass separate arrays")
    return 0


cdef inline int64_t _row_len(cnp.ndarray x) noexcept:
    """Length of the last axis (1 for a 0-d array): the softmax row."""
    return x.shape[x.ndim - 1] if x.ndim > 0 else 1


cdef inline float *_fptr(object x):
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>x) if x is not None else NULL


cdef inline int _check_act(int act, str op) except -1:
    if act < 0 or act > FNN_ACT_SOFTMAX:
        raise ValueError(f"{op}: act must be an index into ACTIVATIONS (0..7), received {act}")
    return 0


# --- activations ----------------------------------------------------------------------------

def act_fwd(x, out=None, *, int act, float act_alpha=0.0):
    """out = act(x) for any shape; softmax normalises the last axis. out may be x (in place).

    act is an index into ACTIVATIONS; act_alpha the leaky_relu slope or elu alpha.
    """
    _check_act(act, "act_fwd")
    _check_array(x, "act_fwd", "x", cnp.NPY_FLOAT32, "float32")
    cdef cnp.ndarray y = _out_like(out, x, "act_fwd", (x,), x)
    cdef int64_t cols = _row_len(<cnp.ndarray>x)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if n == 0:
        return y
    cdef const float *xp = _fptr(x)
    cdef float *yp = _fptr(y)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_act_fwd_f32(<fnn_act>act, act_alpha, n // cols, cols, xp, yp, nt)
    _raise_on_error(st, "act_fwd")
    return y


def act_bwd(y, dy, out=None, *, int act, float act_alpha=0.0, preact=None):
    """out = dL/dpreact from y = act(preact) and dy = dL/dy (any shape; softmax: last axis).

    gelu reads preact (y may be None); every other act reads y (preact may be None). elu and
    leaky_relu need act_alpha >= 0. out may be dy (in place); it never overlaps y or preact.
    """
    _check_act(act, "act_bwd")
    _check_array(dy, "act_bwd", "dy", cnp.NPY_FLOAT32, "float32")
    if act == FNN_ACT_GELU:
        if preact is None:
            raise ValueError("act_bwd: gelu needs preact (the activation's input), received None")
    elif y is None:
        raise ValueError(f"act_bwd: {ACTIVATIONS[act]} needs y (the activation's output), "
                         "received None")
    if y is not None:
        _check_same(y, dy, "act_bwd", "y", "dy")
    if preact is not None:
        _check_same(preact, dy, "act_bwd", "preact", "dy")
    if (act == FNN_ACT_ELU or act == FNN_ACT_LEAKY_RELU) and not act_alpha >= 0.0:
        raise ValueError(f"act_bwd: {ACTIVATIONS[act]} backward needs act_alpha >= 0 (it reads "
                         f"the output y), received {act_alpha}")
    cdef cnp.ndarray dx = _out_like(out, dy, "act_bwd", (y, dy, preact), dy)
    cdef int64_t cols = _row_len(<cnp.ndarray>dy)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>dy)
    if n == 0:
        return dx
    cdef const float *pp = _fptr(preact)
    cdef const float *yp = _fptr(y)
    cdef const float *dyp = _fptr(dy)
    cdef float *dxp = _fptr(dx)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_act_bwd_f32(<fnn_act>act, act_alpha, n // cols, cols, pp, yp, dyp, dxp, nt)
    _raise_on_error(st, "act_bwd")
    return dx


def bias_grad(dy, out=None):
    """out = dy.sum(axis=0): (rows, cols) -> (cols,), in one fixed summation order."""
    _check_f32(dy, "bias_grad", "dy", 2)
    _check_c_contig(<cnp.ndarray>dy, "bias_grad", "dy")
    cdef int64_t rows = dy.shape[0], cols = dy.shape[1]
    cdef cnp.ndarray db = _out_or_empty(out, (cols,), "bias_grad", (dy,))
    if cols == 0:
        return db
    cdef const float *dyp = _fptr(dy)
    cdef float *dbp = _fptr(db)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_bias_grad_f32(rows, cols, dyp, dbp, nt)
    _raise_on_error(st, "bias_grad")
    return db


# --- losses ---------------------------------------------------------------------------------

def softmax_xent(logits, labels, grad=None):
    """Mean softmax cross-entropy of logits (batch, classes); grad, if given, receives
    (softmax - onehot) / batch. labels: int64 (batch,) class indices (sparse) or float32
    (batch, classes) targets (dense, one-hot or soft). Returns the loss as a float."""
    _check_f32(logits, "softmax_xent", "logits", 2)
    _check_c_contig(<cnp.ndarray>logits, "softmax_xent", "logits")
    cdef int64_t batch = logits.shape[0], classes = logits.shape[1]
    cdef bint sparse
    if not cnp.PyArray_Check(labels):
        raise TypeError(f"softmax_xent: labels must be a numpy.ndarray, received "
                        f"{type(labels).__name__}")
    if labels.dtype == np.int64:
        sparse = True
        if (<object>labels).shape != (batch,):
            raise ValueError(f"softmax_xent: int64 (sparse) labels must have shape ({batch},), "
                             f"received {(<object>labels).shape}")
        _check_c_contig(<cnp.ndarray>labels, "softmax_xent", "labels")
    elif labels.dtype == np.float32:
        sparse = False
        _check_same(labels, logits, "softmax_xent", "labels", "logits")
    else:
        raise TypeError(f"softmax_xent: labels must be int64 class indices or float32 targets, "
                        f"received {labels.dtype}")
    if batch > 0 and classes == 0:
        raise ValueError(f"softmax_xent: logits need at least one class, received shape "
                         f"{(<object>logits).shape}")
    if grad is not None:
        _out_or_empty(grad, (batch, classes), "softmax_xent", (logits, labels))
    cdef double loss = 0.0
    cdef const float *zp = _fptr(logits)
    cdef const void *lp = cnp.PyArray_DATA(<cnp.ndarray>labels)
    cdef float *gp = _fptr(grad)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        if sparse:
            st = fnn_softmax_xent_sparse_f32(batch, classes, zp, <const int64_t *>lp, gp, &loss,
                                             nt)
        else:
            st = fnn_softmax_xent_dense_f32(batch, classes, zp, <const float *>lp, gp, &loss, nt)
    if st == FNN_ERR_ARG and sparse:
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            raise ValueError(f"softmax_xent: labels must be class indices in [0, {classes}), "
                             f"received {labels[bad[0]]} at row {bad[0]}")
    _raise_on_error(st, "softmax_xent")
    return loss


def sigmoid_bce(logits, labels, grad=None):
    """Mean sigmoid binary cross-entropy over all elements (stable form); grad, if given,
    receives (sigmoid(logits) - labels) / logits.size. labels: float32, logits' shape."""
    _check_array(logits, "sigmoid_bce", "logits", cnp.NPY_FLOAT32, "float32")
    _check_same(labels, logits, "sigmoid_bce", "labels", "logits")
    if grad is not None:
        _out_like(grad, logits, "sigmoid_bce", (logits, labels))
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>logits)
    cdef double loss = 0.0
    cdef const float *zp = _fptr(logits)
    cdef const float *tp = _fptr(labels)
    cdef float *gp = _fptr(grad)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_sigmoid_bce_f32(n, zp, tp, gp, &loss, nt)
    _raise_on_error(st, "sigmoid_bce")
    return loss


# --- optimizers -----------------------------------------------------------------------------

cdef int _check_slots(str op, object param, object grad, tuple slots, tuple names) except -1:
    """param and slots: writeable float32 arrays of param's shape; grad likewise but read;
    none of them overlapping."""
    _check_array(param, op, "param", cnp.NPY_FLOAT32, "float32")
    _check_writeable(<cnp.ndarray>param, op, "param")
    _check_same(grad, param, op, "grad", "param")
    for s, name in zip(slots, names):
        if s is not None:
            _check_same(s, param, op, name, "param")
            _check_writeable(<cnp.ndarray>s, op, name)
    _check_disjoint((param, grad) + slots, ("param", "grad") + names, op)
    return 0


def sgd_update(param, grad, velocity=None, *, double lr, double momentum=0.0,
               bint nesterov=False):
    """Keras 3 SGD step, in place: momentum == 0: w -= lr*g (velocity unused, may be None);
    else v = momentum*v - lr*g, then w += v, or w += momentum*v - lr*g with nesterov."""
    if momentum != 0.0 and velocity is None:
        raise ValueError(f"sgd_update: momentum={momentum} needs a velocity array, received None")
    _check_slots("sgd_update", param, grad, (velocity,), ("velocity",))
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef float *pp = _fptr(param)
    cdef const float *gp = _fptr(grad)
    cdef float *vp = _fptr(velocity)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_sgd_update_f32(n, pp, gp, vp, lr, momentum, nesterov, nt)
    _raise_on_error(st, "sgd_update")


def adam_update(param, grad, m, v, *, double lr, double beta_1, double beta_2, double epsilon,
                int64_t step):
    """Keras 3 Adam step, in place (step >= 1 counts updates, this one included):
    alpha = lr*sqrt(1 - beta_2^step)/(1 - beta_1^step); m += (g - m)(1 - beta_1);
    v += (g^2 - v)(1 - beta_2); w -= m*alpha / (sqrt(v) + epsilon)."""
    if step < 1:
        raise ValueError(f"adam_update: step counts updates from 1, received {step}")
    _check_slots("adam_update", param, grad, (m, v), ("m", "v"))
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef float *pp = _fptr(param)
    cdef const float *gp = _fptr(grad)
    cdef float *mp = _fptr(m)
    cdef float *vp = _fptr(v)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_adam_update_f32(n, pp, gp, mp, vp, lr, beta_1, beta_2, epsilon, step, nt)
    _raise_on_error(st, "adam_update")


def rmsprop_update(param, grad, ms, mom=None, *, double lr, double rho, double momentum=0.0,
                   double epsilon):
    """Keras 3 RMSprop step (centered=False), in place: ms = rho*ms + (1 - rho)*g^2;
    inc = lr*g / sqrt(ms + epsilon); momentum > 0: mom = momentum*mom + inc, w -= mom;
    else w -= inc (mom unused, may be None)."""
    if momentum > 0.0 and mom is None:
        raise ValueError(f"rmsprop_update: momentum={momentum} needs a mom array, received None")
    _check_slots("rmsprop_update", param, grad, (ms, mom), ("ms", "mom"))
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef float *pp = _fptr(param)
    cdef const float *gp = _fptr(grad)
    cdef float *msp = _fptr(ms)
    cdef float *mop = _fptr(mom)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_rmsprop_update_f32(n, pp, gp, msp, mop, lr, rho, momentum, epsilon, nt)
    _raise_on_error(st, "rmsprop_update")


# --- optimizer updates fused with the weight-gradient GEMM -----------------------------------

cdef int _gemm_update_args(str op, object a, object b, bint ta, bint tb, object param,
                           tuple slots, tuple names, int64_t *dims) except -1:
    """Checks a fused update's operands; dims receives m, n, k, lda, ldb."""
    _check_f32(a, op, "a", 2)
    _check_f32(b, op, "b", 2)
    dims[3] = _row_stride(<cnp.ndarray>a, op, "a")
    dims[4] = _row_stride(<cnp.ndarray>b, op, "b")
    dims[0] = a.shape[1] if ta else a.shape[0]
    dims[2] = a.shape[0] if ta else a.shape[1]
    cdef int64_t kb = b.shape[1] if tb else b.shape[0]
    dims[1] = b.shape[0] if tb else b.shape[1]
    if dims[2] != kb:
        raise ValueError(f"{op}: inner dimensions differ: op(a) is {dims[0]}x{dims[2]}, op(b) "
                         f"is {kb}x{dims[1]} (a.shape={a.shape}, b.shape={b.shape}, "
                         f"trans_a={bool(ta)}, trans_b={bool(tb)})")
    _check_array(param, op, "param", cnp.NPY_FLOAT32, "float32")
    _check_writeable(<cnp.ndarray>param, op, "param")
    if param.shape != (dims[0], dims[1]):
        raise ValueError(f"{op}: param must have the gradient's shape ({dims[0]}, {dims[1]}) "
                         f"= op(a) @ op(b), received {param.shape}")
    for s, name in zip(slots, names):
        if s is not None:
            _check_same(s, param, op, name, "param")
            _check_writeable(<cnp.ndarray>s, op, name)
    _check_disjoint((param,) + slots, ("param",) + names, op)
    for s, name in zip((param,) + slots, ("param",) + names):
        for x, xname in ((a, "a"), (b, "b")):
            if s is not None and _overlap(<cnp.ndarray>s, <cnp.ndarray>x):
                raise ValueError(f"{op}: {name} and {xname} overlap in memory; "
                                 "pass separate arrays")
    return 0


def gemm_sgd_update(a, b, param, velocity=None, *, bint trans_a=False, bint trans_b=False,
                    double lr, double momentum=0.0, bint nesterov=False):
    """sgd_update(param, op(a) @ op(b), velocity, ...) without storing the gradient: each tile
    of op(a) @ op(b) updates its part of param as soon as it is final (see fastnn.h)."""
    if momentum != 0.0 and velocity is None:
        raise ValueError(f"gemm_sgd_update: momentum={momentum} needs a velocity array, "
                         "received None")
    cdef int64_t d[5]
    _gemm_update_args("gemm_sgd_update", a, b, trans_a, trans_b, param, (velocity,),
                      ("velocity",), d)
    cdef const float *ap = _fptr(a)
    cdef const float *bp = _fptr(b)
    cdef float *pp = _fptr(param)
    cdef float *vp = _fptr(velocity)
    cdef fnn_trans ta = FNN_TRANS if trans_a else FNN_NOTRANS
    cdef fnn_trans tb = FNN_TRANS if trans_b else FNN_NOTRANS
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_gemm_sgd_f32(ta, tb, d[0], d[1], d[2], ap, d[3], bp, d[4], pp, vp, lr,
                              momentum, nesterov, nt)
    _raise_on_error(st, "gemm_sgd_update")


def gemm_adam_update(a, b, param, m, v, *, bint trans_a=False, bint trans_b=False, double lr,
                     double beta_1, double beta_2, double epsilon, int64_t step):
    """adam_update(param, op(a) @ op(b), m, v, ...) without storing the gradient (see
    gemm_sgd_update)."""
    if step < 1:
        raise ValueError(f"gemm_adam_update: step counts updates from 1, received {step}")
    cdef int64_t d[5]
    _gemm_update_args("gemm_adam_update", a, b, trans_a, trans_b, param, (m, v), ("m", "v"), d)
    cdef const float *ap = _fptr(a)
    cdef const float *bp = _fptr(b)
    cdef float *pp = _fptr(param)
    cdef float *mp = _fptr(m)
    cdef float *vp = _fptr(v)
    cdef fnn_trans ta = FNN_TRANS if trans_a else FNN_NOTRANS
    cdef fnn_trans tb = FNN_TRANS if trans_b else FNN_NOTRANS
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_gemm_adam_f32(ta, tb, d[0], d[1], d[2], ap, d[3], bp, d[4], pp, mp, vp, lr,
                               beta_1, beta_2, epsilon, step, nt)
    _raise_on_error(st, "gemm_adam_update")


def gemm_rmsprop_update(a, b, param, ms, mom=None, *, bint trans_a=False, bint trans_b=False,
                        double lr, double rho, double momentum=0.0, double epsilon):
    """rmsprop_update(param, op(a) @ op(b), ms, mom, ...) without storing the gradient (see
    gemm_sgd_update)."""
    if momentum > 0.0 and mom is None:
        raise ValueError(f"gemm_rmsprop_update: momentum={momentum} needs a mom array, "
                         "received None")
    cdef int64_t d[5]
    _gemm_update_args("gemm_rmsprop_update", a, b, trans_a, trans_b, param, (ms, mom),
                      ("ms", "mom"), d)
    cdef const float *ap = _fptr(a)
    cdef const float *bp = _fptr(b)
    cdef float *pp = _fptr(param)
    cdef float *msp = _fptr(ms)
    cdef float *mop = _fptr(mom)
    cdef fnn_trans ta = FNN_TRANS if trans_a else FNN_NOTRANS
    cdef fnn_trans tb = FNN_TRANS if trans_b else FNN_NOTRANS
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_gemm_rmsprop_f32(ta, tb, d[0], d[1], d[2], ap, d[3], bp, d[4], pp, msp, mop,
                                  lr, rho, momentum, epsilon, nt)
    _raise_on_error(st, "gemm_rmsprop_update")


# --- dropout --------------------------------------------------------------------------------

cdef inline int _check_rate(double rate, str op) except -1:
    if not (0.0 <= rate < 1.0 and <float>rate < 1.0):
        raise ValueError(f"{op}: rate must be in [0, 1), received {rate}")
    return 0


def dropout_fwd(x, mask, out=None, *, double rate, seed):
    """Inverted dropout: mask = 1 where kept (probability 1 - rate), out = x*mask/(1 - rate)
    (scale rounded to float32 once). The mask depends only on (seed, element index): the same
    for every thread count and ISA. mask: uint8, x's shape, written. out may be x (in place).
    seed: int in [0, 2**64)."""
    _check_rate(rate, "dropout_fwd")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"dropout_fwd: seed must be an int, received {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"dropout_fwd: seed must be in [0, 2**64), received {seed}")
    _check_array(x, "dropout_fwd", "x", cnp.NPY_FLOAT32, "float32")
    _check_same(mask, x, "dropout_fwd", "mask", "x", cnp.NPY_UINT8, "uint8")
    _check_writeable(<cnp.ndarray>mask, "dropout_fwd", "mask")
    _check_disjoint((x, mask), ("x", "mask"), "dropout_fwd")
    cdef cnp.ndarray y = _out_like(out, x, "dropout_fwd", (x, mask), x)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef uint64_t s = <uint64_t>int(seed)
    cdef const float *xp = _fptr(x)
    cdef uint8_t *mp = <uint8_t *>cnp.PyArray_DATA(<cnp.ndarray>mask)
    cdef float *yp = _fptr(y)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_dropout_fwd_f32(n, xp, <float>rate, s, mp, yp, nt)
    _raise_on_error(st, "dropout_fwd")
    return y


def dropout_bwd(dy, mask, out=None, *, double rate):
    """out = dy * mask / (1 - rate), the gradient of dropout_fwd. out may be dy (in place)."""
    _check_rate(rate, "dropout_bwd")
    _check_array(dy, "dropout_bwd", "dy", cnp.NPY_FLOAT32, "float32")
    _check_same(mask, dy, "dropout_bwd", "mask", "dy", cnp.NPY_UINT8, "uint8")
    cdef cnp.ndarray dx = _out_like(out, dy, "dropout_bwd", (dy, mask), dy)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>dy)
    cdef const float *dyp = _fptr(dy)
    cdef const uint8_t *mp = <const uint8_t *>cnp.PyArray_DATA(<cnp.ndarray>mask)
    cdef float *dxp = _fptr(dx)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_dropout_bwd_f32(n, dyp, mp, <float>rate, dxp, nt)
    _raise_on_error(st, "dropout_bwd")
    return dx
