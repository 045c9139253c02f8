# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Kernels of the layers with their own computation: batch normalization,
PReLU and maxout (the math is in csrc/fm_layers_impl.h).

Threads take static shares of the rows.  Batch normalization needs every row
for its statistics, so each of its passes is two parallel regions: per-thread
partial results on the thread's rows, merged in thread order between the
regions (repeatable for a given thread count), then the row-wise pass.  The
compiled train step (plan.pyx) uses the same row functions inside its own
regions.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.math cimport sqrt

import numpy as np

from fastmlp._kernels._cfm cimport (fm_bn_merge_stats, fm_sum_parts, bn_block_stats, bn_apply,
                                    bn_grad_sums, bn_input_grad, prelu_forward as c_prelu_forward,
                                    prelu_input_grad, prelu_alpha_grad,
                                    maxout_forward as c_maxout_forward,
                                    maxout_backward as c_maxout_backward)
from fastmlp._kernels._blocks cimport flush_denormals_begin, flush_denormals_end, share_lo
from fastmlp._kernels._runtime cimport threads_for, ELEMENTWISE_GRAIN

include "_checks.pxi"

cdef enum:
    ACT_IDENTITY = 0


cdef int _threads(Py_ssize_t rows, Py_ssize_t cols, double cost):
    """Threads for an elementwise pass over (rows, cols), `cost` weighting one element."""
    return max(1, min(threads_for(<double>rows * cols * cost, ELEMENTWISE_GRAIN), rows))


cdef int _check_eps(double eps) except -1:
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    return 0


def batchnorm_forward(const floating[:, ::1] X, const floating[::1] gamma,
                      const floating[::1] beta, floating[:, ::1] Y, double[::1] mean,
                      double[::1] var, double eps=1e-5):
    """Batch normalization with the batch's statistics (Ioffe & Szegedy 2015).

        mean_c = sum_r X_rc / n,   var_c = sum_r (X_rc - mean_c)^2 / n   (biased)
        Y = gamma (X - mean) / sqrt(var + eps) + beta

    X : ndarray of shape (n, m)           # IN
    gamma, beta : ndarray of shape (m,)   # IN
    Y : ndarray of shape (n, m)           # OUT (may be X)
    mean, var : float64 ndarray of shape (m,)   # OUT, the batch statistics
    eps : float > 0

    The statistics are exact two-pass sums over each thread's rows, in
    double, merged in thread order (Chan et al. 1979).
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1, c
    check_len("gamma", gamma.shape[0], cols)
    check_len("beta", beta.shape[0], cols)
    check_shape2("Y", Y.shape[0], Y.shape[1], rows, cols)
    check_len("mean", mean.shape[0], cols)
    check_len("var", var.shape[0], cols)
    _check_eps(eps)
    if rows == 0:
        raise ValueError("batch normalization needs at least one row")
    if cols == 0:
        return
    cdef int nt = _threads(rows, cols, 0.5), tid
    cdef double[:, :, ::1] parts = np.empty((nt, 2, cols))
    cdef Py_ssize_t[::1] counts = np.empty(nt, dtype=np.intp)
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] center = np.empty(cols, dtype=dtype)
    cdef floating[::1] scale = np.empty(cols, dtype=dtype)
    cdef unsigned int fpu
    for tid in range(nt):
        counts[tid] = share_lo(rows, tid + 1, nt) - share_lo(rows, tid, nt)
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        bn_block_stats(&X[0, 0] + r0 * cols, r1 - r0, cols, &parts[tid, 0, 0], &parts[tid, 1, 0])
        flush_denormals_end(fpu)
    with nogil:
        fm_bn_merge_stats(nt, &counts[0], &parts[0, 0, 0], &parts[0, 1, 0], 2 * cols, cols,
                          &mean[0], &var[0])
        for c in range(cols):
            center[c] = <floating>mean[c]
            scale[c] = <floating>(gamma[c] / sqrt(var[c] + eps))
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        bn_apply(ACT_IDENTITY, 0.0, &X[0, 0] + r0 * cols, &center[0], &scale[0], &beta[0],
                 &Y[0, 0] + r0 * cols, &Y[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)


def batchnorm_backward(const floating[:, ::1] X, const floating[::1] gamma,
                       const double[::1] mean, const double[::1] var,
                       const floating[:, ::1] dY, floating[:, ::1] dX, floating[::1] dgamma,
                       floating[::1] dbeta, double eps=1e-5):
    """Backward pass of batchnorm_forward, given dY = dLoss/dY.

        xhat = (X - mean) / sqrt(var + eps)
        dbeta = sum_r dY,   dgamma = sum_r dY xhat
        dX = gamma / sqrt(var + eps) (dY - dbeta / n - xhat dgamma / n)

    X, dY : ndarray of shape (n, m)        # IN
    gamma : ndarray of shape (m,)          # IN
    mean, var : float64 ndarray of shape (m,)   # IN, from batchnorm_forward
    dX : ndarray of shape (n, m)           # OUT (may be dY)
    dgamma, dbeta : ndarray of shape (m,)  # OUT
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1, c
    check_len("gamma", gamma.shape[0], cols)
    check_len("mean", mean.shape[0], cols)
    check_len("var", var.shape[0], cols)
    check_shape2("dY", dY.shape[0], dY.shape[1], rows, cols)
    check_shape2("dX", dX.shape[0], dX.shape[1], rows, cols)
    check_len("dgamma", dgamma.shape[0], cols)
    check_len("dbeta", dbeta.shape[0], cols)
    _check_eps(eps)
    if rows == 0:
        raise ValueError("batch normalization needs at least one row")
    if cols == 0:
        return
    cdef int nt = _threads(rows, cols, 0.5), tid
    cdef double[:, :, ::1] parts = np.empty((nt, 2, cols))
    cdef double[:, ::1] sums = np.empty((2, cols))
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] vec = np.empty((5, cols), dtype=dtype)  # center, inv_std, scale, mean_dy, mean_dyx
    cdef double inv_std
    cdef unsigned int fpu
    with nogil:
        for c in range(cols):
            inv_std = 1.0 / sqrt(var[c] + eps)
            vec[0, c] = <floating>mean[c]
            vec[1, c] = <floating>inv_std
            vec[2, c] = <floating>(gamma[c] * inv_std)
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        bn_grad_sums(&X[0, 0] + r0 * cols, &vec[0, 0], &vec[1, 0], &dY[0, 0] + r0 * cols,
                     r1 - r0, cols, &parts[tid, 0, 0], &parts[tid, 1, 0])
        flush_denormals_end(fpu)
    with nogil:
        fm_sum_parts(nt, &parts[0, 0, 0], 2 * cols, cols, &sums[0, 0])
        fm_sum_parts(nt, &parts[0, 1, 0], 2 * cols, cols, &sums[1, 0])
        for c in range(cols):
            dbeta[c] = <floating>sums[0, c]
            dgamma[c] = <floating>sums[1, c]
            vec[3, c] = <floating>(sums[0, c] / rows)
            vec[4, c] = <floating>(sums[1, c] / rows)
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        bn_input_grad(&X[0, 0] + r0 * cols, &vec[0, 0], &vec[1, 0], &vec[2, 0], &vec[3, 0],
                      &vec[4, 0], &dY[0, 0] + r0 * cols, &dX[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)


def batchnorm_inference(const floating[:, ::1] X, const floating[::1] gamma,
                        const floating[::1] beta, const floating[::1] running_mean,
                        const floating[::1] running_var, floating[:, ::1] Y, double eps=1e-5):
    """Batch normalization with fixed (running) statistics, as at inference:

        Y = gamma (X - running_mean) / sqrt(running_var + eps) + beta

    X : ndarray of shape (n, m)                                   # IN
    gamma, beta, running_mean, running_var : ndarray of shape (m,)  # IN
    Y : ndarray of shape (n, m)                                   # OUT (may be X)
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1, c
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        check_len(name, v.shape[0], cols)
    check_shape2("Y", Y.shape[0], Y.shape[1], rows, cols)
    _check_eps(eps)
    if rows == 0 or cols == 0:
        return
    cdef int nt = _threads(rows, cols, 0.25), tid
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] scale = np.empty(cols, dtype=dtype)
    cdef unsigned int fpu
    with nogil:
        for c in range(cols):
            scale[c] = <floating>(gamma[c] / sqrt(<double>running_var[c] + eps))
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        bn_apply(ACT_IDENTITY, 0.0, &X[0, 0] + r0 * cols, &running_mean[0], &scale[0], &beta[0],
                 &Y[0, 0] + r0 * cols, &Y[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)


def prelu_forward(const floating[:, ::1] X, const floating[::1] alpha, floating[:, ::1] out):
    """Parametric ReLU (He et al. 2015): out = X if X > 0 else alpha_c X, one
    learned slope per column.

    X : ndarray of shape (n, m)     # IN
    alpha : ndarray of shape (m,)   # IN
    out : ndarray of shape (n, m)   # OUT (may be X)
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1
    check_len("alpha", alpha.shape[0], cols)
    check_shape2("out", out.shape[0], out.shape[1], rows, cols)
    if rows == 0 or cols == 0:
        return
    cdef int nt = _threads(rows, cols, 0.125), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_prelu_forward(&X[0, 0] + r0 * cols, &alpha[0], &out[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)


def prelu_backward(const floating[:, ::1] X, const floating[::1] alpha,
                   const floating[:, ::1] dA, floating[:, ::1] dX, floating[::1] dalpha):
    """Backward pass of prelu_forward, given dA = dLoss/dout:

        dX = dA (1 if X > 0 else alpha_c),   dalpha_c = sum_r dA_rc min(X_rc, 0)

    X, dA : ndarray of shape (n, m)   # IN
    alpha : ndarray of shape (m,)     # IN
    dX : ndarray of shape (n, m) or None   # OUT (may be dA; None: not needed)
    dalpha : ndarray of shape (m,)    # OUT (summed in double)
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1
    cdef bint want_dx = dX is not None
    check_len("alpha", alpha.shape[0], cols)
    check_shape2("dA", dA.shape[0], dA.shape[1], rows, cols)
    if want_dx:
        check_shape2("dX", dX.shape[0], dX.shape[1], rows, cols)
    check_len("dalpha", dalpha.shape[0], cols)
    if cols == 0:
        return
    if rows == 0:
        dalpha[:] = 0
        return
    cdef int nt = _threads(rows, cols, 0.25), tid
    cdef unsigned int fpu
    # rows of dX and columns of dalpha: no element is summed by two threads
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        if want_dx:
            prelu_input_grad(&X[0, 0] + r0 * cols, &alpha[0], &dA[0, 0] + r0 * cols,
                             &dX[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        prelu_alpha_grad(&X[0, 0], &dA[0, 0], &dalpha[0], rows, cols, share_lo(cols, tid, nt),
                         share_lo(cols, tid + 1, nt))
        flush_denormals_end(fpu)


cdef int _check_pieces(Py_ssize_t width, Py_ssize_t units, int pieces) except -1:
    if pieces < 2:
        raise ValueError(f"maxout needs pieces >= 2, got {pieces}")
    if width != units * pieces:
        raise ValueError(f"Z has {width} columns, expected units * pieces = {units} * {pieces}")
    return 0


def maxout_forward(const floating[:, ::1] Z, floating[:, ::1] out, int pieces):
    """Maxout (Goodfellow et al. 2013): out[r, u] = max_j Z[r, j units + u].

    Z : ndarray of shape (n, units * pieces)   # IN, piece-major: column j units + u
                                               # is piece j of unit u
    out : ndarray of shape (n, units)          # OUT
    The first maximal piece wins ties; a NaN piece makes its unit NaN.
    """
    cdef Py_ssize_t rows = Z.shape[0], units = out.shape[1], r0, r1
    _check_pieces(Z.shape[1], units, pieces)
    check_shape2("out", out.shape[0], out.shape[1], rows, units)
    if rows == 0 or units == 0:
        return
    cdef int nt = _threads(rows, units * pieces, 0.125), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        # b is NULL: Z is only read
        c_maxout_forward(<floating *>&Z[0, 0] + r0 * units * pieces, NULL,
                         &out[0, 0] + r0 * units, r1 - r0, units, pieces)
        flush_denormals_end(fpu)


def maxout_backward(const floating[:, ::1] Z, const floating[:, ::1] dA, floating[:, ::1] dZ,
                    int pieces):
    """Backward pass of maxout_forward: the gradient goes to each unit's
    (first) maximal piece, dZ[r, j units + u] = dA[r, u] there and 0 elsewhere.

    Z : ndarray of shape (n, units * pieces)    # IN
    dA : ndarray of shape (n, units)            # IN
    dZ : ndarray of shape (n, units * pieces)   # OUT
    """
    cdef Py_ssize_t rows = Z.shape[0], units = dA.shape[1], r0, r1
    _check_pieces(Z.shape[1], units, pieces)
    check_shape2("dA", dA.shape[0], dA.shape[1], rows, units)
    check_shape2("dZ", dZ.shape[0], dZ.shape[1], rows, units * pieces)
    if rows == 0 or units == 0:
        return
    cdef int nt = _threads(rows, units * pieces, 0.125), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_maxout_backward(&Z[0, 0] + r0 * units * pieces, &dA[0, 0] + r0 * units,
                          &dZ[0, 0] + r0 * units * pieces, r1 - r0, units, pieces)
        flush_denormals_end(fpu)
