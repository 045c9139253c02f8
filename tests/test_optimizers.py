"""Optimizer updates vs hand-written NumPy written from the formulas.

SGD (PyTorch's convention, no dampening):
    momentum 0:  p -= lr g
    momentum mu: v = mu v + g;  p -= lr v;   Nesterov: p -= lr (g + mu v)
Adam (Kingma & Ba 2015, bias-corrected, eps outside the square root):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
AdamW (Loshchilov & Hutter 2019, Alg. 2 with PyTorch's lr-scaled decay):
    p *= 1 - lr wd, then the Adam step
Adagrad (Duchi et al. 2011):  s += g^2;  p -= lr g / (sqrt(s) + eps)
RMSprop (Tieleman & Hinton 2012; centered: Graves 2013):
    s = rho s + (1 - rho) g^2;  [a = rho a + (1 - rho) g;  s_c = s - a^2]
    d = sqrt(s or s_c) + eps;   p -= lr g / d,  or with momentum b = mu b + g / d;  p -= lr b
NAdam (Dozat 2016, with PyTorch's schedule mu_t = b1 (1 - 0.96^(t psi) / 2)):
    m_hat = mu_{t+1} m / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) g / (1 - prod_{i<=t} mu_i)
    p -= lr m_hat / (sqrt(v / (1 - b2^t)) + eps)
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


def hand_adamw(p, m, v, g, lr, b1, b2, eps, wd, t):
    return hand_adam(p * (1 - lr * wd), m, v, g, lr, b1, b2, eps, t)


def hand_adagrad(p, s, g, lr, eps):
    s = s + g * g
    return p - lr * g / (np.sqrt(s) + eps), s


def hand_rmsprop(p, s, b, a, g, lr, rho, eps, mu, centered):
    s = rho * s + (1 - rho) * g * g
    if centered:
        a = rho * a + (1 - rho) * g
        d = np.sqrt(s - a * a) + eps
    else:
        d = np.sqrt(s) + eps
    if mu:
        b = mu * b + g / d
        return p - lr * b, s, b, a
    return p - lr * g / d, s, b, a


def hand_nadam(p, m, v, g, lr, b1, b2, eps, psi, t):
    mu = [b1 * (1 - 0.5 * 0.96 ** (i * psi)) for i in range(1, t + 2)]  # mu_1 .. mu_{t+1}
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = (mu[t] * m / (1 - math.prod(mu[:t + 1]))
             + (1 - mu[t - 1]) * g / (1 - math.prod(mu[:t])))
    return p - lr * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


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


# The newer optimizers, one way to step each: (kernel call, hand-written step).
# A kernel stepper takes (kernels, p, g, states, t, extra) with `extra` a dict
# for scalar state (NAdam's mu_product); a hand stepper (p, states, g, t) on
# float64 and returns (p, states).

def _adagrad(lr, eps):
    return (1, lambda k, p, g, st, t, x: k.adagrad_update(p, g, st[0], lr, eps),
            lambda p, st, g, t: (lambda r: (r[0], [r[1]]))(hand_adagrad(p, st[0], g, lr, eps)))


def _rmsprop(lr, rho, eps, mu, centered):
    def kernel(k, p, g, st, t, x):
        k.rmsprop_update(p, g, st[0], lr, rho, eps, mu, st[1] if mu else None,
                         st[2] if centered else None)

    def hand(p, st, g, t):
        p, *st = hand_rmsprop(p, *st, g, lr, rho, eps, mu, centered)
        return p, st
    return 3, kernel, hand


def _adamw(lr, b1, b2, eps, wd):
    def hand(p, st, g, t):
        p, m, v = hand_adamw(p, st[0], st[1], g, lr, b1, b2, eps, wd, t)
        return p, [m, v]
    return 2, lambda k, p, g, st, t, x: k.adamw_update(p, g, *st, lr, b1, b2, eps, wd, t), hand


def _nadam(lr, b1, b2, eps, psi):
    def kernel(k, p, g, st, t, x):
        x["mu"] = k.nadam_update(p, g, *st, lr, b1, b2, eps, psi, t, x.get("mu", 1.0))

    def hand(p, st, g, t):
        p, m, v = hand_nadam(p, st[0], st[1], g, lr, b1, b2, eps, psi, t)
        return p, [m, v]
    return 2, kernel, hand


NEW_CASES = {
    "adagrad": _adagrad(0.1, 1e-10),
    "adagrad-large-eps": _adagrad(0.5, 1e-3),
    "rmsprop": _rmsprop(0.01, 0.9, 1e-8, 0.0, False),
    "rmsprop-momentum": _rmsprop(0.01, 0.99, 1e-6, 0.9, False),
    "rmsprop-centered": _rmsprop(0.01, 0.9, 1e-8, 0.0, True),
    "rmsprop-centered-momentum": _rmsprop(0.005, 0.8, 1e-8, 0.5, True),
    "adamw": _adamw(0.01, 0.9, 0.999, 1e-8, 0.1),
    "adamw-strong-decay": _adamw(0.05, 0.5, 0.9, 1e-3, 1.0),
    "nadam": _nadam(2e-3, 0.9, 0.999, 1e-8, 4e-3),
    "nadam-fast-schedule": _nadam(0.05, 0.8, 0.99, 1e-6, 0.5),
    "nadam-constant-mu": _nadam(0.01, 0.9, 0.999, 1e-8, 0.0),
}


@SIZES
@pytest.mark.parametrize("case", list(NEW_CASES))
def test_new_optimizers_native_twin_and_formula(native, twin, case, n, dtype, threads, rng):
    n_state, kernel, hand = NEW_CASES[case]
    p0 = rng.standard_normal(n).astype(dtype)
    grads = _grads(rng, n, dtype)
    runs = {}
    for name, k in (("native", native), ("twin", twin)):
        runs[name] = (p0.copy(), [np.zeros(n, dtype) for _ in range(n_state)], {})
    p_hand, st_hand = p0.astype(np.float64), [np.zeros(n) for _ in range(n_state)]
    for t, g in enumerate(grads, 1):
        for name, k in (("native", native), ("twin", twin)):
            p, st, extra = runs[name]
            kernel(k, p, g, st, t, extra)
        p_hand, st_hand = hand(p_hand, st_hand, g.astype(np.float64), t)
        msg = f"after step {t}"
        for name, (p, st, _) in runs.items():
            assert_close(p, p_hand, dtype, err_msg=f"{name} {msg}")
            assert p.dtype == dtype
            for i, (got, want) in enumerate(zip(st, st_hand)):
                if np.any(want):  # unused buffers stay zero in the hand version
                    assert_close(got, want, dtype, err_msg=f"{name} state {i} {msg}")
        assert_close(runs["native"][0], runs["twin"][0], dtype, err_msg=msg)
    if "mu" in runs["native"][2]:
        assert runs["native"][2]["mu"] == pytest.approx(runs["twin"][2]["mu"], rel=1e-14)


LARGE_CASES = {"nesterov": (1, lambda k, p, g, st, t, x: k.sgd_update(p, g, st[0], 0.05, 0.9, True),
                            lambda p, st, g, t: (lambda r: (r[0], [r[1]]))(
                                hand_sgd(p, st[0], g, 0.05, 0.9, True))),
               "adam": (2, lambda k, p, g, st, t, x: k.adam_update(p, g, *st, 0.01, 0.9, 0.999,
                                                                     1e-8, t),
                        lambda p, st, g, t: (lambda r: (r[0], list(r[1:])))(
                            hand_adam(p, st[0], st[1], g, 0.01, 0.9, 0.999, 1e-8, t))),
               **{name: NEW_CASES[name] for name in ("adagrad", "rmsprop-centered-momentum",
                                                     "adamw", "nadam")}}


@pytest.mark.parametrize("opt", list(LARGE_CASES))
def test_large_update_on_two_threads(native, opt, dtype, rng):
    n_state, kernel, hand = LARGE_CASES[opt]
    p0 = rng.standard_normal(LARGE).astype(dtype)
    grads = _grads(rng, LARGE, dtype, steps=2)
    results = []
    for n_threads in (1, 2):
        p, st, extra = p0.copy(), [np.zeros(LARGE, dtype) for _ in range(n_state)], {}
        with fm.threads(n_threads):
            for t, g in enumerate(grads, 1):
                kernel(native, p, g, st, t, extra)
        results.append(p)
    # elementwise: the thread split cannot change a single bit
    np.testing.assert_array_equal(results[1], results[0])
    p_hand, st = p0.astype(np.float64), [np.zeros(LARGE) for _ in range(n_state)]
    for t, g in enumerate(grads, 1):
        p_hand, st = hand(p_hand, st, g.astype(np.float64), t)
    assert_close(results[1], p_hand, dtype)


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (50, 600), (2000, 300)])
def test_max_norm_constraint(native, twin, shape, dtype, threads, rng):
    W0 = rng.standard_normal(shape).astype(dtype)
    W0[:, 0] *= 1e-3  # one short column, left alone
    c = 0.9 * np.sqrt(shape[0])  # about half the columns are longer than c
    norms = np.linalg.norm(W0.astype(np.float64), axis=0)
    expected = W0 * np.where(norms > c, c / norms, 1.0)
    for k in (native, twin):
        W = W0.copy()
        k.max_norm_constraint(W, c)
        assert_close(W, expected, dtype)
        assert (np.linalg.norm(W.astype(np.float64), axis=0) <= c * (1 + 1e-6)).all()
        np.testing.assert_array_equal(W[:, norms <= c], W0[:, norms <= c])
    for k in (native, twin):
        with pytest.raises(ValueError, match="max_norm"):
            k.max_norm_constraint(W0.copy(), 0.0)


def test_nadam_returns_the_momentum_product(backend):
    k = kernels(backend)
    p, g = np.zeros(3), np.ones(3)
    product = 1.0
    for t in range(1, 5):
        product = k.nadam_update(p, g, np.zeros(3), np.zeros(3), 0.1, 0.9, 0.999, 1e-8, 0.004,
                                 t, product)
    expected = math.prod(0.9 * (1 - 0.5 * 0.96 ** (i * 0.004)) for i in range(1, 5))
    assert product == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("kernel", ["adagrad", "rmsprop", "adamw", "nadam"])
def test_new_update_length_mismatch_raises(backend, kernel):
    k = kernels(backend)
    p, bad = np.zeros(8), np.zeros(7)
    calls = {"adagrad": lambda: k.adagrad_update(p, np.zeros(8), bad, 0.1, 1e-10),
             "rmsprop": lambda: k.rmsprop_update(p, np.zeros(8), np.zeros(8), 0.1, 0.9, 1e-8,
                                                 0.9, bad),
             "adamw": lambda: k.adamw_update(p, bad, np.zeros(8), np.zeros(8), 0.1, 0.9, 0.999,
                                             1e-8, 0.01, 1),
             "nadam": lambda: k.nadam_update(p, np.zeros(8), np.zeros(8), bad, 0.1, 0.9, 0.999,
                                             1e-8, 0.004, 1, 1.0)}
    with pytest.raises(ValueError):
        calls[kernel]()


def test_rmsprop_momentum_needs_its_buffer(backend):
    k = kernels(backend)
    with pytest.raises(ValueError, match="momentum_buffer"):
        k.rmsprop_update(np.zeros(4), np.ones(4), np.zeros(4), 0.1, 0.9, 1e-8, 0.9)


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


PLAN_CASES = {
    "gd": (lambda: fm.GD(lr=0.3), 0, lambda p, st, g, t, w: (p - 0.3 * g, st)),
    "adagrad": (lambda: fm.Adagrad(lr=0.1, eps=1e-6, initial_accumulator_value=0.5), 1,
                lambda p, st, g, t, w: (lambda r: (r[0], [r[1]]))(
                    hand_adagrad(p, st[0], g, 0.1, 1e-6))),
    "rmsprop": (lambda: fm.RMSprop(lr=0.01, rho=0.8, eps=1e-6), 3,
                lambda p, st, g, t, w: (lambda r: (r[0], list(r[1:])))(
                    hand_rmsprop(p, *st, g, 0.01, 0.8, 1e-6, 0.0, False))),
    "rmsprop-centered-momentum": (
        lambda: fm.RMSprop(lr=0.01, rho=0.8, eps=1e-6, momentum=0.7, centered=True), 3,
        lambda p, st, g, t, w: (lambda r: (r[0], list(r[1:])))(
            hand_rmsprop(p, *st, g, 0.01, 0.8, 1e-6, 0.7, True))),
    "adamw": (lambda: fm.AdamW(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=2.0), 2,
              # the decoupled decay is on weight matrices only
              lambda p, st, g, t, w: (lambda r: (r[0], list(r[1:])))(
                  hand_adamw(p, st[0], st[1], g, 0.01, 0.8, 0.99, 1e-6, 2.0 if w else 0.0, t))),
    "nadam": (lambda: fm.Nadam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, momentum_decay=0.1), 2,
              lambda p, st, g, t, w: (lambda r: (r[0], list(r[1:])))(
                  hand_nadam(p, st[0], st[1], g, 0.01, 0.8, 0.99, 1e-6, 0.1, t))),
}


@pytest.mark.parametrize("opt", list(PLAN_CASES))
def test_train_step_applies_the_new_formulas(backend, opt, dtype, threads, rng):
    """The compiled step's fused update == loss_and_gradients + the hand-written update."""
    factory, n_state, hand = PLAN_CASES[opt]
    stepped, reference = _pair(backend, dtype, factory)
    X = rng.standard_normal((150, 5))
    y = rng.integers(0, 3, size=150)
    params = [w.astype(np.float64) for w in reference.get_weights()]
    initial = 0.5 if opt == "adagrad" else 0.0
    states = [[np.full_like(w, initial) for _ in range(max(n_state, 1))] for w in params]
    for t in range(1, 4):
        reference.set_weights(params)
        loss_ref, grads = reference.loss_and_gradients(X, y)
        loss = stepped.train_step(X, y)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
        for i, g in enumerate(grads):
            params[i], states[i] = hand(params[i], states[i], g.astype(np.float64), t,
                                        i % 2 == 0)
        for got, want in zip(stepped.get_weights(), params):
            assert_close(got, want, dtype, err_msg=f"after step {t}")


def test_gd_fit_uses_the_whole_set_as_one_batch(backend, rng):
    model, reference = _pair(backend, "float64", lambda: fm.GD(lr=0.5))
    X = rng.standard_normal((90, 5))
    y = rng.integers(0, 3, size=90)
    weights = reference.get_weights()
    for _ in range(3):
        _, grads = reference.loss_and_gradients(X, y)
        weights = [w - 0.5 * g for w, g in zip(weights, grads)]
        reference.set_weights(weights)
    history = model.fit(X, y, epochs=3, batch_size=7, shuffle=True, verbose=0)
    assert model._plan.step == 3  # one step per epoch, whatever batch_size says
    assert len(history.history["loss"]) == 3
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_adagrad_starts_from_its_initial_accumulator(backend):
    model = fm.Sequential([fm.Dense(4)], input_dim=3, backend=backend)
    model.compile(optimizer=fm.Adagrad(initial_accumulator_value=0.25))
    assert len(model._opt_state) == 1
    np.testing.assert_array_equal(model._opt_state[0], 0.25)


@pytest.mark.parametrize("kwargs, n_state", [({}, 1), ({"momentum": 0.5}, 2),
                                              ({"centered": True}, 2),
                                              ({"momentum": 0.5, "centered": True}, 3)])
def test_rmsprop_keeps_only_the_state_it_needs(kwargs, n_state):
    assert fm.RMSprop(**kwargs).n_state == n_state


def test_nadam_resumes_from_a_set_step(backend, dtype, rng):
    """Setting plan.step recomputes NAdam's momentum product, so a model resumed
    from saved weights, state and step continues exactly."""
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, size=40)
    first, resumed = _pair(backend, dtype, lambda: fm.Nadam(lr=0.01, momentum_decay=0.3))
    for _ in range(3):
        first.train_step(X, y)
    resumed.set_weights(first.get_weights())
    for mine, theirs in zip(resumed._opt_state, first._opt_state):
        mine[...] = theirs
    resumed._plan.step = 3
    first.train_step(X, y)
    resumed.train_step(X, y)
    for a, b in zip(first.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


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


@pytest.mark.parametrize("cls, kwargs", [
    (fm.GD, {"lr": 0}), (fm.GD, {"lr": -1.0}), (fm.GD, {"momentum": 1.0}),
    (fm.AdamW, {"weight_decay": -0.1}), (fm.AdamW, {"weight_decay": float("nan")}),
    (fm.AdamW, {"weight_decay": float("inf")}), (fm.AdamW, {"lr": 0.5, "weight_decay": 2.0}),
    (fm.AdamW, {"beta1": 1.0}), (fm.AdamW, {"eps": 0}),
    (fm.Adagrad, {"lr": 0}), (fm.Adagrad, {"eps": 0}), (fm.Adagrad, {"eps": -1e-10}),
    (fm.Adagrad, {"initial_accumulator_value": -0.1}),
    (fm.Adagrad, {"initial_accumulator_value": float("nan")}),
    (fm.RMSprop, {"lr": float("nan")}), (fm.RMSprop, {"rho": 1.0}), (fm.RMSprop, {"rho": -0.1}),
    (fm.RMSprop, {"eps": 0}), (fm.RMSprop, {"momentum": 1.0}), (fm.RMSprop, {"momentum": -0.5}),
    (fm.Nadam, {"lr": -1}), (fm.Nadam, {"beta1": 1.0}), (fm.Nadam, {"beta2": 1.5}),
    (fm.Nadam, {"eps": 0}), (fm.Nadam, {"momentum_decay": -1e-3}),
    (fm.Nadam, {"momentum_decay": float("inf")}),
    (fm.SGD, {"clipnorm": 0}), (fm.Adam, {"clipnorm": -1.0}), (fm.RMSprop, {"clipvalue": 0}),
    (fm.Nadam, {"clipvalue": float("nan")}), (fm.Adagrad, {"clipnorm": float("inf")}),
    (fm.SGD, {"lr": "fast"}),
])
def test_new_optimizers_reject_bad_hyperparameters(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_valid_new_hyperparameters_are_kept():
    opt = fm.AdamW(lr=0.01, weight_decay=0.5, clipnorm=1.0, clipvalue=0.1)
    assert (opt.weight_decay, opt.clipnorm, opt.clipvalue) == (0.5, 1.0, 0.1)
    opt = fm.RMSprop(lr=0.02, rho=0.5, eps=1e-3, momentum=0.3, centered=True)
    assert (opt.lr, opt.rho, opt.eps, opt.momentum, opt.centered) == (0.02, 0.5, 1e-3, 0.3, True)
    opt = fm.Nadam(momentum_decay=0.0)
    assert opt.momentum_decay == 0.0 and opt.n_state == 2
    assert fm.GD(0.1).full_batch and not fm.SGD(0.1).full_batch
    for name, cls in [("gd", fm.GD), ("adamw", fm.AdamW), ("adagrad", fm.Adagrad),
                      ("RMSprop", fm.RMSprop), ("nadam", fm.Nadam)]:
        assert type(fm.optimizers.get(name)) is cls
    assert "weight_decay=0.5" in repr(fm.AdamW(lr=0.01, weight_decay=0.5))
    assert "cosine" in repr(fm.SGD(lr=fm.schedules.cosine(0.1, 10)))


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


NEW_TORCH_CASES = ["adagrad", "rmsprop", "rmsprop-momentum", "rmsprop-centered",
                   "rmsprop-centered-momentum", "adamw", "nadam", "nadam-fast-schedule"]


def _torch_optimizer(torch, case, params):
    return {
        "adagrad": lambda: torch.optim.Adagrad(params, lr=0.1, eps=1e-10),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-8),
        "rmsprop-momentum": lambda: torch.optim.RMSprop(params, lr=0.01, alpha=0.99, eps=1e-6,
                                                        momentum=0.9),
        "rmsprop-centered": lambda: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-8,
                                                        centered=True),
        "rmsprop-centered-momentum": lambda: torch.optim.RMSprop(
            params, lr=0.005, alpha=0.8, eps=1e-8, momentum=0.5, centered=True),
        "adamw": lambda: torch.optim.AdamW(params, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                           weight_decay=0.1),
        "nadam": lambda: torch.optim.NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
                                           momentum_decay=4e-3),
        "nadam-fast-schedule": lambda: torch.optim.NAdam(params, lr=0.05, betas=(0.8, 0.99),
                                                         eps=1e-6, momentum_decay=0.5),
    }[case]()


@pytest.mark.parametrize("case", NEW_TORCH_CASES)
def test_new_optimizers_match_torch_optim(backend, case, rng):
    torch = pytest.importorskip("torch")
    k = kernels(backend)
    n_state, kernel, _ = NEW_CASES[case]
    n = 57
    p0 = rng.standard_normal(n)
    grads = _grads(rng, n, np.float64)
    tp = torch.nn.Parameter(torch.tensor(p0.copy(), dtype=torch.float64))
    # torch keeps scalar optimizer state (NAdam's mu_product) in the default dtype
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch_opt = _torch_optimizer(torch, case, [tp])
        p, st, extra = p0.copy(), [np.zeros(n) for _ in range(n_state)], {}
        for t, g in enumerate(grads, 1):
            tp.grad = torch.tensor(g.copy(), dtype=torch.float64)
            torch_opt.step()
            kernel(k, p, g, st, t, extra)
            np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(default_dtype)


def test_new_formulas_reference_is_sane():
    # hand-written references on numbers worked out by hand
    p, s = hand_adagrad(np.array([1.0]), np.array([0.0]), np.array([2.0]), 0.1, 0.0)
    np.testing.assert_allclose((p, s), ([0.9], [4.0]))
    p, s, b, a = hand_rmsprop(np.array([1.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]),
                              np.array([2.0]), 0.1, 0.75, 0.0, 0.0, False)
    np.testing.assert_allclose((p, s), ([1.0 - 0.1 * 2.0 / 1.0], [1.0]))  # s = 0.25 * 4
    p, s, b, a = hand_rmsprop(np.array([1.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]),
                              np.array([2.0]), 0.1, 0.75, 0.0, 0.5, True)
    # a = 0.5, s - a^2 = 0.75, b = 2 / sqrt(0.75)
    np.testing.assert_allclose((a, b, p), ([0.5], [2 / math.sqrt(0.75)],
                                           [1 - 0.1 * 2 / math.sqrt(0.75)]))
    p, m, v = hand_adamw(np.array([2.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]),
                         0.1, 0.9, 0.999, 1e-8, 0.5, 1)
    np.testing.assert_allclose(p, [2.0 * 0.95])  # zero gradient: only the decay
    # NAdam with psi = 0: mu = b1 / 2 every step
    p, m, v = hand_nadam(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]),
                         0.1, 0.5, 0.5, 0.0, 0.0, 1)
    mu = 0.25
    np.testing.assert_allclose(m, [0.5])
    m_hat = mu * 0.5 / (1 - mu * mu) + (1 - mu) * 1.0 / (1 - mu)
    np.testing.assert_allclose(p, [-0.1 * m_hat / (math.sqrt(0.5 / 0.5))])


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
