# cython: language_level=3
cdef int num_threads() noexcept nogil
# Below these amounts of work per thread, fewer threads are faster: the
# fork/join of a parallel region (~1-2 us) and, for GEMMs, thinner and less
# efficient blocks cost more than another thread saves.  Measured here on train
# steps of 0.5M to 15M multiply-adds: two threads start to win at about 2M.
cdef enum:
    GEMM_GRAIN = 1000000         # multiply-adds
    ELEMENTWISE_GRAIN = 200000   # elementwise operations (weighted per kernel)

cdef int threads_for(double work, double grain) noexcept nogil
cdef void blas_enter() noexcept nogil
cdef void blas_leave() noexcept nogil

# The BLAS the kernels call (scipy-openblas32's OpenBLAS or SciPy's; see
# _blas_lib.py), with the Fortran interface of scipy.linalg.cython_blas.
ctypedef void sgemm_t(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                      float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                      int *ldc) noexcept nogil
ctypedef void dgemm_t(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                      double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                      int *ldc) noexcept nogil
ctypedef void sgemv_t(char *trans, int *m, int *n, float *alpha, float *a, int *lda, float *x,
                      int *incx, float *beta, float *y, int *incy) noexcept nogil
ctypedef void dgemv_t(char *trans, int *m, int *n, double *alpha, double *a, int *lda,
                      double *x, int *incx, double *beta, double *y, int *incy) noexcept nogil
# the BLAS function each kernel call goes to
cdef sgemm_t *blas_sgemm() noexcept nogil
cdef dgemm_t *blas_dgemm() noexcept nogil
cdef sgemv_t *blas_sgemv() noexcept nogil
cdef dgemv_t *blas_dgemv() noexcept nogil
