"""Input checks for every public entry point.

The kernels run with bounds checks off, so these are the only guard: anything
a user can pass either becomes a C-contiguous array of the model's dtype with
the right shape and finite values, or raises a ValueError that names the
problem.  Arrays are copied only when their dtype or layout requires it.
"""
import numpy as np

from ._kernels.checks import all_finite, label_range

_REJECTED_KINDS = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes",
                   "V": "structured", "M": "datetime", "m": "timedelta"}


def _numeric(a, name):
    a = np.asarray(a)
    if a.dtype.kind in _REJECTED_KINDS:
        raise ValueError(f"{name} has {_REJECTED_KINDS[a.dtype.kind]} dtype {a.dtype}; "
                         f"a real numeric array is needed")
    return a


def _all_finite(a):
    """a: a C-contiguous array of any shape and real dtype."""
    if a.dtype not in (np.float32, np.float64):  # float16, longdouble: no native kernel
        return bool(np.isfinite(a).all()) if a.dtype.kind == "f" else True
    return all_finite(a.reshape(a.shape[0] if a.ndim else 1, -1))


def check_features(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n, n_features) array of `dtype` with finite values."""
    X = _numeric(X, name)
    if X.ndim != 2:
        hint = " (reshape a single sample with x.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D of shape (n_samples, n_features), got shape "
                         f"{X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, but the model expects {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not _all_finite(X):
        raise ValueError(f"{name} contains NaN or infinity (after conversion to {np.dtype(dtype)})")
    return X


def check_classification_target(y, n_samples, n_classes, dtype, name="y"):
    """Integer labels (n,) as int64 in [0, n_classes), or target distributions
    (n, n_classes) as `dtype`."""
    y = _numeric(y, name)
    if y.ndim == 2:
        if y.shape != (n_samples, n_classes):
            raise ValueError(f"{name} as targets must have shape ({n_samples}, {n_classes}), "
                             f"got {y.shape}")
        y = np.ascontiguousarray(y, dtype=dtype)
        if not _all_finite(y):
            raise ValueError(f"{name} contains NaN or infinity")
        return y
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels or 2-D targets, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} samples, X has {n_samples}")
    if y.dtype.kind == "f":
        if not _all_finite(np.ascontiguousarray(y)):
            raise ValueError(f"{name} contains NaN or infinity")
        if np.any(y != np.floor(y)):
            raise ValueError(f"{name} holds non-integer class labels; labels must be integers "
                             f"in [0, {n_classes})")
        if y.min() < 0 or y.max() >= n_classes:  # before the cast, which could wrap
            bad = (y.min() if y.min() < 0 else y.max()).item()
            raise ValueError(f"{name} holds label {bad:g} outside [0, {n_classes}): the last "
                             f"layer has {n_classes} units, one per class")
    if y.dtype == np.uint64 and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds label {y.max()} outside [0, {n_classes})")
    y = np.ascontiguousarray(y, dtype=np.int64)
    low, high = label_range(y)
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{name} holds label {bad} outside [0, {n_classes}): the last layer "
                         f"has {n_classes} units, one per class")
    return y


def check_regression_target(y, n_samples, n_outputs, dtype, name="y"):
    """Targets as a C-contiguous (n, n_outputs) array of `dtype` ((n,) allowed for one output)."""
    y = _numeric(y, name)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape != (n_samples, n_outputs):
        raise ValueError(f"{name} must have shape ({n_samples}, {n_outputs}), got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not _all_finite(y):
        raise ValueError(f"{name} contains NaN or infinity")
    return y


# One BLAS call takes 32-bit dimensions, so a training batch (the rows of every
# GEMM of its step) has at most this many rows; predict works in blocks and is
# not limited.
MAX_BATCH_ROWS = 2 ** 31 - 1


def rows_of(X):
    """The number of rows of an array-like without converting it (0 when unknown)."""
    shape = getattr(X, "shape", None)
    return shape[0] if shape is not None and len(shape) >= 1 else 0


def check_batch_rows(rows, what):
    """Refuse a training batch of more than MAX_BATCH_ROWS rows, before anything
    is converted or copied (the input may be a broadcast view of a huge shape)."""
    if rows > MAX_BATCH_ROWS:
        raise ValueError(f"{what} has {rows} rows: a training batch holds at most "
                         f"2^31 - 1 (the BLAS's 32-bit dimensions); use fit() with a "
                         f"smaller batch_size, or split the batch")


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_label_target(y, n_samples, n_classes, dtype, loss_name, name="y"):
    """Integer class labels (n,) as int64 in [0, n_classes) (losses that take no targets)."""
    if np.ndim(y) == 2:
        raise ValueError(f"{loss_name} takes integer class labels of shape ({n_samples},), not "
                         f"2-D targets (labels = targets.argmax(axis=1) for one-hot targets)")
    return check_classification_target(y, n_samples, n_classes, dtype, name)


def check_distribution_target(y, n_samples, n_classes, dtype, loss_name, name="y"):
    """Target distributions (n, n_classes) >= 0 as `dtype` (losses that take no labels)."""
    y = _numeric(y, name)
    if y.ndim != 2:
        raise ValueError(f"{loss_name} takes target distributions of shape "
                         f"({n_samples}, {n_classes}), got shape {y.shape}")
    y = check_classification_target(y, n_samples, n_classes, dtype, name)
    if (y < 0).any():
        raise ValueError(f"{name} holds negative values; {loss_name} targets are "
                         f"probabilities >= 0")
    return y


def check_bounded_target(y, n_samples, n_outputs, dtype, loss_name, low, high=None, name="y"):
    """Regression-shaped targets with every value in [low, high] (high None: no bound).
    Booleans are taken as 0/1 (multi-label indicator matrices)."""
    if np.asarray(y).dtype == np.bool_:
        y = np.asarray(y, dtype=dtype)
    y = check_regression_target(y, n_samples, n_outputs, dtype, name)
    if (y < low).any() or (high is not None and (y > high).any()):
        bad = y.min() if (y < low).any() else y.max()
        interval = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(f"{name} holds {bad:g}; {loss_name} targets must be {interval}")
    return y


def check_sample_weight(sample_weight, n_samples, dtype, name="sample_weight"):
    """Per-sample weights as a C-contiguous (n,) array of `dtype`, finite and >= 0."""
    w = _numeric(sample_weight, name)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},), got {w.shape}")
    w = np.ascontiguousarray(w, dtype=dtype)
    if not _all_finite(w):
        raise ValueError(f"{name} contains NaN or infinity")
    if (w < 0).any():
        raise ValueError(f"{name} holds negative weights; weights must be >= 0")
    return w


def class_weight_table(class_weight, n_classes, name="class_weight"):
    """{class: weight} as a float64 array of n_classes weights (1 for classes not
    named), checking keys and values."""
    if not isinstance(class_weight, dict):
        raise ValueError(f"{name} must be a dict {{class: weight}}, got "
                         f"{type(class_weight).__name__}")
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < n_classes:
            raise ValueError(f"{name} has key {key!r}; keys are class labels in "
                             f"[0, {n_classes})")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{key}] must be a number, got {value!r}") from None
        if not 0 <= value < np.inf:
            raise ValueError(f"{name}[{key}] must be finite and >= 0, got {value}")
        table[int(key)] = value
    return table
