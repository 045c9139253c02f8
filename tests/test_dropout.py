"""Dropout: the counter-based mask kernel, its NumPy twin, and the Dropout layer."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import BACKENDS, DTYPES, assert_close, numeric_gradient


def _apply(backend, X, p, seed=0, layer=0, step=0):
    out = np.empty_like(X)
    kernels(backend).dropout(X, out, p, seed, layer, step)
    return out


# ---- the kernel ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (600, 700)])
def test_native_mask_equals_twin(dtype, shape, threads):
    X = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    native = _apply("native", X, 0.3, seed=12345, layer=2, step=7)
    numpy = _apply("numpy", X, 0.3, seed=12345, layer=2, step=7)
    np.testing.assert_array_equal(native == 0, numpy == 0)
    assert_close(native, numpy, dtype)


def test_mask_does_not_depend_on_threads():
    X = np.ones((900, 800), dtype=np.float32)  # large enough for two threads
    with fm.threads(1):
        one = _apply("native", X, 0.5, seed=3, layer=1, step=4)
    with fm.threads(2):
        two = _apply("native", X, 0.5, seed=3, layer=1, step=4)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_and_scale(p):
    X = np.ones((1000, 1000), dtype=np.float64)
    out = _apply("native", X, p, seed=1)
    kept = out != 0
    # 1e6 Bernoulli(1 - p) draws: the fraction is within 5 standard deviations
    sd = np.sqrt(p * (1 - p) / kept.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sd
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - p))
    assert abs(out.mean() - 1.0) < 5 * sd / (1 - p)  # inverted dropout keeps the mean


def test_rate_zero_is_identity():
    X = np.random.default_rng(0).standard_normal((20, 30))
    np.testing.assert_array_equal(_apply("native", X, 0.0), X)


@pytest.mark.parametrize("change", ["seed", "layer", "step"])
def test_masks_differ_by_key(change):
    X = np.ones((200, 100))
    key = {"seed": 1, "layer": 0, "step": 0}
    first = _apply("native", X, 0.5, **key)
    np.testing.assert_array_equal(first, _apply("native", X, 0.5, **key))  # same key, same mask
    key[change] += 1
    other = _apply("native", X, 0.5, **key)
    agreement = np.mean((first == 0) == (other == 0))
    assert 0.45 < agreement < 0.55  # independent masks agree half the time


def test_masks_of_neighbouring_units_are_uncorrelated():
    out = _apply("native", np.ones((2000, 64)), 0.5, seed=9)
    kept = (out != 0).astype(np.float64)
    corr = np.corrcoef(kept[:, :-1].ravel(), kept[:, 1:].ravel())[0, 1]
    assert abs(corr) < 0.02


def test_in_place_applies_the_same_mask():
    X = np.random.default_rng(2).standard_normal((50, 40))
    expected = _apply("native", X, 0.25, seed=5, step=3)
    for backend in BACKENDS:
        Y = X.copy()
        kernels(backend).dropout(Y, Y, 0.25, 5, 0, 3)
        np.testing.assert_allclose(Y, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_rate_raises(backend, p):
    X = np.ones((2, 2))
    with pytest.raises(ValueError, match="dropout rate"):
        kernels(backend).dropout(X, np.empty_like(X), p, 0, 0, 0)


# ---- the layer -------------------------------------------------------------------

def _model(backend, dtype="float64", rate=0.3, seed=0, act="tanh"):
    model = fm.Sequential([fm.Dense(16, activation=act), fm.Dropout(rate),
                           fm.Dense(16, activation=act), fm.Dropout(rate), fm.Dense(3)],
                          input_dim=4, dtype=dtype, seed=seed, backend=backend)
    model.compile(loss="softmax_cross_entropy", optimizer=fm.SGD(lr=0.1, momentum=0.9))
    return model


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backends_agree_with_dropout(dtype):
    X, y = _data()
    native, numpy = _model("native", dtype), _model("numpy", dtype)
    for step in range(3):
        np.testing.assert_allclose(native.train_step(X, y), numpy.train_step(X, y),
                                   rtol=1e-4 if dtype == np.float32 else 1e-10)
    for a, b in zip(native.get_weights(), numpy.get_weights()):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_with_dropout_matches_finite_differences(backend):
    X, y = _data(n=12)
    model = _model(backend, rate=0.4)
    loss, grads = model.loss_and_gradients(X, y)
    weights = model.get_weights()
    for i in (0, 2, 3):  # W1, W2, b2: through both dropout layers
        indices = list(np.ndindex(weights[i].shape))[:12]
        np.testing.assert_allclose([grads[i][idx] for idx in indices],
                                   numeric_gradient(model, X, y, i, indices),
                                   rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_loss_differs_from_evaluation(backend):
    # dropout is active in training steps and off in predict/evaluate
    X, y = _data()
    model = _model(backend, rate=0.5)
    plain = fm.Sequential([fm.Dense(16, activation="tanh"), fm.Dense(16, activation="tanh"),
                           fm.Dense(3)], input_dim=4, dtype="float64", backend=backend)
    plain.compile(loss="softmax_cross_entropy", optimizer="sgd")
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(X), plain.predict(X))
    np.testing.assert_allclose(model.evaluate(X, y)["loss"], plain.evaluate(X, y)["loss"])
    assert model.loss_and_gradients(X, y)[0] != pytest.approx(plain.evaluate(X, y)["loss"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_is_bit_identical(backend):
    X, y = _data(n=200)
    runs = []
    for _ in range(2):
        model = _model(backend, dtype="float32", seed=4)
        model.fit(X, y, epochs=3, batch_size=32, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_learns_spiral_with_dropout():
    X, y = fm.datasets.spiral(n_samples=300, n_classes=3, seed=0)
    model = fm.Sequential([fm.Dense(64, activation="relu"), fm.Dropout(0.1),
                           fm.Dense(64, activation="relu"), fm.Dense(3)], input_dim=2, seed=0)
    model.compile(optimizer=fm.Adam(lr=1e-2), metrics=["accuracy"])
    model.fit(X, y, epochs=300, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["accuracy"] >= 0.95


@pytest.mark.parametrize("layers, message", [
    (lambda: [fm.Dropout(0.1), fm.Dense(2)], "follow a Dense"),
    (lambda: [fm.Dense(4), fm.Dropout(0.1), fm.Dropout(0.1), fm.Dense(2)], "follow a Dense"),
    (lambda: [fm.Dense(4), fm.Dropout(0.1)], "last layer"),
    (lambda: [fm.Dense(4), "dropout", fm.Dense(2)], "fastmlp.Dense or fastmlp.Dropout"),
])
def test_bad_stacks_raise(layers, message):
    with pytest.raises(ValueError, match=message):
        fm.Sequential(layers(), input_dim=3)


@pytest.mark.parametrize("rate", [-0.5, 1.0, float("nan")])
def test_bad_layer_rate_raises(rate):
    with pytest.raises(ValueError, match="rate"):
        fm.Dropout(rate)


def test_summary_lists_dropout():
    model = _model("native")
    text = model.summary(print_fn=None)
    assert "Dropout(0.3)" in text
    assert f"total: {model.count_params():,} parameters" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_fit_reproduces_masks(backend, tmp_path):
    X, y = _data(n=96)
    straight = _model(backend, dtype="float32", seed=2)
    straight.fit(X, y, epochs=4, batch_size=16, verbose=0)
    first = _model(backend, dtype="float32", seed=2)
    first.fit(X, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "half.fm")
    resumed = fm.load_model(tmp_path / "half.fm")
    resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert "Dropout(0.3)" in repr(resumed)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
