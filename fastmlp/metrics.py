"""Metrics that fit() and evaluate() report next to the loss.

Each metric compares the network's raw output ``out`` (logits under softmax
cross-entropy, the last layer's activations otherwise; shape (n, k)) with the
targets ``y`` and returns one float, optionally weighted per sample.

==================  ================================================  ==============
name                value                                             task
==================  ================================================  ==============
accuracy            mean [argmax out_r == y_r]                        classification
top_k_accuracy      mean [y_r among the k largest out_r] (k = 5)      classification
top_<k>_accuracy    the same for a given k, e.g. "top_3_accuracy"     classification
mse                 mean (out - y)^2 (no 1/2, unlike the mse loss)    regression
mae                 mean |out - y|                                    regression
r2                  1 - SS_res / SS_tot, averaged over the outputs    regression
==================  ================================================  ==============

Class labels may be given as integers (n,) or as one-hot/soft targets (n, k),
whose argmax is the label.  With ``sample_weight`` (n,), means become weighted
means ``sum_r w_r m_r / sum_r w_r``.  The argmax of the logits is that of the
probabilities, so classification metrics need no softmax.
"""
import re

import numpy as np

__all__ = ["Metric", "get", "accuracy", "top_k_accuracy", "mean_squared_error",
           "mean_absolute_error", "r2_score"]


def _labels(y):
    return y if y.ndim == 1 else y.argmax(axis=1)


def _mean(values, sample_weight):
    if sample_weight is None:
        return float(np.mean(values))
    w = np.asarray(sample_weight, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        raise ValueError("sample weights sum to zero: a weighted mean is undefined")
    return float(np.dot(w, values) / total)


def _as_2d(y, k):
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(-1, k) if y.ndim == 1 else y


def accuracy(out, y, sample_weight=None):
    """Fraction of rows whose largest output is the true class.

    out : (n, k) scores; y : labels (n,) or targets (n, k)."""
    return _mean(out.argmax(axis=1) == _labels(y), sample_weight)


def top_k_accuracy(out, y, k=5, sample_weight=None):
    """Fraction of rows whose true class has one of the k largest outputs.

    A class tied with the k-th largest output counts as a hit (the true class's
    score beats fewer than k others).  With k >= the number of classes every
    row is a hit."""
    labels = _labels(y)
    true_score = out[np.arange(out.shape[0]), labels]
    beaten_by = (out > true_score[:, None]).sum(axis=1)
    return _mean(beaten_by < k, sample_weight)


def mean_squared_error(out, y, sample_weight=None):
    """mean over rows and outputs of (out - y)^2."""
    diff = out - _as_2d(y, out.shape[1])
    return _mean(np.mean(diff * diff, axis=1), sample_weight)


def mean_absolute_error(out, y, sample_weight=None):
    """mean over rows and outputs of |out - y|."""
    return _mean(np.mean(np.abs(out - _as_2d(y, out.shape[1])), axis=1), sample_weight)


def r2_score(out, y, sample_weight=None):
    """Coefficient of determination, 1 - sum (y - out)^2 / sum (y - mean y)^2 per
    output, averaged uniformly over the outputs (scikit-learn's convention: an
    output with constant targets scores 1 if predicted exactly, else 0)."""
    y = _as_2d(y, out.shape[1])
    out = np.asarray(out, dtype=np.float64)
    w = (np.ones(y.shape[0]) if sample_weight is None
         else np.asarray(sample_weight, dtype=np.float64))
    mean = (w @ y) / w.sum()
    ss_res = w @ (y - out) ** 2
    ss_tot = w @ (y - mean) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                          np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(scores))


class Metric:
    """A named metric: ``metric(out, y, sample_weight=None) -> float``.

    Parameters
    ----------
    name : str
        The key under which fit()/evaluate() report it.
    fn : callable (out, y, sample_weight) -> float
    classification : bool
        Whether it needs class labels (else regression targets).
    """

    def __init__(self, name, fn, classification):
        self.name = name
        self.fn = fn
        self.classification = classification

    def __call__(self, out, y, sample_weight=None):
        return self.fn(out, y, sample_weight=sample_weight)

    def __repr__(self):
        return f"Metric({self.name!r})"


def _top_k(k):
    return Metric(f"top_{k}_accuracy",
                  lambda out, y, sample_weight=None: top_k_accuracy(out, y, k, sample_weight),
                  True)


_METRICS = {
    "accuracy": lambda: Metric("accuracy", accuracy, True),
    "top_k_accuracy": lambda: _top_k(5),
    "mse": lambda: Metric("mse", mean_squared_error, False),
    "mae": lambda: Metric("mae", mean_absolute_error, False),
    "r2": lambda: Metric("r2", r2_score, False),
}
_ALIASES = {"acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae",
            "r2_score": "r2"}
_TOP_K = re.compile(r"top_([1-9][0-9]*)_accuracy\Z")


def get(spec):
    """A :class:`Metric` from a Metric or a name (see the module docstring)."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        key = _ALIASES.get(spec, spec)
        if key in _METRICS:
            return _METRICS[key]()
        match = _TOP_K.match(key)
        if match:
            return _top_k(int(match.group(1)))
    raise ValueError(f"unknown metric {spec!r}; choose from {', '.join(_METRICS)}, "
                     "top_<k>_accuracy, or pass a fastmlp.metrics.Metric")
