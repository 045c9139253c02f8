"""Numerics at the extremes: huge logits, saturated sigmoids, activations far
out, optimizers fed zero gradients, learning rates that make training diverge.
Nothing may come back NaN or inf without an error saying so."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import ACTIVATIONS, BACKENDS, textbook_derivative, textbook_forward

from .conftest import tiny_model

LOSSES = kernels("numpy").LOSSES
SCE = LOSSES.index("softmax_cross_entropy")
BCE = LOSSES.index("binary_cross_entropy")


@pytest.fixture(params=BACKENDS)
def k(request):
    return kernels(request.param)


# ---- softmax cross-entropy on huge logits --------------------------------------------------

@pytest.mark.parametrize("big", [1e4, 1e38])
def test_softmax_cross_entropy_on_huge_float32_logits(k, big):
    Z = np.array([[big, -big, 0.0], [big, -big, 0.0], [-big, -big, big], [big, big, -big]],
                 np.float32)
    y = np.array([0, 1, 2, 0], np.int64)
    grad = np.full_like(Z, np.nan)
    loss = k.softmax_cross_entropy(Z, y, grad)
    # per row: 0, 2 big (logsumexp = big, z_y = -big), 0, log 2
    expected = (0.0 + 2 * float(np.float32(big)) + 0.0 + np.log(2.0)) / 4
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-6)
    # softmax - onehot, / n
    want = np.array([[0, 0, 0], [1, -1, 0], [0, 0, 0], [-0.5, 0.5, 0]], np.float32) / 4
    np.testing.assert_allclose(grad, want, atol=1e-7)
    out = np.full_like(Z, np.nan)
    k.softmax(Z, out)
    np.testing.assert_allclose(out, [[1, 0, 0], [1, 0, 0], [0, 0, 1], [0.5, 0.5, 0]],
                               atol=1e-7)


@pytest.mark.parametrize("big", [1e4, 1e38])
def test_soft_targets_on_huge_float32_logits(k, big):
    Z = np.array([[big, -big, 0.0]], np.float32)
    T = np.array([[0.5, 0.0, 0.5]], np.float32)
    grad = np.full_like(Z, np.nan)
    loss = k.softmax_cross_entropy(Z, T, grad)
    assert loss == pytest.approx(0.5 * float(np.float32(big)), rel=1e-6)   # 0.5 (big - 0)
    np.testing.assert_allclose(grad, [[0.5, 0, -0.5]], atol=1e-7)


# ---- sigmoid / binary cross-entropy at +-100 and +-1e4 -----------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("big", [100.0, 1e4])
def test_binary_cross_entropy_saturated(k, dtype, big):
    Z = np.array([[big, -big, big, -big]], dtype)
    Y = np.array([[1, 0, 0, 1]], dtype)
    grad = np.full_like(Z, np.nan)
    loss = k.binary_cross_entropy(Z, Y, grad)
    # log(1 + e^-big) ~ 0 for the right answers, big for the wrong ones; mean over 4
    assert loss == pytest.approx(2 * big / 4, rel=1e-6)
    np.testing.assert_allclose(grad, np.array([[0, 0, 1, -1]]) / 4, atol=1e-7)
    out = np.full_like(Z, np.nan)
    k.loss_output(Z, BCE, out)
    # sigmoid(-100) = 3.7e-44 (a float32 subnormal, which may flush to 0); sigmoid(-1e4) = 0
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-Z.astype(np.float64))), rtol=1e-6,
                               atol=1e-37)


# ---- activations far out -------------------------------------------------------------------------

_EXTREMES = {np.float32: [-1e38, -1e4, -100.0, -20.0, 20.0, 100.0, 1e4, 1e38],
             np.float64: [-1e300, -1e4, -100.0, -20.0, 20.0, 100.0, 1e4, 1e300]}


def _reference(f, act, z):
    """f(act, z) in float64 by the textbook formula, NaN where the formula itself
    overflows (z^2 for |z| > 1e150: there only finiteness is checked)."""
    with np.errstate(all="ignore"):
        out = f(act, z)
    out[np.abs(z) > 1e150] = np.nan
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations_at_extremes_are_finite_and_right(k, act, dtype):
    z = np.array([_EXTREMES[dtype] * 2], dtype)   # each value on an even and an odd unit
    a = np.full_like(z, np.nan)
    k.activation_forward(z, act, a)
    d = np.full_like(z, np.nan)
    k.activation_backward(z, a, np.ones_like(z), act, d)
    # every activation is at most ~1.5 |z| and every derivative at most ~1.5: all finite
    assert np.isfinite(a).all(), f"{act}({z[~np.isfinite(a)]}) is not finite"
    assert np.isfinite(d).all(), f"{act}'({z[~np.isfinite(d)]}) is not finite"
    want_a, want_d = _reference(textbook_forward, act, z), _reference(textbook_derivative, act, z)
    ok = np.isfinite(want_a)
    np.testing.assert_allclose(a[ok], want_a[ok], rtol=1e-4, atol=1e-30)
    ok = np.isfinite(want_d)
    np.testing.assert_allclose(d[ok], want_d[ok], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_isru_saturates_at_huge_inputs(k, dtype):
    # regression: the twin computed z / sqrt(1 + z^2) with z^2 overflowing, giving 0
    # instead of +-1 for |z| > ~1.8e19 (float32)
    big = np.finfo(dtype).max / 4
    z = np.array([[-big, -1e20, 1e20, big]], dtype)
    for act, want in (("isru", [-1, -1, 1, 1]), ("isrlu", [-1, -1, 1e20, big])):
        a = np.empty_like(z)
        k.activation_forward(z, act, a)
        np.testing.assert_allclose(a, np.array([want], dtype), rtol=1e-6)


# ---- optimizers fed zero gradients ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "adagrad", "rmsprop", "nadam"])
def test_zero_gradients_for_several_steps_change_nothing(k, dtype, opt):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(37).astype(dtype)
    p, g = p0.copy(), np.zeros_like(p0)
    s1, s2, s3 = np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    mu_product = 1.0
    for step in range(1, 8):
        if opt == "sgd":
            k.sgd_update(p, g, s1, 0.1, 0.9, True)
        elif opt == "adam":
            k.adam_update(p, g, s1, s2, 1e-3, 0.9, 0.999, 1e-8, step)
        elif opt == "adamw":
            k.adamw_update(p, g, s1, s2, 1e-3, 0.9, 0.999, 1e-8, 0.0, step)
        elif opt == "adagrad":
            k.adagrad_update(p, g, s1, 0.1, 1e-10)
        elif opt == "rmsprop":
            k.rmsprop_update(p, g, s1, 1e-3, 0.9, 1e-8, 0.9, s2, s3)
        else:
            mu_product = k.nadam_update(p, g, s1, s2, 2e-3, 0.9, 0.999, 1e-8, 4e-3, step,
                                        mu_product)
    np.testing.assert_array_equal(p, p0)
    for s in (s1, s2, s3):
        np.testing.assert_array_equal(s, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_model_with_zero_gradients_keeps_its_weights(backend):
    # relu units that are all dead: every gradient is exactly zero
    model = tiny_model(backend, n_in=2, n_out=1, loss="mse", activation="relu",
                       optimizer=fm.Adam(lr=0.1))
    weights = model.get_weights()
    weights[0][...] = -1.0        # W1: every unit's pre-activation < 0 on positive inputs
    weights[1][...] = 0.0
    weights[3][...] = 0.5         # b2 = target: zero loss gradient at the output too
    model.set_weights(weights)
    X = np.abs(np.random.default_rng(0).standard_normal((16, 2))) + 0.1
    y = np.full(16, 0.5)
    for _ in range(5):
        assert model.train_step(X, y) == 0.0
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


# ---- learning rates that make training diverge ------------------------------------------------

_OPTIMIZERS = {"sgd": lambda: fm.SGD(lr=1e12), "momentum": lambda: fm.SGD(lr=1e8, momentum=0.9),
               "adam": lambda: fm.Adam(lr=1e30),
               "adamw": lambda: fm.AdamW(lr=1e30, weight_decay=0.0),
               "adagrad": lambda: fm.Adagrad(lr=1e30), "rmsprop": lambda: fm.RMSprop(lr=1e30),
               "nadam": lambda: fm.Nadam(lr=1e30)}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("loss", ["mse", "huber", "poisson", "softmax_cross_entropy"])
@pytest.mark.parametrize("opt", list(_OPTIMIZERS))
def test_divergence_stops_with_a_message_never_with_nan_weights(backend, opt, loss):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 3)) * 10
    n_out = 3 if loss == "softmax_cross_entropy" else 1
    y = rng.integers(0, 3, 64) if n_out == 3 else np.abs(rng.standard_normal(64)) * 100
    model = tiny_model(backend, n_in=3, n_out=n_out, hidden=16, loss=loss, activation="relu",
                       optimizer=_OPTIMIZERS[opt]())
    try:
        history = model.fit(X, y, epochs=20, batch_size=16, verbose=0)
    except FloatingPointError as e:
        assert "diverged" in str(e) and "learning rate" in str(e)
    else:
        assert np.isfinite(history.history["loss"]).all()
    # the weights left behind are finite: those before the failing batch, or, when the
    # update itself overflowed, the message says they are unusable - and then even so
    # no NaN may come out of predict without an error
    try:
        out = model.predict(X)
    except FloatingPointError as e:
        assert "inf or NaN" in str(e) and "diverge" in str(e)
    else:
        assert np.isfinite(out).all()


def test_predict_refuses_to_return_an_overflowed_output(backend):
    # regression: weights too large for float32 (a diverged fit leaves such) gave
    # predict() outputs of inf, or NaN probabilities, without an error
    model = tiny_model(backend, n_in=3, n_out=3, activation="relu")
    weights = model.get_weights()
    weights[0][...] = 1e30
    weights[2][...] = 1e30
    model.set_weights(weights)
    with pytest.raises(FloatingPointError, match="inf or NaN"):
        model.predict(np.ones((2, 3)))
