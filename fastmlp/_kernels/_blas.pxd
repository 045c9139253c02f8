# cython: language_level=3
"""Row-major GEMM through scipy.linalg.cython_blas (the BLAS SciPy links, the
route scikit-learn uses too)."""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


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
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda, &beta, c, &ldc)
