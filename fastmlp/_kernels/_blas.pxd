# cython: language_level=3
"""Row-major GEMM through the BLAS _runtime selected (scipy-openblas32's
OpenBLAS, or the one behind scipy.linalg.cython_blas; see _blas_lib.py)."""
from cython cimport floating
from fastmlp._kernels._runtime cimport blas_sgemm, blas_dgemm, blas_sgemv, blas_dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                      const floating *a, int lda, const floating *b, int ldb, floating beta,
                      floating *c, int ldc) noexcept nogil:
    """Row-major C[m, n] := alpha op(A)[m, k] op(B)[k, n] + beta C.

    BLAS is column-major, where a row-major C is read as C^T; so call
    C^T := alpha op(B)^T op(A)^T + beta C^T: the operands swap, nothing is copied.
    Empty shapes are handled here (BLAS would reject their leading dimensions).
    """
    if m <= 0 or n <= 0:
        return
    cdef Py_ssize_t i, j
    if k <= 0:  # empty sum: C := beta C
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        return
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    cdef int incx, one = 1
    if m == 1:
        # one row (a single-sample predict): a matrix-vector product.  GEMM would
        # first pack all of B, which for a wide layer costs several times the
        # product itself.  C[0, :] = op(B)^T x with x the row of op(A).
        incx = lda if trans_a else 1
        if trans_b:   # B (n, k) row-major is a column-major (k, n) matrix: y = B x
            ta = b'T'
            if floating is float:
                blas_sgemv()(&ta, &k, &n, &alpha, <float *>b, &ldb, <float *>a, &incx, &beta,
                             c, &one)
            else:
                blas_dgemv()(&ta, &k, &n, &alpha, <double *>b, &ldb, <double *>a, &incx, &beta,
                             c, &one)
        else:         # B (k, n) row-major is a column-major (n, k) matrix: y = B^T x
            ta = b'N'
            if floating is float:
                blas_sgemv()(&ta, &n, &k, &alpha, <float *>b, &ldb, <float *>a, &incx, &beta,
                             c, &one)
            else:
                blas_dgemv()(&ta, &n, &k, &alpha, <double *>b, &ldb, <double *>a, &incx, &beta,
                             c, &one)
        return
    if floating is float:
        blas_sgemm()(&ta, &tb, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda, &beta, c,
                     &ldc)
    else:
        blas_dgemm()(&ta, &tb, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda, &beta,
                     c, &ldc)
