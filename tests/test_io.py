"""Saving and loading: round trips, exact resumption, and files that must be refused."""
import json
import os
import struct
import zlib

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import io as fio
from fastmlp.callbacks import ModelCheckpoint


def make_model(backend="native", dtype="float32", optimizer=None, seed=0, metrics=("accuracy",)):
    model = fm.Sequential([fm.Dense(16, activation="relu"),
                           fm.Dense(8, activation=fm.activations.leaky_relu(0.2)),
                           fm.Dense(3)],
                          input_dim=2, dtype=dtype, seed=seed, backend=backend)
    model.compile(optimizer=optimizer if optimizer is not None else fm.Adam(lr=1e-2),
                  metrics=list(metrics))
    return model


@pytest.fixture
def data():
    return fm.datasets.spiral(n_samples=120, seed=2)


OPTIMIZERS = {
    "adam": lambda: fm.Adam(lr=5e-3, beta1=0.8, beta2=0.99, eps=1e-7),
    "sgd": lambda: fm.SGD(lr=0.05),
    "momentum": lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True),
}


# ---- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_round_trip_keeps_everything(tmp_path, backend, dtype, opt, data):
    X, y = data
    model = make_model(backend, dtype, OPTIMIZERS[opt](), seed=7)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "m.fm"
    model.save(path, metadata={"note": "spiral", "n": [1, 2]})
    loaded = fm.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.dtype == model.dtype and loaded.backend == backend and loaded.seed == 7
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.loss == model.loss
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    assert loaded.metadata == {"note": "spiral", "n": [1, 2]}
    np.testing.assert_array_equal(loaded.params, model.params)
    assert len(loaded._opt_state) == len(model._opt_state)
    for a, b in zip(loaded._opt_state, model._opt_state):
        np.testing.assert_array_equal(a, b)
    assert loaded._plan.step == model._plan.step
    assert loaded._shuffle_rng.bit_generator.state == model._shuffle_rng.bit_generator.state
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_resumed_fit_is_bit_identical_to_an_uninterrupted_one(tmp_path, backend, opt, data):
    X, y = data
    whole = make_model(backend, optimizer=OPTIMIZERS[opt]())
    whole_history = whole.fit(X, y, epochs=5, batch_size=16, verbose=0)

    first = make_model(backend, optimizer=OPTIMIZERS[opt]())
    first.fit(X, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "mid.fm")
    del first
    resumed = fm.load_model(tmp_path / "mid.fm")
    history = resumed.fit(X, y, epochs=5, initial_epoch=2, batch_size=16, verbose=0)

    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed._opt_state, whole._opt_state):
        np.testing.assert_array_equal(a, b)
    assert history.history["loss"] == whole_history.history["loss"][2:]
    assert resumed._plan.step == whole._plan.step


def test_resume_from_a_checkpoint_callback(tmp_path, data):
    X, y = data
    whole = make_model()
    whole.fit(X, y, epochs=4, verbose=0)
    model = make_model()
    model.fit(X, y, epochs=4, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "e{epoch}.fm"))])
    resumed = fm.load_model(tmp_path / "e2.fm")
    resumed.fit(X, y, epochs=4, initial_epoch=2, verbose=0)
    np.testing.assert_array_equal(resumed.params, whole.params)


def test_load_with_another_backend(tmp_path, data):
    X, y = data
    model = make_model("native", "float64")
    model.fit(X, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fm")
    twin = fm.load_model(tmp_path / "m.fm", backend="numpy")
    assert twin.backend == "numpy"
    np.testing.assert_allclose(twin.predict(X), model.predict(X), rtol=1e-12, atol=1e-14)


def test_unbuilt_and_uncompiled_models(tmp_path, data):
    X, y = data
    unbuilt = fm.Sequential([fm.Dense(4, activation="tanh"), fm.Dense(2)], seed=3)
    unbuilt.save(tmp_path / "a.fm")
    loaded = fm.load_model(tmp_path / "a.fm")
    assert loaded.input_dim is None and loaded.loss is None
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in unbuilt.layers]

    built = fm.Sequential([fm.Dense(4, activation="sigmoid"), fm.Dense(3)], input_dim=2, seed=3)
    built.save(tmp_path / "b.fm")
    loaded = fm.load_model(tmp_path / "b.fm")
    assert loaded.loss is None and loaded._plan is None
    np.testing.assert_array_equal(loaded.params, built.params)
    loaded.compile()
    built.compile()
    loaded.fit(X, y, epochs=1, verbose=0)
    built.fit(X, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(loaded.params, built.params)


def test_regression_model_round_trip(tmp_path):
    X, y = fm.datasets.sine_regression(n_samples=64)
    model = fm.Sequential([fm.Dense(8, activation="tanh"), fm.Dense(1)], input_dim=1)
    model.compile(loss="mse", optimizer="sgd", metrics=["mae", "r2"])
    model.fit(X, y, epochs=2, verbose=0)
    model.save(tmp_path / "r.fm")
    loaded = fm.load_model(tmp_path / "r.fm")
    assert [m.name for m in loaded.metrics] == ["mae", "r2"]
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


def test_save_overwrites_atomically_and_leaves_no_temporary(tmp_path, data):
    model = make_model()
    path = tmp_path / "m.fm"
    model.save(path)
    model.fit(*data, epochs=1, verbose=0)
    model.save(path)
    assert os.listdir(tmp_path) == ["m.fm"]
    np.testing.assert_array_equal(fm.load_model(path).params, model.params)


def test_save_rejects_what_json_cannot_hold(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="JSON"):
        model.save(tmp_path / "m.fm", metadata={"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        model.save(tmp_path / "m.fm", metadata={"x": float("nan")})
    assert not os.path.exists(tmp_path / "m.fm")


def test_custom_metric_is_dropped_with_a_warning(tmp_path):
    model = make_model(metrics=[fm.metrics.Metric("mine", fm.metrics.accuracy, True)])
    model.save(tmp_path / "m.fm")
    with pytest.warns(UserWarning, match="mine"):
        loaded = fm.load_model(tmp_path / "m.fm")
    assert loaded.metrics == []


# ---- files that must be refused ---------------------------------------------------------------

@pytest.fixture
def saved(tmp_path, data):
    model = make_model()
    model.fit(*data, epochs=1, verbose=0)
    path = tmp_path / "m.fm"
    model.save(path)
    return path, path.read_bytes()


def split(blob):
    magic, version, crc, length = struct.unpack("<8sIIQ", blob[:24])
    return json.loads(blob[24:24 + length]), blob[24 + length:], version


def rewrite(header, data, version=1, pad=True):
    """A file with `header` (a valid header checksum) and `data`, as a forger would."""
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-(len(text) + 24) % 64)
    return struct.pack("<8sIIQ", fio.MAGIC, version, zlib.crc32(text), len(text)) + text + data


def refuse(tmp_path, blob, match):
    path = tmp_path / "bad.fm"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=match):
        fm.load_model(path)


def test_every_truncation_is_refused(tmp_path, saved):
    _, blob = saved
    cuts = sorted(set(range(0, 64)) | set(range(64, len(blob), 97)) | {len(blob) - 1})
    for cut in cuts:
        refuse(tmp_path, blob[:cut], "truncated|not a fastmlp|corrupted")


def test_bit_flips_are_refused(tmp_path, saved):
    _, blob = saved
    rng = np.random.default_rng(0)
    positions = list(range(0, 24)) + list(rng.integers(24, len(blob), 60))
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        path = tmp_path / "bad.fm"
        path.write_bytes(bytes(bad))
        try:
            fm.load_model(path)
        except ValueError:
            continue
        # a flip can only go unnoticed in alignment padding, which holds no information
        assert _in_padding(blob, pos), f"a flipped bit at byte {pos} was not detected"


def _in_padding(blob, pos):
    header, data, _ = split(blob)
    length = struct.unpack("<Q", blob[16:24])[0]
    text = blob[24:24 + length]
    if 24 <= pos < 24 + length:
        return text[pos - 24:].strip() == b""      # trailing spaces of the header
    start = 24 + length
    ends = [(a["offset"], a["offset"] + a["nbytes"]) for a in header["arrays"]]
    return not any(start + lo <= pos < start + hi for lo, hi in ends)


def test_newer_format_version_is_refused(tmp_path, saved):
    _, blob = saved
    header, data, _ = split(blob)
    refuse(tmp_path, rewrite(header, data, version=2), "newer fastmlp")
    refuse(tmp_path, rewrite(header, data, version=0), "format version 0")


def test_not_a_model_file(tmp_path):
    refuse(tmp_path, b"", "truncated or not a fastmlp")
    refuse(tmp_path, b"PK\x03\x04" + b"\0" * 100, "not a fastmlp model file")
    refuse(tmp_path, b"hello world, this is a text file with no model in it", "not a fastmlp")
    with pytest.raises(ValueError, match="directory"):
        fm.load_model(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match="not a regular file"):
            fm.load_model("/dev/zero")
    with pytest.raises(FileNotFoundError):
        fm.load_model(tmp_path / "missing.fm")


def test_huge_header_length_is_refused_without_allocating(tmp_path):
    blob = struct.pack("<8sIIQ", fio.MAGIC, 1, 0, 2 ** 62) + b"{}"
    refuse(tmp_path, blob, "header claims")


def forged(saved, edit):
    _, blob = saved
    header, data, _ = split(blob)
    edit(header)
    return rewrite(header, data)


def set_path(keys, value):
    def edit(header):
        node = header
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


@pytest.mark.parametrize("keys, value, match", [
    (("model", "layers", 0, "config", "units"), 10 ** 12, "architecture needs"),
    (("model", "layers", 0, "config", "units"), -3, "units"),
    (("model", "layers", 0, "config", "units"), "16", "units"),
    (("model", "layers", 0, "class"), "os.system", "unknown layer class"),
    (("model", "layers", 0, "config", "evil"), 1, "bad Dense configuration"),
    (("model", "layers", 0, "config", "activation"), {"name": "gelu2"}, "unknown activation"),
    (("model", "layers", 1, "config", "activation", "alpha"), "x", "finite number"),
    (("model", "layers"), [], "bad layer list"),
    (("model", "layers"), "Dense", "bad layer list"),
    (("model", "input_dim"), 10 ** 15, "architecture needs"),
    (("model", "input_dim"), 0, "input_dim"),
    (("model", "dtype"), "object", "dtype"),
    (("model", "backend"), "cuda", "backend"),
    (("model", "seed"), "zero", "seed"),
    (("model",), None, "no model description"),
    (("compile", "optimizer", "class"), "Evil", "unknown optimizer"),
    (("compile", "optimizer", "config", "lr"), -1.0, "lr"),
    (("compile", "optimizer", "config", "momentum"), 0.5, "invalid compile"),
    (("compile", "loss"), "cosine_similarity", "unknown loss"),
    (("compile", "loss"), 3, "bad loss"),
    (("training", "step"), -1, "step counter"),
    (("training", "step"), 2 ** 70, "step counter"),
    (("training", "shuffle_rng", "bit_generator"), "MT19937", "shuffling state"),
    (("training", "shuffle_rng", "state"), "x", "shuffling state"),
    (("arrays", 0, "shape"), [10 ** 12], "cannot hold"),
    (("arrays", 0, "nbytes"), 10 ** 12, "cannot hold|truncated"),
    (("arrays", 0, "offset"), 10 ** 12, "truncated"),
    (("arrays", 0, "offset"), -64, "bad offset"),
    (("arrays", 0, "dtype"), "object", "unsupported dtype"),
    (("arrays", 0, "dtype"), "float64", "cannot hold"),
    (("arrays", 0, "crc32"), 12345, "checksum"),
    (("arrays", 0, "name"), "weights", "built but the file holds no weights"),
    (("arrays", 1, "name"), "opt_state.7", "state buffers"),
    (("arrays",), "all", "array table"),
    (("format",), "numpy", "does not describe"),
])
def test_forged_headers_are_refused(tmp_path, saved, keys, value, match):
    refuse(tmp_path, forged(saved, set_path(keys, value)), match)


def test_forged_non_finite_weights_are_refused(tmp_path, saved):
    _, blob = saved
    header, data, _ = split(blob)
    entry = header["arrays"][0]
    weights = bytearray(data)
    weights[entry["offset"]:entry["offset"] + 4] = np.float32(np.nan).tobytes()
    entry["crc32"] = zlib.crc32(bytes(weights[entry["offset"]:entry["offset"] + entry["nbytes"]]))
    refuse(tmp_path, rewrite(header, bytes(weights)), "NaN")


def test_deeply_nested_or_invalid_json_is_refused(tmp_path):
    text = b"[" * 100_000 + b"]" * 100_000
    blob = struct.pack("<8sIIQ", fio.MAGIC, 1, zlib.crc32(text), len(text)) + text
    refuse(tmp_path, blob, "not valid JSON")
    text = b"\xff\xfe not utf-8"
    blob = struct.pack("<8sIIQ", fio.MAGIC, 1, zlib.crc32(text), len(text)) + text
    refuse(tmp_path, blob, "not valid JSON")
    text = b"[1, 2, 3]"
    blob = struct.pack("<8sIIQ", fio.MAGIC, 1, zlib.crc32(text), len(text)) + text
    refuse(tmp_path, blob, "does not describe")


def test_trailing_bytes_are_refused(tmp_path, saved):
    _, blob = saved
    refuse(tmp_path, blob + b"\0" * 64, "unexpected bytes")


# ---- get_weights / set_weights validation -------------------------------------------------------

def test_set_weights_validates(data):
    model = make_model()
    weights = model.get_weights()
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([w.T for w in weights])
    with pytest.raises(ValueError, match="dtype"):
        model.set_weights([w.astype(complex) for w in weights])
    with pytest.raises(ValueError, match="expected 6"):
        model.set_weights(weights[:-1])
    before = model.params.copy()
    bad = [w.copy() for w in weights]
    bad[-1][0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.params, before)


@pytest.mark.parametrize("schedule", ["warmup_cosine", "plateau", "constant"])
def test_resume_with_schedule_regularizer_and_dropout(tmp_path, schedule):
    X, y = fm.datasets.spiral(n_samples=200, n_classes=3, seed=0)
    make_lr = {"warmup_cosine": lambda: fm.schedules.warmup(fm.schedules.cosine(0.01, period=10),
                                                            epochs=2),
               "plateau": lambda: fm.schedules.reduce_on_plateau(0.05, patience=0, factor=0.5),
               "constant": lambda: 0.01}[schedule]

    def make():
        model = fm.Sequential([fm.Dense(32, activation="relu"), fm.Dropout(0.1), fm.Dense(3)],
                              input_dim=2, seed=1)
        model.compile(optimizer=fm.AdamW(lr=make_lr(), weight_decay=0.01),
                      regularizer=[fm.regularizers.l2(1e-3), fm.regularizers.max_norm(3.0)])
        return model

    straight = make()
    straight.fit(X, y, epochs=6, batch_size=32, verbose=0)
    half = make()
    half.fit(X, y, epochs=3, batch_size=32, verbose=0)
    half.save(tmp_path / "half.fm")
    resumed = fm.load_model(tmp_path / "half.fm")
    assert repr(resumed.regularizer) == repr(half.regularizer)
    assert repr(resumed.optimizer) == repr(half.optimizer)
    resumed.fit(X, y, epochs=3, batch_size=32, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loss_parameter_and_class_weights_survive_saving(tmp_path):
    X, y = fm.datasets.spiral(n_samples=120, n_classes=3, seed=0)
    model = fm.Sequential([fm.Dense(8, activation="tanh"), fm.Dense(1)], input_dim=2)
    model.compile(loss=fm.losses.huber(delta=0.25), optimizer="sgd")
    model.save(tmp_path / "huber.fm")
    assert fm.load_model(tmp_path / "huber.fm").loss == model.loss
    clf = fm.Sequential([fm.Dense(8, activation="tanh"), fm.Dense(3)], input_dim=2)
    clf.compile(optimizer="adam", class_weight={0: 2.0, 2: 0.5})
    clf.fit(X, y, epochs=1, verbose=0)
    clf.save(tmp_path / "weighted.fm")
    loaded = fm.load_model(tmp_path / "weighted.fm")
    assert loaded.class_weight == {0: 2.0, 2: 0.5}
    np.testing.assert_allclose(loaded.evaluate(X, y)["loss"], clf.evaluate(X, y)["loss"])
