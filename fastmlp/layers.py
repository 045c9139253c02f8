"""Layers of a Sequential model."""
from . import activations as _activations
from .initializers import INITIALIZERS, default_for

__all__ = ["Dense", "Dropout"]


class Dense:
    """Fully connected layer: ``A = f(X W + b)``.

    Parameters
    ----------
    units : int
        Number of output units.
    activation : str, Activation or None
        See :mod:`fastmlp.activations`; None is identity (use it for the last
        layer under softmax cross-entropy, which works on logits).
    init : str or None
        Weight initializer (:mod:`fastmlp.initializers`); None picks He for the
        ReLU family and Xavier/Glorot otherwise.  Biases start at zero.

    Shape
    -----
    input (n, n_in) -> output (n, units); W has shape (n_in, units), b (units,).
    """

    def __init__(self, units, activation=None, init=None):
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = units
        self.activation = _activations.get(activation)
        if init is None:
            init = default_for(self.activation.name)
        if init not in INITIALIZERS:
            raise ValueError(f"unknown initializer {init!r}; choose from {', '.join(INITIALIZERS)}")
        self.init = init

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r})"


class Dropout:
    """Inverted dropout on the previous layer's output (Srivastava et al. 2014).

    During training each unit of each sample is zeroed with probability `rate`
    and the kept ones are scaled by 1 / (1 - rate); at inference (predict,
    evaluate) the layer passes its input through unchanged.  Masks come from a
    counter-based RNG keyed by (model seed, layer, step, sample, unit): they do
    not depend on the thread count, and a resumed run reproduces them.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping a unit.  Must follow a Dense layer, and cannot
        be the last layer.
    """

    def __init__(self, rate):
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def __repr__(self):
        return f"Dropout({self.rate:g})"
