"""Fuzzing of the kernel ops: every example gives the float64 reference result or a clean
TypeError / ValueError naming the argument (see tests/_fuzz.py).

The registry OPS lists each op under test with the function that draws its examples; adding
an op means adding one draw function and one entry. Each entry runs _fuzz.EXAMPLES examples
(1000 in CI, FASTNN_FUZZ_EXAMPLES=N for a longer run), on a drawn ISA, thread count and GEMM
path.
"""

import _fuzz
import _reference_conv as conv_reference  # ref_conv2d, ref_pool, ref_pool_grads
import _reference_lstm as lstm_reference
import numpy as np
import pytest
from _fuzz import F32, Case, FuzzOp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import _kernels, ops


def _is_f32_array(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float32


def _operand(data, shape, label, layouts=_fuzz.LAYOUTS):
    """An operand: a float32 array in a random layout, or sometimes (about 1 in 10) a wrong
    dtype, a wrong rank or not an array at all."""
    if _fuzz.rare(data, 100, f"{label} not an array"):
        return data.draw(st.sampled_from((None, 1.5, [[1.0, 2.0]], "x")), label=label)
    if _fuzz.rare(data, 100, f"{label} wrong rank"):
        rank = data.draw(st.sampled_from((0, 1, 3)), label=f"{label} rank")
        shape = (shape + (2, 3))[:rank]
    dtype = _fuzz.maybe_wrong_dtype(data, label, 16)
    return _fuzz.array(data, shape, dtype, specials=True, layouts=layouts, label=label)


def _check_operand(case, x, name):
    """Records the errors an operand's own defects allow. Returns False if it is unusable."""
    if not _is_f32_array(x):
        case.expect(TypeError, name)
        if isinstance(x, np.ndarray) and x.ndim != 2:
            case.expect(ValueError, name)
        return False
    if x.ndim != 2:
        case.expect(ValueError, name)
        return False
    return True


def _out_array(data, shape, inputs, prefill=np.nan):
    """None, a good out array, or (1 in 10) a defective one: wrong dtype, shape, layout,
    read-only, unaligned, or overlapping an input."""
    if data.draw(st.booleans(), label="no out"):
        return None
    if not _fuzz.rare(data, 10, "bad out"):
        out = np.empty(shape, F32)
        out.fill(prefill)
        return out
    defect = data.draw(st.sampled_from(("dtype", "shape", "F", "readonly", "unaligned",
                                        "overlap", "sliced")), label="out defect")
    if defect == "dtype":
        return np.zeros(shape, data.draw(st.sampled_from(_fuzz.WRONG_DTYPES)))
    if defect == "shape":
        return np.zeros((shape[0] + 1, shape[1]), F32)
    if defect == "F":
        return np.zeros(shape, F32, order="F")
    if defect == "readonly":
        out = np.zeros(shape, F32)
        out.flags.writeable = False
        return out
    if defect == "unaligned":
        return _fuzz.lay_out(data, np.full(shape, prefill, F32), "unaligned")
    if defect == "sliced":
        return _fuzz.lay_out(data, np.full(shape, prefill, F32), "sliced")
    # overlap: a view of an input's own buffer, when it is a big enough writeable array
    for x in inputs:
        if _is_f32_array(x) and x.flags.writeable and x.base is None and \
                x.flags.c_contiguous and x.size >= shape[0] * shape[1] > 0:
            return x.reshape(-1)[:shape[0] * shape[1]].reshape(shape)
    return None


def _same_buffer(a, b) -> bool:
    """a and b are views of the same elements (data pointer, shape and strides): writing the
    result of an element-wise op into that buffer is in place, which the kernels allow."""
    return (_is_f32_array(a) and _is_f32_array(b) and a.shape == b.shape and
            a.strides == b.strides and
            a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _check_out(case, out, shape, inputs, name="out"):
    """Records the errors a defective out allows; True if out is usable."""
    if out is None:
        return True
    if not _is_f32_array(out):
        case.expect(TypeError, name)
        return False
    ok = True
    if out.shape != shape:
        case.expect(ValueError, name)
        ok = False
    if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
        case.expect(ValueError, name)
        ok = False
    if any(_is_f32_array(x) and np.may_share_memory(out, x) for x in inputs if x is not None):
        case.expect(ValueError, name)
        ok = False
    return ok


# --- matmul (lenient public op) ----------------------------------------------------------------

def draw_matmul(data) -> Case:
    m, k, n = (data.draw(_fuzz.dims(), label=d) for d in "mkn")
    k_b = k + 1 if _fuzz.rare(data, 50, "mismatch") else k
    a = _operand(data, (m, k), "a")
    b = _operand(data, (k_b, n), "b")
    out = _out_array(data, (m, n), (a, b))
    case = Case(call=lambda: ops.matmul(a, b, out=out), check=None, op="matmul")
    usable = _check_operand(case, a, "a") & _check_operand(case, b, "b")
    if usable and a.shape[1] != b.shape[0]:
        case.expect(ValueError, "a")
        case.expect(ValueError, "b")
        usable = False
    if usable and out is not None and not _check_out(case, out, (m, n), (a, b)):
        usable = False
    elif not usable and out is not None and not _is_f32_array(out):
        case.expect(TypeError, "out")
    if not usable:
        case.check = lambda result: None
        return case
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a_before, b_before = a.copy(), b.copy()

    def check(result):
        _fuzz.assert_close(result, _fuzz.matmul64(a64, b64), _fuzz.gemm_bound(a64, b64, k),
                           "matmul")
        assert out is None or result is out, "matmul: the result is not the given out"
        np.testing.assert_array_equal(a, a_before)  # inputs untouched
        np.testing.assert_array_equal(b, b_before)

    case.check = check
    return case


# --- gemm (strict internal kernel, fused epilogue) ----------------------------------------------

GEMM_ACTS = ("linear", "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu")
# The strict gemm takes C-ordered operands and row slices; the other layouts must be refused.
GEMM_LAYOUTS = ("C",) * 6 + ("sliced",) * 2 + _fuzz.LAYOUTS


def _rows_contiguous(x) -> bool:
    rows, cols = x.shape
    if rows == 0 or cols == 0:  # no element to misread (NumPy may give an empty array any strides)
        return True
    if cols > 1 and x.strides[1] != 4:
        return False
    return rows <= 1 or (x.strides[0] >= 4 * cols and x.strides[0] % 4 == 0)


def _act_bound(act, act_alpha, z64, bound):
    """The bound of act(z) given |z error| <= bound: a slope of at most ~1.13 (gelu) or
    act_alpha, plus the activation's own rounding (libm or vector approximations)."""
    slope = max(1.13, abs(act_alpha)) if act != "linear" else 1.0
    y = _fuzz.act64(act, z64, act_alpha)
    return slope * bound + 64 * _fuzz.EPS32 * np.abs(np.nan_to_num(y)) + 1e-30


def draw_gemm(data) -> Case:
    m, k, n = (data.draw(_fuzz.dims(), label=d) for d in "mkn")
    ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    alpha = data.draw(st.sampled_from((1.0, -1.0, 0.5, 0.0, 2.5)), label="alpha")
    act = data.draw(st.sampled_from(GEMM_ACTS), label="act")
    act_alpha = data.draw(st.sampled_from((0.0, 0.2, 1.0)), label="act_alpha")
    a_shape = (k, m) if ta else (m, k)
    b_shape = (n, k) if tb else (k, n)
    if _fuzz.rare(data, 50, "mismatch"):
        b_shape = (b_shape[0] + 1, b_shape[1]) if not tb else (b_shape[0], b_shape[1] + 1)
    a = _operand(data, a_shape, "a", GEMM_LAYOUTS)
    b = _operand(data, b_shape, "b", GEMM_LAYOUTS)
    bias = None
    if data.draw(st.booleans(), label="with bias"):
        bias_n = n + 1 if _fuzz.rare(data, 50, "bias mismatch") else n
        bias = _fuzz.array(data, (bias_n,), _fuzz.maybe_wrong_dtype(data, "bias", 50),
                           layouts=("C",) * 8 + ("sliced", "reversed", "unaligned"),
                           label="bias")
    # beta != 0 needs an out array (1 in 20 examples checks that it says so)
    out = _out_array(data, (m, n), (a, b, bias), np.nan)
    beta = 0.0
    if (out is not None and data.draw(st.booleans(), label="with beta")) or \
            _fuzz.rare(data, 20, "beta without out"):
        beta = data.draw(st.sampled_from((1.0, 0.5, -2.0)), label="beta")
    if out is not None and beta != 0.0 and out.shape == (m, n) and out.dtype == F32 and \
            out.flags.writeable:
        out[...] = _fuzz.values(data, out.shape)
    out0 = None if out is None else out.copy()
    act_index = _kernels.ACTIVATIONS.index(act)

    def call():
        return _kernels.gemm(a, b, out, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta,
                             bias=bias, act=act_index, act_alpha=act_alpha)

    case = Case(call=call, check=lambda result: None, op="gemm")
    usable = _check_operand(case, a, "a") & _check_operand(case, b, "b")
    for name, x in (("a", a), ("b", b)):
        if _is_f32_array(x) and x.ndim == 2 and (not _rows_contiguous(x) or
                                                  not x.flags.aligned):
            case.expect(ValueError, name)
            usable = False
    inner_a = a.shape[0 if ta else 1] if usable else None
    inner_b = b.shape[1 if tb else 0] if usable else None
    if usable and inner_a != inner_b:
        case.expect(ValueError, "a")
        case.expect(ValueError, "b")
        usable = False
    if bias is not None:
        if not _is_f32_array(bias):
            case.expect(TypeError, "bias")
            usable = False
        elif not usable or bias.shape != (n,) or not bias.flags.c_contiguous or \
                not bias.flags.aligned:
            case.expect(ValueError, "bias")
            usable = usable and bias.shape == (n,) and bias.flags.c_contiguous and \
                bias.flags.aligned
    if out is None and beta != 0.0:
        case.expect(ValueError, "beta")
        usable = False
    if out is not None and not _check_out(case, out, (m, n), (a, b, bias)):
        usable = False
    if not usable:
        return case
    a64 = a.astype(np.float64).T if ta else a.astype(np.float64)
    b64 = b.astype(np.float64).T if tb else b.astype(np.float64)
    bias64 = np.zeros(n) if bias is None else bias.astype(np.float64)
    c0 = np.zeros((m, n)) if beta == 0.0 else out0.astype(np.float64)

    def check(result):
        with np.errstate(all="ignore"):
            prod = np.zeros((m, n)) if alpha == 0.0 else alpha * _fuzz.matmul64(a64, b64)
            z = prod + beta * c0 + bias64
        bound = (abs(alpha) * _fuzz.gemm_bound(a64, b64, k) + 2 * _fuzz.EPS32 *
                 (np.abs(np.nan_to_num(beta * c0)) + np.abs(bias64) + np.abs(np.nan_to_num(z))))
        want = _fuzz.act64(act, z, act_alpha)
        _fuzz.assert_close(result, want, _act_bound(act, act_alpha, z, bound), "gemm")
        assert out is None or result is out

    case.check = check
    return case


# --- LSTM (lenient public ops) -------------------------------------------------------------------

LSTM_ACTS = ("tanh", "sigmoid", "relu", "linear")
# NaN, signed zeros and denormals; no infinities (inf - inf inside a gate is not an IEEE
# question but the formula's) and no huge values (a linear LSTM would overflow over time).
LSTM_SPECIALS = (np.nan, 0.0, -0.0, 1e-40, -3e-42)


def _lstm_arg(data, shape, label, optional=False, scale=1.0):
    """An LSTM argument: float32 in any layout, or rarely a wrong dtype, shape or None."""
    if optional and data.draw(st.booleans(), label=f"{label} given") is False:
        return None
    if _fuzz.rare(data, 60, f"{label} wrong shape"):
        shape = tuple(d + 1 for d in shape) if shape else (1,)
    dtype = _fuzz.maybe_wrong_dtype(data, label, 60)
    return _fuzz.array(data, shape, dtype, specials=LSTM_SPECIALS if label == "x" else False,
                       label=label, scale=scale)


def _lstm_problem(data, need_acts=True):
    batch = data.draw(st.sampled_from((1, 2, 3, 5, 0)), label="batch")
    time = data.draw(st.sampled_from((1, 2, 3, 7, 0)), label="time")
    features = data.draw(st.sampled_from((1, 3, 5, 17, 0)), label="features")
    units = data.draw(st.sampled_from((1, 2, 3, 5, 8, 17, 0)), label="units")
    act = data.draw(st.sampled_from(LSTM_ACTS), label="activation")
    ract = data.draw(st.sampled_from(LSTM_ACTS), label="recurrent_activation")
    if _fuzz.rare(data, 60, "bad activation"):
        act = data.draw(st.sampled_from(("gelu", "softmax", "Tanh", 3)), label="bad act")
    # unbounded activations over time: smaller weights keep the values in float32 range
    scale = 0.5 if {act, ract} & {"relu", "linear"} else 1.0
    args = {
        "x": _lstm_arg(data, (batch, time, features), "x"),
        "kernel": _lstm_arg(data, (features, 4 * units), "kernel", scale=scale),
        "recurrent_kernel": _lstm_arg(data, (units, 4 * units), "recurrent_kernel",
                                      scale=scale),
        "bias": _lstm_arg(data, (4 * units,), "bias", optional=True),
        "h0": _lstm_arg(data, (batch, units), "h0", optional=True),
        "c0": _lstm_arg(data, (batch, units), "c0", optional=True),
        "recurrent_mask": _lstm_arg(data, (batch, units), "recurrent_mask", optional=True),
    }
    flags = {"activation": act, "recurrent_activation": ract,
             "go_backwards": data.draw(st.booleans(), label="go_backwards"),
             "return_sequences": data.draw(st.booleans(), label="return_sequences")}
    return args, flags


def _lstm_errors(case, args, flags, gates=4):
    """Records the clean errors the arguments allow; True if they are all usable. gates: 4
    (LSTM), 1 (SimpleRNN) or 3 (GRU, whose bias has two rows: input and recurrent)."""
    ok = True
    for name, a in args.items():
        if a is None:
            if name in ("x", "kernel", "recurrent_kernel"):
                case.expect(TypeError, name)
                ok = False
            continue
        if not _is_f32_array(a):
            case.expect(TypeError, name)
            ok = False
    for name in ("activation", "recurrent_activation"):
        if name in flags and flags[name] not in LSTM_ACTS:
            case.expect(ValueError, name)
            ok = False
    if not ok:
        return False
    x, rkernel = args["x"], args["recurrent_kernel"]
    shapes_ok = x.ndim == 3 and rkernel.ndim == 2 and \
        rkernel.shape[1] == gates * rkernel.shape[0]
    if shapes_ok:
        units = rkernel.shape[0]
        expected = {"kernel": (x.shape[2], gates * units),
                    "bias": (2, 3 * units) if gates == 3 else (gates * units,),
                    "h0": (x.shape[0], units), "c0": (x.shape[0], units),
                    "recurrent_mask": (x.shape[0], units)}
        for name, shape in expected.items():
            if args.get(name) is not None and args[name].shape != shape:
                case.expect(ValueError, name)
                case.expect(ValueError, "h_mask")  # the strict wrapper's name for it
                shapes_ok = False
    if not shapes_ok:
        for name in args:
            case.expect(ValueError, name)
        return False
    return True


def _lstm_bound(want, time):
    return 1e-4 * np.sqrt(time + 1.0) * (1.0 + np.abs(np.nan_to_num(want)).max(initial=0.0))


def draw_lstm_forward(data) -> Case:
    args, flags = _lstm_problem(data)
    training = data.draw(st.booleans(), label="training")

    def call():
        return ops.lstm_forward(**args, training=training, **flags)

    case = Case(call=call, check=lambda result: None, op="lstm_forward", also=("lstm_fwd",))
    if not _lstm_errors(case, args, flags):
        return case
    x = args["x"]
    want_y, want_h, want_c, _ = lstm_reference.ref_lstm(
        x, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"], args["c0"],
        flags["activation"], flags["recurrent_activation"], flags["go_backwards"],
        args["recurrent_mask"])
    # linear/relu gates can grow without bound over time; float32 overflow is not the question
    assume(np.abs(np.nan_to_num(np.concatenate([want_y.ravel(), want_c.ravel()]))).max(
        initial=0.0) < 1e6)

    def check(result):
        outputs, h_last, c_last, cache = result
        bound = _lstm_bound(want_y, x.shape[1])
        want_out = want_y if flags["return_sequences"] else want_h
        _fuzz.assert_close(outputs, want_out, bound, "lstm_forward outputs")
        _fuzz.assert_close(h_last, want_h, bound, "lstm_forward h_last")
        _fuzz.assert_close(c_last, want_c, _lstm_bound(want_c, x.shape[1]),
                           "lstm_forward c_last")
        assert (cache is not None) == training

    case.check = check
    return case


def _grads_in_errors(case, grads_in, out_shape, state_shape):
    """Records the errors the drawn output gradients allow (d_outputs of out_shape, the
    others of state_shape); True if they are all usable."""
    ok = True
    for name, g in grads_in.items():
        if g is None:
            continue
        if not _is_f32_array(g):
            case.expect(TypeError, name)
            ok = False
        elif g.shape != (out_shape if name == "d_outputs" else state_shape):
            case.expect(ValueError, name)
            case.expect(ValueError, {"d_outputs": "dy"}.get(name, name))
            ok = False
    return ok


def _output_grads64(grads_in, return_sequences):
    """(dy, dh_last) as the kernel sees them: without return_sequences d_outputs is the
    gradient of h_last and adds to dh_last."""
    d_out, dh_last = grads_in["d_outputs"], grads_in["dh_last"]
    if d_out is None or return_sequences:
        return d_out, dh_last
    return None, d_out if dh_last is None else d_out.astype(np.float64) + dh_last


def _check_grads(op, names, grads, want, present, sensitivity, time):
    """Each gradient present within the LSTM bound plus 16 times its float32 sensitivity;
    each absent one None."""
    for name, got, ref, there, spread in zip(names, grads, want, present, sensitivity):
        if not there:
            assert got is None, f"{op}: {name} computed though not asked for"
            continue
        _fuzz.assert_close(got, ref, _lstm_bound(ref, time) + 16 * spread, f"{op} {name}")


def _sensitivity(want32, want):
    """How far the float32 run of the reference lands from the float64 one, per gradient."""
    return [np.abs(np.nan_to_num(g32 - g)).max(initial=0.0) for g32, g in zip(want32, want)]


def _draw_backward_inputs(data, out_shape, state_shape, states):
    """A backward example's inputs after its training forward: the output gradient and each
    state gradient in `states` (each optional, any layout), need_dx, and the rare misuses
    (a second backward on the cache, something that is not a cache)."""
    grads_in = {"d_outputs": _lstm_arg(data, out_shape, "d_outputs", optional=True)}
    for name in states:
        grads_in[name] = _lstm_arg(data, state_shape, name, optional=True)
    need_dx = data.draw(st.booleans(), label="need_dx")
    reuse = _fuzz.rare(data, 30, "reuse the cache")
    bad_cache = _fuzz.rare(data, 60, "not a cache")
    return grads_in, need_dx, reuse, bad_cache


def _set_backward_call(case, backward, cache, grads_in, need_dx, reuse, bad_cache,
                       reuse_raises) -> bool:
    """Sets case.call to the backward (after a first backward on the cache when `reuse`, on
    something that is not a cache when `bad_cache`). True when the example ends in an
    expected error: TypeError for a non-cache, ValueError for a reused single-use cache."""

    def call():
        if reuse:
            backward(cache, need_dx=need_dx)
        return backward(("x",) if bad_cache else cache, **grads_in, need_dx=need_dx)

    case.call = call
    if bad_cache:
        case.expect(TypeError, "cache")
        return True
    if reuse and reuse_raises:
        case.expect(ValueError, "cache")
        return True
    return False


def draw_lstm_backward(data) -> Case:
    args, flags = _lstm_problem(data)
    case = Case(call=None, check=lambda result: None, op="lstm_backward",
                also=("lstm_bwd", "lstm_forward", "lstm_fwd"))
    usable = _lstm_errors(case, args, flags)
    if not usable:  # the forward refuses: covered by draw_lstm_forward
        case.call = lambda: ops.lstm_forward(**args, training=True, **flags)
        return case
    # no NaN in backward examples: NaN * 0 in a saturated gate's derivative is not a contract
    x = np.nan_to_num(np.asarray(args["x"]), nan=0.5)
    args = {**args, "x": x}
    _, _, _, cache = ops.lstm_forward(**args, training=True, **flags)
    batch, time, units = x.shape[0], x.shape[1], args["recurrent_kernel"].shape[0]
    out_shape = (batch, time, units) if flags["return_sequences"] else (batch, units)
    grads_in, need_dx, reuse, bad_cache = _draw_backward_inputs(
        data, out_shape, (batch, units), ("dh_last", "dc_last"))
    if _set_backward_call(case, ops.lstm_backward, cache, grads_in, need_dx, reuse, bad_cache,
                          reuse_raises=True):
        return case
    if not _grads_in_errors(case, grads_in, out_shape, (batch, units)):
        return case
    dy, dh_last = _output_grads64(grads_in, flags["return_sequences"])
    # The kernel runs in float32: with unbounded (linear, relu) gates the products over time can
    # overflow float32 where the float64 reference stays finite (then 0 * inf = NaN in dkernel
    # while the reference says 0). Compare only examples whose forward gates and states stay
    # small enough that no backward product can leave float32's range.
    # The references take x as the kernels read it (denormals as signed zero while fastnn
    # flushes them, _fuzz.daz). Otherwise a denormal x feeding a relu gate lies on the other
    # side of relu's kink at 0 in the reference than in the kernel, and the gradient jumps by
    # a whole weight there: no rounding bound covers a different branch (found at 10,000
    # examples: x = -3e-42, relu gates, dx 0 vs -1e-3).
    x_ref = _fuzz.daz(x.astype(np.float64))
    _, _, _, steps = lstm_reference.ref_lstm(
        x_ref, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"], args["c0"],
        flags["activation"], flags["recurrent_activation"], flags["go_backwards"],
        args["recurrent_mask"])
    assume(all(np.abs(v).max(initial=0.0) < 1e2 for step in steps for v in step))
    want = lstm_reference.ref_lstm_grads(
        x_ref, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"], args["c0"],
        None if dy is None else np.asarray(dy, np.float64), dh_last, grads_in["dc_last"],
        flags["activation"], flags["recurrent_activation"], flags["go_backwards"],
        args["recurrent_mask"])
    assume(all(np.abs(g).max(initial=0.0) < 1e6 for g in want))
    # How much float32 rounding alone moves each gradient here: the same algorithm in float32.
    # Through several linear or relu steps the backward pass is ill-conditioned (errors of the
    # forward states grow with every step), for any float32 implementation.
    with np.errstate(all="ignore"):
        want32 = lstm_reference.ref_lstm_grads(
            x_ref, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"], args["c0"],
            dy, dh_last, grads_in["dc_last"], flags["activation"], flags["recurrent_activation"],
            flags["go_backwards"], args["recurrent_mask"], dtype=np.float32)
    sensitivity = _sensitivity(want32, want)

    def check(grads):
        names = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0", "dc0")
        present = (need_dx, True, True, args["bias"] is not None, args["h0"] is not None,
                   args["c0"] is not None)
        _check_grads("lstm_backward", names, grads, want, present, sensitivity, time)

    case.check = check
    return case


# --- SimpleRNN and GRU (lenient public ops, the LSTM's driver) --------------------------------

# cell -> gate count. Units around the register tiles (8 floats AVX2, 16 AVX-512) of the fused
# row passes, which run over units (or gates * units) columns.
RNN_CELLS = {"simple_rnn": 1, "gru": 3}
RNN_UNITS = (1, 2, 3, 5, 7, 8, 15, 16, 17, 33, 0)


def _rnn_problem(data, cell):
    """(args, flags) of a simple_rnn_forward / gru_forward call, as _lstm_problem's."""
    gates = RNN_CELLS[cell]
    batch = data.draw(st.sampled_from((1, 2, 3, 5, 0)), label="batch")
    time = data.draw(st.sampled_from((1, 2, 3, 7, 0)), label="time")
    features = data.draw(st.sampled_from((1, 3, 5, 17, 0)), label="features")
    units = data.draw(st.sampled_from(RNN_UNITS), label="units")
    flags = {"activation": data.draw(st.sampled_from(LSTM_ACTS), label="activation")}
    if cell == "gru":
        flags["recurrent_activation"] = data.draw(st.sampled_from(LSTM_ACTS),
                                                  label="recurrent_activation")
    if _fuzz.rare(data, 60, "bad activation"):
        name = data.draw(st.sampled_from(sorted(flags)), label="bad act name")
        flags[name] = data.draw(st.sampled_from(("gelu", "softmax", "Tanh", 3)), label="bad act")
    # unbounded activations over time: smaller weights keep the values in float32 range
    scale = 0.5 if set(flags.values()) & {"relu", "linear"} else 1.0
    bias_shape = (2, 3 * units) if cell == "gru" else (units,)
    args = {
        "x": _lstm_arg(data, (batch, time, features), "x"),
        "kernel": _lstm_arg(data, (features, gates * units), "kernel", scale=scale),
        "recurrent_kernel": _lstm_arg(data, (units, gates * units), "recurrent_kernel",
                                      scale=scale),
        "bias": _lstm_arg(data, bias_shape, "bias", optional=True),
        "h0": _lstm_arg(data, (batch, units), "h0", optional=True),
        "recurrent_mask": _lstm_arg(data, (batch, units), "recurrent_mask", optional=True),
    }
    flags["go_backwards"] = data.draw(st.booleans(), label="go_backwards")
    flags["return_sequences"] = data.draw(st.booleans(), label="return_sequences")
    return args, flags


def _rnn_forward_ref(cell, args, flags, x, dtype=np.float64):
    """(y, h_last, every saved per-step value) of the float64 (or dtype) reference."""
    common = (x, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"],
              flags["activation"])
    with np.errstate(all="ignore"):  # overflow: the callers' assume() rejects such examples
        if cell == "simple_rnn":
            y, h = lstm_reference.ref_simple_rnn(*common, flags["go_backwards"],
                                                 args["recurrent_mask"], dtype)
            return y, h, [y]
        y, h, steps = lstm_reference.ref_gru(*common, flags["recurrent_activation"],
                                             flags["go_backwards"], args["recurrent_mask"], dtype)
    return y, h, [v for step in steps for v in step]


def _rnn_grads_ref(cell, args, flags, x, dy, dh_last, dtype=np.float64):
    """(dx, dkernel, drecurrent_kernel, dbias, dh0) of the float64 (or dtype) reference."""
    common = (x, args["kernel"], args["recurrent_kernel"], args["bias"], args["h0"], dy,
              dh_last, flags["activation"])
    if cell == "gru":
        common += (flags["recurrent_activation"],)
    fn = lstm_reference.ref_simple_rnn_grads if cell == "simple_rnn" else \
        lstm_reference.ref_gru_grads
    return fn(*common, flags["go_backwards"], args["recurrent_mask"], dtype)


def _rnn_ops(cell):
    """(forward, backward, the wrappers' prefixes the messages may start with)."""
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    return forward, backward, (f"{cell}_fwd", f"{cell}_bwd", f"{cell}_forward")


def draw_rnn_forward(data, cell) -> Case:
    args, flags = _rnn_problem(data, cell)
    training = data.draw(st.booleans(), label="training")
    forward, _, prefixes = _rnn_ops(cell)

    def call():
        return forward(**args, training=training, **flags)

    case = Case(call=call, check=lambda result: None, op=f"{cell}_forward", also=prefixes)
    if not _lstm_errors(case, args, flags, RNN_CELLS[cell]):
        return case
    x = args["x"]
    want_y, want_h, _ = _rnn_forward_ref(cell, args, flags, x)
    # linear/relu cells can grow without bound over time; float32 overflow is not the question
    assume(np.abs(np.nan_to_num(want_y)).max(initial=0.0) < 1e6)
    # A GRU whose recurrent activation is not sigmoid is not contractive: h_t = z h + (1 - z) hh
    # with z in (-1, 1) can triple h (and its rounding errors) at every step (found at 2000
    # examples: tanh/tanh, 7 steps, |h| 8, the float32 reference 8e-3 away from float64). As
    # for the LSTM's gradients, the bound adds 16 times the float32 run's distance.
    want_y32, _, _ = _rnn_forward_ref(cell, args, flags, x, dtype=np.float32)
    spread = _sensitivity([want_y32], [want_y])[0]

    def check(result):
        outputs, h_last, cache = result
        bound = _lstm_bound(want_y, x.shape[1]) + 16 * spread
        want_out = want_y if flags["return_sequences"] else want_h
        _fuzz.assert_close(outputs, want_out, bound, f"{cell}_forward outputs")
        _fuzz.assert_close(h_last, want_h, bound, f"{cell}_forward h_last")
        assert (cache is not None) == training

    case.check = check
    return case


def draw_rnn_backward(data, cell) -> Case:
    """As draw_lstm_backward (whose comments give the reasons), for a SimpleRNN (its cache is
    read only: a second backward gives the same gradients) or a GRU (single-use cache)."""
    args, flags = _rnn_problem(data, cell)
    forward, backward, prefixes = _rnn_ops(cell)
    case = Case(call=None, check=lambda result: None, op=f"{cell}_backward", also=prefixes)
    if not _lstm_errors(case, args, flags, RNN_CELLS[cell]):  # covered by draw_rnn_forward
        case.call = lambda: forward(**args, training=True, **flags)
        return case
    x = np.nan_to_num(np.asarray(args["x"]), nan=0.5)
    args = {**args, "x": x}
    _, _, cache = forward(**args, training=True, **flags)
    batch, time, units = x.shape[0], x.shape[1], args["recurrent_kernel"].shape[0]
    out_shape = (batch, time, units) if flags["return_sequences"] else (batch, units)
    grads_in, need_dx, reuse, bad_cache = _draw_backward_inputs(
        data, out_shape, (batch, units), ("dh_last",))
    if _set_backward_call(case, backward, cache, grads_in, need_dx, reuse, bad_cache,
                          reuse_raises=cell == "gru"):
        return case
    if not _grads_in_errors(case, grads_in, out_shape, (batch, units)):
        return case
    dy, dh_last = _output_grads64(grads_in, flags["return_sequences"])
    x_ref = _fuzz.daz(x.astype(np.float64))
    _, _, saved = _rnn_forward_ref(cell, args, flags, x_ref)
    assume(all(np.abs(v).max(initial=0.0) < 1e2 for v in saved))
    want = _rnn_grads_ref(cell, args, flags, x_ref, dy, dh_last)
    assume(all(np.abs(g).max(initial=0.0) < 1e6 for g in want))
    with np.errstate(all="ignore"):
        want32 = _rnn_grads_ref(cell, args, flags, x_ref, dy, dh_last, dtype=np.float32)
    sensitivity = _sensitivity(want32, want)

    def check(grads):
        names = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")
        present = (need_dx, True, True, args["bias"] is not None, args["h0"] is not None)
        _check_grads(f"{cell}_backward", names, grads, want, present, sensitivity, time)

    case.check = check
    return case


# --- activations (public functions, lenient) and the strict act_fwd / act_bwd kernels -------

ALL_ACTS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu")


def _act_shape(data):
    rank = data.draw(st.sampled_from((1, 2, 2, 3, 0)), label="rank")
    return tuple(data.draw(_fuzz.dims(large=False), label="dim") for _ in range(rank))


def _act_forward_bound(act, want):
    """A few ulps of the result (vector exp/erf approximations), relative; softmax rows and
    elu/gelu near their zeros also get an absolute eps."""
    return 64 * _fuzz.EPS32 * np.abs(np.nan_to_num(want)) + 4 * _fuzz.EPS32 * (
        act in ("softmax", "elu", "gelu", "sigmoid", "tanh")) + 1e-37


def draw_activations(data) -> Case:
    name = data.draw(st.sampled_from(ALL_ACTS), label="activation")
    alpha = data.draw(st.sampled_from((0.2, 0.0, 1.0, 0.5)), label="alpha")
    dtype = data.draw(st.sampled_from((F32,) * 6 + (np.float64, np.float16, np.int32, np.bool_)),
                      label="dtype")
    x = _fuzz.array(data, _act_shape(data), dtype, specials=True, label="x")
    fn = getattr(fastnn.activations, name)
    kwargs = {"leaky_relu": {"negative_slope": alpha}, "elu": {"alpha": alpha}}.get(name, {})
    case = Case(call=lambda: fn(x, **kwargs), check=None, op=name)
    with np.errstate(over="ignore"):
        x32 = np.asarray(x, dtype=F32)
    want = _fuzz.act64(name, x32, alpha if kwargs else 0.0)

    def check(result):
        _fuzz.assert_close(result, want, _act_forward_bound(name, want), name)
        assert result is not x

    case.check = check
    return case


def draw_act_fwd(data) -> Case:
    name = data.draw(st.sampled_from(ALL_ACTS), label="act")
    alpha = data.draw(st.sampled_from((0.2, 0.0, 1.0)), label="act_alpha")
    x = _operand(data, _act_shape(data), "x", ("C",) * 6 + _fuzz.LAYOUTS)
    where = data.draw(st.sampled_from(("new", "out", "in place")), label="out")
    out = None
    if _is_f32_array(x) and where == "out":
        out = _out_array(data, x.shape, (x,)) if x.ndim == 2 else np.empty(x.shape, F32)
    elif where == "in place" and _is_f32_array(x) and x.flags.writeable:
        out = x
    x_before = np.array(x) if _is_f32_array(x) else None
    act_code = _kernels.ACTIVATIONS.index(name)
    case = Case(call=lambda: _kernels.act_fwd(x, out, act=act_code, act_alpha=alpha),
                check=lambda result: None, op="act_fwd")
    if not _is_f32_array(x):
        case.expect(TypeError, "x")
        return case
    if not x.flags.c_contiguous or not x.flags.aligned:
        case.expect(ValueError, "x")
        return case
    if out is not None and not _same_buffer(out, x) and not _check_out(case, out, x.shape, (x,)):
        return case
    want = _fuzz.act64(name, x_before, alpha)

    def check(result):
        _fuzz.assert_close(result, want, _act_forward_bound(name, want), "act_fwd")
        assert out is None or result is out

    case.check = check
    return case


def draw_act_bwd(data) -> Case:
    name = data.draw(st.sampled_from(ALL_ACTS), label="act")
    alpha = data.draw(st.sampled_from((0.2, 0.0, 1.0)), label="act_alpha")
    shape = _act_shape(data)
    preact = np.asarray(_fuzz.values(data, shape, F32))
    y = np.asarray(_fuzz.act64(name, preact, alpha), F32)
    dy = _operand(data, shape, "dy", ("C",) * 6 + _fuzz.LAYOUTS)
    give_y = name != "gelu" or data.draw(st.booleans(), label="give y")
    give_preact = name == "gelu" or data.draw(st.booleans(), label="give preact")
    if _fuzz.rare(data, 40, "drop the needed input"):
        give_y, give_preact = (True, False) if name == "gelu" else (False, True)
    in_place = data.draw(st.booleans(), label="in place") and _is_f32_array(dy) and \
        dy.flags.writeable and dy.flags.c_contiguous and dy.flags.aligned
    dy_before = np.array(dy) if _is_f32_array(dy) else None
    act_code = _kernels.ACTIVATIONS.index(name)

    def call():
        return _kernels.act_bwd(y if give_y else None, dy, dy if in_place else None,
                                act=act_code, act_alpha=alpha,
                                preact=preact if give_preact else None)

    case = Case(call=call, check=lambda result: None, op="act_bwd")
    if not _is_f32_array(dy):
        case.expect(TypeError, "dy")
        return case
    if dy.shape != shape:
        case.expect(ValueError, "dy")
        case.expect(ValueError, "y")
        case.expect(ValueError, "preact")
        return case
    if not dy.flags.c_contiguous or not dy.flags.aligned:
        case.expect(ValueError, "dy")
        return case
    if (name == "gelu" and not give_preact) or (name != "gelu" and not give_y):
        case.expect(ValueError, "preact" if name == "gelu" else "y")
        return case
    want = _fuzz.act64_grad(name, preact, dy_before.astype(np.float64), alpha)

    scale = np.abs(np.nan_to_num(want)) + np.abs(np.nan_to_num(dy_before))
    if name == "softmax" and len(shape) and shape[-1]:
        # y_i (dy_i - sum_j y_j dy_j): the row sum may cancel, and it reaches every element
        y64 = np.abs(np.nan_to_num(_fuzz.act64(name, preact)))
        scale = scale + y64 * (y64 * np.abs(np.nan_to_num(dy_before))).sum(-1, keepdims=True)

    def check(result):
        bound = 64 * _fuzz.EPS32 * scale + 1e-37
        _fuzz.assert_close(result, want, bound, "act_bwd")
        assert not in_place or result is dy

    case.check = check
    return case


# --- conv2d and pooling (lenient public ops; references in tests/test_conv2d.py, test_pool2d.py)

CONV_ACTS = (None, "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu")
# NaN, signed zeros, denormals: no infinities (a Winograd or im2col transform may meet inf - inf
# where the direct sum has inf; NaN and finite values are what the contract covers).
CONV_SPECIALS = (np.nan, 0.0, -0.0, 1e-40, -3e-42)
GEOMETRY_NAMES = ("x", "kernel", "strides", "padding", "dilation", "dilation_rate", "dy",
                  "input_shape", "pool_size", "kernel_size")


def _image(data, label, channels=None, small=False):
    dims = (1, 2, 3, 5) if small else (1, 2, 3, 5, 7, 8, 13)
    batch = data.draw(st.sampled_from((1, 2, 3, 0)), label=f"{label} batch")
    h, w = (data.draw(st.sampled_from(dims), label=f"{label} {d}") for d in "hw")
    c = channels if channels is not None else data.draw(st.sampled_from((1, 2, 3, 4, 8, 17)),
                                                        label=f"{label} channels")
    return (batch, h, w, c)


def _conv_geometry(data):
    dilate = data.draw(st.booleans(), label="dilate")
    strides = 1 if dilate else data.draw(st.sampled_from((1, 2, (2, 1), (1, 3))),
                                          label="strides")
    dilation = data.draw(st.sampled_from((1, 2, (2, 1))), label="dilation") if dilate else 1
    padding = data.draw(st.sampled_from(("valid", "same", "causal")), label="padding")
    if _fuzz.rare(data, 40, "bad geometry"):
        choice = data.draw(st.sampled_from(("strides", "padding", "dilation")), label="bad")
        if choice == "strides":
            strides = data.draw(st.sampled_from((0, -1, (1, 0), "2")), label="bad strides")
        elif choice == "padding":
            padding = data.draw(st.sampled_from(("full", "", None)), label="bad padding")
        else:
            dilation = data.draw(st.sampled_from((0, (0, 1))), label="bad dilation")
    return strides, padding, dilation


def _conv_reference_or_error(case, x_shape, k_shape, strides, padding, dilation):
    """The float64 output shape, or None after recording the errors the geometry allows."""
    try:
        y = conv_reference.ref_conv2d(np.zeros(x_shape), np.zeros(k_shape), None, strides,
                                      padding, dilation)
        ok = isinstance(strides, (int, tuple)) and not isinstance(strides, bool) and \
            padding in ("valid", "same", "causal") and \
            min(np.atleast_1d(strides)) >= 1 and min(np.atleast_1d(dilation)) >= 1 and \
            x_shape[3] == k_shape[2] and all(d > 0 for d in y.shape[1:3] if x_shape[0] >= 0)
    except (ValueError, TypeError, IndexError, ZeroDivisionError):
        ok, y = False, None
    if not ok:
        for name in GEOMETRY_NAMES:
            case.expect(ValueError, name)
            case.expect(TypeError, name)
        return None
    return y.shape


def draw_conv2d(data) -> Case:
    x_shape = _image(data, "x")
    kh, kw = (data.draw(st.sampled_from((1, 2, 3, 5)), label=d) for d in ("kh", "kw"))
    filters = data.draw(st.sampled_from((1, 2, 3, 8, 17, 33)), label="filters")
    c_in = x_shape[3] + 1 if _fuzz.rare(data, 40, "channel mismatch") else x_shape[3]
    x = _operand(data, x_shape, "x")
    x = _fuzz.array(data, x_shape, specials=CONV_SPECIALS, label="x") if \
        _is_f32_array(x) and x.ndim == 4 and data.draw(st.booleans(), label="specials") else x
    kernel = _lstm_arg(data, (kh, kw, c_in, filters), "kernel")
    bias = _lstm_arg(data, (filters,), "bias", optional=True)
    strides, padding, dilation = _conv_geometry(data)
    act = data.draw(st.sampled_from(CONV_ACTS), label="activation")

    def call():
        return ops.conv2d(x, kernel, bias, strides=strides, padding=padding,
                          dilation_rate=dilation, activation=act)

    case = Case(call=call, check=lambda result: None, op="conv2d",
                also=("conv2d_fwd", "conv2d_output_shape"))
    ok = True
    for name, a in (("x", x), ("kernel", kernel), ("bias", bias)):
        # only bias may be None; x may be drawn as None ("x not an array"): a TypeError
        if (a is not None or name != "bias") and not _is_f32_array(a):
            case.expect(TypeError, name)
            ok = False
        elif a is not None and a.ndim != (1 if name == "bias" else 4):
            case.expect(ValueError, name)
            ok = False
    if not ok:
        for name in GEOMETRY_NAMES:
            case.expect(ValueError, name)
        return case
    if bias is not None and bias.shape != (kernel.shape[3],):
        case.expect(ValueError, "bias")
    if _conv_reference_or_error(case, x.shape, kernel.shape, strides, padding,
                                dilation) is None or case.errors:
        return case
    x64, k64 = _fuzz.daz(x.astype(np.float64)), kernel.astype(np.float64)
    b64 = None if bias is None else bias.astype(np.float64)

    def check(result):
        with np.errstate(all="ignore"):
            z = conv_reference.ref_conv2d(x64, k64, b64, strides, padding, dilation)
            mag = conv_reference.ref_conv2d(np.abs(np.nan_to_num(x64)), np.abs(k64), None,
                                            strides, padding, dilation)
        terms = kh * kw * kernel.shape[2]
        bound = 2 * max(terms, 1) * _fuzz.EPS32 * mag + 2 * _fuzz.EPS32 * np.abs(
            np.nan_to_num(z)) + 2 * max(terms, 1) * _fuzz.TINY32
        name = "linear" if act is None else act
        _fuzz.assert_close(result, _fuzz.act64(name, z, 0.2 if name == "leaky_relu" else
                                               1.0 if name == "elu" else 0.0),
                           _act_bound(name, 1.0, z, bound), "conv2d")

    case.check = check
    return case


def draw_conv2d_backward(data) -> Case:
    """conv2d_backward_input and conv2d_backward_filter against ref_conv2d's gradients."""
    x_shape = _image(data, "x")
    kh, kw = (data.draw(st.sampled_from((1, 2, 3)), label=d) for d in ("kh", "kw"))
    filters = data.draw(st.sampled_from((1, 2, 5, 16, 17)), label="filters")
    strides, padding, dilation = _conv_geometry(data)
    which = data.draw(st.sampled_from(("input", "filter")), label="which")
    k_shape = (kh, kw, x_shape[3], filters)
    # the geometry check's messages say "conv2d:" whichever op called it
    case = Case(call=None, check=lambda result: None, op=f"conv2d_backward_{which}",
                also=("conv2d", "conv2d_bwd_data", "conv2d_bwd_filter"))
    y_shape = _conv_reference_or_error(case, x_shape, k_shape, strides, padding, dilation)
    dy_shape = y_shape if y_shape is not None else (x_shape[0], 1, 1, filters)
    if y_shape is not None and _fuzz.rare(data, 40, "dy shape"):
        dy_shape = (dy_shape[0], dy_shape[1] + 1) + dy_shape[2:]
        case.expect(ValueError, "dy")
    x = _lstm_arg(data, x_shape, "x")
    kernel = _lstm_arg(data, k_shape, "kernel")
    dy = _lstm_arg(data, dy_shape, "dy")
    use_bias = data.draw(st.booleans(), label="use_bias")

    def call():
        if which == "input":
            return ops.conv2d_backward_input(dy, kernel, x_shape, strides=strides,
                                             padding=padding, dilation_rate=dilation)
        return ops.conv2d_backward_filter(x, dy, (kh, kw), strides=strides, padding=padding,
                                          dilation_rate=dilation, use_bias=use_bias)

    case.call = call
    args = (("dy", dy), ("kernel", kernel)) if which == "input" else (("x", x), ("dy", dy))
    for name, a in args:
        if not _is_f32_array(a):
            case.expect(TypeError, name)
        elif a.shape != {"dy": dy_shape, "kernel": k_shape, "x": x_shape}[name] or \
                (name == "dy" and dy_shape != y_shape):
            case.expect(ValueError, name)
            case.expect(ValueError, "dy")
    if case.errors:
        for name in GEOMETRY_NAMES:
            case.expect(ValueError, name)
        return case
    # the operand the op does not take (x for the input gradient, kernel for the filter
    # gradient) may be drawn defective; the gradient asked for does not depend on it
    x_ref = np.asarray(x) if which == "filter" else np.zeros(x_shape, F32)
    k_ref = np.asarray(kernel) if which == "input" else np.zeros(k_shape, F32)
    with np.errstate(all="ignore"):
        _, dx, dw, db = conv_reference.ref_conv2d(x_ref, k_ref, None, strides, padding,
                                                  dilation, dy=np.asarray(dy))

    def scale(a):
        return 1.0 + np.abs(np.nan_to_num(a)).max(initial=0.0)

    def check(result):
        if which == "input":
            terms = kh * kw * filters
            _fuzz.assert_close(result, dx, 1e-5 * terms ** 0.5 * scale(dx),
                               "conv2d_backward_input")
            return
        dkernel, dbias = result
        terms = x_shape[0] * y_shape[1] * y_shape[2]
        if (kh, kw) == (3, 3) and np.all(np.asarray(strides) == 1) and \
                np.all(np.asarray(dilation) == 1):
            # The Winograd F(2x2, 3x3) weight gradient sums transformed tiles, whose transforms
            # rely on cancellation (a - a = 0), which a NaN or inf does not obey: a non-finite
            # pixel of input channel c (or of dy's filter f) makes every tap of dkernel[..., c,
            # :] (or [..., f]) NaN, not only those that meet it (PyTorch's Winograd does too).
            spread = ~np.isfinite(x_ref).all(axis=(0, 1, 2))[:, None] | \
                ~np.isfinite(np.asarray(dy)).all(axis=(0, 1, 2))[None, :]
            dkernel = np.where(spread & np.isnan(dkernel), dw.astype(F32), dkernel)
        _fuzz.assert_close(dkernel, dw, 1e-5 * (terms + 1) ** 0.5 * scale(dw),
                           "conv2d_backward_filter dkernel")
        if use_bias:
            _fuzz.assert_close(dbias, db, 1e-5 * (terms + 1) ** 0.5 * scale(db),
                               "conv2d_backward_filter dbias")
        else:
            assert dbias is None

    case.check = check
    return case


def draw_pool2d(data) -> Case:
    kind = data.draw(st.sampled_from(("max", "avg", "max_backward", "avg_backward")),
                     label="kind")
    x_shape = _image(data, "x", small=True)
    pool = data.draw(st.sampled_from((1, 2, 3, (2, 3), (1, 2))), label="pool_size")
    strides = data.draw(st.sampled_from((None, 1, 2, (2, 1))), label="strides")
    padding = data.draw(st.sampled_from(("valid", "same")), label="padding")
    if _fuzz.rare(data, 40, "bad geometry"):
        bad = data.draw(st.sampled_from(("pool", "strides", "padding")), label="bad")
        pool = 0 if bad == "pool" else pool
        strides = (0, 1) if bad == "strides" else strides
        padding = "causal" if bad == "padding" else padding
    x = _operand(data, x_shape, "x")
    if _is_f32_array(x) and x.ndim == 4 and data.draw(st.booleans(), label="specials"):
        x = _fuzz.array(data, x_shape, specials=CONV_SPECIALS + (np.inf, -np.inf), label="x")
    case = Case(call=None, check=lambda result: None, op=f"{kind.split('_')[0]}_pool2d",
                also=("max_pool2d", "avg_pool2d", "pool2d", "max_pool2d_fwd",
                      "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd"))
    try:
        ymax, arg, yavg = conv_reference.ref_pool(np.zeros(x_shape), pool, strides, padding)
        ok = padding in ("valid", "same") and min(np.atleast_1d(pool)) >= 1 and \
            (strides is None or min(np.atleast_1d(strides)) >= 1) and \
            all(d > 0 for d in ymax.shape[1:3])
    except (ValueError, TypeError, ZeroDivisionError):
        ok = False
    if not ok:
        for name in GEOMETRY_NAMES + ("pool_size",):
            case.expect(ValueError, name)
            case.expect(TypeError, name)
    y_shape = ymax.shape if ok else (x_shape[0], 1, 1, x_shape[3])
    dy = _lstm_arg(data, y_shape, "dy") if kind.endswith("backward") else None

    def call():
        if kind == "max":
            return ops.max_pool2d(x, pool, strides, padding, return_indices=True)
        if kind == "avg":
            return ops.avg_pool2d(x, pool, strides, padding)
        if kind == "max_backward":
            return ops.max_pool2d_backward(x, dy, pool, strides, padding)
        return ops.avg_pool2d_backward(dy, x_shape, pool, strides, padding)

    case.call = call
    # the operands this kind takes; x may be drawn as None ("x not an array"): a TypeError
    for name, a, taken in (("x", x, kind != "avg_backward"), ("dy", dy, kind.endswith("backward"))):
        if not taken:
            continue
        if not _is_f32_array(a):
            case.expect(TypeError, name)
        elif a.ndim != 4 or (name == "dy" and a.shape != y_shape):
            case.expect(ValueError, name)
    if case.errors:
        return case
    xr = np.asarray(x, np.float64) if kind != "avg_backward" else np.zeros(x_shape)
    ymax, arg, yavg = conv_reference.ref_pool(_fuzz.daz(xr), pool, strides, padding)
    avg_mag = conv_reference.ref_pool(np.abs(np.nan_to_num(xr)), pool, strides, padding)[2]
    window = int(np.prod(np.broadcast_to(pool, (2,))))
    if dy is not None:
        dmax, davg = conv_reference.ref_pool_grads(x_shape, np.asarray(dy, np.float64), arg,
                                                   pool, strides, padding)

    def check(result):
        h, w = x_shape[1:3]
        if kind == "max":
            y, idx = result
            # a denormal maximum comes back as it is (a compare and select, DAZ or not)
            _fuzz.assert_close(y, ymax, 2 * _fuzz.TINY32, "max_pool2d")
            assert idx.dtype == np.int32 and ((idx >= 0) & (idx < h * w)).all(), \
                "max_pool2d: an argmax outside the image"
            finite = np.isfinite(ymax)  # ties among infinities or NaNs: any of them
            np.testing.assert_array_equal(idx[finite], arg[finite])
        elif kind == "avg":
            _fuzz.assert_close(result, yavg, 2 * (window + 1) * _fuzz.EPS32 * avg_mag +
                               2 * window * _fuzz.TINY32, "avg_pool2d")
        elif kind == "max_backward":
            _fuzz.assert_close(result, dmax, 16 * _fuzz.EPS32 * (1 + np.abs(dmax)),
                               "max_pool2d_backward")
        else:
            _fuzz.assert_close(result, davg, 16 * _fuzz.EPS32 * (1 + np.abs(davg)),
                               "avg_pool2d_backward")

    case.check = check
    return case


OPS = [
    FuzzOp("matmul", draw_matmul),
    FuzzOp("gemm", draw_gemm),
    FuzzOp("lstm_forward", draw_lstm_forward, requires=("lstm_forward",)),
    FuzzOp("lstm_backward", draw_lstm_backward, requires=("lstm_backward",)),
    FuzzOp("activations", draw_activations),
    FuzzOp("act_fwd", draw_act_fwd, requires=("act_fwd",)),
    FuzzOp("act_bwd", draw_act_bwd, requires=("act_bwd",)),
    FuzzOp("conv2d", draw_conv2d, requires=("conv2d",)),
    FuzzOp("conv2d_backward", draw_conv2d_backward, requires=("conv2d_backward_filter",)),
    FuzzOp("pool2d", draw_pool2d, requires=("max_pool2d",)),
]


# SimpleRNN and GRU run on the LSTM's driver and GEMMs; each runs a quarter of the examples
# (250 by default: the four entries take about as long as the two LSTM ones, each example
# costing some 50 draws). FASTNN_FUZZ_EXAMPLES=8000 gives each of them 2000.
RECURRENT_OPS = [
    FuzzOp(f"{cell}_{kind}", lambda data, cell=cell, draw=draw: draw(data, cell),
           requires=(f"{cell}_{kind}",))
    for cell in RNN_CELLS
    for kind, draw in (("forward", draw_rnn_forward), ("backward", draw_rnn_backward))
]


def _fuzz_one(op, data):
    if not op.available():
        pytest.skip(f"{op.name} is not in this build yet")
    with _fuzz.kernel_config(data):
        _fuzz.run_case(op.draw(data))


@pytest.mark.parametrize("op", OPS, ids=str)
@_fuzz.FUZZ
@given(data=st.data())
def test_fuzz_op(op, data):
    _fuzz_one(op, data)


@pytest.mark.parametrize("op", RECURRENT_OPS, ids=str)
@settings(_fuzz.FUZZ, max_examples=max(1, _fuzz.EXAMPLES // 4))
@given(data=st.data())
def test_fuzz_recurrent_op(op, data):
    _fuzz_one(op, data)
