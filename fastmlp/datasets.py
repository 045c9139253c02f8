"""Small datasets for examples, tests and benchmarks.

Everything here needs only NumPy. Each function returns a pair ``(X, y)``:

* ``X`` is a float64 array of shape ``(n_samples, n_features)``;
* ``y`` is an int64 array of class labels of shape ``(n_samples,)``, or a
  float64 array of targets of the same shape for the regression sets.

The synthetic generators take a ``seed`` keyword (default ``0``) passed to
:func:`numpy.random.default_rng`, so the same arguments always give the same
data. Samples come out grouped by class; use :func:`train_test_split`, which
shuffles, before training.

:func:`load_digits` reads the 8x8 handwritten digits data that ships with the
package (UCI "Optical Recognition of Handwritten Digits", E. Alpaydin and
C. Kaynak, 1998, CC BY 4.0, as packaged by scikit-learn; see
``fastmlp/data/DIGITS_LICENSE.txt``), so it works offline.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import numbers
from importlib import resources

import numpy as np

__all__ = [
    "load_digits",
    "digits_description",
    "xor",
    "spiral",
    "circles",
    "moons",
    "clusters",
    "square_regression",
    "sine_regression",
    "train_test_split",
]

_PACKAGE = __package__ or "fastmlp"
_DIGITS_FILE = "digits.csv.gz"
_DIGITS_DESCR = "digits.rst"
_DIGITS_SHAPE = (1797, 65)  # 64 pixels followed by the label

_XOR_POINTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
_XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int64)

_CLUSTER_RADIUS = 3.0


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_nonneg(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _split_evenly(n_samples, n_parts):
    """Sizes of ``n_parts`` groups summing to ``n_samples``, differing by <= 1."""
    base, extra = divmod(n_samples, n_parts)
    return [base + (1 if k < extra else 0) for k in range(n_parts)]


# ----------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------


def _data_file(name):
    return resources.files(_PACKAGE).joinpath("data").joinpath(name)


@functools.lru_cache(maxsize=None)
def _digits_table():
    """The packaged digits table as a read-only int64 array of shape (1797, 65)."""
    with _data_file(_DIGITS_FILE).open("rb") as fh:
        text = gzip.decompress(fh.read()).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64)
    if (
        table.shape != _DIGITS_SHAPE
        or not np.array_equal(table, np.round(table))
        or table[:, :64].min() < 0
        or table[:, :64].max() > 16
        or table[:, 64].min() < 0
        or table[:, 64].max() > 9
    ):
        raise RuntimeError(
            f"packaged data file {_DIGITS_FILE!r} is damaged "
            f"(parsed shape {table.shape}, expected {_DIGITS_SHAPE})"
        )
    table = table.astype(np.int64)
    table.setflags(write=False)
    return table


def load_digits(return_images=False):
    """Load the 8x8 handwritten digits dataset bundled with fastmlp.

    The data is the test partition of the UCI "Optical Recognition of
    Handwritten Digits" dataset (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0),
    as packaged by scikit-learn. Each sample is an 8x8 image whose pixels
    count the "on" pixels of a 4x4 block of a 32x32 bitmap, so the values are
    integers from 0 to 16. The values are returned unscaled; divide by 16 to
    bring them into ``[0, 1]``.

    Parameters
    ----------
    return_images : bool, default False
        If True, return the samples as images of shape ``(1797, 8, 8)``
        instead of flat rows of shape ``(1797, 64)``.

    Returns
    -------
    X : ndarray of float64, shape (1797, 64), or (1797, 8, 8) if ``return_images``
        Pixel values, integers in ``0..16`` stored as float64, rows in
        row-major (C) pixel order.
    y : ndarray of int64, shape (1797,)
        Digit labels in ``0..9``; there are 174 to 183 samples per class.

    Notes
    -----
    The file is read once per process and cached; every call returns fresh
    copies, so changing them does not affect later calls.
    """
    table = _digits_table()
    X = table[:, :64].astype(np.float64)
    y = table[:, 64].copy()
    if return_images:
        X = X.reshape(-1, 8, 8)
    return X, y


def digits_description():
    """Return the description of the digits dataset (reStructuredText).

    Returns
    -------
    str
        The text of ``fastmlp/data/digits.rst``, as written for scikit-learn.
    """
    return _data_file(_DIGITS_DESCR).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------
# classification toys
# ----------------------------------------------------------------------------


def xor(n_samples=4, noise=0.0, seed=0):
    """The XOR problem.

    With the defaults (``n_samples=4``, ``noise=0``) this returns exactly the
    four points ``(0, 0), (0, 1), (1, 0), (1, 1)`` with labels ``0, 1, 1, 0``.
    Otherwise sample ``i`` is corner ``i % 4`` plus Gaussian noise, so the
    corners are used in turn and the classes stay balanced.

    Parameters
    ----------
    n_samples : int, default 4
        Number of points, >= 1.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to each coordinate.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
        Points.
    y : ndarray of int64, shape (n_samples,)
        Labels in ``{0, 1}``: the XOR of the corner's coordinates.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_nonneg(noise, "noise")
    rng = np.random.default_rng(seed)
    idx = np.arange(n_samples) % 4
    X = _XOR_POINTS[idx].copy()
    if noise > 0.0:
        X += noise * rng.standard_normal(X.shape)
    return X, _XOR_LABELS[idx].copy()


def spiral(n_samples=300, n_classes=3, noise=0.2, seed=0):
    """Interleaved spirals, one arm per class (the CS231n toy problem).

    Class ``k`` gets points at radius ``r = linspace(0, 1, m)`` and angle
    ``t = linspace(4k, 4(k + 1), m) + noise * randn(m)``, placed at
    ``(r sin t, r cos t)``.

    Parameters
    ----------
    n_samples : int, default 300
        Total number of points, split as evenly as possible between the
        classes (sizes differ by at most one). Must be >= ``n_classes``.
    n_classes : int, default 3
        Number of spiral arms, >= 2.
    noise : float, default 0.2
        Standard deviation of the Gaussian noise added to the angle (radians).
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
        Points, inside the unit disc when ``noise`` is 0.
    y : ndarray of int64, shape (n_samples,)
        Labels in ``0..n_classes-1``, grouped by class.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_classes = _check_int(n_classes, "n_classes", 2)
    noise = _check_nonneg(noise, "noise")
    if n_samples < n_classes:
        raise ValueError(
            f"n_samples ({n_samples}) must be >= n_classes ({n_classes})"
        )
    rng = np.random.default_rng(seed)
    X = np.empty((n_samples, 2), dtype=np.float64)
    y = np.empty(n_samples, dtype=np.int64)
    start = 0
    for k, m in enumerate(_split_evenly(n_samples, n_classes)):
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(4.0 * k, 4.0 * (k + 1), m) + noise * rng.standard_normal(m)
        X[start:start + m, 0] = r * np.sin(t)
        X[start:start + m, 1] = r * np.cos(t)
        y[start:start + m] = k
        start += m
    return X, y


def circles(n_samples=200, noise=0.05, factor=0.5, seed=0):
    """A small circle inside a large one.

    Parameters
    ----------
    n_samples : int, default 200
        Total number of points; the outer circle gets ``n_samples // 2`` and
        the inner one the rest.
    noise : float, default 0.05
        Standard deviation of the Gaussian noise added to each coordinate.
    factor : float, default 0.5
        Radius of the inner circle (the outer one has radius 1), in ``[0, 1)``.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
        Points.
    y : ndarray of int64, shape (n_samples,)
        0 for the outer circle, 1 for the inner circle.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_nonneg(noise, "noise")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise TypeError(f"factor must be a real number, got {factor!r}")
    factor = float(factor)
    if not 0.0 <= factor < 1.0:
        raise ValueError(f"factor must be in [0, 1), got {factor}")
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0.0, 2.0 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0.0, 2.0 * np.pi, n_in, endpoint=False)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t_out), np.sin(t_out)]),
            factor * np.column_stack([np.cos(t_in), np.sin(t_in)]),
        ]
    )
    if noise > 0.0:
        X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return X, y


def moons(n_samples=200, noise=0.1, seed=0):
    """Two interleaving half circles.

    Parameters
    ----------
    n_samples : int, default 200
        Total number of points; the upper moon gets ``n_samples // 2`` and
        the lower one the rest.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise added to each coordinate.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
        Points; without noise x lies in ``[-1, 2]`` and y in ``[-0.5, 1]``.
    y : ndarray of int64, shape (n_samples,)
        0 for the upper moon, 1 for the lower moon.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_nonneg(noise, "noise")
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t_out), np.sin(t_out)]),
            np.column_stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)]),
        ]
    )
    if noise > 0.0:
        X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return X, y


def clusters(n_samples=300, n_clusters=6, std=0.5, seed=0):
    """Isotropic Gaussian blobs with centres evenly spaced on a circle.

    Cluster ``k`` is centred at ``3 * (cos(2 pi k / n_clusters),
    sin(2 pi k / n_clusters))``. With the defaults (six clusters, ``std=0.5``)
    neighbouring centres are 3 apart, six standard deviations.

    Parameters
    ----------
    n_samples : int, default 300
        Total number of points, split as evenly as possible between the
        clusters (sizes differ by at most one). Must be >= ``n_clusters``.
    n_clusters : int, default 6
        Number of clusters (classes), >= 2.
    std : float, default 0.5
        Standard deviation of each blob, per coordinate.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
        Points.
    y : ndarray of int64, shape (n_samples,)
        Cluster index in ``0..n_clusters-1``, grouped by cluster.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_clusters = _check_int(n_clusters, "n_clusters", 2)
    std = _check_nonneg(std, "std")
    if n_samples < n_clusters:
        raise ValueError(
            f"n_samples ({n_samples}) must be >= n_clusters ({n_clusters})"
        )
    rng = np.random.default_rng(seed)
    angles = 2.0 * np.pi * np.arange(n_clusters) / n_clusters
    centers = _CLUSTER_RADIUS * np.column_stack([np.cos(angles), np.sin(angles)])
    sizes = _split_evenly(n_samples, n_clusters)
    y = np.repeat(np.arange(n_clusters, dtype=np.int64), sizes)
    X = centers[y] + std * rng.standard_normal((n_samples, 2))
    return X, y


# ----------------------------------------------------------------------------
# regression toys
# ----------------------------------------------------------------------------


def square_regression(n_samples=200, noise=0.05, seed=0):
    """1-D regression of ``y = x**2`` with ``x`` uniform in ``[-1, 1]``.

    Parameters
    ----------
    n_samples : int, default 200
        Number of points, >= 1.
    noise : float, default 0.05
        Standard deviation of the Gaussian noise added to the targets.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 1)
        Inputs ``x`` (unsorted).
    y : ndarray of float64, shape (n_samples,)
        Targets ``x**2 + noise * randn``.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_nonneg(noise, "noise")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, n_samples)
    y = x**2 + noise * rng.standard_normal(n_samples)
    return x.reshape(-1, 1), y


def sine_regression(n_samples=200, noise=0.1, seed=0):
    """1-D regression of ``y = sin(2 pi x)`` with ``x`` uniform in ``[0, 1]``.

    Parameters
    ----------
    n_samples : int, default 200
        Number of points, >= 1.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise added to the targets.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 1)
        Inputs ``x`` (unsorted).
    y : ndarray of float64, shape (n_samples,)
        Targets ``sin(2 pi x) + noise * randn``.
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_nonneg(noise, "noise")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n_samples)
    y = np.sin(2.0 * np.pi * x) + noise * rng.standard_normal(n_samples)
    return x.reshape(-1, 1), y


# ----------------------------------------------------------------------------
# splitting
# ----------------------------------------------------------------------------


def train_test_split(X, y, test_size=0.25, seed=0, stratify=False):
    """Shuffle and split ``(X, y)`` into a training and a test part.

    The test part gets ``ceil(test_size * n_samples)`` samples, the training
    part the rest; both must end up non-empty. With ``stratify=True`` each
    class is split in proportion too, so the class frequencies of both parts
    match those of ``y`` as closely as whole numbers allow.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...)
        Samples; indexed along the first axis.
    y : array_like, shape (n_samples,)
        Labels or targets.
    test_size : float, default 0.25
        Fraction of the samples to put in the test part, strictly between 0
        and 1.
    seed : int or None, default 0
        Seed for :func:`numpy.random.default_rng`.
    stratify : bool, default False
        If True, treat ``y`` as class labels and keep their proportions.

    Returns
    -------
    X_train : ndarray, shape (n_train, ...)
    X_test : ndarray, shape (n_test, ...)
    y_train : ndarray, shape (n_train,)
    y_test : ndarray, shape (n_test,)
        The parts, in shuffled order, with the dtypes of ``X`` and ``y``.
        ``n_train + n_test == n_samples``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or y.ndim != 1:
        raise ValueError(
            f"X must have at least 1 dimension and y exactly 1, "
            f"got X.ndim={X.ndim}, y.ndim={y.ndim}"
        )
    n_samples = X.shape[0]
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have different numbers of samples: {n_samples} != {y.shape[0]}"
        )
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a real number, got {test_size!r}")
    test_size = float(test_size)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in the open interval (0, 1), got {test_size}")
    n_test = math.ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_test < 1 or n_train < 1:
        raise ValueError(
            f"test_size={test_size} with {n_samples} samples leaves "
            f"{n_train} for training and {n_test} for testing; both must be >= 1"
        )
    rng = np.random.default_rng(seed)

    if not stratify:
        perm = rng.permutation(n_samples)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    else:
        _, inverse = np.unique(y, return_inverse=True)
        inverse = inverse.reshape(-1)
        counts = np.bincount(inverse)
        # Largest-remainder allocation of n_test over the classes; ties are
        # broken at random so no class is always favoured.
        exact = counts * (n_test / n_samples)
        per_class = np.floor(exact).astype(np.int64)
        short = n_test - int(per_class.sum())
        if short > 0:
            order = rng.permutation(len(counts))
            ranked = order[np.argsort(-(exact - per_class)[order], kind="stable")]
            per_class[ranked[:short]] += 1
        test_parts, train_parts = [], []
        for k, m in enumerate(per_class):
            members = rng.permutation(np.flatnonzero(inverse == k))
            test_parts.append(members[:m])
            train_parts.append(members[m:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))

    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]
