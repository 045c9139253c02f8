"""Layers of a Sequential model.

Every layer class derives from :class:`Layer`, which registers it by class
name, and describes itself with ``get_config()`` (JSON-able constructor
arguments) and ``from_config(config)``: that is how a saved model names its
layers (:mod:`fastmlp.io`) without storing code.
"""
import dataclasses
import math

from . import activations as _activations
from . import initializers as _initializers

__all__ = ["Layer", "Dense", "Dropout", "LAYERS", "layer_config", "layer_from_config"]

#: layer classes by class name (every Layer subclass adds itself)
LAYERS = {}


class Layer:
    """Base class of layers: registers subclasses by name for saving and loading."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYERS[cls.__name__] = cls

    def get_config(self):
        """The constructor arguments as JSON-able values."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """The layer from get_config()'s output (invalid values raise ValueError)."""
        return cls(**config)


def layer_config(layer):
    """{"class": name, "config": {...}} of a layer."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(spec):
    """A layer from layer_config()'s output; ValueError for unknown classes or bad values."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
            or not isinstance(spec.get("config"), dict):
        raise ValueError(f"a layer must be described as {{'class': name, 'config': {{...}}}}, "
                         f"got {str(spec)[:100]}")
    cls = LAYERS.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown layer class {spec['class'][:100]!r}; known: "
                         f"{', '.join(sorted(LAYERS))}")
    try:
        return cls.from_config(spec["config"])
    except TypeError as e:  # unexpected or missing arguments
        raise ValueError(f"bad {cls.__name__} configuration: {e}") from None


def activation_config(activation):
    """An Activation as a dict of its fields ({"name": ..., "alpha": ...})."""
    return dataclasses.asdict(activation)


def activation_from_config(config):
    """The Activation of activation_config()'s output (checked)."""
    fields = {f.name for f in dataclasses.fields(_activations.Activation)}
    if not isinstance(config, dict) or set(config) - fields or "name" not in config \
            or not isinstance(config["name"], str):
        raise ValueError(f"bad activation configuration {str(config)[:100]}")
    for key, value in config.items():
        if key != "name" and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value)):
            raise ValueError(f"activation parameter {key} must be a finite number, got {value!r}")
    return _activations.get(_activations.Activation(**config))


class Dense(Layer):
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

    def get_config(self):
        init = (self.init.name if not self.init.params
                else {"name": self.init.name, "params": dict(self.init.params)})
        return {"units": self.units, "activation": activation_config(self.activation),
                "init": init}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("activation"), dict):
            config["activation"] = activation_from_config(config["activation"])
        init = config.get("init")
        if isinstance(init, dict):  # a parametrized initializer, checked by its factory
            if set(init) != {"name", "params"} or not isinstance(init["params"], dict):
                raise ValueError(f"bad initializer configuration {str(init)[:100]}")
            config["init"] = _initializers.get(
                _initializers.Initializer(str(init["name"]), tuple(init["params"].items())))
        return cls(**config)

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r})"


class Dropout(Layer):
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

    def get_config(self):
        return {"rate": self.rate}

    def __repr__(self):
        return f"Dropout({self.rate:g})"
