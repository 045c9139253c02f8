"""Sequential: a stack of Dense layers trained by one compiled native step."""
import time

import numpy as np

from . import losses as _losses
from . import optimizers as _optimizers
from ._backend import BACKENDS, kernels
from ._validation import (check_bounded_target, check_classification_target,
                          check_distribution_target, check_features, check_label_target,
                          check_positive_int, check_regression_target, check_sample_weight,
                          class_weight_table)
from .initializers import initialize
from .layers import Dense

__all__ = ["Sequential", "History"]

# Each W and b starts on a 64-byte boundary of the flat buffer (16 float32).
_ALIGN = 16
_METRICS = ("accuracy",)


class History:
    """What fit() measured: ``history.history["loss"]`` etc., one value per epoch."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def _append(self, epoch, values):
        self.epoch.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Sequential:
    """A multi-layer perceptron: Dense layers applied in order.

    All parameters live in one flat buffer (each layer's W and b are views into
    it), and so do their gradients and the optimizer state.  compile() builds a
    plan that allocates every buffer once; train_step() is then one native call
    doing forward, loss, backward and update with no Python per layer.

    Parameters
    ----------
    layers : list of Dense
    input_dim : int or None
        Number of input features; None builds the model on the first fit().
    dtype : "float32" (default, fast) or "float64"
    seed : int
        Seeds the initial weights and the shuffling of fit().
    backend : "native" (compiled kernels, default) or "numpy" (their NumPy twin)

    Examples
    --------
    >>> import fastmlp as fm
    >>> model = fm.Sequential([fm.Dense(64, activation="relu"), fm.Dense(3)], input_dim=2)
    >>> model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=1e-2))
    """

    def __init__(self, layers, input_dim=None, dtype="float32", seed=0, backend="native"):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Dense) for layer in layers):
            raise ValueError("layers must be a non-empty list of fastmlp.Dense layers")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.layers = layers
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.backend = backend
        self._kernels = kernels(backend)
        self._shuffle_rng = np.random.default_rng([seed, 1])
        self.input_dim = None
        self.loss = None
        self.optimizer = None
        self.metrics = []
        self.class_weight = None
        self._class_weights = None
        self._plan = None
        if input_dim is not None:
            self.build(input_dim)

    # -- construction ------------------------------------------------------------

    def build(self, input_dim):
        """Allocate and initialise the parameters for `input_dim` input features."""
        input_dim = check_positive_int(input_dim, "input_dim")
        rng = np.random.default_rng(self.seed)
        self._layout = []          # (n_in, n_out, w_offset, b_offset) per layer
        offset, n_in = 0, input_dim
        for layer in self.layers:
            w_off = offset
            b_off = _aligned(w_off + n_in * layer.units)
            offset = _aligned(b_off + layer.units)
            self._layout.append((n_in, layer.units, w_off, b_off))
            n_in = layer.units
        self.params = np.zeros(offset, dtype=self.dtype)
        self.grads = np.zeros(offset, dtype=self.dtype)
        for layer, (n_in, n_out, w_off, _) in zip(self.layers, self._layout):
            W = initialize(layer.init, rng, n_in, n_out)
            self.params[w_off:w_off + n_in * n_out] = W.ravel()
        self.input_dim = input_dim
        if self.loss is not None:
            self._make_plan()
        return self

    def compile(self, loss="softmax_cross_entropy", optimizer="adam", metrics=None,
                class_weight=None):
        """Choose the loss, the optimizer and the metrics fit()/evaluate() report.

        Parameters
        ----------
        loss : str or Loss
            "softmax_cross_entropy", "binary_cross_entropy", "kl_divergence", "hinge",
            "mse", "mae", "mape", "huber", "poisson", or fm.losses.huber(delta) /
            fm.losses.mape(epsilon); formulas and conventions in :mod:`fastmlp.losses`.
        optimizer : Optimizer or "adam" / "sgd"
        metrics : list of str or None
            "accuracy" for the classification losses (for binary_cross_entropy: the
            fraction of outputs on the right side of 0.5).  Metrics are unweighted.
        class_weight : dict {class: weight} or None
            Part of the loss from now on: every sample's loss is multiplied by its
            class's weight (classes not named: 1) in train_step, fit, evaluate and
            loss_and_gradients.  For the classification losses; with targets t
            instead of labels the weight is sum_c t_c class_weight[c], and for
            binary_cross_entropy (one output only) the classes are 0 and 1.
        """
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in _METRICS:
                raise ValueError(f"unknown metric {m!r}; choose from {', '.join(_METRICS)}")
            if m == "accuracy" and not loss.classification:
                raise ValueError("the accuracy metric needs a classification loss")
        last = self.layers[-1]
        if loss.on_logits and last.activation.name != "identity":
            link = "sigmoid" if loss.name == "binary_cross_entropy" else "softmax"
            raise ValueError(f"with {loss.name} the last layer must output logits "
                             f"(activation=None), not {last.activation!r}: the {link} is "
                             "fused into the loss and applied by predict()")
        if last.units < loss.min_units:
            raise ValueError(f"{loss.name} needs a last layer with >= {loss.min_units} units")
        table = _class_weight_table(loss, last.units, class_weight)
        self.loss, self.optimizer, self.metrics = loss, optimizer, metrics
        self.class_weight = None if class_weight is None else dict(class_weight)
        self._class_weights = table
        if self.input_dim is not None:
            self._make_plan()
        return self

    def _make_plan(self):
        specs = [(n_in, n_out, self._kernels.activation_code(layer.activation.name),
                  layer.activation.alpha, w_off, b_off)
                 for layer, (n_in, n_out, w_off, b_off) in zip(self.layers, self._layout)]
        self._plan = self._kernels.Plan(specs, self.params, self.grads, self.loss.kind,
                                        self.loss.param)
        self._opt_state = [np.zeros_like(self.params) for _ in range(self.optimizer.n_state)]
        self.optimizer._bind(self._plan, self._opt_state)

    def _require_compiled(self, X_features=None):
        if self.loss is None:
            raise RuntimeError("call compile() before training or evaluating the model")
        if self.input_dim is None:
            if X_features is None:
                raise RuntimeError("the model is not built: pass input_dim or call fit() first")
            self.build(X_features)

    @property
    def n_outputs(self):
        return self.layers[-1].units

    # -- data checks ---------------------------------------------------------------

    def _check_X(self, X):
        n_features = self.input_dim
        if n_features is None:
            X = check_features(X, None, self.dtype)
            self._require_compiled(X.shape[1])
            return X
        return check_features(X, n_features, self.dtype)

    def _check_y(self, y, n):
        targets, k, name = self.loss.targets, self.n_outputs, self.loss.name
        if targets == "labels_or_distributions":
            return check_classification_target(y, n, k, self.dtype)
        if targets == "labels":
            return check_label_target(y, n, k, self.dtype, name)
        if targets == "distributions":
            return check_distribution_target(y, n, k, self.dtype, name)
        if targets == "probabilities":
            return check_bounded_target(y, n, k, self.dtype, name, 0.0, 1.0)
        if targets == "counts":
            return check_bounded_target(y, n, k, self.dtype, name, 0.0)
        return check_regression_target(y, n, k, self.dtype)

    def _sample_weight(self, y, sample_weight, class_weight=None):
        """The per-sample weights of the loss for checked targets y: sample_weight
        times the class weights (class_weight, else compile's), or None for none."""
        n = y.shape[0]
        w = None if sample_weight is None else check_sample_weight(sample_weight, n, self.dtype)
        table = (self._class_weights if class_weight is None
                 else _class_weight_table(self.loss, self.n_outputs, class_weight))
        if table is None:
            return w
        if y.ndim == 1:                  # labels
            per_sample = table[y]
        elif y.shape[1] == table.shape[0]:   # distributions: sum_c t_c class_weight[c]
            per_sample = y @ table
        else:                            # one binary output: t weights class 1, 1 - t class 0
            per_sample = table[0] + (table[1] - table[0]) * y[:, 0]
        if w is not None:
            per_sample = per_sample * w
        return np.ascontiguousarray(per_sample, dtype=self.dtype)

    # -- training --------------------------------------------------------------------

    def train_step(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer step on the batch (x, y); returns its mean loss (before the step).

        x : array-like of shape (n, n_features)
        y : class labels (n,) or targets (n, n_outputs), as the loss takes them
        sample_weight : array-like of shape (n,) of weights >= 0, or None
        class_weight : dict {class: weight} or None (None: compile's)
        """
        if self.loss is None:
            raise RuntimeError("call compile() before training the model")
        x = self._check_X(x)
        y = self._check_y(y, x.shape[0])
        w = self._sample_weight(y, sample_weight, class_weight)
        loss = self._plan.train_step(x, y, w)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in train_step")
        return loss

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
            validation_split=0.0, validation_data=None, sample_weight=None, class_weight=None):
        """Train for `epochs` passes over (X, y) in mini-batches.

        Each epoch runs natively: the batches (re-shuffled every epoch when
        `shuffle`) are gathered and stepped without returning to Python.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : class labels (n_samples,) or targets (n_samples, n_outputs)
        epochs : int >= 0
        batch_size : int >= 1 (the last batch of an epoch may be smaller)
        shuffle : bool
        verbose : 0 silent, 1 or 2 one line per epoch
        validation_split : float in [0, 1): the last fraction of (X, y) (and of
            sample_weight) is held out
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val) or None
            (takes precedence over the split)
        sample_weight : array-like of shape (n_samples,) of weights >= 0, or None
            Each sample's loss is multiplied by its weight; the mean still divides
            by the number of samples (see :mod:`fastmlp.losses`).
        class_weight : dict {class: weight} or None
            Class weights for training (None: compile's), multiplied into
            sample_weight.  The validation loss uses compile's, as evaluate() does.

        Returns
        -------
        History with "loss" (and "val_loss", and the compiled metrics) per epoch.
        A Ctrl-C stops after the current batch and returns the history so far.
        """
        if self.loss is None:
            raise RuntimeError("call compile() before fit()")
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        w_val = None
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or "
                                 "(X_val, y_val, sample_weight_val)")
            X_val = self._check_X(validation_data[0])
            y_val = self._check_y(validation_data[1], X_val.shape[0])
            if len(validation_data) == 3 and validation_data[2] is not None:
                w_val = check_sample_weight(validation_data[2], X_val.shape[0], self.dtype,
                                            "validation sample_weight")
        elif validation_split > 0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                 f"training or for validation out of {X.shape[0]}")
            X, X_val = X[:-n_val], X[-n_val:]
            y, y_val = y[:-n_val], y[-n_val:]
            if sample_weight is not None:
                sample_weight, w_val = sample_weight[:-n_val], sample_weight[-n_val:]
        else:
            X_val = y_val = None
        w = self._sample_weight(y, sample_weight, class_weight)

        history = History()
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        batch_losses = np.empty(n_batches)
        sizes = np.full(n_batches, batch_size, dtype=np.float64)
        sizes[-1] = n - batch_size * (n_batches - 1)
        for epoch in range(epochs):
            start = time.perf_counter()
            order = (self._shuffle_rng.permutation(n) if shuffle
                     else np.arange(n)).astype(np.int64)
            try:
                done = self._plan.train_epoch(X, y, order, batch_size, batch_losses, w)
            except KeyboardInterrupt:
                if verbose:
                    print(f"interrupted in epoch {epoch + 1}; the model holds the weights after "
                          "the last completed batch")
                break
            if self._plan.status:
                raise _divergence_error(self._plan.status, batch_losses[done - 1],
                                        f"at epoch {epoch + 1}, batch {done}")
            elapsed = time.perf_counter() - start
            logs = {"loss": float(np.dot(batch_losses, sizes) / n)}
            if self.metrics:  # measured on the training set after the epoch
                on_train = self.evaluate(X, y)
                logs.update({m: on_train[m] for m in self.metrics})
            if X_val is not None:
                logs.update({"val_" + k: v
                             for k, v in self.evaluate(X_val, y_val, w_val).items()})
            history._append(epoch, logs)
            if verbose:
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"epoch {epoch + 1}/{epochs} - {elapsed:.2f}s - {n / elapsed:,.0f} samples/s"
                      f" - {shown}")
        return history

    # -- inference --------------------------------------------------------------------

    def predict(self, X):
        """The network's output for X, as the loss reads it: class probabilities
        (softmax) under softmax_cross_entropy and kl_divergence, per-output
        probabilities (sigmoid) under binary_cross_entropy, the rate e^z under
        poisson, the last layer's activations otherwise.

        X : array-like of shape (n_samples, n_features)
        Returns ndarray of shape (n_samples, n_outputs) in the model's dtype.
        """
        self._require_compiled()
        X = self._check_X(X)
        return self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype))

    def evaluate(self, X, y, sample_weight=None, class_weight=None):
        """Mean loss (and compiled metrics, unweighted) on (X, y), as a dict.

        sample_weight : array-like of shape (n,) of weights >= 0, or None
        class_weight : dict {class: weight} or None (None: compile's)
        """
        self._require_compiled()
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        w = self._sample_weight(y, sample_weight, class_weight)
        out = self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype),
                                 output_transform=False)
        scratch = np.empty_like(out)
        loss = self._kernels.loss_and_gradient(out, y, scratch, self.loss.kind, self.loss.param,
                                               w)
        result = {"loss": float(loss)}
        for m in self.metrics:
            result[m] = _accuracy(out, y, self.loss)
        return result

    # -- parameters ----------------------------------------------------------------------

    def _views(self, flat):
        return [part for n_in, n_out, w_off, b_off in self._layout
                for part in (flat[w_off:w_off + n_in * n_out].reshape(n_in, n_out),
                             flat[b_off:b_off + n_out])]

    def get_weights(self):
        """Copies of the parameters: [W1 (n_in, n_out), b1, W2, b2, ...]."""
        self._require_built()
        return [p.copy() for p in self._views(self.params)]

    def set_weights(self, weights):
        """Set the parameters from a list shaped like get_weights()'s (copied in)."""
        self._require_built()
        targets = self._views(self.params)
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"expected {len(targets)} arrays (W and b per layer), got {len(weights)}")
        checked = []
        for i, (w, t) in enumerate(zip(weights, targets)):
            w = np.asarray(w)
            if w.dtype.kind not in "fiu":
                raise ValueError(f"weights[{i}] has dtype {w.dtype}; a real numeric array is needed")
            if w.shape != t.shape:
                raise ValueError(f"weights[{i}] has shape {w.shape}, expected {t.shape}")
            w = w.astype(self.dtype, copy=False)
            if not np.isfinite(w).all():
                raise ValueError(f"weights[{i}] contains NaN or infinity")
            checked.append(w)
        for w, t in zip(checked, targets):  # all checked before any is written
            t[...] = w

    def loss_and_gradients(self, X, y, sample_weight=None, class_weight=None):
        """Mean loss on (X, y) and its gradient w.r.t. every parameter, without an update.

        sample_weight : array-like of shape (n,) of weights >= 0, or None
        class_weight : dict {class: weight} or None (None: compile's)
        Returns (loss, [dW1, db1, dW2, db2, ...]) in get_weights() order.
        """
        self._require_compiled()
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        w = self._sample_weight(y, sample_weight, class_weight)
        loss = self._plan.forward_backward(X, y, w)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in loss_and_gradients")
        return float(loss), [g.copy() for g in self._views(self.grads)]

    def _require_built(self):
        if self.input_dim is None:
            raise RuntimeError("the model is not built yet: pass input_dim or call fit() first")

    # -- description -------------------------------------------------------------------

    def count_params(self):
        """Number of trainable parameters (every W and b entry)."""
        self._require_built()
        return sum(n_in * n_out + n_out for n_in, n_out, _, _ in self._layout)

    def summary(self):
        """A table of layers, output shapes and parameter counts (returned and printed)."""
        lines = [f"Sequential(backend={self.backend!r}, dtype={self.dtype.name})"]
        n_in = self.input_dim
        total = 0
        for i, layer in enumerate(self.layers):
            count = (n_in * layer.units + layer.units) if n_in is not None else None
            total += count or 0
            lines.append(f"  {i}: {layer!r:45s} output (n, {layer.units:<5d}) params "
                         f"{count if count is not None else '?'}")
            n_in = layer.units
        lines.append(f"total parameters: {total if self.input_dim is not None else '?'}")
        text = "\n".join(lines)
        print(text)
        return text

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"Sequential([{inner}], input_dim={self.input_dim}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")


def _divergence_error(status, loss, where):
    """The FloatingPointError for a plan status (see Plan.status)."""
    what = {1: f"the loss is {loss}",
            2: f"the loss is {loss} but a gradient is not finite (float overflow)",
            3: "a parameter became inf or NaN in the optimizer update"}[status]
    kept = ("the parameters are unchanged" if status in (1, 2)
            else "the parameters are no longer usable: restore saved weights")
    return FloatingPointError(f"training diverged {where}: {what}; {kept}. Lower the learning "
                              "rate or scale the inputs and targets")


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


def _class_weight_table(loss, n_outputs, class_weight):
    """class_weight as an array of one weight per class, or None."""
    if class_weight is None:
        return None
    if not loss.classification:
        raise ValueError(f"class_weight needs a classification loss, not {loss!r}; "
                         "weight samples with sample_weight")
    if loss.name == "binary_cross_entropy":
        if n_outputs != 1:
            raise ValueError("class_weight with binary_cross_entropy needs a single output "
                             "(classes 0 and 1); weight multi-label samples with sample_weight")
        return class_weight_table(class_weight, 2)
    return class_weight_table(class_weight, n_outputs)


def _accuracy(out, y, loss):
    """Fraction of samples whose top output is the true class; under
    binary_cross_entropy, fraction of outputs on the right side of 0.5 (logit 0)."""
    if loss.name == "binary_cross_entropy":
        return float(np.mean((out > 0) == (y >= 0.5)))
    truth = y if y.ndim == 1 else y.argmax(axis=1)
    return float(np.mean(out.argmax(axis=1) == truth))
