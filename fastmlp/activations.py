"""Activation functions by name.

Each name is a fused native kernel (value in the forward pass, derivative
fused into the backward pass) with a NumPy twin.  All are finite with finite
derivatives for every finite float32 input and map NaN to NaN.

=============  ==============================================  ===============================
name           f(z)                                            f'(z)
=============  ==============================================  ===============================
identity       z                                               1
binary_step    1 if z >= 0 else 0                              0 (no gradient flows)
sigmoid        1 / (1 + e^-z)                                  f (1 - f)
tanh           tanh z                                          1 - f^2
relu           max(z, 0)                                       [z > 0]
leaky_relu     z if z > 0 else alpha z          (alpha=0.01)   1 if z > 0 else alpha
elu            z if z > 0 else alpha (e^z - 1)  (alpha=1)      1 if z > 0 else alpha e^z
selu           lambda (z if z > 0 else a (e^z - 1))            lambda (1 if z > 0 else a e^z)
softplus       log(1 + e^z)                                    sigmoid(z)
softsign       z / (1 + abs(z))                                1 / (1 + abs(z))^2
arctan         arctan z                                        1 / (1 + z^2)
asinh          asinh z = log(z + sqrt(z^2 + 1))                1 / sqrt(1 + z^2)
isru           z / sqrt(1 + alpha z^2)          (alpha=1)      (1 + alpha z^2)^(-3/2)
isrlu          z if z >= 0 else isru(z)         (alpha=1)      1 if z >= 0 else isru'(z)
sqnl           1 (z > 2), z - z^2/4 (0 <= z <= 2),             1 - abs(z)/2 on [-2, 2], else 0
               z + z^2/4 (-2 <= z < 0), -1 (z < -2)
bent_identity  (sqrt(z^2 + 1) - 1) / 2 + z                     z / (2 sqrt(z^2 + 1)) + 1
gelu           z (1 + tanh u) / 2,                             (1 + tanh u) / 2
               u = sqrt(2/pi) (z + 0.044715 z^3)               + z (1 - tanh^2 u) u' / 2
gelu_exact     z Phi(z), Phi the standard normal CDF           Phi(z) + z phi(z)
silu           z sigmoid(beta z)                (beta=1)       s (1 + beta z (1 - s)),
                                                               s = sigmoid(beta z)
brelu          max(z, 0) on even units (columns 0, 2, ...),    [z > 0] on even units,
               min(z, 0) = -max(-z, 0) on odd ones             [z < 0] on odd ones
=============  ==============================================  ===============================

Sources: perceptron (binary_step), Rosenblatt 1958; relu, Nair & Hinton 2010;
leaky_relu, Maas et al. 2013; elu, Clevert et al. 2016; selu, Klambauer et al.
2017 ("Self-Normalizing Neural Networks", eq. 2, with the constants of eq. 14:
a = 1.6732632423543772, lambda = 1.0507009873554805);
softplus, Dugas et al. 2001; softsign, Bergstra et al. 2009; isru and isrlu,
Carlile et al. 2017; sqnl, Wuraola & Patel 2018; gelu and gelu_exact, Hendrycks
& Gimpel 2016; silu, Elfwing et al. 2018 (swish: Ramachandran et al. 2017);
brelu, Eidnes & Nokland 2017 ("Shifting Mean Activation Towards Zero with
Bipolar Activation Functions").

``None`` and ``"linear"`` mean identity; ``"swish"`` means ``"silu"``.
``"gelu"`` is the tanh approximation (as in BERT and GPT-2; PyTorch's
``approximate="tanh"``), ``"gelu_exact"`` the erf form (PyTorch's default
``GELU()``).  In float32 the native kernels use vectorized polynomial
approximations of exp, expm1, log1p, arctan, asinh and erfc (csrc/fm_math.h,
each within a few ULP); float64 uses the C library.

Parametrized ones take their parameter through a function of the same name
(``Dense(64, activation=fm.activations.elu(0.5))``); the string name uses the
default shown above: :func:`leaky_relu`, :func:`elu`, :func:`isru`,
:func:`isrlu`, :func:`silu` (alias :func:`swish`).
"""
import math
from dataclasses import dataclass

from ._reference import ACTIVATIONS, DEFAULT_ALPHA

__all__ = ["Activation", "ACTIVATIONS", "get", "leaky_relu", "elu", "isru", "isrlu", "silu",
           "swish", "RELU_FAMILY"]

_ALIASES = {None: "identity", "linear": "identity", "swish": "silu"}

# the parametrized activations: name of the parameter, and the check it must pass
_PARAMETERS = {
    "leaky_relu": ("alpha", lambda v: v >= 0, ">= 0"),
    "elu": ("alpha", lambda v: v >= 0, ">= 0"),
    "isru": ("alpha", lambda v: v > 0, "> 0"),
    "isrlu": ("alpha", lambda v: v > 0, "> 0"),
    "silu": ("beta", lambda v: v >= 0, ">= 0"),
}

# activations whose weights are best initialised with He's variance 2 / fan_in:
# rectifiers and their smooth or saturating variants, which pass about half of a
# zero-mean input's variance (He et al. 2015).  selu has its own (LeCun normal,
# see fastmlp.initializers.default_for); the rest get Xavier/Glorot.
RELU_FAMILY = frozenset({"relu", "leaky_relu", "elu", "brelu", "isrlu", "softplus", "gelu",
                         "gelu_exact", "silu"})


@dataclass(frozen=True)
class Activation:
    """An activation by name with its parameter (alpha; 0.0 for those without one)."""

    name: str
    alpha: float = 0.0

    def __repr__(self):
        if self.name in _PARAMETERS:
            return f"{self.name}({_PARAMETERS[self.name][0]}={self.alpha:g})"
        return self.name


def _checked(name, value):
    parameter, ok, requirement = _PARAMETERS[name]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {parameter} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} {parameter} must be finite and {requirement}, got {value}")
    return Activation(name, value)


def get(spec):
    """Resolve None, a name or an :class:`Activation` to an :class:`Activation`."""
    if isinstance(spec, Activation):
        get(spec.name)
        if spec.name in _PARAMETERS:
            _checked(spec.name, spec.alpha)
        return spec
    name = _ALIASES.get(spec, spec) if spec is None or isinstance(spec, str) else spec
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {spec!r}; choose from "
                         f"{', '.join(ACTIVATIONS)} (or None/'linear' for identity, "
                         f"'swish' for silu)")
    return Activation(name, DEFAULT_ALPHA[name])


def leaky_relu(alpha=0.01):
    """Leaky ReLU with slope `alpha` >= 0 for z <= 0 (Maas et al. 2013)."""
    return _checked("leaky_relu", alpha)


def elu(alpha=1.0):
    """ELU, ``z if z > 0 else alpha (e^z - 1)`` with alpha >= 0 (Clevert et al. 2016)."""
    return _checked("elu", alpha)


def isru(alpha=1.0):
    """Inverse square root unit ``z / sqrt(1 + alpha z^2)``, alpha > 0 (Carlile et al. 2017).

    Bounded in (-1/sqrt(alpha), 1/sqrt(alpha))."""
    return _checked("isru", alpha)


def isrlu(alpha=1.0):
    """Inverse square root linear unit: ``z`` for z >= 0, ``z / sqrt(1 + alpha z^2)``
    below, alpha > 0 (Carlile et al. 2017)."""
    return _checked("isrlu", alpha)


def silu(beta=1.0):
    """SiLU / swish ``z sigmoid(beta z)``, beta >= 0 (Elfwing et al. 2018; Ramachandran
    et al. 2017).  beta = 1 is the usual SiLU; large beta approaches ReLU."""
    return _checked("silu", beta)


swish = silu
