"""Dense kernels: Z = X W + b, A = f(Z) and the backward pass, native vs twin vs NumPy.

dense_forward(X, W, b, activation, Z, A, alpha)
dense_backward(X, W, Z, A, dA, activation, dZ, dW, db, dX, alpha)
    dZ = dA * f'(Z), dW = X^T dZ, db = sum_rows dZ, dX = dZ W^T (dX None: skipped)
"""
import numpy as np
import pytest

from fastmlp._backend import kernels

from conftest import ACTIVATIONS, assert_close, textbook_derivative, textbook_forward

# (rows, n_in, n_out): odd sizes, one output unit, one row; the last one is
# big enough (532k multiply-adds) for the native kernel to use two threads.
SHAPES = [(1, 1, 1), (7, 5, 1), (33, 17, 9), (130, 64, 64)]
SHAPE_IDS = ["1x1x1", "7x5x1", "33x17x9", "130x64x64"]


def _layer(rng, rows, n_in, n_out, dtype):
    X = rng.standard_normal((rows, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    return X, W, b


def _forward(k, X, W, b, act, alpha=None):
    Z = np.full((X.shape[0], W.shape[1]), np.nan, dtype=X.dtype)
    A = np.full_like(Z, np.nan)
    k.dense_forward(X, W, b, act, Z, A, alpha)
    return Z, A


def _backward(k, X, W, Z, A, dA, act, want_dx=True, alpha=None):
    dZ = np.full_like(dA, np.nan)
    dW = np.full_like(W, np.nan)
    db = np.full(W.shape[1], np.nan, dtype=W.dtype)
    dX = np.full_like(X, np.nan) if want_dx else None
    k.dense_backward(X, W, Z, A, dA, act, dZ, dW, db, dX, alpha)
    return dZ, dW, db, dX


# ---- forward ------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_native_twin_and_numpy_agree(native, twin, act, shape, dtype, threads, rng):
    X, W, b = _layer(rng, *shape, dtype)
    Z_native, A_native = _forward(native, X, W, b, act)
    Z_twin, A_twin = _forward(twin, X, W, b, act)
    Z_plain = X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    A_plain = textbook_forward(act, Z_plain)
    assert Z_native.dtype == dtype and A_native.dtype == dtype
    assert_close(Z_native, Z_twin, dtype)
    assert_close(A_native, A_twin, dtype)
    assert_close(Z_native, Z_plain, dtype)
    assert_close(A_native, A_plain, dtype)
    assert_close(A_twin, A_plain, dtype)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_activation_in_place(backend, act, dtype, rng):
    # "A may be Z": then only f(Z) is kept
    k = kernels(backend)
    X, W, b = _layer(rng, 11, 6, 5, dtype)
    Z = np.empty((11, 5), dtype=dtype)
    k.dense_forward(X, W, b, act, Z, Z)
    expected = textbook_forward(act, X.astype(np.float64) @ W + b)
    assert_close(Z, expected, dtype)


def test_forward_leaky_relu_alpha(backend, dtype, rng):
    k = kernels(backend)
    X, W, b = _layer(rng, 20, 4, 6, dtype)
    _, A = _forward(k, X, W, b, "leaky_relu", alpha=0.3)
    assert_close(A, textbook_forward("leaky_relu", X.astype(np.float64) @ W + b, alpha=0.3), dtype)


def test_forward_empty_batch(backend, dtype, rng):
    k = kernels(backend)
    _, W, b = _layer(rng, 1, 3, 2, dtype)
    Z = np.empty((0, 2), dtype=dtype)
    k.dense_forward(np.empty((0, 3), dtype=dtype), W, b, "relu", Z, Z)
    assert Z.shape == (0, 2)


# ---- backward -----------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_backward_native_twin_and_numpy_agree(native, twin, act, shape, dtype, threads, rng):
    X, W, b = _layer(rng, *shape, dtype)
    Z, A = _forward(twin, X, W, b, act)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    got_native = _backward(native, X, W, Z, A, dA, act)
    got_twin = _backward(twin, X, W, Z, A, dA, act)
    dZ = dA.astype(np.float64) * textbook_derivative(act, Z)
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    plain = (dZ, X64.T @ dZ, dZ.sum(axis=0), dZ @ W64.T)
    for name, n, t, p in zip(("dZ", "dW", "db", "dX"), got_native, got_twin, plain):
        assert n.dtype == dtype
        assert_close(n, t, dtype, err_msg=f"{name}: native vs twin")
        assert_close(n, p, dtype, err_msg=f"{name}: native vs NumPy")
        assert_close(t, p, dtype, err_msg=f"{name}: twin vs NumPy")


@pytest.mark.parametrize("act", ["identity", "tanh", "relu"])
def test_backward_without_dx(backend, act, dtype, rng):
    k = kernels(backend)
    X, W, b = _layer(rng, 33, 17, 9, dtype)
    Z, A = _forward(k, X, W, b, act)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ_full, dW_full, db_full, _ = _backward(k, X, W, Z, A, dA, act)
    dZ, dW, db, dX = _backward(k, X, W, Z, A, dA, act, want_dx=False)
    assert dX is None
    np.testing.assert_array_equal(dZ, dZ_full)
    np.testing.assert_array_equal(dW, dW_full)
    np.testing.assert_array_equal(db, db_full)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_backward_dz_may_alias_da(backend, act, dtype, threads, rng):
    k = kernels(backend)
    X, W, b = _layer(rng, 130, 64, 64, dtype)
    Z, A = _forward(k, X, W, b, act)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    expected = _backward(k, X, W, Z, A, dA, act)
    buf = dA.copy()
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    k.dense_backward(X, W, Z, A, buf, act, buf, dW, db, dX)
    for got, want in zip((buf, dW, db, dX), expected):
        np.testing.assert_array_equal(got, want)


def test_backward_empty_batch_gives_zero_gradients(backend, dtype, rng):
    k = kernels(backend)
    _, W, _ = _layer(rng, 1, 3, 2, dtype)
    empty = np.empty((0, 2), dtype=dtype)
    dW, db = np.full_like(W, np.nan), np.full(2, np.nan, dtype=dtype)
    k.dense_backward(np.empty((0, 3), dtype=dtype), W, empty, empty, empty.copy(), "tanh",
                     empty.copy(), dW, db, np.empty((0, 3), dtype=dtype))
    np.testing.assert_array_equal(dW, 0)
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_match_finite_differences(backend, act, rng):
    # L = sum(G * A(X W + b)); dL/dA = G
    k = kernels(backend)
    X, W, b = _layer(rng, 7, 4, 3, np.float64)
    G = rng.standard_normal((7, 3))

    def loss(X, W, b):
        _, A = _forward(k, X, W, b, act)
        return float(np.sum(G * A))

    Z, A = _forward(k, X, W, b, act)
    # keep clear of the kink of relu / leaky_relu
    assert np.min(np.abs(Z)) > 1e-4
    _, dW, db, dX = _backward(k, X, W, Z, A, G, act)
    h = 1e-6
    for analytic, P in ((dW, W), (db, b), (dX, X)):
        numeric = np.zeros_like(P)
        for i in np.ndindex(P.shape):
            old = P[i]
            P[i] = old + h
            up = loss(X, W, b)
            P[i] = old - h
            down = loss(X, W, b)
            P[i] = old
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---- validation -----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["X", "b", "Z", "A"])
def test_forward_wrong_shapes_raise(backend, bad):
    k = kernels(backend)
    arrays = {"X": np.zeros((5, 3)), "W": np.zeros((3, 4)), "b": np.zeros(4),
              "Z": np.zeros((5, 4)), "A": np.zeros((5, 4))}
    arrays[bad] = {"X": np.zeros((5, 2)), "b": np.zeros(3), "Z": np.zeros((4, 4)),
                   "A": np.zeros((5, 5))}[bad]
    with pytest.raises(ValueError, match=bad):
        k.dense_forward(arrays["X"], arrays["W"], arrays["b"], "relu", arrays["Z"], arrays["A"])


@pytest.mark.parametrize("bad", ["X", "Z", "A", "dA", "dZ", "dW", "db", "dX"])
def test_backward_wrong_shapes_raise(backend, bad):
    k = kernels(backend)
    n, n_in, n_out = 5, 3, 4
    arrays = {"X": np.zeros((n, n_in)), "W": np.zeros((n_in, n_out)),
              "Z": np.zeros((n, n_out)), "A": np.zeros((n, n_out)), "dA": np.zeros((n, n_out)),
              "dZ": np.zeros((n, n_out)), "dW": np.zeros((n_in, n_out)), "db": np.zeros(n_out),
              "dX": np.zeros((n, n_in))}
    arrays[bad] = {"X": np.zeros((n, n_in + 1)), "Z": np.zeros((n + 1, n_out)),
                   "A": np.zeros((n, n_out + 1)), "dA": np.zeros((n - 1, n_out)),
                   "dZ": np.zeros((n, 1)), "dW": np.zeros((n_out, n_in)),
                   "db": np.zeros(n_in), "dX": np.zeros((n, n_out))}[bad]
    a = arrays
    with pytest.raises(ValueError, match=bad):
        k.dense_backward(a["X"], a["W"], a["Z"], a["A"], a["dA"], "tanh", a["dZ"], a["dW"],
                         a["db"], a["dX"])


def test_unknown_activation_raises(backend):
    k = kernels(backend)
    Z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="unknown activation"):
        k.dense_forward(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(2), "no_such_activation", Z, Z)


def test_native_rejects_mixed_dtypes_and_layouts(native):
    X = np.zeros((4, 3), dtype=np.float32)
    W = np.zeros((3, 2), dtype=np.float32)
    b = np.zeros(2, dtype=np.float32)
    Z = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError):
        native.dense_forward(X, W.astype(np.float64), b, "relu", Z, Z)
    with pytest.raises(ValueError):
        native.dense_forward(np.asfortranarray(np.zeros((4, 3), np.float32)), W, b, "relu", Z, Z)
    with pytest.raises(ValueError):
        native.dense_forward(np.zeros((4, 6), np.float32)[:, ::2], W, b, "relu", Z, Z)
    with pytest.raises(ValueError):
        native.dense_forward(X, W, b, "relu", Z, np.zeros((4, 2)))
