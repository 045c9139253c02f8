"""BatchNorm, PReLU and Maxout: their kernels, the NumPy twin, the compiled step
and the layers in a Sequential model."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import BACKENDS, DTYPES, assert_close, numeric_gradient

# (rows, cols) of the kernel tests; the last is big enough for two threads
# (ELEMENTWISE_GRAIN per thread, with each kernel's weight per element)
KERNEL_SHAPES = [(2, 1), (7, 33), (2000, 800)]


def _randn(rng, shape, dtype, scale=1.0, shift=0.0):
    return (shift + scale * rng.standard_normal(shape)).astype(dtype)


# ---- textbook formulas (float64) -------------------------------------------------

def textbook_batchnorm(X, gamma, beta, eps):
    X = X.astype(np.float64)
    mean, var = X.mean(axis=0), X.var(axis=0)
    return gamma * (X - mean) / np.sqrt(var + eps) + beta, mean, var


def textbook_batchnorm_backward(X, gamma, dY, eps):
    """Ioffe & Szegedy 2015, algorithm in section 3, term by term."""
    X, dY = X.astype(np.float64), dY.astype(np.float64)
    n = X.shape[0]
    mean, var = X.mean(axis=0), X.var(axis=0)
    xhat = (X - mean) / np.sqrt(var + eps)
    dxhat = dY * gamma
    dvar = np.sum(dxhat * (X - mean), axis=0) * -0.5 * (var + eps) ** -1.5
    dmean = np.sum(-dxhat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2 * (X - mean), axis=0)
    dX = dxhat / np.sqrt(var + eps) + dvar * 2 * (X - mean) / n + dmean / n
    return dX, np.sum(dY * xhat, axis=0), np.sum(dY, axis=0)


# ---- batch normalization kernels ---------------------------------------------------

def _bn_forward(backend, X, gamma, beta, eps=1e-5):
    Y = np.empty_like(X)
    mean, var = np.empty(X.shape[1]), np.empty(X.shape[1])
    kernels(backend).batchnorm_forward(X, gamma, beta, Y, mean, var, eps)
    return Y, mean, var


def _bn_backward(backend, X, gamma, mean, var, dY, eps=1e-5):
    dX = np.empty_like(X)
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(gamma)
    kernels(backend).batchnorm_backward(X, gamma, mean, var, dY, dX, dgamma, dbeta, eps)
    return dX, dgamma, dbeta


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_batchnorm_forward_native_twin_textbook(dtype, shape, threads, rng):
    X = _randn(rng, shape, dtype, scale=3.0, shift=1.5)
    gamma = _randn(rng, shape[1], dtype, shift=1.0)
    beta = _randn(rng, shape[1], dtype)
    native = _bn_forward("native", X, gamma, beta)
    twin = _bn_forward("numpy", X, gamma, beta)
    expected = textbook_batchnorm(X, gamma, beta, 1e-5)
    for got, ref, want in zip(native, twin, expected):
        assert_close(got, ref, dtype)
        assert_close(got, want, dtype)
    np.testing.assert_allclose(native[1], X.astype(np.float64).mean(axis=0), rtol=1e-12,
                               atol=1e-12)


def test_batchnorm_statistics_stay_accurate_far_from_zero(rng):
    # mean 1e4, std 1 in float32: E[x^2] - mean^2 would lose every digit of the variance
    X = _randn(rng, (4096, 8), np.float32, shift=1e4)
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    with fm.threads(2):
        Y, mean, var = _bn_forward("native", X, ones, zeros)
    exact = X.astype(np.float64)
    np.testing.assert_allclose(var, exact.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(Y.std(axis=0, dtype=np.float64), 1.0, rtol=1e-3)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_batchnorm_backward_native_twin_textbook(dtype, shape, threads, rng):
    X = _randn(rng, shape, dtype, scale=2.0, shift=-1.0)
    gamma = _randn(rng, shape[1], dtype, shift=1.0)
    dY = _randn(rng, shape, dtype)
    _, mean, var = _bn_forward("native", X, gamma, np.zeros_like(gamma))
    native = _bn_backward("native", X, gamma, mean, var, dY)
    twin = _bn_backward("numpy", X, gamma, mean, var, dY)
    expected = textbook_batchnorm_backward(X, gamma, dY, 1e-5)
    for name, got, ref, want in zip(("dX", "dgamma", "dbeta"), native, twin, expected):
        assert_close(got, ref, dtype, err_msg=name)
        # dX is a difference of O(1) terms: compare against the scale of those terms
        assert_close(got, want, dtype, atol=1e-4 * np.abs(dY).max() * np.abs(gamma).max()
                     if dtype == np.float32 else None, err_msg=name)


def test_batchnorm_backward_matches_finite_differences(rng):
    X = _randn(rng, (6, 4), np.float64, scale=2.0)
    gamma, beta = _randn(rng, 4, np.float64, shift=1.0), _randn(rng, 4, np.float64)
    G = _randn(rng, (6, 4), np.float64)   # L = sum(Y * G): dY = G

    def loss(X, gamma, beta):
        return float(np.sum(_bn_forward("native", X, gamma, beta)[0] * G))

    _, mean, var = _bn_forward("native", X, gamma, beta)
    dX, dgamma, dbeta = _bn_backward("native", X, gamma, mean, var, G)
    h = 1e-6
    for analytic, arg in ((dX, 0), (dgamma, 1), (dbeta, 2)):
        args = [X, gamma, beta]
        numeric = np.zeros_like(analytic)
        for idx in np.ndindex(analytic.shape):
            up = [a.copy() for a in args]
            down = [a.copy() for a in args]
            up[arg][idx] += h
            down[arg][idx] -= h
            numeric[idx] = (loss(*up) - loss(*down)) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_inference_textbook(backend, dtype, rng):
    X = _randn(rng, (50, 7), dtype, scale=2.0)
    gamma, beta = _randn(rng, 7, dtype, shift=1.0), _randn(rng, 7, dtype)
    rm, rv = _randn(rng, 7, dtype), (rng.random(7) + 0.5).astype(dtype)
    Y = np.empty_like(X)
    kernels(backend).batchnorm_inference(X, gamma, beta, rm, rv, Y, 1e-3)
    expected = gamma.astype(np.float64) * (X - rm.astype(np.float64)) / np.sqrt(
        rv.astype(np.float64) + 1e-3) + beta
    assert_close(Y, expected, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_is_finite_for_large_and_constant_inputs(backend):
    X = np.full((64, 3), 100.0, np.float32)
    X[:, 1] = np.linspace(-100, 100, 64)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    Y, mean, var = _bn_forward(backend, X, ones, zeros)
    assert np.isfinite(Y).all()
    np.testing.assert_array_equal(Y[:, 0], 0)   # a constant feature normalizes to 0
    dX, dgamma, dbeta = _bn_backward(backend, X, ones, mean, var, np.ones_like(X))
    assert np.isfinite(dX).all() and np.isfinite(dgamma).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_kernels_reject_bad_input(backend):
    k = kernels(backend)
    X, v = np.ones((4, 3)), np.ones(3)
    with pytest.raises(ValueError, match="shape|length"):
        k.batchnorm_forward(X, np.ones(2), v, np.empty_like(X), np.empty(3), np.empty(3))
    with pytest.raises(ValueError, match="eps"):
        k.batchnorm_forward(X, v, v, np.empty_like(X), np.empty(3), np.empty(3), 0.0)
    with pytest.raises(ValueError, match="at least one row"):
        k.batchnorm_forward(np.ones((0, 3)), v, v, np.empty((0, 3)), np.empty(3), np.empty(3))
    with pytest.raises(ValueError, match="shape|length"):
        k.batchnorm_backward(X, v, v, v, np.ones((4, 2)), np.empty_like(X), np.empty(3),
                             np.empty(3))


# ---- PReLU kernels --------------------------------------------------------------------

@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_prelu_native_twin_textbook(dtype, shape, threads, rng):
    X = _randn(rng, shape, dtype, scale=2.0)
    alpha = (rng.random(shape[1]) - 0.2).astype(dtype)
    dA = _randn(rng, shape, dtype)
    results = {}
    for backend in BACKENDS:
        k = kernels(backend)
        out, dX, dalpha = np.empty_like(X), np.empty_like(X), np.empty_like(alpha)
        k.prelu_forward(X, alpha, out)
        k.prelu_backward(X, alpha, dA, dX, dalpha)
        results[backend] = (out, dX, dalpha)
    X64, a64, dA64 = X.astype(np.float64), alpha.astype(np.float64), dA.astype(np.float64)
    expected = (np.where(X64 > 0, X64, a64 * X64), dA64 * np.where(X64 > 0, 1.0, a64),
                np.sum(dA64 * np.minimum(X64, 0), axis=0))
    for name, got, ref, want in zip(("out", "dX", "dalpha"), results["native"],
                                    results["numpy"], expected):
        assert_close(got, ref, dtype, err_msg=name)
        assert_close(got, want, dtype, err_msg=name)


def test_prelu_forward_on_two_threads(rng):
    # the forward pass is cheap per element: it splits only above 3.2M elements
    X = _randn(rng, (4096, 800), np.float32)
    alpha = rng.random(800).astype(np.float32)
    outs = []
    for n in (1, 2):
        with fm.threads(n):
            out = np.empty_like(X)
            kernels("native").prelu_forward(X, alpha, out)
            outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[1], np.where(X > 0, X, alpha * X))


def test_prelu_backward_matches_finite_differences(rng):
    X = _randn(rng, (5, 4), np.float64)
    alpha = rng.random(4)
    G = _randn(rng, (5, 4), np.float64)
    dX, dalpha = np.empty_like(X), np.empty_like(alpha)
    kernels("native").prelu_backward(X, alpha, G, dX, dalpha)

    def loss(X, alpha):
        out = np.empty_like(X)
        kernels("native").prelu_forward(X, alpha, out)
        return float(np.sum(out * G))

    h = 1e-6
    for idx in np.ndindex(X.shape):
        up, down = X.copy(), X.copy()
        up[idx] += h
        down[idx] -= h
        np.testing.assert_allclose(dX[idx], (loss(up, alpha) - loss(down, alpha)) / (2 * h),
                                   rtol=1e-6, atol=1e-9)
    for c in range(4):
        up, down = alpha.copy(), alpha.copy()
        up[c] += h
        down[c] -= h
        np.testing.assert_allclose(dalpha[c], (loss(X, up) - loss(X, down)) / (2 * h),
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prelu_large_inputs_and_nan(backend):
    X = np.array([[-100.0, 100.0, np.nan]], np.float32)
    out = np.empty_like(X)
    kernels(backend).prelu_forward(X, np.full(3, 0.25, np.float32), out)
    np.testing.assert_array_equal(out[0, :2], [-25.0, 100.0])
    assert np.isnan(out[0, 2])  # a diverged model must not look healthy


# ---- maxout kernels -------------------------------------------------------------------

@pytest.mark.parametrize("pieces", [2, 3])
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_maxout_native_twin_textbook(dtype, shape, pieces, threads, rng):
    rows, units = shape
    Z = _randn(rng, (rows, units * pieces), dtype)
    dA = _randn(rng, (rows, units), dtype)
    results = {}
    for backend in BACKENDS:
        k = kernels(backend)
        out, dZ = np.empty((rows, units), dtype), np.empty_like(Z)
        k.maxout_forward(Z, out, pieces)
        k.maxout_backward(Z, dA, dZ, pieces)
        results[backend] = (out, dZ)
    np.testing.assert_array_equal(results["native"][0], results["numpy"][0])
    np.testing.assert_array_equal(results["native"][1], results["numpy"][1])
    P = Z.reshape(rows, pieces, units)   # piece j of unit u is column j units + u
    np.testing.assert_array_equal(results["native"][0], P.max(axis=1))
    first_max = np.arange(pieces)[:, None] == P.argmax(axis=1)[:, None, :]   # ties: the first
    np.testing.assert_array_equal(results["native"][1].reshape(P.shape),
                                  np.where(first_max, dA[:, None, :], 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_maxout_ties_and_nan(backend):
    # 2 units x 3 pieces, piece-major: unit 0 has pieces (1, 1, 0), unit 1 (2, NaN, 5)
    Z = np.array([[1.0, 2.0, 1.0, np.nan, 0.0, 5.0]])
    out, dZ = np.empty((1, 2)), np.empty_like(Z)
    k = kernels(backend)
    k.maxout_forward(Z, out, 3)
    k.maxout_backward(Z, np.array([[10.0, 20.0]]), dZ, 3)
    assert out[0, 0] == 1.0 and np.isnan(out[0, 1])
    np.testing.assert_array_equal(dZ, [[10.0, 0, 0, 20.0, 0, 0]])  # first maximum, first NaN


@pytest.mark.parametrize("backend", BACKENDS)
def test_maxout_kernels_reject_bad_input(backend):
    k = kernels(backend)
    with pytest.raises(ValueError, match="pieces"):
        k.maxout_forward(np.ones((2, 4)), np.empty((2, 4)), 1)
    with pytest.raises(ValueError, match="columns"):
        k.maxout_forward(np.ones((2, 5)), np.empty((2, 2)), 2)
    with pytest.raises(ValueError, match="shape|columns"):
        k.maxout_backward(np.ones((2, 4)), np.ones((2, 2)), np.empty((2, 3)), 2)


# ---- models ------------------------------------------------------------------------

STACKS = {
    "dense_bn_relu": lambda: [fm.Dense(6), fm.BatchNorm(activation="relu"), fm.Dense(3)],
    "bn_first": lambda: [fm.BatchNorm(), fm.Dense(5, activation="tanh"), fm.Dense(3)],
    "bn_last": lambda: [fm.Dense(5, activation="tanh"), fm.Dense(3), fm.BatchNorm(eps=1e-3)],
    "two_bn_dropout": lambda: [fm.Dense(6), fm.BatchNorm(activation="tanh"), fm.Dropout(0.3),
                               fm.Dense(5), fm.BatchNorm(momentum=0.5, activation="sigmoid"),
                               fm.Dense(3)],
    "prelu": lambda: [fm.Dense(6), fm.PReLU(), fm.Dense(3)],
    "prelu_first_dropout": lambda: [fm.PReLU(init=0.1), fm.Dropout(0.2), fm.Dense(5),
                                    fm.PReLU(), fm.Dense(3)],
    "maxout": lambda: [fm.Maxout(5, pieces=3), fm.Dense(3)],
    "maxout_dropout_last": lambda: [fm.Dense(6, activation="tanh"), fm.Maxout(4, pieces=2),
                                    fm.Dropout(0.25), fm.Maxout(3, pieces=2)],
    "everything": lambda: [fm.Dense(6), fm.BatchNorm(activation="leaky_relu"), fm.Dropout(0.2),
                           fm.Maxout(5, pieces=2), fm.PReLU(), fm.BatchNorm(), fm.Dense(3)],
}


def _model(stack, backend="native", dtype="float64", n_in=4, seed=1, optimizer=None,
           loss="softmax_cross_entropy"):
    model = fm.Sequential(STACKS[stack](), input_dim=n_in, dtype=dtype, seed=seed,
                          backend=backend)
    model.compile(loss=loss, optimizer=optimizer or fm.SGD(lr=0.1, momentum=0.9))
    return model


def _data(n, n_in=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, k, n)


def _finite_difference_check(model, X, y):
    loss, grads = model.loss_and_gradients(X, y)
    weights = model.get_weights()
    assert [g.shape for g in grads] == [w.shape for w in weights]
    for i, W in enumerate(weights):
        np.testing.assert_allclose(grads[i], numeric_gradient(model, X, y, i).reshape(W.shape),
                                   rtol=1e-5, atol=1e-8, err_msg=f"parameter array {i}")


@pytest.mark.parametrize("stack", list(STACKS))
def test_model_gradients_match_finite_differences(backend, stack):
    X, y = _data(10)
    model = _model(stack, backend)
    state = model.get_state()
    _finite_difference_check(model, X, y)
    for before, after in zip(state, model.get_state()):  # no running update without a step
        np.testing.assert_array_equal(before, after)


def test_mse_gradients_through_batchnorm_last(backend):
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = fm.Sequential([fm.Dense(4), fm.PReLU(), fm.Dense(2),
                           fm.BatchNorm(activation="tanh")], input_dim=3, dtype="float64",
                          seed=2, backend=backend)
    model.compile(loss="mse", optimizer="sgd")
    _finite_difference_check(model, X, Y)


def _rel_to_scale(a, b, scale=None):
    """Largest difference relative to `scale` (default: the largest magnitude of
    b).  The gradient of a bias right before a batch norm is 0 up to rounding, so
    it has no relative error of its own: compare it at the scale of the others."""
    scale = float(np.max(np.abs(b))) if scale is None else scale
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(scale, 1e-30))


def _largest(arrays):
    return max(float(np.max(np.abs(a))) for a in arrays)


WIDE_STACKS = {
    "everything": lambda: [fm.Dense(256), fm.BatchNorm(activation="relu"), fm.Dropout(0.2),
                           fm.Maxout(128, pieces=2), fm.PReLU(), fm.BatchNorm(), fm.Dense(3)],
    "two_bn_dropout": lambda: [fm.Dense(256), fm.BatchNorm(activation="tanh"), fm.Dropout(0.3),
                               fm.Dense(128), fm.BatchNorm(momentum=0.5), fm.Dense(3)],
    "maxout_dropout_last": lambda: [fm.Dense(256, activation="tanh"), fm.Maxout(128, pieces=3),
                                    fm.Dropout(0.25), fm.Maxout(3, pieces=2)],
}


@pytest.mark.parametrize("stack", list(WIDE_STACKS))
def test_backends_agree(stack, dtype, threads):
    # 256 rows through 32-256-...: enough work for two native threads
    X, y = _data(256, n_in=32)
    models = []
    for backend in BACKENDS:
        model = fm.Sequential(WIDE_STACKS[stack](), input_dim=32, dtype=dtype, seed=3,
                              backend=backend)
        model.compile(optimizer=fm.SGD(lr=0.05, momentum=0.9))
        models.append(model)
    native, numpy = models
    tol = 2e-4 if dtype == np.float32 else 1e-9
    assert _rel_to_scale(native.predict(X), numpy.predict(X)) < tol
    (loss_n, grads_n), (loss_p, grads_p) = (m.loss_and_gradients(X, y) for m in models)
    np.testing.assert_allclose(loss_n, loss_p, rtol=tol)
    for i, (gn, gp) in enumerate(zip(grads_n, grads_p)):
        assert _rel_to_scale(gn, gp, _largest(grads_p)) < tol, f"gradient {i}"
    for step in range(3):
        np.testing.assert_allclose(native.train_step(X, y), numpy.train_step(X, y), rtol=tol)
    weights_p = numpy.get_weights()
    for i, (wn, wp) in enumerate(zip(native.get_weights(), weights_p)):
        assert _rel_to_scale(wn, wp, _largest(weights_p)) < tol, f"weights {i}"
    for i, (sn, sp) in enumerate(zip(native.get_state(), numpy.get_state())):
        assert_close(sn, sp, dtype, err_msg=f"state {i}")
    assert _rel_to_scale(native.predict(X), numpy.predict(X)) < 10 * tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_and_sample_weights_agree_between_backends(dtype):
    # the native epoch loop (batches gathered natively) against the twin's
    X, y = _data(200)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 64).astype(dtype)
    models = [_model("everything", backend, dtype) for backend in BACKENDS]
    for model in models:
        model.fit(X, y, epochs=2, batch_size=48, verbose=0)   # 48, 48, 48, 48, 8
    results = [m.get_weights() + m.get_state() for m in models]
    tol = 1e-3 if dtype == np.float32 else 1e-9
    for a, b in zip(*results):
        assert _rel_to_scale(a, b, _largest(results[1])) < tol
    X64 = np.ascontiguousarray(X[:64], dtype=dtype)
    (loss_n, grads_n), (loss_p, grads_p) = (
        (m._plan.forward_backward(X64, y[:64], w), [g.copy() for g in m._views(m.grads)])
        for m in models)
    np.testing.assert_allclose(loss_n, loss_p, rtol=tol)
    for gn, gp in zip(grads_n, grads_p):
        assert _rel_to_scale(gn, gp, _largest(grads_p)) < tol


def test_threads_agree_and_repeat_bit_for_bit():
    X, y = _data(512, n_in=64)
    runs = {}
    for nt in (1, 2, 2):
        with fm.threads(nt):
            model = fm.Sequential([fm.Dense(256), fm.BatchNorm(activation="relu"),
                                   fm.Maxout(64, pieces=2), fm.PReLU(), fm.BatchNorm(),
                                   fm.Dense(3)], input_dim=64, seed=5)
            model.compile(optimizer=fm.Adam(lr=1e-3))
            model.fit(X, y, epochs=2, batch_size=128, verbose=0)
            result = model.get_weights() + model.get_state() + [model.predict(X)]
        if nt in runs:  # same thread count: bit-identical
            for a, b in zip(runs[nt], result):
                np.testing.assert_array_equal(a, b)
        runs[nt] = result
    for a, b in zip(runs[1], runs[2]):     # rounding, amplified by Adam over 8 steps
        assert _rel_to_scale(a, b, _largest(runs[2])) < 1e-3


def test_running_statistics_follow_the_formula(backend, dtype):
    X, y = _data(32)
    model = fm.Sequential([fm.Dense(5), fm.BatchNorm(momentum=0.8, activation="relu"),
                           fm.Dense(3)], input_dim=4, dtype=dtype, seed=0, backend=backend)
    model.compile(optimizer=fm.SGD(lr=0.1))
    mean0, var0 = model.get_state()
    np.testing.assert_array_equal(mean0, 0)
    np.testing.assert_array_equal(var0, 1)
    W, b = (w.astype(np.float64) for w in model.get_weights()[:2])
    H = X.astype(dtype).astype(np.float64) @ W + b          # the batch norm's input
    model.loss_and_gradients(X, y)                           # no update: state unchanged
    np.testing.assert_array_equal(model.get_state()[0], mean0)
    model.train_step(X, y)
    mean1, var1 = model.get_state()
    assert_close(mean1, 0.2 * H.mean(axis=0), dtype)
    assert_close(var1, 0.8 + 0.2 * H.var(axis=0, ddof=1), dtype)  # unbiased into the average
    # inference uses the running statistics
    weights = [w.astype(np.float64) for w in model.get_weights()]
    W1, b1, gamma, beta, W2, b2 = weights
    H = X.astype(dtype).astype(np.float64) @ W1 + b1
    A = np.maximum(gamma * (H - mean1) / np.sqrt(var1.astype(np.float64) + 1e-5) + beta, 0)
    logits = A @ W2 + b2
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert_close(model.predict(X), expected / expected.sum(axis=1, keepdims=True), dtype)


def test_split_step_equals_train_step_with_batchnorm(backend, dtype):
    X, y = _data(64)
    X = np.ascontiguousarray(X, dtype=dtype)
    fused, split = _model("two_bn_dropout", backend, dtype), _model("two_bn_dropout", backend, dtype)
    for _ in range(3):
        np.testing.assert_allclose(split._plan.forward_backward(X, y), fused.train_step(X, y),
                                   rtol=1e-6)
        split._plan.apply_update()
    for a, b in zip(fused.get_weights() + fused.get_state(),
                    split.get_weights() + split.get_state()):
        np.testing.assert_array_equal(a, b)
    # a second apply_update does not fold the same batch statistics in twice
    state = split.get_state()
    split._plan.apply_update()
    for a, b in zip(state, split.get_state()):
        np.testing.assert_array_equal(a, b)


def test_weights_order_state_and_spans(backend):
    model = fm.Sequential([fm.Dense(5), fm.BatchNorm(), fm.Maxout(4, pieces=3), fm.PReLU(),
                           fm.Dense(2)], input_dim=3, backend=backend)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 5), (5,), (5,), (5,), (5, 12), (12,), (4,), (4, 2), (2,)]
    weights = model.get_weights()
    np.testing.assert_array_equal(weights[2], 1)       # gamma
    np.testing.assert_array_equal(weights[3], 0)       # beta
    np.testing.assert_array_equal(weights[6], 0.25)    # PReLU slopes
    assert model.count_params() == sum(w.size for w in weights) == 15 + 5 + 10 + 60 + 12 + 4 + 10
    assert [s.shape for s in model.get_state()] == [(5,), (5,)]
    assert model.state.shape == (32,) and model.state.dtype == model.dtype
    # the weight matrices, as flat spans: every one is 64-byte aligned
    spans = model.decay_spans
    assert len(spans) == 3
    for (off, size), W in zip(spans, [weights[0], weights[4], weights[7]]):
        assert off % 16 == 0 and size == W.size
        np.testing.assert_array_equal(model.params[off:off + size], W.ravel())
    model.compile(loss="softmax_cross_entropy")
    assert model._plan.decay_spans == spans
    text = model.summary()
    assert "Maxout(4, pieces=3)" in text and "PReLU(init=0.25)" in text
    assert f"total: {model.count_params():,} parameters" in text
    assert "gamma 5" in text and "alpha 4" in text


def test_set_state_checks_and_round_trips():
    model = _model("two_bn_dropout")
    state = [s + 1.0 for s in model.get_state()]
    model.set_state(state)
    for a, b in zip(model.get_state(), state):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_state(state[:2])
    bad = [s.copy() for s in state]
    bad[1][0] = -1.0
    with pytest.raises(ValueError, match="variance"):
        model.set_state(bad)
    bad = [s.copy() for s in state]
    bad[2][0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.set_state(bad)
    with pytest.raises(ValueError, match="shape"):
        model.set_state([np.ones(7)] + state[1:])
    for a, b in zip(model.get_state(), state):   # nothing written by a failed call
        np.testing.assert_array_equal(a, b)
    assert fm.Sequential([fm.Dense(2)], input_dim=2).get_state() == []


def test_inference_is_deterministic_and_matches_evaluate(backend):
    # dropout off and running statistics: predict does not depend on the batch
    X, y = _data(40)
    model = _model("two_bn_dropout", backend)
    model.train_step(X, y)
    proba = model.predict(X)
    np.testing.assert_allclose(model.predict(X[:7]), proba[:7], rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(X, y)["loss"],
                               -np.mean(np.log(proba[np.arange(40), y])), rtol=1e-10)


@pytest.mark.parametrize("stack, epochs", [
    (lambda: [fm.Dense(64), fm.BatchNorm(activation="relu"), fm.Dense(64),
              fm.BatchNorm(activation="relu"), fm.Dense(3)], 150),
    (lambda: [fm.Dense(64), fm.PReLU(), fm.Dense(64), fm.PReLU(), fm.Dense(3)], 300),
    (lambda: [fm.Maxout(64, pieces=3), fm.Maxout(64, pieces=3), fm.Dense(3)], 300),
], ids=["batchnorm", "prelu", "maxout"])
def test_learns_spiral(stack, epochs):
    X, y = fm.datasets.spiral(n_samples=300, n_classes=3, seed=0)
    model = fm.Sequential(stack(), input_dim=2, seed=0)
    model.compile(optimizer=fm.Adam(lr=1e-2))
    model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    assert np.mean(model.predict(X).argmax(axis=1) == y) >= 0.95


# ---- bad arrangements and arguments -----------------------------------------------------

@pytest.mark.parametrize("layers, message", [
    (lambda: [fm.Dropout(0.1), fm.BatchNorm(), fm.Dense(2)], "follow"),
    (lambda: [fm.PReLU(), fm.Dropout(0.1), fm.Dropout(0.1), fm.Dense(2)], "follow"),
    (lambda: [fm.Dense(4), fm.BatchNorm(), fm.Dropout(0.1)], "last layer"),
    (lambda: [fm.Dense(4), "batchnorm", fm.Dense(2)], "fastmlp.BatchNorm"),
])
def test_bad_stacks_raise(layers, message):
    with pytest.raises(ValueError, match=message):
        fm.Sequential(layers(), input_dim=3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_cross_entropy_needs_logits_from_the_last_layer(backend):
    for layers in ([fm.Dense(3), fm.PReLU()], [fm.Dense(3), fm.BatchNorm(activation="relu")]):
        model = fm.Sequential(layers, input_dim=2, backend=backend)
        with pytest.raises(ValueError, match="logits"):
            model.compile(loss="softmax_cross_entropy")
        model.compile(loss="mse")  # fine for regression
    for layers in ([fm.Dense(3), fm.BatchNorm()], [fm.Maxout(3, pieces=2)]):
        fm.Sequential(layers, input_dim=2, backend=backend).compile(loss="softmax_cross_entropy")
    model = fm.Sequential([fm.BatchNorm()], backend=backend)   # width known once built
    model.compile(loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=">= 2 units"):
        model.build(1)
    assert model.input_dim is None        # not left half-built
    model.build(2)


@pytest.mark.parametrize("make", [
    lambda: fm.Maxout(4, pieces=1), lambda: fm.Maxout(4, pieces=2.0), lambda: fm.Maxout(0),
    lambda: fm.Maxout(3, init="no_such_init"), lambda: fm.BatchNorm(momentum=1.5),
    lambda: fm.BatchNorm(momentum=float("nan")), lambda: fm.BatchNorm(eps=0),
    lambda: fm.BatchNorm(eps=-1e-5), lambda: fm.BatchNorm(activation="no_such_activation"),
    lambda: fm.PReLU(init=float("inf")), lambda: fm.PReLU(init="a"),
])
def test_bad_layer_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_needs_two_samples_per_training_batch(backend):
    X, y = _data(33)
    model = _model("dense_bn_relu", backend)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.train_step(X[:1], y[:1])
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.loss_and_gradients(X[:1], y[:1])
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=32, verbose=0)   # 33 = 32 + 1
    model.fit(X, y, batch_size=11, verbose=0)       # 3 x 11
    assert model.predict(X[:1]).shape == (1, 3)     # inference: any number of rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec, message", [
    ({"kind": "conv", "n_in": 2, "n_out": 2, "w_off": 0}, "kind"),
    ({"kind": "maxout", "n_in": 2, "n_out": 2, "w_off": 0, "pieces": 1}, "pieces"),
    ({"kind": "dense", "n_in": 2, "n_out": 2, "w_off": 0, "pieces": 2}, "pieces"),
    ({"kind": "prelu", "n_in": 2, "n_out": 3, "w_off": 0}, "width"),
    ({"kind": "prelu", "n_in": 2, "n_out": 2, "w_off": 0, "act": 3}, "activation"),
    ({"kind": "batchnorm", "n_in": 2, "n_out": 2, "w_off": 0, "eps": 0.0}, "eps"),
    ({"kind": "dense", "n_in": 2, "n_out": 2, "w_off": 62}, "does not fit"),
    ({"kind": "dense", "n_in": 2, "n_out": 2, "w_off": 0, "act": 99}, "activation"),
    ({"kind": "dense", "n_in": 2, "n_out": 2, "w_off": 0, "bias": 1}, "unknown spec keys"),
    ({"kind": "dense", "n_in": 2, "n_out": 2}, "needs"),
])
def test_plan_rejects_bad_specs(backend, spec, message):
    params = np.zeros(64)
    with pytest.raises(ValueError, match=message):
        kernels(backend).Plan([spec], params, np.zeros_like(params), 1, running=np.zeros(8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_batchnorm_needs_running_buffer(backend):
    params = np.zeros(64)
    spec = {"kind": "batchnorm", "n_in": 2, "n_out": 2, "w_off": 0, "b_off": 16,
            "rm_off": 0, "rv_off": 2}
    with pytest.raises(ValueError, match="running"):
        kernels(backend).Plan([spec], params, np.zeros_like(params), 1)
    with pytest.raises(ValueError, match="running-statistics"):
        kernels(backend).Plan([spec], params, np.zeros_like(params), 1, running=np.zeros(3))


def test_large_inputs_stay_finite_in_float32(backend):
    X, y = _data(64)
    model = _model("everything", backend, dtype="float32")
    X = 100.0 * np.sign(X)
    loss = model.train_step(X, y)
    assert np.isfinite(loss)
    assert all(np.isfinite(w).all() for w in model.get_weights() + model.get_state())
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_takes_a_dense_layer_as_a_tuple_spec(backend):
    # (n_in, n_out, act, alpha, w_off, b_off, drop): the same layer as its dict spec
    rng = np.random.default_rng(0)
    params = rng.standard_normal(48)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    losses = []
    for spec in [(3, 2, 2, 0.0, 0, 16, 0.0),
                 {"kind": "dense", "n_in": 3, "n_out": 2, "act": 2, "w_off": 0, "b_off": 16}]:
        plan = kernels(backend).Plan([spec], params.copy(), np.zeros(48), 1)
        losses.append(plan.forward_backward(X, y))
        assert plan.decay_spans == [(0, 6)]
    assert losses[0] == losses[1]
