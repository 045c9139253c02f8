# cython: language_level=3, boundscheck=False, wraparound=False
"""Input checks that run at memory speed: one vectorized pass, no temporary
arrays (NumPy's isfinite(X).all() allocates a boolean copy of X, and min/max
take two passes).  They make validation cheap enough for every train_step."""
from cython cimport floating
from libc.stdint cimport int64_t
from fastmlp._kernels._cfm cimport block_finite


def all_finite(const floating[:, ::1] X):
    """True when no entry of X is NaN or +-inf."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        return True
    cdef bint ok
    with nogil:
        ok = block_finite(&X[0, 0], X.shape[0], X.shape[1], 0, X.shape[1])
    return ok


def label_range(const int64_t[::1] y):
    """(min, max) of the labels, in one pass (y must not be empty)."""
    cdef Py_ssize_t i, n = y.shape[0]
    if n == 0:
        raise ValueError("no labels")
    cdef int64_t low = y[0], high = y[0], v
    with nogil:
        for i in range(1, n):
            v = y[i]
            low = v if v < low else low
            high = v if v > high else high
    return low, high
