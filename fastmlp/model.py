"""Sequential: a stack of layers trained by one compiled native step."""
import time

import numpy as np

from . import losses as _losses
from . import optimizers as _optimizers
from ._backend import BACKENDS, kernels
from ._validation import (check_classification_target, check_features, check_positive_int,
                          check_regression_target)
from .initializers import initialize
from .layers import BatchNorm, Dense, Dropout, Layer, Maxout, PReLU

__all__ = ["Sequential", "History"]

# Each parameter array (W, b, gamma, beta, alpha) and each running statistic
# starts on a 64-byte boundary of its flat buffer (16 float32).
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
    """A multi-layer perceptron: layers applied in list order (as Keras).

    All parameters live in one flat buffer (each layer's W and b, gamma and
    beta, PReLU slopes are views into it), and so do their gradients and the
    optimizer state; the batch norms' running statistics live in a second flat
    buffer, ``model.state``.  compile() builds a plan that allocates every
    buffer once; train_step() is then one native call doing forward, loss,
    backward and update with no Python per layer.

    Parameters
    ----------
    layers : list of Dense, Maxout, BatchNorm, PReLU and Dropout layers
        A Dropout applies to the output of the layer before it.
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
        self._units, self._dropout = _stack(layers)
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
        self._plan = None
        if input_dim is not None:
            self.build(input_dim)

    # -- construction ------------------------------------------------------------

    def build(self, input_dim):
        """Allocate and initialise the parameters for `input_dim` input features.

        Layout of the flat buffers, layer by layer in list order (each array
        aligned to 16 elements): Dense and Maxout W (n_in, units * pieces) and
        b; BatchNorm gamma and beta; PReLU alpha.  ``model.state`` holds each
        BatchNorm's running mean and running variance, in order.
        """
        input_dim = check_positive_int(input_dim, "input_dim")
        if self.loss is not None:
            self._check_output(self.loss, self._output_width(input_dim))
        rng = np.random.default_rng(self.seed)
        self._layout = []          # per layer with parameters: kind, sizes and offsets
        offset, state_offset, n_in = 0, 0, input_dim
        for layer in self._units:
            entry = {"kind": _kind(layer), "n_in": n_in}
            if isinstance(layer, (Dense, Maxout)):
                n_out = layer.units
                n_z = n_out * getattr(layer, "pieces", 1)
                w_off = offset
                b_off = _aligned(w_off + n_in * n_z)
                offset = _aligned(b_off + n_z)
                entry["arrays"] = [(w_off, (n_in, n_z)), (b_off, (n_z,))]
            elif isinstance(layer, BatchNorm):
                n_out = n_in
                gamma_off = offset
                beta_off = _aligned(gamma_off + n_out)
                offset = _aligned(beta_off + n_out)
                entry["arrays"] = [(gamma_off, (n_out,)), (beta_off, (n_out,))]
                entry["rm_off"] = state_offset
                entry["rv_off"] = _aligned(state_offset + n_out)
                state_offset = _aligned(entry["rv_off"] + n_out)
            else:  # PReLU
                n_out = n_in
                entry["arrays"] = [(offset, (n_out,))]
                offset = _aligned(offset + n_out)
            entry["n_out"] = n_out
            self._layout.append(entry)
            n_in = n_out
        self.params = np.zeros(offset, dtype=self.dtype)
        self.grads = np.zeros(offset, dtype=self.dtype)
        self.state = np.zeros(state_offset, dtype=self.dtype)
        for layer, entry in zip(self._units, self._layout):
            first = self._array(self.params, entry["arrays"][0])
            if isinstance(layer, Dense):
                first[...] = initialize(layer.init, rng, entry["n_in"], entry["n_out"])
            elif isinstance(layer, Maxout):  # each piece drawn as a Dense(units) would be
                first[...] = np.concatenate([initialize(layer.init, rng, entry["n_in"], layer.units)
                                             for _ in range(layer.pieces)], axis=1)
            elif isinstance(layer, BatchNorm):
                first[...] = 1.0                                            # gamma
                self.state[entry["rv_off"]:entry["rv_off"] + entry["n_out"]] = 1.0  # running var
            else:
                first[...] = layer.init                                     # PReLU slopes
        self.input_dim = input_dim
        if self.loss is not None:
            self._make_plan()
        return self

    @staticmethod
    def _array(flat, span):
        off, shape = span
        return flat[off:off + int(np.prod(shape))].reshape(shape)

    def compile(self, loss="softmax_cross_entropy", optimizer="adam", metrics=None):
        """Choose the loss, the optimizer and the metrics fit()/evaluate() report.

        Parameters
        ----------
        loss : "softmax_cross_entropy" or "mse" (see :mod:`fastmlp.losses`)
        optimizer : Optimizer or "adam" / "sgd"
        metrics : list of str or None ("accuracy" for classification)
        """
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in _METRICS:
                raise ValueError(f"unknown metric {m!r}; choose from {', '.join(_METRICS)}")
            if m == "accuracy" and not loss.classification:
                raise ValueError("the accuracy metric needs a classification loss")
        self._check_output(loss, self.n_outputs)
        self.loss, self.optimizer, self.metrics = loss, optimizer, metrics
        if self.input_dim is not None:
            self._make_plan()
        return self

    def _check_output(self, loss, width):
        """The last layer must suit the loss: logits for softmax cross-entropy
        (`width`: the model's output width, None while unknown)."""
        last = self._units[-1]
        if loss.name != "softmax_cross_entropy":
            return
        if isinstance(last, PReLU):
            raise ValueError("with softmax_cross_entropy the last layer must output logits (a "
                             "Dense or BatchNorm with activation=None, or a Maxout), not a "
                             "PReLU: the softmax is fused into the loss and applied by predict()")
        if last.activation.name != "identity":
            raise ValueError("with softmax_cross_entropy the last layer must output logits "
                             f"(activation=None), not {last.activation!r}: the softmax is "
                             "fused into the loss and applied by predict()")
        if width is not None and width < 2:
            raise ValueError("softmax_cross_entropy needs a last layer with >= 2 units")

    def _layer_specs(self):
        """The plan's layer specs (see fastmlp._layer_specs) from the layout."""
        specs = []
        for layer, drop, entry in zip(self._units, self._dropout, self._layout):
            spec = {"kind": entry["kind"], "n_in": entry["n_in"], "n_out": entry["n_out"],
                    "w_off": entry["arrays"][0][0], "drop": drop}
            if len(entry["arrays"]) > 1:
                spec["b_off"] = entry["arrays"][1][0]
            if isinstance(layer, (Dense, BatchNorm)):
                spec["act"] = self._kernels.activation_code(layer.activation.name)
                spec["alpha"] = layer.activation.alpha
            if isinstance(layer, Maxout):
                spec["pieces"] = layer.pieces
            if isinstance(layer, BatchNorm):
                spec.update(rm_off=entry["rm_off"], rv_off=entry["rv_off"],
                            momentum=layer.momentum, eps=layer.eps)
            specs.append(spec)
        return specs

    def _make_plan(self):
        specs = self._layer_specs()
        self._plan = self._kernels.Plan(specs, self.params, self.grads, self.loss.kind,
                                        seed=self.seed, running=self.state)
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
        """Width of the model's output (None while it depends on an unknown input_dim)."""
        return self._output_width(self.input_dim)

    def _output_width(self, input_dim):
        width = input_dim
        for layer in self._units:
            if isinstance(layer, (Dense, Maxout)):
                width = layer.units
        return width

    @property
    def decay_spans(self):
        """[(offset, size), ...]: where the weight matrices (Dense and Maxout W) lie
        in the flat parameter buffer; weight decay applies to these only (not to
        biases, BatchNorm's gamma and beta or PReLU's slopes)."""
        self._require_built()
        return [(entry["arrays"][0][0], int(np.prod(entry["arrays"][0][1])))
                for entry in self._layout if entry["kind"] in ("dense", "maxout")]

    # -- data checks ---------------------------------------------------------------

    def _check_X(self, X):
        n_features = self.input_dim
        if n_features is None:
            X = check_features(X, None, self.dtype)
            self._require_compiled(X.shape[1])
            return X
        return check_features(X, n_features, self.dtype)

    def _check_y(self, y, n):
        if self.loss.classification:
            return check_classification_target(y, n, self.n_outputs, self.dtype)
        return check_regression_target(y, n, self.n_outputs, self.dtype)

    # -- training --------------------------------------------------------------------

    def train_step(self, x, y):
        """One optimizer step on the batch (x, y); returns its mean loss (before the step).

        x : array-like of shape (n, n_features)
        y : class labels (n,) or targets (n, n_outputs)
        """
        if self.loss is None:
            raise RuntimeError("call compile() before training the model")
        x = self._check_X(x)
        y = self._check_y(y, x.shape[0])
        loss = self._plan.train_step(x, y)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in train_step")
        return loss

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
            validation_split=0.0, validation_data=None):
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
        validation_split : float in [0, 1): the last fraction of (X, y) is held out
        validation_data : (X_val, y_val) or None (takes precedence over the split)

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
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            X_val = self._check_X(validation_data[0])
            y_val = self._check_y(validation_data[1], X_val.shape[0])
        elif validation_split > 0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                 f"training or for validation out of {X.shape[0]}")
            X, X_val = X[:-n_val], X[-n_val:]
            y, y_val = y[:-n_val], y[-n_val:]
        else:
            X_val = y_val = None

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
                done = self._plan.train_epoch(X, y, order, batch_size, batch_losses)
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
                logs.update({"val_" + k: v for k, v in self.evaluate(X_val, y_val).items()})
            history._append(epoch, logs)
            if verbose:
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"epoch {epoch + 1}/{epochs} - {elapsed:.2f}s - {n / elapsed:,.0f} samples/s"
                      f" - {shown}")
        return history

    # -- inference --------------------------------------------------------------------

    def predict(self, X):
        """The network's output for X: class probabilities (softmax) under softmax
        cross-entropy, the last layer's activations otherwise.

        X : array-like of shape (n_samples, n_features)
        Returns ndarray of shape (n_samples, n_outputs) in the model's dtype.
        """
        self._require_compiled()
        X = self._check_X(X)
        return self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype))

    def evaluate(self, X, y):
        """Mean loss (and compiled metrics) on (X, y), as a dict."""
        self._require_compiled()
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        out = self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype),
                                 output_transform=False)
        scratch = np.empty_like(out)
        if self.loss.classification:
            loss = self._kernels.softmax_cross_entropy(out, y, scratch)
        else:
            loss = self._kernels.mean_squared_error(out, y, scratch)
        result = {"loss": float(loss)}
        for m in self.metrics:
            result[m] = _accuracy(out, y)
        return result

    # -- parameters ----------------------------------------------------------------------

    def _views(self, flat):
        return [self._array(flat, span) for entry in self._layout for span in entry["arrays"]]

    def _state_views(self):
        return [self.state[entry[key]:entry[key] + entry["n_out"]]
                for entry in self._layout if entry["kind"] == "batchnorm"
                for key in ("rm_off", "rv_off")]

    def get_weights(self):
        """Copies of the parameters, layer by layer in list order:
        [W1 (n_in, n_out), b1, W2, b2, ...] for Dense layers; a Maxout adds its W
        (n_in, units * pieces) and b, a BatchNorm its gamma and beta (n,), a
        PReLU its slopes alpha (n,).  E.g. [Dense, BatchNorm, Dense] gives
        [W1, b1, gamma1, beta1, W2, b2].  The BatchNorm running statistics are
        not parameters: see get_state()."""
        self._require_built()
        return [p.copy() for p in self._views(self.params)]

    def set_weights(self, weights):
        """Set the parameters from a list shaped like get_weights()'s (copied in)."""
        self._require_built()
        targets = self._views(self.params)
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"expected {len(targets)} arrays (see get_weights), got {len(weights)}")
        _assign(weights, targets, self.dtype, "weights")

    def get_state(self):
        """Copies of the model state that is not trained by the optimizer: each
        BatchNorm's running mean and running variance, in layer order
        ([running_mean1, running_var1, ...]; [] without BatchNorm).  The same
        numbers lie in one flat buffer, ``model.state``."""
        self._require_built()
        return [v.copy() for v in self._state_views()]

    def set_state(self, state):
        """Set the model state from a list shaped like get_state()'s (copied in;
        running variances must be >= 0)."""
        self._require_built()
        targets = self._state_views()
        state = list(state)
        if len(state) != len(targets):
            raise ValueError(f"expected {len(targets)} arrays (see get_state), got {len(state)}")
        for i in range(1, len(state), 2):
            if np.any(np.asarray(state[i]) < 0):
                raise ValueError(f"state[{i}] is a running variance and must be >= 0")
        _assign(state, targets, self.dtype, "state")

    def loss_and_gradients(self, X, y):
        """Mean loss on (X, y) and its gradient w.r.t. every parameter, without an update.

        Returns (loss, [dW1, db1, dW2, db2, ...]) in get_weights() order.  Batch
        norms use the batch's statistics, as in training; their running
        statistics are not updated.
        """
        self._require_compiled()
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        loss = self._plan.forward_backward(X, y)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in loss_and_gradients")
        return float(loss), [g.copy() for g in self._views(self.grads)]

    def _require_built(self):
        if self.input_dim is None:
            raise RuntimeError("the model is not built yet: pass input_dim or call fit() first")

    # -- description -------------------------------------------------------------------

    def count_params(self):
        """Number of trainable parameters (every entry of W, b, gamma, beta, alpha)."""
        self._require_built()
        return sum(int(np.prod(shape)) for entry in self._layout for _, shape in entry["arrays"])

    def summary(self):
        """A table of layers, output shapes and parameter counts (returned and printed)."""
        lines = [f"Sequential(backend={self.backend!r}, dtype={self.dtype.name})"]
        n_in = self.input_dim
        total = 0
        for i, layer in enumerate(self.layers):
            n_out = layer.units if isinstance(layer, (Dense, Maxout)) else n_in
            count = _param_count(layer, n_in) if n_in is not None else None
            total += count or 0
            shown = f"{n_out:<5d}" if n_out is not None else "?    "
            lines.append(f"  {i}: {layer!r:45s} output (n, {shown}) params "
                         f"{count if count is not None else '?'}")
            n_in = n_out
        lines.append(f"total parameters: {total if self.input_dim is not None else '?'}")
        text = "\n".join(lines)
        print(text)
        return text

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"Sequential([{inner}], input_dim={self.input_dim}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")


_KINDS = ((Dense, "dense"), (Maxout, "maxout"), (BatchNorm, "batchnorm"), (PReLU, "prelu"))


def _kind(layer):
    """The plan's kind name of a layer with parameters (None for anything else)."""
    for cls, name in _KINDS:
        if isinstance(layer, cls):
            return name
    return None


def _stack(layers):
    """The layers with parameters and the dropout rate after each, from a layer
    list (a Dropout must follow a layer with parameters; the last layer has
    parameters)."""
    units, dropout = [], []
    for i, layer in enumerate(layers):
        if _kind(layer) is not None:
            units.append(layer)
            dropout.append(0.0)
        elif isinstance(layer, Dropout):
            if i == 0 or not isinstance(layers[i - 1], Layer):
                raise ValueError(f"layer {i}: a Dropout must directly follow a Dense, Maxout, "
                                 "BatchNorm or PReLU layer")
            dropout[-1] = layer.rate
        else:
            raise ValueError(f"layer {i} is {layer!r}: layers must be fastmlp.Maxout, "
                             "fastmlp.BatchNorm, fastmlp.PReLU, fastmlp.Dense or fastmlp.Dropout")
    if not layers:
        raise ValueError("layers must be a non-empty list of fastmlp layers (Dense, ...)")
    if isinstance(layers[-1], Dropout):
        raise ValueError("the last layer must be a layer with parameters (the model's output), "
                         "not a Dropout")
    return units, dropout


def _param_count(layer, n_in):
    """Trainable parameters of `layer` on n_in inputs."""
    if isinstance(layer, Dense):
        return n_in * layer.units + layer.units
    if isinstance(layer, Maxout):
        return (n_in + 1) * layer.units * layer.pieces
    if isinstance(layer, BatchNorm):
        return 2 * n_in
    if isinstance(layer, PReLU):
        return n_in
    return 0


def _assign(arrays, targets, dtype, name):
    """Check every array against its target view (shape, finite, numeric), then copy all in."""
    checked = []
    for i, (w, t) in enumerate(zip(arrays, targets)):
        w = np.asarray(w)
        if w.dtype.kind not in "fiu":
            raise ValueError(f"{name}[{i}] has dtype {w.dtype}; a real numeric array is needed")
        if w.shape != t.shape:
            raise ValueError(f"{name}[{i}] has shape {w.shape}, expected {t.shape}")
        w = w.astype(dtype, copy=False)
        if not np.isfinite(w).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinity")
        checked.append(w)
    for w, t in zip(checked, targets):  # all checked before any is written
        t[...] = w


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


def _accuracy(logits, y):
    truth = y if y.ndim == 1 else y.argmax(axis=1)
    return float(np.mean(logits.argmax(axis=1) == truth))
