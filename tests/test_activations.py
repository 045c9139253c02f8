"""Activation kernels: native vs NumPy twin vs the textbook formulas.

activation_forward(Z, activation, out, alpha) writes out = f(Z);
activation_backward(Z, A, dA, activation, out, alpha) writes out = dA * f'(Z).
"""
import functools

import numpy as np
import pytest

import fastmlp
from fastmlp._backend import kernels

from conftest import (ACTIVATIONS, DEFAULT_ALPHA, SELU_ALPHA, SELU_LAMBDA, assert_close,
                      textbook_derivative, textbook_forward)

# the parametrized ones, each with values of its parameter to try besides the default
PARAMETRIZED = {"leaky_relu": [0.0, 0.2, 1.5], "elu": [0.0, 0.5, 2.0], "isru": [0.1, 3.0],
                "isrlu": [0.1, 3.0], "silu": [0.0, 0.5, 4.0]}
HELPERS = {"leaky_relu": fastmlp.activations.leaky_relu, "elu": fastmlp.activations.elu,
           "isru": fastmlp.activations.isru, "isrlu": fastmlp.activations.isrlu,
           "silu": fastmlp.activations.silu}

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
    # the default parameters: C table, twin and these tests agree
    expected = {name: DEFAULT_ALPHA.get(name, 0.0) for name in ACTIVATIONS}
    assert native.DEFAULT_ALPHA == expected
    assert twin.DEFAULT_ALPHA == expected
    assert set(PARAMETRIZED) == set(DEFAULT_ALPHA)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", ["no_such_activation", "", "ReLU", "linear", "swish"])
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
    assert fastmlp.activations.get("swish") == fastmlp.activations.Activation("silu", 1.0)
    assert fastmlp.activations.swish(2.0) == fastmlp.activations.silu(2.0)
    assert repr(fastmlp.activations.silu(2.0)) == "silu(beta=2)"
    assert repr(fastmlp.activations.get("elu")) == "elu(alpha=1)"
    assert repr(fastmlp.activations.get("gelu_exact")) == "gelu_exact"
    for bad in ("no_such_activation", "GELU", 3, ["relu"]):
        with pytest.raises(ValueError, match="unknown activation"):
            fastmlp.activations.get(bad)
    with pytest.raises(ValueError, match="alpha"):
        fastmlp.activations.leaky_relu(-1.0)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_string_names_use_the_default_parameter(name):
    act = fastmlp.activations.get(name)
    assert act.name == name
    assert act.alpha == DEFAULT_ALPHA.get(name, 0.0)
    if name in HELPERS:
        assert HELPERS[name]() == act


@pytest.mark.parametrize("name, bad", [
    ("leaky_relu", -0.1), ("leaky_relu", float("inf")), ("elu", -1.0), ("elu", float("nan")),
    ("isru", 0.0), ("isru", -2.0), ("isrlu", 0.0), ("isrlu", float("inf")),
    ("silu", -1.0), ("silu", "big"), ("elu", None)])
def test_bad_parameters_raise(name, bad):
    with pytest.raises(ValueError, match="beta" if name == "silu" else "alpha"):
        HELPERS[name](bad)
    # also when the Activation is built by hand and given to a layer
    with pytest.raises(ValueError):
        fastmlp.Dense(3, activation=fastmlp.activations.Activation(name, bad))


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


@pytest.mark.parametrize("name, alpha", [(name, alpha) for name, alphas in PARAMETRIZED.items()
                                         for alpha in alphas])
def test_parameter_is_used(backend, dtype, name, alpha, rng):
    k = kernels(backend)
    Z, dA = _inputs(rng, (5, 9), dtype)
    A = np.empty_like(Z)
    k.activation_forward(Z, name, A, alpha=alpha)
    assert_close(A, textbook_forward(name, Z, alpha), dtype)
    out = np.empty_like(Z)
    k.activation_backward(Z, A, dA, name, out, alpha=alpha)
    assert_close(out, dA * textbook_derivative(name, Z, alpha), dtype)


@pytest.mark.parametrize("name", PARAMETRIZED)
def test_alpha_none_is_the_default(backend, name, rng):
    k = kernels(backend)
    Z, dA = _inputs(rng, (4, 6), np.float64)
    A_none, A_default = np.empty_like(Z), np.empty_like(Z)
    k.activation_forward(Z, name, A_none)
    k.activation_forward(Z, name, A_default, alpha=DEFAULT_ALPHA[name])
    np.testing.assert_array_equal(A_none, A_default)
    d_none, d_default = np.empty_like(Z), np.empty_like(Z)
    k.activation_backward(Z, A_none, dA, name, d_none, alpha=None)
    k.activation_backward(Z, A_none, dA, name, d_default, alpha=DEFAULT_ALPHA[name])
    np.testing.assert_array_equal(d_none, d_default)


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
        # the rest computed with mpmath at 40 digits from the definitions
        "binary_step": [0.0, 0.0, 1.0, 1.0, 1.0],
        "elu": [-0.8646647167633873, -0.3934693402873666, 0.0, 0.5, 2.0],
        "selu": [-1.520166468595695, -0.6917581878028713, 0.0, 0.5253504936777402,
                 2.101401974710961],
        "softplus": [0.1269280110429725, 0.4740769841801067, 0.6931471805599453,
                     0.9740769841801067, 2.1269280110429727],
        "softsign": [-2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3],
        "arctan": [-1.1071487177940904, -0.4636476090008061, 0.0, 0.4636476090008061,
                   1.1071487177940904],
        "asinh": [-1.4436354751788103, -0.48121182505960347, 0.0, 0.48121182505960347,
                  1.4436354751788103],
        "isru": [-0.8944271909999159, -0.4472135954999579, 0.0, 0.4472135954999579,
                 0.8944271909999159],
        "isrlu": [-0.8944271909999159, -0.4472135954999579, 0.0, 0.5, 2.0],
        "sqnl": [-1.0, -0.4375, 0.0, 0.4375, 1.0],
        "bent_identity": [-1.381966011250105, -0.44098300562505255, 0.0, 0.5590169943749475,
                          2.618033988749895],
        "gelu": [-0.04540230591222498, -0.15428599017485609, 0.0, 0.34571400982514394,
                 1.954597694087775],
        "gelu_exact": [-0.04550026389635842, -0.15426876936299344, 0.0, 0.34573123063700656,
                       1.9544997361036416],
        "silu": [-0.23840584404423512, -0.18877033439907273, 0.0, 0.3112296656009273,
                 1.7615941559557649],
        # units 0, 2, 4 are even (max(z, 0)), 1 and 3 odd (min(z, 0))
        "brelu": [0.0, -0.5, 0.0, 0.0, 2.0],
    }[name]
    np.testing.assert_allclose(A[0], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_matches_finite_differences(backend, name, rng):
    k = kernels(backend)
    Z = 2.0 * rng.standard_normal((6, 11))
    # keep clear of the kinks at 0 (relu family, selu, binary_step) and +-2 (sqnl)
    Z = np.where(np.abs(Z) < 1e-2, 0.5, Z)
    Z = np.where(np.abs(np.abs(Z) - 2) < 1e-2, 1.5, Z)
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
    if name in ("tanh", "sqnl"):
        np.testing.assert_array_equal(A[:, 0], -1.0)
        np.testing.assert_array_equal(A[:, -1], 1.0)
    if name == "binary_step":
        np.testing.assert_array_equal(A, np.tile((values >= 0).astype(np.float32), (3, 1)))
    if name in ("softsign", "isru", "arctan"):  # bounded by 1, 1 and pi/2
        assert (np.abs(A) <= (np.float32(np.pi / 2) if name == "arctan" else 1)).all()
    if name in ("gelu", "gelu_exact", "silu", "softplus", "elu", "selu"):
        # z << 0: 0 (or -alpha, -lambda alpha); z >> 0: z (lambda z)
        assert (np.abs(A[:, :3] - A[:, :1]) < 1e-6).all()
        scale = SELU_LAMBDA if name == "selu" else 1.0
        np.testing.assert_allclose(A[:, -3:], scale * Z[:, -3:], rtol=1e-6)
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
    # (the whole row: brelu depends on each unit's column)
    np.testing.assert_allclose(A[0, 1:], textbook_forward(name, Z)[0, 1:], rtol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_native_finite_for_huge_float32(native, name):
    # the native kernels hold for any finite float32 whose f(z) is representable: terms
    # such as z^2 or z^3 never overflow (selu and bent_identity grow faster than z, so
    # they are spared the largest inputs)
    huge = [1e10, 1e20, 1e30, 1e36] + ([] if name in ("selu", "bent_identity") else [3.4e38])
    Z = np.array([[-v for v in huge] + huge], dtype=np.float32)
    A = np.full_like(Z, np.nan)
    native.activation_forward(Z, name, A)
    assert np.isfinite(A).all(), A
    out = np.full_like(Z, np.nan)
    native.activation_backward(Z, A, np.ones_like(Z), name, out)
    assert np.isfinite(out).all(), out
    # and the values are right: the limits of the textbook forms
    m = len(huge)
    limit = {"sigmoid": (0, 1), "tanh": (-1, 1), "binary_step": (0, 1), "softsign": (-1, 1),
             "arctan": (-np.pi / 2, np.pi / 2), "isru": (-1, 1), "sqnl": (-1, 1),
             "elu": (-1, None), "selu": (-SELU_LAMBDA * SELU_ALPHA, None), "isrlu": (-1, None),
             "softplus": (0, None), "gelu": (0, None), "gelu_exact": (0, None),
             "silu": (0, None), "relu": (0, None)}.get(name)
    if limit is not None:
        low, high = limit
        np.testing.assert_allclose(A[0, :m], low, rtol=1e-6)
        if high is None:  # f(z) = z (lambda z for selu) for z >> 0
            high = (SELU_LAMBDA if name == "selu" else 1.0) * Z[0, m:]
        np.testing.assert_allclose(A[0, m:], high, rtol=1e-6)
    if name == "asinh":  # log(2|z|)
        np.testing.assert_allclose(A[0], np.sign(Z[0]) * np.log(2.0 * np.abs(Z[0].astype(float))),
                                   rtol=1e-6)


# ---- bipolar ReLU: the unit's column decides --------------------------------------

@pytest.mark.parametrize("cols", [1, 2, 7])
def test_brelu_parity(backend, dtype, cols, rng):
    k = kernels(backend)
    Z = rng.standard_normal((5, cols)).astype(dtype)
    A = np.empty_like(Z)
    k.activation_forward(Z, "brelu", A)
    np.testing.assert_array_equal(A[:, 0::2], np.maximum(Z[:, 0::2], 0))
    np.testing.assert_array_equal(A[:, 1::2], np.minimum(Z[:, 1::2], 0))
    # the sign pattern of an odd unit mirrors an even one's: brelu(z)[odd] = -relu(-z)
    relu_of_minus = np.empty_like(Z)
    k.activation_forward(-Z, "relu", relu_of_minus)
    np.testing.assert_array_equal(A[:, 1::2], -relu_of_minus[:, 1::2])
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ = np.empty_like(Z)
    k.activation_backward(Z, A, dA, "brelu", dZ)
    np.testing.assert_array_equal(dZ[:, 0::2], dA[:, 0::2] * (Z[:, 0::2] > 0))
    np.testing.assert_array_equal(dZ[:, 1::2], dA[:, 1::2] * (Z[:, 1::2] < 0))


def test_brelu_parity_in_dense_and_model(backend, dtype, rng):
    # the fused bias + activation epilogue and the compiled plan count units the same
    # way, also when the rows are split over two threads (2000 x 64 x 33 is enough work)
    X = rng.standard_normal((2000, 64)).astype(dtype)
    model = fastmlp.Sequential([fastmlp.Dense(33, activation="brelu")], input_dim=64,
                               dtype=dtype, backend=backend)
    model.compile(loss="mse", optimizer="sgd")
    W, b = model.get_weights()
    b = rng.standard_normal(33).astype(b.dtype)
    model.set_weights([W, b])
    Z = X.astype(np.float64) @ W + b
    expected = np.where(np.arange(33) % 2 == 1, np.minimum(Z, 0), np.maximum(Z, 0))
    k = kernels(backend)
    for n in (1, 2):
        with fastmlp.threads(n):
            assert_close(model.predict(X), expected, dtype)
            Zk, Ak = np.empty((2000, 33), dtype), np.empty((2000, 33), dtype)
            k.dense_forward(X, W, b, "brelu", Zk, Ak)
            assert_close(Ak, expected, dtype)


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
