# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Activation kernels: a = f(z) and the chain rule dz = da * f'(z).

The scalar functions live in csrc/fm_kernels.h (FM_ACTIVATIONS lists them, so
this module's table is built from that list); here they are looped over the
rows of a 2-D array split across threads.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from fastmlp._kernels._cfm cimport (FM_N_ACTIVATIONS, fm_activation_name,
                                    fm_activation_default_alpha, fm_dropout_key_t,
                                    fm_dropout_key, dropout_rows,
                                    activation_forward as c_forward,
                                    activation_backward as c_backward)
from fastmlp._kernels._blocks cimport flush_denormals_begin, flush_denormals_end, share_lo
from fastmlp._kernels._runtime cimport threads_for, ELEMENTWISE_GRAIN

include "_checks.pxi"

ACTIVATIONS = tuple(fm_activation_name(i).decode() for i in range(FM_N_ACTIVATIONS))
# the default of each activation's parameter (0.0 where it has none)
DEFAULT_ALPHA = {name: fm_activation_default_alpha(i) for i, name in enumerate(ACTIVATIONS)}
_CODES = {name: i for i, name in enumerate(ACTIVATIONS)}


def activation_code(str name):
    """The native code of activation `name` (ValueError if there is none)."""
    try:
        return _CODES[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


def activation_alpha(str name, alpha):
    """`alpha`, or the default parameter of activation `name` when alpha is None."""
    activation_code(name)
    return DEFAULT_ALPHA[name] if alpha is None else float(alpha)


def activation_forward(const floating[:, ::1] Z, str activation, floating[:, ::1] out,
                       alpha=None):
    """out = f(Z) elementwise (f applied with the unit's column for bipolar ones).

    Z : ndarray of shape (n, m)   # IN
    out : ndarray of shape (n, m) # OUT (may be Z)
    alpha : float or None, the activation's parameter (leaky_relu's slope, elu's
        alpha, silu's beta, ...); None is its default (DEFAULT_ALPHA)
    """
    cdef int act = activation_code(activation)
    cdef double a = activation_alpha(activation, alpha)
    check_shape2("out", out.shape[0], out.shape[1], Z.shape[0], Z.shape[1])
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1], r0, r1
    if rows == 0 or cols == 0:
        return
    cdef int nt = threads_for(<double>rows * cols / 8, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_forward(act, a, &Z[0, 0] + r0 * cols, &out[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)

def activation_backward(const floating[:, ::1] Z, const floating[:, ::1] A,
                        const floating[:, ::1] dA, str activation, floating[:, ::1] out,
                        alpha=None):
    """out = dA * f'(Z) elementwise, where A = f(Z) (some derivatives use it).

    Z, A, dA : ndarray of shape (n, m)   # IN
    out : ndarray of shape (n, m)        # OUT (may be dA)
    alpha : float or None, as for activation_forward
    """
    cdef int act = activation_code(activation)
    cdef double a = activation_alpha(activation, alpha)
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1], r0, r1
    check_shape2("A", A.shape[0], A.shape[1], rows, cols)
    check_shape2("dA", dA.shape[0], dA.shape[1], rows, cols)
    check_shape2("out", out.shape[0], out.shape[1], rows, cols)
    if rows == 0 or cols == 0:
        return
    cdef int nt = threads_for(<double>rows * cols / 8, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_backward(act, a, &Z[0, 0] + r0 * cols, &A[0, 0] + r0 * cols,
                   &dA[0, 0] + r0 * cols, &out[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)

cdef extern from "fm_math.h" nogil:
    float fm_expf(float x)
    float fm_expm1f(float x)
    float fm_logf(float x)
    float fm_log1pf(float x)
    float fm_tanhf(float x)
    float fm_atanf(float x)
    float fm_asinhf(float x)
    float fm_erfcf(float x)

FLOAT32_MATH = ("exp", "expm1", "log", "log1p", "tanh", "atan", "asinh", "erfc")


def _float32_math(str name, const float[::1] x, float[::1] out):
    """out = name(x) by the vectorizable float32 functions of csrc/fm_math.h
    (exposed for their accuracy tests); name is one of FLOAT32_MATH."""
    cdef Py_ssize_t i, n = x.shape[0]
    check_len("out", out.shape[0], n)
    if name not in FLOAT32_MATH:
        raise ValueError(f"name must be one of {', '.join(FLOAT32_MATH)}, got {name!r}")
    cdef int which = FLOAT32_MATH.index(name)
    with nogil:
        for i in range(n):
            if which == 0:
                out[i] = fm_expf(x[i])
            elif which == 1:
                out[i] = fm_expm1f(x[i])
            elif which == 2:
                out[i] = fm_logf(x[i])
            elif which == 3:
                out[i] = fm_log1pf(x[i])
            elif which == 4:
                out[i] = fm_tanhf(x[i])
            elif which == 5:
                out[i] = fm_atanf(x[i])
            elif which == 6:
                out[i] = fm_asinhf(x[i])
            else:
                out[i] = fm_erfcf(x[i])


def dropout(const floating[:, ::1] X, floating[:, ::1] out, double p, seed, layer, step):
    """Inverted dropout: out = X * mask / (1 - p), mask[r, c] ~ Bernoulli(1 - p).

    The mask comes from a counter-based RNG keyed by (seed, layer, step, r, c)
    (csrc/fm_dropout.h), so it does not depend on the thread count and the
    backward pass can recompute it.

    X : ndarray of shape (n, m)    # IN
    out : ndarray of shape (n, m)  # OUT (may be X: that applies the mask to a gradient)
    p : dropout rate in [0, 1)
    """
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], r0, r1
    check_shape2("out", out.shape[0], out.shape[1], rows, cols)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"the dropout rate must be in [0, 1), got {p}")
    if not 0 <= layer < 2 ** 31:
        raise ValueError(f"layer must be in [0, 2^31), got {layer}")
    if rows == 0 or cols == 0:
        return
    # seed and step are taken modulo 2^64, as the twin does (any Python int is accepted)
    cdef fm_dropout_key_t key = fm_dropout_key(<unsigned long long>(int(seed) & 0xffffffffffffffff),
                                               <unsigned int>int(layer),
                                               <unsigned long long>(int(step) & 0xffffffffffffffff))
    cdef int nt = threads_for(<double>rows * cols / 4, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        dropout_rows(&X[0, 0], &out[0, 0], r0, r1, cols, key, p)
        flush_denormals_end(fpu)
