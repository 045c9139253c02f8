"""BatchNorm, PReLU and Maxout together with the rest of the catalogue: weight
penalties, max-norm and weight decay apply to the weight matrices only; other
losses, bipolar activations after a batch norm, save/load of the running
statistics, and the inspection tools."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import regularizers

BACKENDS = ["native", "numpy"]


def _stack():
    return [fm.Dense(6), fm.BatchNorm(activation="relu"), fm.Dropout(0.2),
            fm.Maxout(5, pieces=2), fm.PReLU(), fm.Dense(3)]


def _data(n=48, n_in=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, k, n)


def _model(backend="native", dtype="float64", optimizer=None, regularizer=None,
           loss="softmax_cross_entropy", layers=None, seed=3):
    model = fm.Sequential(layers or _stack(), input_dim=4, dtype=dtype, seed=seed,
                          backend=backend)
    model.compile(loss=loss, optimizer=optimizer or fm.SGD(lr=0.05, momentum=0.9),
                  regularizer=regularizer)
    return model


def _weight_matrices(model):
    weights = model.get_weights()
    return [weights[i] for i in model._weight_matrix_indices()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_penalty_covers_only_weight_matrices(backend):
    model = _model(backend, regularizer=regularizers.l1_l2(l1=0.01, l2=0.1))
    X, y = _data()
    W = _weight_matrices(model)
    assert [w.shape for w in W] == [(4, 6), (6, 10), (5, 3)]
    expected = sum(0.01 * np.abs(w).sum() + 0.05 * (w * w).sum() for w in W)
    plain = _model(backend)
    plain.set_weights(model.get_weights())
    loss, grads = model.loss_and_gradients(X, y)
    loss0, grads0 = plain.loss_and_gradients(X, y)
    np.testing.assert_allclose(loss - loss0, expected, rtol=1e-12)
    weights = model.get_weights()
    indices = model._weight_matrix_indices()
    for i, (g, g0) in enumerate(zip(grads, grads0)):
        if i in indices:   # d/dW (l1 |W| + l2/2 W^2) = l1 sign(W) + l2 W
            np.testing.assert_allclose(g - g0, 0.01 * np.sign(weights[i]) + 0.1 * weights[i],
                                       rtol=1e-9, atol=1e-12)
        else:              # biases, gamma, beta, PReLU slopes: untouched
            np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_regularized_training_agrees_between_backends(dtype, rtol):
    X, y = _data(96)
    reg = [regularizers.l1_l2(l1=1e-3, l2=1e-2), regularizers.max_norm(0.8)]
    # SGD, not Adam: the bias of the Dense before a batch norm has a gradient of
    # rounding noise only, which Adam's normalized step would turn into full steps
    native = _model("native", dtype, fm.SGD(lr=0.05, momentum=0.9), reg)
    twin = _model("numpy", dtype, fm.SGD(lr=0.05, momentum=0.9), reg)
    h1 = native.fit(X, y, epochs=3, batch_size=16, verbose=0)
    h2 = twin.fit(X, y, epochs=3, batch_size=16, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=rtol)
    for a, b in zip(native.get_weights() + native.get_state(),
                    twin.get_weights() + twin.get_state()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_norm_constrains_dense_and_maxout_columns_only(backend):
    X, y = _data(96)
    model = _model(backend, optimizer=fm.SGD(lr=0.5), regularizer=regularizers.max_norm(0.3),
                   layers=[fm.Dense(6), fm.PReLU(init=2.0), fm.BatchNorm(),
                           fm.Maxout(5, pieces=3), fm.Dense(3)])
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for W in _weight_matrices(model):   # every column: one unit's (or piece's) incoming weights
        assert np.linalg.norm(W, axis=0).max() <= 0.3 * (1 + 1e-12)
    gamma, alpha = model.get_weights()[3], model.get_weights()[2]
    assert np.abs(alpha).max() > 0.3 or np.abs(gamma).max() > 0.3   # not clipped as weights


@pytest.mark.parametrize("backend", BACKENDS)
def test_adamw_decays_weight_matrices_only(backend):
    # with a zero gradient Adam's step is 0, so only the decoupled decay moves parameters
    model = _model(backend, optimizer=fm.AdamW(lr=0.1, weight_decay=0.5))
    before = model.get_weights()
    model.grads[...] = 0.0
    model._plan.apply_update()
    after = model.get_weights()
    indices = model._weight_matrix_indices()
    for i, (a, b) in enumerate(zip(before, after)):
        if i in indices:
            np.testing.assert_allclose(b, a * (1 - 0.1 * 0.5), rtol=1e-12)
        else:
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("loss, targets", [
    ("binary_cross_entropy", "binary"), ("mse", "real"), ("huber", "real"), ("poisson", "counts"),
])
def test_other_losses_through_the_new_layers_match_finite_differences(loss, targets):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((24, 4))
    Y = {"binary": (rng.random((24, 3)) < 0.5).astype(float),
         "real": rng.standard_normal((24, 3)),
         "counts": rng.poisson(2.0, (24, 3)).astype(float)}[targets]
    for backend in BACKENDS:
        model = _model(backend, loss=loss, layers=[fm.Dense(6), fm.PReLU(),
                                                   fm.BatchNorm(activation="tanh"),
                                                   fm.Maxout(4, pieces=2), fm.Dense(3)])
        result = fm.gradcheck(model, X, Y, max_checks=None)
        assert result.ok(rtol=1e-5, atol=1e-8), str(result)
        assert [row["name"] for row in result.rows] == ["W1", "b1", "alpha2", "gamma3", "beta3",
                                                        "W4", "b4", "W5", "b5"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bipolar_activation_after_batchnorm_agrees(dtype, threads):
    # brelu after a batch norm: even units relu(y), odd units -relu(-y)
    layers = lambda: [fm.Dense(8), fm.BatchNorm(activation="brelu"), fm.Dense(3)]  # noqa: E731
    X, y = _data(256)
    rtol = 1e-10 if dtype == "float64" else 2e-4
    with fm.threads(threads):
        native = _model("native", dtype, layers=layers())
        twin = _model("numpy", dtype, layers=layers())
        for _ in range(3):
            np.testing.assert_allclose(native.train_step(X, y), twin.train_step(X, y), rtol=rtol)
        outputs = native.activations(X)
    for a, b in zip(native.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    Y = outputs[1]   # the batch norm's output: sign pattern of brelu by column parity
    assert (Y[:, 0::2] >= 0).all() and (Y[:, 1::2] <= 0).all()


def test_bipolar_activation_after_batchnorm_matches_finite_differences():
    model = _model("native", layers=[fm.Dense(6), fm.BatchNorm(activation="brelu"), fm.Dense(3)])
    X, y = _data(24)
    result = fm.gradcheck(model, X, y, max_checks=None)
    assert result.ok(rtol=1e-5, atol=1e-8), str(result)


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_keeps_running_statistics_and_resumes_exactly(backend, tmp_path):
    X, y = _data(96)
    model = _model(backend, optimizer=fm.Adam(lr=0.01))
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "bn.fmlp"
    model.save(path)
    loaded = fm.load_model(path)
    for a, b in zip(model.get_state(), loaded.get_state()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(model.get_state()[0], 0)   # the running mean has moved
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    loaded.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights() + model.get_state(),
                    loaded.get_weights() + loaded.get_state()):
        np.testing.assert_array_equal(a, b)


def test_load_rejects_missing_or_bad_running_statistics(tmp_path):
    from fastmlp import io

    model = _model("native")
    path = tmp_path / "bn.fmlp"
    model.save(path)
    # a negative running variance cannot come from training
    model.state[model._layout[1]["rv_off"]] = -1.0
    bad = tmp_path / "negative.fmlp"
    io.save_model(model, bad)
    with pytest.raises(ValueError, match="running variance"):
        fm.load_model(bad)
    plain = _model("native", layers=[fm.Dense(6), fm.Dense(3)])
    plain_path = tmp_path / "plain.fmlp"
    plain.save(plain_path)
    assert fm.load_model(plain_path).state.shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_activations_follow_every_layer_kind(backend):
    model = _model(backend)
    X, y = _data(96)
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    outputs = model.activations(X)
    assert [A.shape for A in outputs] == [(96, 6), (96, 6), (96, 5), (96, 5), (96, 3)]
    # by hand at inference: dense, batch norm on running statistics + relu, maxout, prelu, dense
    W1, b1, gamma, beta, W3, b3, alpha, W5, b5 = model.get_weights()
    mean, var = model.get_state()
    A = X @ W1 + b1
    np.testing.assert_allclose(outputs[0], A, rtol=1e-10)
    A = np.maximum(gamma * (A - mean) / np.sqrt(var + 1e-5) + beta, 0)
    np.testing.assert_allclose(outputs[1], A, rtol=1e-10, atol=1e-12)
    A = (A @ W3 + b3).reshape(96, 2, 5).max(axis=1)
    np.testing.assert_allclose(outputs[2], A, rtol=1e-10, atol=1e-12)
    A = np.where(A > 0, A, alpha * A)
    np.testing.assert_allclose(outputs[3], A, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(outputs[4], A @ W5 + b5, rtol=1e-9, atol=1e-12)
    logits = outputs[-1] - outputs[-1].max(axis=1, keepdims=True)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(X), proba, rtol=1e-9)


def test_dead_units_and_plots_skip_dropout():
    model = _model("native")
    X, _ = _data(64)
    fractions = fm.dead_units(model, X)
    assert len(fractions) == 5
    assert fractions[1] is not None and 0.0 <= fractions[1] <= 1.0   # BatchNorm(relu)
    assert fractions[0] is None and fractions[2] is None             # Dense, Maxout


def test_summary_describes_the_new_layers():
    model = _model("native")
    text = model.summary(print_fn=None)
    assert "4 -> 6 -> 5 -> 3" in text
    assert "gamma 6" in text and "beta 6" in text and "alpha 5" in text and "6 x 10" in text
    count = model.count_params()
    assert count == 4 * 6 + 6 + 12 + 6 * 10 + 10 + 5 + 5 * 3 + 3
    assert f"total: {count:,} parameters (" in text
    assert "+ 17 batch-norm and PReLU parameters" in text
