# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fused optimizer updates over flat parameter buffers: each parameter, its
gradient and its state are read and written once per step.  Threads take
contiguous shares of the buffer (multiples of 16 elements, whole cache lines).
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from fastmlp._kernels._cfm cimport sgd_update as c_sgd, adam_update as c_adam
from fastmlp._kernels._blocks cimport flush_denormals_begin, flush_denormals_end, chunk_lo, adam_scales
from fastmlp._kernels._runtime cimport threads_for, ELEMENTWISE_GRAIN

include "_checks.pxi"


def sgd_update(floating[::1] params, const floating[::1] grads, floating[::1] velocity,
               double lr, double momentum=0.0, bint nesterov=False):
    """One SGD step in place (PyTorch's convention, no dampening).

    momentum == 0: p -= lr g
    otherwise:     v = momentum v + g;  p -= lr v   (nesterov: p -= lr (g + momentum v))

    params, grads : ndarray of shape (n,)       # IN/OUT, IN
    velocity : ndarray of shape (n,), or None when momentum == 0   # IN/OUT
    """
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    cdef floating *vel = NULL
    if velocity is not None:
        check_len("velocity", velocity.shape[0], n)
        if n > 0:
            vel = &velocity[0]
    elif momentum != 0:
        raise ValueError("momentum needs a velocity buffer")
    if n == 0:
        return
    cdef int nt = threads_for(<double>n / 4, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_sgd(&params[0] + lo, &grads[0] + lo, vel + lo if vel != NULL else NULL, hi - lo,
              lr, momentum, nesterov)
        flush_denormals_end(fpu)


def adam_update(floating[::1] params, const floating[::1] grads, floating[::1] m,
                floating[::1] v, double lr, double beta1, double beta2, double eps, long step):
    """One Adam step in place (Kingma & Ba 2015; eps outside the square root, as PyTorch).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    params, grads, m, v : ndarray of shape (n,)   # IN/OUT, IN, IN/OUT, IN/OUT
    step : t, the number of this step (1 for the first)
    """
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    check_len("m", m.shape[0], n)
    check_len("v", v.shape[0], n)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if n == 0:
        return
    cdef double step_size, inv_sqrt_bc2
    adam_scales(lr, beta1, beta2, step, &step_size, &inv_sqrt_bc2)
    cdef int nt = threads_for(<double>n / 2, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_adam(&params[0] + lo, &grads[0] + lo, &m[0] + lo, &v[0] + lo, hi - lo,
               beta1, beta2, eps, step_size, inv_sqrt_bc2)
        flush_denormals_end(fpu)