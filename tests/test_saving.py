"""Saving: round trips, and truncated / altered / foreign / pickle-carrying files that must
raise fastnn.errors.ModelFileError without ever unpickling anything."""

import copy
import hashlib
import io
import json
import pickle
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn as keras
from fastnn.errors import ModelFileError

X = np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, 64)


def _trained(tmp_path=None):
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="relu", kernel_regularizer="l2"),
        keras.layers.Dropout(0.1, seed=3),
        keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseCategoricalAccuracy(name="sca")])
    model.fit(X, Y, epochs=2, verbose=0)
    return model


def test_model_roundtrip_keeps_predictions_compile_and_optimizer_state(tmp_path):
    model = _trained()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert loaded.get_config() == model.get_config()
    assert type(loaded.loss) is type(model.loss) and loaded.metrics_names == model.metrics_names
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 4
    for m in (model, loaded):  # same dropout draws for the next step
        m.layers[1]._rng = np.random.default_rng(0)
        m.train_on_batch(X, Y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not keras.models.load_model(path, compile=False).compiled


def test_uncompiled_and_weights_only(tmp_path):
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    model.build((None, 3))
    model.save(tmp_path / "raw.keras")
    assert not keras.models.load_model(tmp_path / "raw.keras").compiled
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    fresh.load_weights(tmp_path / "w.weights.h5")  # builds from the recorded input shape
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    other.load_weights(tmp_path / "raw.keras")  # a full model file holds weights too
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        model.save(tmp_path / "raw.keras", overwrite=False)
    with pytest.raises(ValueError, match="save_weights: the model has no weights yet"):
        keras.Sequential([keras.layers.Dense(1)]).save_weights(tmp_path / "x")


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _parts(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json")), zf.read("weights.npz")


def _rewrite(path, config, weights, fix_checksum=True):
    if fix_checksum:
        config = {**config, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    _write_zip(path, {"config.json": json.dumps(config), "weights.npz": weights})


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.keras"
    _trained().save(path)
    return path


@pytest.mark.parametrize("keep", [0, 10, 200, 0.5, -30])
def test_truncated_files(saved, keep):
    data = saved.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    saved.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="not a fastnn file"):
        keras.models.load_model(saved)


def test_flipped_byte_is_detected(saved):
    data = bytearray(saved.read_bytes())
    _config, weights = _parts(saved)
    offset = bytes(data).index(weights[-200:])  # inside the stored weights
    data[offset] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        keras.models.load_model(saved)


@pytest.mark.parametrize("alter,match", [
    (lambda c, w: (c, w[:-1] + bytes([w[-1] ^ 1]), False), "does not match the checksum"),
    (lambda c, w: ({**c, "format": "keras"}, w, True), "expected a file of format fastnn.model"),
    (lambda c, w: ({**c, "format_version": 2}, w, True), "unsupported format_version 2"),
    (lambda c, w: ({**c, "weight_count": 99}, w, True), "lacks the arrays"),
    (lambda c, w: ({**c, "weight_count": "4"}, w, True), "invalid w array count"),
    (lambda c, w: ({**c, "optimizer_state_count": 1}, w, True), "optimizer state does not fit"),
    (lambda c, w: (_set_units(c, 9), w, True),
     (r"layer 'dense(_\d+)?' \(Dense\) would create its weight 'kernel' of shape \(5, 9\), "
      r"but the weights to load have shape \(5, 8\) there \(weight 0 of 4\)")),
    (lambda c, w: ({**c, "weight_count": 3}, w, True),
     (r"layer 'dense(_\d+)?' \(Dense\) would create its weight 'bias' of shape \(3,\), "
      r"but the weights to load hold only 3 arrays")),
    (lambda c, w: (_set_class(c, "Conv9D"), w, True), "Unknown layer class 'Conv9D'"),
    (lambda c, w: ({**c, "model": {"class_name": "Functional"}}, w, True), "unknown model"),
    (lambda c, w: (_set_metric(c), w, True), "unknown metric class 'os'"),
    (lambda c, w: (c, _npz(w0=np.zeros(2)), True), "has dtype float64, expected float32"),
    (lambda c, w: (c, np.zeros(3, np.float32).tobytes(), True), "holds pickled or unreadable"),
])
def test_altered_files(saved, alter, match):
    config, weights = _parts(saved)
    config, weights, fix = alter(config, weights)
    _rewrite(saved, config, weights, fix_checksum=fix)
    with pytest.raises(ModelFileError, match=match):
        keras.models.load_model(saved)


def _set_units(config, units):
    config["model"]["config"]["layers"][0]["config"]["units"] = units
    return config


def _set_class(config, name):
    config["model"]["config"]["layers"][0]["class_name"] = name
    return config


def _set_metric(config):
    config["compile"]["metrics"] = [{"class_name": "os", "config": {}}]
    return config


def test_bad_json_and_npy_member(saved):
    config, weights = _parts(saved)
    _write_zip(saved, {"config.json": b"{not json", "weights.npz": weights})
    with pytest.raises(ModelFileError, match="config.json is not valid JSON"):
        keras.models.load_model(saved)
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, np.float32))
    _rewrite(saved, config, buf.getvalue())
    with pytest.raises(ModelFileError, match="weights.npz is not an .npz archive"):
        keras.models.load_model(saved)
    _rewrite(saved, config, _npz(w0=np.zeros(2, np.float32))[:-40])
    with pytest.raises(ModelFileError, match="weights.npz is damaged"):
        keras.models.load_model(saved)


@pytest.mark.parametrize("content", [
    b"", b"\x00" * 100, pickle.dumps({"weights": [1, 2]}), _npz(a=np.zeros(2)),
])
def test_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.keras"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        keras.models.load_model(path)


def test_foreign_zip_such_as_a_keras_file(tmp_path):
    path = tmp_path / "model.keras"
    _write_zip(path, {"config.json": "{}", "metadata.json": "{}", "model.weights.h5": b""})
    with pytest.raises(ModelFileError, match="not a fastnn file: expected the members"):
        keras.models.load_model(path)
    _write_zip(path, {"config.json": "[1, 2]", "weights.npz": b""})
    with pytest.raises(ModelFileError, match="found format None"):
        keras.models.load_model(path)


class _Exploit:
    """Unpickling this would create a marker file; fastnn must never do it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_carrying_files_are_refused_and_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"
    config, _ = _parts(saved)
    payload = np.empty(1, dtype=object)
    payload[0] = _Exploit(str(marker))
    buf = io.BytesIO()
    np.savez(buf, w0=payload)
    _rewrite(saved, config, buf.getvalue())
    with pytest.raises(ModelFileError, match="pickled or unreadable data"):
        keras.models.load_model(saved)
    _rewrite(saved, config, pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(ModelFileError, match="pickled or unreadable data"):
        keras.models.load_model(saved)
    assert not marker.exists()


def test_custom_layers_need_custom_objects(tmp_path):
    class Scale(keras.layers.Activation):
        def __init__(self, **kwargs):
            kwargs.pop("activation", None)
            super().__init__("linear", **kwargs)
    model = keras.Sequential([keras.Input((2,)), Scale()])
    model.save(tmp_path / "c.keras")
    with pytest.raises(ModelFileError, match="Unknown layer class 'Scale'"):
        keras.models.load_model(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras", custom_objects={"Scale": Scale})
    assert isinstance(loaded.layers[0], Scale)


def test_load_weights_errors(tmp_path):
    model = _trained()
    model.save_weights(tmp_path / "w")
    wrong = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ModelFileError, match=r"holds 4 weight arrays .* model expects 2"):
        wrong.load_weights(tmp_path / "w")
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    unbuilt.save(tmp_path / "u.keras")
    with pytest.raises(ModelFileError, match="records no input shape"):
        keras.Sequential([keras.layers.Dense(2)]).load_weights(tmp_path / "u.keras")
    config, weights = _parts(tmp_path / "w")
    _rewrite(tmp_path / "w", {**config, "build_input_shape": [None, 0]}, weights)
    with pytest.raises(ModelFileError, match="cannot build the model for the recorded"):
        keras.Sequential([keras.layers.Dense(2)]).load_weights(tmp_path / "w")
    with pytest.raises(ModelFileError, match="expected a file of format fastnn.model"):
        keras.models.load_model(tmp_path / "w")  # a weights file is not a model file


def test_oversized_config_is_refused(saved):
    config, weights = _parts(saved)
    config["padding"] = "x" * (17 << 20)
    _rewrite(saved, config, weights)
    with pytest.raises(ModelFileError, match="implausibly large"):
        keras.models.load_model(saved)


HUGE = 3 * 10**8  # a few bytes of config that would ask for gigabytes of weights


@pytest.mark.parametrize("input_shape,layer,key", [
    ((5,), keras.layers.Dense(4), "units"),
    ((6, 6, 2), keras.layers.Conv2D(3, 3), "filters"),
    ((6, 6, 2), keras.layers.Conv2D(3, 3, padding="same"), "kernel_size"),
    ((3, 4), keras.layers.LSTM(2), "units"),
    ((7,), keras.layers.Embedding(10, 4), "input_dim"),
    ((7,), keras.layers.Embedding(10, 4), "output_dim"),
], ids=["Dense.units", "Conv2D.filters", "Conv2D.kernel_size", "LSTM.units",
        "Embedding.input_dim", "Embedding.output_dim"])
def test_huge_sizes_in_config_are_refused_before_allocating(tmp_path, input_shape, layer, key):
    path = tmp_path / "crafted.keras"
    keras.Sequential([keras.Input(input_shape), layer]).save(path)
    config, weights = _parts(path)
    layer_config = config["model"]["config"]["layers"][0]["config"]
    layer_config[key] = [HUGE, HUGE] if key == "kernel_size" else HUGE
    _rewrite(path, config, weights)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=rf"layer '{layer.name}' \({type(layer).__name__}"
                                                 r"\) would create its weight '\w+' of shape "
                                                 r"\([^)]*\d{9}[^)]*\), but the weights to load"):
            keras.models.load_model(path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5 and peak < 4 << 20, (elapsed, peak)


def test_load_weights_checks_the_recorded_input_shape_before_building(tmp_path):
    model = _trained()
    model.save_weights(tmp_path / "w")
    other = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(2)])
    with pytest.raises(ModelFileError, match=rf"layer '{other.layers[1].name}' \(Dense\) would "
                                             r"create its weight 'kernel' of shape \(8, 2\), but "
                                             r"the weights to load have shape \(8, 3\) there"):
        other.load_weights(tmp_path / "w")  # the file and the model disagree in the 2nd layer
    config, weights = _parts(tmp_path / "w")
    _rewrite(tmp_path / "w", {**config, "build_input_shape": [None, HUGE]}, weights)
    fresh = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(3)])
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=rf"recorded input shape \[None, {HUGE}\] "
                                                 rf"\(layer '{fresh.layers[0].name}' \(Dense\) "
                                                 rf"would create its weight 'kernel' of shape "
                                                 rf"\({HUGE}, 8\), but the weights to load have "
                                                 r"shape \(5, 8\) there"):
            fresh.load_weights(tmp_path / "w")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def _npy_member(array, header_edit=None):
    buf = io.BytesIO()
    np.save(buf, array)
    raw = buf.getvalue()
    if header_edit is None:
        return raw
    end = raw.index(b"\n") + 1
    header = header_edit(raw[10:end].decode("latin1")).ljust(end - 10)[: end - 11] + "\n"
    return raw[:10] + header.encode("latin1") + raw[end:]


def _npz_members(members, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=compress)
    return buf.getvalue()


def _shape_edit(new):
    return lambda header: header.replace("'shape': (3,)", f"'shape': {new}")


@pytest.mark.parametrize("weights,match", [
    # a .npy header declaring 12 TB must not make numpy allocate it (it raised MemoryError)
    (_npz_members({"w0.npy": _npy_member(np.zeros(3, np.float32),
                                         _shape_edit("(3000000000000,)"))}),
     r"declares shape \(3000000000000,\) but holds 12 bytes"),
    (_npz_members({"w0.npy": _npy_member(np.zeros(3, np.float32), _shape_edit("(-3,)"))}),
     r"declares shape \(-3,\)"),
    # header text numpy's parser chokes on (it raised tokenize.TokenError)
    (_npz_members({"w0.npy": _npy_member(np.zeros(3, np.float32),
                                         lambda h: "{" + "x" * (len(h) - 2))}),
     r"weights.npz is damaged \(TokenError"),
    (_npz_members({"w0.npy": b"\x93NUMPY\x03\x00" + bytes(60)}), r"has .npy version \(3, 0\)"),
    # a decompression bomb inside weights.npz: 64 MB of zeros in 64 KB
    (_npz_members({"w0.npy": _npy_member(np.zeros(16 << 20, np.float32))},
                  zipfile.ZIP_DEFLATED), "member 'w0.npy' is compressed"),
])
def test_forged_npy_members(saved, weights, match):
    config, _ = _parts(saved)
    _rewrite(saved, config, weights)
    with pytest.raises(ModelFileError, match=match):
        keras.models.load_model(saved)


def _zip_bytes(config, weights, compress):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("weights.npz", weights, compress_type=compress)
    return buf.getvalue()


def test_damaged_zip_structures_and_configs(saved, tmp_path):
    """Found by tests/test_fuzz_files.py: each of these escaped as another exception type
    (NotImplementedError, RuntimeError, OSError, RecursionError, AttributeError) or, for a
    huge weight_count, looped for as long as the file claimed."""
    config, weights = _parts(saved)
    config = {**config, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    good = _zip_bytes(config, weights, zipfile.ZIP_STORED)
    local = good.index(b"PK\x03\x04")
    central = good.index(b"PK\x01\x02")
    cases = {
        "compression method 99": good[:central + 10] + b"\x63\x00" + good[central + 12:],
        "the encrypted flag": good[:central + 8] + b"\x01\x00" + good[central + 10:],
        "an offset before the start": good[:local] + good[local + 40:],
        "a deflated weights.npz (a bomb's shape)": _zip_bytes(config, bytes(64 << 20),
                                                              zipfile.ZIP_DEFLATED),
    }
    for data in cases.values():
        saved.write_bytes(data)
        with pytest.raises(ModelFileError, match="not a fastnn file|truncated or damaged|"
                                                 "weights.npz is compressed"):
            keras.models.load_model(saved)
    _write_zip(saved, {"config.json": "[" * 100000 + "]" * 100000, "weights.npz": weights})
    with pytest.raises(ModelFileError, match="config.json is not valid JSON"):
        keras.models.load_model(saved)
    _rewrite(saved, {**config, "weight_count": 10**12}, weights)
    with pytest.raises(ModelFileError, match="config.json counts 1000000000000 'w' arrays"):
        keras.models.load_model(saved)
    _rewrite(saved, _set_units(copy.deepcopy(config), 10**12), weights)
    with pytest.raises(ModelFileError, match="invalid model configuration"):
        keras.models.load_model(saved)
    relu = copy.deepcopy(config)
    relu["model"]["config"]["layers"].append({"class_name": "ReLU",
                                              "config": {"max_value": 1.0}})
    _rewrite(saved, relu, weights)
    with pytest.raises(ModelFileError, match="invalid model configuration.*NotImplementedError"):
        keras.models.load_model(saved)
    model = _trained()
    model.save_weights(tmp_path / "w")
    w_config, w_weights = _parts(tmp_path / "w")
    del w_config["build_input_shape"]
    _rewrite(tmp_path / "w", {**w_config, "model": ["not", "a", "dict"]}, w_weights)
    with pytest.raises(ModelFileError, match="records no input shape"):
        keras.Sequential([keras.layers.Dense(2)]).load_weights(tmp_path / "w")


def test_missing_path_is_still_a_file_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        keras.models.load_model(tmp_path / "nope.keras")
