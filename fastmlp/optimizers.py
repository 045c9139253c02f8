"""Optimizers.  Each is a fused native update over the model's flat parameter
buffer: parameter, gradient and state are read and written once per step.

Every optimizer takes
  lr        : float > 0, or a schedule from :mod:`fastmlp.schedules`
  clipnorm  : clip the loss gradient to this global norm (over all parameters)
              before the update: g *= clipnorm / |g| when |g| > clipnorm
  clipvalue : clip each gradient element to [-clipvalue, clipvalue] (after clipnorm)
Its state buffers (``n_state`` of them, shaped like the parameters) live in
the model (``model._opt_state``) and are created by compile().
"""
import inspect
import math

from . import schedules as _schedules
from .schedules import Schedule

__all__ = ["Optimizer", "GD", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Nadam", "get",
           "OPTIMIZERS"]

#: optimizer classes by class name (every Optimizer subclass adds itself)
OPTIMIZERS = {}


def _check(name, value, low, high, low_open=False, high_open=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok or math.isnan(value):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
    return value


def _check_lr(lr):
    if isinstance(lr, Schedule):
        return lr
    return _check("lr", lr, 0, math.inf, low_open=True, high_open=True)


def _check_clip(name, value):
    if value is None:
        return None
    return _check(name, value, 0, math.inf, low_open=True, high_open=True)


class Optimizer:
    """Base class: holds hyperparameters; the model owns the state buffers.

    Subclasses set ``n_state`` and implement ``_set(plan, states, lr)``, which
    selects their update in the compiled plan.
    """

    #: number of flat state buffers (shaped like the parameters) this optimizer keeps
    n_state = 0
    #: fit() trains on the whole training set as one batch (GD)
    full_batch = False

    def __init__(self, lr, clipnorm=None, clipvalue=None):
        self.lr = _check_lr(lr)
        self.clipnorm = _check_clip("clipnorm", clipnorm)
        self.clipvalue = _check_clip("clipvalue", clipvalue)

    @property
    def schedule(self):
        """The learning-rate schedule, or None for a constant rate."""
        return self.lr if isinstance(self.lr, Schedule) else None

    def _initial_lr(self):
        return self.lr if self.schedule is None else self.schedule(0, 0)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.__name__] = cls

    def get_config(self):
        """The hyperparameters: each constructor argument, read from the attribute
        of the same name (so subclasses need nothing more)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        config = {name: getattr(self, name) for name in names}
        if isinstance(config.get("lr"), Schedule):
            config["lr"] = config["lr"].get_config()
        return config

    @classmethod
    def from_config(cls, config):
        if isinstance(config.get("lr"), dict):  # a schedule
            config = dict(config, lr=_schedules.from_config(config["lr"]))
        return cls(**config)

    def _bind(self, plan, states):
        """Select this update in `plan`, with the model's state buffers."""
        if self.schedule is not None:
            self.schedule._reset()
        self._set(plan, states, self._initial_lr())
        plan.set_clipping(self.clipnorm or 0.0, self.clipvalue or 0.0)

    def _set(self, plan, states, lr):
        raise NotImplementedError

    def _init_state(self, states):
        """Initial values of freshly allocated (zero) state buffers."""

    def _hyper(self):
        return []

    def __repr__(self):
        lr = f"{self.lr:g}" if self.schedule is None else repr(self.lr)
        parts = [f"lr={lr}"] + [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in self._hyper()]
        parts += [f"clipnorm={self.clipnorm:g}"] if self.clipnorm is not None else []
        parts += [f"clipvalue={self.clipvalue:g}"] if self.clipvalue is not None else []
        return f"{type(self).__name__}({', '.join(parts)})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    PyTorch's convention: ``v = momentum v + g; p -= lr v``; with Nesterov,
    ``p -= lr (g + momentum v)`` (Sutskever et al. 2013).

    Parameters
    ----------
    lr : float > 0 or Schedule
    momentum : float in [0, 1)
    nesterov : bool (needs momentum > 0)
    clipnorm, clipvalue : float > 0 or None (see the module docstring)
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, clipnorm=None, clipvalue=None):
        super().__init__(lr, clipnorm, clipvalue)
        self.momentum = _check("momentum", momentum, 0, 1, high_open=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.n_state = 1 if self.momentum > 0 else 0

    def _set(self, plan, states, lr):
        plan.set_sgd(lr, self.momentum, self.nesterov, states[0] if states else None)

    def _hyper(self):
        return [("momentum", self.momentum), ("nesterov", self.nesterov)]


class GD(SGD):
    """Full-batch gradient descent: ``p -= lr g`` with g the gradient of the
    mean loss over the whole training set (optionally with momentum, as SGD).

    ``fit()`` trains on the whole training set as one batch, whatever its
    batch_size argument says, so an epoch is exactly one step; ``train_step``
    steps on the batch it is given.
    """

    full_batch = True


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), bias-corrected, eps outside the square root as in
    the paper and PyTorch::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)

    Parameters
    ----------
    lr : float > 0 or Schedule
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    clipnorm, clipvalue : float > 0 or None
    """

    n_state = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, clipnorm=None,
                 clipvalue=None):
        super().__init__(lr, clipnorm, clipvalue)
        self.beta1 = _check("beta1", beta1, 0, 1, high_open=True)
        self.beta2 = _check("beta2", beta2, 0, 1, high_open=True)
        self.eps = _check("eps", eps, 0, math.inf, low_open=True, high_open=True)

    def _set(self, plan, states, lr):
        plan.set_adam(lr, self.beta1, self.beta2, self.eps, states[0], states[1])

    def _hyper(self):
        return [("beta1", self.beta1), ("beta2", self.beta2), ("eps", self.eps)]


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as
    PyTorch's AdamW::

        p *= 1 - lr wd;   then the Adam step (whose g has no decay term)

    The decay applies to the weight matrices only, not to the biases (as the
    penalties of :mod:`fastmlp.regularizers`); lr is the scheduled rate.

    Parameters
    ----------
    lr : float > 0 or Schedule
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    weight_decay : float >= 0 (lr * weight_decay < 1 for a constant lr)
    clipnorm, clipvalue : float > 0 or None
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                 clipnorm=None, clipvalue=None):
        super().__init__(lr, beta1, beta2, eps, clipnorm, clipvalue)
        self.weight_decay = _check("weight_decay", weight_decay, 0, math.inf, high_open=True)
        if self.schedule is None and self.lr * self.weight_decay >= 1:
            raise ValueError(f"lr * weight_decay must be < 1 (the decay factor 1 - lr wd "
                             f"must stay positive), got {self.lr * self.weight_decay:g}")

    def _set(self, plan, states, lr):
        plan.set_adam(lr, self.beta1, self.beta2, self.eps, states[0], states[1],
                      self.weight_decay)

    def _hyper(self):
        return super()._hyper() + [("weight_decay", self.weight_decay)]


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011), as PyTorch::

        s += g^2;   p -= lr g / (sqrt(s) + eps)

    Parameters
    ----------
    lr : float > 0 or Schedule
    eps : float > 0
    initial_accumulator_value : float >= 0, the starting value of s
    clipnorm, clipvalue : float > 0 or None
    """

    n_state = 1

    def __init__(self, lr=0.01, eps=1e-10, initial_accumulator_value=0.0, clipnorm=None,
                 clipvalue=None):
        super().__init__(lr, clipnorm, clipvalue)
        self.eps = _check("eps", eps, 0, math.inf, low_open=True, high_open=True)
        self.initial_accumulator_value = _check("initial_accumulator_value",
                                                initial_accumulator_value, 0, math.inf,
                                                high_open=True)

    def _init_state(self, states):
        states[0][...] = self.initial_accumulator_value

    def _set(self, plan, states, lr):
        plan.set_adagrad(lr, self.eps, states[0])

    def _hyper(self):
        return [("eps", self.eps), ("initial_accumulator_value", self.initial_accumulator_value)]


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, Coursera lecture 6e), in PyTorch's
    formulation (eps outside the square root)::

        s = rho s + (1 - rho) g^2
        centered:   a = rho a + (1 - rho) g;   d = sqrt(s - a^2) + eps   (Graves 2013)
        otherwise:  d = sqrt(s) + eps
        momentum:   b = momentum b + g / d;   p -= lr b
        otherwise:  p -= lr g / d

    Parameters
    ----------
    lr : float > 0 or Schedule (default 1e-3; PyTorch's is 0.01)
    rho : float in [0, 1), the decay of the mean square (the lecture's 0.9;
        PyTorch calls it alpha, default 0.99)
    eps : float > 0
    momentum : float in [0, 1)
    centered : bool, normalize by the estimated variance instead of the mean square
    clipnorm, clipvalue : float > 0 or None
    """

    def __init__(self, lr=1e-3, rho=0.9, eps=1e-8, momentum=0.0, centered=False,
                 clipnorm=None, clipvalue=None):
        super().__init__(lr, clipnorm, clipvalue)
        self.rho = _check("rho", rho, 0, 1, high_open=True)
        self.eps = _check("eps", eps, 0, math.inf, low_open=True, high_open=True)
        self.momentum = _check("momentum", momentum, 0, 1, high_open=True)
        self.centered = bool(centered)
        self.n_state = 1 + (self.momentum > 0) + self.centered

    def _set(self, plan, states, lr):
        rest = list(states[1:])
        buffer = rest.pop(0) if self.momentum > 0 else None
        grad_avg = rest.pop(0) if self.centered else None
        plan.set_rmsprop(lr, self.rho, self.eps, self.momentum, states[0], buffer, grad_avg)

    def _hyper(self):
        return [("rho", self.rho), ("eps", self.eps), ("momentum", self.momentum),
                ("centered", self.centered)]


class Nadam(Optimizer):
    """NAdam (Dozat 2016, "Incorporating Nesterov momentum into Adam"), in
    PyTorch's formulation with its momentum schedule
    ``mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2)``::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr [(1 - mu_t) / (1 - prod_{i<=t} mu_i) g
                 + mu_{t+1} / (1 - prod_{i<=t+1} mu_i) m] / (sqrt(v / (1 - b2^t)) + eps)

    Parameters
    ----------
    lr : float > 0 or Schedule
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    momentum_decay : float >= 0 (psi; 0 gives a constant mu = beta1 / 2)
    clipnorm, clipvalue : float > 0 or None
    """

    n_state = 2

    def __init__(self, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=4e-3,
                 clipnorm=None, clipvalue=None):
        super().__init__(lr, clipnorm, clipvalue)
        self.beta1 = _check("beta1", beta1, 0, 1, high_open=True)
        self.beta2 = _check("beta2", beta2, 0, 1, high_open=True)
        self.eps = _check("eps", eps, 0, math.inf, low_open=True, high_open=True)
        self.momentum_decay = _check("momentum_decay", momentum_decay, 0, math.inf,
                                     high_open=True)

    def _set(self, plan, states, lr):
        plan.set_nadam(lr, self.beta1, self.beta2, self.eps, self.momentum_decay, states[0],
                       states[1])

    def _hyper(self):
        return [("beta1", self.beta1), ("beta2", self.beta2), ("eps", self.eps),
                ("momentum_decay", self.momentum_decay)]


_BY_NAME = {"gd": GD, "sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad,
            "rmsprop": RMSprop, "nadam": Nadam}


def get(spec):
    """An optimizer instance from an instance or a name ("sgd", "adam", "rmsprop", ...)."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"unknown optimizer {spec!r}; pass an Optimizer or one of {', '.join(_BY_NAME)}")
