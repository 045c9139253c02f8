"""Fuzzing the native kernels against their NumPy twins.

Two properties per kernel, each over random shapes that include 0 and 1:

* consistent arguments: the native kernel and the twin write the same outputs
  (to the dtype's rounding) and return the same value, or both refuse;
* one argument of a wrong shape, dtype, layout or type: the native kernel
  raises a clean exception (the kernels run with bounds checks off, so a
  missed check would read or write out of bounds) and writes nothing.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastmlp._backend import kernels

from conftest import ACTIVATIONS, assert_close

from .conftest import assert_clean

NATIVE, TWIN = kernels("native"), kernels("numpy")
DIMS = st.integers(0, 6)
DTYPES = st.sampled_from([np.float32, np.float64])
LOSSES = NATIVE.LOSSES
_LABEL_LOSSES = ("softmax_cross_entropy", "hinge")


def _rng(seed):
    return np.random.default_rng(seed)


# ---- argument builders: name -> (args, indices of outputs) --------------------------------

def _activation_forward(rng, dtype, rows, cols, act, alpha):
    Z = (3 * rng.standard_normal((rows, cols))).astype(dtype)
    return [Z, act, np.full_like(Z, np.nan), alpha], [2]


def _activation_backward(rng, dtype, rows, cols, act, alpha):
    Z = (3 * rng.standard_normal((rows, cols))).astype(dtype)
    A = np.empty_like(Z)
    NATIVE.activation_forward(Z, act, A, alpha)
    dA = rng.standard_normal((rows, cols)).astype(dtype)
    return [Z, A, dA, act, np.full_like(Z, np.nan), alpha], [4]


def _dropout(rng, dtype, rows, cols, act, alpha):
    X = rng.standard_normal((rows, cols)).astype(dtype)
    p = float(rng.choice([0.0, 0.1, 0.5, 0.99]))
    seed = int(rng.integers(-2 ** 63, 2 ** 63 - 1)) if rng.random() < 0.5 else 0
    step = int(rng.integers(0, 2 ** 64 - 1, dtype=np.uint64)) - int(rng.integers(0, 2))
    return [X, np.full_like(X, np.nan), p, seed, int(rng.integers(0, 2 ** 31)), step], [1]


def _dense_forward(rng, dtype, rows, cols, act, alpha, n_in=None):
    n_in = int(rng.integers(0, 6)) if n_in is None else n_in
    X = rng.standard_normal((rows, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, cols)).astype(dtype)
    b = rng.standard_normal(cols).astype(dtype)
    Z = np.full((rows, cols), np.nan, dtype)
    return [X, W, b, act, Z, np.full_like(Z, np.nan), alpha], [4, 5]


def _dense_backward(rng, dtype, rows, cols, act, alpha):
    n_in = int(rng.integers(0, 6))
    fwd, _ = _dense_forward(rng, dtype, rows, cols, act, alpha, n_in)
    X, W = fwd[0], fwd[1]
    NATIVE.dense_forward(*fwd)
    Z, A = fwd[4], fwd[5]
    dA = rng.standard_normal((rows, cols)).astype(dtype)
    dX = np.full_like(X, np.nan) if rng.random() < 0.7 else None
    return [X, W, Z, A, dA, act, np.full_like(dA, np.nan), np.full_like(W, np.nan),
            np.full(cols, np.nan, dtype), dX, alpha], [6, 7, 8, 9]


def _loss(rng, dtype, rows, cols, act, alpha):
    name = LOSSES[int(rng.integers(len(LOSSES)))]
    Z = (2 * rng.standard_normal((rows, cols))).astype(dtype)
    if name in _LABEL_LOSSES and (name == "hinge" or rng.random() < 0.5):
        y = rng.integers(0, max(cols, 1), rows).astype(np.int64)
    elif name in ("binary_cross_entropy",):
        y = rng.random((rows, cols)).astype(dtype)
    elif name in ("softmax_cross_entropy", "kl_divergence"):
        y = rng.random((rows, cols)).astype(dtype)
        y /= np.maximum(y.sum(axis=1, keepdims=True), 1e-3)
    elif name == "poisson":
        y = rng.poisson(2.0, (rows, cols)).astype(dtype)
    else:
        y = rng.standard_normal((rows, cols)).astype(dtype)
    w = rng.random(rows).astype(dtype) if rng.random() < 0.5 else None
    param = {"huber": 1.0, "mape": 1e-3}.get(name, 0.0)
    return [Z, y, np.full_like(Z, np.nan), LOSSES.index(name), param, w], [2]


def _loss_output(rng, dtype, rows, cols, act, alpha):
    Z = (3 * rng.standard_normal((rows, cols))).astype(dtype)
    return [Z, int(rng.integers(len(LOSSES))), np.full_like(Z, np.nan)], [2]


def _softmax(rng, dtype, rows, cols, act, alpha):
    Z = (3 * rng.standard_normal((rows, cols))).astype(dtype)
    return [Z, np.full_like(Z, np.nan)], [1]


def _flat(rng, dtype, n, scale=1.0):
    return (scale * rng.standard_normal(n)).astype(dtype)


def _optimizer(rng, dtype, rows, cols, act, alpha):
    n = rows * cols
    p, g = _flat(rng, dtype, n), _flat(rng, dtype, n)
    kind = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "nadam"][int(rng.integers(6))]
    step = int(rng.integers(1, 50))
    if kind == "sgd":
        mom = float(rng.choice([0.0, 0.9]))
        v = _flat(rng, dtype, n) if mom or rng.random() < 0.5 else None
        return "sgd_update", [p, g, v, 0.1, mom, bool(rng.random() < 0.5)], [0, 2]
    if kind in ("adam", "adamw", "nadam"):
        m, v = _flat(rng, dtype, n), np.abs(_flat(rng, dtype, n))
        if kind == "adam":
            return "adam_update", [p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, step], [0, 2, 3]
        if kind == "adamw":
            return "adamw_update", [p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step], [0, 2, 3]
        return "nadam_update", [p, g, m, v, 2e-3, 0.9, 0.999, 1e-8, 4e-3, step, 0.5], [0, 2, 3]
    if kind == "adagrad":
        return "adagrad_update", [p, g, np.abs(_flat(rng, dtype, n)), 0.1, 1e-10], [0, 2]
    centered, mom = rng.random() < 0.5, float(rng.choice([0.0, 0.9]))
    s = np.abs(_flat(rng, dtype, n)) + 1.0
    buf = _flat(rng, dtype, n) if mom else None
    avg = _flat(rng, dtype, n, 0.1) if centered else None
    return "rmsprop_update", [p, g, s, 1e-2, 0.9, 1e-8, mom, buf, avg], [0, 2, 7, 8]


def _max_norm(rng, dtype, rows, cols, act, alpha):
    return [(3 * rng.standard_normal((rows, cols))).astype(dtype), 1.5], [0]


def _layer(rng, dtype, rows, cols, act, alpha):
    """One of the batch-norm, PReLU and maxout kernels on a (rows, cols) block."""
    kind = ["bn_forward", "bn_backward", "bn_inference", "prelu_forward", "prelu_backward",
            "maxout_forward", "maxout_backward"][int(rng.integers(7))]
    X = (2 * rng.standard_normal((rows, cols)) + 0.5).astype(dtype)
    vec = lambda scale=1.0: (scale * rng.standard_normal(cols)).astype(dtype)  # noqa: E731
    if kind == "bn_forward":
        return "batchnorm_forward", [X, vec(), vec(), np.empty_like(X), np.empty(cols),
                                     np.empty(cols), 1e-5], [3, 4, 5]
    if kind == "bn_backward":
        Xd = X.astype(np.float64)
        mean = Xd.mean(axis=0) if rows else np.zeros(cols)
        var = Xd.var(axis=0) if rows else np.ones(cols)
        return "batchnorm_backward", [X, vec(), mean, var, vec() + X * 0, np.empty_like(X),
                                      np.empty(cols, dtype), np.empty(cols, dtype), 1e-3], [5, 6, 7]
    if kind == "bn_inference":
        return "batchnorm_inference", [X, vec(), vec(), vec(), np.abs(vec()), np.empty_like(X),
                                       1e-5], [5]
    if kind == "prelu_forward":
        return "prelu_forward", [X, vec(0.3), np.empty_like(X)], [2]
    if kind == "prelu_backward":
        return "prelu_backward", [X, vec(0.3), rng.standard_normal(X.shape).astype(dtype),
                                  np.empty_like(X), np.empty(cols, dtype)], [3, 4]
    pieces = int(rng.integers(2, 4))
    Z = rng.standard_normal((rows, cols * pieces)).astype(dtype)
    if kind == "maxout_forward":
        return "maxout_forward", [Z, np.empty((rows, cols), dtype), pieces], [1]
    return "maxout_backward", [Z, rng.standard_normal((rows, cols)).astype(dtype),
                               np.empty_like(Z), pieces], [2]


BUILDERS = {
    "activation_forward": _activation_forward, "activation_backward": _activation_backward,
    "dropout": _dropout, "dense_forward": _dense_forward, "dense_backward": _dense_backward,
    "loss_and_gradient": _loss, "loss_output": _loss_output, "softmax": _softmax,
    "optimizer": _optimizer, "max_norm_constraint": _max_norm, "layer": _layer,
}


def _build(name, seed, dtype, rows, cols, act, alpha):
    rng = _rng(seed)
    built = BUILDERS[name](rng, dtype, rows, cols, act, alpha)
    if name in ("optimizer", "layer"):
        return built
    return (name, *built)


def _copy(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _call(k, name, args):
    try:
        return getattr(k, name)(*args), None
    except Exception as e:  # noqa: BLE001 - compared below
        return None, e


_ACT_ALPHA = st.sampled_from([None, 0.0, 0.3, 2.0])


@given(kernel=st.sampled_from(list(BUILDERS)), seed=st.integers(0, 2 ** 32 - 1), dtype=DTYPES,
       rows=DIMS, cols=DIMS, act=st.sampled_from(ACTIVATIONS), alpha=_ACT_ALPHA)
def test_native_matches_twin_on_random_shapes(kernel, seed, dtype, rows, cols, act, alpha):
    name, args, outs = _build(kernel, seed, dtype, rows, cols, act, alpha)
    a_native, a_twin = _copy(args), _copy(args)
    r_native, e_native = _call(NATIVE, name, a_native)
    r_twin, e_twin = _call(TWIN, name, a_twin)
    if e_native is not None or e_twin is not None:
        # both refuse (empty batch, hinge with one class), with clean errors
        assert e_native is not None and e_twin is not None, (e_native, e_twin)
        assert_clean(e_native)
        assert_clean(e_twin)
        return
    for i in outs:
        if a_native[i] is not None:
            assert_close(a_native[i], a_twin[i], dtype, rtol=2e-4 if dtype == np.float32
                         else 1e-8, err_msg=f"{name} output {i}")
    if r_twin is not None:
        assert r_native == pytest.approx(r_twin, rel=1e-4, abs=1e-6)


# ---- wrong arguments: one argument spoiled -----------------------------------------------

def _spoil(rng, a):
    """A replacement for array `a` that is wrong in one way."""
    how = rng.integers(8)
    if how == 0:    # one more row
        return np.zeros((a.shape[0] + 1,) + a.shape[1:], a.dtype)
    if how == 1 and a.ndim == 2:    # one more column
        return np.zeros((a.shape[0], a.shape[1] + 1), a.dtype)
    if how == 2:    # the other float dtype
        return a.astype(np.float64 if a.dtype == np.float32 else np.float32)
    if how == 3 and a.ndim == 2 and a.shape[1] > 1 and a.shape[0] > 0:   # not C-contiguous
        return np.asfortranarray(np.zeros((a.shape[0], a.shape[1]), a.dtype)) \
            if a.shape[0] > 1 else np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)[:, ::2]
    if how == 4:    # one dimension more or less
        return a.reshape(-1) if a.ndim == 2 else a.reshape(-1, 1, 1)
    if how == 5:    # integers
        return np.zeros(a.shape, np.int32)
    if how == 6:    # not an array
        return "not an array"
    return np.zeros(a.shape[:-1] + (a.shape[-1] + 2,), a.dtype) if a.ndim else a


@given(kernel=st.sampled_from(list(BUILDERS)), seed=st.integers(0, 2 ** 32 - 1), dtype=DTYPES,
       rows=DIMS, cols=DIMS, act=st.sampled_from(ACTIVATIONS), which=st.integers(0, 20))
def test_native_refuses_a_spoiled_argument(kernel, seed, dtype, rows, cols, act, which):
    name, args, outs = _build(kernel, seed, dtype, rows, cols, act, None)
    positions = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
    pos = positions[which % len(positions)]
    bad = _spoil(_rng(seed + 1), args[pos])
    spoiled = _copy(args)
    spoiled[pos] = bad
    guards = {i: spoiled[i].copy() for i in outs
              if isinstance(spoiled[i], np.ndarray) and spoiled[i].size}
    result, error = _call(NATIVE, name, spoiled)
    if error is None:
        # accepted: the spoiled argument was still consistent (an empty array reshaped,
        # a label vector where targets may also be labels...); then it must agree with
        # the twin on the same arguments
        twin_args = _copy(spoiled)
        _, twin_error = _call(TWIN, name, twin_args)
        assert twin_error is None, f"native accepted what the twin refuses: {twin_error}"
        for i in outs:
            if isinstance(spoiled[i], np.ndarray):
                assert_close(spoiled[i], twin_args[i], spoiled[i].dtype, rtol=2e-4)
        return
    assert_clean(error)
    for i, before in guards.items():   # a refused call writes nothing
        np.testing.assert_array_equal(spoiled[i], before)


def test_dense_backward_with_no_inputs_still_writes_dZ_and_db():
    # regression: a layer with 0 input units returned before computing dZ and db
    rng = _rng(0)
    for dtype in (np.float32, np.float64):
        name, args, outs = _build("dense_backward", 0, dtype, 4, 3, "tanh", None)
        X = np.zeros((4, 0), dtype)
        W = np.zeros((0, 3), dtype)
        Z = rng.standard_normal((4, 3)).astype(dtype)
        A = np.tanh(Z)
        dA = rng.standard_normal((4, 3)).astype(dtype)
        got = [np.full((4, 3), np.nan, dtype), np.zeros((0, 3), dtype),
               np.full(3, np.nan, dtype), np.zeros((4, 0), dtype)]
        NATIVE.dense_backward(X, W, Z, A, dA, "tanh", *got)
        dZ = dA * (1 - A * A)
        np.testing.assert_allclose(got[0], dZ, rtol=1e-5)
        np.testing.assert_allclose(got[2], dZ.sum(axis=0), rtol=1e-5)


def test_dropout_accepts_any_integer_step_like_the_twin():
    # regression: a negative step raised OverflowError in the native kernel only
    X = np.ones((3, 4), np.float32)
    for step in (-1, -2 ** 63, 2 ** 64 - 1, 2 ** 70):
        a, b = np.empty_like(X), np.empty_like(X)
        NATIVE.dropout(X, a, 0.5, 7, 1, step)
        TWIN.dropout(X, b, 0.5, 7, 1, step)
        np.testing.assert_array_equal(a, b)


def test_dense_backward_with_no_outputs_zeroes_dX():
    # regression: a layer with 0 output units left dX unwritten (dZ W^T is an empty sum)
    for k in (NATIVE, TWIN):
        X = np.ones((3, 2), np.float32)
        dX = np.full((3, 2), np.nan, np.float32)
        empty = np.zeros((3, 0), np.float32)
        k.dense_backward(X, np.zeros((2, 0), np.float32), empty, empty, empty.copy(), "relu",
                         empty.copy(), np.zeros((2, 0), np.float32), np.zeros(0, np.float32), dX)
        np.testing.assert_array_equal(dX, 0)


@pytest.mark.parametrize("layer", [-1, 2 ** 31, 2 ** 40])
def test_dropout_refuses_a_layer_number_out_of_range(layer):
    # regression: the native kernel raised OverflowError (not a clean error) or wrapped
    X = np.ones((2, 2), np.float32)
    for k in (NATIVE, TWIN):
        with pytest.raises(ValueError, match="layer must be in"):
            k.dropout(X, np.empty_like(X), 0.5, 0, layer, 0)
