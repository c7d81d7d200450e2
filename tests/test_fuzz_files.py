"""Fuzzing of model files: mutated, truncated and forged files must give only
fastnn.errors.ModelFileError (or, when the mutation left the file valid, a working model):
no crash, no hang, no other exception type, and nothing is ever unpickled.

Mutations come from the registry MUTATIONS: byte-level damage (bit flips, truncation,
insertion, deletion), zip-level surgery (members removed, duplicated, renamed, swapped,
recompressed), JSON edits and .npy/.npz edits written back with a consistent checksum (so that
they reach the deeper checks instead of stopping at the SHA-256), and planted pickles.

  FASTNN_FILE_MUTATIONS=N   number of mutated files (default 500 in CI; the documented long
                            run uses 10000, see docs/reliability.md)
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import signal
import time
import warnings
import zipfile

import numpy as np

import fastnn as keras
from fastnn.errors import ModelFileError

MUTATIONS_TOTAL = int(os.environ.get("FASTNN_FILE_MUTATIONS", "500"))
LOAD_TIMEOUT_S = 20  # a load that takes longer counts as a hang


class _PickleBomb:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- the files under test ----------------------------------------------------------------------

def _model_files(tmp_path):
    """{name: (bytes, kind)}: a trained model with optimizer state, an uncompiled model and a
    weights-only file. kind says how the file is loaded."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dropout(0.2, seed=1),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    files = {}
    model.save(tmp_path / "trained.keras")
    files["trained"] = ((tmp_path / "trained.keras").read_bytes(), "model")
    raw = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(2)])
    raw.build((None, 2, 3))
    raw.save(tmp_path / "raw.keras")
    files["raw"] = ((tmp_path / "raw.keras").read_bytes(), "model")
    model.save_weights(tmp_path / "w.weights.h5")
    files["weights"] = ((tmp_path / "w.weights.h5").read_bytes(), "weights")
    return files, x


def _unpack(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("config.json")), zf.read("weights.npz")


def _pack(config, weights: bytes, *, fix_checksum=True, config_text=None,
          members=("config.json", "weights.npz"), compress=zipfile.ZIP_STORED) -> bytes:
    """A fastnn-shaped zip; fix_checksum recomputes weights_sha256 so the edit passes it."""
    if fix_checksum and isinstance(config, dict):
        config = {**config, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    text = config_text if config_text is not None else json.dumps(config)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in members:
            if name == "config.json":
                zf.writestr("config.json", text, compress_type=zipfile.ZIP_DEFLATED)
            elif name == "weights.npz":
                zf.writestr("weights.npz", weights, compress_type=compress)
            else:
                zf.writestr(name, b"extra")
    return buf.getvalue()


def _npz_arrays(weights: bytes) -> dict:
    with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _npz(arrays: dict, compress=zipfile.ZIP_STORED, raw_members: dict | None = None) -> bytes:
    """An .npz of `arrays` (np.save each), plus raw .npy member bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr, allow_pickle=arr.dtype == object)
            zf.writestr(f"{name}.npy", member.getvalue(), compress_type=compress)
        for name, data in (raw_members or {}).items():
            zf.writestr(f"{name}.npy", data, compress_type=compress)
    return buf.getvalue()


# --- mutations (rng, data, marker) -> bytes ------------------------------------------------------

def m_bit_flips(rng, data, marker):
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        pos = int(rng.integers(len(out)))
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out)


def m_byte_sets(rng, data, marker):
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        out[int(rng.integers(len(out)))] = int(rng.choice([0, 255, rng.integers(256)]))
    return bytes(out)


def m_truncate(rng, data, marker):
    return data[:int(rng.integers(len(data)))]


def m_insert(rng, data, marker):
    pos = int(rng.integers(len(data) + 1))
    return data[:pos] + rng.bytes(int(rng.integers(1, 65))) + data[pos:]


def m_delete(rng, data, marker):
    pos = int(rng.integers(len(data)))
    return data[:pos] + data[pos + int(rng.integers(1, 65)):]


def m_duplicate_range(rng, data, marker):
    pos = int(rng.integers(len(data)))
    return data[:pos] + data[pos:pos + int(rng.integers(1, 257))] + data[pos:]


def m_zip_members(rng, data, marker):
    config, weights = _unpack(data)
    choice = int(rng.integers(7))
    if choice == 0:
        return _pack(config, weights, members=("config.json",))
    if choice == 1:
        return _pack(config, weights, members=("weights.npz",))
    if choice == 2:
        return _pack(config, weights, members=("config.json", "weights.npz", "extra.bin"))
    if choice == 3:  # contents swapped
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("config.json", weights)
            zf.writestr("weights.npz", json.dumps(config))
        return buf.getvalue()
    if choice == 4:  # weights.npz deflated (fastnn writes it stored)
        return _pack(config, weights, compress=zipfile.ZIP_DEFLATED)
    if choice == 5:  # a duplicated member name
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            zf.writestr("config.json", json.dumps(config))
            zf.writestr("weights.npz", weights)
            zf.writestr("weights.npz", weights[: len(weights) // 2])
        return buf.getvalue()
    return _pack(config, weights, members=("weights.npz", "config.json"))


def m_zip_bomb(rng, data, marker):
    """weights.npz as a deflate bomb: 64 MB of zeros in about 64 KB."""
    config, _ = _unpack(data)
    return _pack(config, bytes(64 << 20), compress=zipfile.ZIP_DEFLATED)


_ODD_VALUES = (None, "", "x", "Dense", "__import__", "os.system", -1, 0, 1, 2**31, 10**12,
               1e308, float("nan"), float("inf"), True, [], [None], {}, {"class_name": "Dense"},
               [10**9, 10**9], [None, 10**6], "relu", {"max_value": 1.0}, 0.5)


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, path + (i,))


def m_json_value(rng, data, marker):
    """One JSON value replaced, removed or duplicated (checksum kept consistent)."""
    config, weights = _unpack(data)
    config = copy.deepcopy(config)
    paths = [p for p in _json_paths(config) if p]
    path = paths[int(rng.integers(len(paths)))]
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    action = int(rng.integers(4))
    if action == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == 1 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[path[-1]]))
    else:
        parent[path[-1]] = _ODD_VALUES[int(rng.integers(len(_ODD_VALUES)))]
    return _pack(config, weights, fix_checksum="weights_sha256" not in path)


def m_json_text(rng, data, marker):
    """config.json text that is not the JSON fastnn writes."""
    config, weights = _unpack(data)
    text = json.dumps({**config, "weights_sha256": hashlib.sha256(weights).hexdigest()})
    choice = int(rng.integers(6))
    if choice == 0:
        text = "[" * 100000 + "]" * 100000  # nesting deeper than the recursion limit
    elif choice == 1:
        text = text[: int(rng.integers(len(text)))]
    elif choice == 2:
        text = text.replace('"format_version": 1', '"format_version": 1e999')
    elif choice == 3:
        text = text.replace("{", '{"format": "x", ', 1)  # duplicate key
    elif choice == 4:
        return _pack(None, weights, config_text=b"\xff\xfe\x00bad utf-8")
    else:
        text = text.replace('"units": ', '"units": 1', 1)  # units 13 -> 113...
    return _pack(config, weights, config_text=text)


def m_npz_arrays(rng, data, marker):
    """weights.npz with an array changed (dtype, shape, name, missing, extra), checksum kept."""
    config, weights = _unpack(data)
    arrays = _npz_arrays(weights)
    name = sorted(arrays)[int(rng.integers(len(arrays)))]
    choice = int(rng.integers(7))
    if choice == 0:
        arrays[name] = arrays[name].astype(np.float64)
    elif choice == 1:
        arrays[name] = arrays[name].astype(np.int32)
    elif choice == 2:
        arrays[name] = arrays[name].reshape(-1)[: max(arrays[name].size - 1, 0)]
    elif choice == 3:
        arrays[name] = arrays[name][..., None]
    elif choice == 4:
        del arrays[name]
    elif choice == 5:
        arrays["w99"] = np.zeros(3, np.float32)
    else:
        arrays[name + "x"] = arrays.pop(name)
    return _pack(config, _npz(arrays))


def m_npy_header(rng, data, marker):
    """A .npy member whose header lies (shape, dtype, order) or is garbage; checksum kept."""
    config, weights = _unpack(data)
    arrays = _npz_arrays(weights)
    name = sorted(arrays)[int(rng.integers(len(arrays)))]
    member = io.BytesIO()
    np.save(member, arrays.pop(name))
    raw = member.getvalue()
    header_end = raw.index(b"\n") + 1
    header = raw[10:header_end].decode("latin1")
    choice = int(rng.integers(6))
    if choice == 0:
        header = header.replace("'shape': (", "'shape': (1000000000000, ")
    elif choice == 1:
        header = header.replace("'shape': (", "'shape': (1000000, 1000000, ")
    elif choice == 2:
        header = header.replace("<f4", "|O")
    elif choice == 3:
        header = header.replace("False", "True")
    elif choice == 4:
        header = header.replace("'shape': (", "'shape': (-5, ")
    else:
        header = "{" + "x" * (len(header) - 2) + "\n"
    header = header.ljust(len(raw[10:header_end]))[: len(raw[10:header_end]) - 1] + "\n"
    forged = raw[:10] + header.encode("latin1") + raw[header_end:]
    return _pack(config, _npz(arrays, raw_members={name: forged}))


def m_inner_bomb(rng, data, marker):
    """An .npy member deflated inside weights.npz: 64 MB of float32 zeros in about 64 KB."""
    config, weights = _unpack(data)
    arrays = _npz_arrays(weights)
    arrays[min(arrays)] = np.zeros(16 << 20, np.float32)
    return _pack(config, _npz(arrays, compress=zipfile.ZIP_DEFLATED))


def m_pickle(rng, data, marker):
    """A pickle planted in weights.npz (an object array), or weights.npz itself a pickle;
    checksum kept consistent so only the pickle refusal stands in the way."""
    import pickle

    config, weights = _unpack(data)
    arrays = _npz_arrays(weights)
    bomb = np.empty(1, dtype=object)
    bomb[0] = _PickleBomb(marker)
    if rng.integers(2):
        arrays[min(arrays)] = bomb
        return _pack(config, _npz(arrays))
    return _pack(config, pickle.dumps({"w0": _PickleBomb(marker)}))


MUTATIONS = {
    "bit_flips": m_bit_flips, "byte_sets": m_byte_sets, "truncate": m_truncate,
    "insert": m_insert, "delete": m_delete, "duplicate_range": m_duplicate_range,
    "zip_members": m_zip_members, "zip_bomb": m_zip_bomb, "json_value": m_json_value,
    "json_text": m_json_text, "npz_arrays": m_npz_arrays, "npy_header": m_npy_header,
    "inner_bomb": m_inner_bomb, "pickle": m_pickle,
}
BYTE_LEVEL = ("bit_flips", "byte_sets", "truncate", "insert", "delete", "duplicate_range")


def _plan(total: int):
    """(index, mutation name, file name): byte-level damage gets half the files."""
    names = list(MUTATIONS)
    weights = np.array([3.0 if n in BYTE_LEVEL else 1.0 for n in names])
    counts = np.maximum(1, np.round(total * weights / weights.sum())).astype(int)
    plan = []
    for name, count in zip(names, counts):
        for i in range(count):
            plan.append((i, name, ("trained", "raw", "weights")[i % 3]))
    return plan


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _load(path, kind, x):
    if kind == "weights":
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                                  keras.layers.Dropout(0.2),
                                  keras.layers.Dense(3, activation="softmax")])
        model.load_weights(path)
    else:
        model = keras.models.load_model(path)
    if model.built and model.input_shape[1:] == (6,):
        model.predict(x, verbose=0)  # a file that loads must give a working model
    return model


def test_mutated_model_files_raise_only_model_file_error(tmp_path):
    files, x = _model_files(tmp_path)
    marker = str(tmp_path / "unpickled")
    outcomes, failures, slowest = {}, [], (0.0, "")
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for index, name, file_name in _plan(MUTATIONS_TOTAL):
            data, kind = files[file_name]
            rng = np.random.default_rng([index, len(name)])
            mutated = MUTATIONS[name](rng, data, marker)
            path = tmp_path / f"m_{name}_{index}.keras"
            path.write_bytes(mutated)
            start = time.perf_counter()
            signal.alarm(LOAD_TIMEOUT_S)
            try:
                _load(path, kind, x)
                outcome = "loaded"
            except ModelFileError:
                outcome = "ModelFileError"
            except _Hang:
                outcome = "hang"
                failures.append((name, index, file_name, f"no answer in {LOAD_TIMEOUT_S} s"))
            except Exception as exc:  # noqa: BLE001 - any other type is the failure under test
                outcome = type(exc).__name__
                failures.append((name, index, file_name, repr(exc)[:300]))
            finally:
                signal.alarm(0)
            elapsed = time.perf_counter() - start
            slowest = max(slowest, (elapsed, f"{name}#{index}"))
            outcomes.setdefault(name, {}).setdefault(outcome, 0)
            outcomes[name][outcome] += 1
            if name == "pickle":
                assert outcome == "ModelFileError", f"pickle-carrying file #{index}: {outcome}"
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
    total = sum(sum(v.values()) for v in outcomes.values())
    print(f"\n{total} mutated files, slowest load {slowest[0] * 1e3:.0f} ms ({slowest[1]})")
    for name, counts in outcomes.items():
        print(f"  {name:16s} {counts}")
    assert not os.path.exists(marker), "a planted pickle was unpickled"
    kinds = {}
    for failure in failures:
        kinds.setdefault((failure[0], failure[3][:70]), failure)
    assert not failures, (f"{len(failures)} files raised something else; by kind: "
                          + "\n".join(map(str, kinds.values())))
    assert total >= MUTATIONS_TOTAL
