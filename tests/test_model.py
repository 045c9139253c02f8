"""The Sequential API: gradients, backend agreement, repeatability, learning, input handling."""
import numpy as np
import pytest

import fastmlp as fm

from conftest import ACTIVATIONS, BACKENDS, assert_close, numeric_gradient, textbook_forward

LOSS_CASES = ["sce_labels", "sce_soft", "mse"]


# ---- helpers ----------------------------------------------------------------------

def make_model(backend="native", dtype="float32", hidden=((8, "tanh"),), n_in=3, n_out=3,
               loss="softmax_cross_entropy", optimizer=None, seed=0, metrics=None,
               last_activation=None):
    layers = [fm.Dense(units, activation=act) for units, act in hidden]
    layers.append(fm.Dense(n_out, activation=last_activation))
    model = fm.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed, backend=backend)
    model.compile(loss=loss, optimizer=optimizer if optimizer is not None else fm.SGD(lr=0.1),
                  metrics=metrics)
    return model


def classification_data(rng, n=40, n_in=3, k=3):
    X = rng.standard_normal((n, n_in))
    y = rng.integers(0, k, size=n)
    return X, y


def soft_targets(rng, n, k):
    T = rng.random((n, k)) + 0.1
    return T / T.sum(axis=1, keepdims=True)


def data_for(loss_case, rng, n, n_in, k):
    X = rng.standard_normal((n, n_in))
    if loss_case == "sce_labels":
        return X, rng.integers(0, k, size=n)
    if loss_case == "sce_soft":
        return X, soft_targets(rng, n, k)
    return X, rng.standard_normal((n, k))


def model_for(loss_case, backend, dtype, act, n_in, k, seed=0, optimizer=None, width=(6, 5)):
    mse = loss_case == "mse"
    return make_model(backend, dtype, hidden=[(w, act) for w in width], n_in=n_in, n_out=k,
                      loss="mse" if mse else "softmax_cross_entropy",
                      last_activation=act if mse else None, seed=seed, optimizer=optimizer)


def weights_finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


def rtol_for(dtype):
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-5


# ---- gradients ---------------------------------------------------------------------

@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_match_finite_differences(backend, act, loss_case):
    rng = np.random.default_rng(3)
    X, y = data_for(loss_case, rng, n=9, n_in=3, k=4)
    model = model_for(loss_case, backend, "float64", act, n_in=3, k=4, seed=1)
    loss, grads = model.loss_and_gradients(X, y)
    weights = model.get_weights()
    assert [g.shape for g in grads] == [w.shape for w in weights]
    for i, W in enumerate(weights):
        np.testing.assert_allclose(grads[i], numeric_gradient(model, X, y, i).reshape(W.shape),
                                   rtol=1e-5, atol=1e-8,
                                   err_msg=f"parameter array {i} ({act}, {loss_case})")
    # loss_and_gradients does not change the weights
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_loss_and_gradients_loss_matches_evaluate(backend, dtype, rng):
    model = make_model(backend, dtype)
    X, y = classification_data(rng)
    loss, _ = model.loss_and_gradients(X, y)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, model.evaluate(X, y)["loss"], rtol=rtol_for(dtype))


def test_leaky_relu_alpha_reaches_the_plan(backend, dtype, rng):
    model = fm.Sequential([fm.Dense(4, activation=fm.activations.leaky_relu(0.25))], input_dim=3,
                          dtype=dtype, backend=backend)
    model.compile(loss="mse", optimizer="sgd")
    X = rng.standard_normal((20, 3))
    W, b = model.get_weights()
    expected = textbook_forward("leaky_relu", X @ W.astype(np.float64) + b, alpha=0.25)
    assert_close(model.predict(X), expected, dtype)


# ---- the two backends agree -------------------------------------------------------

def _backend_pair(dtype, act, loss_case, optimizer_factory, seed=5):
    return [model_for(loss_case, backend, dtype, act, n_in=5, k=3, seed=seed,
                      optimizer=optimizer_factory(), width=(64, 64))
            for backend in BACKENDS]


@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_backends_agree(act, loss_case, dtype, threads):
    # 128 rows through 5-64-64-3: enough work for two native threads
    rng = np.random.default_rng(11)
    X, y = data_for(loss_case, rng, n=128, n_in=5, k=3)
    native, numpy = _backend_pair(dtype, act, loss_case, lambda: fm.SGD(lr=0.1, momentum=0.9))
    for a, b in zip(native.get_weights(), numpy.get_weights()):
        np.testing.assert_array_equal(a, b)  # same seed, same initial weights
    assert_close(native.predict(X), numpy.predict(X), dtype)
    loss_n, grads_n = native.loss_and_gradients(X, y)
    loss_p, grads_p = numpy.loss_and_gradients(X, y)
    np.testing.assert_allclose(loss_n, loss_p, rtol=rtol_for(dtype))
    for i, (gn, gp) in enumerate(zip(grads_n, grads_p)):
        assert_close(gn, gp, dtype, err_msg=f"gradient {i}")
    for step in range(1, 4):
        np.testing.assert_allclose(native.train_step(X, y), numpy.train_step(X, y),
                                   rtol=rtol_for(dtype))
        for i, (wn, wp) in enumerate(zip(native.get_weights(), numpy.get_weights())):
            assert_close(wn, wp, dtype, err_msg=f"weights {i} after {step} train_step(s)")


@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_backends_agree_after_fit(optimizer, dtype):
    rng = np.random.default_rng(2)
    X, y = classification_data(rng, n=100, n_in=5)
    factory = {"adam": lambda: fm.Adam(lr=0.01),
               "nesterov": lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True)}[optimizer]
    native, numpy = _backend_pair(dtype, "tanh", "sce_labels", factory)
    # same seed: same shuffles
    h_n = native.fit(X, y, epochs=2, batch_size=16, verbose=0)
    h_p = numpy.fit(X, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(h_n.history["loss"], h_p.history["loss"], rtol=rtol_for(dtype))
    for i, (wn, wp) in enumerate(zip(native.get_weights(), numpy.get_weights())):
        assert_close(wn, wp, dtype, err_msg=f"weights {i}")


# ---- threads and repeatability ------------------------------------------------------

def _train_twice(backend, dtype, n_threads, seed=0, epochs=3):
    rng = np.random.default_rng(0)
    X, y = classification_data(rng, n=300, n_in=5)
    with fm.threads(n_threads):
        model = make_model(backend, dtype, hidden=((64, "relu"), (64, "tanh")), n_in=5,
                           optimizer=fm.Adam(lr=0.01), seed=seed)
        history = model.fit(X, y, epochs=epochs, batch_size=128, shuffle=True, verbose=0)
        return model.get_weights(), history.history["loss"], model.predict(X)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_seed_same_threads_is_bit_identical(backend, dtype, n_threads):
    w1, loss1, p1 = _train_twice(backend, dtype, n_threads)
    w2, loss2, p2 = _train_twice(backend, dtype, n_threads)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loss1, loss2)
    np.testing.assert_array_equal(p1, p2)


def test_different_seeds_differ(backend):
    w1, _, _ = _train_twice(backend, "float64", 1, seed=0, epochs=1)
    w2, _, _ = _train_twice(backend, "float64", 1, seed=1, epochs=1)
    assert not np.array_equal(w1[0], w2[0])


def test_one_and_two_threads_agree(dtype):
    w1, loss1, p1 = _train_twice("native", dtype, 1)
    w2, loss2, p2 = _train_twice("native", dtype, 2)
    np.testing.assert_allclose(loss1, loss2, rtol=rtol_for(dtype))
    for i, (a, b) in enumerate(zip(w1, w2)):
        assert_close(a, b, dtype, err_msg=f"weights {i}")
    assert_close(p1, p2, dtype)


# ---- learning ------------------------------------------------------------------------

def test_learns_xor(backend):
    X, y = fm.datasets.xor()
    model = make_model(backend, "float32", hidden=((8, "tanh"),), n_in=2, n_out=2,
                       optimizer=fm.Adam(lr=0.05), metrics=["accuracy"])
    history = model.fit(X, y, epochs=300, batch_size=4, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    np.testing.assert_array_equal(model.predict(X).argmax(axis=1), y)
    assert model.evaluate(X, y)["loss"] < 0.05


def test_learns_spiral(backend):
    X, y = fm.datasets.spiral(seed=0)
    model = make_model(backend, "float32", hidden=((64, "relu"), (64, "relu")), n_in=2,
                       optimizer=fm.Adam(lr=0.01))
    model.fit(X, y, epochs=200, batch_size=32, verbose=0)
    model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=0.01), metrics=["accuracy"])
    assert model.evaluate(X, y)["accuracy"] >= 0.98
    assert np.mean(model.predict(X).argmax(axis=1) == y) >= 0.98


def test_single_output_regression_fits_square(backend):
    X, y = fm.datasets.square_regression(n_samples=200, noise=0.0, seed=0)
    model = make_model(backend, "float32", hidden=((32, "tanh"),), n_in=1, n_out=1, loss="mse",
                       optimizer=fm.Adam(lr=0.01))
    history = model.fit(X, y, epochs=200, batch_size=32, verbose=0)
    pred = model.predict(X)
    assert pred.shape == (200, 1)
    residual = pred[:, 0] - y
    assert np.mean(residual ** 2) < 0.05 * np.var(y)  # R^2 > 0.95
    assert np.max(np.abs(residual)) < 0.2
    assert history.history["loss"][-1] < history.history["loss"][0] / 10


# ---- weights, predict, evaluate -------------------------------------------------------

def test_set_weights_into_fresh_model(backend, dtype, rng):
    X, y = classification_data(rng)
    trained = make_model(backend, dtype, optimizer=fm.Adam(lr=0.05))
    trained.fit(X, y, epochs=3, batch_size=8, verbose=0)
    fresh = make_model(backend, dtype, seed=123)
    assert not np.array_equal(fresh.predict(X), trained.predict(X))
    fresh.set_weights(trained.get_weights())
    np.testing.assert_array_equal(fresh.predict(X), trained.predict(X))
    assert fresh.evaluate(X, y) == trained.evaluate(X, y)
    # across backends: equal to rounding
    other = make_model("numpy" if backend == "native" else "native", dtype, seed=9)
    other.set_weights(trained.get_weights())
    assert_close(other.predict(X), trained.predict(X), dtype)


def test_get_weights_returns_copies_in_order(backend, dtype):
    model = make_model(backend, dtype, hidden=((7, "relu"),), n_in=4, n_out=3)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 7), (7,), (7, 3), (3,)]
    assert all(w.dtype == dtype for w in weights)
    np.testing.assert_array_equal(weights[1], 0)  # biases start at zero
    np.testing.assert_array_equal(weights[3], 0)
    weights[0][...] = 99
    assert not np.any(model.get_weights()[0] == 99)
    assert model.count_params() == 4 * 7 + 7 + 7 * 3 + 3


def test_set_weights_converts_and_copies(backend):
    model = make_model(backend, "float32", hidden=((2, "tanh"),), n_in=2, n_out=2)
    new = [np.arange(4).reshape(2, 2), [0.5, -0.5], np.eye(2), np.array([1, 2], dtype=np.int32)]
    model.set_weights(new)
    got = model.get_weights()
    for g, w in zip(got, new):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, np.asarray(w, dtype=np.float32))
    new[0][0, 0] = 100
    assert model.get_weights()[0][0, 0] == 0


def test_predict_gives_probabilities(backend, dtype, threads, rng):
    model = make_model(backend, dtype, hidden=((64, "relu"),), n_in=5, n_out=4)
    X = 5 * rng.standard_normal((300, 5))  # several predict blocks and threads
    proba = model.predict(X)
    assert proba.shape == (300, 4)
    assert proba.dtype == dtype
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1, dtype=np.float64), 1.0,
                               atol=1e-6 if dtype == np.float32 else 1e-12)
    # consistent row by row and with the training-time forward pass
    np.testing.assert_allclose(model.predict(X[:1]), proba[:1], rtol=rtol_for(dtype))
    W1, b1, W2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    logits = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert_close(proba, expected, dtype)


def test_predict_mse_returns_last_activation(backend, dtype, rng):
    model = make_model(backend, dtype, hidden=((6, "tanh"),), n_in=3, n_out=2, loss="mse",
                       last_activation="sigmoid")
    X = rng.standard_normal((10, 3))
    W1, b1, W2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    expected = 1 / (1 + np.exp(-(np.tanh(X @ W1 + b1) @ W2 + b2)))
    assert_close(model.predict(X), expected, dtype)


def test_evaluate_keys(backend, rng):
    X, y = classification_data(rng)
    plain = make_model(backend)
    result = plain.evaluate(X, y)
    assert set(result) == {"loss"}
    assert isinstance(result["loss"], float) and result["loss"] > 0
    with_metric = make_model(backend, metrics=["accuracy"])
    result = with_metric.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(
        np.mean(with_metric.predict(X).argmax(axis=1) == y))
    # soft targets: accuracy against their argmax
    T = soft_targets(rng, len(y), 3)
    assert with_metric.evaluate(X, T)["accuracy"] == pytest.approx(
        np.mean(with_metric.predict(X).argmax(axis=1) == T.argmax(axis=1)))
    mse = make_model(backend, loss="mse")
    assert set(mse.evaluate(X, rng.standard_normal((len(y), 3)))) == {"loss"}


def test_train_step_returns_the_loss_before_the_step(backend, dtype, rng):
    X, y = classification_data(rng)
    model = make_model(backend, dtype, optimizer=fm.Adam(lr=0.05))
    losses = []
    for _ in range(20):
        expected = model.evaluate(X, y)["loss"]
        loss = model.train_step(X, y)
        assert isinstance(loss, float)
        np.testing.assert_allclose(loss, expected, rtol=rtol_for(dtype))
        losses.append(loss)
    assert losses[-1] < losses[0]


def test_history(backend, rng):
    X, y = classification_data(rng, n=50)
    model = make_model(backend, metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    assert isinstance(history, fm.History)
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    # the last 20% (10 samples) is held out
    final = model.evaluate(X[-10:], y[-10:])
    assert history.history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert history.history["accuracy"][-1] == pytest.approx(
        model.evaluate(X[:-10], y[:-10])["accuracy"])

    X_val, y_val = classification_data(rng, n=15)
    model = make_model(backend)
    history = model.fit(X, y, epochs=2, batch_size=8, verbose=0, validation_data=(X_val, y_val))
    assert set(history.history) == {"loss", "val_loss"}
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(X_val, y_val)["loss"],
                                                            rel=1e-6)
    model = make_model(backend)
    history = model.fit(X, y, epochs=2, verbose=0)
    assert set(history.history) == {"loss"}


def test_fit_loss_is_mean_of_batch_losses(backend, rng):
    # one batch per epoch, no shuffling: the epoch's loss is the loss before its step
    X, y = classification_data(rng, n=30)
    model = make_model(backend, "float64", optimizer=fm.SGD(lr=0.2))
    reference = make_model(backend, "float64", optimizer=fm.SGD(lr=0.2))
    history = model.fit(X, y, epochs=3, batch_size=64, shuffle=False, verbose=0)
    expected = [reference.train_step(X, y) for _ in range(3)]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-12)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_fit_zero_epochs_changes_nothing(backend, rng):
    X, y = classification_data(rng)
    model = make_model(backend)
    before = model.get_weights()
    history = model.fit(X, y, epochs=0, verbose=0)
    assert history.history == {} and history.epoch == []
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_verbose_prints_one_line_per_epoch(backend, rng, capsys):
    X, y = classification_data(rng)
    make_model(backend).fit(X, y, epochs=2, verbose=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "loss" in lines[0]


def test_model_builds_on_first_fit(backend, rng):
    X, y = classification_data(rng, n_in=4)
    model = fm.Sequential([fm.Dense(5, activation="relu"), fm.Dense(3)], backend=backend)
    model.compile(optimizer="adam")
    with pytest.raises(RuntimeError, match="not built"):
        model.predict(X)
    with pytest.raises(RuntimeError, match="not built"):
        model.get_weights()
    model.fit(X, y, epochs=1, verbose=0)
    assert model.input_dim == 4
    assert model.predict(X).shape == (len(X), 3)


def test_train_before_compile_raises(backend, rng):
    X, y = classification_data(rng)
    model = fm.Sequential([fm.Dense(3)], input_dim=3, backend=backend)
    for call in (lambda: model.fit(X, y, verbose=0), lambda: model.train_step(X, y),
                 lambda: model.predict(X), lambda: model.evaluate(X, y)):
        with pytest.raises(RuntimeError, match="compile"):
            call()


# ---- buffers grow -----------------------------------------------------------------

def test_larger_batch_after_smaller_one(backend, dtype, rng):
    X, y = classification_data(rng, n=200)
    grown = make_model(backend, dtype, optimizer=fm.SGD(lr=0.1, momentum=0.5))
    fresh = make_model(backend, dtype, optimizer=fm.SGD(lr=0.1, momentum=0.5))
    for sizes_seen in ([3, 1, 200, 50], [200, 3, 50]):
        for n in sizes_seen:
            loss_grown = grown.train_step(X[:n], y[:n])
            loss_fresh = fresh.train_step(X[:n], y[:n])
            assert loss_grown == loss_fresh
    fresh2 = make_model(backend, dtype)
    fresh2.set_weights(grown.get_weights())
    loss_a, grads_a = grown.loss_and_gradients(X, y)
    loss_b, grads_b = fresh2.loss_and_gradients(X, y)
    assert loss_a == loss_b
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_array_equal(a, b)
    # fit with a batch larger than the data, then with small batches
    grown.fit(X[:10], y[:10], epochs=1, batch_size=512, verbose=0)
    grown.fit(X, y, epochs=1, batch_size=7, verbose=0)
    assert weights_finite(grown)


# ---- input layouts and types ----------------------------------------------------------

def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _layouts(X):
    """The same float32-representable data in many layouts and types."""
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    tall = np.zeros((2 * X.shape[0], X.shape[1]))
    tall[::2] = X
    return {
        "C": np.ascontiguousarray(X),
        "fortran": np.asfortranarray(X),
        "strided_columns": wide[:, ::2],
        "strided_rows": tall[::2],
        "read_only": _read_only(X),
        "float32": X.astype(np.float32),
        "read_only_float32": _read_only(X.astype(np.float32)),  # reaches the plan uncopied
        "list": X.tolist(),
    }


LAYOUTS = list(_layouts(np.zeros((2, 2))))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_layouts_give_the_same_results(backend, layout):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 4)).astype(np.float32).astype(np.float64)
    y = rng.integers(0, 3, size=60)
    X_layout = _layouts(X)[layout]
    y_layout = {"list": y.tolist(), "read_only": _read_only(y),
                "read_only_float32": _read_only(y),
                "strided_rows": np.repeat(y, 2)[::2]}.get(layout, y)

    def run(X, y):
        model = make_model(backend, "float32", hidden=((16, "relu"),), n_in=4,
                           optimizer=fm.Adam(lr=0.01))
        out = {"predict": model.predict(X), "evaluate": model.evaluate(X, y),
               "step": model.train_step(X, y)}
        out["fit"] = model.fit(X, y, epochs=2, batch_size=16, verbose=0).history["loss"]
        out["weights"] = model.get_weights()
        out["after"] = model.predict(X)
        return out

    expected = run(X, y)
    got = run(X_layout, y_layout)
    np.testing.assert_array_equal(got["predict"], expected["predict"])
    assert got["evaluate"] == expected["evaluate"]
    assert got["step"] == expected["step"]
    np.testing.assert_array_equal(got["fit"], expected["fit"])
    for a, b in zip(got["weights"], expected["weights"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got["after"], expected["after"])
    if layout == "read_only":
        assert not X_layout.flags.writeable  # the input was not modified or unlocked


@pytest.mark.parametrize("y_form", ["int32", "uint8", "float_labels", "list", "onehot_float32"])
def test_label_forms_give_the_same_results(backend, y_form, rng):
    X, y = classification_data(rng)
    forms = {"int32": y.astype(np.int32), "uint8": y.astype(np.uint8),
             "float_labels": y.astype(np.float64), "list": y.tolist(),
             "onehot_float32": np.eye(3, dtype=np.float32)[y]}
    a, b = make_model(backend), make_model(backend)
    assert a.train_step(X, y) == pytest.approx(b.train_step(X, forms[y_form]), rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_regression_targets_1d_and_2d(backend, rng):
    X = rng.standard_normal((30, 2))
    y = rng.standard_normal(30)
    a = make_model(backend, n_in=2, n_out=1, loss="mse")
    b = make_model(backend, n_in=2, n_out=1, loss="mse")
    assert a.train_step(X, y) == b.train_step(X, y.reshape(-1, 1))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


# ---- bad input ------------------------------------------------------------------------

def _bad_X_cases():
    ok = np.zeros((4, 3))
    nan, inf = ok.copy(), ok.copy()
    nan[1, 2] = np.nan
    inf[0, 0] = -np.inf
    return {
        "wrong_features": (np.zeros((4, 2)), "2 features, but the model expects 3"),
        "1d": (np.zeros(3), "2-D.*reshape"),
        "3d": (np.zeros((4, 3, 1)), "2-D"),
        "empty": (np.zeros((0, 3)), "empty"),
        "no_features": (np.zeros((4, 0)), "0 features"),
        "nan": (nan, "NaN or infinity"),
        "inf": (inf, "NaN or infinity"),
        "overflow_to_float32": (np.full((4, 3), 1e300), "NaN or infinity"),
        "string": (np.array([["a", "b", "c"]] * 4), "string"),
        "complex": (ok.astype(np.complex128), "complex"),
        "bool": (ok.astype(bool), "bool"),
        "object": (np.array([[None, 1, 2]] * 4, dtype=object), "object"),
        "ragged_list": ([[1, 2, 3], [4, 5]], None),
    }


BAD_X = _bad_X_cases()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("method", ["fit", "train_step", "predict", "evaluate",
                                    "loss_and_gradients"])
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X_raises(backend, case, method):
    X, message = BAD_X[case]
    model = make_model(backend, "float32")
    before = model.get_weights()
    y = np.zeros(4, dtype=np.int64)
    call = {"fit": lambda: model.fit(X, y, verbose=0),
            "train_step": lambda: model.train_step(X, y),
            "predict": lambda: model.predict(X),
            "evaluate": lambda: model.evaluate(X, y),
            "loss_and_gradients": lambda: model.loss_and_gradients(X, y)}[method]
    with pytest.raises(ValueError, match=message):
        call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _bad_y_cases():
    return {
        "out_of_range": (np.array([0, 1, 3, 2]), "outside \\[0, 3\\)"),
        "negative": (np.array([0, -1, 1, 2]), "outside \\[0, 3\\)"),
        "float_out_of_range": (np.array([0.0, 1.0, 7.0, 2.0]), "outside \\[0, 3\\)"),
        "non_integer": (np.array([0.0, 1.5, 1.0, 2.0]), "non-integer"),
        "nan_labels": (np.array([0.0, np.nan, 1.0, 2.0]), "NaN or infinity"),
        "inf_targets": (np.array([[1.0, 0, 0]] * 3 + [[np.inf, 0, 0]]), "NaN or infinity"),
        "wrong_length": (np.array([0, 1, 2]), "3 samples"),
        "wrong_targets_shape": (np.zeros((4, 2)), "shape \\(4, 3\\)"),
        "2d_labels": (np.zeros((4, 1), dtype=np.int64), "shape"),
        "bool": (np.array([True, False, True, False]), "bool"),
        "string": (np.array(["a", "b", "a", "b"]), "string"),
        "complex": (np.zeros(4, dtype=complex), "complex"),
        "3d": (np.zeros((4, 3, 1)), "1-D class labels or 2-D targets"),
    }


BAD_Y = _bad_y_cases()


@pytest.mark.parametrize("method", ["fit", "train_step", "evaluate", "loss_and_gradients"])
@pytest.mark.parametrize("case", list(BAD_Y))
def test_bad_labels_raise(backend, case, method):
    y, message = BAD_Y[case]
    model = make_model(backend)
    before = model.get_weights()
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(X, y, **({"verbose": 0} if method == "fit" else {}))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("y, label", [(np.array([0, 1, 3, 2]), "3"),
                                      (np.array([0, -1, 1, 2]), "-1"),
                                      (np.array([0.0, 1.0, 7.0, 2.0]), "7")])
def test_label_error_names_the_label_plainly(y, label):
    # the message is for people: "label 3", not NumPy's repr "label np.int64(3)"
    model = make_model()
    with pytest.raises(ValueError) as info:
        model.train_step(np.zeros((4, 3)), y)
    assert f"label {label} outside [0, 3)" in str(info.value) or \
        f"label {label}.0 outside [0, 3)" in str(info.value), str(info.value)


@pytest.mark.parametrize("y", [np.array([1.0, np.nan, 0, 0]), np.zeros((4, 2)),
                               np.array([[1.0], [2.0], [np.inf], [0.0]])])
def test_bad_regression_targets_raise(backend, y):
    model = make_model(backend, n_out=1, loss="mse")
    with pytest.raises(ValueError, match="NaN or infinity|shape"):
        model.train_step(np.zeros((4, 3)), y)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"), ({"batch_size": True}, "batch_size"),
    ({"epochs": -1}, "epochs"), ({"epochs": 1.0}, "epochs"),
    ({"validation_split": 1.0}, "validation_split"), ({"validation_split": -0.1},
                                                      "validation_split"),
    ({"validation_split": 0.001}, "validation_split"),
    ({"validation_data": (np.zeros((2, 3)),)}, "validation_data"),
    ({"validation_data": (np.zeros((2, 4)), np.zeros(2, dtype=int))}, "features"),
    ({"validation_data": (np.zeros((2, 3)), np.array([0, 5]))}, "outside"),
])
def test_bad_fit_arguments_raise(backend, kwargs, message, rng):
    X, y = classification_data(rng, n=20)
    model = make_model(backend)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, verbose=0, **kwargs)


def test_bad_set_weights_raise(backend):
    model = make_model(backend, hidden=((4, "tanh"),), n_in=3, n_out=2)
    good = model.get_weights()
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(good[:3])
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(good + [np.zeros(2)])
    for i in range(4):
        bad = [w.copy() for w in good]
        bad[i] = np.zeros(bad[i].shape[::-1] if bad[i].ndim == 2 else (bad[i].size + 1,))
        with pytest.raises(ValueError, match=rf"weights\[{i}\] has shape"):
            model.set_weights(bad)
    bad = [w.copy() for w in good]
    bad[2] = bad[2].T  # (2, 4) instead of (4, 2)
    with pytest.raises(ValueError, match="shape"):
        model.set_weights(bad)
    bad = [w.copy() for w in good]
    bad[1][0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.set_weights(bad)
    bad = [w.copy() for w in good]
    bad[0] = bad[0].astype(complex)
    with pytest.raises(ValueError, match="dtype"):
        model.set_weights(bad)
    # nothing was written by the failed calls
    for a, b in zip(good, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("last", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_softmax_cross_entropy_needs_logits(backend, last):
    model = fm.Sequential([fm.Dense(4, activation="tanh"), fm.Dense(3, activation=last)],
                          input_dim=2, backend=backend)
    with pytest.raises(ValueError, match="logits"):
        model.compile(loss="softmax_cross_entropy")
    model.compile(loss="mse")  # fine for regression


@pytest.mark.parametrize("args, message", [
    ({"loss": "cosine_similarity"}, "unknown loss"),
    ({"optimizer": "adadelta"}, "unknown optimizer"),
    ({"metrics": ["f1"]}, "unknown metric"),
    ({"loss": "mse", "metrics": ["accuracy"]}, "classification loss"),
])
def test_bad_compile_arguments_raise(backend, args, message):
    model = fm.Sequential([fm.Dense(3)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match=message):
        model.compile(**args)


def test_softmax_cross_entropy_needs_two_units(backend):
    model = fm.Sequential([fm.Dense(1)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match=">= 2 units"):
        model.compile(loss="softmax_cross_entropy")


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": []}, "non-empty"),
    ({"layers": ["dense"]}, "Dense"),
    ({"dtype": "float16"}, "float32 or float64"),
    ({"dtype": "int32"}, "float32 or float64"),
    ({"backend": "cuda"}, "backend"),
    ({"input_dim": 0}, "input_dim"),
])
def test_bad_model_arguments_raise(kwargs, message):
    arguments = {"layers": [fm.Dense(2)], "input_dim": 2}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fm.Sequential(**arguments)


@pytest.mark.parametrize("kwargs", [{"units": 0}, {"units": -2}, {"units": 2.0},
                                    {"units": True},
                                    {"units": 3, "activation": "no_such_activation"},
                                    {"units": 3, "init": "no_such_initializer"}])
def test_bad_dense_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        fm.Dense(**kwargs)


# ---- divergence ----------------------------------------------------------------------

DIVERGENT_ACTS = ["relu", "tanh"]
ignore_overflow_warnings = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@ignore_overflow_warnings
@pytest.mark.parametrize("act", DIVERGENT_ACTS)
def test_diverging_train_step_raises_and_leaves_finite_weights(backend, dtype, act):
    X, labels = fm.datasets.spiral(seed=0)
    y = np.eye(3)[labels] * 100
    model = make_model(backend, dtype, hidden=((16, act),), n_in=2, loss="mse",
                       optimizer=fm.SGD(lr=1e6))
    with pytest.raises(FloatingPointError, match="learning rate"):
        for _ in range(200):
            model.train_step(X, y)
            # a step that returned normally must have left usable weights
            assert weights_finite(model), "train_step returned a finite loss but left " \
                                          "non-finite weights"
    assert weights_finite(model)
    predictions = model.predict(X)
    assert np.isfinite(predictions).all()


@ignore_overflow_warnings
@pytest.mark.parametrize("act", DIVERGENT_ACTS)
def test_diverging_fit_raises_and_leaves_finite_weights(backend, dtype, act):
    X, labels = fm.datasets.spiral(seed=0)
    y = np.eye(3)[labels] * 100
    model = make_model(backend, dtype, hidden=((16, act),), n_in=2, loss="mse",
                       optimizer=fm.SGD(lr=1e6))
    with pytest.raises(FloatingPointError, match="learning rate"):
        model.fit(X, y, epochs=50, batch_size=300, verbose=0)
    assert weights_finite(model)


@ignore_overflow_warnings
def test_diverging_adam_on_cross_entropy_stays_finite_or_raises(backend):
    # softmax cross-entropy has bounded gradients: a huge lr must not produce NaN silently
    X, y = fm.datasets.spiral(seed=0)
    model = make_model(backend, "float32", hidden=((16, "relu"),), n_in=2,
                       optimizer=fm.Adam(lr=1e3))
    try:
        model.fit(X, y, epochs=5, batch_size=32, verbose=0)
    except FloatingPointError:
        pass
    assert weights_finite(model)


# ---- the compiled plan (the seam data-parallel training builds on) ---------------------

def test_plan_twin_offers_the_same_methods():
    from fastmlp._kernels.plan import Plan as NativePlan
    from fastmlp._reference import Plan as TwinPlan
    public = {name for name in dir(TwinPlan) if not name.startswith("_")}
    assert public <= set(dir(NativePlan)), public - set(dir(NativePlan))


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_forward_backward_then_apply_update_equals_train_step(backend, dtype, optimizer, rng):
    factory = {"adam": lambda: fm.Adam(lr=0.01), "momentum": lambda: fm.SGD(0.1, momentum=0.9)}
    X, y = classification_data(rng, n=64)
    fused = make_model(backend, dtype, optimizer=factory[optimizer]())
    split = make_model(backend, dtype, optimizer=factory[optimizer]())
    X32 = np.ascontiguousarray(X, dtype=dtype)
    for _ in range(3):
        loss_fused = fused.train_step(X, y)
        loss_split = split._plan.forward_backward(X32, y)
        split._plan.apply_update()
        np.testing.assert_allclose(loss_split, loss_fused, rtol=rtol_for(dtype))
    assert fused._plan.step == split._plan.step == 3
    for a, b in zip(fused.get_weights(), split.get_weights()):
        assert_close(a, b, dtype)


def test_plan_sample_weights(dtype, rng):
    X, y = classification_data(rng, n=50)
    X = np.ascontiguousarray(X, dtype=dtype)
    w = rng.uniform(0.2, 2.0, size=50).astype(dtype)
    results = {}
    for backend in BACKENDS:
        model = make_model(backend, dtype)
        loss_w = model._plan.forward_backward(X, y, w)
        grads_w = [g.copy() for g in model._views(model.grads)]
        loss_1 = model._plan.forward_backward(X, y, np.ones(50, dtype=dtype))
        loss_none = model._plan.forward_backward(X, y)
        np.testing.assert_allclose(loss_1, loss_none, rtol=1e-6)
        results[backend] = (loss_w, grads_w)
    np.testing.assert_allclose(results["native"][0], results["numpy"][0], rtol=rtol_for(dtype))
    for a, b in zip(results["native"][1], results["numpy"][1]):
        assert_close(a, b, dtype)
