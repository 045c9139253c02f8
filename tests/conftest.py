"""Shared fixtures and helpers for the fastmlp test suite.

The suite is a matrix (STYLE.md): most kernel tests run over
``backend`` ("native", "numpy"), ``dtype`` (float32, float64) and ``threads``
(1, 2).  The native kernels only split work across threads above a size
threshold (``_runtime.MIN_WORK_PER_THREAD`` multiply-adds per thread), so the
tests that must exercise two threads use a few shapes large enough to cross
it; the ``threads`` fixture makes sure the setting is in force either way.
"""
import numpy as np
import pytest

import fastmlp
from fastmlp._backend import kernels

BACKENDS = ("native", "numpy")
DTYPES = (np.float32, np.float64)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


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


def textbook_forward(name, z, alpha=0.01):
    """f(z) in float64, straight from the definition."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    raise AssertionError(name)


def textbook_derivative(name, z, alpha=0.01):
    """f'(z) in float64, straight from the definition."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        s = textbook_forward("sigmoid", z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
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
