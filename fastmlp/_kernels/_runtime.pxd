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
