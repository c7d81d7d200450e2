"""Reader for IDX files, the format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, each dimension as a big-endian
uint32, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from fastnn.errors import DataFileError

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_exact(stream, size: int, path: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise DataFileError(f"{path}: truncated IDX file: expected {size} bytes of {what}, "
                            f"found {len(data)}")
    return data


def _parse(stream, path: str) -> np.ndarray:
    magic = _read_exact(stream, 4, path, "header")
    if magic[:2] != b"\x00\x00" or magic[2] not in _TYPES:
        raise DataFileError(f"{path}: not an IDX file: expected 00 00, a type code in "
                            f"{[hex(t) for t in _TYPES]} and a rank; found bytes "
                            f"{magic.hex(' ')}")
    dtype, ndim = _TYPES[magic[2]], magic[3]
    if ndim == 0:
        raise DataFileError(f"{path}: IDX file declares 0 dimensions")
    dims = tuple(int(d) for d in np.frombuffer(_read_exact(stream, 4 * ndim, path,
                                                            "dimensions"), ">u4"))
    size = math.prod(dims) * dtype.itemsize
    data = stream.read(size + 1)
    if len(data) < size:
        raise DataFileError(f"{path}: truncated IDX file: the header declares shape {dims} "
                            f"({size} bytes of data), found {len(data)} bytes")
    if len(data) > size:
        raise DataFileError(f"{path}: IDX file has trailing bytes after the declared shape "
                            f"{dims}")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed or not; detected by content).

    Raises:
        DataFileError: not an IDX file, truncated, trailing bytes, or damaged gzip data.
        FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            return _parse(stream, path)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFileError(f"{path}: damaged or truncated gzip data ({exc})") from None
