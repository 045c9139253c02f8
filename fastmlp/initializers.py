"""Weight initialisation.

A weight matrix W of shape (fan_in, fan_out) is drawn from one of:

=================  ===========================================  ====================
name               distribution of each W[i, j]                 source
=================  ===========================================  ====================
zeros              0
constant(value)    value                        (value=0)
normal(std)        N(0, std^2)                  (std=0.05)
uniform(a)         U(-a, a)                     (a=0.05)
xavier_normal      N(0, 2 / (fan_in + fan_out))                 Glorot & Bengio 2010
xavier_uniform     U(-l, l), l = sqrt(6 / (fan_in + fan_out))   Glorot & Bengio 2010
he_normal          N(0, 2 / fan_in)                             He et al. 2015
he_uniform         U(-l, l), l = sqrt(6 / fan_in)               He et al. 2015
lecun_normal       N(0, 1 / fan_in)                             LeCun et al. 1998
lecun_uniform      U(-l, l), l = sqrt(3 / fan_in)               LeCun et al. 1998
orthogonal(gain)   gain Q, Q with orthonormal columns           Saxe et al. 2014
                   (fan_in >= fan_out: W^T W = gain^2 I) or
                   rows (W W^T = gain^2 I), drawn uniformly
                   (Haar)                       (gain=1)
=================  ===========================================  ====================

Sources: Glorot & Bengio 2010, "Understanding the difficulty of training deep
feedforward neural networks"; He et al. 2015, "Delving Deep into Rectifiers";
LeCun et al. 1998, "Efficient BackProp"; Saxe et al. 2014, "Exact solutions to
the nonlinear dynamics of learning in deep linear neural networks".

Each uniform variant has the variance of its normal one: U(-l, l) has
variance l^2 / 3.  ``glorot_normal`` and ``glorot_uniform`` are aliases of the
xavier ones.  A name uses the defaults shown; the parametrized ones also take
their parameters, ``Dense(64, init=fm.initializers.normal(std=0.01))``.  Biases
always start at zero.

:func:`default_for` picks He normal for the ReLU family
(:data:`fastmlp.activations.RELU_FAMILY`), LeCun normal for selu (its
self-normalizing fixed point assumes weight variance 1 / fan_in, Klambauer et
al. 2017) and Xavier uniform otherwise.
"""
import math
from dataclasses import dataclass

import numpy as np

from .activations import RELU_FAMILY

__all__ = ["INITIALIZERS", "Initializer", "default_for", "get", "initialize", "zeros",
           "constant", "normal", "uniform", "orthogonal"]


def _zeros(rng, fan_in, fan_out):
    return np.zeros((fan_in, fan_out))


def _constant(rng, fan_in, fan_out, value=0.0):
    return np.full((fan_in, fan_out), float(value))


def _normal(rng, fan_in, fan_out, std=0.05):
    return rng.standard_normal((fan_in, fan_out)) * std


def _uniform(rng, fan_in, fan_out, a=0.05):
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _xavier_normal(rng, fan_in, fan_out):
    return _normal(rng, fan_in, fan_out, math.sqrt(2.0 / (fan_in + fan_out)))


def _xavier_uniform(rng, fan_in, fan_out):
    # U(-l, l) has variance l^2 / 3: l = sqrt(3 * 2 / (fan_in + fan_out))
    return _uniform(rng, fan_in, fan_out, math.sqrt(6.0 / (fan_in + fan_out)))


def _he_normal(rng, fan_in, fan_out):
    return _normal(rng, fan_in, fan_out, math.sqrt(2.0 / fan_in))


def _he_uniform(rng, fan_in, fan_out):
    return _uniform(rng, fan_in, fan_out, math.sqrt(6.0 / fan_in))


def _lecun_normal(rng, fan_in, fan_out):
    return _normal(rng, fan_in, fan_out, math.sqrt(1.0 / fan_in))


def _lecun_uniform(rng, fan_in, fan_out):
    return _uniform(rng, fan_in, fan_out, math.sqrt(3.0 / fan_in))


def _orthogonal(rng, fan_in, fan_out, gain=1.0):
    # QR of a Gaussian matrix, with the signs of R's diagonal moved into Q so that
    # Q is Haar-distributed (Mezzadri 2007), taken in the tall orientation
    tall = fan_in >= fan_out
    G = rng.standard_normal((fan_in, fan_out) if tall else (fan_out, fan_in))
    Q, R = np.linalg.qr(G)
    signs = np.sign(np.diag(R))
    Q *= np.where(signs == 0, 1.0, signs)
    return gain * (Q if tall else Q.T)


INITIALIZERS = {
    "zeros": _zeros,
    "constant": _constant,
    "normal": _normal,
    "uniform": _uniform,
    "xavier_normal": _xavier_normal,
    "xavier_uniform": _xavier_uniform,
    "he_normal": _he_normal,
    "he_uniform": _he_uniform,
    "lecun_normal": _lecun_normal,
    "lecun_uniform": _lecun_uniform,
    "orthogonal": _orthogonal,
}
_ALIASES = {"glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform"}


@dataclass(frozen=True)
class Initializer:
    """An initializer by name with its parameters ((name, value) pairs; empty for the
    defaults)."""

    name: str
    params: tuple = ()

    def __call__(self, rng, fan_in, fan_out):
        """A float64 (fan_in, fan_out) weight matrix drawn with `rng`."""
        return INITIALIZERS[self.name](rng, fan_in, fan_out, **dict(self.params))

    def __repr__(self):
        if not self.params:
            return self.name
        args = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({args})"


def _number(name, parameter, value, requirement, ok):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {parameter} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} {parameter} must be finite and {requirement}, got {value}")
    return value


def zeros():
    """All weights 0 (every unit then computes the same thing: use for tests or
    single-layer models only)."""
    return Initializer("zeros")


def constant(value=0.0):
    """All weights `value`."""
    return Initializer("constant", (("value", _number("constant", "value", value, "real",
                                                      lambda v: True)),))


def normal(std=0.05):
    """Weights from N(0, std^2), std > 0."""
    return Initializer("normal", (("std", _number("normal", "std", std, "> 0", lambda v: v > 0)),))


def uniform(a=0.05):
    """Weights from U(-a, a), a > 0."""
    return Initializer("uniform", (("a", _number("uniform", "a", a, "> 0", lambda v: v > 0)),))


def orthogonal(gain=1.0):
    """gain times a random matrix with orthonormal columns (or rows, when fan_in < fan_out),
    gain > 0 (Saxe et al. 2014, "Exact solutions to the nonlinear dynamics of learning in
    deep linear neural networks")."""
    return Initializer("orthogonal",
                       (("gain", _number("orthogonal", "gain", gain, "> 0", lambda v: v > 0)),))


_FACTORIES = {"constant": constant, "normal": normal, "uniform": uniform,
              "orthogonal": orthogonal}


def get(spec):
    """Resolve a name or an :class:`Initializer` to an :class:`Initializer`."""
    if isinstance(spec, Initializer):
        if spec.name not in INITIALIZERS:
            raise ValueError(f"unknown initializer {spec.name!r}; choose from "
                             f"{', '.join(INITIALIZERS)}")
        if spec.params:  # validated as the factory function would
            factory = _FACTORIES.get(spec.name)
            if factory is None:
                raise ValueError(f"initializer {spec.name} takes no parameters")
            try:
                return factory(**dict(spec.params))
            except TypeError as e:
                raise ValueError(f"bad parameters for initializer {spec.name}: {e}") from None
        return spec
    if isinstance(spec, str):
        name = _ALIASES.get(spec, spec)
        if name in INITIALIZERS:
            return Initializer(name)
    raise ValueError(f"unknown initializer {spec!r}; choose from {', '.join(INITIALIZERS)} "
                     f"(or an Initializer such as fastmlp.initializers.normal(std=0.01))")


def default_for(activation_name):
    """He for the ReLU family, LeCun normal for selu, Xavier/Glorot otherwise."""
    if activation_name in RELU_FAMILY:
        return "he_normal"
    if activation_name == "selu":
        return "lecun_normal"
    return "xavier_uniform"


def initialize(spec, rng, fan_in, fan_out):
    """A float64 (fan_in, fan_out) weight matrix drawn from initializer `spec`
    (a name or an :class:`Initializer`) with the NumPy Generator `rng`."""
    return get(spec)(rng, fan_in, fan_out)
