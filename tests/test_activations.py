"""Activation kernels: native vs NumPy twin vs the textbook formulas.

activation_forward(Z, activation, out, alpha) writes out = f(Z);
activation_backward(Z, A, dA, activation, out, alpha) writes out = dA * f'(Z).
"""
import functools

import numpy as np
import pytest

import fastmlp
from fastmlp._backend import kernels

from conftest import ACTIVATIONS, assert_close, textbook_derivative, textbook_forward

# (1, 1) and (7, 33) are odd sizes, run with 1 and 2 threads; (1700, 1900) is
# 3.2M elements, enough for the native kernel to really split the rows over two
# threads (with one it would add nothing but time).
SHAPE_THREADS = pytest.mark.parametrize(
    "shape, threads",
    [((1, 1), 1), ((1, 1), 2), ((7, 33), 1), ((7, 33), 2), ((1700, 1900), 2)],
    ids=["1x1-threads1", "1x1-threads2", "7x33-threads1", "7x33-threads2", "large-threads2"],
    indirect=["threads"])


def _inputs(rng, shape, dtype, scale=3.0):
    Z = (scale * rng.standard_normal(shape)).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    return Z, dA


@functools.lru_cache(maxsize=None)
def _cached_inputs(shape, dtype):
    """Inputs for the matrix tests, drawn once per shape and dtype (read-only)."""
    Z, dA = _inputs(np.random.default_rng(sum(shape)), shape, np.dtype(dtype))
    Z.flags.writeable = dA.flags.writeable = False
    return Z, dA


# ---- the table ------------------------------------------------------------------

def test_native_table_matches_twin(native, twin):
    # the C list (csrc/fm_kernels.h FM_ACTIVATIONS) and the twin's: same names, same order
    assert tuple(native.ACTIVATIONS) == tuple(twin.ACTIVATIONS)
    assert tuple(native.ACTIVATIONS) == ACTIVATIONS
    assert tuple(fastmlp.activations.ACTIVATIONS) == ACTIVATIONS
    for code, name in enumerate(ACTIVATIONS):
        assert native.activation_code(name) == code
        assert twin.activation_code(name) == code


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", ["gelu", "", "ReLU", "linear"])
def test_unknown_activation_raises(backend, name):
    k = kernels(backend)
    Z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="unknown activation"):
        k.activation_code(name)
    with pytest.raises(ValueError, match="unknown activation"):
        k.activation_forward(Z, name, np.empty_like(Z))
    with pytest.raises(ValueError, match="unknown activation"):
        k.activation_backward(Z, Z, Z, name, np.empty_like(Z))


def test_public_aliases():
    assert fastmlp.activations.get(None).name == "identity"
    assert fastmlp.activations.get("linear").name == "identity"
    assert fastmlp.activations.get("leaky_relu").alpha == pytest.approx(0.01)
    assert fastmlp.activations.leaky_relu(0.2).alpha == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown activation"):
        fastmlp.activations.get("swish")
    with pytest.raises(ValueError, match="alpha"):
        fastmlp.activations.leaky_relu(-1.0)


# ---- native vs twin ------------------------------------------------------------

@SHAPE_THREADS
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_native_matches_twin(native, twin, name, shape, dtype, threads):
    Z, _ = _cached_inputs(shape, dtype)
    out_native = np.full_like(Z, np.nan)
    out_twin = np.full_like(Z, np.nan)
    native.activation_forward(Z, name, out_native)
    twin.activation_forward(Z, name, out_twin)
    assert out_native.dtype == dtype
    assert_close(out_native, out_twin, dtype)


@SHAPE_THREADS
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_native_matches_twin(native, twin, name, shape, dtype, threads):
    Z, dA = _cached_inputs(shape, dtype)
    A = np.empty_like(Z)
    twin.activation_forward(Z, name, A)
    out_native = np.full_like(Z, np.nan)
    out_twin = np.full_like(Z, np.nan)
    native.activation_backward(Z, A, dA, name, out_native)
    twin.activation_backward(Z, A, dA, name, out_twin)
    assert_close(out_native, out_twin, dtype)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.5])
def test_leaky_relu_alpha_is_used(backend, dtype, alpha, rng):
    k = kernels(backend)
    Z, dA = _inputs(rng, (5, 9), dtype)
    A = np.empty_like(Z)
    k.activation_forward(Z, "leaky_relu", A, alpha=alpha)
    assert_close(A, textbook_forward("leaky_relu", Z, alpha), dtype)
    out = np.empty_like(Z)
    k.activation_backward(Z, A, dA, "leaky_relu", out, alpha=alpha)
    assert_close(out, dA * textbook_derivative("leaky_relu", Z, alpha), dtype)


# ---- vs the formulas -----------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_and_backward_match_textbook(backend, name, dtype, rng):
    k = kernels(backend)
    Z, dA = _inputs(rng, (13, 17), dtype)
    A = np.empty_like(Z)
    k.activation_forward(Z, name, A)
    assert_close(A, textbook_forward(name, Z), dtype)
    out = np.empty_like(Z)
    k.activation_backward(Z, A, dA, name, out)
    expected = dA.astype(np.float64) * textbook_derivative(name, Z)
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_known_values(backend, name):
    k = kernels(backend)
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    A = np.empty_like(Z)
    k.activation_forward(Z, name, A)
    expected = {
        "identity": [-2.0, -0.5, 0.0, 0.5, 2.0],
        "sigmoid": [0.11920292202211755, 0.3775406687981454, 0.5, 0.6224593312018546,
                    0.8807970779778823],
        "tanh": [-0.9640275800758169, -0.46211715726000974, 0.0, 0.46211715726000974,
                 0.9640275800758169],
        "relu": [0.0, 0.0, 0.0, 0.5, 2.0],
        "leaky_relu": [-0.02, -0.005, 0.0, 0.5, 2.0],
    }[name]
    np.testing.assert_allclose(A[0], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_matches_finite_differences(backend, name, rng):
    k = kernels(backend)
    Z = 2.0 * rng.standard_normal((6, 11))
    # keep clear of the kink of relu / leaky_relu at 0
    Z = np.where(np.abs(Z) < 1e-2, 0.5, Z)
    h = 1e-6
    plus, minus, A = np.empty_like(Z), np.empty_like(Z), np.empty_like(Z)
    k.activation_forward(Z + h, name, plus)
    k.activation_forward(Z - h, name, minus)
    numeric = (plus - minus) / (2 * h)
    k.activation_forward(Z, name, A)
    analytic = np.empty_like(Z)
    k.activation_backward(Z, A, np.ones_like(Z), name, analytic)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---- numerics ----------------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_stable_at_large_magnitudes_float32(backend, name, threads):
    k = kernels(backend)
    values = np.array([-100.0, -88.0, -50.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 50.0, 88.0, 100.0],
                      dtype=np.float32)
    Z = np.tile(values, (3, 1))
    A = np.full_like(Z, np.nan)
    k.activation_forward(Z, name, A)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A, textbook_forward(name, Z).astype(np.float32),
                               rtol=1e-6, atol=1e-30)
    if name == "sigmoid":
        assert ((A >= 0) & (A <= 1)).all()
        np.testing.assert_array_equal(A[:, -1], 1.0)
        assert (A[:, 0] < 1e-40).all()
    if name == "tanh":
        np.testing.assert_array_equal(A[:, 0], -1.0)
        np.testing.assert_array_equal(A[:, -1], 1.0)
    out = np.full_like(Z, np.nan)
    k.activation_backward(Z, A, np.ones_like(Z), name, out)
    assert np.isfinite(out).all()
    # f' from a = f(z): sigmoid(20) rounds to 1 in float32, so a (1 - a) is 0 there
    np.testing.assert_allclose(out, textbook_derivative(name, Z).astype(np.float32),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_propagates_nan(backend, name):
    # A NaN pre-activation must stay visible (as in NumPy, PyTorch and the twin):
    # mapping it to a finite value hides a diverged model behind finite losses.
    k = kernels(backend)
    Z = np.array([[np.nan, 1.0, -1.0]], dtype=np.float32)
    A = np.empty_like(Z)
    k.activation_forward(Z, name, A)
    assert np.isnan(A[0, 0]), f"{name}(nan) = {A[0, 0]} on the {backend} backend"
    np.testing.assert_allclose(A[0, 1:], textbook_forward(name, Z[0, 1:]), rtol=1e-6)


# ---- in-place use, shapes and dtypes -----------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_in_place(backend, name, dtype, rng):
    k = kernels(backend)
    Z, dA = _inputs(rng, (9, 5), dtype)
    A = np.empty_like(Z)
    k.activation_forward(Z, name, A)
    expected_dZ = np.empty_like(Z)
    k.activation_backward(Z, A, dA, name, expected_dZ)
    Z_inplace = Z.copy()
    k.activation_forward(Z_inplace, name, Z_inplace)  # out may be Z
    np.testing.assert_array_equal(Z_inplace, A)
    dA_inplace = dA.copy()
    k.activation_backward(Z, A, dA_inplace, name, dA_inplace)  # out may be dA
    np.testing.assert_array_equal(dA_inplace, expected_dZ)


@pytest.mark.parametrize("bad", ["out", "A", "dA"])
def test_wrong_shapes_raise(backend, bad):
    k = kernels(backend)
    Z = np.zeros((4, 3))
    arrays = {"A": np.zeros((4, 3)), "dA": np.zeros((4, 3)), "out": np.zeros((4, 3))}
    arrays[bad] = np.zeros((3, 4))
    with pytest.raises(ValueError):
        k.activation_backward(Z, arrays["A"], arrays["dA"], "tanh", arrays["out"])
    if bad == "out":
        with pytest.raises(ValueError):
            k.activation_forward(Z, "tanh", arrays["out"])


def test_native_rejects_mixed_dtypes_and_bad_layouts(native):
    Z = np.zeros((4, 6), dtype=np.float32)
    with pytest.raises(ValueError):
        native.activation_forward(Z, "relu", np.zeros((4, 6), dtype=np.float64))
    with pytest.raises(ValueError):
        native.activation_forward(Z[:, ::2], "relu", np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        native.activation_forward(np.asfortranarray(Z), "relu", np.zeros((4, 6), np.float32))
    with pytest.raises((ValueError, TypeError)):
        native.activation_forward(Z.astype(np.int32), "relu", np.zeros((4, 6), np.int32))


def test_empty_arrays_are_no_ops(backend):
    k = kernels(backend)
    Z = np.zeros((0, 3))
    out = np.zeros((0, 3))
    k.activation_forward(Z, "sigmoid", out)
    k.activation_backward(Z, Z, Z, "sigmoid", out)
    assert out.shape == (0, 3)
