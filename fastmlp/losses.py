"""Losses, computed on the last layer's output in one fused native pass.

softmax_cross_entropy
    On logits z (the last Dense has no activation): per sample
    logsumexp(z) - z[y] for integer labels, sum_c t_c (logsumexp(z) - z_c) for
    one-hot or soft targets t; gradient softmax(z) sum(t) - t.  predict()
    returns softmax probabilities.
mse (alias mean_squared_error)
    1/2 mean squared error: sum (z - y)^2 / (2 n k) over n samples and k
    outputs (scikit-learn's convention); gradient (z - y) / (n k).

Both are means over the batch; with sample weights, sum_r w_r loss_r / n.
"""
from dataclasses import dataclass

__all__ = ["Loss", "get"]


@dataclass(frozen=True)
class Loss:
    name: str
    kind: int          # the native plan's code
    classification: bool


_LOSSES = {
    "softmax_cross_entropy": Loss("softmax_cross_entropy", 0, True),
    "mse": Loss("mse", 1, False),
}
_ALIASES = {"mean_squared_error": "mse", "cross_entropy": "softmax_cross_entropy"}


def get(name):
    """The :class:`Loss` called `name`."""
    key = _ALIASES.get(name, name)
    if key not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(_LOSSES)}")
    return _LOSSES[key]
