"""Fuzzing the public entries of Sequential: random shapes, dtypes, layouts and
values thrown at fit, predict, evaluate, train_step, loss_and_gradients and
set_weights.  Each call must either raise a clean exception (ValueError or
TypeError with a message) or return a correct result: finite outputs of the
right shape and dtype, equal to the result on a clean C-contiguous copy of the
same data, and weights left untouched by a call that failed.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp as fm

from .conftest import assert_clean, overflow_possible, tiny_model, weights_equal

N_IN, N_OUT = 3, 3
BACKENDS = ("native", "numpy")

# dtypes a user might pass: numbers of every kind, and ones that must be refused
_DTYPES = ["float16", "float32", "float64", "longdouble", "int8", "int16", "int32", "int64",
           "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128", "U3", "S3",
           "datetime64[s]", "timedelta64[s]", "object"]

# values: ordinary, edge and hostile
_FLOATS = st.one_of(st.floats(-10, 10), st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, 1e-45, 1e38, -1e38, 3.5e38, 1e300, np.nan, np.inf, -np.inf,
     65504.0, 2.0 ** 31, -(2.0 ** 63)]))


@st.composite
def arrays(draw, shape=None, dims=None):
    """An array of random dtype, shape, values and memory layout."""
    if shape is None:
        ndim = draw(st.sampled_from([0, 1, 2, 2, 2, 2, 3])) if dims is None else dims
        shape = tuple(draw(st.integers(0, 5)) for _ in range(ndim))
        if ndim == 2 and draw(st.booleans()):
            shape = (shape[0], N_IN)
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    values = draw(hnp.arrays(np.float64, shape, elements=_FLOATS))
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            a = np.clip(np.nan_to_num(values), info.min, info.max).astype(dtype)
        elif dtype.kind in "Mm":
            a = np.nan_to_num(values).clip(-1e9, 1e9).astype(np.int64).astype(dtype)
        elif dtype.kind in "OUS":
            a = values.astype(object).astype(dtype)
        else:
            a = values.astype(dtype)
    return draw(layouts(np.asarray(a)))


@st.composite
def layouts(draw, a):
    """`a` as C, Fortran, strided, reversed, read-only, broadcast (zero-stride) or a list."""
    kind = draw(st.sampled_from(["C", "F", "strided", "reversed", "readonly", "broadcast",
                                 "list", "memmap_like"]))
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided" and a.ndim >= 1:
        big = np.repeat(a, 2, axis=0)
        return big[::2]
    if kind == "reversed" and a.ndim >= 1:
        return a[::-1].copy()[::-1]
    if kind == "readonly":
        a = np.array(a)
        a.flags.writeable = False
        return a
    if kind == "broadcast" and a.ndim >= 1 and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)
    if kind == "list" and a.dtype.kind in "fiub":
        return a.tolist()
    if kind == "memmap_like" and a.ndim >= 1:  # a view into a foreign, unaligned buffer
        raw = bytearray(a.nbytes + 1)
        b = np.frombuffer(raw, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape) \
            if a.dtype.kind != "O" else a
        b[...] = a
        return b
    return a


def _clean_X(X):
    """What a correct implementation computes on: float64 C-contiguous, or None when
    the input must be refused."""
    try:
        a = np.asarray(X)
    except ValueError:
        return None
    if a.dtype.kind not in "fiu" or a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != N_IN:
        return None
    with np.errstate(all="ignore"):
        a32 = a.astype(np.float32)
    if not np.isfinite(a32).all():
        return None
    return np.ascontiguousarray(a)


_MODELS = {}


def model(backend, loss="softmax_cross_entropy"):
    """A fresh copy of a cached tiny model (building one costs more than the call)."""
    key = (backend, loss)
    if key not in _MODELS:
        _MODELS[key] = tiny_model(backend, n_in=N_IN, n_out=N_OUT, loss=loss)
    base = _MODELS[key]
    m = tiny_model(backend, n_in=N_IN, n_out=N_OUT, loss=loss)
    m.set_weights(base.get_weights())
    return m


@given(backend=st.sampled_from(BACKENDS), X=arrays())
def test_predict_clean_error_or_correct(backend, X):
    m = model(backend)
    clean = _clean_X(X)
    try:
        out = m.predict(X)
    except FloatingPointError as e:   # the hidden layer's products overflow float32
        assert overflow_possible(clean), e
        return
    except Exception as e:  # noqa: BLE001 - the fuzzer's point
        assert_clean(e)
        assert clean is None, f"refused valid input: {e}"
        return
    assert clean is not None, "accepted input that must be refused"
    assert out.shape == (clean.shape[0], N_OUT) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, m.predict(clean))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def _labels(y, n):
    """Integer labels a correct implementation accepts, or None."""
    try:
        a = np.asarray(y)
    except ValueError:
        return None
    if a.dtype.kind not in "fiu" or a.ndim != 1 or a.shape[0] != n or n == 0:
        return None
    with np.errstate(all="ignore"):
        if not np.isfinite(a.astype(np.float64)).all() if a.dtype.kind == "f" else False:
            return None
        if a.dtype.kind == "f" and (a != np.floor(a)).any():
            return None
    if (a < 0).any() or (a >= N_OUT).any():
        return None
    return a.astype(np.int64)


@pytest.mark.parametrize("method", ["train_step", "evaluate", "loss_and_gradients", "fit"])
@given(backend=st.sampled_from(BACKENDS), X=arrays(), y=arrays(dims=1), data=st.data())
def test_training_entries_clean_error_or_correct(backend, method, X, y, data):
    m = model(backend)
    before = m.get_weights()
    clean = _clean_X(X)
    labels = _labels(y, clean.shape[0]) if clean is not None else None
    kwargs = {}
    if method == "fit":
        kwargs = {"epochs": data.draw(st.sampled_from([0, 1, 2, -1, 1.5, None]), "epochs"),
                  "batch_size": data.draw(st.sampled_from([1, 2, 32, 0, -1, 2.0, 2 ** 40]),
                                          "batch_size"),
                  "verbose": 0}
        valid_args = (kwargs["epochs"] in (0, 1, 2) and type(kwargs["epochs"]) is int
                      and kwargs["batch_size"] in (1, 2, 32, 2 ** 40)
                      and type(kwargs["batch_size"]) is int)
    else:
        valid_args = True
    try:
        result = getattr(m, method)(X, y, **kwargs)
    except FloatingPointError as e:   # a step on inputs near float32's limit overflowed
        assert overflow_possible(clean), e
        return
    except Exception as e:  # noqa: BLE001
        assert_clean(e)
        assert clean is None or labels is None or not valid_args, f"refused valid input: {e}"
        assert weights_equal(before, m.get_weights()), "a failed call changed the weights"
        return
    assert clean is not None and labels is not None and valid_args, \
        "accepted input that must be refused"
    # the same call on a fresh model with clean copies gives the same result
    ref = model(backend)
    expected = getattr(ref, method)(clean, labels, **kwargs)
    if method == "evaluate" and not np.isfinite(result["loss"]):
        assert overflow_possible(clean), result   # reported, not raised: fit's validation
        return
    if method == "loss_and_gradients":
        assert result[0] == expected[0] and np.isfinite(result[0])
        assert weights_equal(result[1], expected[1])
    elif method == "fit":
        assert result.history == expected.history
    elif method == "evaluate":
        assert result == expected and np.isfinite(result["loss"])
    else:
        assert result == expected and np.isfinite(result)
    assert weights_equal(m.get_weights(), ref.get_weights())


@given(backend=st.sampled_from(BACKENDS), X=arrays(shape=(4, N_IN)), y=arrays(),
       data=st.data())
def test_regression_targets_clean_error_or_correct(backend, X, y, data):
    loss = data.draw(st.sampled_from(["mse", "binary_cross_entropy", "poisson", "kl_divergence",
                                      "hinge", "huber", "mape", "mae"]), "loss")
    m = model(backend, loss)
    before = m.get_weights()
    try:
        value = m.train_step(X, y)
    except Exception as e:  # noqa: BLE001
        assert_clean(e)
        assert weights_equal(before, m.get_weights()), "a failed call changed the weights"
        return
    assert np.isfinite(value)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    # what was accepted was numeric, of the right size and finite
    Xa, ya = np.asarray(X), np.asarray(y)
    assert Xa.dtype.kind in "fiu" and ya.dtype.kind in "fiub" and Xa.shape == (4, N_IN)
    assert np.isfinite(ya.astype(np.float64)).all()
    assert ya.size in (4, 4 * N_OUT)


@given(backend=st.sampled_from(BACKENDS), data=st.data())
def test_set_weights_clean_error_or_exact(backend, data):
    m = model(backend)
    good = m.get_weights()
    weights = []
    for w in good:
        choice = data.draw(st.sampled_from(["same", "same", "same", "fuzz", "transposed",
                                            "drop"]), "choice")
        if choice == "same":
            weights.append(data.draw(layouts(w.astype(data.draw(st.sampled_from(
                ["float32", "float64", "int16", "float16"]), "dtype")))))
        elif choice == "fuzz":
            weights.append(data.draw(arrays(shape=w.shape)))
        elif choice == "transposed":
            weights.append(w.T.copy() if w.ndim == 2 else w[:, None])
    before = m.get_weights()
    try:
        m.set_weights(weights)
    except Exception as e:  # noqa: BLE001
        assert_clean(e)
        assert weights_equal(before, m.get_weights()), "a failed set_weights wrote something"
        return
    after = m.get_weights()
    assert len(weights) == len(after)
    for given_w, got in zip(weights, after):
        expected = np.asarray(given_w).astype(np.float32)
        np.testing.assert_array_equal(got, expected)
        assert np.isfinite(got).all()
    assert np.isfinite(m.predict(np.ones((2, N_IN)))).all()


@given(hidden=st.integers(1, 5), n_in=st.integers(1, 4), n_out=st.integers(2, 4),
       rows=st.integers(1, 70), batch=st.integers(1, 80), dtype=st.sampled_from(
           ["float32", "float64"]), act=st.sampled_from(["relu", "tanh", "selu", "gelu",
                                                         "softplus", "identity"]))
def test_random_architectures_fit_and_agree_with_the_twin(hidden, n_in, n_out, rows, batch,
                                                          dtype, act):
    rng = np.random.default_rng(rows)
    X = rng.standard_normal((rows, n_in))
    y = rng.integers(0, n_out, rows)
    got = {}
    for backend in ("native", "numpy"):
        m = tiny_model(backend, dtype, n_in=n_in, n_out=n_out, hidden=hidden, activation=act)
        m.fit(X, y, epochs=2, batch_size=batch, verbose=0, shuffle=False)
        got[backend] = (m.get_weights(), m.predict(X))
    rtol = 2e-3 if dtype == "float32" else 1e-9
    for a, b in zip(got["native"][0], got["numpy"][0]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got["native"][1], got["numpy"][1], rtol=rtol, atol=rtol)


# ---- the command line -----------------------------------------------------------------

_HOSTILE_CELLS = st.one_of(st.sampled_from(["nan", "inf", "", "a", "1e400", " ", "\"", "0x10",
                                            "1,2", "-0", "1e-320"]), st.text(max_size=4))


@st.composite
def csv_tables(draw):
    """A numeric table (class in column 0) with a few cells made hostile."""
    n = draw(st.integers(0, 12))
    cols = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    rows = [[str(int(rng.integers(0, 3)))] + [repr(float(v)) for v in rng.standard_normal(cols)]
            for _ in range(n)]
    for _ in range(draw(st.integers(0, 3))):
        if rows:
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(_HOSTILE_CELLS)
    return rows


@given(rows=csv_tables(), header=st.booleans(), flags=st.lists(st.sampled_from(
    ["--epochs=0", "--epochs=1", "--batch-size=0", "--lr=nan", "--lr=inf", "--lr=1e30",
     "--hidden=0", "--hidden=2,a", "--validation-split=0.5", "--validation-split=0",
     "--task=regression", "--task=classification", "--threads=1", "--dtype=float64",
     "--target=9", "--target=-1", "--target=y", "--verbose=0", "--optimizer=sgd"]),
    max_size=4))
def test_cli_train_and_predict_exit_cleanly(tmp_path_factory, rows, header, flags):
    from fastmlp.cli import main

    tmp = tmp_path_factory.mktemp("cli")
    path = tmp / "data.csv"
    lines = ([",".join(["y", "a", "b", "c", "d"][:len(rows[0])])] if header and rows else [])
    lines += [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    out = tmp / "m.fm"
    argv = ["train", str(path), "--target=0", "--epochs=1", "--hidden=2", "--verbose=0",
            f"--out={out}"] + flags
    try:
        with fm.threads(fm.get_num_threads()):  # --threads sets them for the process
            status = main(argv)
    except SystemExit as e:  # argparse's usage errors
        assert e.code == 2
        return
    assert status in (0, 2)
    if status == 0:
        model = fm.load_model(out)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        try:
            status = main(["predict", str(out), str(path), f"--out={tmp / 'p.csv'}"])
        except SystemExit as e:
            assert e.code == 2
            return
        assert status in (0, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_that_overflow_float32_raise_floating_point_error(backend):
    # finite float32 inputs whose products overflow: a clear error, not NaN probabilities
    # (the entry fuzzers draw such inputs rarely: 1e38 in several features of a row)
    m = tiny_model(backend, n_in=N_IN, n_out=N_OUT, activation="relu")
    m.set_weights([np.ones_like(w) for w in m.get_weights()])
    X = np.full((2, N_IN), 3e38, np.float32)
    assert overflow_possible(X)
    with pytest.raises(FloatingPointError, match="inputs or the weights"):
        m.predict(X)
    assert not np.isfinite(m.evaluate(X, np.array([0, 1]))["loss"])
    before = m.get_weights()
    with pytest.raises(FloatingPointError):
        m.train_step(X, np.array([0, 1]))
    assert weights_equal(before, m.get_weights())
