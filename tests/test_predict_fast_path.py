"""Sequential.predict's fast path (an input that already is a C-contiguous 2-D
array of the model's dtype and width) checks what the full path checks and
returns the same numbers."""
import numpy as np
import pytest

import fastmlp as fm


def _model(backend, dtype):
    model = fm.Sequential([fm.Dense(8, activation="relu"), fm.Dense(3)], input_dim=4,
                          dtype=dtype, seed=0, backend=backend)
    return model.compile(loss="softmax_cross_entropy")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("rows", [1, 5, 300])
def test_fast_path_agrees_with_the_full_checks(backend, dtype, rows):
    model = _model(backend, dtype)
    X = np.random.default_rng(0).standard_normal((rows, 4)).astype(dtype)
    fast = model.predict(X)                           # C-contiguous, the model's dtype
    assert fast.dtype == np.dtype(dtype) and fast.shape == (rows, 3)
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, rtol=1e-5)
    # the full checks: a list, and a Fortran-ordered copy, of the same values
    np.testing.assert_array_equal(model.predict(X.tolist()), fast)
    np.testing.assert_array_equal(model.predict(np.asfortranarray(X)), fast)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fast_path_rejects_non_finite_rows(backend, bad):
    model = _model(backend, "float32")
    X = np.ones((1, 4), np.float32)
    X[0, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.predict(X)


@pytest.mark.parametrize("X, message", [
    (np.ones((1, 5), np.float32), "features"),
    (np.ones((0, 4), np.float32), "empty"),
    (np.ones(4, np.float32), "2-D"),
    (np.ones((1, 1, 4), np.float32), "2-D"),
])
def test_fast_path_shapes_are_checked(X, message):
    with pytest.raises(ValueError, match=message):
        _model("native", "float32").predict(X)


def test_fast_path_needs_a_compiled_model():
    model = fm.Sequential([fm.Dense(3)], input_dim=4)
    with pytest.raises(RuntimeError, match="compile"):
        model.predict(np.ones((1, 4), np.float32))


def test_other_dtypes_and_views_are_converted():
    model = _model("native", "float32")
    X = np.random.default_rng(1).standard_normal((6, 8))
    expected = model.predict(np.ascontiguousarray(X[:, ::2], dtype=np.float32))
    np.testing.assert_allclose(model.predict(X[:, ::2]), expected, rtol=1e-6)   # float64, strided
    np.testing.assert_allclose(model.predict(X[:, ::2].astype(np.float16)), expected,
                               rtol=1e-2, atol=1e-3)
