"""Layers of a Sequential model.

Every layer class derives from :class:`Layer`, which registers it by class
name, and describes itself with ``get_config()`` (JSON-able constructor
arguments) and ``from_config(config)``: that is how a saved model names its
layers (:mod:`fastmlp.io`) without storing code.

Dense, Maxout, BatchNorm and PReLU have parameters (in the model's flat
buffer, in this order per layer: Dense and Maxout W, b; BatchNorm gamma,
beta; PReLU alpha); Dropout acts on the output of the layer before it.
"""
import dataclasses
import math

from . import activations as _activations
from . import initializers as _initializers

__all__ = ["Layer", "Dense", "Dropout", "BatchNorm", "PReLU", "Maxout", "LAYERS", "layer_config",
           "layer_from_config"]

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
        """The layer from get_config()'s output (invalid values raise ValueError);
        an activation or initializer described as a dict becomes its object."""
        config = dict(config)
        if isinstance(config.get("activation"), dict):
            config["activation"] = activation_from_config(config["activation"])
        if isinstance(config.get("init"), dict):
            config["init"] = _init_from_config(config["init"])
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


def _init_config(init):
    """An Initializer as its name, or {"name", "params"} when it has parameters."""
    return init.name if not init.params else {"name": init.name, "params": dict(init.params)}


def _init_from_config(config):
    """The Initializer of _init_config()'s {"name", "params"} dict (checked by its factory)."""
    if set(config) != {"name", "params"} or not isinstance(config["params"], dict):
        raise ValueError(f"bad initializer configuration {str(config)[:100]}")
    return _initializers.get(
        _initializers.Initializer(str(config["name"]), tuple(config["params"].items())))


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
        return {"units": self.units, "activation": activation_config(self.activation),
                "init": _init_config(self.init)}

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


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


class Maxout(Layer):
    """Maxout layer (Goodfellow et al. 2013): a dense layer with ``units * pieces``
    linear outputs and the max over each unit's pieces::

        Z = X W + b,   A[:, u] = max_j Z[:, j * units + u]

    The backward pass routes each unit's gradient to its maximal piece (the
    first one on ties): ``dZ[:, j * units + u] = dA[:, u]`` there, 0 elsewhere.
    A maxout unit is a learned convex piecewise-linear activation, so it takes
    no activation of its own.

    Parameters
    ----------
    units : int
        Number of output units.
    pieces : int >= 2
        Linear pieces per unit (k in the paper).
    init : str
        Initializer of each piece's (n_in, units) weights, as a Dense(units)
        layer (default Xavier/Glorot uniform); biases start at zero.

    Shape
    -----
    input (n, n_in) -> output (n, units); W has shape (n_in, units * pieces),
    b (units * pieces,), piece-major: column j * units + u is piece j of unit u
    (``W.reshape(n_in, pieces, units)``).
    """

    def __init__(self, units, pieces=2, init="xavier_uniform"):
        self.units = _positive_int(units, "Maxout units")
        if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 2:
            raise ValueError(f"Maxout pieces must be an integer >= 2, got {pieces!r}")
        self.pieces = pieces
        self.init = _initializers.get(init)
        self.activation = _activations.get(None)

    def get_config(self):
        return {"units": self.units, "pieces": self.pieces, "init": _init_config(self.init)}

    def __repr__(self):
        return f"Maxout({self.units}, pieces={self.pieces})"


class BatchNorm(Layer):
    """Batch normalization (Ioffe & Szegedy 2015) of the previous layer's output,
    feature by feature, then an optional activation.

    Training (train_step, fit, loss_and_gradients), over the n rows of the batch::

        mean = sum_r x_r / n,   var = sum_r (x_r - mean)^2 / n        (biased)
        y = gamma (x - mean) / sqrt(var + eps) + beta,   a = f(y)

    and, with every applied update (train_step, fit; not loss_and_gradients)::

        running_mean = momentum running_mean + (1 - momentum) mean
        running_var  = momentum running_var + (1 - momentum) var n / (n - 1)

    (the unbiased batch variance goes into the running average, as in PyTorch;
    Keras's ``momentum`` convention).  Inference (predict, evaluate) uses
    ``y = gamma (x - running_mean) / sqrt(running_var + eps) + beta``.

    Backward, with dy = dLoss/dy and xhat = (x - mean) / sqrt(var + eps)::

        dbeta = sum_r dy,   dgamma = sum_r dy xhat
        dx = gamma / sqrt(var + eps) (dy - dbeta / n - xhat dgamma / n)

    gamma (init 1) and beta (init 0) are learned parameters; the running mean
    (init 0) and variance (init 1) are model state, not parameters
    (Sequential.get_state()).  A training batch needs at least 2 samples.  The
    bias of a Dense layer right before a BatchNorm has no effect (the mean is
    subtracted): its gradient is 0 up to rounding.

    Parameters
    ----------
    momentum : float in [0, 1]
        Weight of the old running statistics in each update.
    eps : float > 0
        Added to the variance before the square root.
    activation : str, Activation or None
        Applied after the affine map: ``[Dense(64), BatchNorm(activation="relu")]``
        is the paper's placement (normalize the pre-activations).

    Shape
    -----
    input (n, m) -> output (n, m); gamma, beta, running mean and variance (m,).
    """

    def __init__(self, momentum=0.9, eps=1e-5, activation=None):
        momentum, eps = float(momentum), float(eps)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"BatchNorm eps must be a positive number, got {eps}")
        self.momentum, self.eps = momentum, eps
        self.activation = _activations.get(activation)

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps,
                "activation": activation_config(self.activation)}

    def __repr__(self):
        args = [f"{name}={value:g}" for name, value, default in
                (("momentum", self.momentum, 0.9), ("eps", self.eps, 1e-5)) if value != default]
        return f"BatchNorm({', '.join(args + [f'activation={self.activation!r}'])})"


class PReLU(Layer):
    """Parametric ReLU (He et al. 2015) with one learned slope per unit::

        a = z if z > 0 else alpha_c z
        dz = da (1 if z > 0 else alpha_c),   dalpha_c = sum_r da min(z, 0)

    Place it after a Dense layer without activation:
    ``[Dense(64), PReLU(), ...]``.

    Parameters
    ----------
    init : float
        Initial slope of every unit (the paper's 0.25).

    Shape
    -----
    input (n, m) -> output (n, m); alpha (m,).
    """

    def __init__(self, init=0.25):
        init = float(init)
        if not math.isfinite(init):
            raise ValueError(f"PReLU init must be a finite number, got {init}")
        self.init = init
        self.activation = _activations.get(None)

    def get_config(self):
        return {"init": self.init}

    def __repr__(self):
        return f"PReLU(init={self.init:g})"
