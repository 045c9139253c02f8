"""Weight initializers: the variances the papers state, orthogonality, names and
parameters, the per-activation defaults, and that a model uses them."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import initializers as init

from conftest import ACTIVATIONS

FAN_IN, FAN_OUT = 400, 600  # 240k weights: the sample variance is within ~0.6% (2 sigma)


def _variance(fan_in, fan_out):
    """The variance each scheme's paper prescribes."""
    return {
        "xavier_normal": 2.0 / (fan_in + fan_out), "xavier_uniform": 2.0 / (fan_in + fan_out),
        "he_normal": 2.0 / fan_in, "he_uniform": 2.0 / fan_in,
        "lecun_normal": 1.0 / fan_in, "lecun_uniform": 1.0 / fan_in,
        "normal": 0.05 ** 2, "uniform": 0.05 ** 2 / 3,
    }


@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
                                  "lecun_normal", "lecun_uniform", "normal", "uniform"])
@pytest.mark.parametrize("fans", [(FAN_IN, FAN_OUT), (FAN_OUT, FAN_IN)])
def test_empirical_variance_matches_the_paper(name, fans):
    fan_in, fan_out = fans
    W = init.initialize(name, np.random.default_rng(0), fan_in, fan_out)
    assert W.shape == (fan_in, fan_out) and W.dtype == np.float64
    var = _variance(fan_in, fan_out)[name]
    assert abs(W.mean()) < 0.01 * np.sqrt(var)
    np.testing.assert_allclose(W.var(), var, rtol=0.01)
    if name.endswith("uniform"):
        # U(-l, l) with l = sqrt(3 var): the extremes come within 0.1% of l, never past it
        limit = np.sqrt(3 * var)
        assert np.abs(W).max() <= limit
        assert np.abs(W).max() > 0.999 * limit
    else:
        # normal: about 4.55% of the draws beyond 2 sigma
        beyond = np.mean(np.abs(W) > 2 * np.sqrt(var))
        assert 0.040 < beyond < 0.051


def test_uniform_limits_are_the_papers():
    rng = np.random.default_rng(1)
    # Glorot & Bengio 2010, eq. 16: U[-sqrt(6)/sqrt(n_j + n_j+1), +...]
    W = init.initialize("xavier_uniform", rng, 3, 5)
    assert np.abs(W).max() <= np.sqrt(6 / 8)
    W = init.initialize("he_uniform", rng, 3, 5)
    assert np.abs(W).max() <= np.sqrt(6 / 3)
    W = init.initialize("lecun_uniform", rng, 3, 5)
    assert np.abs(W).max() <= np.sqrt(3 / 3)


@pytest.mark.parametrize("fans", [(64, 64), (100, 30), (30, 100), (1, 7), (7, 1)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(fans, gain):
    fan_in, fan_out = fans
    W = init.initialize(init.orthogonal(gain), np.random.default_rng(2), fan_in, fan_out)
    assert W.shape == fans
    if fan_in >= fan_out:   # orthonormal columns
        np.testing.assert_allclose(W.T @ W, gain ** 2 * np.eye(fan_out), atol=1e-12)
    else:                   # orthonormal rows
        np.testing.assert_allclose(W @ W.T, gain ** 2 * np.eye(fan_in), atol=1e-12)


def test_orthogonal_is_not_always_the_same_matrix():
    # the sign fix of QR makes it Haar-distributed: different seeds, different matrices,
    # and each entry of a square one has mean ~0 and variance 1/n
    n = 50
    Ws = [init.initialize("orthogonal", np.random.default_rng(s), n, n) for s in range(40)]
    assert not np.allclose(Ws[0], Ws[1])
    stack = np.stack(Ws)
    assert abs(stack.mean()) < 0.01
    np.testing.assert_allclose(stack.var(), 1 / n, rtol=0.05)


def test_zeros_and_constant():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(init.initialize("zeros", rng, 3, 4), np.zeros((3, 4)))
    np.testing.assert_array_equal(init.initialize(init.zeros(), rng, 3, 4), np.zeros((3, 4)))
    np.testing.assert_array_equal(init.initialize("constant", rng, 2, 2), np.zeros((2, 2)))
    np.testing.assert_array_equal(init.initialize(init.constant(0.25), rng, 2, 3),
                                  np.full((2, 3), 0.25))


def test_parameters_are_used():
    W = init.initialize(init.normal(std=0.5), np.random.default_rng(0), FAN_IN, FAN_OUT)
    np.testing.assert_allclose(W.std(), 0.5, rtol=0.01)
    W = init.initialize(init.uniform(a=2.0), np.random.default_rng(0), FAN_IN, FAN_OUT)
    assert np.abs(W).max() <= 2.0
    np.testing.assert_allclose(W.var(), 4.0 / 3, rtol=0.01)


def test_same_rng_state_same_weights():
    for name in init.INITIALIZERS:
        a = init.initialize(name, np.random.default_rng(7), 5, 6)
        b = init.initialize(name, np.random.default_rng(7), 5, 6)
        np.testing.assert_array_equal(a, b)


def test_names_aliases_and_repr():
    assert init.get("glorot_uniform") == init.get("xavier_uniform")
    assert init.get("glorot_normal").name == "xavier_normal"
    assert repr(init.normal(std=0.01)) == "normal(std=0.01)"
    assert repr(init.get("he_normal")) == "he_normal"
    assert init.get(init.orthogonal(2.0)) == init.orthogonal(2.0)


@pytest.mark.parametrize("make, message", [
    (lambda: init.normal(std=0.0), "std"), (lambda: init.normal(std=-1), "std"),
    (lambda: init.normal(std=float("nan")), "std"), (lambda: init.uniform(a=0), "a must"),
    (lambda: init.uniform(a=float("inf")), "a must"), (lambda: init.orthogonal(gain=0), "gain"),
    (lambda: init.constant(float("nan")), "value"), (lambda: init.constant("x"), "value"),
    (lambda: init.get("no_such_initializer"), "unknown initializer"),
    (lambda: init.get(None), "unknown initializer"), (lambda: init.get(3), "unknown initializer"),
    (lambda: init.get(init.Initializer("he_normal", (("std", 1.0),))), "no parameters"),
    (lambda: init.get(init.Initializer("normal", (("sd", 1.0),))), "parameters"),
    (lambda: init.get(init.Initializer("normal", (("std", -1.0),))), "std"),
    (lambda: fm.Dense(3, init="no_such_initializer"), "unknown initializer"),
])
def test_bad_initializers_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_default_for_each_activation(activation):
    expected = ("he_normal" if activation in {"relu", "leaky_relu", "elu", "brelu", "isrlu",
                                              "softplus", "gelu", "gelu_exact", "silu"}
                else "lecun_normal" if activation == "selu" else "xavier_uniform")
    assert init.default_for(activation) == expected
    assert fm.Dense(4, activation=activation).init == init.get(expected)


@pytest.mark.parametrize("spec, check", [
    ("zeros", lambda W: np.all(W == 0)),
    (init.constant(0.5), lambda W: np.all(W == 0.5)),
    ("orthogonal", lambda W: np.allclose(W.T @ W, np.eye(W.shape[1]), atol=1e-5)),
    (init.normal(std=1e-3), lambda W: np.abs(W).max() < 1e-2),
    ("glorot_uniform", lambda W: np.abs(W).max() <= np.sqrt(6 / (40 + 20)) * (1 + 1e-6)),
])
def test_model_uses_the_initializer_and_zero_biases(backend, spec, check):
    model = fm.Sequential([fm.Dense(20, activation="tanh", init=spec), fm.Dense(3)],
                          input_dim=40, backend=backend, seed=3)
    W, b, W2, b2 = model.get_weights()
    assert check(W)
    np.testing.assert_array_equal(b, 0)
    np.testing.assert_array_equal(b2, 0)


def test_model_default_init_is_unchanged_by_name():
    # init=None and init="he_normal" on a ReLU layer draw the same weights from the seed
    a = fm.Sequential([fm.Dense(8, activation="relu"), fm.Dense(2)], input_dim=5, seed=4)
    b = fm.Sequential([fm.Dense(8, activation="relu", init="he_normal"),
                       fm.Dense(2, init="xavier_uniform")], input_dim=5, seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
