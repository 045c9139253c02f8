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


# ---- the catalogue: every loss through loss_and_gradient -----------------------------
#
# Each loss is checked against its textbook definition in float64 (written here from
# the formula, not from the kernels), native against twin, by finite differences,
# for stability and NaN propagation, and with sample weights.

LOSS_NAMES = kernels("numpy").LOSSES
PARAMS = {"huber": 0.7, "mape": 1e-7}      # non-default huber delta: the parameter must arrive
PER_OUTPUT = {"mse", "binary_cross_entropy", "mae", "mape", "huber", "poisson"}


def _sigmoid64(Z):
    Z = np.asarray(Z, dtype=np.float64)
    return np.where(Z >= 0, 1 / (1 + np.exp(-np.abs(Z))), np.exp(-np.abs(Z)) / (1 + np.exp(-np.abs(Z))))


def textbook_loss(name, Z, y, w=None, param=None):
    """(loss, grad) of the weighted batch mean of loss `name`, straight from its definition."""
    param = PARAMS.get(name) if param is None else param
    Z = np.asarray(Z, dtype=np.float64)
    n, k = Z.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if name == "softmax_cross_entropy":
        return direct_cross_entropy(Z, y, w)
    if name == "hinge":
        per, G = np.zeros(n), np.zeros((n, k))
        for r in range(n):
            others = [c for c in range(k) if c != y[r]]
            j = others[int(np.argmax(Z[r, others]))]
            margin = 1 + Z[r, j] - Z[r, y[r]]
            if margin > 0:
                per[r] = margin
                G[r, j], G[r, y[r]] = 1, -1
        divisor = n
    elif name == "kl_divergence":
        T = np.asarray(y, dtype=np.float64)
        P = direct_softmax(Z)
        log_P = Z - logsumexp(Z)[:, None]
        per = np.where(T > 0, T * (np.log(np.where(T > 0, T, 1.0)) - log_P), 0.0).sum(axis=1)
        G = P * T.sum(axis=1, keepdims=True) - T
        divisor = n
    else:
        T = np.asarray(y, dtype=np.float64)
        D = Z - T
        if name == "mse":
            E, G = D ** 2 / 2, D
        elif name == "mae":
            E, G = np.abs(D), np.sign(D)
        elif name == "mape":
            den = np.maximum(np.abs(T), param)
            E, G = 100 * np.abs(D) / den, 100 * np.sign(D) / den
        elif name == "huber":
            E = np.where(np.abs(D) <= param, D ** 2 / 2, param * (np.abs(D) - param / 2))
            G = np.clip(D, -param, param)
        elif name == "binary_cross_entropy":
            # -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))), logs taken stably
            E = T * np.logaddexp(0, -Z) + (1 - T) * np.logaddexp(0, Z)
            G = _sigmoid64(Z) - T
        elif name == "poisson":
            E, G = np.exp(Z) - T * Z, np.exp(Z) - T
        else:
            raise AssertionError(name)
        per, divisor = E.sum(axis=1), n * k
    return float(np.dot(w, per) / divisor), w[:, None] * G / divisor


def loss_case(name, rng, n, k, dtype):
    """Outputs Z and targets y suited to loss `name` (away from its kinks)."""
    if name in ("softmax_cross_entropy", "hinge"):
        return _logits(rng, n, k, dtype), rng.integers(0, k, size=n).astype(np.int64)
    if name == "kl_divergence":
        T = rng.random((n, k)) * (rng.random((n, k)) > 0.3)   # some exact zeros: 0 log 0
        T[np.arange(n), rng.integers(0, k, size=n)] += 0.5
        return _logits(rng, n, k, dtype), (T / T.sum(axis=1, keepdims=True)).astype(dtype)
    if name == "binary_cross_entropy":
        T = rng.random((n, k))
        T[rng.random((n, k)) < 0.3] = 0.0
        T[rng.random((n, k)) < 0.3] = 1.0
        return _logits(rng, n, k, dtype), T.astype(dtype)
    if name == "poisson":
        return rng.standard_normal((n, k)).astype(dtype), \
            rng.poisson(2.0, size=(n, k)).astype(dtype)
    T = rng.standard_normal((n, k))
    if name == "mape":
        T[rng.random((n, k)) < 0.1] = 0.0                   # the epsilon guard
    return (T + 2 * rng.standard_normal((n, k))).astype(dtype), T.astype(dtype)


def run_loss(k, name, Z, y, grad=None, w=None, param=None):
    grad = np.full_like(Z, np.nan) if grad is None else grad
    param = PARAMS.get(name, 0.0) if param is None else param
    return k.loss_and_gradient(Z, y, grad, k.loss_code(name), param, w), grad


def test_both_backends_list_the_same_losses(native, twin):
    assert native.LOSSES == twin.LOSSES
    assert [native.loss_code(n) for n in LOSS_NAMES] == list(range(len(LOSS_NAMES)))
    assert set(LOSS_NAMES) == set(fastmlp.losses.LOSSES)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_native_twin_textbook(native, twin, name, shape, weighted, dtype, threads, rng):
    n, k = shape
    Z, y = loss_case(name, rng, n, k, dtype)
    w = rng.uniform(0.1, 3.0, size=n).astype(dtype) if weighted else None
    loss_native, g_native = run_loss(native, name, Z, y, w=w)
    loss_twin, g_twin = run_loss(twin, name, Z, y, w=w)
    loss_book, g_book = textbook_loss(name, Z, y, w)
    assert isinstance(loss_native, float) and isinstance(loss_twin, float)
    rtol = _loss_tolerance(dtype)
    np.testing.assert_allclose(loss_native, loss_book, rtol=rtol)
    np.testing.assert_allclose(loss_twin, loss_book, rtol=rtol)
    assert_close(g_native, g_twin, dtype)
    assert_close(g_native, g_book, dtype)
    assert_close(g_twin, g_book, dtype)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_named_kernel_equals_loss_and_gradient(backend, name, rng):
    k = kernels(backend)
    Z, y = loss_case(name, rng, 6, 3, np.float64)
    function = {"softmax_cross_entropy": k.softmax_cross_entropy, "mse": k.mean_squared_error,
                "binary_cross_entropy": k.binary_cross_entropy, "mae": k.mean_absolute_error,
                "mape": k.mean_absolute_percentage_error, "huber": k.huber,
                "hinge": k.multiclass_hinge, "kl_divergence": k.kl_divergence,
                "poisson": k.poisson}[name]
    g1, g2 = np.empty_like(Z), np.empty_like(Z)
    extra = {"huber": {"delta": 0.7}, "mape": {"epsilon": 1e-7}}.get(name, {})
    loss1 = function(Z, y, g1, None, **extra)
    loss2, _ = run_loss(k, name, Z, y, grad=g2)
    assert loss1 == loss2
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_gradient_finite_differences(backend, name, weighted, rng):
    k = kernels(backend)
    Z, y = loss_case(name, rng, 5, 4, np.float64)
    w = rng.uniform(0.5, 2.0, size=5) if weighted else None
    # mape: a larger epsilon, so the zero targets' terms do not drown the differences
    param = 0.5 if name == "mape" else None
    _, g = run_loss(k, name, Z, y, w=w, param=param)
    numeric = _finite_differences(lambda Z: run_loss(k, name, Z, y, w=w, param=param)[0], Z)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_weights(backend, name, dtype, rng):
    k = kernels(backend)
    n = 9
    Z, y = loss_case(name, rng, n, 3, dtype)
    loss_none, g_none = run_loss(k, name, Z, y)
    loss_ones, g_ones = run_loss(k, name, Z, y, w=np.ones(n, dtype=dtype))
    assert loss_ones == pytest.approx(loss_none, rel=1e-12)
    np.testing.assert_array_equal(g_ones, g_none)
    # a zero weight drops the row but keeps its count in the mean; weight 2 counts it twice
    w = np.ones(n, dtype=dtype)
    w[0], w[1] = 0, 2
    loss_w, g_w = run_loss(k, name, Z, y, w=w)
    keep = np.r_[1, 1, 2:n]
    loss_dup, g_dup = run_loss(k, name, np.ascontiguousarray(Z[keep]), np.ascontiguousarray(y[keep]))
    np.testing.assert_allclose(loss_w * n, loss_dup * n, rtol=_loss_tolerance(dtype))
    np.testing.assert_array_equal(g_w[0], 0)
    assert_close(g_w[1], 2 * g_dup[0], dtype)
    assert_close(g_w[2:], g_dup[2:], dtype)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_is_nan_when_an_output_is(backend, name, dtype, rng):
    # the compiled step detects divergence by a non-finite loss
    k = kernels(backend)
    Z, y = loss_case(name, rng, 4, 3, dtype)
    for bad in (np.nan, np.inf):
        for col in range(3):  # hinge: the true class's score, and another's
            Z_bad = Z.copy()
            Z_bad[1, col] = bad
            with np.errstate(invalid="ignore", over="ignore"):
                loss, _ = run_loss(k, name, Z_bad, y)
            assert not np.isfinite(loss), (name, bad, col)
            if np.isnan(bad):
                assert np.isnan(loss), name


def test_loss_known_values(backend):
    k = kernels(backend)
    Z = np.array([[0.5, -2.0], [3.0, 1.0]])
    T = np.array([[0.0, 0.0], [2.0, 2.0]])
    # residuals 0.5, -2, 1, -1 (|d| <= 1 for three of them)
    assert run_loss(k, "huber", Z, T, param=1.0)[0] == pytest.approx((0.125 + 1.5 + 0.5 + 0.5) / 4)
    assert run_loss(k, "mae", Z, T)[0] == pytest.approx(4.5 / 4)
    # zero targets divide by epsilon
    assert run_loss(k, "mape", Z, T, param=0.1)[0] == pytest.approx((5 + 20 + 0.5 + 0.5) * 100 / 4)
    assert run_loss(k, "binary_cross_entropy", np.zeros((1, 3)), np.array([[0, 1, 0.5]]))[0] \
        == pytest.approx(np.log(2), rel=1e-15)
    assert run_loss(k, "poisson", np.zeros((1, 2)), np.array([[0.0, 3.0]]))[0] == pytest.approx(1.0)
    # Crammer-Singer: margins 1 + 2 - 3 = 0 (no loss) and 1 + 3 - 1 = 3; one-vs-all would differ
    loss, g = run_loss(k, "hinge", np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0]]), np.array([0, 1]))
    assert loss == pytest.approx(3 / 2)
    np.testing.assert_array_equal(g, [[0, 0, 0], [0.5, -0.5, 0]])
    # KL of a distribution to itself is 0, with a zero in the target
    P = np.array([[0.5, 0.5, 0.0]])
    loss, g = run_loss(k, "kl_divergence", np.log(np.array([[0.5, 0.5, 1e-300]])), P)
    assert loss == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(g, 0, atol=1e-15)


def test_huber_with_large_delta_is_mse(backend, rng):
    k = kernels(backend)
    Z, Y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    loss_h, g_h = run_loss(k, "huber", Z, Y, param=1e6)
    loss_m, g_m = run_loss(k, "mse", Z, Y)
    assert loss_h == pytest.approx(loss_m, rel=1e-14)
    np.testing.assert_allclose(g_h, g_m, rtol=1e-14)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "hinge", "kl_divergence"])
def test_logit_losses_stable_for_huge_logits(backend, name, dtype, threads):
    k = kernels(backend)
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4]],
                 dtype=dtype)
    _, y = loss_case(name, np.random.default_rng(1), 4, 3, dtype)
    loss, g = run_loss(k, name, Z, y)
    assert np.isfinite(loss) and np.isfinite(g).all()
    expected, g_expected = textbook_loss(name, Z, y)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(g, g_expected, atol=1e-7)


def test_binary_cross_entropy_stable_at_100_in_float32(backend, threads):
    k = kernels(backend)
    Z = np.array([[100, -100, 100, -100, 100, -100]], dtype=np.float32)
    T = np.array([[1, 1, 0, 0, 0.5, 0.5]], dtype=np.float32)
    loss, g = run_loss(k, "binary_cross_entropy", Z, T)
    assert np.isfinite(loss) and np.isfinite(g).all()
    # per output: 0, 100, 100, 0, 50, 50 (up to e^-100)
    np.testing.assert_allclose(loss, 300 / 6, rtol=1e-6)
    np.testing.assert_allclose(g[0] * 6, [0, -1, 1, 0, 0.5, -0.5], atol=1e-7)


@pytest.mark.parametrize("dtype_name, z_max, rtol", [("float64", 36, 1e-14), ("float32", 15, 1e-6)])
def test_binary_cross_entropy_keeps_tiny_losses(backend, dtype_name, z_max, rtol):
    # confident, correct outputs: the loss is log1p(e^-|z|), far below the rounding of |z|
    k = kernels(backend)
    z = np.linspace(0.0, z_max, 97)
    Z = np.concatenate([z, -z]).astype(dtype_name)[:, None]
    T = np.concatenate([np.ones_like(z), np.zeros_like(z)]).astype(dtype_name)[:, None]
    for i in range(0, Z.shape[0], 7):
        w = np.zeros(Z.shape[0], dtype=dtype_name)
        w[i] = Z.shape[0]   # the mean then is row i's loss
        loss, _ = run_loss(k, "binary_cross_entropy", Z, T, w=w)
        expected = np.log1p(np.exp(-abs(float(Z[i, 0]))))
        np.testing.assert_allclose(loss, expected, rtol=rtol, err_msg=f"z = {Z[i, 0]}")


@pytest.mark.parametrize("dtype_name, low, rtol", [("float64", -300, 2e-15), ("float32", -37, 5e-7)])
def test_kl_divergence_entropy_term_accuracy(backend, dtype_name, low, rtol):
    # with one output, softmax(z) = 1 and the loss is t log t alone (the native
    # kernel's vectorized log is checked here over the whole normal range)
    k = kernels(backend)
    t = np.logspace(low, 0, 201)[:-1].astype(dtype_name)
    T = t[:, None].copy()
    Z = np.zeros_like(T)
    for i in range(0, len(t), 3):
        w = np.zeros(len(t), dtype=dtype_name)
        w[i] = len(t)   # the mean then is row i's loss
        loss, _ = run_loss(k, "kl_divergence", Z, T, w=w)
        expected = float(t[i]) * np.log(float(t[i]))
        np.testing.assert_allclose(loss, expected, rtol=rtol, err_msg=f"t = {t[i]}")


def test_poisson_range(backend, dtype):
    k = kernels(backend)
    Z = np.array([[-1e4, 0.0, 80.0]], dtype=dtype)
    T = np.array([[2.0, 1.0, 3.0]], dtype=dtype)
    loss, g = run_loss(k, "poisson", Z, T)
    assert np.isfinite(loss) and np.isfinite(g).all()
    expected, g_expected = textbook_loss("poisson", Z, T)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(g, g_expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["mae", "mape", "huber"])
def test_regression_losses_large_values_finite(backend, name, dtype):
    k = kernels(backend)
    Z = np.array([[1e4, -1e4, 3e4]], dtype=dtype)
    Y = np.array([[-1e4, 1e4, 0.0]], dtype=dtype)
    loss, g = run_loss(k, name, Z, Y)
    expected, g_expected = textbook_loss(name, Z, Y)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(g, g_expected, rtol=1e-6)


@pytest.mark.parametrize("case", ["kind", "labels_to_targets_loss", "targets_to_hinge",
                                  "huber_delta", "mape_epsilon", "hinge_one_class",
                                  "label_range", "negative_label", "targets_are_grad"])
def test_loss_bad_arguments_raise(backend, case):
    k = kernels(backend)
    Z, T, labels = np.zeros((4, 3)), np.zeros((4, 3)), np.array([0, 1, 2, 0])
    name, y, param, grad = "mse", T, None, np.zeros((4, 3))
    if case == "kind":
        with pytest.raises(ValueError, match="unknown loss"):
            k.loss_and_gradient(Z, T, grad, len(LOSS_NAMES))
        with pytest.raises(ValueError, match="unknown loss"):
            k.loss_code("cosine")
        return
    if case == "labels_to_targets_loss":
        name, y = "binary_cross_entropy", labels
    elif case == "targets_to_hinge":
        name = "hinge"
    elif case == "huber_delta":
        name, param = "huber", 0.0
    elif case == "mape_epsilon":
        name, param = "mape", -1.0
    elif case == "hinge_one_class":
        name, Z, grad, y = "hinge", np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4, dtype=np.int64)
    elif case == "label_range":
        name, y = "hinge", np.array([0, 1, 3, 0])
    elif case == "negative_label":
        name, y = "softmax_cross_entropy", np.array([0, -1, 2, 0])
    elif case == "targets_are_grad":
        name, grad = "poisson", T
    with pytest.raises(ValueError):
        run_loss(k, name, Z, y, grad=grad, param=param)


# ---- what predict() returns per loss ----------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 3), (1000, 101)], ids=["7x3", "1000x101"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_output_native_twin_textbook(native, twin, name, shape, dtype, threads, rng):
    Z = _logits(rng, *shape, dtype, scale=3.0)
    out_native, out_twin = np.full_like(Z, np.nan), np.full_like(Z, np.nan)
    native.loss_output(Z, native.loss_code(name), out_native)
    twin.loss_output(Z, twin.loss_code(name), out_twin)
    expected = {"softmax_cross_entropy": direct_softmax, "kl_divergence": direct_softmax,
                "binary_cross_entropy": _sigmoid64,
                "poisson": lambda Z: np.exp(Z.astype(np.float64))}.get(name, lambda Z: Z)(Z)
    assert_close(out_native, expected, dtype)
    assert_close(out_twin, expected, dtype)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "softmax_cross_entropy"])
def test_loss_output_stable_and_in_place(backend, name):
    k = kernels(backend)
    Z = np.array([[100, -100, 0], [-1e4, 1e4, 5]], dtype=np.float32)
    expected = (_sigmoid64 if name == "binary_cross_entropy" else direct_softmax)(Z)
    k.loss_output(Z, k.loss_code(name), Z)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z, expected, rtol=1e-6, atol=1e-30)


# ---- the public face: fastmlp.losses ------------------------------------------------------

def test_every_loss_by_name_and_alias():
    for name in LOSS_NAMES:
        loss = fastmlp.losses.get(name)
        assert loss.name == name and loss.kind == LOSS_NAMES.index(name)
        assert fastmlp.losses.get(loss) == loss
    for alias, name in [("mean_absolute_error", "mae"), ("mean_absolute_percentage_error", "mape"),
                        ("bce", "binary_cross_entropy"), ("kld", "kl_divergence")]:
        assert fastmlp.losses.get(alias).name == name
    assert fastmlp.losses.get("huber").param == 1.0
    assert fastmlp.losses.get("mape").param == 1e-7
    assert {n for n in LOSS_NAMES if fastmlp.losses.get(n).classification} == \
        {"softmax_cross_entropy", "binary_cross_entropy", "hinge", "kl_divergence"}


def test_loss_parameters():
    assert fastmlp.losses.huber(delta=2.5) == fastmlp.losses.Loss("huber", 2.5)
    assert repr(fastmlp.losses.huber(0.5)) == "huber(delta=0.5)"
    assert repr(fastmlp.losses.get("poisson")) == "poisson"
    assert fastmlp.losses.mape(epsilon=1e-3).param == 1e-3
    for bad in (0, -1.0, np.inf, np.nan, "x", None):
        with pytest.raises(ValueError, match="delta"):
            fastmlp.losses.huber(bad)
        with pytest.raises(ValueError, match="epsilon"):
            fastmlp.losses.mape(bad)
    with pytest.raises(ValueError, match="delta"):
        fastmlp.losses.get(fastmlp.losses.Loss("huber", -1.0))
    with pytest.raises(ValueError, match="unknown loss"):
        fastmlp.losses.get(fastmlp.losses.Loss("cosine"))
    with pytest.raises(ValueError, match="unknown loss"):
        fastmlp.losses.get(None)
