"""Activation functions by name.

Each name is a fused native kernel (value in the forward pass, derivative
fused into the backward pass) with a NumPy twin:

===========  ==========================  =========================
name         f(z)                        f'(z)
===========  ==========================  =========================
identity     z                           1
sigmoid      1 / (1 + e^-z)              f (1 - f)
tanh         tanh z                      1 - f^2
relu         max(z, 0)                   [z > 0]
leaky_relu   z if z > 0 else alpha z     1 if z > 0 else alpha
===========  ==========================  =========================

``None`` and ``"linear"`` mean identity.  Parametrized ones take their
parameter through :func:`leaky_relu` (``Dense(64, activation=leaky_relu(0.1))``).
"""
from dataclasses import dataclass

from ._reference import ACTIVATIONS

__all__ = ["Activation", "ACTIVATIONS", "get", "leaky_relu", "RELU_FAMILY"]

_ALIASES = {None: "identity", "linear": "identity"}
_DEFAULT_ALPHA = {"leaky_relu": 0.01}

# activations whose weights are best initialised with He's variance 2 / fan_in
RELU_FAMILY = frozenset({"relu", "leaky_relu"})


@dataclass(frozen=True)
class Activation:
    """An activation by name with its parameter (alpha; unused by most)."""

    name: str
    alpha: float = 0.0

    def __repr__(self):
        if self.name in _DEFAULT_ALPHA:
            return f"{self.name}(alpha={self.alpha:g})"
        return self.name


def get(spec):
    """Resolve None, a name or an :class:`Activation` to an :class:`Activation`."""
    if isinstance(spec, Activation):
        get(spec.name)
        return spec
    name = _ALIASES.get(spec, spec)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {spec!r}; choose from "
                         f"{', '.join(ACTIVATIONS)} (or None/'linear' for identity)")
    return Activation(name, _DEFAULT_ALPHA.get(name, 0.0))


def leaky_relu(alpha=0.01):
    """Leaky ReLU with slope `alpha` for z <= 0 (Maas et al. 2013)."""
    alpha = float(alpha)
    if not alpha >= 0:
        raise ValueError(f"leaky_relu alpha must be >= 0, got {alpha}")
    return Activation("leaky_relu", alpha)
