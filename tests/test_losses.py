"""Loss kernels on the last layer's raw output, native vs twin vs the direct formulas.

softmax_cross_entropy(Z, y, grad, sample_weight=None) -> float
    labels y (n,):        (1/n) sum_r w_r (logsumexp(Z_r) - Z_r[y_r])
    targets y (n, k):     (1/n) sum_r w_r sum_c y_rc (logsumexp(Z_r) - Z_rc)
    grad = w_r (softmax(Z_r) sum_c y_rc - y_r) / n
mean_squared_error(Z, Y, grad, sample_weight=None) -> float
    sum_r w_r sum_c (Z_rc - Y_rc)^2 / (2 n k),  grad = w_r (Z_r - Y_r) / (n k)
softmax(Z, out)
"""
import numpy as np
import pytest

import fastmlp
from fastmlp._backend import kernels

from conftest import assert_close

# (rows, classes): odd sizes; the last is big enough for two native threads.
SHAPES = [(1, 2), (7, 3), (33, 10), (1000, 101)]
SHAPE_IDS = ["1x2", "7x3", "33x10", "1000x101"]


# ---- direct formulas in float64 -----------------------------------------------

def logsumexp(Z):
    Z = np.asarray(Z, dtype=np.float64)
    m = Z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[:, 0]


def direct_softmax(Z):
    Z = np.asarray(Z, dtype=np.float64)
    return np.exp(Z - logsumexp(Z)[:, None])


def direct_cross_entropy(Z, y, w=None):
    """(loss, grad) of the mean softmax cross-entropy, from the definition."""
    Z = np.asarray(Z, dtype=np.float64)
    n, k = Z.shape
    T = np.eye(k)[y] if np.ndim(y) == 1 else np.asarray(y, dtype=np.float64)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    per_row = (T * (logsumexp(Z)[:, None] - Z)).sum(axis=1)
    grad = w[:, None] * (direct_softmax(Z) * T.sum(axis=1, keepdims=True) - T) / n
    return float(np.dot(w, per_row) / n), grad


def direct_mse(Z, Y, w=None):
    Z, Y = np.asarray(Z, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    n, k = Z.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    loss = float(np.dot(w, ((Z - Y) ** 2).sum(axis=1)) / (2 * n * k))
    return loss, w[:, None] * (Z - Y) / (n * k)


def _logits(rng, n, k, dtype, scale=3.0):
    return (scale * rng.standard_normal((n, k))).astype(dtype)


def _soft_targets(rng, n, k, dtype):
    T = rng.random((n, k)) + 0.05
    return (T / T.sum(axis=1, keepdims=True)).astype(dtype)


def _loss_tolerance(dtype):
    return 1e-5 if dtype == np.float32 else 1e-10


# ---- softmax cross-entropy --------------------------------------------------------

TARGET_KINDS = ["labels", "onehot", "soft"]


def _targets(kind, rng, n, k, dtype):
    labels = rng.integers(0, k, size=n).astype(np.int64)
    if kind == "labels":
        return labels
    if kind == "onehot":
        return np.eye(k, dtype=dtype)[labels]
    return _soft_targets(rng, n, k, dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_cross_entropy_native_twin_direct(native, twin, shape, kind, weighted, dtype, threads,
                                          rng):
    n, k = shape
    Z = _logits(rng, n, k, dtype)
    y = _targets(kind, rng, n, k, dtype)
    w = rng.uniform(0.1, 3.0, size=n).astype(dtype) if weighted else None
    g_native = np.full_like(Z, np.nan)
    g_twin = np.full_like(Z, np.nan)
    loss_native = native.softmax_cross_entropy(Z, y, g_native, w)
    loss_twin = twin.softmax_cross_entropy(Z, y, g_twin, w)
    loss_direct, g_direct = direct_cross_entropy(Z, y, w)
    assert isinstance(loss_native, float) and isinstance(loss_twin, float)
    rtol = _loss_tolerance(dtype)
    np.testing.assert_allclose(loss_native, loss_direct, rtol=rtol)
    np.testing.assert_allclose(loss_twin, loss_direct, rtol=rtol)
    assert_close(g_native, g_twin, dtype)
    assert_close(g_native, g_direct, dtype)
    assert_close(g_twin, g_direct, dtype)


def test_labels_and_onehot_agree(backend, dtype, rng):
    k = kernels(backend)
    Z = _logits(rng, 20, 4, dtype)
    labels = rng.integers(0, 4, size=20)
    g1, g2 = np.empty_like(Z), np.empty_like(Z)
    loss1 = k.softmax_cross_entropy(Z, labels, g1)
    loss2 = k.softmax_cross_entropy(Z, np.eye(4, dtype=dtype)[labels], g2)
    np.testing.assert_allclose(loss1, loss2, rtol=_loss_tolerance(dtype))
    assert_close(g1, g2, dtype)


def test_unit_weights_equal_no_weights(backend, dtype, rng):
    k = kernels(backend)
    Z = _logits(rng, 9, 3, dtype)
    y = rng.integers(0, 3, size=9)
    g1, g2 = np.empty_like(Z), np.empty_like(Z)
    loss1 = k.softmax_cross_entropy(Z, y, g1)
    loss2 = k.softmax_cross_entropy(Z, y, g2, np.ones(9, dtype=dtype))
    assert loss1 == pytest.approx(loss2, rel=1e-12)
    np.testing.assert_array_equal(g1, g2)
    # a zero weight removes the row's contribution, but not its count in the mean
    w = np.ones(9, dtype=dtype)
    w[0] = 0
    g3 = np.empty_like(Z)
    loss3 = k.softmax_cross_entropy(Z, y, g3, w)
    loss_rest, _ = direct_cross_entropy(Z[1:], y[1:])
    np.testing.assert_allclose(loss3, loss_rest * 8 / 9, rtol=_loss_tolerance(dtype))
    np.testing.assert_array_equal(g3[0], 0)


def test_cross_entropy_known_value(backend):
    k = kernels(backend)
    Z = np.zeros((2, 4))
    g = np.empty_like(Z)
    assert k.softmax_cross_entropy(Z, np.array([0, 3]), g) == pytest.approx(np.log(4), rel=1e-14)
    np.testing.assert_allclose(g, (0.25 - np.eye(4)[[0, 3]]) / 2, rtol=1e-14)


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_cross_entropy_stable_for_huge_logits(backend, kind, dtype, threads):
    k = kernels(backend)
    Z = np.array([[1e4, -1e4, 0.0],
                  [-1e4, -1e4, 1e4],
                  [-1e4, 1e4, -1e4],
                  [1e4, 1e4, -1e4]], dtype=dtype)
    labels = np.array([0, 0, 1, 1])
    if kind == "labels":
        y = labels
    elif kind == "onehot":
        y = np.eye(3, dtype=dtype)[labels]
    else:
        y = _soft_targets(np.random.default_rng(0), 4, 3, dtype)
    g = np.full_like(Z, np.nan)
    loss = k.softmax_cross_entropy(Z, y, g)
    assert np.isfinite(loss)
    assert np.isfinite(g).all()
    T = np.eye(3)[labels] if np.ndim(y) == 1 else y.astype(np.float64)
    softmax = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(g, (softmax * T.sum(axis=1, keepdims=True) - T) / 4, atol=1e-7)
    expected_loss, _ = direct_cross_entropy(Z, y)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    if kind != "soft":  # rows: 0, 2e4, 0, log 2
        np.testing.assert_allclose(loss, (2e4 + np.log(2)) / 4, rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_cross_entropy_gradient_finite_differences(backend, kind, weighted, rng):
    k = kernels(backend)
    Z = _logits(rng, 5, 4, np.float64, scale=2.0)
    y = _targets(kind, rng, 5, 4, np.float64)
    w = rng.uniform(0.5, 2.0, size=5) if weighted else None
    g = np.empty_like(Z)
    k.softmax_cross_entropy(Z, y, g, w)
    numeric = _finite_differences(lambda Z: k.softmax_cross_entropy(Z, y, np.empty_like(Z), w), Z)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_grad_may_alias_logits(backend, dtype, rng):
    k = kernels(backend)
    Z = _logits(rng, 6, 5, dtype)
    y = rng.integers(0, 5, size=6)
    g = np.empty_like(Z)
    loss = k.softmax_cross_entropy(Z, y, g)
    Z_inplace = Z.copy()
    assert k.softmax_cross_entropy(Z_inplace, y, Z_inplace) == loss
    np.testing.assert_array_equal(Z_inplace, g)


@pytest.mark.parametrize("case", ["grad", "labels_length", "targets_shape", "weights", "empty"])
def test_cross_entropy_bad_shapes_raise(backend, case):
    k = kernels(backend)
    Z = np.zeros((4, 3))
    y = np.array([0, 1, 2, 0])
    grad = np.zeros((4, 3))
    w = None
    if case == "grad":
        grad = np.zeros((3, 4))
    elif case == "labels_length":
        y = np.array([0, 1, 2])
    elif case == "targets_shape":
        y = np.zeros((4, 4))
    elif case == "weights":
        w = np.ones(5)
    elif case == "empty":
        Z, y, grad = np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    with pytest.raises(ValueError):
        k.softmax_cross_entropy(Z, y, grad, w)


# ---- mean squared error -------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", SHAPES + [(5, 1)], ids=SHAPE_IDS + ["5x1"])
def test_mse_native_twin_direct(native, twin, shape, weighted, dtype, threads, rng):
    n, k = shape
    Z = rng.standard_normal((n, k)).astype(dtype)
    Y = rng.standard_normal((n, k)).astype(dtype)
    w = rng.uniform(0.1, 3.0, size=n).astype(dtype) if weighted else None
    g_native, g_twin = np.full_like(Z, np.nan), np.full_like(Z, np.nan)
    loss_native = native.mean_squared_error(Z, Y, g_native, w)
    loss_twin = twin.mean_squared_error(Z, Y, g_twin, w)
    loss_direct, g_direct = direct_mse(Z, Y, w)
    rtol = _loss_tolerance(dtype)
    np.testing.assert_allclose(loss_native, loss_direct, rtol=rtol)
    np.testing.assert_allclose(loss_twin, loss_direct, rtol=rtol)
    assert_close(g_native, g_twin, dtype)
    assert_close(g_native, g_direct, dtype)


def test_mse_known_value(backend):
    k = kernels(backend)
    Z = np.array([[1.0, 2.0], [3.0, 4.0]])
    Y = np.array([[0.0, 2.0], [3.0, 6.0]])
    g = np.empty_like(Z)
    # (1 + 0 + 0 + 4) / (2 * 2 * 2)
    assert k.mean_squared_error(Z, Y, g) == pytest.approx(5 / 8, rel=1e-15)
    np.testing.assert_allclose(g, (Z - Y) / 4, rtol=1e-15)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_mse_gradient_finite_differences(backend, weighted, rng):
    k = kernels(backend)
    Z = rng.standard_normal((6, 3))
    Y = rng.standard_normal((6, 3))
    w = rng.uniform(0.5, 2.0, size=6) if weighted else None
    g = np.empty_like(Z)
    k.mean_squared_error(Z, Y, g, w)
    numeric = _finite_differences(lambda Z: k.mean_squared_error(Z, Y, np.empty_like(Z), w), Z)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-10)


def test_mse_large_values_finite(backend, dtype):
    k = kernels(backend)
    Z = np.array([[1e4, -1e4]], dtype=dtype)
    Y = np.array([[-1e4, 1e4]], dtype=dtype)
    g = np.empty_like(Z)
    loss = k.mean_squared_error(Z, Y, g)
    np.testing.assert_allclose(loss, 2 * 4e8 / 4, rtol=1e-6)
    np.testing.assert_allclose(g, [[1e4, -1e4]], rtol=1e-6)


@pytest.mark.parametrize("case", ["Y", "grad", "weights", "empty"])
def test_mse_bad_shapes_raise(backend, case):
    k = kernels(backend)
    Z, Y, grad, w = np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2)), None
    if case == "Y":
        Y = np.zeros((4, 3))
    elif case == "grad":
        grad = np.zeros((2, 4))
    elif case == "weights":
        w = np.ones(3)
    else:
        Z, Y, grad = np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2))
    with pytest.raises(ValueError):
        k.mean_squared_error(Z, Y, grad, w)


# ---- softmax -------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_softmax_rows_sum_to_one(native, twin, shape, dtype, threads, rng):
    Z = _logits(rng, *shape, dtype, scale=5.0)
    P_native, P_twin = np.full_like(Z, np.nan), np.full_like(Z, np.nan)
    native.softmax(Z, P_native)
    twin.softmax(Z, P_twin)
    atol = 1e-6 if dtype == np.float32 else 1e-14
    for P in (P_native, P_twin):
        assert (P >= 0).all() and (P <= 1).all()
        np.testing.assert_allclose(P.sum(axis=1, dtype=np.float64), 1.0, atol=atol)
        assert_close(P, direct_softmax(Z), dtype)


def test_softmax_stable_and_in_place(backend, dtype):
    k = kernels(backend)
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [88.0, 89.0, -100.0]], dtype=dtype)
    expected = direct_softmax(Z)
    k.softmax(Z, Z)  # out may be Z
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(Z[1], [1 / 3] * 3, rtol=1e-6)


def test_softmax_wrong_shape_raises(backend):
    with pytest.raises(ValueError):
        kernels(backend).softmax(np.zeros((3, 2)), np.zeros((2, 3)))


# ---- the public face ------------------------------------------------------------

def test_loss_names():
    assert fastmlp.losses.get("softmax_cross_entropy").classification
    assert fastmlp.losses.get("cross_entropy").name == "softmax_cross_entropy"
    assert fastmlp.losses.get("mean_squared_error").name == "mse"
    assert not fastmlp.losses.get("mse").classification
    with pytest.raises(ValueError, match="unknown loss"):
        fastmlp.losses.get("cosine_similarity")


def _finite_differences(f, Z, h=1e-6):
    numeric = np.zeros_like(Z)
    for i in np.ndindex(Z.shape):
        old = Z[i]
        Z[i] = old + h
        up = f(Z)
        Z[i] = old - h
        down = f(Z)
        Z[i] = old
        numeric[i] = (up - down) / (2 * h)
    return numeric
