"""Looking inside a network: gradient checks and dead ReLU units.

>>> import fastmlp as fm
>>> fm.gradcheck(model, X[:20], y[:20])          # doctest: +SKIP
parameter  shape     checked  max abs error  max rel error
W1         (2, 16)        32       3.1e-10        2.2e-08
...
>>> fm.dead_units(model, X)                      # doctest: +SKIP
[0.0625, 0.0, None]
"""
import numpy as np

from .layers import layer_from_config

__all__ = ["gradcheck", "GradCheckResult", "dead_units"]

_RELU_FAMILY = ("relu", "leaky_relu")


class GradCheckResult:
    """Per parameter array (W1, b1, W2, ...): how the numerical gradient compares
    with the analytic one.

    Attributes
    ----------
    rows : list of dict
        One per parameter array: "name", "shape", "checked" (entries compared),
        "max_abs_error", "max_rel_error", and the compared "indices" (flat),
        "analytic" and "numeric" values and their "relative_errors".
    loss : float
        The loss at the model's current weights.
    """

    def __init__(self, rows, loss):
        self.rows = rows
        self.loss = loss

    @property
    def max_relative_error(self):
        return max(row["max_rel_error"] for row in self.rows)

    def ok(self, rtol=1e-5, atol=1e-8):
        """True when every checked entry has a relative error <= `rtol` or an
        absolute error <= `atol` (a near-zero gradient's relative error is mostly
        float rounding: the loss's rounding error divided by 2 eps)."""
        return all(np.all((np.abs(row["analytic"] - row["numeric"]) <= atol)
                          | (row["relative_errors"] <= rtol)) for row in self.rows)

    def __repr__(self):
        lines = [f"{'parameter':10s} {'shape':12s} {'checked':>8s} {'max abs error':>14s} "
                 f"{'max rel error':>14s}"]
        for row in self.rows:
            lines.append(f"{row['name']:10s} {str(row['shape']):12s} {row['checked']:8d} "
                         f"{row['max_abs_error']:14.2e} {row['max_rel_error']:14.2e}")
        return "\n".join(lines)


def gradcheck(model, X, y, eps=1e-6, max_checks=200, seed=0):
    """Compare the model's analytic gradients with central finite differences.

    For each parameter entry p checked, ``numeric = (L(p + eps) - L(p - eps)) / (2 eps)``
    with L the mean loss on (X, y), and the relative error is
    ``|analytic - numeric| / max(|analytic|, |numeric|, 1e-8)`` (Karpathy, CS231n notes
    on gradient checks: below about 1e-7 is right in float64; ReLU kinks crossed by
    the ±eps step can give larger errors at a few entries).  Entries whose
    gradient is tiny (a trained model has many) carry the loss's rounding error
    divided by 2 eps, about 1e-10 absolute, so their relative error can be large:
    read it with the absolute error, as ``result.ok(rtol, atol)`` does.

    The check runs on a float64 copy of the model (same architecture, weights,
    loss and backend); the model itself is not changed.

    Parameters
    ----------
    model : Sequential, built and compiled
    X : array-like (n_samples, n_features)
    y : labels (n_samples,) or targets (n_samples, n_outputs)
    eps : float > 0
    max_checks : int >= 1 or None
        At most this many entries per parameter array, drawn at random (seeded)
        when the array is larger; None checks every entry.
    seed : int

    Returns
    -------
    GradCheckResult (prints as a table; ``.max_relative_error``, ``.ok(rtol, atol)``)
    """
    from .model import Sequential

    model._require_compiled()
    model._require_built()
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_checks is not None and (isinstance(max_checks, bool) or not isinstance(
            max_checks, (int, np.integer)) or max_checks < 1):
        raise ValueError(f"max_checks must be an integer >= 1 or None, got {max_checks!r}")
    clone = Sequential([layer_from_config(c) for c in model.get_config()["layers"]],
                       input_dim=model.input_dim, dtype="float64", seed=0,
                       backend=model.backend)
    clone.compile(loss=model.loss, optimizer="sgd")
    clone.params[...] = model.params
    clone.state[...] = model.state
    X = clone._check_X(X)
    y = clone._check_y(y, X.shape[0])
    loss, analytic = clone.loss_and_gradients(X, y)
    views = clone._views(clone.params)
    rng = np.random.default_rng(seed)
    rows = []
    for name, view, grad in zip(clone._weight_names(), views, analytic):
        size = view.size
        if max_checks is None or size <= max_checks:
            indices = np.arange(size)
        else:
            indices = np.sort(rng.choice(size, max_checks, replace=False))
        numeric = np.empty(len(indices))
        flat = view.reshape(-1)   # a view into clone.params
        for j, idx in enumerate(indices):
            old = flat[idx]
            flat[idx] = old + eps
            up = clone._plan.loss(X, y)
            flat[idx] = old - eps
            down = clone._plan.loss(X, y)
            flat[idx] = old
            numeric[j] = (up - down) / (2 * eps)
        exact = grad.reshape(-1)[indices]
        abs_err = np.abs(exact - numeric)
        rel_err = abs_err / np.maximum(np.maximum(np.abs(exact), np.abs(numeric)), 1e-8)
        rows.append({"name": name, "shape": view.shape, "checked": len(indices),
                     "max_abs_error": float(abs_err.max(initial=0.0)),
                     "max_rel_error": float(rel_err.max(initial=0.0)),
                     "indices": indices, "analytic": exact, "numeric": numeric,
                     "relative_errors": rel_err})
    return GradCheckResult(rows, float(loss))


def dead_units(model, X):
    """Fraction of the units of each ReLU-family layer that never fire on X.

    A unit is dead when its pre-activation is <= 0 for every sample, so ReLU
    outputs 0 and passes no gradient back: nothing can revive it by gradient
    descent (the "monitor the fraction of dead units" advice, CS231n).

    Parameters
    ----------
    model : Sequential, built
    X : array-like (n_samples, n_features): use a representative sample.

    Returns
    -------
    list with one entry per layer with parameters (Dense, Maxout, BatchNorm,
    PReLU; as model.activations): the dead fraction in [0, 1] for relu and
    leaky_relu layers (for leaky ReLU: units whose input is never positive),
    None for the others.
    """
    fractions = []
    for layer, A in zip(model._units, model.activations(X)):
        if layer.activation.name in _RELU_FAMILY:
            # relu/leaky_relu (alpha >= 0): A > 0 exactly when the pre-activation is
            fractions.append(float(np.mean(~(A > 0).any(axis=0))))
        else:
            fractions.append(None)
    return fractions
