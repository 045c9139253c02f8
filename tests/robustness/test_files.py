"""Fuzzing the model loader: random corruptions of a real file (bit flips,
truncations, inserted or deleted bytes, random prefixes) and hostile headers
with valid checksums (any leaf of the JSON replaced by a random JSON value,
arrays re-described).  Each load either raises ValueError naming the file, or
gives a model that works (finite weights and predictions) - never another
exception, never code run from the file, never an allocation much larger than
the file (tracemalloc peak bounded).  tests/test_io.py holds the hand-written
cases; this is their random extension.
"""
import copy
import json
import struct
import zlib

import numpy as np
import tracemalloc
from hypothesis import given
from hypothesis import strategies as st

import fastmlp as fm
import fastmlp.io as fio

_BLOBS = {}


def _saved(kind):
    """The bytes of a small saved model: compiled with Adam, a schedule and dropout, or not."""
    if kind not in _BLOBS:
        import tempfile
        import os

        if kind == "compiled":
            model = fm.Sequential([fm.Dense(5, activation="relu"), fm.Dropout(0.2),
                                   fm.Dense(3)], input_dim=4, seed=3)
            model.compile(loss="softmax_cross_entropy",
                          optimizer=fm.Adam(lr=fm.schedules.cosine(1e-2, 50)),
                          metrics=["accuracy"], regularizer=fm.regularizers.l2(1e-4),
                          class_weight={0: 2.0})
            X = np.random.default_rng(0).standard_normal((20, 4))
            model.fit(X, np.arange(20) % 3, epochs=2, batch_size=8, verbose=0)
        else:
            model = fm.Sequential([fm.Dense(3, activation="tanh"), fm.Dense(2)], input_dim=2)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.fm")
            model.save(path, metadata={"note": "fuzz"})
            with open(path, "rb") as f:
                _BLOBS[kind] = f.read()
    return _BLOBS[kind]


def _split(blob):
    length = struct.unpack("<Q", blob[16:24])[0]
    return json.loads(blob[24:24 + length]), blob[24 + length:]


def _forge(header, data, version=1):
    text = json.dumps(header).encode()
    text += b" " * (-(len(text) + 24) % 64)
    return struct.pack("<8sIIQ", fio.MAGIC, version, zlib.crc32(text), len(text)) + text + data


_DIRS = {}


def _load(tmp_path_factory, blob, trace_memory=False):
    """Load `blob`; returns the model or the ValueError (with trace_memory, asserting
    that loading allocated little more than the file holds)."""
    if "dir" not in _DIRS:
        _DIRS["dir"] = tmp_path_factory.mktemp("files")
    path = _DIRS["dir"] / "m.fm"
    path.write_bytes(blob)
    if trace_memory:
        tracemalloc.start()
    try:
        try:
            result = fm.load_model(path)
        except ValueError as e:
            assert str(path) in str(e), f"the message does not name the file: {e}"
            result = e
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    finally:
        if trace_memory:
            tracemalloc.stop()
    # a header may describe at most what the file holds: the weights, their gradient and
    # optimizer buffers, and the parsed JSON; a forged size must not allocate more
    assert peak < 64 * len(blob) + (8 << 20), f"loading a {len(blob)}-byte file peaked at {peak}"
    return result


def _check_loaded(model):
    if isinstance(model, ValueError):
        return
    assert isinstance(model, fm.Sequential)
    if model.input_dim is not None:
        assert all(np.isfinite(w).all() for w in model.get_weights())
        if model.loss is not None:
            X = np.zeros((2, model.input_dim))
            try:
                out = model.predict(X)
            except FloatingPointError:   # weights that are finite but overflow: reported
                return
            assert np.isfinite(out).all()


_EDITS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10 ** 6), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10 ** 6), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, 10 ** 6), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.integers(0, 255)),
    st.tuples(st.just("set"), st.integers(0, 10 ** 6), st.integers(0, 255)),
)


@given(kind=st.sampled_from(["compiled", "plain"]), edits=st.lists(_EDITS, min_size=1,
                                                                   max_size=4))
def test_corrupted_files_are_refused_cleanly(tmp_path_factory, kind, edits):
    blob = bytearray(_saved(kind))
    for op, pos, value in edits:
        pos %= max(len(blob), 1)
        if op == "flip" and blob:
            blob[pos] ^= 1 << value
        elif op == "truncate":
            del blob[pos:]
        elif op == "delete":
            del blob[pos:pos + value]
        elif op == "insert":
            blob.insert(pos, value)
        elif op == "set" and blob:
            blob[pos] = value
    _check_loaded(_load(tmp_path_factory, bytes(blob)))


# any JSON value, including the hostile ones: huge numbers, deep nesting, long strings
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
              st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 63, 10 ** 12, 10 ** 30]),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
              st.sampled_from(["float32", "float64", "Dense", "Dropout", "Adam", "relu",
                               "params", "opt_state.0", "__import__('os')", "numpy"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    """Every path to a node of the header."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@given(kind=st.sampled_from(["compiled", "plain"]), data=st.data())
def test_hostile_headers_are_refused_cleanly(tmp_path_factory, kind, data):
    header, payload = _split(_saved(kind))
    header = copy.deepcopy(header)
    paths = [p for p in _paths(header) if p]
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        path = data.draw(st.sampled_from(paths), "path")
        node = header
        try:
            for key in path[:-1]:
                node = node[key]
            if data.draw(st.booleans(), "delete") and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = data.draw(_JSON, "value")
        except (KeyError, IndexError, TypeError):   # an earlier edit removed the path
            continue
    version = data.draw(st.sampled_from([1, 1, 1, 0, 2, 2 ** 32 - 1]), "version")
    _check_loaded(_load(tmp_path_factory, _forge(header, payload, version),
                        trace_memory=data.draw(st.integers(0, 9), "trace") == 0))


@given(size=st.integers(0, 2 ** 64 - 1), shape=st.lists(st.integers(0, 2 ** 40), max_size=4),
       offset=st.integers(0, 2 ** 64 - 1), which=st.integers(0, 5))
def test_forged_array_sizes_never_allocate_them(tmp_path_factory, size, shape, offset, which):
    header, payload = _split(_saved("compiled"))
    entry = header["arrays"][which % len(header["arrays"])]
    entry.update(nbytes=size, shape=shape, offset=offset)
    result = _load(tmp_path_factory, _forge(header, payload), trace_memory=True)
    assert isinstance(result, ValueError)


def test_a_file_never_runs_code(tmp_path, monkeypatch):
    # every place a name is read (layer class, activation, initializer, optimizer, loss,
    # metric, regularizer) given a dotted path to a callable: nothing is imported or called
    import builtins

    header, payload = _split(_saved("compiled"))
    calls = []
    real_import = builtins.__import__

    def spy(name, *args, **kwargs):
        if name in ("os", "subprocess", "shutil"):
            calls.append(name)
        return real_import(name, *args, **kwargs)

    evil = "os.system"
    edits = [("model", "layers", 0, "class"), ("model", "layers", 0, "config", "activation"),
             ("model", "layers", 0, "config", "init"), ("compile", "optimizer", "class"),
             ("compile", "loss"), ("compile", "metrics", 0), ("compile", "regularizer")]
    monkeypatch.setattr(builtins, "__import__", spy)
    for path in edits:
        forged = copy.deepcopy(header)
        node = forged
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = evil
        blob = _forge(forged, payload)
        f = tmp_path / "evil.fm"
        f.write_bytes(blob)
        try:
            fm.load_model(f)
        except ValueError:
            pass
        except UserWarning:
            pass
    assert calls == [], f"loading imported {calls}"
