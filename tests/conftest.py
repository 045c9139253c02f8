"""Shared fixtures and helpers for the fastmlp test suite.

The suite is a matrix (STYLE.md): most kernel tests run over
``backend`` ("native", "numpy"), ``dtype`` (float32, float64) and ``threads``
(1, 2).  The native kernels only split work across threads above a size
threshold (``_runtime.MIN_WORK_PER_THREAD`` multiply-adds per thread), so the
tests that must exercise two threads use a few shapes large enough to cross
it; the ``threads`` fixture makes sure the setting is in force either way.
"""
import math

import numpy as np
import pytest

import fastmlp
from fastmlp._backend import kernels

BACKENDS = ("native", "numpy")
DTYPES = (np.float32, np.float64)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "binary_step", "elu",
               "selu", "softplus", "softsign", "arctan", "asinh", "isru", "isrlu", "sqnl",
               "bent_identity", "gelu", "gelu_exact", "silu", "brelu")
# the default parameter of the parametrized ones (kernels use it when alpha is None)
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0, "isru": 1.0, "isrlu": 1.0, "silu": 1.0}

SELU_ALPHA = 1.6732632423543772848170429916717     # Klambauer et al. 2017, eq. 14
SELU_LAMBDA = 1.0507009873554804934193349852946


def tolerance(dtype):
    """Relative tolerance for comparing two computations of the same quantity."""
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-5


def assert_close(actual, desired, dtype, rtol=None, atol=None, err_msg=""):
    """assert_allclose with the dtype's rtol and an atol scaled to the data.

    Values near zero (a ReLU output, a gradient entry that cancels) have no
    meaningful relative error, so atol is rtol times the largest magnitude
    of `desired`.
    """
    desired = np.asarray(desired)
    rtol = tolerance(dtype) if rtol is None else rtol
    if atol is None:
        scale = float(np.max(np.abs(desired))) if desired.size else 0.0
        atol = rtol * max(scale, 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def numeric_gradient(model, X, y, i, indices=None, h=1e-6):
    """Central differences (L(w + h) - L(w - h)) / (2 h) of the model's mean loss on
    (X, y), as loss_and_gradients reports it, for the entries `indices` (default:
    all, in np.ndindex order) of get_weights()[i]; a 1-D array.  The weights are
    restored afterwards."""
    weights = model.get_weights()
    W = weights[i]
    indices = list(np.ndindex(W.shape)) if indices is None else indices
    numeric = np.empty(len(indices))
    for j, idx in enumerate(indices):
        old = W[idx]
        W[idx] = old + h
        model.set_weights(weights)
        up = model.loss_and_gradients(X, y)[0]
        W[idx] = old - h
        model.set_weights(weights)
        down = model.loss_and_gradients(X, y)[0]
        W[idx] = old
        numeric[j] = (up - down) / (2 * h)
    model.set_weights(weights)
    return numeric


def _odd_units(z):
    """Mask of the odd units (columns 1, 3, ...) along the last axis."""
    odd = np.zeros(z.shape, dtype=bool)
    odd[..., 1::2] = True
    return odd


def textbook_forward(name, z, alpha=None):
    """f(z) in float64, straight from the definition (z's last axis: the units)."""
    z = np.asarray(z, dtype=np.float64)
    alpha = DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha
    with np.errstate(over="ignore"):
        if name == "identity":
            return z.copy()
        if name == "binary_step":
            return np.where(z >= 0, 1.0, 0.0)
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
        if name == "tanh":
            return np.tanh(z)
        if name == "relu":
            return np.where(z > 0, z, 0.0)
        if name == "leaky_relu":
            return np.where(z > 0, z, alpha * z)
        if name == "elu":
            return np.where(z > 0, z, alpha * np.expm1(z))
        if name == "selu":
            return SELU_LAMBDA * np.where(z > 0, z, SELU_ALPHA * np.expm1(z))
        if name == "softplus":
            return np.log1p(np.exp(z))
        if name == "softsign":
            return z / (1.0 + np.abs(z))
        if name == "arctan":
            return np.arctan(z)
        if name == "asinh":
            return np.arcsinh(z)
        if name == "isru":
            return z / np.sqrt(1.0 + alpha * z * z)
        if name == "isrlu":
            return np.where(z >= 0, z, z / np.sqrt(1.0 + alpha * z * z))
        if name == "sqnl":
            return np.select([z > 2, z >= 0, z >= -2], [1.0, z - z * z / 4, z + z * z / 4], -1.0)
        if name == "bent_identity":
            return (np.sqrt(z * z + 1.0) - 1.0) / 2.0 + z
        if name == "gelu":
            return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
        if name == "gelu_exact":
            return 0.5 * z * (1.0 + _erf(z / np.sqrt(2.0)))
        if name == "silu":
            return z / (1.0 + np.exp(-alpha * z))
        if name == "brelu":
            return np.where(_odd_units(z), np.minimum(z, 0.0), np.maximum(z, 0.0))
    raise AssertionError(name)


def textbook_derivative(name, z, alpha=None):
    """f'(z) in float64, straight from the definition (z's last axis: the units)."""
    z = np.asarray(z, dtype=np.float64)
    alpha = DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha
    with np.errstate(over="ignore"):
        if name == "identity":
            return np.ones_like(z)
        if name == "binary_step":
            return np.zeros_like(z)
        if name == "sigmoid":
            s = textbook_forward("sigmoid", z)
            return s * (1.0 - s)
        if name == "tanh":
            return 1.0 - np.tanh(z) ** 2
        if name == "relu":
            return (z > 0).astype(np.float64)
        if name == "leaky_relu":
            return np.where(z > 0, 1.0, alpha)
        if name == "elu":
            return np.where(z > 0, 1.0, alpha * np.exp(z))
        if name == "selu":
            return SELU_LAMBDA * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(z))
        if name == "softplus":
            return 1.0 / (1.0 + np.exp(-z))
        if name == "softsign":
            return 1.0 / (1.0 + np.abs(z)) ** 2
        if name == "arctan":
            return 1.0 / (1.0 + z * z)
        if name == "asinh":
            return 1.0 / np.sqrt(1.0 + z * z)
        if name == "isru":
            return (1.0 + alpha * z * z) ** -1.5
        if name == "isrlu":
            return np.where(z >= 0, 1.0, (1.0 + alpha * z * z) ** -1.5)
        if name == "sqnl":
            return np.select([z > 2, z >= 0, z >= -2], [0.0, 1.0 - z / 2, 1.0 + z / 2], 0.0)
        if name == "bent_identity":
            return z / (2.0 * np.sqrt(z * z + 1.0)) + 1.0
        if name == "gelu":
            c = np.sqrt(2.0 / np.pi)
            t = np.tanh(c * (z + 0.044715 * z ** 3))
            return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * z * z)
        if name == "gelu_exact":
            cdf = 0.5 * (1.0 + _erf(z / np.sqrt(2.0)))
            return cdf + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
        if name == "silu":
            s = 1.0 / (1.0 + np.exp(-alpha * z))
            return s + alpha * z * s * (1.0 - s)
        if name == "brelu":
            return np.where(_odd_units(z), z < 0, z > 0).astype(np.float64)
    raise AssertionError(name)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with fastmlp.threads(n) in force; yields n."""
    with fastmlp.threads(request.param):
        yield request.param


@pytest.fixture
def native():
    return kernels("native")


@pytest.fixture
def twin():
    return kernels("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _restore_threads():
    """No test may leak a thread setting into the next one."""
    before = fastmlp.get_num_threads()
    yield
    after = fastmlp.get_num_threads()
    if after != before:
        fastmlp.set_num_threads(before)
        pytest.fail(f"the test left {after} threads set (was {before})")
