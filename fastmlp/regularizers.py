"""Weight regularization: L1, L2 and elastic-net penalties and the max-norm
constraint, on every weight matrix W of the model and never on the biases.

    penalty = l1 sum |W| + (l2 / 2) sum W^2          gradient  l1 sign(W) + l2 W

so ``l2(c)`` is the classic weight decay of coefficient c (PyTorch's
``weight_decay=c`` for SGD).  The max-norm constraint (Srivastava et al. 2014)
rescales each unit's incoming weight vector w = W[:, j] to norm c whenever
|w| > c, after every update.

Pass one, or a list to combine, to ``compile(..., regularizer=...)``.  The
compiled step adds the penalty's gradient inside the fused optimizer update
(after gradient clipping, which applies to the loss gradient only, as
``torch.nn.utils.clip_grad_norm_`` before a PyTorch step).  The losses the
model reports (train_step, fit's "loss" and "val_loss", evaluate,
loss_and_gradients) include the penalty.
"""
import math

import numpy as np

__all__ = ["Regularizer", "l1", "l2", "l1_l2", "max_norm", "get"]


def _coefficient(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (value >= 0) or math.isinf(value):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


class Regularizer:
    """Penalty ``l1 |W|_1 + l2/2 |W|^2`` on the weight matrices and, when
    max_norm is set, the constraint ``|W[:, j]| <= max_norm`` after each update.

    Parameters
    ----------
    l1, l2 : float >= 0
    max_norm : float > 0 or None
    """

    def __init__(self, l1=0.0, l2=0.0, max_norm=None):
        self.l1 = _coefficient("l1", l1)
        self.l2 = _coefficient("l2", l2)
        if max_norm is not None:
            max_norm = _coefficient("max_norm", max_norm)
            if max_norm == 0:
                raise ValueError("max_norm must be > 0")
        self.max_norm = max_norm

    def penalty(self, weights):
        """The penalty of a list of weight matrices (float64 sum)."""
        total = 0.0
        for W in weights:
            W = np.asarray(W, dtype=np.float64)
            total += self.l1 * np.abs(W).sum() + 0.5 * self.l2 * np.vdot(W, W)
        return float(total)

    def gradient(self, W):
        """The penalty's gradient with respect to W: l1 sign(W) + l2 W."""
        W = np.asarray(W)
        t = W.dtype.type
        return t(self.l1) * np.sign(W) + t(self.l2) * W

    def __add__(self, other):
        if not isinstance(other, Regularizer):
            return NotImplemented
        if self.max_norm is not None and other.max_norm is not None:
            raise ValueError("two max-norm constraints given; keep one")
        return Regularizer(self.l1 + other.l1, self.l2 + other.l2,
                           self.max_norm if self.max_norm is not None else other.max_norm)

    def get_config(self):
        """The constructor arguments (how a model file stores the regularizer)."""
        return {"l1": self.l1, "l2": self.l2, "max_norm": self.max_norm}

    def _bind(self, plan):
        plan.set_regularization(self.l1, self.l2, self.max_norm or 0.0)

    def __repr__(self):
        parts = [f"l1={self.l1:g}"] if self.l1 else []
        parts += [f"l2={self.l2:g}"] if self.l2 else []
        parts += [f"max_norm={self.max_norm:g}"] if self.max_norm is not None else []
        return f"Regularizer({', '.join(parts)})"


def l1(l1=0.01):
    """Lasso penalty ``l1 sum |W|`` (gradient l1 sign(W), 0 at 0)."""
    return Regularizer(l1=l1)


def l2(l2=0.01):
    """Ridge penalty / weight decay ``(l2 / 2) sum W^2`` (gradient l2 W)."""
    return Regularizer(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    """Elastic net (Zou & Hastie 2005): ``l1 sum |W| + (l2 / 2) sum W^2``."""
    return Regularizer(l1=l1, l2=l2)


def max_norm(max_value=2.0):
    """Max-norm constraint: each unit's incoming weights rescaled to norm
    max_value when longer (Srivastava et al. 2014, sec. 5.1)."""
    return Regularizer(max_norm=max_value)


def get(spec):
    """A Regularizer (or None) from None, a Regularizer or a list of them (combined)."""
    if spec is None:
        return None
    if isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, (list, tuple)) and all(isinstance(r, Regularizer) for r in spec):
        combined = Regularizer()
        for r in spec:
            combined = combined + r
        return combined
    raise ValueError(f"regularizer must be a fastmlp.regularizers.Regularizer, a list of them "
                     f"or None, got {spec!r}")
