"""Weight initialisation.

* he_normal:      N(0, 2 / fan_in)              (He et al. 2015), the default for ReLU-family
* xavier_uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010),
                  the default otherwise
Biases start at zero.
"""
import numpy as np

from .activations import RELU_FAMILY

__all__ = ["INITIALIZERS", "default_for", "initialize"]


def _he_normal(rng, fan_in, fan_out):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


def _xavier_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


INITIALIZERS = {"he_normal": _he_normal, "xavier_uniform": _xavier_uniform}


def default_for(activation_name):
    """He for the ReLU family, Xavier/Glorot otherwise."""
    return "he_normal" if activation_name in RELU_FAMILY else "xavier_uniform"


def initialize(name, rng, fan_in, fan_out):
    """A float64 (fan_in, fan_out) weight matrix drawn from initializer `name`."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; choose from {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name](rng, fan_in, fan_out)
