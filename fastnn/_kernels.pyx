# Thin wrappers over csrc/: validate, allocate, release the GIL, call, map the status.
# Every wrapper is strict (no casts, no copies): the lenient conversion of user input happens
# once at the edge (fastnn.ops, Sequential.fit/predict, Layer.__call__).
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t, uint64_t

from fastnn._kernels cimport *

cnp.import_array()

ISA_NAMES = ("ref", "avx2", "avx512")


# --- common checks --------------------------------------------------------------------------

cdef inline int _check_f32(object x, str op, str name, int ndim) except -1:
    """x must be a float32 ndarray of rank ndim (ndim < 0: any rank)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, received {type(x).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>x) != cnp.NPY_FLOAT32:
        raise TypeError(f"{op}: {name} must be float32, received {x.dtype}")
    if ndim >= 0 and cnp.PyArray_NDIM(<cnp.ndarray>x) != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, received shape {(<object>x).shape}")
    return 0


cdef inline int _check_aligned(cnp.ndarray x, str op, str name) except -1:
    """The C kernels dereference float pointers: data at an odd byte offset (a view into a byte
    buffer) is undefined behaviour in C, so it is refused here and copied at the edge."""
    if not cnp.PyArray_ISALIGNED(x):
        raise ValueError(f"{op}: {name} must be aligned to its {cnp.PyArray_ITEMSIZE(x)}-byte "
                         f"itemsize, received data at byte offset "
                         f"{<intptr_t>cnp.PyArray_DATA(x) % cnp.PyArray_ITEMSIZE(x)}; pass a copy "
                         f"(np.require(x, requirements='CA'))")
    return 0


cdef inline int _check_c_contig(cnp.ndarray x, str op, str name) except -1:
    """x is C-contiguous and aligned (every strict wrapper calls this on every array)."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError(f"{op}: {name} must be C-contiguous, received strides {(<object>x).strides}"
                         f" for shape {(<object>x).shape}")
    _check_aligned(x, op, name)
    return 0


cdef inline int64_t _row_stride(cnp.ndarray x, str op, str name) except -1:
    """Row stride (elements) of a 2-D float32 array whose rows are contiguous (and aligned)."""
    _check_aligned(x, op, name)
    cdef int64_t rows = x.shape[0], cols = x.shape[1]
    cdef int64_t s0 = x.strides[0], s1 = x.strides[1]
    if rows == 0 or cols == 0:  # empty: NumPy may give any strides (0 after a copy)
        return cols if cols > 0 else 1
    if cols > 1 and s1 != 4:
        raise ValueError(f"{op}: {name} rows must be contiguous, received strides {(<object>x).strides}")
    if rows <= 1:
        return cols if cols > 0 else 1
    if s0 < 4 * cols or s0 % 4 != 0:
        raise ValueError(f"{op}: {name} row stride must be a positive multiple of 4 bytes "
                         f">= 4*{cols}, received strides {(<object>x).strides}")
    return s0 // 4


cdef inline void _extent(cnp.ndarray x, intptr_t *lo, intptr_t *hi) noexcept:
    """The byte range [lo, hi) an array's elements can touch."""
    cdef intptr_t start = <intptr_t>cnp.PyArray_DATA(x), end = start
    cdef int i
    for i in range(cnp.PyArray_NDIM(x)):
        if x.shape[i] == 0:
            lo[0] = start
            hi[0] = start
            return
        if x.strides[i] >= 0:
            end += (x.shape[i] - 1) * x.strides[i]
        else:
            start += (x.shape[i] - 1) * x.strides[i]
    lo[0] = start
    hi[0] = end + cnp.PyArray_ITEMSIZE(x)


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef intptr_t alo, ahi, blo, bhi
    _extent(a, &alo, &ahi)
    _extent(b, &blo, &bhi)
    return alo < bhi and blo < ahi and alo < ahi and blo < bhi


cdef cnp.ndarray _out_or_empty(object out, tuple shape, str op, tuple inputs):
    """A new C-contiguous float32 array of `shape`, or `out` after checking it fits."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    _check_f32(out, op, "out", len(shape))
    cdef cnp.ndarray o = <cnp.ndarray>out
    if (<object>o).shape != shape:
        raise ValueError(f"{op}: out must have shape {shape}, received {(<object>out).shape}")
    _check_c_contig(o, op, "out")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError(f"{op}: out must be writeable (received a read-only array)")
    for i, x in enumerate(inputs):
        if x is not None and _overlap(o, <cnp.ndarray>x):
            raise ValueError(f"{op}: out overlaps input {i} in memory; pass a separate array")
    return o


cdef inline int _raise_on_error(fnn_status st, str op) except -1:
    if st == FNN_OK:
        return 0
    msg = f"{op}: {fnn_status_str(st).decode()}"
    if st == FNN_ERR_NOMEM:
        raise MemoryError(msg)
    if st == FNN_ERR_UNSUPPORTED:
        raise NotImplementedError(msg)
    raise ValueError(msg + " (fastnn bug: the wrapper should have caught this)")


# --- configuration --------------------------------------------------------------------------

def cpu_isa():
    """Name of the best ISA this CPU supports."""
    return ISA_NAMES[<int>fnn_cpu_isa()]


def get_isa():
    return ISA_NAMES[<int>fnn_get_isa()]


def set_isa(str name):
    if name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {name!r}; valid choices: {', '.join(ISA_NAMES)}")
    cdef int level = ISA_NAMES.index(name)
    if fnn_set_isa(<fnn_isa>level) != FNN_OK:
        supported = ISA_NAMES[:<int>fnn_cpu_isa() + 1]
        raise ValueError(f"ISA {name!r} is not supported by this CPU; valid choices here: "
                         f"{', '.join(supported)}")


def set_num_threads(int n):
    if n < 1:
        raise ValueError(f"n_threads must be >= 1, received {n}")
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def set_flush_denormals(bint enabled):
    fnn_set_flush_denormals(1 if enabled else 0)


def get_flush_denormals():
    return bool(fnn_get_flush_denormals())


def openmp_info():
    """(compiled with OpenMP, _OPENMP version, running in a forked child)."""
    return bool(fnn_openmp_enabled()), fnn_openmp_version(), bool(fnn_in_forked_child())


GEMM_PATHS = ("auto", "packed", "sup", "narrow")


def gemm_set_path(str path):
    """Forces the GEMM path ('packed', 'sup', or 'narrow' when n is small enough) or restores
    'auto'. For tests and benchmarks."""
    if path not in GEMM_PATHS:
        raise ValueError(f"unknown GEMM path {path!r}; valid choices: {', '.join(GEMM_PATHS)}")
    cdef int index = GEMM_PATHS.index(path)
    fnn_gemm_set_path(<fnn_gemm_path>index)


def gemm_blocking():
    cdef fnn_gemm_blocking b = fnn_gemm_get_blocking()
    return {"mr": b.mr, "nr": b.nr, "mc": b.mc, "kc": b.kc, "nc": b.nc}


include "_k_gemm.pxi"
include "_k_eltwise.pxi"
include "_k_lstm.pxi"
include "_k_conv.pxi"
include "_k_pool.pxi"
