"""fastmlp.MLPClassifier / MLPRegressor: scikit-learn's estimator checks, agreement
with scikit-learn's own MLP, and the extras beyond it."""
import contextlib
import io
import os
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

import fastmlp as fm  # noqa: E402
from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402

# float32 by request cannot meet two checks written for float64 estimators.
_FLOAT32_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "dtype='float32': weighted and repeated fits agree to float32 rounding (~1e-6), "
        "not to the check's rtol=1e-7",
    "check_sample_weight_equivalence_on_sparse_data":
        "dtype='float32': weighted and repeated fits agree to float32 rounding (~1e-6), "
        "not to the check's rtol=1e-7",
    "check_regressor_multioutput":
        "dtype='float32' asks for float32 predictions; the check requires float64",
}


def _expected_failures(estimator):
    if estimator.dtype == "float32":
        return {k: v for k, v in _FLOAT32_EXPECTED_FAILURES.items()
                if k != "check_regressor_multioutput" or isinstance(estimator, MLPRegressor)}
    return {}


@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
     MLPClassifier(solver="lbfgs", max_iter=100), MLPRegressor(solver="lbfgs", max_iter=100),
     MLPClassifier(dtype="float32", max_iter=100), MLPRegressor(dtype="float32", max_iter=100)],
    expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---- data ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    X, y = fm.datasets.load_digits()
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def _small_classification(n=120, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, 4))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.normal(size=(n, 4)), y


def _small_regression(n=150, seed=0, n_outputs=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 3] - 0.5 * X[:, 4]])
    return X, (Y[:, 0] if n_outputs == 1 else Y[:, :n_outputs])


@contextlib.contextmanager
def _quiet():
    """Short fits stop at max_iter on purpose: no ConvergenceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ---- on par with scikit-learn ------------------------------------------------------------

def test_digits_accuracy_on_par(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(100,), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95


def test_regression_r2_on_par_with_sklearn():
    X, y = make_friedman1(n_samples=1000, noise=0.5, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    params = dict(hidden_layer_sizes=(64, 64), max_iter=300, random_state=0)
    with _quiet():
        ours = MLPRegressor(**params).fit(X_train, y_train).score(X_test, y_test)
        # one BLAS thread: scikit-learn's small GEMMs are far slower on a busy machine
        # with two, and the result does not depend on it
        with threadpool_limits(1):
            theirs = sk_nn.MLPRegressor(**params).fit(X_train, y_train).score(X_test, y_test)
    assert ours > 0.85
    assert ours >= theirs - 0.02


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "poisson"])
def test_same_initialisation_and_objective_as_sklearn(task):
    """One lbfgs iteration from the same random_state evaluates the same loss:
    same initial weights, same loss and the same alpha scaling."""
    X, y = _small_classification(80)
    targets = {"multiclass": y, "binary": y % 2,
               "multilabel": np.column_stack([y % 2, y == 0]).astype(int),
               "regression": X[:, 0] + X[:, 1] ** 2,
               "poisson": np.round(np.abs(X[:, 0]))}
    kind = "regressor" if task in ("regression", "poisson") else "classifier"
    extra = {"loss": "poisson"} if task == "poisson" else {}
    params = dict(solver="lbfgs", max_iter=1, alpha=0.3, random_state=3, **extra)
    pair = []
    for module in (fm, sk_nn):
        cls = module.MLPRegressor if kind == "regressor" else module.MLPClassifier
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pair.append(cls(**params).fit(X, targets[task]))
    ours, theirs = pair
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_sgd_epoch_loss_matches_sklearn_before_learning():
    """With a negligible learning rate the first epoch's loss_ is scikit-learn's (up
    to the penalty of the smaller last batch)."""
    X, y = _small_classification(100)
    params = dict(solver="sgd", learning_rate_init=1e-12, max_iter=1, batch_size=25,
                  shuffle=False, alpha=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(X, y)
        theirs = sk_nn.MLPClassifier(**params).fit(X, y)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)


# ---- scikit-learn integration -------------------------------------------------------------

def test_pickle_round_trip_predicts_and_continues_the_same():
    X, y = _small_classification()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.loss_curve_ == clf.loss_curve_
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # optimizer state and shuffling travelled too
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_clone_pipeline_and_grid_search():
    X, y = _small_classification(150)
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=50, learning_rate_init=0.03,
                        random_state=0)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "coefs_")
    pipe = make_pipeline(StandardScaler(), clf)
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1],
                               "mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__hidden_layer_sizes"}
    assert grid.score(X, y) > 0.8


# ---- targets -------------------------------------------------------------------------------

def test_string_labels():
    X, y = _small_classification()
    names = np.array(["cat", "dog", "eel"])[y]
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=200, random_state=0).fit(X, names)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "eel"])
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and np.mean(pred == names) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_binary_uses_one_logistic_output():
    X, y = _small_classification(n_classes=2)
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=100, random_state=0).fit(X, y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert clf.coefs_[-1].shape == (5, 1)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] > 0.5).astype(int))


def test_multilabel():
    X, y = _small_classification(200)
    Y = np.column_stack([y == 0, y != 1, y == 2]).astype(int)
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert clf.score(X, Y) > 0.85  # subset accuracy


def test_multi_output_regression():
    X, Y = _small_regression(300, n_outputs=2)
    with _quiet():
        reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.8


def test_poisson_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    with _quiet():
        reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=200,
                           random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp"
    assert (reg.predict(X) > 0).all()
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -y - 1.0)


# ---- training ---------------------------------------------------------------------------

def test_partial_fit_requires_classes_then_learns():
    X, y = _small_classification()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:60], y[:60], classes=[0, 1, 2])
    first = clf.loss_
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.loss_ < first and clf.n_iter_ == 1 and clf.t_ == 60 + 30 * len(X)
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 5)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_warm_start_continues():
    X, y = _small_classification()
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True,
                            random_state=0).fit(X, y)
        before = [c.copy() for c in clf.coefs_]
        clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5 and clf.t_ == 10 * len(X)
    cold = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with _quiet():
        cold.fit(X, y)
    for a, b in zip(before, cold.coefs_):  # the first warm fit was a cold fit
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(clf.coefs_[0], cold.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, np.where(y == 2, 1, y))


def test_sample_weight_zero_is_removing_the_sample():
    X, y = _small_classification(60)
    w = np.ones(len(X))
    w[::3] = 0
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=50, random_state=0)
    with _quiet():
        weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
        removed = MLPClassifier(**params).fit(X[w > 0], y[w > 0])
    np.testing.assert_allclose(weighted.predict_proba(X), removed.predict_proba(X), rtol=1e-6,
                               atol=1e-9)
    with pytest.raises(ValueError, match="non-negative"):
        MLPClassifier().fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="sums to zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(len(X)))


def test_class_weight_is_sample_weight_per_class():
    X, y = _small_classification(90)
    X, y = X[(y != 2) | (np.arange(90) % 3 == 0)], y[(y != 2) | (np.arange(90) % 3 == 0)]
    cw = {0: 3.0, 1: 1.0, 2: 0.5}
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=30, random_state=0)
    with _quiet():
        by_class = MLPClassifier(class_weight=cw, **params).fit(X, y)
        by_sample = MLPClassifier(**params).fit(X, y, sample_weight=np.vectorize(cw.get)(y))
        balanced = MLPClassifier(class_weight="balanced", **params).fit(X, y)
        plain = MLPClassifier(**params).fit(X, y)
    np.testing.assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X))
    assert not np.allclose(balanced.predict_proba(X), plain.predict_proba(X))


def test_validation_curves_and_early_stopping_restores_best():
    X, y = _small_classification(300, seed=1)
    X_val, y_val = _small_classification(100, seed=1)
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=40, random_state=0)
        clf.fit(X, y, validation_data=(X_val, y_val))
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    np.testing.assert_allclose(clf.validation_scores_[-1], clf.score(X_val, y_val))
    # early stopping on the given data: the final weights are the best epoch's
    with _quiet():
        es = MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.5,
                           early_stopping=True, n_iter_no_change=3, max_iter=200,
                           random_state=0)
        es.fit(X, y, validation_data=(X_val, y_val))
    assert es.n_iter_ < 200 and es.best_loss_ is None
    np.testing.assert_allclose(es.score(X_val, y_val), es.best_validation_score_)
    # early stopping on a held-out fraction, as scikit-learn
    with _quiet():
        split = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                              random_state=0).fit(X, y)
    assert len(split.validation_scores_) == split.n_iter_
    with pytest.raises(ValueError, match="early_stopping"):
        split.partial_fit(X, y)


def test_adaptive_and_invscaling_learning_rates_as_sklearn():
    X, y = _small_classification()
    common = dict(solver="sgd", learning_rate_init=0.1, random_state=0)
    for params in (dict(learning_rate="adaptive", tol=1e9, n_iter_no_change=1, max_iter=6),
                   dict(learning_rate="invscaling", power_t=0.5, max_iter=3)):
        with _quiet():
            ours = MLPClassifier(**common, **params).fit(X, y)
            theirs = sk_nn.MLPClassifier(**common, **params).fit(X, y)
        assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_
        np.testing.assert_allclose(ours._model.optimizer.lr, theirs._optimizer.learning_rate)
    # "adaptive" never improving by tol: the rate was divided by 5 after epochs 3 and 5
    adaptive = MLPClassifier(**common, learning_rate="adaptive", tol=1e9, n_iter_no_change=1,
                             max_iter=6)
    with _quiet():
        adaptive.fit(X, y)
    np.testing.assert_allclose(adaptive._model.optimizer.lr, 0.1 / 5 ** 2)


def test_tol_stopping_as_sklearn():
    X, y = _small_classification()
    with _quiet():
        ours = MLPClassifier(tol=1e9, n_iter_no_change=2, max_iter=50, random_state=0).fit(X, y)
        theirs = sk_nn.MLPClassifier(tol=1e9, n_iter_no_change=2, max_iter=50,
                                     random_state=0).fit(X, y)
    # no epoch improves by tol: the count exceeds n_iter_no_change after epoch 4
    assert ours.n_iter_ == theirs.n_iter_ == 4


def test_catalogue_extras_train():
    X, y = _small_classification(200)
    variants = [dict(solver="rmsprop", activation="gelu", learning_rate_init=0.01),
                dict(solver=fm.Nadam(lr=0.01), activation=["silu", "tanh"],
                     hidden_layer_sizes=(16, 8)),
                dict(solver="sgd", learning_rate=fm.schedules.cosine(0.1, period=50),
                     dropout=0.1),
                dict(activation=fm.activations.leaky_relu(0.1), dropout=[0.2])]
    for params in variants:
        params = dict(dict(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=0.01,
                           random_state=0), **params)
        with _quiet():
            clf = MLPClassifier(**params).fit(X, y)
        assert clf.score(X, y) > 0.9, params
    # the estimator's Optimizer stays untouched by fitting
    assert variants[1]["solver"].lr == 0.01


def test_float32_preserved():
    X, y = _small_regression()
    with _quiet():
        r32 = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
        r32.fit(X.astype(np.float32), y.astype(np.float32))
        forced = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, dtype="float32",
                              random_state=0).fit(X, y)
        r64 = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, dtype="float64",
                           random_state=0).fit(X.astype(np.float32), y)
    for est in (r32, forced):
        assert all(c.dtype == np.float32 for c in est.coefs_ + est.intercepts_)
        assert est.predict(X).dtype == np.float32
    assert r64.coefs_[0].dtype == np.float64 and r64.predict(X).dtype == np.float64
    np.testing.assert_allclose(forced.predict(X), r64.predict(X), rtol=1e-3, atol=1e-3)


def test_n_threads_gives_the_same_result():
    X, y = _small_classification(600)
    preds = []
    for n in (1, 2):
        with _quiet():
            clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=5, n_threads=n,
                                random_state=0).fit(X, y)
        preds.append(clf.predict_proba(X))
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-9, atol=1e-12)
    assert fm.get_num_threads() >= 1
    with pytest.raises(ValueError, match="n_threads"):
        MLPClassifier(n_threads=0).fit(X, y)


def test_verbose_prints_sklearn_lines():
    X, y = _small_classification()
    out = io.StringIO()
    with redirect_stdout(out), _quiet():
        MLPClassifier(max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert "Iteration 1, loss = " in out.getvalue() and "Iteration 2" in out.getvalue()


def test_max_iter_warns_convergence():
    X, y = _small_classification()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(max_iter=2, random_state=0).fit(X, y)


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("params, match", [
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(activation="nope"), "unknown activation"),
    (dict(activation=["relu", "tanh"]), "2 activations for 1 hidden"),
    (dict(solver="newton"), "solver"),
    (dict(alpha=-1.0), "alpha"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate="cyclic"), "learning_rate"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(max_iter=0), "max_iter"),
    (dict(momentum=1.5), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(beta_1=1.0), "beta_1"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=0.2, solver="lbfgs"), "stochastic solver"),
    (dict(dtype="int32"), "dtype"),
])
def test_bad_hyperparameters_raise(params, match):
    X, y = _small_classification(30)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_regression_loss_and_validation_data():
    X, y = _small_regression(40)
    with pytest.raises(ValueError, match="loss must be"):
        MLPRegressor(loss="cauchy").fit(X, y)
    with pytest.raises(ValueError, match="validation_data"):
        MLPRegressor(max_iter=2).fit(X, y, validation_data=(X,))
    with pytest.raises(ValueError, match="features"):
        MLPRegressor(max_iter=2).fit(X, y, validation_data=(X[:, :3], y))


def test_batch_norm_trains_and_keeps_dense_attributes():
    X, y = _small_classification(200)
    with _quiet():
        clf = MLPClassifier(hidden_layer_sizes=(16, 8), batch_norm=True, max_iter=50,
                            batch_size=32, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    layers = clf._model.layers
    assert [type(layer).__name__ for layer in layers] == ["Dense", "BatchNorm", "Dense",
                                                          "BatchNorm", "Dense"]
    assert layers[1].activation.name == "relu" and layers[0].activation.name == "identity"
    assert [W.shape for W in clf.coefs_] == [(X.shape[1], 16), (16, 8), (8, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (8,), (3,)]
    weights = clf._model.get_weights()
    np.testing.assert_array_equal(weights[0], clf.coefs_[0])
    np.testing.assert_array_equal(weights[4], clf.coefs_[1])   # after gamma1, beta1
    # inference uses the running statistics: predictions do not depend on the batch
    np.testing.assert_array_equal(clf.predict_proba(X[:7]), clf.predict_proba(X)[:7])
    # 201 samples in batches of 200 would leave a last batch of one sample
    X201, y201 = _small_classification(201)
    with _quiet():
        odd = MLPClassifier(hidden_layer_sizes=(8,), batch_norm=True, max_iter=3,
                            random_state=0).fit(X201, y201)
    assert odd._model._plan.step == 3   # one batch of 201 per epoch
    with pytest.raises(ValueError, match="stochastic solver"):
        MLPClassifier(batch_norm=True, solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="batch_norm must be"):
        MLPClassifier(batch_norm="yes").fit(X, y)


def test_import_fastmlp_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastmlp\n"
            "try:\n    fastmlp.MLPClassifier\nexcept ImportError as e:\n    print(e)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fm.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert "pip install fastmlp[sklearn]" in out.stdout


def test_feature_names_in():
    pd = pytest.importorskip("pandas")
    X, y = _small_classification(60)
    names = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    with _quiet():
        clf = MLPClassifier(max_iter=5, random_state=0).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, names)
    assert clf.n_features_in_ == X.shape[1]
    with _quiet():
        plain = MLPClassifier(max_iter=5, random_state=0).fit(X, y)
    assert not hasattr(plain, "feature_names_in_")
    np.testing.assert_array_equal(clf.predict(frame), plain.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[names[::-1]])
