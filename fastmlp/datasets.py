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

:func:`load_idx` and :func:`load_mnist` read the IDX files of MNIST and
Fashion-MNIST that a user already has (gzip-compressed or not);
:func:`load_table` reads a CSV or ``.npz`` file (what ``fastmlp train`` uses).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import math
import numbers
import os
import stat
import struct
import zipfile
import zlib
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
    "load_idx",
    "load_mnist",
    "load_table",
    "Table",
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


# ----------------------------------------------------------------------------
# files: IDX (MNIST, Fashion-MNIST), CSV and NPZ
# ----------------------------------------------------------------------------

# IDX type codes -> big-endian dtypes (http://yann.lecun.com/exdb/mnist/)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_MAX_DIMS = 8
_READ_CHUNK = 1 << 24


def _open_regular(path):
    """Open `path` for binary reading; ValueError unless it is a regular file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a data file")
    f = open(path, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise ValueError(f"{path}: is not a regular file")
    return f


def _read_exactly(stream, n, path, what):
    """n bytes from `stream`, read in chunks (a lying size never allocates more than
    the data that is really there); ValueError when the stream ends first."""
    parts, left = [], n
    while left > 0:
        part = stream.read(min(left, _READ_CHUNK))
        if not part:
            raise ValueError(f"{path}: truncated: {what} needs {n} bytes, the file ends after "
                             f"{n - left}")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def load_idx(path, max_bytes=4 << 30):
    """Read an array from an IDX file (the MNIST format), gzip-compressed or not.

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions d, then d
    big-endian uint32 sizes, then the data, big-endian, in row-major order.
    Compression is recognised by its magic bytes, not by the file name.

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int
        Refuse files whose header announces more data than this.

    Returns
    -------
    ndarray of the file's shape, in the file's type (native byte order).

    Raises
    ------
    ValueError
        If the file is not IDX, is truncated or corrupted, has trailing data,
        or announces more than `max_bytes` of data.  An uncompressed file's size
        is checked against its header before the data is read; compressed data
        is read in chunks, so a lying header allocates no more than the data
        really there (and gzip's own CRC and length checks catch corruption).
    """
    path = os.fspath(path)
    with _open_regular(path) as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            magic = _read_exactly(stream, 4, path, "the IDX header")
            if magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES:
                raise ValueError(f"{path}: not an IDX file (magic bytes {magic.hex()})")
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            ndim = magic[3]
            if not 1 <= ndim <= _IDX_MAX_DIMS:
                raise ValueError(f"{path}: not an IDX file ({ndim} dimensions)")
            shape = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path,
                                                            "the IDX header"))
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > max_bytes:
                raise ValueError(f"{path}: the header announces {nbytes} bytes of data "
                                 f"(shape {shape}), more than max_bytes={max_bytes}")
            total = 4 + 4 * ndim + nbytes
            if not compressed:
                size = os.fstat(raw.fileno()).st_size
                if size != total:
                    raise ValueError(f"{path}: {'truncated' if size < total else 'trailing data'}"
                                     f": shape {shape} of {dtype.name} needs {total} bytes, the "
                                     f"file has {size}")
            data = _read_exactly(stream, nbytes, path, f"data of shape {shape}")
            if compressed and stream.read(1):
                raise ValueError(f"{path}: trailing data after the array")
        except (OSError, EOFError, zlib.error, struct.error) as e:
            raise ValueError(f"{path}: corrupted or not an IDX file ({type(e).__name__}: {e})") \
                from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"no {stem} (or {stem}.gz) in {directory}")


def load_mnist(directory, kind="train", normalize=True):
    """Load MNIST or Fashion-MNIST from the IDX files in `directory`.

    Looks for ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (kind
    "train") or ``t10k-...`` (kind "test"), each optionally ``.gz``: the names
    both data sets are distributed under.  Nothing is downloaded.

    Parameters
    ----------
    directory : str or os.PathLike
    kind : "train" or "test"
    normalize : bool
        Scale pixels to [0, 1] as float32 (else raw uint8 0..255).

    Returns
    -------
    X : ndarray of shape (n, rows * cols): float32 in [0, 1], or uint8
    y : ndarray of int64, shape (n,)
    """
    if kind not in _MNIST_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    directory = os.fspath(directory)
    image_path, label_path = (_find(directory, stem) for stem in _MNIST_FILES[kind])
    images = load_idx(image_path)
    labels = load_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{image_path}: expected uint8 images of shape (n, rows, cols), got "
                         f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{label_path}: expected uint8 labels of shape (n,), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{image_path} has {images.shape[0]} images but {label_path} has "
                         f"{labels.shape[0]} labels")
    X = images.reshape(images.shape[0], -1)
    if normalize:
        X = X.astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


@dataclasses.dataclass
class Table:
    """A data file read by :func:`load_table`.

    X : float64 (n, n_features);  y : (n,) float64 or str labels, or None;
    feature_names : list of str;  target_name : str or None.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list
    target_name: str | None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _labels_or_numbers(values):
    """float64 when every value is a number, else the strings as they are."""
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=object).astype(str)


def load_table(path, target=None, delimiter=None, target_optional=False):
    """Read a data table from a CSV or ``.npz`` file.

    CSV (any other extension): the delimiter is sniffed from the first line
    (comma, semicolon, tab) unless given; the first row is a header when any of
    its fields is not a number; every feature column must be numeric, with no
    empty fields.

    NPZ: arrays "X" (n, n_features) and optionally "y" (n,); loaded with
    allow_pickle=False.

    Parameters
    ----------
    path : str or os.PathLike
    target : str, int or None
        The target column: a header name, or a 0-based index (negative counts
        from the end).  None: no target (all columns are features).  For NPZ
        files, None or "y".
    delimiter : str or None
    target_optional : bool
        When the file has no `target` column, return y=None instead of raising.

    Returns
    -------
    Table(X, y, feature_names, target_name); y holds numbers (float64) or, when
    any target value is not a number, the label strings.

    Raises
    ------
    ValueError naming the file, line and column of the problem.
    """
    path = os.fspath(path)
    if path.lower().endswith(".npz"):
        return _load_npz(path, None if target_optional and target != "y" else target)
    with _open_regular(path) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: the file is empty")
    if delimiter is None:
        first = next(line for line in lines if line.strip())
        delimiter = max((",", ";", "\t"), key=first.count)
    try:
        rows = [(i + 1, row) for i, row in enumerate(csv.reader(lines, delimiter=delimiter))
                if row and any(cell.strip() for cell in row)]
    except csv.Error as e:
        raise ValueError(f"{path}: not a valid CSV file ({e})") from None
    if not rows:  # e.g. a lone quote: non-blank text that parses to empty fields
        raise ValueError(f"{path}: no data rows")
    first_line, first = rows[0]
    has_header = not all(_is_number(cell) for cell in first)
    names = [c.strip() for c in first] if has_header else [f"x{j}" for j in range(len(first))]
    body = rows[1:] if has_header else rows
    if not body:
        raise ValueError(f"{path}: no data rows")
    width = len(names)
    for line, row in body:
        if len(row) != width:
            raise ValueError(f"{path}, line {line}: {len(row)} fields, the "
                             f"{'header' if has_header else 'first row'} has {width}")
    if target_optional and not (isinstance(target, str) and target in names):
        target = None
    t = _target_index(path, target, names, has_header)
    feature_cols = [j for j in range(width) if j != t]
    if not feature_cols:
        raise ValueError(f"{path}: no feature columns besides the target")
    cells = [[row[j].strip() for j in feature_cols] for _, row in body]
    try:
        X = np.array(cells, dtype=np.float64)
    except ValueError:
        for (line, _), values in zip(body, cells):
            for j, v in zip(feature_cols, values):
                if not _is_number(v):
                    what = "an empty field" if v == "" else f"non-numeric value {v[:40]!r}"
                    raise ValueError(f"{path}, line {line}: column {names[j]!r} has {what}; "
                                     "feature columns must be numeric") from None
        raise
    if not np.isfinite(X).all():
        line = body[int(np.argwhere(~np.isfinite(X))[0, 0])][0]
        raise ValueError(f"{path}, line {line}: a feature is NaN or infinite")
    y = None
    if t is not None:
        values = [row[t].strip() for _, row in body]
        for (line, _), v in zip(body, values):
            if v == "":
                raise ValueError(f"{path}, line {line}: the target {names[t]!r} is empty")
        y = _labels_or_numbers(values)
    return Table(X, y, [names[j] for j in feature_cols], None if t is None else names[t])


def _target_index(path, target, names, has_header):
    if target is None:
        return None
    if isinstance(target, str) and target in names:
        return names.index(target)
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if -len(names) <= target < len(names):
            return int(target) % len(names)
        raise ValueError(f"{path}: target column {target} is out of range: the file has "
                         f"{len(names)} columns")
    known = f"; columns: {', '.join(names[:20])}" if has_header else " (the file has no header)"
    raise ValueError(f"{path}: no column named {target!r}{known}")


def _load_npz(path, target):
    if target not in (None, "y"):
        raise ValueError(f"{path}: in an .npz file the target is the array 'y', not {target!r}")
    try:
        with _open_regular(path) as f, np.load(f, allow_pickle=False) as data:
            if "X" not in data.files:
                raise ValueError(f"{path}: the .npz file has no array 'X' (it has "
                                 f"{', '.join(data.files[:20]) or 'none'})")
            X = np.asarray(data["X"])
            y = np.asarray(data["y"]) if "y" in data.files else None
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: not a valid .npz file ({e})") from None
    except (OSError, EOFError, zlib.error, KeyError, zipfile.BadZipFile, MemoryError) as e:
        raise ValueError(f"{path}: not a valid .npz file ({type(e).__name__}: {e})") from None
    if X.ndim != 2 or X.dtype.kind not in "fiu":
        raise ValueError(f"{path}: X must be a 2-D numeric array, got {X.dtype} {X.shape}")
    if y is not None and (y.ndim != 1 or y.shape[0] != X.shape[0]):
        raise ValueError(f"{path}: y must be 1-D with one value per row of X, got {y.shape}")
    if y is not None and y.dtype.kind not in "fiuU":
        raise ValueError(f"{path}: y must hold numbers or strings, got {y.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{path}: X contains NaN or infinity")
    y = None if y is None else (y.astype(str) if y.dtype.kind == "U" else y.astype(np.float64))
    return Table(X, y, [f"x{j}" for j in range(X.shape[1])], None if y is None else "y")
