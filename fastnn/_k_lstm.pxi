# LSTM, SimpleRNN and GRU wrappers (included by _kernels.pyx): strict forward and backward through
# time over a whole sequence. Layout and gate order (i, f, g, o) as Keras; contract in
# csrc/fastnn.h.

LSTM_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


cdef inline int _check_lstm_array(object a, str op, str name, tuple shape) except -1:
    """a: float32, C-contiguous, exactly `shape`."""
    _check_f32(a, op, name, len(shape))
    if (<object>a).shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, received {(<object>a).shape}")
    _check_c_contig(<cnp.ndarray>a, op, name)
    return 0


cdef int _check_lstm_arrays(str op, tuple specs, tuple saved=()) except -1:
    """Each (name, array or None, shape) of specs: a given array passes _check_lstm_array; a
    name in `saved` (a training forward's saved buffer) must be given."""
    for name, a, shape in specs:
        if a is not None:
            _check_lstm_array(a, op, name, shape)
        elif name in saved:
            raise ValueError(f"{op}: {name} is required (the training forward's saved buffer)")
    return 0


cdef inline float *_f32_ptr(object a):
    """Data pointer of a checked float32 array, or NULL for None."""
    if a is None:
        return NULL
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _check_lstm_act(int act, str op, str name) except -1:
    if act not in (FNN_ACT_LINEAR, FNN_ACT_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH):
        raise ValueError(f"{op}: {name} must be the code of one of {LSTM_ACTIVATIONS} "
                         f"({FNN_ACT_LINEAR}, {FNN_ACT_RELU}, {FNN_ACT_SIGMOID}, "
                         f"{FNN_ACT_TANH}), received {act}")
    return 0


cdef int _check_overwritten(str op, str name, object buf, tuple inputs) except -1:
    """buf (a saved buffer the backward overwrites) is writeable and overlaps none of the
    (name, array or None) inputs."""
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>buf):
        raise ValueError(f"{op}: {name} must be writeable (it is overwritten with dL/dz)")
    for other, a in inputs:
        if a is not None and _overlap(<cnp.ndarray>buf, <cnp.ndarray>a):
            raise ValueError(f"{op}: {name} overlaps {other} in memory; {name} is overwritten")
    return 0


cdef fnn_lstm_desc _lstm_desc(object x, object kernel, object recurrent_kernel, int activation,
                              int recurrent_activation, bint go_backwards, str op,
                              int gates=4) except *:
    """Checks x, kernel and recurrent_kernel (gates*units columns each) against each other;
    returns the descriptor."""
    _check_f32(x, op, "x", 3)
    _check_c_contig(<cnp.ndarray>x, op, "x")
    _check_f32(recurrent_kernel, op, "recurrent_kernel", 2)
    cdef int64_t units = recurrent_kernel.shape[0]
    _check_lstm_array(recurrent_kernel, op, "recurrent_kernel", (units, gates * units))
    _check_lstm_array(kernel, op, "kernel", (x.shape[2], gates * units))
    _check_lstm_act(activation, op, "activation")
    _check_lstm_act(recurrent_activation, op, "recurrent_activation")
    cdef fnn_lstm_desc d
    d.batch = x.shape[0]
    d.seq_len = x.shape[1]
    d.input_size = x.shape[2]
    d.hidden_size = units
    d.activation = <fnn_act>activation
    d.recurrent_activation = <fnn_act>recurrent_activation
    d.go_backwards = 1 if go_backwards else 0
    return d


def lstm_fwd(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, *, h_mask=None,
             int activation=FNN_ACT_TANH, int recurrent_activation=FNN_ACT_SIGMOID,
             bint go_backwards=False, bint training=False, bint return_sequences=True):
    """LSTM forward over a whole sequence (csrc/fastnn.h: fnn_lstm_fwd_f32).

    Strict: every array float32 and C-contiguous. x (batch, seq_len, input_size), kernel
    (input_size, 4*units), recurrent_kernel (units, 4*units), bias (4*units,) or None, h0 and c0
    (batch, units) or None (zeros), h_mask (batch, units) or None: multiplies h_{t-1} where it
    enters the recurrent GEMM (recurrent dropout, scale included). activation codes: index
    into ACTIVATIONS (linear, relu, sigmoid or tanh).

    Returns (y, h_last, c_last, gates, c_seq): y (batch, seq_len, units) in processing order, or
    None when return_sequences is False and training is False; gates (batch, seq_len, 4*units)
    and c_seq (batch, seq_len, units) are what backward needs, None unless training.
    """
    cdef fnn_lstm_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation,
                                      recurrent_activation, go_backwards, "lstm_fwd")
    cdef int64_t units = d.hidden_size
    cdef tuple state = (d.batch, units)
    _check_lstm_arrays("lstm_fwd", (("bias", bias, (4 * units,)), ("h0", h0, state),
                                    ("c0", c0, state), ("h_mask", h_mask, state)))
    y = None
    gates = None
    c_seq = None
    if training or return_sequences:
        y = np.empty((d.batch, d.seq_len, units), dtype=np.float32)
    if training:
        gates = np.empty((d.batch, d.seq_len, 4 * units), dtype=np.float32)
        c_seq = np.empty((d.batch, d.seq_len, units), dtype=np.float32)
    h_last = np.empty((d.batch, units), dtype=np.float32)
    c_last = np.empty((d.batch, units), dtype=np.float32)
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *bp = _f32_ptr(bias)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *c0p = _f32_ptr(c0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef float *yp = _f32_ptr(y)
    cdef float *hp = _f32_ptr(h_last)
    cdef float *cp = _f32_ptr(c_last)
    cdef float *gp = _f32_ptr(gates)
    cdef float *sp = _f32_ptr(c_seq)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_lstm_fwd_f32(&d, xp, kp, rp, bp, h0p, c0p, mp, yp, hp, cp, gp, sp, nt)
    _raise_on_error(st, "lstm_fwd")
    return y, h_last, c_last, gates, c_seq


def lstm_bwd(x, kernel, recurrent_kernel, h0, c0, y, c_seq, gates, dy=None, dh_last=None,
             dc_last=None, *, h_mask=None, int activation=FNN_ACT_TANH,
             int recurrent_activation=FNN_ACT_SIGMOID, bint go_backwards=False,
             bint need_dx=True, bint need_dbias=True, bint need_dh0=True, bint need_dc0=True):
    """LSTM backward through time (csrc/fastnn.h: fnn_lstm_bwd_f32).

    Strict: x, kernel, recurrent_kernel, h0, c0 (None: zeros), h_mask as given to
    lstm_fwd(training=True), and its y, c_seq and gates. gates is OVERWRITTEN (with dL/dz): it serves one backward only.
    dy (batch, seq_len, units), dh_last and dc_last (batch, units): gradients of the outputs, or
    None (zero). Returns (dx, dkernel, drecurrent_kernel, dbias, dh0, dc0); those not asked
    for (need_*=False) are None.
    """
    cdef str op = "lstm_bwd"
    cdef fnn_lstm_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation,
                                      recurrent_activation, go_backwards, op)
    cdef int64_t units = d.hidden_size
    cdef tuple state = (d.batch, units), seq = (d.batch, d.seq_len, units)
    _check_lstm_arrays(op, (("h0", h0, state), ("c0", c0, state), ("h_mask", h_mask, state),
                            ("y", y, seq), ("c_seq", c_seq, seq),
                            ("gates", gates, (d.batch, d.seq_len, 4 * units)), ("dy", dy, seq),
                            ("dh_last", dh_last, state), ("dc_last", dc_last, state)),
                       saved=("y", "c_seq", "gates"))
    _check_overwritten(op, "gates", gates, (
        ("x", x), ("kernel", kernel), ("recurrent_kernel", recurrent_kernel), ("h0", h0),
        ("c0", c0), ("h_mask", h_mask), ("y", y), ("c_seq", c_seq), ("dy", dy),
        ("dh_last", dh_last), ("dc_last", dc_last)))
    dx = np.empty((d.batch, d.seq_len, d.input_size), dtype=np.float32) if need_dx else None
    dkernel = np.empty((d.input_size, 4 * units), dtype=np.float32)
    drec = np.empty((units, 4 * units), dtype=np.float32)
    dbias = np.empty((4 * units,), dtype=np.float32) if need_dbias else None
    dh0 = np.empty(state, dtype=np.float32) if need_dh0 else None
    dc0 = np.empty(state, dtype=np.float32) if need_dc0 else None
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *c0p = _f32_ptr(c0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef const float *yp = _f32_ptr(y)
    cdef const float *sp = _f32_ptr(c_seq)
    cdef float *gp = _f32_ptr(gates)
    cdef const float *dyp = _f32_ptr(dy)
    cdef const float *dhp = _f32_ptr(dh_last)
    cdef const float *dcp = _f32_ptr(dc_last)
    cdef float *dxp = _f32_ptr(dx)
    cdef float *dkp = _f32_ptr(dkernel)
    cdef float *drp = _f32_ptr(drec)
    cdef float *dbp = _f32_ptr(dbias)
    cdef float *dh0p = _f32_ptr(dh0)
    cdef float *dc0p = _f32_ptr(dc0)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_lstm_bwd_f32(&d, xp, kp, rp, h0p, c0p, mp, yp, sp, gp, dyp, dhp, dcp, dxp,
                              dkp, drp, dbp, dh0p, dc0p, nt)
    _raise_on_error(st, op)
    return dx, dkernel, drec, dbias, dh0, dc0


def simple_rnn_fwd(x, kernel, recurrent_kernel, bias=None, h0=None, *, h_mask=None,
                   int activation=FNN_ACT_TANH, bint go_backwards=False, bint training=False,
                   bint return_sequences=True):
    """SimpleRNN forward over a whole sequence (csrc/fastnn.h: fnn_simple_rnn_fwd_f32).

    Strict: every array float32 and C-contiguous. x (batch, seq_len, input_size), kernel
    (input_size, units), recurrent_kernel (units, units), bias (units,) or None, h0 and h_mask
    (batch, units) or None, as lstm_fwd's.

    Returns (y, h_last): y (batch, seq_len, units) in processing order (all that backward
    needs), or None when return_sequences and training are both False.
    """
    cdef str op = "simple_rnn_fwd"
    cdef fnn_rnn_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation, FNN_ACT_SIGMOID,
                                     go_backwards, op, 1)
    cdef tuple state = (d.batch, d.hidden_size)
    _check_lstm_arrays(op, (("bias", bias, (d.hidden_size,)), ("h0", h0, state),
                            ("h_mask", h_mask, state)))
    y = None
    if training or return_sequences:
        y = np.empty((d.batch, d.seq_len, d.hidden_size), dtype=np.float32)
    h_last = np.empty(state, dtype=np.float32)
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *bp = _f32_ptr(bias)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef float *yp = _f32_ptr(y)
    cdef float *hp = _f32_ptr(h_last)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_simple_rnn_fwd_f32(&d, xp, kp, rp, bp, h0p, mp, yp, hp, nt)
    _raise_on_error(st, op)
    return y, h_last


def simple_rnn_bwd(x, kernel, recurrent_kernel, h0, y, dy=None, dh_last=None, *, h_mask=None,
                   int activation=FNN_ACT_TANH, bint go_backwards=False, bint need_dx=True,
                   bint need_dbias=True, bint need_dh0=True):
    """SimpleRNN backward through time (csrc/fastnn.h: fnn_simple_rnn_bwd_f32).

    Strict: x, kernel, recurrent_kernel, h0 (None: zeros), h_mask as given to simple_rnn_fwd
    and its y (read only: a forward serves any number of backwards). dy (batch, seq_len, units),
    dh_last (batch, units): output gradients or None (zero). Returns (dx, dkernel,
    drecurrent_kernel, dbias, dh0); those not asked for (need_*=False) are None.
    """
    cdef str op = "simple_rnn_bwd"
    cdef fnn_rnn_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation, FNN_ACT_SIGMOID,
                                     go_backwards, op, 1)
    cdef int64_t units = d.hidden_size
    cdef tuple state = (d.batch, units), seq = (d.batch, d.seq_len, units)
    if y is None:
        raise ValueError(f"{op}: y is required (the forward's output sequence)")
    _check_lstm_arrays(op, (("h0", h0, state), ("h_mask", h_mask, state), ("y", y, seq),
                            ("dy", dy, seq), ("dh_last", dh_last, state)))
    dx = np.empty((d.batch, d.seq_len, d.input_size), dtype=np.float32) if need_dx else None
    dkernel = np.empty((d.input_size, units), dtype=np.float32)
    drec = np.empty((units, units), dtype=np.float32)
    dbias = np.empty((units,), dtype=np.float32) if need_dbias else None
    dh0 = np.empty(state, dtype=np.float32) if need_dh0 else None
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef const float *yp = _f32_ptr(y)
    cdef const float *dyp = _f32_ptr(dy)
    cdef const float *dhp = _f32_ptr(dh_last)
    cdef float *dxp = _f32_ptr(dx)
    cdef float *dkp = _f32_ptr(dkernel)
    cdef float *drp = _f32_ptr(drec)
    cdef float *dbp = _f32_ptr(dbias)
    cdef float *dh0p = _f32_ptr(dh0)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_simple_rnn_bwd_f32(&d, xp, kp, rp, h0p, mp, yp, dyp, dhp, dxp, dkp, drp, dbp,
                                    dh0p, nt)
    _raise_on_error(st, op)
    return dx, dkernel, drec, dbias, dh0


def gru_fwd(x, kernel, recurrent_kernel, bias=None, h0=None, *, h_mask=None,
            int activation=FNN_ACT_TANH, int recurrent_activation=FNN_ACT_SIGMOID,
            bint go_backwards=False, bint training=False, bint return_sequences=True):
    """GRU forward over a whole sequence (csrc/fastnn.h: fnn_gru_fwd_f32; reset_after=True).

    Strict: every array float32 and C-contiguous. x (batch, seq_len, input_size), kernel
    (input_size, 3*units), recurrent_kernel (units, 3*units), columns z | r | h; bias
    (2, 3*units) (input bias, recurrent bias) or None; h0 and h_mask (batch, units) or None.

    Returns (y, h_last, gates, hn_seq): y (batch, seq_len, units) in processing order, or None
    when return_sequences and training are both False; gates (batch, seq_len, 3*units) and
    hn_seq (batch, seq_len, units) are what backward needs, None unless training.
    """
    cdef str op = "gru_fwd"
    cdef fnn_rnn_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation,
                                     recurrent_activation, go_backwards, op, 3)
    cdef tuple state = (d.batch, d.hidden_size)
    _check_lstm_arrays(op, (("bias", bias, (2, 3 * d.hidden_size)), ("h0", h0, state),
                            ("h_mask", h_mask, state)))
    y = gates = hn_seq = None
    if training or return_sequences:
        y = np.empty((d.batch, d.seq_len, d.hidden_size), dtype=np.float32)
    if training:
        gates = np.empty((d.batch, d.seq_len, 3 * d.hidden_size), dtype=np.float32)
        hn_seq = np.empty((d.batch, d.seq_len, d.hidden_size), dtype=np.float32)
    h_last = np.empty(state, dtype=np.float32)
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *bp = _f32_ptr(bias)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef float *yp = _f32_ptr(y)
    cdef float *hp = _f32_ptr(h_last)
    cdef float *gp = _f32_ptr(gates)
    cdef float *np_ = _f32_ptr(hn_seq)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_gru_fwd_f32(&d, xp, kp, rp, bp, h0p, mp, yp, hp, gp, np_, nt)
    _raise_on_error(st, op)
    return y, h_last, gates, hn_seq


def gru_bwd(x, kernel, recurrent_kernel, h0, y, gates, hn_seq, dy=None, dh_last=None, *,
            h_mask=None, int activation=FNN_ACT_TANH, int recurrent_activation=FNN_ACT_SIGMOID,
            bint go_backwards=False, bint need_dx=True, bint need_dbias=True,
            bint need_dh0=True):
    """GRU backward through time (csrc/fastnn.h: fnn_gru_bwd_f32).

    Strict: x, kernel, recurrent_kernel, h0 (None: zeros), h_mask as given to
    gru_fwd(training=True), and its y, gates and hn_seq; gates and hn_seq are OVERWRITTEN: they
    serve one backward only. dy (batch, seq_len, units), dh_last (batch, units): output
    gradients or None (zero). Returns (dx, dkernel, drecurrent_kernel, dbias (2, 3*units),
    dh0); those not asked for (need_*=False) are None.
    """
    cdef str op = "gru_bwd"
    cdef fnn_rnn_desc d = _lstm_desc(x, kernel, recurrent_kernel, activation,
                                     recurrent_activation, go_backwards, op, 3)
    cdef int64_t units = d.hidden_size
    cdef tuple state = (d.batch, units), seq = (d.batch, d.seq_len, units)
    _check_lstm_arrays(op, (("h0", h0, state), ("h_mask", h_mask, state), ("y", y, seq),
                            ("gates", gates, (d.batch, d.seq_len, 3 * units)),
                            ("hn_seq", hn_seq, seq), ("dy", dy, seq), ("dh_last", dh_last, state)),
                       saved=("y", "gates", "hn_seq"))
    inputs = (("x", x), ("kernel", kernel), ("recurrent_kernel", recurrent_kernel), ("h0", h0),
              ("h_mask", h_mask), ("y", y), ("dy", dy), ("dh_last", dh_last))
    _check_overwritten(op, "gates", gates, inputs + (("hn_seq", hn_seq),))
    _check_overwritten(op, "hn_seq", hn_seq, inputs)
    dx = np.empty((d.batch, d.seq_len, d.input_size), dtype=np.float32) if need_dx else None
    dkernel = np.empty((d.input_size, 3 * units), dtype=np.float32)
    drec = np.empty((units, 3 * units), dtype=np.float32)
    dbias = np.empty((2, 3 * units), dtype=np.float32) if need_dbias else None
    dh0 = np.empty(state, dtype=np.float32) if need_dh0 else None
    cdef const float *xp = _f32_ptr(x)
    cdef const float *kp = _f32_ptr(kernel)
    cdef const float *rp = _f32_ptr(recurrent_kernel)
    cdef const float *h0p = _f32_ptr(h0)
    cdef const float *mp = _f32_ptr(h_mask)
    cdef const float *yp = _f32_ptr(y)
    cdef float *gp = _f32_ptr(gates)
    cdef float *np_ = _f32_ptr(hn_seq)
    cdef const float *dyp = _f32_ptr(dy)
    cdef const float *dhp = _f32_ptr(dh_last)
    cdef float *dxp = _f32_ptr(dx)
    cdef float *dkp = _f32_ptr(dkernel)
    cdef float *drp = _f32_ptr(drec)
    cdef float *dbp = _f32_ptr(dbias)
    cdef float *dh0p = _f32_ptr(dh0)
    cdef int nt = fnn_get_num_threads()
    cdef fnn_status st
    with nogil:
        st = fnn_gru_bwd_f32(&d, xp, kp, rp, h0p, mp, yp, gp, np_, dyp, dhp, dxp, dkp, drp, dbp,
                             dh0p, nt)
    _raise_on_error(st, op)
    return dx, dkernel, drec, dbias, dh0
