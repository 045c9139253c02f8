# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fused optimizer updates over flat parameter buffers: each parameter, its
gradient and its state are read and written once per step.  Threads take
contiguous shares of the buffer (multiples of 16 elements, whole cache lines).

These standalone kernels apply the plain update rules; the compiled step
(plan.pyx) calls the same C loops with gradient clipping and the weight
penalty fused in (csrc/fm_optim_impl.h).
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from fastmlp._kernels._cfm cimport (sgd_update as c_sgd, adam_update as c_adam,
                                    adagrad_update as c_adagrad, rmsprop_update as c_rmsprop,
                                    nadam_update as c_nadam, max_norm_columns)
from fastmlp._kernels._blocks cimport (flush_denormals_begin, flush_denormals_end, chunk_lo,
                                       share_lo, adam_scales, nadam_scales)
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
              lr, momentum, nesterov, NULL)
        flush_denormals_end(fpu)


cdef int _adam(floating[::1] params, const floating[::1] grads, floating[::1] m,
               floating[::1] v, double lr, double beta1, double beta2, double eps,
               double weight_decay, long step) except -1:
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    check_len("m", m.shape[0], n)
    check_len("v", v.shape[0], n)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if n == 0:
        return 0
    cdef double step_size, inv_sqrt_bc2, decay = 1.0 - lr * weight_decay
    adam_scales(lr, beta1, beta2, step, &step_size, &inv_sqrt_bc2)
    cdef int nt = threads_for(<double>n / 2, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_adam(&params[0] + lo, &grads[0] + lo, &m[0] + lo, &v[0] + lo, hi - lo,
               beta1, beta2, eps, step_size, inv_sqrt_bc2, decay, NULL)
        flush_denormals_end(fpu)
    return 0


def adam_update(floating[::1] params, const floating[::1] grads, floating[::1] m,
                floating[::1] v, double lr, double beta1, double beta2, double eps, long step):
    """One Adam step in place (Kingma & Ba 2015; eps outside the square root, as PyTorch).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    params, grads, m, v : ndarray of shape (n,)   # IN/OUT, IN, IN/OUT, IN/OUT
    step : t, the number of this step (1 for the first)
    """
    _adam(params, grads, m, v, lr, beta1, beta2, eps, 0.0, step)


def adamw_update(floating[::1] params, const floating[::1] grads, floating[::1] m,
                 floating[::1] v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, long step):
    """One AdamW step in place: Adam with decoupled weight decay
    (Loshchilov & Hutter 2019), as PyTorch's AdamW.

    p *= 1 - lr wd;  then the Adam step of adam_update (from the same g)

    params, grads, m, v : ndarray of shape (n,)   # IN/OUT, IN, IN/OUT, IN/OUT
    step : t, the number of this step (1 for the first)
    """
    _adam(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step)


def adagrad_update(floating[::1] params, const floating[::1] grads, floating[::1] accumulator,
                   double lr, double eps):
    """One Adagrad step in place (Duchi, Hazan & Singer 2011; as PyTorch).

    s += g^2;  p -= lr g / (sqrt(s) + eps)

    params, grads, accumulator : ndarray of shape (n,)   # IN/OUT, IN, IN/OUT
    """
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    check_len("accumulator", accumulator.shape[0], n)
    if n == 0:
        return
    cdef int nt = threads_for(<double>n / 3, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_adagrad(&params[0] + lo, &grads[0] + lo, &accumulator[0] + lo, hi - lo, lr, eps, NULL)
        flush_denormals_end(fpu)


def rmsprop_update(floating[::1] params, const floating[::1] grads, floating[::1] square_avg,
                   double lr, double rho, double eps, double momentum=0.0,
                   floating[::1] momentum_buffer=None, floating[::1] grad_avg=None):
    """One RMSprop step in place (Tieleman & Hinton 2012; PyTorch's formulation).

    s = rho s + (1 - rho) g^2
    centered (grad_avg given): a = rho a + (1 - rho) g;  d = sqrt(s - a^2) + eps
    otherwise:                 d = sqrt(s) + eps
    momentum > 0: b = momentum b + g / d;  p -= lr b
    otherwise:    p -= lr g / d

    params, grads, square_avg : ndarray of shape (n,)       # IN/OUT, IN, IN/OUT
    momentum_buffer : ndarray of shape (n,), or None when momentum == 0   # IN/OUT
    grad_avg : ndarray of shape (n,) for the centered variant, or None    # IN/OUT
    """
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    check_len("square_avg", square_avg.shape[0], n)
    cdef floating *buf = NULL
    cdef floating *avg = NULL
    if momentum != 0:
        if momentum_buffer is None:
            raise ValueError("momentum needs a momentum_buffer")
        check_len("momentum_buffer", momentum_buffer.shape[0], n)
        if n > 0:
            buf = &momentum_buffer[0]
    if grad_avg is not None:
        check_len("grad_avg", grad_avg.shape[0], n)
        if n > 0:
            avg = &grad_avg[0]
    if n == 0:
        return
    cdef int nt = threads_for(<double>n / 2, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_rmsprop(&params[0] + lo, &grads[0] + lo, &square_avg[0] + lo,
                  buf + lo if buf != NULL else NULL, avg + lo if avg != NULL else NULL,
                  hi - lo, lr, rho, eps, momentum, NULL)
        flush_denormals_end(fpu)


def nadam_update(floating[::1] params, const floating[::1] grads, floating[::1] m,
                 floating[::1] v, double lr, double beta1, double beta2, double eps,
                 double momentum_decay, long step, double mu_product):
    """One NAdam step in place (Dozat 2016), in PyTorch's formulation with its
    momentum schedule mu_t = b1 (1 - 0.96^(t psi) / 2), psi = momentum_decay.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr [(1 - mu_t) / (1 - prod_{i<=t} mu_i) g + mu_{t+1} / (1 - prod_{i<=t+1} mu_i) m]
         / (sqrt(v / (1 - b2^t)) + eps)

    params, grads, m, v : ndarray of shape (n,)   # IN/OUT, IN, IN/OUT, IN/OUT
    step : t, the number of this step (1 for the first)
    mu_product : prod_{i<t} mu_i (1.0 before the first step)

    Returns prod_{i<=t} mu_i, the mu_product of the next step.
    """
    cdef Py_ssize_t n = params.shape[0], lo, hi
    check_len("grads", grads.shape[0], n)
    check_len("m", m.shape[0], n)
    check_len("v", v.shape[0], n)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cdef double c_g, c_m, inv_sqrt_bc2
    mu_product = nadam_scales(lr, beta1, beta2, momentum_decay, step, mu_product, &c_g, &c_m,
                              &inv_sqrt_bc2)
    if n == 0:
        return mu_product
    cdef int nt = threads_for(<double>n / 2, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(n, tid, nt)
        hi = chunk_lo(n, tid + 1, nt)
        c_nadam(&params[0] + lo, &grads[0] + lo, &m[0] + lo, &v[0] + lo, hi - lo,
                beta1, beta2, eps, c_g, c_m, inv_sqrt_bc2, NULL)
        flush_denormals_end(fpu)
    return mu_product


def max_norm_constraint(floating[:, ::1] W, double max_norm):
    """Max-norm constraint in place (Srivastava et al. 2014, sec. 5.1): every
    column w = W[:, j] (one unit's incoming weights) with |w| > max_norm is
    rescaled to w * max_norm / |w|.

    W : ndarray of shape (n_in, n_out)   # IN/OUT
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    cdef Py_ssize_t rows = W.shape[0], cols = W.shape[1], c0, c1
    if rows == 0 or cols == 0:
        return
    cdef int nt = min(threads_for(<double>rows * cols, ELEMENTWISE_GRAIN), cols), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        c0 = share_lo(cols, tid, nt)
        c1 = share_lo(cols, tid + 1, nt)
        max_norm_columns(&W[0, 0], rows, cols, c0, c1, max_norm)
        flush_denormals_end(fpu)
