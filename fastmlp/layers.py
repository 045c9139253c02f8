"""Layers of a Sequential model."""
from . import activations as _activations
from . import initializers as _initializers

__all__ = ["Dense"]


class Dense:
    """Fully connected layer: ``A = f(X W + b)``.

    Parameters
    ----------
    units : int
        Number of output units.
    activation : str, Activation or None
        See :mod:`fastmlp.activations`; None is identity (use it for the last
        layer under softmax cross-entropy, which works on logits).
    init : str, Initializer or None
        Weight initializer (:mod:`fastmlp.initializers`), by name or with its
        parameters (``fm.initializers.normal(std=0.01)``); None picks He for
        the ReLU family, LeCun normal for selu and Xavier/Glorot otherwise
        (:func:`fastmlp.initializers.default_for`).  Biases start at zero.

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
            init = _initializers.default_for(self.activation.name)
        self.init = _initializers.get(init)

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r})"
