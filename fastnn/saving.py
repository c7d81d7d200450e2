"""Saving and loading models: one file, a zip archive with exactly two members.

- `config.json`: {"format": "fastnn.model" | "fastnn.weights", "format_version": 1,
  "fastnn_version", "model" (class_name + Sequential config), "compile" (optimizer, loss and
  metrics configs, or null), "optimizer_iterations", "weight_names", "weights_sha256"}.
- `weights.npz`: float32 arrays "w0", "w1", ... (model weights in `get_weights` order) and
  "opt0", "opt1", ... (optimizer slots), read with `np.load(allow_pickle=False)`.

Nothing is ever unpickled. A truncated, altered (checked with the SHA-256 of weights.npz and
the zip CRCs) or foreign file raises `fastnn.errors.ModelFileError`. Reading is bounded by the
file's own size: weights.npz and its .npy members must be stored uncompressed (as fastnn writes
them, so a decompression bomb is refused), every .npy header is checked against the bytes
that follow it before an array is allocated, and every weight the model built from config.json
(or the input shape it records) creates is checked against the shape of the file's array at
its position before it is allocated (`expect_weight_shapes`), so a few bytes of config saying
Dense(units=3 * 10**8) cannot make loading allocate gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tokenize
import zipfile
import zlib

import numpy as np

from fastnn import losses, optimizers
from fastnn import metrics as metrics_lib
from fastnn.errors import ModelFileError

FORMAT_MODEL = "fastnn.model"
FORMAT_WEIGHTS = "fastnn.weights"
FORMAT_VERSION = 1
_MEMBERS = ["config.json", "weights.npz"]
_MAX_CONFIG_BYTES = 16 << 20  # a config is a few KB; refuse absurd sizes before reading
# What a damaged zip or .npy can make zipfile, zlib and numpy raise while fastnn reads it:
# BadZipFile, zlib.error, EOFError; OSError (a seek before the start); NotImplementedError (an
# unknown compression method); RuntimeError (the "encrypted" flag); ValueError, SyntaxError and
# tokenize.TokenError (a .npy header numpy cannot parse); KeyError (a missing member).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError, SyntaxError, tokenize.TokenError, KeyError)
# What building a model from a damaged config can raise: wrong keys, types and values, an
# argument fastnn does not support yet, or sizes too large to allocate (units=10**12).
_CONFIG_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError,
                  NotImplementedError, OverflowError, MemoryError, RecursionError)


def _version() -> str:
    from fastnn import __version__
    return __version__


def _write(filepath, config: dict, arrays: dict, overwrite: bool) -> None:
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    weights = buf.getvalue()
    config = {**config, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr("config.json", json.dumps(config, indent=1),
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("weights.npz", weights, compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, path)  # atomic: an interrupted save never leaves a half file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_npy_members(npz, path: str) -> None:
    """Every member of weights.npz: a stored (uncompressed) little-endian float32 .npy whose
    header shape accounts for exactly the bytes that follow it. Checked before numpy allocates
    an array of the declared shape (a forged header could declare terabytes)."""
    for info in npz.zip.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{path}: weights.npz member {info.filename!r} is compressed; "
                                 f"fastnn writes weights uncompressed")
        with npz.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ModelFileError(f"{path}: {info.filename!r} has .npy version {version}")
            header_bytes = member.tell()
        if dtype.hasobject:
            raise ModelFileError(f"{path}: weights.npz holds pickled or unreadable data, which "
                                 f"fastnn refuses to load ({info.filename!r} has dtype object)")
        if dtype != np.dtype("<f4"):
            raise ModelFileError(f"{path}: array {info.filename!r} has dtype {dtype}, "
                                 f"expected float32")
        data_bytes = info.file_size - header_bytes
        if any(d < 0 for d in shape) or math.prod(shape) * 4 != data_bytes:
            raise ModelFileError(f"{path}: {info.filename!r} declares shape {shape} but holds "
                                 f"{data_bytes} bytes of data")


def _load_arrays(data: bytes, path: str) -> dict:
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path}: weights.npz is not an .npz archive")
        with npz:
            _check_npy_members(npz, path)
            return {name: npz[name] for name in npz.files}
    except ModelFileError:
        raise
    except ValueError as exc:
        raise ModelFileError(f"{path}: weights.npz holds pickled or unreadable data, which "
                             f"fastnn refuses to load ({exc})") from None
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path}: weights.npz is damaged ({exc!r})") from None


def _read(filepath, formats: tuple) -> tuple[dict, dict]:
    """(config, arrays) of a fastnn file whose format is one of `formats`."""
    path = os.fspath(filepath)
    with open(path, "rb") as file:  # a missing or unreadable path raises OSError as it is
        try:
            with zipfile.ZipFile(file) as zf:
                names = sorted(zf.namelist())
                if names != _MEMBERS:
                    raise ModelFileError(f"{path}: not a fastnn file: expected the members "
                                         f"{_MEMBERS}, found {names[:10]}")
                if zf.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                    raise ModelFileError(f"{path}: config.json is implausibly large")
                info = zf.getinfo("weights.npz")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ModelFileError(f"{path}: weights.npz is compressed; fastnn writes "
                                         f"it uncompressed")
                raw_config, weights = zf.read("config.json"), zf.read(info)
        except ModelFileError:
            raise
        except _READ_ERRORS as exc:
            raise ModelFileError(f"{path}: not a fastnn file, or truncated or damaged: it is "
                                 f"not a readable zip archive ({exc!r})") from None
    try:
        config = json.loads(raw_config.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, or an integer literal past Python's digit limit;
        # RecursionError: nesting deeper than the interpreter's recursion limit.
        raise ModelFileError(f"{path}: config.json is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") not in formats:
        found = config.get("format") if isinstance(config, dict) else None
        raise ModelFileError(f"{path}: expected a file of format {' or '.join(formats)}, "
                             f"found format {found!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format_version "
                             f"{config.get('format_version')!r}; this fastnn reads "
                             f"version {FORMAT_VERSION}")
    if config.get("weights_sha256") != hashlib.sha256(weights).hexdigest():
        raise ModelFileError(f"{path}: weights.npz does not match the checksum in "
                             f"config.json; the file was altered or damaged")
    return config, _load_arrays(weights, path)


def _numbered(arrays: dict, prefix: str, count, path: str) -> list[np.ndarray]:
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ModelFileError(f"{path}: invalid {prefix} array count {count!r}")
    if count > len(arrays):  # checked first: the loop below would run `count` times (10**12)
        raise ModelFileError(f"{path}: weights.npz lacks the arrays: config.json counts {count} "
                             f"{prefix!r} arrays, the file holds {len(arrays)} arrays in all")
    missing = [f"{prefix}{i}" for i in range(count) if f"{prefix}{i}" not in arrays]
    if missing:
        raise ModelFileError(f"{path}: weights.npz lacks the arrays {missing[:5]}")
    return [arrays[f"{prefix}{i}"] for i in range(count)]


def _set_model_weights(model, weights: list, path: str) -> None:
    expected = [w.shape for w in model.weights]
    received = [w.shape for w in weights]
    if expected != received:
        raise ModelFileError(f"{path}: the file holds {len(received)} weight arrays of shapes "
                             f"{received}, the model expects {len(expected)} of shapes "
                             f"{expected}")
    model.set_weights(weights)


def _metric_config(identifier):
    if isinstance(identifier, str):
        return identifier
    return {"class_name": type(identifier).__name__, "config": identifier.get_config()}


def _metric_from_config(entry):
    if isinstance(entry, str):
        return entry
    cls = getattr(metrics_lib, str(entry.get("class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, metrics_lib.Metric)):
        raise ModelFileError(f"unknown metric class {entry.get('class_name')!r}")
    return cls(**entry.get("config", {}))


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Write architecture, weights, compile arguments and optimizer state to `filepath`."""
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    compile_config, iterations = None, 0
    if model.compiled:
        compile_config = {"optimizer": optimizers.serialize(model.optimizer),
                          "loss": losses.serialize(model.loss),
                          "metrics": [_metric_config(m) for m in model._metric_ids]}
        state = model.optimizer.get_state() if model.optimizer.built else []
        arrays.update((f"opt{i}", s) for i, s in enumerate(state))
        iterations = model.optimizer.iterations
    config = {"format": FORMAT_MODEL, "format_version": FORMAT_VERSION,
              "fastnn_version": _version(),
              "model": {"class_name": type(model).__name__, "config": model.get_config()},
              "compile": compile_config, "optimizer_iterations": iterations,
              "weight_count": len(model.weights),
              "optimizer_state_count": sum(k.startswith("opt") for k in arrays)}
    _write(filepath, config, arrays, overwrite)


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True):
    """A model saved by `save()`, compiled as it was (if `compile`), optimizer state included.

    Raises:
        ModelFileError: the file is truncated, altered, foreign or inconsistent.
    """
    from fastnn.models.sequential import Sequential

    path = os.fspath(filepath)
    config, arrays = _read(path, (FORMAT_MODEL,))
    weights = _numbered(arrays, "w", config.get("weight_count"), path)
    try:
        model_entry = config["model"]
        if model_entry["class_name"] != "Sequential":
            raise ValueError(f"unknown model class {model_entry['class_name']!r}")
        # Each weight the config makes is checked against the file's before it is allocated.
        model = Sequential.from_config(model_entry["config"], custom_objects,
                                       weight_shapes=[w.shape for w in weights])
        compile_config = config.get("compile") if compile else None
        if compile_config is not None:
            model.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                          loss=losses.get(compile_config["loss"]),
                          metrics=[_metric_from_config(m) for m in compile_config["metrics"]])
    except _CONFIG_ERRORS as exc:
        raise ModelFileError(f"{path}: invalid model configuration ({exc!r})") from None
    _set_model_weights(model, weights, path)
    state = _numbered(arrays, "opt", config.get("optimizer_state_count", 0), path)
    if compile_config is not None and state:
        model._build_optimizer()
        try:
            model.optimizer.set_state(state, int(config.get("optimizer_iterations", 0)))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ModelFileError(f"{path}: optimizer state does not fit the model "
                                 f"({exc})") from None
    return model


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Write only the model's weights (and its input shape) to `filepath`."""
    if not model.built:
        raise ValueError("save_weights: the model has no weights yet; build or fit it first")
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    config = {"format": FORMAT_WEIGHTS, "format_version": FORMAT_VERSION,
              "fastnn_version": _version(), "weight_count": len(arrays),
              "build_input_shape": [None, *model._input_shape]}
    _write(filepath, config, arrays, overwrite)


def load_weights(model, filepath) -> None:
    """Load the weights of a `save_weights` or `save` file into `model` (built if needed).

    Raises:
        ModelFileError: damaged or foreign file, or weights that do not fit the model.
    """
    from fastnn.models.sequential import expect_weight_shapes

    path = os.fspath(filepath)
    config, arrays = _read(path, (FORMAT_WEIGHTS, FORMAT_MODEL))
    weights = _numbered(arrays, "w", config.get("weight_count"), path)
    if not model.built:
        shape = config.get("build_input_shape")
        if shape is None:  # a model file: the shape is in the model's config
            entry = config.get("model")
            entry = entry.get("config") if isinstance(entry, dict) else None
            shape = entry.get("build_input_shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not model.layers:
            raise ModelFileError(f"{path}: cannot build the model: the file records no input "
                                 f"shape (or the model has no layers)")
        try:
            with expect_weight_shapes(model.layers, [w.shape for w in weights]):
                model.build(tuple(shape))
        except _CONFIG_ERRORS as exc:
            raise ModelFileError(f"{path}: cannot build the model for the recorded input "
                                 f"shape {shape} ({exc})") from None
    _set_model_weights(model, weights, path)
