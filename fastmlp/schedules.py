"""Learning-rate schedules: pass one as an optimizer's learning rate,
``fm.SGD(lr=fm.schedules.cosine(0.1, period=50))``.

Granularity
-----------
A schedule is a function ``lr(step, epoch)`` of the optimizer step (0 for the
first update; ``Plan.step`` before it) and the epoch (0 for the first epoch of
training).  Each schedule counts its durations in ``unit="epoch"`` (the
default: the rate is constant within an epoch and changes between epochs) or
``unit="step"`` (the rate changes with every update).  ``warmup`` counts in
steps or epochs as asked.

``Sequential.fit`` evaluates the schedule for every batch of an epoch before
the epoch starts and hands the rates to the native epoch loop, which sets the
plan's learning rate before each batch: per-step schedules cost one NumPy
evaluation per epoch and nothing per batch.  ``reduce_on_plateau`` is the
exception: it changes the rate between epochs, from the loss fit() reports.
``Sequential.train_step`` evaluates the schedule at its step (the epoch then
stays at the number of epochs fit() has completed).

A schedule that keeps state (``reduce_on_plateau``) belongs to one model; it
is reset when the model is compiled.
"""
import math

import numpy as np

__all__ = ["Schedule", "constant", "step_decay", "exponential", "inverse_scaling", "cosine",
           "reduce_on_plateau", "warmup"]

_UNITS = ("epoch", "step")


def _positive(name, value, allow_zero=False, upper=math.inf, upper_open=True):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value < upper if upper_open else value <= upper
    if not (low_ok and high_ok) or math.isnan(value) or math.isinf(value):
        lo = "[0" if allow_zero else "(0"
        hi = f"{upper:g})" if upper_open else f"{upper:g}]"
        raise ValueError(f"{name} must be in {lo}, {hi}, got {value}")
    return value


def _unit(unit):
    if unit not in _UNITS:
        raise ValueError(f"unit must be 'epoch' or 'step', got {unit!r}")
    return unit


#: schedule classes by name (every Schedule subclass adds itself), for loading saved models
SCHEDULES = {}


class Schedule:
    """Base class: a learning rate as a function of the step and the epoch.

    Subclasses implement ``_rate(step, epoch)`` on float64 arrays (or scalars)
    that broadcast together, and may keep per-epoch state (``_end_epoch``,
    saved with a model through ``_state``/``_set_state``).  ``_fields()`` lists
    the constructor arguments, which is how a schedule is saved.
    """

    unit = "epoch"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        SCHEDULES[cls.__name__] = cls

    def get_config(self):
        """{"class": name, "config": constructor arguments} (nested schedules too)."""
        return {"class": type(self).__name__,
                "config": {k: v.get_config() if isinstance(v, Schedule) else v
                           for k, v in self._fields()}}

    def _state(self):
        """Per-training state as JSON-able values (None: stateless)."""
        return None

    def _set_state(self, state):
        """Restore _state()'s output (ValueError when it does not fit)."""

    def __call__(self, step, epoch=0):
        """The learning rate at optimizer step `step` (0-based) of epoch `epoch`
        (0-based); scalars give a float, arrays an array."""
        step = np.asarray(step, dtype=np.float64)
        epoch = np.asarray(epoch, dtype=np.float64)
        rate = np.asarray(self._rate(step, epoch), dtype=np.float64)
        rate = np.broadcast_to(rate, np.broadcast_shapes(step.shape, epoch.shape, rate.shape))
        return float(rate) if rate.ndim == 0 else rate.copy()

    def _time(self, step, epoch):
        return step if self.unit == "step" else epoch

    def _rate(self, step, epoch):
        raise NotImplementedError

    def _end_epoch(self, logs):
        """Called by fit() after each epoch with its logs ("loss", "val_loss", ...)."""

    def _reset(self):
        """Forget per-training state (called when a model is compiled)."""

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields())
        return f"{type(self).__name__.lstrip('_')}({fields})"

    def _fields(self):
        return []


def from_config(spec):
    """The schedule described by Schedule.get_config()'s output (ValueError when
    the class is unknown or an argument is invalid)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"a schedule must be {{'class': name, 'config': {{...}}}}, got "
                         f"{str(spec)[:100]}")
    cls = SCHEDULES.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"unknown schedule {str(spec.get('class'))[:40]!r}")
    config = {k: from_config(v) if isinstance(v, dict) else v
              for k, v in spec["config"].items()}
    try:
        return cls(**config)
    except TypeError as e:  # unexpected or missing arguments
        raise ValueError(f"bad {cls.__name__} configuration: {e}") from None


def _as_schedule(lr):
    if isinstance(lr, Schedule):
        return lr
    return constant(lr)


class constant(Schedule):
    """lr at every step."""

    def __init__(self, lr):
        self.lr = _positive("lr", lr)

    def _rate(self, step, epoch):
        return np.full(np.broadcast_shapes(np.shape(step), np.shape(epoch)), self.lr)

    def _fields(self):
        return [("lr", self.lr)]


class step_decay(Schedule):
    """Step decay: ``lr * factor ** floor(t / every)``, e.g. halve every 10 epochs
    with ``step_decay(0.1, every=10, factor=0.5)``.

    Parameters
    ----------
    lr : float > 0, the initial rate
    every : int >= 1, epochs (or steps) between reductions
    factor : float in (0, 1]
    unit : "epoch" (t = epoch) or "step" (t = step)
    """

    def __init__(self, lr, every, factor=0.5, unit="epoch"):
        self.lr = _positive("lr", lr)
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.every = int(every)
        self.factor = _positive("factor", factor, upper=1.0, upper_open=False)
        self.unit = _unit(unit)

    def _rate(self, step, epoch):
        return self.lr * self.factor ** np.floor(self._time(step, epoch) / self.every)

    def _fields(self):
        return [("lr", self.lr), ("every", self.every), ("factor", self.factor),
                ("unit", self.unit)]


class exponential(Schedule):
    """Exponential decay: ``lr * gamma ** t``.

    Parameters
    ----------
    lr : float > 0
    gamma : float in (0, 1]
    unit : "epoch" or "step"
    """

    def __init__(self, lr, gamma, unit="epoch"):
        self.lr = _positive("lr", lr)
        self.gamma = _positive("gamma", gamma, upper=1.0, upper_open=False)
        self.unit = _unit(unit)

    def _rate(self, step, epoch):
        return self.lr * self.gamma ** self._time(step, epoch)

    def _fields(self):
        return [("lr", self.lr), ("gamma", self.gamma), ("unit", self.unit)]


class inverse_scaling(Schedule):
    """Inverse scaling: ``lr / (t + 1) ** power_t`` (scikit-learn's "invscaling";
    scikit-learn counts t in samples seen and changes the rate once per epoch).

    Parameters
    ----------
    lr : float > 0
    power_t : float > 0
    unit : "epoch" or "step"
    """

    def __init__(self, lr, power_t=0.5, unit="epoch"):
        self.lr = _positive("lr", lr)
        self.power_t = _positive("power_t", power_t)
        self.unit = _unit(unit)

    def _rate(self, step, epoch):
        return self.lr / (self._time(step, epoch) + 1.0) ** self.power_t

    def _fields(self):
        return [("lr", self.lr), ("power_t", self.power_t), ("unit", self.unit)]


class cosine(Schedule):
    """Cosine annealing (Loshchilov & Hutter 2017, SGDR) from lr to min_lr over
    `period` epochs (or steps)::

        lr_t = min_lr + (lr - min_lr) (1 + cos(pi tau / period)) / 2

    with tau = min(t, period) (then it stays at min_lr), or tau = t mod period
    with ``restarts=True`` (warm restarts every period).

    Parameters
    ----------
    lr : float > 0
    period : int >= 1
    min_lr : float in [0, lr]
    restarts : bool
    unit : "epoch" or "step"
    """

    def __init__(self, lr, period, min_lr=0.0, restarts=False, unit="epoch"):
        self.lr = _positive("lr", lr)
        if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1:
            raise ValueError(f"period must be an integer >= 1, got {period!r}")
        self.period = int(period)
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True, upper=self.lr,
                                upper_open=False)
        self.restarts = bool(restarts)
        self.unit = _unit(unit)

    def _rate(self, step, epoch):
        t = self._time(step, epoch)
        tau = np.mod(t, self.period) if self.restarts else np.minimum(t, self.period)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + np.cos(np.pi * tau / self.period))

    def _fields(self):
        return [("lr", self.lr), ("period", self.period), ("min_lr", self.min_lr),
                ("restarts", self.restarts), ("unit", self.unit)]


class reduce_on_plateau(Schedule):
    """Multiply the rate by `factor` when the monitored loss has not improved for
    more than `patience` epochs (PyTorch's ReduceLROnPlateau, mode "min",
    relative threshold): an epoch improves when ``loss < best * (1 - threshold)``.

    Parameters
    ----------
    lr : float > 0, the initial rate
    factor : float in (0, 1)
    patience : int >= 0, epochs without improvement tolerated
    threshold : float >= 0
    cooldown : int >= 0, epochs after a reduction before counting again
    min_lr : float in [0, lr], the floor
    monitor : "loss" or "val_loss" (fit() must report it)
    """

    def __init__(self, lr, factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0,
                 monitor="loss"):
        self.initial_lr = _positive("lr", lr)
        self.factor = _positive("factor", factor, upper=1.0)
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.threshold = _positive("threshold", threshold, allow_zero=True, upper=1.0)
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True, upper=self.initial_lr,
                                upper_open=False)
        if monitor not in ("loss", "val_loss"):
            raise ValueError(f"monitor must be 'loss' or 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self._reset()

    def _reset(self):
        self.lr = self.initial_lr
        self.best = math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def _rate(self, step, epoch):
        return np.full(np.broadcast_shapes(np.shape(step), np.shape(epoch)), self.lr)

    def _end_epoch(self, logs):
        if self.monitor not in logs:
            raise ValueError(f"reduce_on_plateau monitors {self.monitor!r}, which fit() does not "
                             "report (val_loss needs validation_split or validation_data)")
        value = float(logs[self.monitor])
        if value < self.best * (1.0 - self.threshold):
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.cooldown_left = self.cooldown
            self.bad_epochs = 0

    def _state(self):
        return {"lr": self.lr, "best": None if math.isinf(self.best) else self.best,
                "bad_epochs": self.bad_epochs, "cooldown_left": self.cooldown_left}

    def _set_state(self, state):
        try:
            lr, best = float(state["lr"]), state["best"]
            best = math.inf if best is None else float(best)
            bad, left = int(state["bad_epochs"]), int(state["cooldown_left"])
        except (TypeError, KeyError, ValueError):
            raise ValueError("bad reduce_on_plateau state") from None
        if not (self.min_lr <= lr <= self.initial_lr) or bad < 0 or left < 0 or math.isnan(best):
            raise ValueError("bad reduce_on_plateau state")
        self.lr, self.best, self.bad_epochs, self.cooldown_left = lr, best, bad, left

    def _fields(self):
        return [("lr", self.initial_lr), ("factor", self.factor), ("patience", self.patience),
                ("threshold", self.threshold), ("cooldown", self.cooldown),
                ("min_lr", self.min_lr), ("monitor", self.monitor)]


class warmup(Schedule):
    """Warm-up in front of any schedule (Goyal et al. 2017, sec. 2.2): for the
    first `steps` steps (or `epochs` epochs) the rate is the inner schedule's
    times a factor, then the inner schedule's own.  The inner schedule keeps
    its own clock (it is not shifted by the warm-up).

    kind="constant":  factor = start_factor
    kind="linear":    factor = start_factor + (1 - start_factor) t / duration
                      (gradual: from start_factor up to 1)

    Parameters
    ----------
    schedule : Schedule or float (a constant rate)
    steps, epochs : int >= 1, the duration (give exactly one)
    kind : "linear" or "constant"
    start_factor : float in [0, 1]
    """

    def __init__(self, schedule, steps=None, epochs=None, kind="linear", start_factor=0.1):
        self.schedule = _as_schedule(schedule)
        if (steps is None) == (epochs is None):
            raise ValueError("give the warm-up's duration as exactly one of steps= or epochs=")
        duration = steps if steps is not None else epochs
        if isinstance(duration, bool) or not isinstance(duration, (int, np.integer)) \
                or duration < 1:
            raise ValueError(f"the warm-up duration must be an integer >= 1, got {duration!r}")
        self.duration = int(duration)
        self.unit = "step" if steps is not None else "epoch"
        if kind not in ("linear", "constant"):
            raise ValueError(f"kind must be 'linear' or 'constant', got {kind!r}")
        self.kind = kind
        self.start_factor = _positive("start_factor", start_factor, allow_zero=True, upper=1.0,
                                      upper_open=False)

    def _rate(self, step, epoch):
        t = self._time(step, epoch)
        if self.kind == "linear":
            factor = self.start_factor + (1.0 - self.start_factor) * np.minimum(t, self.duration) \
                / self.duration
        else:
            factor = np.where(t < self.duration, self.start_factor, 1.0)
        return factor * self.schedule._rate(step, epoch)

    def _end_epoch(self, logs):
        self.schedule._end_epoch(logs)

    def _reset(self):
        self.schedule._reset()

    def _state(self):
        return self.schedule._state()

    def _set_state(self, state):
        self.schedule._set_state(state)

    def _fields(self):
        return [("schedule", self.schedule), ("steps" if self.unit == "step" else "epochs",
                                              self.duration),
                ("kind", self.kind), ("start_factor", self.start_factor)]


def epoch_rates(schedule, first_step, epoch, n_steps):
    """The rates of steps first_step .. first_step + n_steps - 1 of `epoch`, as a
    contiguous float64 array (what the native epoch loop takes); ValueError
    when the schedule gives a rate that is negative, NaN or infinite."""
    steps = np.arange(first_step, first_step + n_steps, dtype=np.float64)
    rates = np.ascontiguousarray(schedule(steps, epoch), dtype=np.float64)
    if not (np.isfinite(rates).all() and (rates >= 0).all()):
        raise ValueError(f"the schedule {schedule!r} gave a learning rate that is negative or "
                         "not finite")
    return rates
