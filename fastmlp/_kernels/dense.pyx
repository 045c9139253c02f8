# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Dense layer kernels, GEMM through BLAS with fused epilogues.

Forward:   Z = X W + b,  A = f(Z)       (bias and activation in one pass after
                                         the GEMM of each thread's row block)
Backward:  dZ = dA * f'(Z)              (in the same pass as dX's rows)
           dX = dZ W^T,  dW = X^T dZ,  db = sum_rows dZ

W is stored (n_in, n_out), row-major.  Threads get static shares: rows of the
batch for Z, A, dZ and dX; the longer side of dW; columns of db.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.string cimport memcpy
from fastmlp._kernels._blocks cimport (share_lo, dense_forward_rows, dense_param_grad_share,
                                       dense_input_grad_rows, activation_backward_rows,
                                       flush_denormals_begin, flush_denormals_end)
from fastmlp._kernels._runtime cimport threads_for, GEMM_GRAIN, blas_enter, blas_leave
from fastmlp._kernels.activations import activation_alpha, activation_code

include "_checks.pxi"


def dense_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  str activation, floating[:, ::1] Z, floating[:, ::1] A, alpha=None):
    """Z = X W + b and A = f(Z).

    X : ndarray of shape (n, n_in)       # IN
    W : ndarray of shape (n_in, n_out)   # IN
    b : ndarray of shape (n_out,)        # IN
    Z, A : ndarray of shape (n, n_out)   # OUT (A may be Z: then only f(Z) is kept)
    alpha : float or None, the activation's parameter (None: its default)
    """
    cdef int act = activation_code(activation)
    cdef double a = activation_alpha(activation, alpha)
    cdef Py_ssize_t rows = X.shape[0]
    check_gemm_rows("W", W.shape[0])
    check_gemm_rows("W^T", W.shape[1])
    cdef int n_in = <int>W.shape[0], n_out = <int>W.shape[1], nt, tid
    check_shape2("X", X.shape[0], X.shape[1], rows, n_in)
    check_len("b", b.shape[0], n_out)
    check_shape2("Z", Z.shape[0], Z.shape[1], rows, n_out)
    check_shape2("A", A.shape[0], A.shape[1], rows, n_out)
    check_gemm_rows("X", rows)
    if rows == 0 or n_out == 0:
        return
    nt = threads_for(<double>rows * n_in * n_out, GEMM_GRAIN)
    blas_enter()
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        dense_forward_rows(&X[0, 0], &W[0, 0], &b[0], &Z[0, 0], &A[0, 0],
                           share_lo(rows, tid, nt), share_lo(rows, tid + 1, nt),
                           n_in, n_out, act, a)
        flush_denormals_end(fpu)
    blas_leave()


def dense_backward(const floating[:, ::1] X, const floating[:, ::1] W,
                   const floating[:, ::1] Z, const floating[:, ::1] A, floating[:, ::1] dA,
                   str activation, floating[:, ::1] dZ, floating[:, ::1] dW, floating[::1] db,
                   floating[:, ::1] dX, alpha=None):
    """Backward pass of Z = X W + b, A = f(Z), given dA = dLoss/dA.

    X : ndarray of shape (n, n_in)           # IN
    W : ndarray of shape (n_in, n_out)       # IN
    Z, A, dA : ndarray of shape (n, n_out)   # IN
    dZ : ndarray of shape (n, n_out)         # OUT  dA * f'(Z) (may be dA)
    dW : ndarray of shape (n_in, n_out)      # OUT  X^T dZ
    db : ndarray of shape (n_out,)           # OUT  sum over rows of dZ
    dX : ndarray of shape (n, n_in) or None  # OUT  dZ W^T (None: not needed, first layer)
    alpha : float or None, the activation's parameter (None: its default)
    """
    cdef int act = activation_code(activation)
    cdef double a = activation_alpha(activation, alpha)
    cdef Py_ssize_t rows = X.shape[0], r0, r1
    check_gemm_rows("W", W.shape[0])
    check_gemm_rows("W^T", W.shape[1])
    cdef int n_in = <int>W.shape[0], n_out = <int>W.shape[1], nt, tid
    cdef bint want_dx = dX is not None
    check_shape2("X", X.shape[0], X.shape[1], rows, n_in)
    for name, M in (("Z", Z), ("A", A), ("dA", dA), ("dZ", dZ)):
        check_shape2(name, M.shape[0], M.shape[1], rows, n_out)
    check_shape2("dW", dW.shape[0], dW.shape[1], n_in, n_out)
    check_len("db", db.shape[0], n_out)
    if want_dx:
        check_shape2("dX", dX.shape[0], dX.shape[1], rows, n_in)
    check_gemm_rows("X", rows)
    if n_out == 0:  # dZ, dW and db are empty; dX = dZ W^T is an empty sum
        if want_dx:
            dX[:, :] = 0
        return
    # (n_in == 0 goes on: dZ and db are still written, the GEMMs see an empty side)
    if rows == 0:
        dW[:, :] = 0
        db[:] = 0
        return
    nt = threads_for(<double>rows * n_in * n_out, GEMM_GRAIN)
    blas_enter()
    # 1) each thread: its rows of dZ = dA * f'(Z), then the same rows of dX = dZ W^T
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        if &dZ[0, 0] != &dA[0, 0]:
            memcpy(&dZ[0, 0] + r0 * n_out, &dA[0, 0] + r0 * n_out,
                   (r1 - r0) * n_out * sizeof(floating))
        activation_backward_rows(&Z[0, 0], &A[0, 0], &dZ[0, 0], r0, r1, n_out, act, a)
        if want_dx:
            dense_input_grad_rows(&dZ[0, 0], &W[0, 0], &dX[0, 0], r0, r1, n_in, n_out)
        flush_denormals_end(fpu)
    # 2) dW and db need every row of dZ: a second region, split over parameters
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        dense_param_grad_share(&X[0, 0], &dZ[0, 0], &dW[0, 0], &db[0], rows, n_in, n_out,
                               tid, nt)
        flush_denormals_end(fpu)
    blas_leave()
