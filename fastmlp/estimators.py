"""scikit-learn estimators: MLPClassifier and MLPRegressor.

Drop-in replacements for :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor`: the same parameters, defaults,
fitted attributes and methods, trained by fastmlp's compiled step (one native
call per epoch) instead of NumPy per layer.  Requires scikit-learn
(``pip install fastmlp[sklearn]``).

How scikit-learn's definitions map onto fastmlp
-----------------------------------------------
* Weights and biases start as scikit-learn's do (Glorot uniform, bound
  ``sqrt(6 / (fan_in + fan_out))``, ``sqrt(2 / ...)`` for "logistic"), drawn in
  the same order from ``check_random_state(random_state)``, so the same
  random_state gives the same initial network.
* The objective of a mini-batch of n_b samples is scikit-learn's: the mean
  loss plus ``alpha / (2 n_b) |W|^2`` over every weight matrix (not the
  biases), i.e. fastmlp's ``regularizers.l2(alpha / batch_size)``.  The losses
  are scikit-learn's: softmax cross-entropy (multi-class), the logistic loss
  on one output (binary) or summed over the labels (multi-label), half the
  squared error summed over the outputs, the half Poisson deviance.
* Sample weights w: each batch loss is ``sum w_r loss_r / sum w_r``
  (scikit-learn's weighted mean).  fastmlp divides by the batch size, so the
  weights are scaled to mean 1 over the training set; with full batches
  (lbfgs, or n <= batch_size) the objective is exactly scikit-learn's.
* ``learning_rate`` "invscaling" and "adaptive", ``tol`` and
  ``n_iter_no_change`` stopping, and early stopping on a held-out
  ``validation_fraction`` (split as scikit-learn does, best weights restored)
  follow scikit-learn's rules epoch by epoch.
* solver="lbfgs" runs ``scipy.optimize.minimize(method="L-BFGS-B")`` on the
  fused loss and gradient of the whole training set.

Known differences: SGD momentum uses PyTorch's form ``v = m v + g`` (equal to
scikit-learn's ``v = m v - lr g`` under a constant rate); Adam adds epsilon
to the bias-corrected root ``sqrt(v_hat)`` (scikit-learn to ``sqrt(v)``); the
L2 term of the last, smaller batch of an epoch uses the nominal batch size;
for multi-output regression ``loss_`` is the squared error summed over the
outputs (the objective scikit-learn's gradient descends; its ``loss_``
reports the mean over outputs).

dtype
-----
``dtype=None`` (default) follows scikit-learn: float32 input trains and
predicts in float32, anything else in float64.  ``dtype="float32"`` trains in
float32 whatever the input (fastmlp's fast path; about twice the speed of
float64), ``dtype="float64"`` always in float64.  Fitted coefficients and
predictions have the training dtype.
"""
import math
import numbers
import os
import tempfile
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from threadpoolctl import threadpool_limits

from . import optimizers as _optimizers
from . import regularizers as _regularizers
from .activations import Activation
from .callbacks import Callback, set_learning_rate
from .io import load_model, save_model
from .layers import BatchNorm, Dense, Dropout
from .model import Sequential
from .schedules import Schedule
from ._threads import threads

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC = ("sgd", "adam")
# scikit-learn's activation names that fastmlp spells differently
_ACTIVATION_NAMES = {"logistic": "sigmoid"}
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_REGRESSION_LOSSES = {"squared_error": "mse", "poisson": "poisson", "absolute_error": "mae",
                      "huber": "huber"}


# ---- parameter checks ------------------------------------------------------------------

def _real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def _integer(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _hidden_sizes(hidden_layer_sizes):
    sizes = hidden_layer_sizes
    if not hasattr(sizes, "__iter__"):
        sizes = [sizes]
    sizes = list(sizes)
    for h in sizes:
        if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h <= 0:
            raise ValueError(f"hidden_layer_sizes must be positive integers, got "
                             f"{hidden_layer_sizes!r}")
    return [int(h) for h in sizes]


def _activation(spec):
    if isinstance(spec, str):
        spec = _ACTIVATION_NAMES.get(spec, spec)
    elif not isinstance(spec, Activation):
        raise ValueError(f"activation must be a name or a fastmlp Activation, got {spec!r}")
    from .activations import get
    return get(spec)


def _hidden_activations(activation, n_hidden):
    """One activation per hidden layer, from a name or a list of them."""
    if isinstance(activation, (list, tuple)):
        if len(activation) != n_hidden:
            raise ValueError(f"activation lists {len(activation)} activations for "
                             f"{n_hidden} hidden layers")
        return [_activation(a) for a in activation]
    return [_activation(activation)] * n_hidden


def _set_dense_weights(model, coefs, intercepts):
    """Set the Dense layers' W and b of `model` (batch norms keep theirs)."""
    weights = model.get_weights()
    for i, W, b in zip(model._weight_matrix_indices(), coefs, intercepts):
        weights[i], weights[i + 1] = W, b
    model.set_weights(weights)


def _dropout_rates(dropout, n_hidden):
    rates = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * n_hidden
    if len(rates) != n_hidden:
        raise ValueError(f"dropout lists {len(rates)} rates for {n_hidden} hidden layers")
    return [_real(r, "dropout", 0.0, 1.0, high_open=True) for r in rates]


def _check_weights(sample_weight, n, name="sample_weight"):
    w = np.asarray(sample_weight)
    if w.ndim == 0:
        w = np.full(n, w)
    if w.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name}.shape == {w.shape}, expected ({n},)")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return w


def _dense(X):
    """Sparse input is densified: the kernels work on dense rows."""
    return X.toarray() if scipy.sparse.issparse(X) else X


# ---- the per-epoch rules ------------------------------------------------------------------

class _EpochRules(Callback):
    """scikit-learn's bookkeeping after every epoch of Sequential.fit: loss curve,
    validation score, tol / n_iter_no_change stopping, the "invscaling" and
    "adaptive" learning rates, and the best weights for early stopping."""

    def __init__(self, est, n_train, validation, adapt_lr, max_epochs, incremental):
        self.est = est
        self.n_train = n_train
        self.validation = validation          # (X, y_original, sample_weight) or None
        self.adapt_lr = adapt_lr              # sgd with "invscaling" / "adaptive"
        self.max_epochs = max_epochs
        self.incremental = incremental
        self.best_params = None

    def on_epoch_end(self, epoch, logs=None):
        est, model = self.est, self.model
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = float(logs["loss"]) + est._loss_offset
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        if self.validation is not None:
            X_val, y_val, w_val = self.validation
            est.validation_loss_curve_.append(float(logs["val_loss"]) + est._val_loss_offset)
            score = est._score_model(model, X_val, y_val, w_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
        self._count_improvement()
        if self.adapt_lr and est.learning_rate == "invscaling":
            set_learning_rate(model, est.learning_rate_init / (est.t_ + 1) ** est.power_t)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            lr = model.optimizer.lr
            if self.adapt_lr and est.learning_rate == "adaptive" and lr > 1e-6:
                set_learning_rate(model, lr / 5.0)
                est._no_improvement_count = 0
                if est.verbose:
                    print(msg + " Setting learning rate to %f" % (lr / 5.0))
            else:
                if est.verbose:
                    print(msg + " Stopping.")
                model.stop_training = True
                return
        if not self.incremental and epoch + 1 == self.max_epochs:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_epochs}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)

    def _count_improvement(self):
        est = self.est
        if est.early_stopping:
            score = est.validation_scores_[-1]
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_params = self.model.params.copy()
            return
        if est.validation_scores_ is not None:   # validation_data given: monitored only
            est.best_validation_score_ = max(est.best_validation_score_,
                                             est.validation_scores_[-1])
        if est.loss_ > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        est.best_loss_ = min(est.best_loss_, est.loss_)

    def on_train_end(self, logs=None):
        if self.best_params is not None:   # early stopping: the best epoch's weights
            self.model.params[...] = self.best_params


# ---- the shared estimator ------------------------------------------------------------------

class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share; see their docstrings."""

    def _check_params(self):
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        acts = _hidden_activations(self.activation, len(hidden))
        solver = self.solver
        if isinstance(solver, str):
            if solver != "lbfgs" and solver.lower() not in _optimizers._BY_NAME:
                raise ValueError(f"solver must be 'lbfgs', 'sgd', 'adam', another fastmlp "
                                 f"optimizer name ({', '.join(_optimizers._BY_NAME)}) or a "
                                 f"fastmlp Optimizer, got {solver!r}")
        elif not isinstance(solver, _optimizers.Optimizer):
            raise ValueError(f"solver must be a name or a fastmlp Optimizer, got {solver!r}")
        _real(self.alpha, "alpha", 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _integer(self.batch_size, "batch_size", 1)
        if not (isinstance(self.learning_rate, Schedule)
                or self.learning_rate in _LEARNING_RATES):
            raise ValueError(f"learning_rate must be one of {_LEARNING_RATES} or a "
                             f"fastmlp.schedules schedule, got {self.learning_rate!r}")
        _real(self.learning_rate_init, "learning_rate_init", 0.0, low_open=True)
        _real(self.power_t, "power_t", 0.0)
        _integer(self.max_iter, "max_iter", 1)
        _real(self.tol, "tol", 0.0)
        _real(self.momentum, "momentum", 0.0, 1.0)
        _real(self.validation_fraction, "validation_fraction", 0.0, 1.0, high_open=True)
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("early_stopping needs validation_fraction > 0 (or "
                             "validation_data in fit)")
        _real(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        _real(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        _real(self.epsilon, "epsilon", 0.0, low_open=True)
        if not (isinstance(self.n_iter_no_change, numbers.Real)
                and self.n_iter_no_change == np.inf):
            _integer(self.n_iter_no_change, "n_iter_no_change", 1)
        _integer(self.max_fun, "max_fun", 1)
        dropout = _dropout_rates(self.dropout, len(hidden))
        if self.dtype is not None and np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        if self.n_threads is not None:
            _integer(self.n_threads, "n_threads", 1)
        if solver == "lbfgs" and any(dropout):
            raise ValueError("dropout needs a stochastic solver; lbfgs minimizes a "
                             "deterministic objective")
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        if solver == "lbfgs" and self.batch_norm:
            raise ValueError("batch_norm needs a stochastic solver: its running statistics "
                             "come from training batches, which lbfgs does not use")
        return hidden, acts, dropout

    def _has_partial_fit(self):
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers; "
                                 "lbfgs is not stochastic")
        return True

    def _threads(self):
        if self.n_threads is None:
            import contextlib
            return contextlib.nullcontext()
        return threads(self.n_threads)

    # -- building the network -----------------------------------------------------------

    def _layers(self, hidden, acts, dropout, n_outputs):
        stack = []
        for units, act, rate in zip(hidden, acts, dropout):
            if self.batch_norm:   # the paper's placement: normalize the pre-activations
                stack += [Dense(units), BatchNorm(activation=act)]
            else:
                stack.append(Dense(units, activation=act))
            if rate > 0:
                stack.append(Dropout(rate))
        stack.append(Dense(n_outputs, activation=None))
        return stack

    def _optimizer(self):
        solver = self.solver
        if isinstance(solver, _optimizers.Optimizer):  # a copy: the estimator's stays clean
            return type(solver).from_config(solver.get_config())
        lr = (self.learning_rate if isinstance(self.learning_rate, Schedule)
              else self.learning_rate_init)
        if solver == "lbfgs":
            return _optimizers.SGD(lr=self.learning_rate_init)   # never steps
        if solver == "sgd":
            return _optimizers.SGD(lr=lr, momentum=self.momentum,
                                   nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        if solver == "adam":
            return _optimizers.Adam(lr=lr, beta1=self.beta_1, beta2=self.beta_2,
                                    eps=self.epsilon)
        return type(_optimizers.get(solver.lower()))(lr=lr)

    def _initial_weights(self, layer_units, rng, dtype):
        """[W1, b1, W2, ...] drawn as scikit-learn's MLP._init_coef draws them."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            weights.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
        return weights

    def _sync_attributes(self):
        """coefs_ and intercepts_ from the network's Dense layers (a batch norm's
        gamma and beta stay in the network)."""
        weights = self._model.get_weights()
        dense = self._model._weight_matrix_indices()
        self.coefs_ = [weights[i] for i in dense]
        self.intercepts_ = [weights[i + 1] for i in dense]

    def _push_attributes(self):
        """The network's weights from coefs_ and intercepts_ (which a user may have set)."""
        _set_dense_weights(self._model, self.coefs_, self.intercepts_)

    # -- fitting -----------------------------------------------------------------------------

    def _validate_Xy(self, X, y, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc", "coo"], multi_output=True,
                             y_numeric=not self._classifier, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return _dense(X), y

    def _fit(self, X, y, sample_weight=None, validation_data=None, incremental=False):
        hidden, acts, dropout = self._check_params()
        fitted = hasattr(self, "coefs_") and getattr(self, "_model", None) is not None
        first_pass = not fitted or (not self.warm_start and not incremental)
        if incremental and self.solver == "lbfgs":
            raise ValueError("partial_fit needs a stochastic solver, not lbfgs")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y = self._validate_Xy(X, y, reset=first_pass)
        y_model = self._encode_targets(y, first_pass, incremental)
        n_samples, n_features = X.shape
        sw = None if sample_weight is None else _check_weights(sample_weight, n_samples)
        sw = self._class_weights(y, sw)
        dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        if not first_pass and self._model.dtype != dtype:
            raise ValueError(f"the model was fitted in {self._model.dtype}; refit (warm_start="
                             f"False) to train in {dtype}")
        X = np.ascontiguousarray(X, dtype=dtype)
        rng = check_random_state(self.random_state)
        n_outputs = self._n_model_outputs(y_model)
        layer_units = [n_features] + hidden + [n_outputs]

        if first_pass:
            self.n_outputs_ = self._n_outputs(y_model)
            self.n_layers_ = len(layer_units)
            self.out_activation_ = self._out_activation()
            weights = self._initial_weights(layer_units, rng, dtype)  # first, as scikit-learn
            # then the seed of fit's shuffling and of the dropout masks
            seed = int(rng.randint(np.iinfo(np.int32).max))
            model = Sequential(self._layers(hidden, acts, dropout, n_outputs),
                               input_dim=n_features, dtype=dtype, seed=seed)
            _set_dense_weights(model, weights[0::2], weights[1::2])
            model.compile(loss=self._loss_name(), optimizer=self._optimizer())
            self._model = model
            self.n_iter_ = 0
            self.t_ = 0
            self._reset_curves()
        else:
            if self._model.input_dim != n_features:
                raise ValueError(f"X has {n_features} features, but {type(self).__name__} "
                                 f"is expecting {self._model.input_dim} features as input")
            self._push_attributes()
            if not incremental:   # warm start: a fresh optimizer on the current weights
                self._model.compile(loss=self._loss_name(), optimizer=self._optimizer())

        with self._threads():
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, y, y_model, sw)
            else:
                self._fit_stochastic(X, y, y_model, sw, rng, validation_data, incremental)
        self._sync_attributes()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _reset_curves(self):
        if self.solver == "lbfgs":
            return
        self.loss_curve_ = []
        self.validation_loss_curve_ = None
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _model_weights(self, y_model, sw):
        """(per-sample weights for fastmlp's loss or None, sum of the raw weights).

        fastmlp's losses divide by the number of samples and average elementwise
        losses over the outputs; scikit-learn divides by the sum of the weights
        and sums over the outputs.  Scaling the weights to mean 1 (times the
        number of outputs for the elementwise losses) turns one into the other.
        """
        n = y_model.shape[0]
        k = self._model.n_outputs if self._loss_name() != "softmax_cross_entropy" else 1
        if sw is None:
            return (None if k == 1 else np.full(n, float(k))), float(n)
        total = float(sw.sum())
        if total <= 0:
            raise ValueError("sample_weight sums to zero: at least one sample needs a "
                             "positive weight")
        scaled = sw * (k * n / total)
        return (None if np.all(scaled == 1.0) else scaled), total

    def _set_l2(self, coefficient):
        """The L2 penalty of the loss, changed without resetting the optimizer state."""
        model = self._model
        regularizer = _regularizers.l2(coefficient) if coefficient > 0 else None
        model.regularizer = regularizer
        (regularizer or _regularizers.Regularizer())._bind(model._plan)

    def _fit_stochastic(self, X, y, y_model, sw, rng, validation_data, incremental):
        model = self._model
        validation = None
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or "
                                 "(X_val, y_val, sample_weight_val)")
            X_val, y_val = validation_data[0], validation_data[1]
            w_val = validation_data[2] if len(validation_data) == 3 else None
            X_val = np.ascontiguousarray(
                _dense(validate_data(self, X_val, reset=False, accept_sparse=["csr", "csc",
                                                                                "coo"],
                                     dtype=(np.float64, np.float32))), dtype=model.dtype)
            y_val = np.asarray(y_val)
            if y_val.ndim == 2 and y_val.shape[1] == 1:
                y_val = column_or_1d(y_val)
            if y_val.shape[0] != X_val.shape[0]:
                raise ValueError(f"validation_data: X_val has {X_val.shape[0]} samples but "
                                 f"y_val has {y_val.shape[0]}")
            if w_val is not None:
                w_val = _check_weights(w_val, X_val.shape[0], "validation sample_weight")
            X_train, y_train, yo_train, sw_train = X, y_model, y, sw
            validation = (X_val, y_val, w_val)
        elif self.early_stopping:
            stratify = y if (self._classifier and self.n_outputs_ == 1) else None
            idx_train, idx_val = train_test_split(np.arange(X.shape[0]), random_state=rng,
                                                  test_size=self.validation_fraction,
                                                  stratify=stratify)
            if idx_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X_train, y_train, yo_train = X[idx_train], y_model[idx_train], y[idx_train]
            sw_train = None if sw is None else sw[idx_train]
            validation = (X[idx_val], y[idx_val], None if sw is None else sw[idx_val])
        else:
            X_train, y_train, yo_train, sw_train = X, y_model, y, sw

        if validation is not None:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            X_val, y_val, w_val = validation
            yv_model = self._encode_targets(y_val, first_pass=False, incremental=True)
            wv_model, _ = self._model_weights(yv_model, w_val)
            self._val_loss_offset = self._constant_loss(y_val, w_val)
            fit_validation = (X_val, yv_model, wv_model)
        else:
            fit_validation = None

        n = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        if self.batch_norm and n % batch_size == 1:
            if n < 2:
                raise ValueError("batch_norm=True needs at least 2 training samples")
            # a batch norm needs 2 samples per batch: grow the batches by one rather
            # than leave a last batch of 1
            batch_size += 1
        w_model, sw_sum = self._model_weights(y_train, sw_train)
        self._set_l2(self.alpha / (batch_size * sw_sum / n))
        self._loss_offset = self._constant_loss(yo_train, sw_train)

        epochs = 1 if incremental else self.max_iter
        adapt_lr = self.solver == "sgd" and not isinstance(self.learning_rate, Schedule)
        rules = _EpochRules(self, n, validation, adapt_lr, epochs, incremental)
        self.n_iter_ = 0
        try:
            model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                      shuffle=bool(self.shuffle), verbose=0, validation_data=fit_validation,
                      callbacks=[rules], sample_weight=w_model)
        except FloatingPointError as e:
            raise ValueError(f"Solver produced non-finite parameter weights: {e}") from None

    def _fit_lbfgs(self, X, y, y_model, sw):
        model = self._model
        w_model, sw_sum = self._model_weights(y_model, sw)
        self._set_l2(self.alpha / sw_sum)
        offset = self._constant_loss(y, sw)
        # converted once: the loss is evaluated on the whole set many times
        if y_model.dtype.kind == "f":
            y_model = np.ascontiguousarray(y_model, dtype=model.dtype)
        if w_model is not None:
            w_model = np.ascontiguousarray(w_model, dtype=model.dtype)
        shapes = [w.shape for w in model.get_weights()]
        order = list(range(0, len(shapes), 2)) + list(range(1, len(shapes), 2))
        sizes = [int(np.prod(shapes[i])) for i in order]
        bounds = np.cumsum([0] + sizes)

        def unpack(x):
            parts = [None] * len(shapes)
            for j, i in enumerate(order):
                parts[i] = x[bounds[j]:bounds[j + 1]].reshape(shapes[i])
            return parts

        def pack(arrays):
            return np.concatenate([arrays[i].ravel() for i in order]).astype(np.float64)

        def loss_and_grad(x):
            try:
                model.set_weights(unpack(x))
                loss, grads = model.loss_and_gradients(X, y_model, sample_weight=w_model)
            except (FloatingPointError, ValueError):   # a line-search trial overflowed
                return np.inf, np.zeros_like(x)
            return loss + offset, pack(grads)

        # L-BFGS-B's own vector operations go to BLAS one thread: on vectors this
        # size threads cannot help, and BLAS threads woken between native calls
        # compete with the kernels' idle OpenMP threads (DESIGN.md, "Threads";
        # measured 5-40x slower on 2 cores).  The kernels run their own threads.
        with threadpool_limits(1, user_api="blas"):
            result = scipy.optimize.minimize(
                loss_and_grad, pack(model.get_weights()), method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                          f"(status={result.status}): {result.message}. Increase the number "
                          "of iterations (max_iter) or scale the data.", ConvergenceWarning)
        if self.verbose:
            print(f"lbfgs: {result.message} after {result.nit} iterations, loss = "
                  f"{result.fun:.8f}")
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = float(result.fun)
        model.set_weights(unpack(result.x))

    def _constant_loss(self, y, sw):
        """What scikit-learn's loss adds to fastmlp's: the half Poisson deviance's
        sum_outputs mean_w(y log y - y), a constant of the data (0 otherwise)."""
        if getattr(self, "loss", None) != "poisson":
            return 0.0
        y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        return float(np.average(xlogy(y, y) - y, weights=sw, axis=0).sum())

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc", "coo"],
                          dtype=(np.float64, np.float32))
        model = self._model
        self._push_attributes()
        with self._threads():
            return model.predict(np.ascontiguousarray(_dense(X), dtype=model.dtype))

    def _score_model(self, model, X, y, sample_weight):
        """scikit-learn's validation score (accuracy or R^2) of the network being trained."""
        out = model.predict(X)
        if not np.isfinite(out).all():
            return np.nan
        return self._score_function(y, self._decode(out), sample_weight=sample_weight)

    # -- pickling: the network travels in fastmlp's own file format ------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.fm")
                save_model(model, path)
                with open(path, "rb") as f:
                    state["_model_file"] = f.read()
        return state

    def __setstate__(self, state):
        state = dict(state)
        blob = state.pop("_model_file", None)
        self.__dict__.update(state)
        if blob is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.fm")
                with open(path, "wb") as f:
                    f.write(blob)
                self._model = load_model(path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_COMMON_DOC = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer (an empty tuple: no hidden layer).
    activation : str, fastmlp Activation, or a list of them (one per hidden layer), \
default="relu"
        scikit-learn's "identity", "logistic", "tanh", "relu", or any activation of
        :mod:`fastmlp.activations` ("gelu", "silu", ``fm.activations.elu(0.5)``, ...).
    solver : "adam", "sgd", "lbfgs", another fastmlp optimizer name ("rmsprop",
        "adagrad", "nadam", "adamw", "gd") or a fastmlp Optimizer, default="adam"
        Named optimizers other than sgd/adam use learning_rate_init as their rate; an
        Optimizer instance is used (copied) as given.
    alpha : float >= 0, default=1e-4
        L2 penalty: ``alpha / (2 n_b) |W|^2`` added to the loss of a batch of n_b samples.
    batch_size : int or "auto", default="auto"
        "auto" is ``min(200, n_samples)``.
    learning_rate : "constant", "invscaling", "adaptive" or a fastmlp schedule, \
default="constant"
        As scikit-learn's, for solver="sgd": "invscaling" sets the rate to
        ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch; "adaptive"
        divides it by 5 each time the loss (or validation score) fails to improve by
        tol for n_iter_no_change epochs.  A :mod:`fastmlp.schedules` schedule drives
        the rate of any named solver.
    learning_rate_init : float > 0, default=1e-3
    power_t : float >= 0, default=0.5
    max_iter : int >= 1, default=200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
    random_state : int, RandomState or None, default=None
        Initial weights (scikit-learn's draws), the early-stopping split, and the seed
        of the shuffling and dropout masks.
    tol : float >= 0, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
    momentum : float in [0, 1), default=0.9 (sgd)
    nesterovs_momentum : bool, default=True (sgd)
    early_stopping : bool, default=False
        Hold out validation_fraction of the training data (or use fit's
        validation_data), stop when the validation score has not improved by tol for
        n_iter_no_change epochs, and restore the weights of the best epoch.
    validation_fraction : float in [0, 1), default=0.1
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999 (adam)
    epsilon : float > 0, default=1e-8 (adam)
    n_iter_no_change : int >= 1 or np.inf, default=10
    max_fun : int >= 1, default=15000 (lbfgs: most loss evaluations)
    dropout : float in [0, 1) or a list (one per hidden layer), default=0.0
        Inverted dropout after each hidden layer (stochastic solvers).
    batch_norm : bool, default=False
        Batch normalization in each hidden layer, as the paper places it:
        ``Dense(units)`` then ``BatchNorm(activation=activation)`` (stochastic
        solvers).  coefs_ and intercepts_ stay the Dense layers' W and b.  A
        batch norm needs 2 samples per batch: when the last batch would hold
        one, the batches grow by one sample.
    dtype : None, "float32" or "float64", default=None
        None follows the input like scikit-learn (float32 stays float32, anything else
        becomes float64); "float32" is fastmlp's fast path.
    n_threads : int >= 1 or None, default=None
        Threads for fit and predict (None: :func:`fastmlp.set_num_threads`'s setting).
"""

_ATTRIBUTES_DOC = """
    loss_ : float
        Loss of the last epoch (mean of the batch losses, penalty included), or of the
        lbfgs solution.
    best_loss_ : float or None
        Smallest loss_ so far (stochastic solvers; None with early_stopping).
    loss_curve_ : list of float
        loss_ after every epoch (stochastic solvers).
    validation_loss_curve_ : list of float or None
        The loss on the validation data after every epoch (early_stopping or fit's
        validation_data), beside loss_curve_.
    validation_scores_ : list of float or None
        The score (accuracy or R^2) on the validation data after every epoch.
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Weight matrix (n_in, n_out) and bias vector of each layer, in the training dtype.
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when X has string feature names)
    n_iter_ : int
        Epochs (or lbfgs iterations) of the last fit / partial_fit call.
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier, scikit-learn's API on fastmlp's kernels.

    Binary (one logistic output), multi-class (softmax) and multi-label (one
    logistic output per label) classification with any hashable labels.

    Parameters
    ----------""" + _COMMON_DOC + """    class_weight : dict, "balanced" or None, default=None
        Multiplies each sample's weight by its class's (as
        :func:`sklearn.utils.class_weight.compute_sample_weight`).

    Attributes
    ----------
    classes_ : ndarray or list of ndarray""" + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> import fastmlp as fm
    >>> X, y = fm.datasets.load_digits()
    >>> clf = fm.MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.95
    True
    """

    _classifier = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, class_weight=None, dtype=None, n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.class_weight = class_weight
        self.dtype = dtype
        self.n_threads = n_threads

    def fit(self, X, y, sample_weight=None, validation_data=None):
        """Fit the network to X and labels y.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) of labels, or (n_samples, n_labels) 0/1
            indicators (multi-label)
        sample_weight : array-like of shape (n_samples,) or None
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val) or None
            Scored after every epoch (validation_scores_, validation_loss_curve_);
            with early_stopping it replaces the held-out fraction.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, validation_data, incremental=False)

    @available_if(lambda est: est._has_partial_fit())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current state.

        classes : array-like, required on the first call (all labels that will occur).
        """
        if not hasattr(self, "classes_") or getattr(self, "_model", None) is None:
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._partial_classes = None if classes is None else np.asarray(classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call "
                             f"to partial_fit, which was {self.classes_!r}")
        return self._fit(X, y, sample_weight, None, incremental=True)

    def _encode_targets(self, y, first_pass, incremental):
        """y as fastmlp's loss takes it: int labels (multi-class) or 0/1 floats."""
        if first_pass:
            check_classification_targets(y)
            binarizer = LabelBinarizer()
            classes = getattr(self, "_partial_classes", None) if incremental else None
            if classes is not None and not type_of_target(y).startswith("multilabel"):
                binarizer.fit(classes)
            else:
                binarizer.fit(y)
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
            self._partial_classes = None
        else:
            labels = unique_labels(y)
            if self.warm_start and not incremental:
                if set(labels) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {labels}")
            elif len(np.setdiff1d(labels, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {labels}.")
        indicators = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            return np.ascontiguousarray(np.argmax(indicators, axis=1), dtype=np.int64)
        return np.asarray(indicators, dtype=np.float64)

    def _class_weights(self, y, sw):
        if self.class_weight is None:
            return sw
        cw = compute_sample_weight(self.class_weight, y)
        return cw if sw is None else sw * cw

    def _n_model_outputs(self, y_model):
        return len(self.classes_) if y_model.ndim == 1 else y_model.shape[1]

    def _n_outputs(self, y_model):
        return self._n_model_outputs(y_model) if y_model.ndim == 1 else y_model.shape[1]

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss_name(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax_cross_entropy"
        return "binary_cross_entropy"

    def _score_function(self, y, y_pred, sample_weight=None):
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def _decode(self, proba):
        if proba.shape[1] == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

    def predict(self, X):
        """Predicted labels, shape (n_samples,) (or (n_samples, n_labels) for multi-label)."""
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities of shape (n_samples, n_classes), columns in classes_ order."""
        proba = self._forward(X)
        if proba.shape[1] == 1:
            p = proba.ravel()
            return np.column_stack([1 - p, p])
        return proba

    def predict_log_proba(self, X):
        """log of predict_proba(X)."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor, scikit-learn's API on fastmlp's kernels.

    Single- and multi-output regression with an identity output.

    Parameters
    ----------
    loss : "squared_error", "poisson", "absolute_error" or "huber", default="squared_error"
        Half squared error, half Poisson deviance on an exp output (needs y >= 0),
        or fastmlp's mae / huber (delta 1) losses.""" + _COMMON_DOC + """
    Attributes
    ----------""" + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> import numpy as np, fastmlp as fm
    >>> X = np.random.default_rng(0).normal(size=(500, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> reg = fm.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    >>> reg.fit(X, y).score(X, y) > 0.95
    True
    """

    _classifier = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, dtype=None, n_threads=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.dtype = dtype
        self.n_threads = n_threads

    def fit(self, X, y, sample_weight=None, validation_data=None):
        """Fit the network to X and targets y of shape (n_samples,) or (n_samples, n_outputs).

        sample_weight : array-like of shape (n_samples,) or None
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val) or None
            Scored (R^2) after every epoch; with early_stopping it replaces the
            held-out fraction.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, validation_data, incremental=False)

    @available_if(lambda est: est._has_partial_fit())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current state."""
        return self._fit(X, y, sample_weight, None, incremental=True)

    def _check_params(self):
        if self.loss not in _REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(_REGRESSION_LOSSES)}, got "
                             f"{self.loss!r}")
        return super()._check_params()

    def _encode_targets(self, y, first_pass, incremental):
        y = np.asarray(y)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "Poisson regression.")
        return y if y.ndim == 2 else y.reshape(-1, 1)

    def _class_weights(self, y, sw):
        return sw

    def _n_model_outputs(self, y_model):
        return y_model.shape[1]

    def _n_outputs(self, y_model):
        return y_model.shape[1]

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_name(self):
        return _REGRESSION_LOSSES[self.loss]

    def _score_function(self, y, y_pred, sample_weight=None):
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def _decode(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X):
        """Predictions of shape (n_samples,) or (n_samples, n_outputs)."""
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
