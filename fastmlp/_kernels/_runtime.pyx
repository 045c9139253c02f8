# cython: language_level=3, boundscheck=False, wraparound=False
"""Thread count shared by every kernel, and the guard that keeps the BLAS
single-threaded while fastmlp's own OpenMP threads call it.

Design: OpenMP owns the threads.  Each native entry point splits its work in
static blocks (rows of the batch for forward and dX, rows or columns of dW for
the weight gradient, so no reduction is needed), calls a single-threaded GEMM
per block and applies the fused epilogue to the block while it is in cache.
Only one thread pool is ever busy, so neither can starve the other.
"""
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdint cimport uintptr_t

from fastmlp._kernels._blas_lib import open_private_openblas

cdef extern from "fm_blas_threads.h" nogil:
    int fm_blas_threads_init(void *blas_symbol)
    void fm_blas_enter_single()
    void fm_blas_leave_single()
    const char *fm_blas_library_of(void *blas_symbol)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fm_openmp_enabled(void) { return 1; }
    static int fm_openmp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fm_openmp_enabled(void) { return 0; }
    static int fm_openmp_max_threads(void) { return 1; }
    #endif
    """
    int fm_openmp_enabled()
    int fm_openmp_max_threads()


cdef int _num_threads = fm_openmp_max_threads() if fm_openmp_max_threads() > 0 else 1


cdef void *_cython_blas(dict capi, str name) except NULL:
    """The C function `name` that scipy.linalg.cython_blas exports."""
    capsule = capi[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


# The BLAS every kernel calls (see _blas_lib.py): scipy-openblas32's OpenBLAS,
# or the one behind scipy.linalg.cython_blas.  SciPy's is looked up only when
# it is the one used: importing scipy.linalg takes longer than the rest of
# `import fastmlp`.
cdef sgemm_t *_sgemm
cdef dgemm_t *_dgemm
cdef sgemv_t *_sgemv
cdef dgemv_t *_dgemv
_private = open_private_openblas()
if _private is not None:
    _sgemm = <sgemm_t *><uintptr_t>_private[1][0]
    _dgemm = <dgemm_t *><uintptr_t>_private[1][1]
    _sgemv = <sgemv_t *><uintptr_t>_private[1][2]
    _dgemv = <dgemv_t *><uintptr_t>_private[1][3]
else:
    from scipy.linalg import cython_blas
    _sgemm = <sgemm_t *>_cython_blas(cython_blas.__pyx_capi__, "sgemm")
    _dgemm = <dgemm_t *>_cython_blas(cython_blas.__pyx_capi__, "dgemm")
    _sgemv = <sgemv_t *>_cython_blas(cython_blas.__pyx_capi__, "sgemv")
    _dgemv = <dgemv_t *>_cython_blas(cython_blas.__pyx_capi__, "dgemv")
cdef bint _blas_controlled = fm_blas_threads_init(<void *>_sgemm)


cdef sgemm_t *blas_sgemm() noexcept nogil:
    return _sgemm


cdef dgemm_t *blas_dgemm() noexcept nogil:
    return _dgemm


cdef sgemv_t *blas_sgemv() noexcept nogil:
    return _sgemv


cdef dgemv_t *blas_dgemv() noexcept nogil:
    return _dgemv


cdef int num_threads() noexcept nogil:
    return _num_threads


cdef int threads_for(double work, double grain) noexcept nogil:
    """Threads to use for `work` units: at most num_threads(), and at least
    `grain` units each (GEMM_GRAIN or ELEMENTWISE_GRAIN)."""
    cdef int n = _num_threads
    while n > 1 and work / n < grain:
        n -= 1
    return n


cdef void blas_enter() noexcept nogil:
    fm_blas_enter_single()


cdef void blas_leave() noexcept nogil:
    fm_blas_leave_single()


def set_native_threads(int n):
    """Set the number of OpenMP threads the native kernels use (n >= 1)."""
    global _num_threads
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    _num_threads = n if fm_openmp_enabled() else 1


def get_native_threads():
    """Number of threads the native kernels use."""
    return _num_threads


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fm_openmp_enabled())


def default_threads():
    """OpenMP's default thread count (OMP_NUM_THREADS or the CPU count)."""
    return fm_openmp_max_threads()


def blas_thread_control():
    """True when the BLAS's thread pool could be located and is kept single-threaded
    inside native calls."""
    return bool(_blas_controlled)


def blas_library():
    """{"path": file of the BLAS library the kernels call, "private": whether it
    is scipy-openblas32's, opened by fastmlp (else SciPy's)}."""
    cdef const char *path = fm_blas_library_of(<void *>_sgemm)
    return {"path": path.decode(errors="surrogateescape") if path != NULL else None,
            "private": _private is not None}
