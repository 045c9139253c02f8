"""Optimizer updates vs hand-written NumPy written from the formulas.

SGD (PyTorch's convention, no dampening):
    momentum 0:  p -= lr g
    momentum mu: v = mu v + g;  p -= lr v;   Nesterov: p -= lr (g + mu v)
Adam (Kingma & Ba 2015, bias-corrected, eps outside the square root):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
"""
import math

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import assert_close

# Sizes: 1 element and one that is not a multiple of the 16-element chunks the
# native update splits on.  These are too small for the native kernels to use a
# second thread; test_large_update_on_two_threads covers that.
SIZES = pytest.mark.parametrize("n", [1, 1003])
# SGD splits over threads from 1.6M elements, Adam from 0.8M
LARGE = 1_600_003

N_STEPS = 4


def hand_sgd(p, v, g, lr, mu, nesterov):
    """One SGD step on float64 copies, straight from the formulas; returns (p, v)."""
    if mu == 0:
        return p - lr * g, v
    v = mu * v + g
    if nesterov:
        return p - lr * (g + mu * v), v
    return p - lr * v, v


def hand_adam(p, m, v, g, lr, b1, b2, eps, t):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return p, m, v


def _grads(rng, n, dtype, steps=N_STEPS):
    return [rng.standard_normal(n).astype(dtype) for _ in range(steps)]


# ---- kernels --------------------------------------------------------------------

SGD_CASES = [(0.1, 0.0, False), (0.05, 0.9, False), (0.05, 0.9, True), (1e-3, 0.5, True)]
SGD_IDS = ["plain", "momentum", "nesterov", "nesterov-small-lr"]


@SIZES
@pytest.mark.parametrize("lr, mu, nesterov", SGD_CASES, ids=SGD_IDS)
def test_sgd_native_twin_and_formula(native, twin, lr, mu, nesterov, n, dtype, threads, rng):
    p0 = rng.standard_normal(n).astype(dtype)
    grads = _grads(rng, n, dtype)
    p_native, v_native = p0.copy(), np.zeros(n, dtype)
    p_twin, v_twin = p0.copy(), np.zeros(n, dtype)
    p_hand, v_hand = p0.astype(np.float64), np.zeros(n)
    for step, g in enumerate(grads, 1):
        native.sgd_update(p_native, g, v_native, lr, mu, nesterov)
        twin.sgd_update(p_twin, g, v_twin, lr, mu, nesterov)
        p_hand, v_hand = hand_sgd(p_hand, v_hand, g.astype(np.float64), lr, mu, nesterov)
        msg = f"after step {step}"
        assert_close(p_native, p_hand, dtype, err_msg=msg)
        assert_close(p_twin, p_hand, dtype, err_msg=msg)
        assert_close(p_native, p_twin, dtype, err_msg=msg)
        if mu:
            assert_close(v_native, v_hand, dtype, err_msg=msg)
            assert_close(v_twin, v_hand, dtype, err_msg=msg)
    assert p_native.dtype == dtype


ADAM_CASES = [(1e-3, 0.9, 0.999, 1e-8), (0.05, 0.0, 0.5, 1e-3), (0.01, 0.5, 0.9, 0.1)]
ADAM_IDS = ["defaults", "beta1=0", "large-eps"]


@SIZES
@pytest.mark.parametrize("lr, b1, b2, eps", ADAM_CASES, ids=ADAM_IDS)
def test_adam_native_twin_and_formula(native, twin, lr, b1, b2, eps, n, dtype, threads, rng):
    p0 = rng.standard_normal(n).astype(dtype)
    grads = _grads(rng, n, dtype)
    p_native, m_native, v_native = p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
    p_twin, m_twin, v_twin = p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
    p_hand, m_hand, v_hand = p0.astype(np.float64), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, 1):
        native.adam_update(p_native, g, m_native, v_native, lr, b1, b2, eps, t)
        twin.adam_update(p_twin, g, m_twin, v_twin, lr, b1, b2, eps, t)
        p_hand, m_hand, v_hand = hand_adam(p_hand, m_hand, v_hand, g.astype(np.float64),
                                           lr, b1, b2, eps, t)
        msg = f"after step {t}"
        for got_p, got_m, got_v in ((p_native, m_native, v_native), (p_twin, m_twin, v_twin)):
            assert_close(got_p, p_hand, dtype, err_msg=msg)
            assert_close(got_m, m_hand, dtype, err_msg=msg)
            assert_close(got_v, v_hand, dtype, err_msg=msg)
        assert_close(p_native, p_twin, dtype, err_msg=msg)


@pytest.mark.parametrize("opt", ["nesterov", "adam"])
def test_large_update_on_two_threads(native, opt, dtype, rng):
    p0 = rng.standard_normal(LARGE).astype(dtype)
    grads = _grads(rng, LARGE, dtype, steps=2)
    results = []
    for n_threads in (1, 2):
        p, s1, s2 = p0.copy(), np.zeros(LARGE, dtype), np.zeros(LARGE, dtype)
        with fm.threads(n_threads):
            for t, g in enumerate(grads, 1):
                if opt == "adam":
                    native.adam_update(p, g, s1, s2, 0.01, 0.9, 0.999, 1e-8, t)
                else:
                    native.sgd_update(p, g, s1, 0.05, 0.9, True)
        results.append(p)
    # elementwise: the thread split cannot change a single bit
    np.testing.assert_array_equal(results[1], results[0])
    p_hand, s1, s2 = p0.astype(np.float64), np.zeros(LARGE), np.zeros(LARGE)
    for t, g in enumerate(grads, 1):
        if opt == "adam":
            p_hand, s1, s2 = hand_adam(p_hand, s1, s2, g.astype(np.float64), 0.01, 0.9, 0.999,
                                       1e-8, t)
        else:
            p_hand, s1 = hand_sgd(p_hand, s1, g.astype(np.float64), 0.05, 0.9, True)
    assert_close(results[1], p_hand, dtype)


def test_adam_first_step_moves_by_lr(backend, dtype):
    # with t = 1 the bias corrections make the step lr * sign(g) (up to eps)
    k = kernels(backend)
    g = np.array([3.0, -0.25, 1e-3, -40.0], dtype=dtype)
    p, m, v = np.zeros(4, dtype), np.zeros(4, dtype), np.zeros(4, dtype)
    k.adam_update(p, g, m, v, 0.1, 0.9, 0.999, 1e-12, 1)
    np.testing.assert_allclose(p, -0.1 * np.sign(g), rtol=1e-5)


def test_adam_step_must_be_positive(backend):
    k = kernels(backend)
    p = np.zeros(3)
    with pytest.raises(ValueError, match="step"):
        k.adam_update(p, np.ones(3), np.zeros(3), np.zeros(3), 0.1, 0.9, 0.999, 1e-8, 0)


def test_zero_gradient_sgd_keeps_parameters(backend, dtype, rng):
    k = kernels(backend)
    p = rng.standard_normal(37).astype(dtype)
    expected = p.copy()
    k.sgd_update(p, np.zeros(37, dtype), np.zeros(37, dtype), 0.5, 0.9, True)
    np.testing.assert_array_equal(p, expected)


@pytest.mark.parametrize("which", ["grads", "state"])
def test_update_length_mismatch_raises(backend, which):
    k = kernels(backend)
    p = np.zeros(8)
    g = np.zeros(7) if which == "grads" else np.zeros(8)
    s = np.zeros(9) if which == "state" else np.zeros(8)
    with pytest.raises(ValueError):
        k.sgd_update(p, g, s, 0.1, 0.9)
    with pytest.raises(ValueError):
        k.adam_update(p, g, s, np.zeros(8), 0.1, 0.9, 0.999, 1e-8, 1)


# ---- the same updates inside the compiled step ---------------------------------

def _pair(backend, dtype, optimizer_factory):
    """Two identical models (same seed) with their own optimizers."""
    models = []
    for _ in range(2):
        model = fm.Sequential([fm.Dense(13, activation="tanh"), fm.Dense(3)], input_dim=5,
                              dtype=dtype, seed=7, backend=backend)
        model.compile(loss="softmax_cross_entropy", optimizer=optimizer_factory())
        models.append(model)
    return models


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_train_step_applies_the_formula(backend, opt, dtype, threads, rng):
    """train_step (fused native update) == loss_and_gradients + the hand-written update."""
    factory = {"sgd": lambda: fm.SGD(lr=0.1),
               "momentum": lambda: fm.SGD(lr=0.05, momentum=0.9),
               "nesterov": lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True),
               "adam": lambda: fm.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)}[opt]
    stepped, reference = _pair(backend, dtype, factory)
    X = rng.standard_normal((150, 5))
    y = rng.integers(0, 3, size=150)
    params = [w.astype(np.float64) for w in reference.get_weights()]
    state1 = [np.zeros_like(w) for w in params]
    state2 = [np.zeros_like(w) for w in params]
    for t in range(1, 4):
        reference.set_weights(params)
        loss_ref, grads = reference.loss_and_gradients(X, y)
        loss = stepped.train_step(X, y)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            if opt == "adam":
                params[i], state1[i], state2[i] = hand_adam(params[i], state1[i], state2[i], g,
                                                            0.01, 0.8, 0.99, 1e-6, t)
            else:
                lr, mu, nesterov = {"sgd": (0.1, 0.0, False), "momentum": (0.05, 0.9, False),
                                    "nesterov": (0.05, 0.9, True)}[opt]
                params[i], state1[i] = hand_sgd(params[i], state1[i], g, lr, mu, nesterov)
        for got, want in zip(stepped.get_weights(), params):
            assert_close(got, want, dtype, err_msg=f"after step {t}")


# ---- hyperparameter validation -------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"lr": 0}, {"lr": -0.1}, {"lr": float("nan")}, {"lr": float("inf")},
    {"momentum": -0.1}, {"momentum": 1.0}, {"momentum": 1.5}, {"momentum": float("nan")},
    {"nesterov": True}, {"momentum": 0.0, "nesterov": True},
])
def test_sgd_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        fm.SGD(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"lr": 0}, {"lr": -1e-3}, {"lr": float("nan")},
    {"beta1": -0.1}, {"beta1": 1.0}, {"beta1": 2}, {"beta2": -1e-9}, {"beta2": 1.0},
    {"beta2": float("nan")}, {"eps": 0}, {"eps": -1e-8}, {"eps": float("nan")},
])
def test_adam_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        fm.Adam(**kwargs)


def test_valid_hyperparameters_are_kept():
    sgd = fm.SGD(lr=0.3, momentum=0.0)
    assert (sgd.lr, sgd.momentum, sgd.nesterov) == (0.3, 0.0, False)
    sgd = fm.SGD(lr=0.3, momentum=0.5, nesterov=True)
    assert (sgd.momentum, sgd.nesterov) == (0.5, True)
    adam = fm.Adam(lr=0.002, beta1=0.0, beta2=0.5, eps=1e-3)
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps) == (0.002, 0.0, 0.5, 1e-3)
    assert isinstance(fm.optimizers.get("adam"), fm.Adam)
    assert isinstance(fm.optimizers.get("SGD"), fm.SGD)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fm.optimizers.get("adadelta")


# ---- against PyTorch, when it is installed ----------------------------------------

@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_matches_torch_optim(backend, opt, rng):
    torch = pytest.importorskip("torch")
    k = kernels(backend)
    n = 57
    p0 = rng.standard_normal(n)
    grads = _grads(rng, n, np.float64)
    tp = torch.nn.Parameter(torch.tensor(p0.copy(), dtype=torch.float64))
    if opt == "adam":
        torch_opt = torch.optim.Adam([tp], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    else:
        lr, mu, nesterov = {"sgd": (0.1, 0.0, False), "momentum": (0.05, 0.9, False),
                            "nesterov": (0.05, 0.9, True)}[opt]
        torch_opt = torch.optim.SGD([tp], lr=lr, momentum=mu, nesterov=nesterov)
    p, s1, s2 = p0.copy(), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, 1):
        tp.grad = torch.tensor(g.copy(), dtype=torch.float64)
        torch_opt.step()
        if opt == "adam":
            k.adam_update(p, g, s1, s2, 0.01, 0.8, 0.99, 1e-6, t)
        else:
            k.sgd_update(p, g, s1, lr, mu, nesterov)
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_formulas_reference_is_sane():
    # the hand-written reference itself, on numbers worked out by hand
    p, v = hand_sgd(np.array([1.0]), np.array([2.0]), np.array([0.5]), 0.1, 0.9, False)
    np.testing.assert_allclose(v, [2.3])
    np.testing.assert_allclose(p, [1.0 - 0.23])
    p, v = hand_sgd(np.array([1.0]), np.array([2.0]), np.array([0.5]), 0.1, 0.9, True)
    np.testing.assert_allclose(p, [1.0 - 0.1 * (0.5 + 0.9 * 2.3)])
    p, m, v = hand_adam(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([2.0]),
                        0.1, 0.9, 0.999, 0.0, 1)
    np.testing.assert_allclose(m, [0.2])
    np.testing.assert_allclose(v, [0.004])
    np.testing.assert_allclose(p, [-0.1 / 0.1 * 0.2 / (math.sqrt(0.004) / math.sqrt(0.001))])
