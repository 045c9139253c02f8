# cython: language_level=3
cdef int num_threads() noexcept nogil
cdef int threads_for(double work) noexcept nogil
cdef void blas_enter() noexcept nogil
cdef void blas_leave() noexcept nogil
