"""Weight penalties, the max-norm constraint and gradient clipping in the compiled step.

From the definitions (biases are never penalized or constrained):
    penalty   = l1 sum|W| + l2/2 sum W^2,   gradient l1 sign(W) + l2 W
    clipnorm  : g *= c / |g| when |g| > c, |g| the norm of the whole loss gradient
    clipvalue : g = clip(g, -v, v)              (after clipnorm)
    the update then uses g + the penalty gradient (PyTorch's order: clip_grad_norm_,
    then an optimizer whose weight decay adds l2 W)
    max-norm  : after the update, W[:, j] *= c / |W[:, j]| when |W[:, j]| > c
"""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import BACKENDS, assert_close
from test_optimizers import hand_adam, hand_nadam, hand_rmsprop, hand_sgd


def _model(backend, dtype, optimizer, regularizer=None, n_in=5, hidden=13, k=3, seed=7):
    model = fm.Sequential([fm.Dense(hidden, activation="tanh"), fm.Dense(k)], input_dim=n_in,
                          dtype=dtype, seed=seed, backend=backend)
    return model.compile(loss="softmax_cross_entropy", optimizer=optimizer,
                         regularizer=regularizer)


def _data(rng, n, n_in=5, k=3):
    return rng.standard_normal((n, n_in)), rng.integers(0, k, size=n)


def hand_penalty(weights, l1, l2):
    return sum(l1 * np.abs(W).sum() + 0.5 * l2 * (W.astype(np.float64) ** 2).sum()
               for W in weights[::2])


def hand_max_norm(W, c):
    norms = np.linalg.norm(W, axis=0)
    return W * np.where(norms > c, c / np.maximum(norms, 1e-300), 1.0)


# ---- the loss and its gradient ---------------------------------------------------

@pytest.mark.parametrize("l1, l2", [(0.0, 0.3), (0.05, 0.0), (0.05, 0.3)],
                         ids=["l2", "l1", "elastic-net"])
def test_loss_and_gradients_include_the_penalty(backend, l1, l2, rng):
    """Central finite differences in float64 of the reported loss."""
    model = _model(backend, "float64", fm.SGD(0.1), fm.regularizers.l1_l2(l1=l1, l2=l2))
    X, y = _data(rng, 30)
    weights = [w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    loss, grads = model.loss_and_gradients(X, y)
    plain = _model(backend, "float64", fm.SGD(0.1))
    plain.set_weights(weights)
    data_loss, data_grads = plain.loss_and_gradients(X, y)
    np.testing.assert_allclose(loss, data_loss + hand_penalty(weights, l1, l2), rtol=1e-13)
    np.testing.assert_array_equal(grads[1], data_grads[1])  # biases: no penalty
    h = 1e-6
    for i, W in enumerate(weights):
        numeric = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            if i % 2 == 0 and l1 and abs(W[idx]) < 1e-4:  # |W| has a kink at 0
                continue
            for sign in (1, -1):
                shifted = [w.copy() for w in weights]
                shifted[i][idx] += sign * h
                model.set_weights(shifted)
                numeric[idx] += sign * model.loss_and_gradients(X, y)[0] / (2 * h)
        np.testing.assert_allclose(grads[i], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=f"parameter {i}")


def test_reported_losses_include_the_penalty(backend, dtype, rng):
    reg = fm.regularizers.l1_l2(l1=0.01, l2=0.1)
    model = _model(backend, dtype, fm.SGD(0.1), reg)
    plain = _model(backend, dtype, fm.SGD(0.1))
    X, y = _data(rng, 40)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    weights = model.get_weights()
    penalty = hand_penalty(weights, 0.01, 0.1)
    assert model._plan.penalty() == pytest.approx(penalty, rel=1e-6)
    assert model._plan.penalty() == pytest.approx(reg.penalty(weights[::2]), rel=1e-6)
    data = plain.evaluate(X, y)["loss"]
    np.testing.assert_allclose(model.evaluate(X, y)["loss"], data + penalty, rtol=rtol)
    # train_step: the loss before the step, penalty of the weights before the step
    np.testing.assert_allclose(model.train_step(X, y), data + penalty, rtol=rtol)
    # fit's loss: of the weights before the (single) batch's step; val_loss: after it
    weights = model.get_weights()
    plain.set_weights(weights)
    expected = plain.evaluate(X, y)["loss"] + hand_penalty(weights, 0.01, 0.1)
    history = model.fit(X, y, epochs=1, batch_size=40, shuffle=False, verbose=0,
                        validation_data=(X, y))
    np.testing.assert_allclose(history.history["loss"], [expected], rtol=rtol)
    np.testing.assert_allclose(history.history["val_loss"], [model.evaluate(X, y)["loss"]],
                               rtol=rtol)
    assert plain._plan.penalty() == 0.0


def test_forward_backward_then_apply_update_returns_the_penalty(backend, dtype, rng):
    """The split step (the data-parallel seam): forward_backward gives the data
    loss and gradient; apply_update adds the penalty gradient once and returns
    the penalty, so their sum is train_step's loss."""
    reg = fm.regularizers.l1_l2(l1=0.02, l2=0.2)
    fused = _model(backend, dtype, fm.Adam(0.01), reg)
    split = _model(backend, dtype, fm.Adam(0.01), reg)
    X, y = _data(rng, 64)
    X = np.ascontiguousarray(X, dtype=dtype)
    for _ in range(3):
        loss_fused = fused.train_step(X, y)
        loss_split = split._plan.forward_backward(X, y) + split._plan.apply_update()
        np.testing.assert_allclose(loss_split, loss_fused, rtol=1e-5)
    for a, b in zip(fused.get_weights(), split.get_weights()):
        assert_close(a, b, dtype)


# ---- the compiled update with clipping, penalty and max-norm ------------------------

def _hand_step(opt, params, states, grads, t, clipnorm, clipvalue, l1, l2, max_norm):
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    scale = clipnorm / norm if clipnorm and norm > clipnorm else 1.0
    for i, g in enumerate(grads):
        g = g * scale
        if clipvalue:
            g = np.clip(g, -clipvalue, clipvalue)
        weight = i % 2 == 0
        if weight:
            g = g + l2 * params[i] + l1 * np.sign(params[i])
        st = states[i]
        if opt == "sgd":
            params[i], st[0] = hand_sgd(params[i], st[0], g, 0.05, 0.9, True)
        elif opt == "adam":
            params[i], st[0], st[1] = hand_adam(params[i], st[0], st[1], g, 0.01, 0.8, 0.99,
                                                1e-6, t)
        elif opt == "rmsprop":
            params[i], *st[:] = hand_rmsprop(params[i], *st, g, 0.01, 0.8, 1e-6, 0.5, True)
        else:
            params[i], st[0], st[1] = hand_nadam(params[i], st[0], st[1], g, 0.01, 0.8, 0.99,
                                                 1e-6, 0.1, t)
        if weight and max_norm:
            params[i] = hand_max_norm(params[i], max_norm)


OPTIMIZERS = {
    "sgd": lambda **kw: fm.SGD(lr=0.05, momentum=0.9, nesterov=True, **kw),
    "adam": lambda **kw: fm.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, **kw),
    "rmsprop": lambda **kw: fm.RMSprop(lr=0.01, rho=0.8, eps=1e-6, momentum=0.5, centered=True,
                                       **kw),
    "nadam": lambda **kw: fm.Nadam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, momentum_decay=0.1,
                                   **kw),
}
MODS = {
    "l2": dict(l2=0.5),
    "l1": dict(l1=0.01),
    "clipnorm": dict(clipnorm=0.05),
    "clipvalue": dict(clipvalue=0.002),
    "max-norm": dict(max_norm=0.4),
    "all": dict(l1=0.01, l2=0.5, clipnorm=0.05, clipvalue=0.004, max_norm=0.6),
}


@pytest.mark.parametrize("mods", list(MODS))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_step_clips_penalizes_and_constrains(backend, opt, mods, dtype, threads, rng):
    """train_step == loss_and_gradients of the unregularized model + the hand-written
    clipping, penalty, update and max-norm.  With all of them, 64-256-10 on 256
    rows: the step uses two threads, whose shares of the flat buffer cut weight
    matrices; each one alone on a small model."""
    kw = MODS[mods]
    opt_kw = {k: kw[k] for k in ("clipnorm", "clipvalue") if k in kw}
    reg = fm.regularizers.Regularizer(l1=kw.get("l1", 0.0), l2=kw.get("l2", 0.0),
                                      max_norm=kw.get("max_norm"))
    n_in, hidden, k, rows = (64, 256, 10, 256) if mods == "all" else (5, 13, 3, 60)
    stepped = _model(backend, dtype, OPTIMIZERS[opt](**opt_kw), reg, n_in=n_in, hidden=hidden,
                     k=k)
    reference = _model(backend, dtype, fm.SGD(0.1), n_in=n_in, hidden=hidden, k=k)
    X, y = _data(rng, rows, n_in=n_in, k=k)
    params = [w.astype(np.float64) for w in stepped.get_weights()]
    states = [[np.zeros_like(w) for _ in range(3)] for w in params]
    for t in range(1, 4):
        reference.set_weights(params)
        loss_ref, grads = reference.loss_and_gradients(X, y)
        penalty = hand_penalty(params, kw.get("l1", 0.0), kw.get("l2", 0.0))
        loss = stepped.train_step(X, y)
        np.testing.assert_allclose(loss, loss_ref + penalty,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)
        _hand_step(opt, params, states, [g.astype(np.float64) for g in grads], t,
                   kw.get("clipnorm"), kw.get("clipvalue"), kw.get("l1", 0.0), kw.get("l2", 0.0),
                   kw.get("max_norm"))
        for got, want in zip(stepped.get_weights(), params):
            assert_close(got, want, dtype, rtol=3e-4 if dtype == np.float32 else None,
                         err_msg=f"after step {t}")
    if "max_norm" in kw:
        for W in stepped.get_weights()[::2]:
            assert (np.linalg.norm(W.astype(np.float64), axis=0) <= kw["max_norm"] * 1.0001).all()


def test_clipnorm_only_scales_a_long_gradient(backend, rng):
    """With clipnorm larger than the gradient's norm nothing changes."""
    X, y = _data(rng, 50)
    plain = _model(backend, "float64", fm.SGD(0.1))
    clipped = _model(backend, "float64", fm.SGD(0.1, clipnorm=1e6))
    plain.train_step(X, y)
    clipped.train_step(X, y)
    for a, b in zip(plain.get_weights(), clipped.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_max_norm_leaves_biases_alone(backend):
    model = _model(backend, "float64", fm.SGD(0.1), fm.regularizers.max_norm(1e-3))
    big = [w * 0 + 5.0 for w in model.get_weights()]
    model.set_weights(big)
    model._plan.apply_update()  # zero gradient: only the constraint acts
    W1, b1, W2, b2 = model.get_weights()
    np.testing.assert_allclose(np.linalg.norm(W1, axis=0), 1e-3)
    np.testing.assert_allclose(np.linalg.norm(W2, axis=0), 1e-3)
    np.testing.assert_array_equal(b1, 5.0)
    np.testing.assert_array_equal(b2, 5.0)


def test_backends_agree_when_regularized(dtype, rng):
    X, y = _data(rng, 200)
    results = []
    for backend in BACKENDS:
        model = _model(backend, dtype, fm.AdamW(lr=0.01, weight_decay=0.1, clipnorm=1.0),
                       [fm.regularizers.l1(1e-3), fm.regularizers.l2(1e-2),
                        fm.regularizers.max_norm(2.0)])
        history = model.fit(X, y, epochs=3, batch_size=32, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, dtype, rtol=1e-3 if dtype == np.float32 else None)


# ---- the API -------------------------------------------------------------------------

def test_factories_and_combination():
    assert (fm.regularizers.l1(0.1).l1, fm.regularizers.l1(0.1).l2) == (0.1, 0.0)
    assert fm.regularizers.l2(0.2).l2 == 0.2
    r = fm.regularizers.l1_l2(l1=0.1, l2=0.2)
    assert (r.l1, r.l2, r.max_norm) == (0.1, 0.2, None)
    assert fm.regularizers.max_norm(3.0).max_norm == 3.0
    combined = fm.regularizers.get([fm.regularizers.l1(0.1), fm.regularizers.l2(0.2),
                                    fm.regularizers.l2(0.05), fm.regularizers.max_norm(2.0)])
    assert (combined.l1, combined.l2, combined.max_norm) == (0.1, 0.25, 2.0)
    assert fm.regularizers.get(None) is None
    assert "l2=0.25" in repr(combined)
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    np.testing.assert_allclose(fm.regularizers.l1_l2(0.5, 2.0).gradient(W),
                               [[2.5, -4.5], [0.0, 6.5]])
    assert fm.regularizers.l1_l2(0.5, 2.0).penalty([W]) == pytest.approx(0.5 * 6 + 14.0)


@pytest.mark.parametrize("make", [
    lambda: fm.regularizers.l1(-0.1), lambda: fm.regularizers.l2(float("nan")),
    lambda: fm.regularizers.l2(float("inf")), lambda: fm.regularizers.l1_l2(l1="a"),
    lambda: fm.regularizers.max_norm(0.0), lambda: fm.regularizers.max_norm(-1.0),
    lambda: fm.regularizers.get("l2"), lambda: fm.regularizers.get([fm.regularizers.l2(), 3]),
    lambda: fm.regularizers.max_norm(1.0) + fm.regularizers.max_norm(2.0),
])
def test_bad_regularizers_raise(make):
    with pytest.raises(ValueError):
        make()


def test_compile_rejects_a_bad_regularizer(backend):
    model = fm.Sequential([fm.Dense(3)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match="regularizer"):
        model.compile(regularizer="l2")


@pytest.mark.parametrize("args", [(-1.0, 0.0, 0.0), (0.0, float("nan"), 0.0),
                                  (0.0, 0.0, float("inf"))])
def test_plan_setters_validate(backend, args):
    model = _model(backend, "float64", fm.SGD(0.1))
    with pytest.raises(ValueError):
        model._plan.set_regularization(*args)
    with pytest.raises(ValueError):
        model._plan.set_clipping(args[0] or args[1] or args[2], 0.0)
