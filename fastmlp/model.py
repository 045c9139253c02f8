"""Sequential: a stack of layers trained by one compiled native step."""
import time

import numpy as np

from . import callbacks as _callbacks
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import regularizers as _regularizers
from . import schedules as _schedules
from ._backend import BACKENDS, kernels
from ._kernels.checks import all_finite
from ._memory import aligned_zeros
from ._validation import (check_batch_rows, check_bounded_target,
                          check_classification_target, check_distribution_target,
                          check_features, check_label_target, check_positive_int,
                          check_regression_target, check_sample_weight, class_weight_table,
                          rows_of)
from .initializers import initialize
from .callbacks import History
from .layers import BatchNorm, Dense, Dropout, Layer, Maxout, PReLU, layer_config

__all__ = ["Sequential", "History"]

# Each parameter array (W, b, gamma, beta, alpha) and each running statistic
# starts on a 64-byte boundary of its flat buffer (16 float32), and the flat
# buffers start on one in memory (aligned_zeros), so each array is aligned.
_ALIGN = 16
# With a live progress bar, fit() returns to Python about this often (seconds).
_PROGRESS_INTERVAL = 0.1


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
        self.regularizer = None
        self.metrics = []
        self.class_weight = None
        self._class_weights = None   # one weight per class, from compile's class_weight
        self.metadata = {}       # kept by save() and load_model()
        self.stop_training = False
        self.history = None
        self._plan = None
        self._epochs_done = 0  # the epoch clock of learning-rate schedules
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
        self._layout, size, state_size = self._compute_layout(input_dim)
        self.params = aligned_zeros(size, self.dtype)
        self.grads = aligned_zeros(size, self.dtype)
        self.state = aligned_zeros(state_size, self.dtype)
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

    def _compute_layout(self, input_dim):
        """(layout, parameter buffer size, state buffer size) for `input_dim`
        features, without allocating anything.  The layout has one dict per
        layer with parameters: kind, n_in, n_out, "arrays" [(offset, shape)]
        and, for a batch norm, the offsets of its running statistics."""
        layout = []
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
            layout.append(entry)
            n_in = n_out
        return layout, offset, state_offset

    def compile(self, loss="softmax_cross_entropy", optimizer="adam", metrics=None,
                regularizer=None, class_weight=None):
        """Choose the loss, the optimizer and the metrics fit()/evaluate() report.

        Parameters
        ----------
        loss : str or Loss
            "softmax_cross_entropy", "binary_cross_entropy", "kl_divergence", "hinge",
            "mse", "mae", "mape", "huber", "poisson", or fm.losses.huber(delta) /
            fm.losses.mape(epsilon); formulas and conventions in :mod:`fastmlp.losses`.
        optimizer : Optimizer or a name ("adam", "sgd", "rmsprop", ...; see
            :mod:`fastmlp.optimizers`); its lr may be a :mod:`fastmlp.schedules` schedule
        metrics : list of str or Metric, or None
            "accuracy", "top_k_accuracy" (k=5), "top_<k>_accuracy" for
            classification; "mse", "mae", "r2" for regression (see
            :mod:`fastmlp.metrics`).
        regularizer : None, or a :mod:`fastmlp.regularizers` penalty / max-norm
            constraint on the weight matrices (a list combines several); the
            losses the model reports then include the penalty
        class_weight : dict {class: weight} or None
            Part of the loss from now on: every sample's loss is multiplied by its
            class's weight (classes not named: 1) in train_step, fit, evaluate and
            loss_and_gradients.  For the classification losses; with targets t
            instead of labels the weight is sum_c t_c class_weight[c], and for
            binary_cross_entropy (one output only) the classes are 0 and 1.
        """
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        regularizer = _regularizers.get(regularizer)
        if isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        metrics = [_metrics.get(m) for m in (metrics or [])]
        for m in metrics:
            if m.classification != loss.classification:
                need = "a classification" if m.classification else "a regression"
                raise ValueError(f"the {m.name} metric needs {need} loss, not {loss.name}")
        names = [m.name for m in metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"metric names must be distinct and not 'loss', got {names}")
        if loss.name == "binary_cross_entropy":
            for m in metrics:
                if m.classification and m.name != "accuracy":
                    raise ValueError(f"the {m.name} metric needs one class per sample; under "
                                     "binary_cross_entropy only accuracy is defined")
        width = self.n_outputs
        self._check_output(loss, width)
        if class_weight is not None and width is None:
            raise ValueError("class_weight needs the model's output width: pass input_dim")
        table = _class_weight_table(loss, width, class_weight)
        self.loss, self.optimizer, self.metrics = loss, optimizer, metrics
        self.regularizer = regularizer
        self.class_weight = None if class_weight is None else dict(class_weight)
        self._class_weights = table
        if self.input_dim is not None:
            self._make_plan()
        return self

    def _check_output(self, loss, width):
        """The last layer must suit the loss: logits for the losses with a fused
        link, and at least loss.min_units outputs (`width`: the model's output
        width, None while unknown)."""
        last = self._units[-1]
        if loss.on_logits:
            link = "sigmoid" if loss.name == "binary_cross_entropy" else "softmax"
            if isinstance(last, PReLU):
                raise ValueError(f"with {loss.name} the last layer must output logits (a Dense "
                                 "or BatchNorm with activation=None, or a Maxout), not a PReLU: "
                                 f"the {link} is fused into the loss and applied by predict()")
            if last.activation.name != "identity":
                raise ValueError(f"with {loss.name} the last layer must output logits "
                                 f"(activation=None), not {last.activation!r}: the {link} is "
                                 "fused into the loss and applied by predict()")
        if width is not None and width < loss.min_units:
            raise ValueError(f"{loss.name} needs a last layer with >= {loss.min_units} units")

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
                                        self.loss.param, seed=self.seed, running=self.state)
        self._opt_state = [aligned_zeros(self.params.shape, self.dtype)
                           for _ in range(self.optimizer.n_state)]
        self.optimizer._init_state(self._opt_state)
        self.optimizer._bind(self._plan, self._opt_state)
        (self.regularizer or _regularizers.Regularizer())._bind(self._plan)
        self._epochs_done = 0  # the epoch clock of learning-rate schedules

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
        check_batch_rows(rows_of(x), "x")
        x = self._check_X(x)
        y = self._check_y(y, x.shape[0])
        w = self._sample_weight(y, sample_weight, class_weight)
        if self.optimizer.schedule is not None:
            self._plan.lr = self.optimizer.schedule(self._plan.step, self._epochs_done)
        loss = self._plan.train_step(x, y, w)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in train_step")
        return loss

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
            validation_split=0.0, validation_data=None, callbacks=None, initial_epoch=0,
            sample_weight=None, class_weight=None):
        """Train for epochs `initial_epoch` .. `epochs` - 1 over (X, y) in mini-batches.

        Each epoch runs natively: the batches (re-shuffled every epoch when
        `shuffle`) are gathered and stepped without returning to Python, unless a
        callback asks to see every batch (then one native call per batch) or a
        live progress bar is drawn (then one per chunk of batches lasting about
        0.1 s).  Either way the numbers are the same.  A
        learning-rate schedule is evaluated for every batch of the epoch
        before it starts (see :mod:`fastmlp.schedules`); with a full-batch
        optimizer (``fm.GD``) the batch is the whole training set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : class labels (n_samples,) or targets (n_samples, n_outputs)
        epochs : int >= 0
            Index of the last epoch + 1 (so ``initial_epoch=2, epochs=5`` runs three).
        batch_size : int >= 1 (the last batch of an epoch may be smaller)
        shuffle : bool
        verbose : 0 silent; 1 a live progress bar per epoch (tqdm when installed)
            on a terminal, one line per epoch otherwise; 2 one line per epoch
        validation_split : float in [0, 1): the last fraction of (X, y) (and of
            sample_weight) is held out
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val) or None
            (takes precedence over the split)
        callbacks : list of fastmlp.callbacks.Callback or None
        initial_epoch : int >= 0
            Epoch to start from, to resume a run (e.g. after :func:`fastmlp.load_model`).
        sample_weight : array-like of shape (n_samples,) of weights >= 0, or None
            Each sample's loss is multiplied by its weight; the mean still divides
            by the number of samples (see :mod:`fastmlp.losses`).
        class_weight : dict {class: weight} or None
            Class weights for training (None: compile's), multiplied into
            sample_weight.  The validation loss uses compile's, as evaluate() does.

        Returns
        -------
        History with "loss" (and "val_loss", the compiled metrics, and "lr" under a
        schedule) per epoch; the losses include a regularizer's penalty.
        A Ctrl-C stops after the current batch and returns the history so far (the
        interrupted epoch is not in it); the model holds the weights after the last
        completed batch.  A non-finite loss or gradient raises FloatingPointError
        naming the epoch and batch (the weights before that batch are kept), or,
        with a TerminateOnNaN callback, ends training quietly.
        """
        if self.loss is None:
            raise RuntimeError("call compile() before fit()")
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        initial_epoch = check_positive_int(initial_epoch, "initial_epoch", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        if verbose not in (0, 1, 2, False, True):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        X, y, sample_weight, X_val, y_val, w_val = self._split_validation(
            X, y, sample_weight, validation_split, validation_data)
        w = self._sample_weight(y, sample_weight, class_weight)

        n = X.shape[0]
        batch_size = self._fit_batch_size(batch_size, n)
        check_batch_rows(min(batch_size, n), "a batch of X")
        n_batches = -(-n // batch_size)
        batch_losses = np.empty(n_batches)
        sizes = np.full(n_batches, batch_size, dtype=np.float64)
        sizes[-1] = n - batch_size * (n_batches - 1)
        keys = ["loss"] + [m.name for m in self.metrics]
        if X_val is not None:
            keys += ["val_" + k for k in keys]
        params = {"epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size,
                  "samples": n, "steps": n_batches, "verbose": int(verbose), "metrics": keys}
        callbacks = list(callbacks or [])
        if verbose:
            callbacks.append(_callbacks.ProgressLogger(live=None if verbose == 1 else False))
        callbacks = _callbacks.CallbackList(callbacks, self, params)
        history = History()
        history.params = params
        self.history = history
        self.stop_training = False
        logs = None
        callbacks.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                callbacks.on_epoch_begin(epoch)
                order = (self._shuffle_rng.permutation(n) if shuffle
                         else np.arange(n)).astype(np.int64)
                start = time.perf_counter()
                done = self._train_epoch(X, y, order, batch_size, batch_losses, sizes,
                                         callbacks, start, sample_weight=w,
                                         lrs=self._epoch_rates(n_batches))
                status = self._plan.status
                if status:
                    error = _divergence_error(status, batch_losses[done - 1],
                                              f"at epoch {epoch + 1}, batch {done}")
                    if status == 3 or not callbacks.stops_on_divergence:
                        raise error
                    print(f"stopping: {error}")
                    break
                callbacks.on_progress(done, self._progress_logs(batch_losses, sizes, done,
                                                                start))
                logs = {"loss": float(np.dot(batch_losses[:done], sizes[:done])
                                      / sizes[:done].sum())}
                if self.metrics:  # measured on the training set after the epoch
                    on_train = self.evaluate(X, y)
                    logs.update({m.name: on_train[m.name] for m in self.metrics})
                if X_val is not None:
                    logs.update({"val_" + k: v
                                 for k, v in self.evaluate(X_val, y_val, w_val).items()})
                self._end_epoch(logs)
                callbacks.on_epoch_end(epoch, logs)
                history._append(epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            if verbose:
                print(f"\ninterrupted in epoch {epoch + 1}; the model holds the weights after "
                      "the last completed batch")
        finally:
            callbacks.on_train_end(logs)
        return history

    def _split_validation(self, X, y, sample_weight, validation_split, validation_data):
        """(X, y, sample_weight, X_val, y_val, w_val): the validation data given, or
        the last fraction of X (and of the weights)."""
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or "
                                 "(X_val, y_val, sample_weight_val)")
            X_val = self._check_X(validation_data[0])
            y_val = self._check_y(validation_data[1], X_val.shape[0])
            w_val = None
            if len(validation_data) == 3 and validation_data[2] is not None:
                w_val = check_sample_weight(validation_data[2], X_val.shape[0], self.dtype,
                                            "validation sample_weight")
            return X, y, sample_weight, X_val, y_val, w_val
        if validation_split > 0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                 f"training or for validation out of {X.shape[0]}")
            w, w_val = ((None, None) if sample_weight is None
                        else (sample_weight[:-n_val], sample_weight[-n_val:]))
            return X[:-n_val], y[:-n_val], w, X[-n_val:], y[-n_val:], w_val
        return X, y, sample_weight, None, None, None

    def _train_epoch(self, X, y, order, batch_size, losses, sizes, callbacks, start,
                     sample_weight=None, lrs=None):
        """Train on the batches of `order`; returns the number of batches done.

        One native call for the whole epoch unless a callback needs batch hooks
        (one call per batch) or progress (calls on chunks of batches sized to
        last about _PROGRESS_INTERVAL seconds).  The batches, and so the
        numbers, are the same either way.  `lrs`: each batch's learning rate
        (from a schedule), or None."""
        plan = self._plan
        n_batches = losses.shape[0]
        if not (callbacks.wants_batch_hooks or callbacks.wants_progress):
            return plan.train_epoch(X, y, order, batch_size, losses, sample_weight=sample_weight,
                                    lrs=lrs)
        per_batch = callbacks.wants_batch_hooks
        done, chunk = 0, 1
        last_report = time.perf_counter()
        while done < n_batches:
            chunk = min(chunk, n_batches - done)
            lo, hi = done * batch_size, min((done + chunk) * batch_size, order.shape[0])
            if per_batch:
                callbacks.on_batch_begin(done, {"size": hi - lo})
            t0 = time.perf_counter()
            k = plan.train_epoch(X, y, order[lo:hi], batch_size, losses[done:done + chunk],
                                 sample_weight=sample_weight,
                                 lrs=None if lrs is None else lrs[done:done + chunk])
            now = time.perf_counter()
            done += k
            if plan.status:
                return done
            if per_batch:
                callbacks.on_batch_end(done - 1, {"loss": float(losses[done - 1]),
                                                  "size": hi - lo})
                if self.stop_training:
                    return done
            else:  # size the next chunk to take about _PROGRESS_INTERVAL
                chunk = max(1, int(_PROGRESS_INTERVAL * k / max(now - t0, 1e-9)))
            if callbacks.wants_progress and done < n_batches \
                    and now - last_report >= _PROGRESS_INTERVAL:
                last_report = now
                callbacks.on_progress(done, self._progress_logs(losses, sizes, done, start))
        return done

    @staticmethod
    def _progress_logs(losses, sizes, done, start):
        samples = float(sizes[:done].sum())
        loss = float(np.dot(losses[:done], sizes[:done]) / samples) if done else float("nan")
        return {"loss": loss, "samples": int(samples), "seconds": time.perf_counter() - start}

    def _fit_batch_size(self, batch_size, n):
        """The batch size fit() uses: the whole set for a full-batch optimizer (GD)."""
        return n if self.optimizer.full_batch else batch_size

    def _epoch_rates(self, n_batches):
        """Learning rate of each batch of the next epoch from the optimizer's
        schedule (None: the constant rate the plan holds)."""
        schedule = self.optimizer.schedule
        if schedule is None:
            return None
        return _schedules.epoch_rates(schedule, self._plan.step, self._epochs_done, n_batches)

    def _end_epoch(self, logs):
        """Advance the schedule's epoch clock; log the rate the epoch ended with and
        let a stateful schedule (reduce_on_plateau) see the epoch's losses."""
        self._epochs_done += 1
        schedule = self.optimizer.schedule
        if schedule is not None:
            logs["lr"] = self._plan.lr
            schedule._end_epoch(logs)

    # -- inference --------------------------------------------------------------------

    def predict(self, X):
        """The network's output for X: class probabilities (softmax) under softmax
        cross-entropy, the last layer's activations otherwise.

        X : array-like of shape (n_samples, n_features)
        Returns ndarray of shape (n_samples, n_outputs) in the model's dtype.
        Raises FloatingPointError when the output overflows (weights too large for
        the dtype, as after a diverged fit), rather than returning inf or NaN.
        """
        # Fast path (single-row latency): X already is what check_features
        # returns (a non-empty C-contiguous 2-D array of the model's dtype with
        # the model's features); only finiteness is left to check.  Anything
        # else, and a non-finite X (for its error message), takes the full checks.
        if type(X) is np.ndarray and X.ndim == 2 and X.dtype == self.dtype \
                and X.flags.c_contiguous and X.shape[0] > 0 and self.loss is not None \
                and X.shape[1] == self.input_dim and all_finite(X):
            out = self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype))
        else:
            self._require_compiled()
            X = self._check_X(X)
            out = self._plan.predict(X, np.empty((X.shape[0], self.n_outputs), self.dtype))
        if not all_finite(out):  # finite inputs, so the weights overflowed the dtype
            raise FloatingPointError(
                f"predict: the output holds inf or NaN for finite inputs: the inputs or the "
                f"weights are too large for {self.dtype.name} (did training diverge?). Scale "
                f"the inputs, or lower the learning rate")
        return out

    def activations(self, X):
        """Every layer's output for X at inference, computed layer by layer:
        [A1, ..., AL], one entry per Dense, Maxout, BatchNorm and PReLU layer, with
        A_l = f_l(A_{l-1} W_l + b_l) of shape (n_samples, units_l) for a Dense
        layer, A_0 = X (Dropout layers pass their input through at inference, so
        they add no entry; batch norms use their running statistics).

        The last entry is the last layer's own output (logits under softmax
        cross-entropy; predict() applies the softmax).  For looking inside the
        network (see :func:`fastmlp.dead_units`, :func:`fastmlp.plot.plot_representations`).
        """
        self._require_built()
        X = self._check_X(X)
        k = self._kernels
        views = iter(self._views(self.params))
        state = iter(self._state_views())
        outputs = []
        inp = X
        for layer, entry in zip(self._units, self._layout):
            arrays = [next(views) for _ in entry["arrays"]]
            A = np.empty((X.shape[0], entry["n_out"]), self.dtype)
            if entry["kind"] == "dense":
                act = layer.activation
                Z = A if act.name == "identity" else np.empty_like(A)
                k.dense_forward(inp, *arrays, act.name, Z, A, act.alpha)
            elif entry["kind"] == "maxout":
                W, b = arrays
                pieces = np.matmul(inp, W)
                pieces += b
                k.maxout_forward(pieces, A, layer.pieces)
            elif entry["kind"] == "batchnorm":
                act = layer.activation
                Z = np.empty_like(A)
                k.batchnorm_inference(inp, *arrays, next(state), next(state), Z, layer.eps)
                k.activation_forward(Z, act.name, A, act.alpha)
            else:
                k.prelu_forward(inp, arrays[0], A)
            outputs.append(A)
            inp = A
        return outputs

    def evaluate(self, X, y, sample_weight=None, class_weight=None):
        """Mean loss (and compiled metrics, unweighted) on (X, y), as a dict; the loss
        includes a regularizer's penalty.

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
        result = {"loss": float(loss) + self._plan.penalty()}
        for m in self.metrics:
            if self.loss.name == "binary_cross_entropy":  # outputs are logits of P(1)
                result[m.name] = float(np.mean((out > 0) == (y >= 0.5)))
            else:
                result[m.name] = m(out, y)
        return result

    # -- parameters ----------------------------------------------------------------------

    def _views(self, flat):
        return [self._array(flat, span) for entry in self._layout for span in entry["arrays"]]

    def _weight_names(self):
        """Names of the get_weights() arrays: W1, b1 (Dense, Maxout), gamma2, beta2
        (BatchNorm), alpha3 (PReLU), numbered by layer with parameters."""
        names = {"dense": ("W", "b"), "maxout": ("W", "b"), "batchnorm": ("gamma", "beta"),
                 "prelu": ("alpha",)}
        return [f"{name}{i}" for i, entry in enumerate(self._layout, 1)
                for name in names[entry["kind"]]]

    def _weight_matrix_indices(self):
        """Indices in get_weights() order of the weight matrices (Dense and Maxout W)."""
        indices, i = [], 0
        for entry in self._layout:
            if entry["kind"] in ("dense", "maxout"):
                indices.append(i)
            i += len(entry["arrays"])
        return indices

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

    def loss_and_gradients(self, X, y, sample_weight=None, class_weight=None):
        """Mean loss on (X, y) and its gradient w.r.t. every parameter, without an update.

        sample_weight : array-like of shape (n,) of weights >= 0, or None
        class_weight : dict {class: weight} or None (None: compile's)
        Returns (loss, [dW1, db1, dW2, db2, ...]) in get_weights() order.  With a
        regularizer, the loss includes its penalty and each weight matrix's
        gradient its gradient.  Batch norms use the batch's statistics, as in
        training; their running statistics are not updated.
        """
        self._require_compiled()
        check_batch_rows(rows_of(X), "X")
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        w = self._sample_weight(y, sample_weight, class_weight)
        loss = self._plan.forward_backward(X, y, w)
        if self._plan.status:
            raise _divergence_error(self._plan.status, loss, "in loss_and_gradients")
        grads = [g.copy() for g in self._views(self.grads)]
        if self.regularizer is not None:
            loss += self._plan.penalty()
            weights = self._views(self.params)
            for i in self._weight_matrix_indices():  # not biases, gamma, beta or slopes
                grads[i] += self.regularizer.gradient(weights[i])
        return float(loss), grads

    # -- saving ------------------------------------------------------------------------

    def get_config(self):
        """The architecture as JSON-able values: layers, input_dim, dtype, seed, backend."""
        return {"layers": [layer_config(layer) for layer in self.layers],
                "input_dim": self.input_dim, "dtype": self.dtype.name, "seed": self.seed,
                "backend": self.backend}

    def save(self, path, metadata=None):
        """Write the model to `path` (see :mod:`fastmlp.io`): architecture, compile
        settings, weights, optimizer state, step counter and shuffling state, so
        that :func:`fastmlp.load_model` gives a model whose fit() continues exactly.

        metadata : JSON-able dict or None, stored alongside (``load_model(path).metadata``).
        """
        from .io import save_model

        save_model(self, path, metadata=metadata)

    def _require_built(self):
        if self.input_dim is None:
            raise RuntimeError("the model is not built yet: pass input_dim or call fit() first")

    # -- description -------------------------------------------------------------------

    def count_params(self):
        """Number of trainable parameters (every entry of W, b, gamma, beta, alpha)."""
        self._require_built()
        return sum(int(np.prod(shape)) for entry in self._layout for _, shape in entry["arrays"])

    def summary(self, print_fn=print):
        """A table of the layers: output shape, W and b shapes and parameter counts
        (every entry of W (n_in, n_out) and b (n_out,)), then the totals.  Printed
        with `print_fn` (None: not printed) and returned."""
        text = self._summary_text()
        if print_fn is not None:
            print_fn(text)
        return text

    def _summary_text(self):
        built = self.input_dim is not None
        dims = " -> ".join(str(d) for d in [self.input_dim if built else "?"]
                           + [layer.units for layer in self._units
                              if isinstance(layer, (Dense, Maxout))])
        lines = [f"Sequential: {dims}  ({self.dtype.name}, {self.backend} backend)"]
        rows = [("#", "layer", "output", "W", "b", "params")]
        n_in = self.input_dim
        weights = biases = others = 0
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dropout):
                rows.append((str(i), repr(layer), f"(n, {n_in if built else '?'})", "", "", "0"))
                continue
            n_out = layer.units if isinstance(layer, (Dense, Maxout)) else n_in
            shown_in = n_in if built else "?"
            shown_out = n_out if n_out is not None else "?"
            if isinstance(layer, (Dense, Maxout)):
                n_z = layer.units * getattr(layer, "pieces", 1)
                w_shape, b_shape = f"{shown_in} x {n_z}", str(n_z)
                if built:
                    weights += n_in * n_z
                    biases += n_z
            elif isinstance(layer, BatchNorm):
                w_shape, b_shape = f"gamma {shown_out}", f"beta {shown_out}"
            else:
                w_shape, b_shape = f"alpha {shown_out}", ""
            count = _param_count(layer, n_in) if built else None
            if built and not isinstance(layer, (Dense, Maxout)):
                others += count
            rows.append((str(i), repr(layer), f"(n, {shown_out})", w_shape, b_shape,
                         f"{count:,}" if built else "?"))
            n_in = n_out
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        for r in rows:
            lines.append("  " + "  ".join(cell.rjust(w) if c in (0, 4, 5) else cell.ljust(w)
                                          for c, (cell, w) in enumerate(zip(r, widths))).rstrip())
        if built:
            parts = f"{weights:,} weights + {biases:,} biases"
            if others:
                parts += f" + {others:,} batch-norm and PReLU parameters"
            lines.append(f"total: {weights + biases + others:,} parameters ({parts})")
        else:
            lines.append("total: ? parameters (not built: pass input_dim or call fit())")
        if self.loss is not None:
            metrics = ", ".join(m.name for m in self.metrics) or "none"
            lines.append(f"loss: {self.loss.name}; optimizer: {self.optimizer!r}; "
                         f"metrics: {metrics}")
        return "\n".join(lines)

    def __str__(self):
        return self._summary_text()

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
            if i == 0 or _kind(layers[i - 1]) is None:
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
