"""Optimizers.  Each is a fused native update over the model's flat parameter
buffer: parameter, gradient and state are read and written once per step."""
import inspect
import math

__all__ = ["Optimizer", "SGD", "Adam", "get", "OPTIMIZERS"]

#: optimizer classes by class name (every Optimizer subclass adds itself)
OPTIMIZERS = {}


def _check(name, value, low, high, low_open=False, high_open=False):
    value = float(value)
    ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok or math.isnan(value):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
    return value


class Optimizer:
    """Base class: holds hyperparameters; the model owns the state buffers."""

    #: number of flat state buffers (shaped like the parameters) this optimizer keeps
    n_state = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.__name__] = cls

    def get_config(self):
        """The hyperparameters: each constructor argument, read from the attribute
        of the same name (so subclasses need nothing more)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _bind(self, plan, states):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    PyTorch's convention: ``v = momentum v + g; p -= lr v``; with Nesterov,
    ``p -= lr (g + momentum v)`` (Sutskever et al. 2013).

    Parameters
    ----------
    lr : float > 0
    momentum : float in [0, 1)
    nesterov : bool (needs momentum > 0)
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.lr = _check("lr", lr, 0, math.inf, low_open=True, high_open=True)
        self.momentum = _check("momentum", momentum, 0, 1, high_open=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.n_state = 1 if self.momentum > 0 else 0

    def _bind(self, plan, states):
        plan.set_sgd(self.lr, self.momentum, self.nesterov, states[0] if states else None)

    def __repr__(self):
        return f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, nesterov={self.nesterov})"


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), bias-corrected, eps outside the square root as in
    the paper and PyTorch::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)

    Parameters
    ----------
    lr : float > 0
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    """

    n_state = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = _check("lr", lr, 0, math.inf, low_open=True, high_open=True)
        self.beta1 = _check("beta1", beta1, 0, 1, high_open=True)
        self.beta2 = _check("beta2", beta2, 0, 1, high_open=True)
        self.eps = _check("eps", eps, 0, math.inf, low_open=True, high_open=True)

    def _bind(self, plan, states):
        plan.set_adam(self.lr, self.beta1, self.beta2, self.eps, states[0], states[1])

    def __repr__(self):
        return f"Adam(lr={self.lr:g}, beta1={self.beta1:g}, beta2={self.beta2:g}, eps={self.eps:g})"


_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(spec):
    """An optimizer instance from an instance or a name ("sgd", "adam")."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"unknown optimizer {spec!r}; pass an Optimizer or one of {', '.join(_BY_NAME)}")
