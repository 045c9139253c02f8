"""Losses, computed on the last layer's output z in one fused native pass
(value and gradient together).  Choose one with ``model.compile(loss=...)``:
a name below, or :func:`huber` / :func:`mape` for a non-default parameter.

Reduction.  Every loss is a mean over the batch.  The losses that compare a
sample's k outputs as a whole (softmax_cross_entropy, kl_divergence, hinge)
sum over the outputs and average over the n samples; the elementwise ones
(mse, mae, mape, huber, binary_cross_entropy, poisson) average over all n k
entries.  With sample weights w (``sample_weight=``, or class weights turned
into w_r = class_weight[y_r]) the numerator is weighted and the divisor stays
n (or n k): ``sum_r w_r loss_r / n``, so unit weights change nothing and a zero
weight drops a sample without changing the scale.

=====================  =====================================================  ===============
name                   loss (before the mean); gradient dloss/dz              predict()
=====================  =====================================================  ===============
softmax_cross_entropy  logsumexp(z) - z_y for labels y, or                    softmax(z)
                       sum_c t_c (logsumexp(z) - z_c) for targets t;
                       softmax(z) sum(t) - t
kl_divergence          sum_c t_c (log t_c - log softmax(z)_c), 0 log 0 = 0,   softmax(z)
                       targets t >= 0 (soft labels); softmax(z) sum(t) - t
hinge                  Crammer-Singer multi-class hinge on scores z with      z
                       integer labels y: max(0, 1 + max_{c != y} z_c - z_y);
                       e_j - e_y where positive (j the argmax)
binary_cross_entropy   per output, sigmoid on the logit z, target t in        sigmoid(z)
                       [0, 1]: log(1 + e^z) - t z, computed as
                       max(z, 0) - t z + log1p(e^-|z|); sigmoid(z) - t
mse                    (z - t)^2 / 2 (the 1/2 convention of scikit-learn);    z
                       z - t
mae                    |z - t|; sign(z - t), 0 at z = t                       z
mape                   100 |z - t| / max(|t|, epsilon), epsilon = 1e-7;       z
                       100 sign(z - t) / max(|t|, epsilon)
huber                  d^2 / 2 if |d| <= delta else delta (|d| - delta / 2),  z
                       d = z - t, delta = 1; clip(d, -delta, delta)
poisson                on the log-rate z, counts t >= 0: e^z - t z (the       e^z
                       constant log t! left out); e^z - t
=====================  =====================================================  ===============

So mse is ``sum (z - t)^2 / (2 n k)`` and its gradient ``(z - t) / (n k)``;
huber with a delta larger than every residual equals mse.  The losses on
logits (softmax_cross_entropy, kl_divergence, binary_cross_entropy) need a last
layer without activation: the softmax or sigmoid is fused into the loss, so it
is finite for any finite logits, and predict() applies it.

References: Crammer and Singer, "On the algorithmic implementation of
multiclass kernel-based vector machines", JMLR 2001 (hinge); Huber, "Robust
estimation of a location parameter", Ann. Math. Statist. 1964; PyTorch's
BCEWithLogitsLoss, HuberLoss and PoissonNLLLoss(log_input=True) use the same
definitions and reduction as binary_cross_entropy, huber and poisson here.
"""
from dataclasses import dataclass

from ._reference import LOSSES

__all__ = ["Loss", "LOSSES", "get", "huber", "mape"]


@dataclass(frozen=True)
class _Spec:
    targets: str          # what y must be (see Sequential's target checks)
    on_logits: bool       # the last layer must have no activation
    min_units: int        # outputs the last layer needs
    classification: bool  # the accuracy metric applies


_SPECS = {
    "softmax_cross_entropy": _Spec("labels_or_distributions", True, 2, True),
    "mse": _Spec("real", False, 1, False),
    "binary_cross_entropy": _Spec("probabilities", True, 1, True),
    "mae": _Spec("real", False, 1, False),
    "mape": _Spec("real", False, 1, False),
    "huber": _Spec("real", False, 1, False),
    "hinge": _Spec("labels", False, 2, True),
    "kl_divergence": _Spec("distributions", True, 2, True),
    "poisson": _Spec("counts", False, 1, False),
}
assert set(_SPECS) == set(LOSSES), "fastmlp.losses and the kernels list other losses"

_PARAMS = {"huber": ("delta", 1.0), "mape": ("epsilon", 1e-7)}
_ALIASES = {"mean_squared_error": "mse", "cross_entropy": "softmax_cross_entropy",
            "mean_absolute_error": "mae", "mean_absolute_percentage_error": "mape",
            "bce": "binary_cross_entropy", "kld": "kl_divergence"}


@dataclass(frozen=True)
class Loss:
    """A loss by name with its parameter (huber's delta, mape's epsilon; 0 for the others)."""

    name: str
    param: float = 0.0

    @property
    def kind(self):
        """The native plan's code of the loss."""
        return LOSSES.index(self.name)

    @property
    def targets(self):
        """What y must be: "labels_or_distributions", "labels", "distributions",
        "probabilities" (in [0, 1]), "counts" (>= 0) or "real"."""
        return _SPECS[self.name].targets

    @property
    def on_logits(self):
        """Whether the loss applies its own softmax/sigmoid to the last layer."""
        return _SPECS[self.name].on_logits

    @property
    def min_units(self):
        return _SPECS[self.name].min_units

    @property
    def classification(self):
        """Whether the accuracy metric and class weights apply."""
        return _SPECS[self.name].classification

    def __repr__(self):
        if self.name in _PARAMS:
            return f"{self.name}({_PARAMS[self.name][0]}={self.param:g})"
        return self.name


def _positive(value, name, what):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {name} must be a number > 0, got {value!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{what} {name} must be a finite number > 0, got {value}")
    return value


def huber(delta=1.0):
    """Huber loss: d^2 / 2 for |d| <= delta, delta (|d| - delta / 2) beyond (d = z - t),
    averaged over every output; gradient clip(d, -delta, delta) (Huber 1964)."""
    return Loss("huber", _positive(delta, "delta", "huber"))


def mape(epsilon=1e-7):
    """Mean absolute percentage error 100 |z - t| / max(|t|, epsilon), averaged over
    every output; epsilon keeps targets at or near 0 from dividing by zero."""
    return Loss("mape", _positive(epsilon, "epsilon", "mape"))


def get(spec):
    """The :class:`Loss` for a name (with its default parameter) or a Loss."""
    if isinstance(spec, Loss):
        if spec.name not in _SPECS:
            raise ValueError(f"unknown loss {spec.name!r}; choose from {', '.join(LOSSES)}")
        if spec.name in _PARAMS:
            return {"huber": huber, "mape": mape}[spec.name](spec.param)
        return Loss(spec.name)
    key = _ALIASES.get(spec, spec)
    if not isinstance(key, str) or key not in _SPECS:
        raise ValueError(f"unknown loss {spec!r}; choose from {', '.join(LOSSES)}")
    return Loss(key, _PARAMS[key][1] if key in _PARAMS else 0.0)
