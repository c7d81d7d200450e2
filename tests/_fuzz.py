"""Shared machinery of the fuzz tests (tests/test_fuzz_*.py).

Each fuzz test draws an example (shapes, layouts, dtypes, values), runs the public call and
checks that it either returns the reference result (within a tolerance) or raises a clean
exception: TypeError or ValueError whose message starts with the op's name and names the
offending argument. Any other exception, a crash or a wrong result fails the test.

Example counts (hypothesis, derandomized, so every run sees the same examples):
  FASTNN_FUZZ_EXAMPLES=N   examples per fuzzed op (default 1000, the CI profile);
                           e.g. FASTNN_FUZZ_EXAMPLES=20000 for the long run (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers as _providers

import fastnn
from fastnn import _config, _kernels

# Hypothesis (6.170, pinned in pyproject) draws about 5% of its numbers from the literals of
# every "local" module imported so far: the test files, and fastnn's own sources when the
# tests run in the source tree but not against the installed wheel (CI). Derandomized examples
# then changed with any edit of a literal anywhere, with the set of test files collected, and
# between a developer's run and CI's. Local constants are switched off so that the examples
# depend on the strategies alone (hypothesis's built-in constants still apply). A private hook
# of the pinned version: if it moves, this fails loudly rather than silently drifting.
assert callable(_providers._get_local_constants)
_NO_LOCAL_CONSTANTS = _providers.Constants(
    integers=_providers.SortedSet(), floats=_providers.SortedSet(key=_providers.float_to_int),
    bytes=_providers.SortedSet(), strings=_providers.SortedSet())
_providers._get_local_constants = lambda: _NO_LOCAL_CONSTANTS


def _examples() -> int:
    raw = os.environ.get("FASTNN_FUZZ_EXAMPLES", "1000")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"FASTNN_FUZZ_EXAMPLES must be an int, received {raw!r}") from None
    if n < 1:
        raise ValueError(f"FASTNN_FUZZ_EXAMPLES must be >= 1, received {n}")
    return n


EXAMPLES = _examples()

# One settings object for every fuzz test: derandomized (the same examples on every run and
# machine), no example database, no deadline (CI machines are noisy), health checks off (the
# strategies draw arrays through st.data(), which hypothesis considers slow).
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    print_blob=True,
)

F32 = np.float32
EPS32 = float(np.finfo(np.float32).eps)

# Shapes: 0, 1, small primes, and sizes around every register-tile edge of the ISAs.
SMALL_DIMS = (0, 1, 2, 3, 5, 7, 11, 13)
EDGE_DIMS = (4, 6, 8, 12, 15, 16, 17, 31, 32, 33, 97)
LARGE_DIMS = (127, 257)  # past the k-block (kc = 256)


def dims(large: bool = True):
    """A dimension: mostly small (0, 1, primes), sometimes at a tile edge or past kc."""
    choices = [st.sampled_from(SMALL_DIMS), st.sampled_from(EDGE_DIMS)]
    if large:
        choices.append(st.sampled_from(LARGE_DIMS))
    return st.one_of(*choices)


# Layouts of an input array. "broadcast" repeats values along one axis with stride 0,
# "unaligned" puts the data at byte offset 1, 2 or 3 of a uint8 buffer.
LAYOUTS = ("C", "F", "sliced", "reversed", "broadcast", "unaligned")

# Dtypes every float32-only kernel must refuse with TypeError.
WRONG_DTYPES = (np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64)

# Special values sprinkled into inputs: NaN, infinities, signed zeros, denormals, and a big
# value whose square still fits in float32 (so float32 and float64 agree on overflow).
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3e-42, 1e15)


def values(data, shape, dtype=np.float32, specials=False, scale: float = 1.0) -> np.ndarray:
    """A C-ordered array of `shape` and `dtype` with random values (standard normal times
    `scale` for floats), plus, when `specials` (True: SPECIALS, or a tuple of values), up to
    three special values at random positions."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    v = np.asarray(rng.standard_normal(shape) * scale)  # an array for shape () too
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return v > 0
    if dtype.kind in "iu":
        return np.abs(v * 10).astype(dtype) if dtype.kind == "u" else (v * 10).astype(dtype)
    if specials and v.size:
        count = data.draw(st.sampled_from((0, 0, 0, 1, 2, 3)), label="specials")
        for _ in range(count):
            pos = data.draw(st.integers(0, v.size - 1))
            choices = SPECIALS if specials is True else specials
            v.flat[pos] = data.draw(st.sampled_from(choices), label="special")
    with np.errstate(over="ignore"):
        return v.astype(dtype)


def lay_out(data, v: np.ndarray, layout: str) -> np.ndarray:
    """An array equal to v (constant along one axis for "broadcast") in the given layout."""
    if layout == "C" or v.ndim == 0:
        return np.ascontiguousarray(v)
    if layout == "F":
        return np.asfortranarray(v)
    axis = data.draw(st.integers(0, v.ndim - 1), label="axis")
    if layout == "sliced":
        step = data.draw(st.sampled_from((2, 3)), label="step")
        shape = list(v.shape)
        shape[axis] *= step
        base = np.zeros(shape, v.dtype)
        index = (slice(None),) * axis + (slice(None, None, step),)
        base[index] = v
        return base[index]
    if layout == "reversed":
        return np.flip(np.flip(v, axis).copy(), axis)
    if layout == "broadcast":
        one = np.ascontiguousarray(np.take(v, [0], axis=axis)) if v.shape[axis] else \
            np.zeros(v.shape[:axis] + (1,) + v.shape[axis + 1:], v.dtype)
        return np.broadcast_to(one, v.shape)
    if layout == "unaligned":
        if v.dtype.itemsize == 1:
            return np.ascontiguousarray(v)
        offset = data.draw(st.sampled_from((1, 2, 3)), label="offset")
        buf = np.zeros(v.nbytes + offset + 8, np.uint8)
        x = buf[offset:offset + v.nbytes].view(v.dtype).reshape(v.shape)
        x[...] = v
        return x
    raise ValueError(f"unknown layout {layout!r}")


def array(data, shape, dtype=np.float32, *, specials=False, layouts=LAYOUTS,
          readonly=True, label="x", scale: float = 1.0) -> np.ndarray:
    """A random array of `shape`/`dtype` in a random layout, sometimes read-only."""
    layout = data.draw(st.sampled_from(layouts), label=f"{label} layout")
    x = lay_out(data, values(data, shape, dtype, specials, scale), layout)
    if readonly and x.flags.writeable and rare(data, 4, f"{label} readonly"):
        x.flags.writeable = False
    return x


def rare(data, one_in: int, label: str) -> bool:
    """True about once in `one_in` draws. Hypothesis favours (and shrinks towards) 0, so the
    rare branch is the top value and failing examples shrink towards the common one."""
    return data.draw(st.integers(0, one_in - 1), label=label) == one_in - 1


def maybe_wrong_dtype(data, label: str, one_in: int = 8):
    """float32 most of the time; one of WRONG_DTYPES about once in `one_in` draws."""
    if rare(data, one_in, f"{label} wrong dtype"):
        return data.draw(st.sampled_from(WRONG_DTYPES), label=f"{label} dtype")
    return np.float32


# --- kernel configuration per example -------------------------------------------------------

@contextlib.contextmanager
def kernel_config(data, paths: bool = True):
    """Runs the example on a drawn ISA, thread count and (optionally) forced GEMM path, and
    restores the previous settings afterwards."""
    isa = data.draw(st.sampled_from(_config.available_isas()), label="isa")
    threads = data.draw(st.sampled_from((1, 2, 4)), label="threads")
    path = data.draw(st.sampled_from(_kernels.GEMM_PATHS), label="gemm path") if paths \
        else "auto"
    before_isa, before_threads = fastnn.get_isa(), fastnn.get_num_threads()
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    _kernels.gemm_set_path(path)
    try:
        yield
    finally:
        _kernels.gemm_set_path("auto")
        fastnn.set_isa(before_isa)
        fastnn.set_num_threads(before_threads)


# --- outcomes --------------------------------------------------------------------------------

@dataclass
class Case:
    """One drawn example: the call, the clean errors it may raise (empty: it must succeed),
    and the check of its result."""

    call: Callable[[], object]
    check: Callable[[object], None]
    errors: set = field(default_factory=set)  # {(TypeError | ValueError, argument name)}
    op: str = ""  # the name every error message starts with
    also: tuple = ()  # other accepted message prefixes (e.g. a loss validating labels)

    def expect(self, exc_type, name: str) -> None:
        self.errors.add((exc_type, name))


def names_argument(message: str, name: str) -> bool:
    """Whether an error message names `name` as a word (`x`, `x.shape`, `x=`...)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def run_case(case: Case) -> None:
    """Runs a Case: a clean error it allows, or a result its check accepts; nothing else."""
    try:
        result = case.call()
    except (TypeError, ValueError) as exc:
        if not case.errors:
            raise AssertionError(f"{case.op}: valid input raised {exc!r}") from exc
        message = str(exc)
        ok = any(isinstance(exc, exc_type) and names_argument(message, name)
                 for exc_type, name in case.errors)
        assert ok, (f"{case.op}: raised {type(exc).__name__}({message!r}); expected one of "
                    f"{sorted((t.__name__, n) for t, n in case.errors)}")
        if case.op:
            assert message.startswith((case.op, *case.also)), \
                f"{case.op}: the message does not start with the op's name: {message!r}"
        event(f"clean {type(exc).__name__}")
        return
    assert not case.errors, (f"{case.op}: expected one of "
                             f"{sorted((t.__name__, n) for t, n in case.errors)}, "
                             f"but the call succeeded")
    case.check(result)
    event("reference result")


def assert_close(got, want, bound, what: str = "result") -> None:
    """got (float32) equals want (float64) within the elementwise bound, with NaN where want
    is NaN and the same infinities."""
    got = np.asarray(got)
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}, expected float32"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    want32 = want.astype(np.float32)  # float64 results too large for float32 become inf
    nan_got, nan_want = np.isnan(got), np.isnan(want32)
    assert np.array_equal(nan_got, nan_want), (
        f"{what}: NaN at {np.argwhere(nan_got != nan_want)[:5].tolist()} differs "
        f"(got {got[nan_got != nan_want][:5]}, want {want[nan_got != nan_want][:5]})")
    inf_want = np.isinf(want32)
    assert np.array_equal(got[inf_want], want32[inf_want]), f"{what}: infinities differ"
    finite = ~nan_want & ~inf_want
    assert not np.isinf(got[finite]).any(), f"{what}: inf where the reference is finite"
    err = np.abs(got[finite].astype(np.float64) - want[finite])
    limit = np.broadcast_to(bound, want.shape)[finite]
    if fastnn.get_flush_denormals():  # a result below 2^-126 may be flushed to zero, or not
        limit = limit + TINY32        # (a copy such as max-pool keeps it)
    if err.size and not (err <= limit).all():
        worst = int(np.argmax(err - limit))
        raise AssertionError(f"{what}: error {err[worst]:.3g} > bound {limit[worst]:.3g} "
                             f"(got {got[finite][worst]!r}, want {want[finite][worst]!r}, "
                             f"shape {want.shape})")


TINY32 = float(np.finfo(np.float32).tiny)  # 2^-126, the smallest normal float32


def gemm_bound(a64: np.ndarray, b64: np.ndarray, k: int) -> np.ndarray:
    """Error bound of a float32 product op(a) @ op(b) reduced over k: 2 k eps (|a| @ |b|)
    plus room for underflow, from the finite parts of the operands: each of the k terms may be
    flushed to zero (fastnn.set_flush_denormals, on by default), each below 2^-126."""
    abs_a = np.where(np.isfinite(a64), np.abs(a64), 0.0)
    abs_b = np.where(np.isfinite(b64), np.abs(b64), 0.0)
    return 2.0 * max(k, 1) * EPS32 * (abs_a @ abs_b) + 2 * max(k, 1) * TINY32


def daz(x64: np.ndarray) -> np.ndarray:
    """x as the kernels read it: denormals as (signed) zero while fastnn flushes denormals
    (the default; so inf * 1e-40 is inf * 0 = NaN there), unchanged in IEEE mode."""
    if not fastnn.get_flush_denormals():
        return x64
    return np.where(np.abs(x64) < TINY32, x64 * 0.0, x64)


def matmul64(a64: np.ndarray, b64: np.ndarray) -> np.ndarray:
    """a @ b in float64 by plain loops (einsum, no BLAS), so NaN and inf propagate as IEEE
    says term by term (BLAS implementations may skip zeros and lose 0 * inf = NaN), on the
    operands as the kernels read them (daz)."""
    a64, b64 = daz(a64), daz(b64)
    with np.errstate(all="ignore"):
        if a64.shape[1] == 0:
            return np.zeros((a64.shape[0], b64.shape[1]))
        if np.isfinite(a64).all() and np.isfinite(b64).all():
            return a64 @ b64
        return np.einsum("ik,kj->ij", a64, b64)


# erfc, not 1 + erf: for negative z, 1 + erf(z) cancels to 0 long before Phi(z) does
# (gelu(-9) = -1.0e-18, not -0).
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def act64(name: str, z: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """Activation in float64, propagating NaN as IEEE comparisons do (relu(NaN) is NaN)."""
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        if name == "linear":
            return z.copy()
        if name == "relu":
            return np.where(z < 0, 0.0, z)
        if name == "leaky_relu":
            return np.where(z < 0, alpha * z, z)
        if name == "elu":
            return np.where(z > 0, z, alpha * np.expm1(z))
        if name == "sigmoid":  # exp of -|z| only: no cancellation for very negative z
            e = np.exp(-np.abs(z))
            return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        if name == "tanh":
            return np.tanh(z)
        if name == "gelu":  # its limit 0 at -inf, not -inf * 0 = NaN (as fastnn defines it)
            return np.where(z == -np.inf, -0.0, 0.5 * z * _erfc(-z / math.sqrt(2.0)))
        if name == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True, initial=-np.inf))
            return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"act64: unknown activation {name!r}")


def act64_grad(name: str, z: np.ndarray, dy: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """dL/dz given dL/dy for y = act(z), in float64."""
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        if name == "linear":
            return dy.copy()
        if name == "relu":
            return np.where(z > 0, dy, 0.0)
        if name == "leaky_relu":
            return np.where(z > 0, dy, alpha * dy)
        if name == "elu":
            return np.where(z > 0, dy, alpha * np.exp(z) * dy)
        if name == "sigmoid":
            s = act64("sigmoid", z)
            return s * (1.0 - s) * dy
        if name == "tanh":
            return (1.0 - np.tanh(z) ** 2) * dy
        if name == "gelu":
            pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
            return (0.5 * _erfc(-z / math.sqrt(2.0)) + z * pdf) * dy
        if name == "softmax":
            y = act64("softmax", z)
            return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"act64_grad: unknown activation {name!r}")


# --- registry --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FuzzOp:
    """An op under test: `draw(data) -> Case` builds one example. `requires` names a
    fastnn.ops / fastnn._kernels attribute that must exist (ops still on their way to main are
    skipped rather than failing)."""

    name: str
    draw: Callable[[object], Case]
    requires: tuple = ()

    def available(self) -> bool:
        return all(hasattr(fastnn.ops, r) or hasattr(_kernels, r) for r in self.requires)

    def __str__(self) -> str:
        return self.name
