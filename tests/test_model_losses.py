"""Every loss through Sequential: gradients of the whole model, backend agreement,
targets, predict(), sample and class weights, and learning."""
import numpy as np
import pytest

import fastmlp as fm

from conftest import BACKENDS, assert_close

LOSSES = fm.losses.LOSSES
LOGIT_LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "kl_divergence")
CLASS_WEIGHTED = ("softmax_cross_entropy", "hinge", "kl_divergence")


def compile_loss(name):
    """What compile() gets for `name`: a non-default parameter where there is one."""
    return {"huber": fm.losses.huber(delta=0.5), "mape": fm.losses.mape(epsilon=0.1)}.get(name, name)


def make(name, backend="native", dtype="float64", n_in=3, k=4, hidden=((6, "tanh"),), seed=1,
         optimizer=None, last_activation=None, **compile_args):
    layers = [fm.Dense(units, activation=act) for units, act in hidden]
    layers.append(fm.Dense(k, activation=last_activation))
    model = fm.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed, backend=backend)
    model.compile(loss=compile_loss(name), optimizer=optimizer or fm.SGD(lr=0.05),
                  **compile_args)
    return model


def targets_for(name, rng, n, k):
    """Targets of the kind loss `name` takes."""
    if name in ("softmax_cross_entropy", "hinge"):
        return rng.integers(0, k, size=n)
    if name == "kl_divergence":
        T = rng.random((n, k)) + 0.05
        T[:, 0] = 0.0  # a zero target: 0 log 0
        return T / T.sum(axis=1, keepdims=True)
    if name == "binary_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(float)
    if name == "poisson":
        return rng.poisson(1.5, size=(n, k)).astype(float)
    if name == "mape":
        return rng.uniform(0.5, 2.0, size=(n, k)) * rng.choice([-1, 1], size=(n, k))
    return rng.standard_normal((n, k))


def numeric_gradients(model, X, y, **weights):
    weights_now = model.get_weights()
    h = 1e-6
    result = []
    for W in weights_now:
        numeric = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + h
            model.set_weights(weights_now)
            up = model.loss_and_gradients(X, y, **weights)[0]
            W[idx] = old - h
            model.set_weights(weights_now)
            down = model.loss_and_gradients(X, y, **weights)[0]
            W[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        result.append(numeric)
    model.set_weights(weights_now)
    return result


# ---- gradients of the whole model ---------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", LOSSES)
def test_model_gradients_match_finite_differences(backend, name, weighted):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((9, 3))
    y = targets_for(name, rng, 9, 4)
    model = make(name, backend)
    weights = {}
    if weighted:
        weights["sample_weight"] = rng.uniform(0.2, 2.0, size=9)
        if name in CLASS_WEIGHTED:
            weights["class_weight"] = {0: 0.5, 2: 3.0}
    loss, grads = model.loss_and_gradients(X, y, **weights)
    assert np.isfinite(loss)
    for i, (g, numeric) in enumerate(zip(grads, numeric_gradients(model, X, y, **weights))):
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8,
                                   err_msg=f"parameter array {i} ({name})")


@pytest.mark.parametrize("name", LOSSES)
def test_model_backends_agree(name, dtype, threads):
    # 128 rows through 5-64-64-3: enough work for two native threads
    rng = np.random.default_rng(11)
    X = rng.standard_normal((128, 5))
    y = targets_for(name, rng, 128, 3)
    w = rng.uniform(0.5, 1.5, size=128)
    models = [make(name, backend, dtype, n_in=5, k=3, hidden=((64, "relu"), (64, "tanh")),
                   seed=5, optimizer=fm.SGD(lr=0.01, momentum=0.9)) for backend in BACKENDS]
    native, numpy = models
    assert_close(native.predict(X), numpy.predict(X), dtype)
    loss_n, grads_n = native.loss_and_gradients(X, y, sample_weight=w)
    loss_p, grads_p = numpy.loss_and_gradients(X, y, sample_weight=w)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(loss_n, loss_p, rtol=rtol)
    for i, (gn, gp) in enumerate(zip(grads_n, grads_p)):
        assert_close(gn, gp, dtype, err_msg=f"gradient {i}")
    for step in range(3):
        np.testing.assert_allclose(native.train_step(X, y, sample_weight=w),
                                   numpy.train_step(X, y, sample_weight=w), rtol=rtol)
    for i, (wn, wp) in enumerate(zip(native.get_weights(), numpy.get_weights())):
        assert_close(wn, wp, dtype, err_msg=f"weights {i} after 3 steps")
    h_n = native.fit(X, y, epochs=2, batch_size=32, verbose=0, sample_weight=w)
    h_p = numpy.fit(X, y, epochs=2, batch_size=32, verbose=0, sample_weight=w)
    np.testing.assert_allclose(h_n.history["loss"], h_p.history["loss"], rtol=rtol)


@pytest.mark.parametrize("name", LOSSES)
def test_evaluate_and_train_step_report_the_same_loss(backend, name, rng):
    X = rng.standard_normal((20, 3))
    y = targets_for(name, rng, 20, 4)
    w = rng.uniform(0.0, 2.0, size=20)
    model = make(name, backend)
    expected = model.evaluate(X, y, sample_weight=w)["loss"]
    np.testing.assert_allclose(model.loss_and_gradients(X, y, sample_weight=w)[0], expected,
                               rtol=1e-12)
    np.testing.assert_allclose(model.train_step(X, y, sample_weight=w), expected, rtol=1e-12)


# ---- predict ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", LOSSES)
def test_predict_applies_the_loss_link(backend, name, dtype, rng):
    model = fm.Sequential([fm.Dense(3)], input_dim=4, dtype=dtype, backend=backend)
    model.compile(loss=compile_loss(name))
    X = 3 * rng.standard_normal((50, 4))
    W, b = model.get_weights()
    Z = X @ W.astype(np.float64) + b
    if name in ("softmax_cross_entropy", "kl_divergence"):
        expected = np.exp(Z - Z.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
    elif name == "binary_cross_entropy":
        expected = 1 / (1 + np.exp(-Z))
    elif name == "poisson":
        expected = np.exp(Z)
    else:
        expected = Z
    assert_close(model.predict(X), expected, dtype)


# ---- targets -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, y, message", [
    ("binary_cross_entropy", np.array([[0.0, 1.5]] * 4), "\\[0, 1\\]"),
    ("binary_cross_entropy", np.array([[0.0, -0.5]] * 4), "\\[0, 1\\]"),
    ("binary_cross_entropy", np.array([0, 1, 1, 0]), "shape"),
    ("kl_divergence", np.array([0, 1, 1, 0]), "distributions"),
    ("kl_divergence", np.array([[1.5, -0.5]] * 4), "negative"),
    ("hinge", np.eye(2)[[0, 1, 1, 0]], "integer class labels"),
    ("hinge", np.array([0, 1, 2, 0]), "outside \\[0, 2\\)"),
    ("hinge", np.array([0, 0.5, 1, 0]), "non-integer"),
    ("poisson", np.array([[1.0, -1.0]] * 4), ">= 0"),
    ("poisson", np.array([[1.0, np.nan]] * 4), "NaN"),
    ("huber", np.array([[1.0, np.inf]] * 4), "NaN or infinity"),
    ("mae", np.zeros((4, 3)), "shape"),
])
def test_bad_targets_raise(backend, name, y, message):
    model = make(name, backend, n_in=2, k=2)
    before = model.get_weights()
    for call in (lambda: model.train_step(np.zeros((4, 2)), y),
                 lambda: model.fit(np.zeros((4, 2)), y, verbose=0),
                 lambda: model.evaluate(np.zeros((4, 2)), y),
                 lambda: model.loss_and_gradients(np.zeros((4, 2)), y)):
        with pytest.raises(ValueError, match=message):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_binary_targets_may_be_bool_or_one_column(backend, rng):
    X = rng.standard_normal((10, 3))
    multi = make("binary_cross_entropy", backend, k=2)
    T = rng.random((10, 2)) < 0.5
    assert multi.evaluate(X, T)["loss"] == multi.evaluate(X, T.astype(float))["loss"]
    single = make("binary_cross_entropy", backend, k=1)
    t = (rng.random(10) < 0.5).astype(int)
    assert single.evaluate(X, t)["loss"] == single.evaluate(X, t[:, None].astype(float))["loss"]


@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_logit_losses_need_a_linear_last_layer(backend, name):
    model = fm.Sequential([fm.Dense(3, activation="sigmoid")], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match="logits"):
        model.compile(loss=name)


@pytest.mark.parametrize("name", ["hinge", "kl_divergence", "softmax_cross_entropy"])
def test_multiclass_losses_need_two_units(backend, name):
    model = fm.Sequential([fm.Dense(1)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match=">= 2 units"):
        model.compile(loss=name)


def test_accuracy_metric_per_loss(rng):
    X = rng.standard_normal((30, 3))
    for name in ("softmax_cross_entropy", "hinge", "kl_divergence"):
        model = make(name, metrics=["accuracy"])
        y = targets_for(name, rng, 30, 4)
        truth = y if y.ndim == 1 else y.argmax(axis=1)
        expected = np.mean(model.predict(X).argmax(axis=1) == truth)
        assert model.evaluate(X, y)["accuracy"] == pytest.approx(expected)
    model = make("binary_cross_entropy", metrics=["accuracy"])
    T = (rng.random((30, 4)) < 0.5).astype(float)
    expected = np.mean((model.predict(X) > 0.5) == (T > 0.5))
    assert model.evaluate(X, T)["accuracy"] == pytest.approx(expected)
    for name in ("mae", "huber", "poisson"):
        with pytest.raises(ValueError, match="classification loss"):
            make(name, metrics=["accuracy"])


# ---- sample and class weights -------------------------------------------------------------

@pytest.mark.parametrize("name", LOSSES)
def test_sample_weight_counts_a_sample_that_many_times(backend, name, rng):
    # integer weights: loss * n equals the loss * n' of the data with rows repeated
    X = rng.standard_normal((8, 3))
    y = targets_for(name, rng, 8, 4)
    w = np.array([0, 1, 2, 1, 3, 1, 1, 0])
    model = make(name, backend)
    loss_w, grads_w = model.loss_and_gradients(X, y, sample_weight=w)
    rows = np.repeat(np.arange(8), w)
    loss_r, grads_r = model.loss_and_gradients(X[rows], y[rows])
    np.testing.assert_allclose(loss_w * 8, loss_r * len(rows), rtol=1e-12)
    for gw, gr in zip(grads_w, grads_r):
        np.testing.assert_allclose(gw * 8, gr * len(rows), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", CLASS_WEIGHTED + ("binary_cross_entropy",))
def test_class_weight_is_a_sample_weight_per_class(backend, name, rng):
    k = 1 if name == "binary_cross_entropy" else 3
    X = rng.standard_normal((12, 3))
    y = targets_for(name, rng, 12, k)
    if name == "binary_cross_entropy":
        y = np.round(y)          # labels 0 / 1 in one column
    class_weight = {0: 0.25, 1: 4.0}
    table = np.array([0.25, 4.0, 1.0])
    per_sample = table[y] if y.ndim == 1 else (
        table[0] + (table[1] - table[0]) * y[:, 0] if k == 1 else y @ table[:k])
    sw = rng.uniform(0.5, 2.0, size=12)
    model = make(name, backend, k=k)
    loss_c, grads_c = model.loss_and_gradients(X, y, sample_weight=sw, class_weight=class_weight)
    loss_s, grads_s = model.loss_and_gradients(X, y, sample_weight=sw * per_sample)
    np.testing.assert_allclose(loss_c, loss_s, rtol=1e-12)
    for a, b in zip(grads_c, grads_s):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # compile's class_weight is the default of every call; a call's own overrides it
    weighted = make(name, backend, k=k, class_weight=class_weight)
    assert weighted.evaluate(X, y, sample_weight=sw)["loss"] == pytest.approx(loss_c, rel=1e-12)
    assert weighted.loss_and_gradients(X, y, sample_weight=sw)[0] == pytest.approx(loss_c, rel=1e-12)
    assert weighted.evaluate(X, y, class_weight={})["loss"] == \
        pytest.approx(model.evaluate(X, y)["loss"], rel=1e-12)
    assert weighted.train_step(X, y, sample_weight=sw) == pytest.approx(loss_c, rel=1e-12)


def test_class_weight_of_one_hot_targets_equals_labels(backend, rng):
    X = rng.standard_normal((15, 3))
    labels = rng.integers(0, 4, size=15)
    model = make("softmax_cross_entropy", backend, class_weight={1: 3.0, 3: 0.0})
    loss_l, grads_l = model.loss_and_gradients(X, labels)
    loss_t, grads_t = model.loss_and_gradients(X, np.eye(4)[labels])
    np.testing.assert_allclose(loss_l, loss_t, rtol=1e-12)
    for a, b in zip(grads_l, grads_t):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15)


def test_fit_with_weights(backend, rng):
    X = rng.standard_normal((60, 3))
    y = rng.integers(0, 4, size=60)
    w = rng.uniform(0.0, 2.0, size=60)
    # unit weights change nothing, bit for bit
    runs = []
    for weights in (None, np.ones(60)):
        model = make("softmax_cross_entropy", backend)
        history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, sample_weight=weights)
        runs.append((history.history["loss"], model.get_weights()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    # the held-out part of sample_weight weighs the validation loss; fit's class_weight
    # weighs training only, compile's both
    model = make("softmax_cross_entropy", backend, class_weight={0: 2.0})
    history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, sample_weight=w,
                        class_weight={1: 5.0}, validation_split=0.25)
    val = model.evaluate(X[45:], y[45:], sample_weight=w[45:])
    assert history.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    history = model.fit(X[:45], y[:45], epochs=1, verbose=0,
                        validation_data=(X[45:], y[45:], w[45:]))
    val = model.evaluate(X[45:], y[45:], sample_weight=w[45:])
    assert history.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    # with one batch per epoch and no shuffling, the epoch loss is the weighted loss
    model = make("mae", backend)
    T = rng.standard_normal((60, 4))
    expected = model.evaluate(X, T, sample_weight=w)["loss"]
    history = model.fit(X, T, epochs=1, batch_size=60, shuffle=False, verbose=0, sample_weight=w)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sample_weight, message", [
    (-np.ones(6), "negative"), (np.r_[np.nan, np.ones(5)], "NaN"), (np.ones(5), "shape"),
    (np.ones((6, 1)), "shape"), (np.array(["a"] * 6), "string"),
])
def test_bad_sample_weight_raises(backend, sample_weight, message, rng):
    model = make("softmax_cross_entropy", backend)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 4, size=6)
    for call in ("fit", "train_step", "evaluate", "loss_and_gradients"):
        kwargs = {"verbose": 0} if call == "fit" else {}
        with pytest.raises(ValueError, match=message):
            getattr(model, call)(X, y, sample_weight=sample_weight, **kwargs)


@pytest.mark.parametrize("name, class_weight, message", [
    ("softmax_cross_entropy", [1.0, 2.0], "dict"),
    ("softmax_cross_entropy", {4: 1.0}, "keys are class labels in \\[0, 4\\)"),
    ("softmax_cross_entropy", {-1: 1.0}, "keys"),
    ("softmax_cross_entropy", {"a": 1.0}, "keys"),
    ("softmax_cross_entropy", {0: -1.0}, ">= 0"),
    ("softmax_cross_entropy", {0: np.nan}, ">= 0"),
    ("hinge", {0: "x"}, "number"),
    ("mse", {0: 1.0}, "classification loss"),
    ("poisson", {0: 1.0}, "classification loss"),
    ("binary_cross_entropy", {0: 1.0}, "single output"),
])
def test_bad_class_weight_raises(backend, name, class_weight, message, rng):
    with pytest.raises(ValueError, match=message):
        make(name, backend, class_weight=class_weight)
    model = make(name, backend)
    X = rng.standard_normal((6, 3))
    y = targets_for(name, rng, 6, 4)
    for call in ("fit", "train_step", "evaluate", "loss_and_gradients"):
        kwargs = {"verbose": 0} if call == "fit" else {}
        with pytest.raises(ValueError, match=message):
            getattr(model, call)(X, y, class_weight=class_weight, **kwargs)


# ---- learning ------------------------------------------------------------------------------

def test_binary_cross_entropy_learns_multi_label(backend):
    # three independent labels of a 2-D point: x0 > 0, x1 > 0, inside the unit circle
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 2))
    T = np.stack([X[:, 0] > 0, X[:, 1] > 0, (X ** 2).sum(axis=1) < 1], axis=1).astype(float)
    model = make("binary_cross_entropy", backend, "float32", n_in=2, k=3,
                 hidden=((32, "tanh"),), optimizer=fm.Adam(lr=0.02), metrics=["accuracy"])
    history = model.fit(X, T, epochs=60, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 4
    assert history.history["accuracy"][-1] >= 0.95
    P = model.predict(X)
    assert ((P >= 0) & (P <= 1)).all()
    assert np.mean((P > 0.5) == (T > 0.5), axis=0).min() >= 0.93   # every label learned


@pytest.mark.parametrize("name", ["mae", "huber"])
def test_robust_losses_resist_outliers(backend, name):
    # y = 2x + 1 with 15% gross outliers: mae and huber recover the line, mse does not
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(200, 1))
    y = 2 * X[:, 0] + 1 + 0.05 * rng.standard_normal(200)
    y[:30] += 20.0
    fits = {}
    for loss in (name, "mse"):
        model = fm.Sequential([fm.Dense(1)], input_dim=1, dtype="float64", backend=backend)
        model.compile(loss=fm.losses.huber(0.2) if loss == "huber" else loss,
                      optimizer=fm.Adam(lr=0.05))
        history = model.fit(X, y, epochs=150, batch_size=20, verbose=0)
        fits[loss] = model.get_weights()
        assert history.history["loss"][-1] < history.history["loss"][0]
    W, b = fits[name]
    assert abs(W[0, 0] - 2) < 0.15 and abs(b[0] - 1) < 0.15, (W, b)
    W, b = fits["mse"]
    assert abs(b[0] - 1) > 2    # pulled up by the outliers: ~1 + 0.15 * 20


def test_hinge_learns_spiral():
    X, y = fm.datasets.spiral(seed=0)
    model = make("hinge", "native", "float32", n_in=2, k=3, hidden=((64, "relu"), (64, "relu")),
                 optimizer=fm.Adam(lr=0.01), metrics=["accuracy"])
    history = model.fit(X, y, epochs=80, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < 0.1


def test_kl_divergence_fits_soft_targets(backend):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 3))
    logits = X @ np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0], [0.0, 1.0, 1.0]])
    T = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    model = fm.Sequential([fm.Dense(3)], input_dim=3, dtype="float64", backend=backend)
    model.compile(loss="kl_divergence", optimizer=fm.Adam(lr=0.05))
    model.fit(X, T, epochs=100, batch_size=20, verbose=0)
    assert model.evaluate(X, T)["loss"] < 1e-3
    np.testing.assert_allclose(model.predict(X), T, atol=0.03)


def test_poisson_recovers_the_rate(backend):
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(2000, 1))
    counts = rng.poisson(np.exp(1.5 * X[:, 0] + 0.5)).astype(float)
    model = fm.Sequential([fm.Dense(1)], input_dim=1, dtype="float64", backend=backend)
    model.compile(loss="poisson", optimizer=fm.Adam(lr=0.05))
    model.fit(X, counts, epochs=30, batch_size=50, verbose=0)
    W, b = model.get_weights()
    assert abs(W[0, 0] - 1.5) < 0.15 and abs(b[0] - 0.5) < 0.15, (W, b)
    np.testing.assert_allclose(model.predict(X[:5])[:, 0], np.exp(X[:5, 0] * W[0, 0] + b[0]),
                               rtol=1e-12)


def test_mape_regression_reduces_relative_error(backend):
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, size=(200, 2))
    y = 1 + 3 * X[:, 0] + X[:, 1]
    model = make("mape", backend, "float32", n_in=2, k=1, hidden=((16, "tanh"),),
                 optimizer=fm.Adam(lr=0.02))
    history = model.fit(X, y, epochs=100, batch_size=20, verbose=0)
    relative = np.abs(model.predict(X)[:, 0] - y) / y
    assert np.mean(relative) < 0.03
    assert history.history["loss"][-1] < history.history["loss"][0] / 5


# ---- the compiled plan's loss arguments ------------------------------------------------------

def test_plan_checks_loss_arguments(backend):
    from fastmlp._backend import kernels
    k = kernels(backend)
    params, grads = np.zeros(32), np.zeros(32)
    layers = [(2, 2, 0, 0.0, 0, 16, 0.0)]
    for kind, param in [(len(LOSSES), 0.0), (-1, 0.0), (k.loss_code("huber"), 0.0),
                        (k.loss_code("mape"), -1.0)]:
        with pytest.raises(ValueError):
            k.Plan(layers, params, grads, kind, param)
    X, labels, T = np.zeros((3, 2)), np.array([0, 1, 0]), np.zeros((3, 2))
    with pytest.raises(ValueError, match="not class labels"):
        k.Plan(layers, params, grads, k.loss_code("poisson")).loss(X, labels)
    with pytest.raises(ValueError, match="class labels"):
        k.Plan(layers, params, grads, k.loss_code("hinge")).loss(X, T)
    plan = k.Plan(layers, params, grads, k.loss_code("huber"), 0.25)
    Z = np.array([[1.0, -0.1], [0.0, 0.0], [2.0, 0.0]])
    params[16:18] = Z[0]   # W = 0, b = Z[0]: every row's output is Z[0]
    expected = (0.25 * (1.0 - 0.125) + 0.005) / 2   # huber with delta 0.25, mean over 2 outputs
    assert plan.loss(X, T) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_two_threads_split_the_loss_rows(name):
    # 512 rows through 20-256-256-5: the compiled step runs on two threads, each
    # computing the loss of its own rows; the result must match one thread and the twin
    rng = np.random.default_rng(8)
    X = rng.standard_normal((512, 20))
    y = targets_for(name, rng, 512, 5)
    w = rng.uniform(0.0, 2.0, size=512)
    results = []
    for backend, n_threads in [("native", 1), ("native", 2), ("numpy", 1)]:
        model = make(name, backend, n_in=20, k=5, hidden=((256, "relu"), (256, "tanh")))
        with fm.threads(n_threads):
            results.append(model.loss_and_gradients(X, y, sample_weight=w))
    (loss1, grads1), *others = results
    for loss, grads in others:
        np.testing.assert_allclose(loss, loss1, rtol=1e-12)
        for a, b in zip(grads, grads1):
            assert_close(a, b, np.float64, rtol=1e-10)
