"""Teaching and inspection tools: gradcheck, activations, dead_units, summary; metrics."""
import numpy as np
import pytest

import fastmlp as fm
from conftest import ACTIVATIONS, textbook_forward
from fastmlp import metrics


def make_model(backend="native", dtype="float32", act="tanh", loss="softmax_cross_entropy",
               n_out=3, seed=0):
    last = act if loss == "mse" else None
    model = fm.Sequential([fm.Dense(6, activation=act), fm.Dense(5, activation=act),
                           fm.Dense(n_out, activation=last)],
                          input_dim=3, dtype=dtype, seed=seed, backend=backend)
    model.compile(loss=loss, optimizer="sgd")
    return model


# ---- gradcheck ---------------------------------------------------------------------------

@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_gradcheck_agrees_for_a_correct_model(backend, dtype, act, loss, rng):
    X = rng.standard_normal((10, 3))
    y = rng.integers(0, 3, 10) if loss != "mse" else rng.standard_normal((10, 3))
    model = make_model(backend, dtype, act, loss)
    before = model.params.copy()
    result = fm.gradcheck(model, X, y)
    assert [row["name"] for row in result.rows] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert [row["shape"] for row in result.rows] == [(3, 6), (6,), (6, 5), (5,), (5, 3), (3,)]
    # the check runs in float64 whatever the model's dtype; ReLU kinks are rare on random data
    assert result.max_relative_error < 1e-4, repr(result)
    assert result.ok(rtol=1e-4)
    np.testing.assert_array_equal(model.params, before)    # the model is not touched
    assert "max rel error" in repr(result)


def test_gradcheck_catches_a_wrong_gradient(rng, monkeypatch):
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 3, 8)
    model = make_model()
    real = fm.Sequential.loss_and_gradients

    def wrong(self, X, y):
        loss, grads = real(self, X, y)
        grads[2][1, 3] += 0.1                               # one entry of dW2 is off
        return loss, grads

    monkeypatch.setattr(fm.Sequential, "loss_and_gradients", wrong)
    result = fm.gradcheck(model, X, y)
    by_name = {row["name"]: row for row in result.rows}
    assert by_name["W2"]["max_rel_error"] > 1e-2 and not result.ok()
    assert by_name["W2"]["max_abs_error"] == pytest.approx(0.1, rel=1e-4)
    assert by_name["W1"]["max_rel_error"] < 1e-5
    bad = by_name["W2"]
    assert bad["indices"][np.argmax(np.abs(bad["analytic"] - bad["numeric"]))] == 1 * 5 + 3


def test_gradcheck_ok_tolerates_rounding_on_tiny_gradients(rng):
    # a well-trained model: many gradient entries are ~1e-9 and their relative
    # errors are dominated by rounding, but the absolute errors are ~1e-10
    X, y = fm.datasets.spiral(n_samples=90, seed=0)
    model = fm.Sequential([fm.Dense(32, activation="tanh"), fm.Dense(3)], input_dim=2,
                          dtype="float64")
    model.compile(optimizer=fm.Adam(lr=0.02))
    model.fit(X, y, epochs=300, batch_size=90, verbose=0)
    result = fm.gradcheck(model, X, y)
    assert max(row["max_abs_error"] for row in result.rows) < 1e-8
    assert result.ok()


def test_gradcheck_samples_large_arrays(rng):
    model = make_model()
    result = fm.gradcheck(model, rng.standard_normal((4, 3)), rng.integers(0, 3, 4),
                          max_checks=5)
    assert [row["checked"] for row in result.rows] == [5, 5, 5, 5, 5, 3]
    with pytest.raises(ValueError, match="max_checks"):
        fm.gradcheck(model, np.zeros((2, 3)), [0, 1], max_checks=0)
    with pytest.raises(ValueError, match="eps"):
        fm.gradcheck(model, np.zeros((2, 3)), [0, 1], eps=0)


# ---- activations and dead units -------------------------------------------------------------

@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations_are_every_layer_output(backend, dtype, act, rng):
    X = rng.standard_normal((7, 3))
    model = make_model(backend, dtype, act)
    outputs = model.activations(X)
    assert [a.shape for a in outputs] == [(7, 6), (7, 5), (7, 3)]
    assert all(a.dtype == dtype for a in outputs)
    W1, b1, W2, b2, W3, b3 = (w.astype(np.float64) for w in model.get_weights())
    A1 = textbook_forward(act, X @ W1 + b1)
    A2 = textbook_forward(act, A1 @ W2 + b2)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(outputs[0], A1, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(outputs[1], A2, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(outputs[2], A2 @ W3 + b3, rtol=rtol, atol=rtol)
    # the last one is the logits: predict() applies the softmax to it
    z = outputs[2].astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(X), p / p.sum(axis=1, keepdims=True),
                               rtol=rtol, atol=rtol)


def test_dead_units(backend, rng):
    X = rng.standard_normal((50, 3))
    model = fm.Sequential([fm.Dense(4, activation="relu"),
                           fm.Dense(5, activation=fm.activations.leaky_relu(0.1)),
                           fm.Dense(2, activation="tanh"), fm.Dense(2)],
                          input_dim=3, backend=backend)
    weights = model.get_weights()
    weights[1][:] = 1.0
    weights[1][[0, 2]] = -1e3                      # units 0 and 2 of layer 0 never fire
    weights[3][:] = 1.0
    weights[3][4] = -1e4                           # unit 4 of layer 1 never gets z > 0
    model.set_weights(weights)
    assert fm.dead_units(model, X) == [0.5, 0.2, None, None]
    with pytest.raises(ValueError, match="features"):
        fm.dead_units(model, X[:, :2])


def test_activations_need_a_built_model():
    with pytest.raises(RuntimeError, match="not built"):
        fm.Sequential([fm.Dense(2)]).activations(np.zeros((1, 2)))


# ---- summary -------------------------------------------------------------------------------

def test_summary_counts_w_and_b(capsys):
    model = fm.Sequential([fm.Dense(128, activation="relu"), fm.Dense(64, activation="relu"),
                           fm.Dense(10)], input_dim=64)
    text = model.summary()
    assert capsys.readouterr().out.strip() == text
    assert "64 -> 128 -> 64 -> 10" in text
    assert "64 x 128" in text and "8,320" in text and "8,256" in text and "650" in text
    assert "total: 17,226 parameters (17,024 weights + 202 biases)" in text
    assert model.count_params() == 17_226
    assert str(model) == text
    assert model.summary(print_fn=None) == text and capsys.readouterr().out == ""
    model.compile(metrics=["accuracy"])
    assert "loss: softmax_cross_entropy; optimizer: Adam(" in str(model)
    assert "metrics: accuracy" in str(model)
    assert "not built" in str(fm.Sequential([fm.Dense(3)]))
    assert repr(model).startswith("Sequential([Dense(128")


# ---- metrics -------------------------------------------------------------------------------

def test_classification_metrics(rng):
    out = rng.standard_normal((200, 6))
    y = rng.integers(0, 6, 200)
    ranks = (out > out[np.arange(200), y][:, None]).sum(axis=1)   # classes scoring higher
    assert metrics.accuracy(out, y) == np.mean(out.argmax(axis=1) == y)
    for k in (1, 2, 3, 6):
        assert metrics.top_k_accuracy(out, y, k) == np.mean(ranks < k)
    assert metrics.top_k_accuracy(out, y, 1) == metrics.accuracy(out, y)
    assert metrics.top_k_accuracy(out, y, 6) == 1.0
    onehot = np.eye(6)[y]
    assert metrics.accuracy(out, onehot) == metrics.accuracy(out, y)
    w = rng.random(200)
    assert metrics.accuracy(out, y, w) == pytest.approx(
        np.sum(w * (out.argmax(axis=1) == y)) / w.sum())


def test_regression_metrics(rng):
    y = rng.standard_normal((100, 2))
    out = y + 0.3 * rng.standard_normal((100, 2))
    assert metrics.mean_squared_error(out, y) == pytest.approx(np.mean((out - y) ** 2))
    assert metrics.mean_absolute_error(out, y) == pytest.approx(np.mean(np.abs(out - y)))
    r2 = [1 - np.sum((y[:, j] - out[:, j]) ** 2) / np.sum((y[:, j] - y[:, j].mean()) ** 2)
          for j in range(2)]
    assert metrics.r2_score(out, y) == pytest.approx(np.mean(r2))
    assert metrics.r2_score(y, y) == 1.0
    const = np.ones((5, 1))
    assert metrics.r2_score(const, const) == 1.0 and metrics.r2_score(const * 2, const) == 0.0
    assert metrics.mean_squared_error(out[:, :1], y[:, 0]) == pytest.approx(
        np.mean((out[:, 0] - y[:, 0]) ** 2))
    w = np.r_[np.ones(50), np.zeros(50)]
    assert metrics.mean_absolute_error(out, y, w) == pytest.approx(
        np.mean(np.abs(out[:50] - y[:50])))
    assert metrics.r2_score(out, y, w) == pytest.approx(metrics.r2_score(out[:50], y[:50]))


def test_metrics_through_compile_fit_and_evaluate(backend, rng):
    X, y = rng.standard_normal((60, 3)), rng.integers(0, 3, 60)
    model = make_model(backend)
    model.compile(metrics=["accuracy", "top_2_accuracy", "top_k_accuracy"])
    history = model.fit(X, y, epochs=2, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", "accuracy", "top_2_accuracy", "top_5_accuracy",
                                     "val_loss", "val_accuracy", "val_top_2_accuracy",
                                     "val_top_5_accuracy"]
    result = model.evaluate(X, y)
    logits = model.activations(X)[-1]
    assert result["top_2_accuracy"] == metrics.top_k_accuracy(logits, y, 2)
    assert result["top_5_accuracy"] == 1.0

    reg = make_model(backend, loss="mse", act="identity")
    reg.compile(loss="mse", metrics=["mse", "mae", "r2"])
    Y = rng.standard_normal((60, 3))
    result = reg.evaluate(X, Y)
    out = reg.predict(X).astype(np.float64)
    assert result["mse"] == pytest.approx(2 * result["loss"], rel=1e-5)   # loss is 1/2 mse
    assert result["mae"] == pytest.approx(np.mean(np.abs(out - Y)), rel=1e-5)


@pytest.mark.parametrize("loss, metric, message", [
    ("mse", "accuracy", "needs a classification loss"),
    ("softmax_cross_entropy", "r2", "needs a regression loss"),
    ("softmax_cross_entropy", "top_0_accuracy", "unknown metric"),
    ("softmax_cross_entropy", "f1", "unknown metric"),
])
def test_bad_metrics_raise(loss, metric, message):
    model = make_model(loss=loss, act="identity")
    with pytest.raises(ValueError, match=message):
        model.compile(loss=loss, metrics=[metric])
    with pytest.raises(ValueError, match="distinct"):
        model.compile(metrics=["accuracy", "acc"])
