"""Callbacks: code that fit() runs at the start and end of training, of each
epoch and, when asked for, of each batch.

fit() runs an epoch as one native call when no callback needs to see
individual batches, so callbacks cost the train step nothing.  A callback that
overrides :meth:`Callback.on_batch_begin` or :meth:`Callback.on_batch_end`
makes fit() step batch by batch (one native call per batch, the same numbers);
a live progress bar makes it step in chunks of batches lasting about a tenth of
a second, with Python running only between chunks.

Every callback sees ``self.model`` (the model being trained) and
``self.params`` (``epochs``, ``batch_size``, ``samples``, ``steps`` (batches
per epoch), ``verbose`` and ``metrics``, the keys the epoch logs will have).
Setting ``model.stop_training = True`` ends training after the current batch
(from a batch hook) or epoch.

>>> import fastmlp as fm
>>> stop = fm.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
>>> history = model.fit(X, y, epochs=200, validation_split=0.2, callbacks=[stop])  # doctest: +SKIP
"""
import csv
import inspect
import math
import os
import sys
import time

import numpy as np

from ._progress import epoch_line, format_logs, open_bar

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger", "LambdaCallback",
           "ProgressLogger"]


class History:
    """What fit() measured: ``history.history["loss"]`` etc., one value per epoch.

    Attributes
    ----------
    history : dict of str -> list of float
        "loss" and each metric on the training data, "val_..." on the validation
        data, and whatever callbacks add (for example "lr").
    epoch : list of int
        The epoch index of each entry (starts at fit()'s ``initial_epoch``).
    params : dict
        fit()'s settings (see :mod:`fastmlp.callbacks`).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}

    def _append(self, epoch, values):
        self.epoch.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Callback:
    """Base class: override the hooks you need; the others do nothing.

    Hooks get ``logs``, a dict: at the end of an epoch the epoch's "loss", metrics
    and "val_..." values (a callback may add entries, which go into the History);
    at the end of a batch {"loss": that batch's mean loss, "size": its rows};
    at the start of a batch {"size": its rows}.
    """

    model = None
    params = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch (also after a Ctrl-C or a divergence);
        `logs` are the last epoch's."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called before epoch `epoch` (0-based) is shuffled and trained."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after the epoch's training and evaluation."""

    def on_batch_begin(self, batch, logs=None):
        """Called before batch `batch` of the epoch (overriding it costs speed)."""

    def on_batch_end(self, batch, logs=None):
        """Called after batch `batch` of the epoch (overriding it costs speed)."""

    def on_progress(self, batches_done, logs=None):
        """Called between chunks of batches when :attr:`wants_progress`, and once
        after each epoch's training, before its evaluation: `logs` has "loss"
        (mean over the batches done), "samples" (done) and "seconds" (training
        time of the epoch so far)."""

    @property
    def wants_batch_hooks(self):
        """True when this callback must see every batch (it overrides a batch hook)."""
        cls = type(self)
        return (cls.on_batch_begin is not Callback.on_batch_begin
                or cls.on_batch_end is not Callback.on_batch_end)

    #: True when on_progress should be called several times per epoch
    wants_progress = False

    #: True when a divergence (non-finite loss or gradient) should stop
    #: training quietly instead of raising FloatingPointError
    stops_on_divergence = False


class CallbackList:
    """Dispatches each hook to every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks must be fastmlp.callbacks.Callback instances, "
                                 f"got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batch_hooks = any(cb.wants_batch_hooks for cb in self.callbacks)
        self.wants_progress = any(cb.wants_progress for cb in self.callbacks)
        self.stops_on_divergence = any(cb.stops_on_divergence for cb in self.callbacks)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs)

    def on_progress(self, batches_done, logs=None):
        self._call("on_progress", batches_done, logs)


# ---- helpers ---------------------------------------------------------------------------

def _check_monitor(callback, monitor):
    keys = (callback.params or {}).get("metrics")
    if keys is not None and monitor not in keys:
        raise ValueError(f"{type(callback).__name__} monitors {monitor!r}, which fit() does not "
                         f"report; it reports {', '.join(keys)}")


def _mode(mode, monitor):
    """'min' or 'max': whether smaller or larger values of `monitor` are better."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if ("accuracy" in name or name in ("acc", "r2")) else "min"


def _improved(current, best, mode, min_delta):
    if best is None:
        return math.isfinite(current)
    if mode == "min":
        return current < best - min_delta
    return current > best + min_delta


def _non_negative(value, name):
    value = float(value)
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def get_learning_rate(model):
    """The learning rate the model's next optimizer step uses."""
    return float(model.optimizer.lr)


def set_learning_rate(model, lr):
    """Set the learning rate of the model's optimizer for the steps that follow."""
    lr = float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"the learning rate must be a finite number > 0, got {lr}")
    model.optimizer.lr = lr
    if model._plan is not None:
        model._plan.lr = lr


# ---- the callbacks -----------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs: "val_loss" (default), "loss", "val_accuracy", ...
    min_delta : float >= 0
        Smallest change that counts as an improvement.
    patience : int >= 0
        Training stops after this many epochs in a row without improvement
        (0 and 1: at the first).
    mode : "auto", "min" or "max"
        Whether the quantity should fall or rise; "auto" picks "max" for
        accuracies and r2, "min" otherwise.
    baseline : float or None
        Training stops if the quantity has not beaten it within `patience` epochs.
    restore_best_weights : bool
        At the end of training, put back the parameters of the best epoch
        (the optimizer state stays that of the last step).

    Attributes
    ----------
    stopped_epoch : int or None
        The epoch after which training stopped, None if it ran to the end.
    best : float or None
    best_epoch : int or None
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 baseline=None, restore_best_weights=False, verbose=0):
        self.monitor = str(monitor)
        self.min_delta = _non_negative(min_delta, "min_delta")
        self.patience = _non_negative_int(patience, "patience")
        self.mode = _mode(mode, self.monitor)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        _check_monitor(self, self.monitor)
        self.wait = 0
        self.best = self.baseline
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        current = float(logs[self.monitor])
        if _improved(current, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.params.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved "
                      f"for {self.wait} epochs (best {self.best})")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.params[...] = self.best_weights
            if self.verbose:
                print(f"restored the weights of epoch {self.best_epoch + 1}")


class ModelCheckpoint(Callback):
    """Save the model (see :meth:`Sequential.save`) after each epoch.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold ``{epoch}`` (1-based) and log keys, e.g.
        ``"ckpt-{epoch:03d}-{val_loss:.3f}.fm"``.
    monitor : str
        The quantity that decides "best" when `save_best_only`.
    save_best_only : bool
        Save only when `monitor` improves (a fixed `filepath` then always holds
        the best model).
    mode : "auto", "min" or "max" (see :class:`EarlyStopping`)

    A checkpoint holds the optimizer state, step counter and shuffling state,
    so ``fit(..., initial_epoch=epoch)`` on the loaded model continues the run
    exactly.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto",
                 verbose=0):
        self.filepath = os.fspath(filepath)
        self.monitor = str(monitor)
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(mode, self.monitor)
        self.verbose = verbose
        self.best = None

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            _check_monitor(self, self.monitor)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} cannot be filled in "
                             f"from epoch and {sorted(logs)}: {e}") from None
        if self.save_best_only:
            current = float(logs[self.monitor])
            if not _improved(current, self.best, self.mode, 0.0):
                return
            self.best = current
        self.model.save(path)
        if self.verbose:
            print(f"saved {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch)`` or ``schedule(epoch, lr)`` -> the new learning rate,
        with `epoch` 0-based and `lr` the current one.

    The learning rate of each epoch is added to the logs as "lr".
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise ValueError("schedule must be callable: schedule(epoch) or schedule(epoch, lr)")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _n_positional(schedule) >= 2

    def on_epoch_begin(self, epoch, logs=None):
        lr = get_learning_rate(self.model)
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        try:
            set_learning_rate(self.model, new)
        except (TypeError, ValueError):
            raise ValueError(f"the schedule gave learning rate {new!r} for epoch {epoch}; "
                             "it must be a finite number > 0") from None
        if self.verbose and new != lr:
            print(f"epoch {epoch + 1}: learning rate {new:g}")

    def on_epoch_end(self, epoch, logs=None):
        logs["lr"] = get_learning_rate(self.model)


def _n_positional(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return 2
    return sum(p.kind in kinds for p in sig.parameters.values())


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stops improving.

    Parameters
    ----------
    monitor : str
    factor : float in (0, 1)
    patience : int >= 0
        The learning rate is reduced after this many epochs in a row without
        improvement (0 and 1: at the first).
    mode : "auto", "min" or "max"
    min_delta : float >= 0
    cooldown : int >= 0
        Epochs to wait after a reduction before counting again.
    min_lr : float >= 0
        The learning rate never goes below it.

    The learning rate of each epoch is added to the logs as "lr".
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, verbose=0):
        self.monitor = str(monitor)
        self.factor = float(factor)
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.patience = _non_negative_int(patience, "patience")
        self.mode = _mode(mode, self.monitor)
        self.min_delta = _non_negative(min_delta, "min_delta")
        self.cooldown = _non_negative_int(cooldown, "cooldown")
        self.min_lr = _non_negative(min_lr, "min_lr")
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        _check_monitor(self, self.monitor)
        self.best, self.wait, self.cooldown_left = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs["lr"] = lr = get_learning_rate(self.model)
        current = float(logs[self.monitor])
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if _improved(current, self.best, self.mode, self.min_delta):
            self.best, self.wait = current, 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and lr > self.min_lr:
            new = max(lr * self.factor, self.min_lr)
            if new > 0:
                set_learning_rate(self.model, new)
                if self.verbose:
                    print(f"epoch {epoch + 1}: {self.monitor} has not improved for {self.wait} "
                          f"epochs; learning rate {lr:g} -> {new:g}")
            self.wait, self.cooldown_left = 0, self.cooldown


class TerminateOnNaN(Callback):
    """Stop training quietly when the loss becomes NaN or infinite.

    Without it a divergence raises FloatingPointError; with it fit() prints the
    same message and returns the history so far.  The native step applies no
    update from a non-finite loss or gradient, so the model keeps the weights of
    the last good step.  Epoch logs with a non-finite value (say "val_loss")
    stop training too.
    """

    stops_on_divergence = True

    def on_epoch_end(self, epoch, logs=None):
        bad = [k for k, v in (logs or {}).items()
               if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            print(f"epoch {epoch + 1}: {', '.join(bad)} is not finite; stopping")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file ("epoch" first, 0-based).

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str
    append : bool
        Add to an existing file (its header is kept) instead of replacing it.
    """

    def __init__(self, filename, separator=",", append=False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._file = None

    def on_train_begin(self, logs=None):
        has_rows = (self.append and os.path.exists(self.filename)
                    and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = has_rows

    def on_epoch_end(self, epoch, logs=None):
        keys = list(logs or {})
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, ["epoch"] + keys,
                                          delimiter=self.separator, extrasaction="ignore")
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: _csv_value(logs[k]) for k in keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _csv_value(v):
    return repr(float(v)) if isinstance(v, (float, np.floating)) else v


class LambdaCallback(Callback):
    """A callback from plain functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))``.

    Each argument is a function with the hook's arguments: ``on_train_begin(logs)``,
    ``on_train_end(logs)``, ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``.  Only given batch
    functions make fit() step batch by batch.
    """

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_batch_begin", "on_batch_end")

    def __init__(self, **hooks):
        unknown = set(hooks) - set(self._HOOKS)
        if unknown:
            raise ValueError(f"unknown hook(s) {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(self._HOOKS)}")
        for name, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be callable, got {fn!r}")
        self._hooks = {k: v for k, v in hooks.items() if v is not None}

    @property
    def wants_batch_hooks(self):
        return "on_batch_begin" in self._hooks or "on_batch_end" in self._hooks

    def on_train_begin(self, logs=None):
        if "on_train_begin" in self._hooks:
            self._hooks["on_train_begin"](logs)

    def on_train_end(self, logs=None):
        if "on_train_end" in self._hooks:
            self._hooks["on_train_end"](logs)

    def on_epoch_begin(self, epoch, logs=None):
        if "on_epoch_begin" in self._hooks:
            self._hooks["on_epoch_begin"](epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if "on_epoch_end" in self._hooks:
            self._hooks["on_epoch_end"](epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        if "on_batch_begin" in self._hooks:
            self._hooks["on_batch_begin"](batch, logs)

    def on_batch_end(self, batch, logs=None):
        if "on_batch_end" in self._hooks:
            self._hooks["on_batch_end"](batch, logs)



class ProgressLogger(Callback):
    """What fit(verbose=1 or 2) prints: a live progress bar per epoch, or one
    line per epoch ("epoch 3/20 - 0.12s - 41,234 samples/s - loss: ...").

    Parameters
    ----------
    live : bool or None
        Draw a live bar (redrawn between chunks of batches, about ten times a
        second) that ends as the epoch's line; None draws one only when the
        stream is a terminal.  fit(verbose=1) uses None, verbose=2 False.
    stream : file-like or None
        Where to write; None is sys.stdout at the start of training.
    use_tqdm : bool or None
        Draw the live bar with tqdm; None uses tqdm when it is installed.

    The samples/s figure counts the epoch's training alone, not the evaluation
    of metrics and validation data after it.
    """

    def __init__(self, live=None, stream=None, use_tqdm=None):
        self.live = live
        self.stream = stream
        self.use_tqdm = use_tqdm
        self._bar = None

    def set_params(self, params):
        super().set_params(params)
        stream = self.stream if self.stream is not None else sys.stdout
        if self.live is None:
            isatty = getattr(stream, "isatty", None)
            self._live = bool(isatty and isatty())
        else:
            self._live = bool(self.live)

    @property
    def wants_progress(self):
        return getattr(self, "_live", bool(self.live))

    def on_train_begin(self, logs=None):
        self._stream = self.stream if self.stream is not None else sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._seconds, self._samples = 0.0, 0
        if self._live:
            self._bar = open_bar(self.params["samples"],
                                 f"epoch {epoch + 1}/{self.params['epochs']}",
                                 self._stream, self.use_tqdm)

    def on_progress(self, batches_done, logs=None):
        self._seconds, self._samples = logs["seconds"], logs["samples"]
        if self._bar is not None:
            self._bar.update(self._samples, self._seconds, f"loss: {logs['loss']:.4f}")

    def on_epoch_end(self, epoch, logs=None):
        line = epoch_line(epoch, self.params["epochs"], self._seconds, self._samples, logs)
        if self._bar is not None:
            self._bar.close(line, format_logs(logs))
            self._bar = None
        else:
            print(line, file=self._stream, flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:  # an interrupted epoch
            self._bar.close()
            self._bar = None
