"""One benchmark per kernel, native vs its NumPy twin, at each of the project's sizes.

A kernel runs on a representative shape of its size (_workloads.SIZES):
the dense and activation kernels on the first hidden layer (batch x n_in ->
batch x hidden), batch norm, PReLU and maxout (2 pieces per unit) on that
layer's output (batch x hidden), the loss on the logits (batch x n_classes),
the optimizer updates on the whole model's flat parameter buffer, dropout and
batch-norm inference on the hidden layer's output, max-norm on its W, the
output transforms of predict on a predict batch's logits, the input check on an
epoch's data.  dense_backward computes dX too (every layer but the first does).  After timing, each result is
checked against a float64 NumPy oracle on fresh inputs.
"""
import functools

import numpy as np
import pytest

from _workloads import (ACTIVATION_ORACLES, BACKENDS, DTYPE, LOSS_PARAMS, SIZE_NAMES, SIZES,
                        adagrad_oracle, adam_oracle, adamw_oracle, assert_close, loss_inputs,
                        loss_oracle, make_data, make_layer, nadam_oracle, rmsprop_oracle,
                        sgd_oracle, softmax_cross_entropy_oracle)
from fastmlp._backend import kernels

ACTIVATIONS = kernels("numpy").ACTIVATIONS
assert set(ACTIVATIONS) == set(kernels("native").ACTIVATIONS), "backends offer other activations"
LOSSES = kernels("numpy").LOSSES
assert LOSSES == kernels("native").LOSSES, "backends offer other losses"

parametrize_backend = pytest.mark.parametrize("backend", BACKENDS)
parametrize_size = pytest.mark.parametrize("size", SIZE_NAMES)


def _label(benchmark, kernel, size, shape, backend, samples=None):
    benchmark.group = f"{kernel} {size.name} {shape}"
    benchmark.extra_info.update(backend=backend, size=size.name)
    if samples:
        benchmark.extra_info["samples"] = samples


# ---- dense layer ---------------------------------------------------------------

@parametrize_size
@parametrize_backend
def test_dense_forward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    rows, n_in, n_out = size.kernel_layer
    X, W, b = make_layer(rows, n_in, n_out)
    Z = np.empty((rows, n_out), DTYPE)
    A = np.empty_like(Z)
    _label(benchmark, "dense_forward", size, f"({rows}x{n_in} @ {n_in}x{n_out}, relu)", backend,
           samples=rows)

    benchmark(k.dense_forward, X, W, b, "relu", Z, A)

    Z_ref = X.astype(np.float64) @ W + b
    assert_close(Z, Z_ref)
    assert_close(A, np.maximum(Z_ref, 0))


@parametrize_size
@parametrize_backend
def test_dense_backward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    rows, n_in, n_out = size.kernel_layer
    X, W, b = make_layer(rows, n_in, n_out)
    Z = (X.astype(np.float64) @ W + b).astype(DTYPE)
    A = np.maximum(Z, 0)
    dA = np.random.default_rng(1).standard_normal((rows, n_out), dtype=DTYPE)
    dZ = np.empty_like(dA)  # not dA: each timed call then sees the same input
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    _label(benchmark, "dense_backward", size, f"({rows}x{n_in} @ {n_in}x{n_out}, relu, dX)",
           backend, samples=rows)

    benchmark(k.dense_backward, X, W, Z, A, dA, "relu", dZ, dW, db, dX)

    dZ_ref = dA * (Z > 0)
    assert_close(dZ, dZ_ref)
    assert_close(dW, X.T.astype(np.float64) @ dZ_ref)
    assert_close(db, dZ_ref.sum(axis=0, dtype=np.float64))
    assert_close(dX, dZ_ref.astype(np.float64) @ W.T)


# ---- activations -----------------------------------------------------------------

def _activation_input(rows, cols):
    # spread over the range where sigmoid/tanh are neither linear nor saturated
    return (2.0 * np.random.default_rng(2).standard_normal((rows, cols))).astype(DTYPE)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@parametrize_size
@parametrize_backend
def test_activation_forward(benchmark, backend, size, activation):
    size = SIZES[size]
    k = kernels(backend)
    rows, _, cols = size.kernel_layer
    Z = _activation_input(rows, cols)
    out = np.empty_like(Z)
    _label(benchmark, f"activation_forward {activation}", size, f"({rows}x{cols})", backend)

    benchmark(k.activation_forward, Z, activation, out)

    oracle = ACTIVATION_ORACLES.get(activation)
    if oracle is not None:
        expected = oracle[0](Z.astype(np.float64))
    else:  # an activation added since: the other backend is the reference
        expected = np.empty_like(Z)
        kernels(BACKENDS[backend == "native"]).activation_forward(Z, activation, expected)
    assert_close(out, expected, rtol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@parametrize_size
@parametrize_backend
def test_activation_backward(benchmark, backend, size, activation):
    size = SIZES[size]
    k = kernels(backend)
    rows, _, cols = size.kernel_layer
    Z = _activation_input(rows, cols)
    A = np.empty_like(Z)
    kernels("numpy").activation_forward(Z, activation, A)
    dA = np.random.default_rng(3).standard_normal((rows, cols), dtype=DTYPE)
    out = np.empty_like(Z)
    _label(benchmark, f"activation_backward {activation}", size, f"({rows}x{cols})", backend)

    benchmark(k.activation_backward, Z, A, dA, activation, out)

    oracle = ACTIVATION_ORACLES.get(activation)
    if oracle is not None:
        expected = dA * oracle[1](Z.astype(np.float64))
    else:
        expected = np.empty_like(Z)
        kernels(BACKENDS[backend == "native"]).activation_backward(Z, A, dA, activation,
                                                                    expected)
    assert_close(out, expected, rtol=1e-5)


# ---- loss ------------------------------------------------------------------------

@parametrize_size
@parametrize_backend
def test_softmax_cross_entropy(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    rows, n_classes = size.batch, size.n_classes
    rng = np.random.default_rng(4)
    Z = (3.0 * rng.standard_normal((rows, n_classes))).astype(DTYPE)
    y = rng.integers(0, n_classes, rows, dtype=np.int64)
    grad = np.empty_like(Z)
    _label(benchmark, "softmax_cross_entropy", size, f"({rows}x{n_classes}, labels)", backend,
           samples=rows)

    loss = benchmark(k.softmax_cross_entropy, Z, y, grad)

    loss_ref, grad_ref = softmax_cross_entropy_oracle(Z, y)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    assert_close(grad, grad_ref)


@pytest.mark.parametrize("loss", LOSSES)
@parametrize_size
@parametrize_backend
def test_loss(benchmark, backend, size, loss):
    """Every loss through loss_and_gradient (softmax_cross_entropy here with soft
    targets; test_softmax_cross_entropy times its labels path)."""
    size = SIZES[size]
    k = kernels(backend)
    rows, n_classes = size.batch, size.n_classes
    Z, y = loss_inputs(loss, rows, n_classes)
    grad = np.empty_like(Z)
    code, param = k.loss_code(loss), LOSS_PARAMS.get(loss, 0.0)
    target = "labels" if y.ndim == 1 else "targets"
    _label(benchmark, f"loss {loss}", size, f"({rows}x{n_classes}, {target})", backend,
           samples=rows)

    value = benchmark(k.loss_and_gradient, Z, y, grad, code, param)

    value_ref, grad_ref = loss_oracle(loss, Z, y)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, value_ref, rtol=1e-5)
    assert_close(grad, grad_ref)


# ---- optimizers --------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _flat_state_template(n, seed=5):
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(n, dtype=DTYPE)
    grads = rng.standard_normal(n, dtype=DTYPE)
    m = rng.standard_normal(n, dtype=DTYPE)
    m *= 0.1
    v = rng.random(n, dtype=DTYPE)  # second moments are >= 0
    v *= 0.1
    # a mean gradient with a^2 <= v, as RMSprop's centered estimate keeps it
    a = (0.5 * np.sqrt(v) * np.sign(rng.standard_normal(n))).astype(DTYPE)
    return params, grads, m, v, a


def _flat_state(n):
    """Fresh copies of a flat parameter buffer, its gradient and two state buffers."""
    return tuple(a.copy() for a in _flat_state_template(n))


def _assert_update(before, after, expected, name):
    """Compare the step taken (after - before), not the parameters: an update of
    1e-3 on parameters of 1 would hide in their rounding."""
    step = after.astype(np.float64) - before
    assert_close(step, expected - before, rtol=1e-3, err_msg=f"{name} step")


@parametrize_size
@parametrize_backend
def test_adam_update(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    n = size.n_params
    params, grads, m, v, _ = _flat_state(n)
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=10)
    _label(benchmark, "adam_update", size, f"({n:,} params)", backend)

    # in place and repeated: m and v tend to g and g^2, params drift by ~lr per call
    benchmark(k.adam_update, params, grads, m, v, *hyper.values())

    params, grads, m, v, _ = _flat_state(n)
    p_ref, m_ref, v_ref = adam_oracle(params, grads, m, v, *hyper.values())
    before = params.copy()
    k.adam_update(params, grads, m, v, *hyper.values())
    _assert_update(before, params, p_ref, "adam")
    assert_close(m, m_ref, rtol=1e-5)
    assert_close(v, v_ref, rtol=1e-5)


@parametrize_size
@parametrize_backend
def test_sgd_update(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    n = size.n_params
    params, grads, velocity, _, _ = _flat_state(n)
    hyper = dict(lr=1e-2, momentum=0.9, nesterov=False)
    _label(benchmark, "sgd_update (momentum)", size, f"({n:,} params)", backend)

    benchmark(k.sgd_update, params, grads, velocity, *hyper.values())

    params, grads, velocity, _, _ = _flat_state(n)
    p_ref, v_ref = sgd_oracle(params, grads, velocity, *hyper.values())
    before = params.copy()
    k.sgd_update(params, grads, velocity, *hyper.values())
    _assert_update(before, params, p_ref, "sgd")
    assert_close(velocity, v_ref, rtol=1e-5)


# The other optimizers, each: (label, kernel call on (k, params, grads, m, v, a),
# float64 oracle on the same arrays returning (params, *state), the state
# arrays to check).  m is also the momentum buffer / Adagrad sum, v the mean
# square, a the mean gradient (centered RMSprop).
ADAMW = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, step=10)
NADAM = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=4e-3, step=10,
             mu_product=0.3)
OPTIMIZER_KERNELS = {
    "adamw": ("adamw_update",
              lambda k, p, g, m, v, a: k.adamw_update(p, g, m, v, *ADAMW.values()),
              lambda p, g, m, v, a: adamw_oracle(p, g, m, v, *ADAMW.values()),
              lambda m, v, a: (m, v)),
    "adagrad": ("adagrad_update",
                lambda k, p, g, m, v, a: k.adagrad_update(p, g, v, 1e-2, 1e-10),
                lambda p, g, m, v, a: adagrad_oracle(p, g, v, 1e-2, 1e-10),
                lambda m, v, a: (v,)),
    "rmsprop": ("rmsprop_update",
                lambda k, p, g, m, v, a: k.rmsprop_update(p, g, v, 1e-3, 0.9, 1e-8),
                lambda p, g, m, v, a: rmsprop_oracle(p, g, v, 1e-3, 0.9, 1e-8)[:2],
                lambda m, v, a: (v,)),
    "rmsprop-centered-momentum": (
        "rmsprop_update (centered, momentum)",
        lambda k, p, g, m, v, a: k.rmsprop_update(p, g, v, 1e-3, 0.9, 1e-8, 0.9, m, a),
        lambda p, g, m, v, a: rmsprop_oracle(p, g, v, 1e-3, 0.9, 1e-8, 0.9, m, a),
        lambda m, v, a: (v, m, a)),
    "nadam": ("nadam_update",
              lambda k, p, g, m, v, a: k.nadam_update(p, g, m, v, *NADAM.values()),
              lambda p, g, m, v, a: nadam_oracle(p, g, m, v, *NADAM.values()),
              lambda m, v, a: (m, v)),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_KERNELS))
@parametrize_size
@parametrize_backend
def test_optimizer_update(benchmark, backend, size, optimizer):
    size = SIZES[size]
    k = kernels(backend)
    n = size.n_params
    label, run, oracle, state_of = OPTIMIZER_KERNELS[optimizer]
    params, grads, m, v, a = _flat_state(n)
    _label(benchmark, label, size, f"({n:,} params)", backend)

    # in place and repeated, as the Adam benchmark
    benchmark(run, k, params, grads, m, v, a)

    params, grads, m, v, a = _flat_state(n)
    expected = oracle(params, grads, m, v, a)
    before = params.copy()
    run(k, params, grads, m, v, a)
    _assert_update(before, params, expected[0], optimizer)
    for got, want in zip(state_of(m, v, a), expected[1:]):
        assert_close(got, want, rtol=1e-5)


# ---- batch normalization, PReLU, maxout ---------------------------------------------
# On the first hidden layer's output (batch x hidden): where these layers sit.

def _hidden(size, seed, scale=1.0, shift=0.0):
    rows, _, cols = size.kernel_layer
    rng = np.random.default_rng(seed)
    return (shift + scale * rng.standard_normal((rows, cols))).astype(DTYPE)


def _batchnorm_oracle(X, gamma, beta, dY, eps=1e-5):
    """y, dX, dgamma, dbeta of training-mode batch normalization, float64."""
    X, dY = X.astype(np.float64), dY.astype(np.float64)
    n = X.shape[0]
    xhat = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)
    dbeta, dgamma = dY.sum(axis=0), (dY * xhat).sum(axis=0)
    dX = gamma / np.sqrt(X.var(axis=0) + eps) * (dY - dbeta / n - xhat * dgamma / n)
    return gamma * xhat + beta, dX, dgamma, dbeta


@parametrize_size
@parametrize_backend
def test_batchnorm_forward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X = _hidden(size, 6, scale=2.0, shift=0.5)
    rows, cols = X.shape
    gamma, beta = np.full(cols, 1.5, DTYPE), np.full(cols, 0.1, DTYPE)
    Y, mean, var = np.empty_like(X), np.empty(cols), np.empty(cols)
    _label(benchmark, "batchnorm_forward", size, f"({rows}x{cols})", backend, samples=rows)

    benchmark(k.batchnorm_forward, X, gamma, beta, Y, mean, var)

    Y_ref, _, _, _ = _batchnorm_oracle(X, gamma, beta, np.zeros_like(X))
    assert_close(Y, Y_ref)
    np.testing.assert_allclose(var, X.astype(np.float64).var(axis=0), rtol=1e-6)


@parametrize_size
@parametrize_backend
def test_batchnorm_backward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X = _hidden(size, 7, scale=2.0, shift=0.5)
    dY = _hidden(size, 8)
    rows, cols = X.shape
    gamma = np.full(cols, 1.5, DTYPE)
    mean, var = X.astype(np.float64).mean(axis=0), X.astype(np.float64).var(axis=0)
    dX, dgamma, dbeta = np.empty_like(X), np.empty_like(gamma), np.empty_like(gamma)
    _label(benchmark, "batchnorm_backward", size, f"({rows}x{cols}, dX)", backend, samples=rows)

    benchmark(k.batchnorm_backward, X, gamma, mean, var, dY, dX, dgamma, dbeta)

    _, dX_ref, dgamma_ref, dbeta_ref = _batchnorm_oracle(X, gamma, np.zeros_like(gamma), dY)
    assert_close(dX, dX_ref, rtol=1e-3)
    assert_close(dgamma, dgamma_ref)
    assert_close(dbeta, dbeta_ref)


@parametrize_size
@parametrize_backend
def test_prelu_forward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X = _hidden(size, 9)
    rows, cols = X.shape
    alpha = np.linspace(0.05, 0.5, cols).astype(DTYPE)
    out = np.empty_like(X)
    _label(benchmark, "prelu_forward", size, f"({rows}x{cols})", backend)

    benchmark(k.prelu_forward, X, alpha, out)

    X64 = X.astype(np.float64)
    assert_close(out, np.where(X64 > 0, X64, alpha * X64), rtol=1e-6)


@parametrize_size
@parametrize_backend
def test_prelu_backward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X, dA = _hidden(size, 10), _hidden(size, 11)
    rows, cols = X.shape
    alpha = np.linspace(0.05, 0.5, cols).astype(DTYPE)
    dX, dalpha = np.empty_like(X), np.empty_like(alpha)
    _label(benchmark, "prelu_backward", size, f"({rows}x{cols}, dX)", backend)

    benchmark(k.prelu_backward, X, alpha, dA, dX, dalpha)

    X64, dA64 = X.astype(np.float64), dA.astype(np.float64)
    assert_close(dX, dA64 * np.where(X64 > 0, 1.0, alpha), rtol=1e-6)
    assert_close(dalpha, (dA64 * np.minimum(X64, 0)).sum(axis=0))


MAXOUT_PIECES = 2


def _maxout_input(size, seed):
    """Pieces (batch, hidden * MAXOUT_PIECES) of a maxout layer with `hidden` units."""
    rows, _, units = size.kernel_layer
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, units * MAXOUT_PIECES), dtype=DTYPE), units


@parametrize_size
@parametrize_backend
def test_maxout_forward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    Z, units = _maxout_input(size, 12)
    out = np.empty((Z.shape[0], units), DTYPE)
    _label(benchmark, "maxout_forward", size, f"({Z.shape[0]}x{units}x{MAXOUT_PIECES})", backend)

    benchmark(k.maxout_forward, Z, out, MAXOUT_PIECES)

    np.testing.assert_array_equal(out, Z.reshape(Z.shape[0], MAXOUT_PIECES, units).max(axis=1))


@parametrize_size
@parametrize_backend
def test_maxout_backward(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    Z, units = _maxout_input(size, 13)
    rows = Z.shape[0]
    dA = np.random.default_rng(14).standard_normal((rows, units), dtype=DTYPE)
    dZ = np.empty_like(Z)
    _label(benchmark, "maxout_backward", size, f"({rows}x{units}x{MAXOUT_PIECES})", backend)

    benchmark(k.maxout_backward, Z, dA, dZ, MAXOUT_PIECES)

    P = Z.reshape(rows, MAXOUT_PIECES, units)   # piece-major
    first_max = np.arange(MAXOUT_PIECES)[:, None] == P.argmax(axis=1)[:, None, :]
    np.testing.assert_array_equal(dZ.reshape(P.shape), np.where(first_max, dA[:, None, :], 0))


# ---- dropout, max-norm, inference-time kernels, input check -------------------

@parametrize_size
@parametrize_backend
def test_dropout(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X = _hidden(size, 9)
    rows, cols = X.shape
    out = np.empty_like(X)
    _label(benchmark, "dropout", size, f"({rows}x{cols}, p=0.5)", backend, samples=rows)

    benchmark(k.dropout, X, out, 0.5, 7, 1, 3)

    # the mask is keyed by (seed, layer, step, row, unit): the twin's is the oracle
    ref = np.empty_like(X)
    kernels("numpy").dropout(X, ref, 0.5, 7, 1, 3)
    np.testing.assert_array_equal(out, ref)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2.0 * X[kept], rtol=1e-6)
    assert 0.4 < kept.mean() < 0.6


@parametrize_size
@parametrize_backend
def test_max_norm_constraint(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    _, n_in, n_out = size.kernel_layer
    _, W0, _ = make_layer(1, n_in, n_out, seed=10)
    W0 *= np.linspace(0.5, 2.0, n_out, dtype=DTYPE)   # columns of norm ~0.5 to ~2
    max_norm = 1.0
    W = W0.copy()
    _label(benchmark, "max_norm_constraint", size, f"({n_in}x{n_out})", backend)

    # each round on a fresh copy: a constrained W has nothing left to scale
    benchmark.pedantic(k.max_norm_constraint, setup=lambda: ((W0.copy(), max_norm), {}),
                       rounds=50, warmup_rounds=2)

    k.max_norm_constraint(W, max_norm)
    norms = np.linalg.norm(W0.astype(np.float64), axis=0)
    ref = W0 * np.minimum(1.0, max_norm / norms)
    assert_close(W, ref, rtol=1e-5)


@parametrize_size
@parametrize_backend
def test_batchnorm_inference(benchmark, backend, size):
    size = SIZES[size]
    k = kernels(backend)
    X = _hidden(size, 11, scale=2.0, shift=0.5)
    rows, cols = X.shape
    gamma, beta = np.full(cols, 1.5, DTYPE), np.full(cols, 0.1, DTYPE)
    mean, var = np.full(cols, 0.4, DTYPE), np.full(cols, 3.0, DTYPE)
    Y = np.empty_like(X)
    _label(benchmark, "batchnorm_inference", size, f"({rows}x{cols})", backend, samples=rows)

    benchmark(k.batchnorm_inference, X, gamma, beta, mean, var, Y)

    ref = 1.5 * (X.astype(np.float64) - 0.4) / np.sqrt(3.0 + 1e-5) + 0.1
    assert_close(Y, ref, rtol=1e-5)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "poisson"])
@parametrize_size
@parametrize_backend
def test_loss_output(benchmark, backend, size, loss):
    """What predict() makes of the last layer: softmax, sigmoid, e^Z."""
    size = SIZES[size]
    k = kernels(backend)
    rows, n_classes = size.predict_samples, size.n_classes
    Z = (3.0 * np.random.default_rng(12).standard_normal((rows, n_classes))).astype(DTYPE)
    out = np.empty_like(Z)
    _label(benchmark, "loss_output", size, f"({rows}x{n_classes}, {loss})", backend,
           samples=rows)

    benchmark(k.loss_output, Z, k.loss_code(loss), out)

    z = Z.astype(np.float64)
    if loss == "softmax_cross_entropy":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        ref = e / e.sum(axis=1, keepdims=True)
    elif loss == "binary_cross_entropy":
        ref = 1.0 / (1.0 + np.exp(-z))
    else:
        ref = np.exp(z)
    assert_close(out, ref, rtol=1e-5)


def _numpy_all_finite(X):
    return bool(np.isfinite(X).all())


@parametrize_size
@parametrize_backend
def test_input_check(benchmark, backend, size):
    """The NaN/inf check every entry point runs on its input (fit: on the whole
    data set), native vs NumPy's isfinite(X).all()."""
    from fastmlp._kernels.checks import all_finite
    size = SIZES[size]
    check = all_finite if backend == "native" else _numpy_all_finite
    X = make_data(size, size.epoch_samples, seed=13)[0]
    rows, cols = X.shape
    _label(benchmark, "input_check", size, f"({rows}x{cols})", backend, samples=rows)

    assert benchmark(check, X) is True

    X[rows // 2, cols // 2] = np.nan
    assert check(X) is False
