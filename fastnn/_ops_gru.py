"""GRU functional forms (re-exported by fastnn.ops): Keras's GRU with reset_after=True, gates
ordered z, r, h. Lenient at the edge, as the LSTM's (fastnn/_ops_lstm.py)."""

from __future__ import annotations

from fastnn import _kernels
from fastnn import _ops_lstm as _lstm

__all__ = ["GRUCache", "GRUGrads", "gru_backward", "gru_forward"]


class GRUCache(_lstm._SingleUseCache):
    """What gru_backward needs from a training forward. Single use: the backward kernel
    overwrites the saved gates (and h_h) with gradients, so a cache serves one backward."""

    __slots__ = ("args", "kwargs", "return_sequences", "y")  # gru_bwd's arguments, outputs


class GRUGrads(_lstm.SimpleRNNGrads):
    """Gradients of a GRU's inputs (dbias (2, 3*units)); dx, dbias, dh0 are None when not
    computed."""


def gru_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    *,
    training: bool = False,
    return_sequences: bool = True,
    go_backwards: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    recurrent_mask=None,
):
    """Runs a GRU (reset_after=True) over whole sequences:
    z = ract(x W_z + b_z + h U_z + rb_z), r = ract(x W_r + b_r + h U_r + rb_r),
    hh = act(x W_h + b_h + r * (h U_h + rb_h)), h_t = z * h_{t-1} + (1 - z) * hh.

    Args: as lstm_forward's, except kernel (features, 3*units) and recurrent_kernel
        (units, 3*units), columns z | r | h, bias (2, 3*units) (input bias, recurrent bias)
        or None, and no c0.

    Returns:
        (outputs, h_last, cache); cache is a GRUCache when training, else None.

    Raises:
        TypeError: an array is not float32. ValueError: shapes disagree or an activation is
        not supported.
    """
    op = "gru_forward"
    codes = {
        "activation": _lstm._act_code(activation, op, "activation"),
        "recurrent_activation": _lstm._act_code(recurrent_activation, op, "recurrent_activation"),
        "go_backwards": go_backwards,
    }
    inputs, (bias, h0, h_mask) = _lstm._inputs(
        op, x, kernel, recurrent_kernel, bias=bias, h0=h0, recurrent_mask=recurrent_mask
    )
    y, h_last, gates, hn_seq = _kernels.gru_fwd(
        *inputs,
        bias,
        h0,
        h_mask=h_mask,
        training=training,
        return_sequences=return_sequences,
        **codes,
    )
    cache = None
    if training:
        args = (*inputs, h0, y, gates, hn_seq)
        needs = {"need_dbias": bias is not None, "need_dh0": h0 is not None}
        kwargs = {"h_mask": h_mask, **needs, **codes}
        cache = GRUCache(args=args, kwargs=kwargs, return_sequences=return_sequences, y=y)
    return (y if return_sequences else h_last), h_last, cache


def gru_backward(cache: GRUCache, d_outputs=None, dh_last=None, *, need_dx: bool = True):
    """Backward through time of gru_forward(training=True).

    Args: as lstm_backward's, with the GRUCache of that forward (consumed: it serves one
        backward) and no dc_last.

    Returns:
        GRUGrads(dx, dkernel, drecurrent_kernel, dbias, dh0); dbias is None without a bias,
        dh0 is None where the forward had no h0.

    Raises:
        TypeError: cache is not a GRUCache or a gradient is not float32. ValueError: a shape
        is wrong or the cache was already used.
    """
    op = "gru_backward"
    _lstm._check_cache(op, cache, GRUCache, "gru_forward")
    dy, dh_last = _lstm._output_grads(op, cache, d_outputs, dh_last)
    grads = _kernels.gru_bwd(*cache.args, dy, dh_last, need_dx=need_dx, **cache.kwargs)
    cache.consumed = True
    return GRUGrads(*grads)
