# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Loss kernels on the final layer's raw outputs: value and gradient in one pass.

Every loss is a mean over the n samples of the batch (weighted by
sample_weight when given: sum_r w_r loss_r / n), and the gradient written to
`grad` is that of the mean.  Per-thread partial sums are added in thread
order, so the value is repeatable for a given thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from fastmlp._kernels._cfm cimport (softmax_xent_labels, softmax_xent_targets,
                                    softmax as c_softmax, squared_error)
from fastmlp._kernels._blocks cimport flush_denormals_begin, flush_denormals_end, share_lo
from fastmlp._kernels._runtime cimport threads_for, ELEMENTWISE_GRAIN

include "_checks.pxi"

# loss kinds, as the compiled plan stores them
SOFTMAX_CROSS_ENTROPY = 0
MEAN_SQUARED_ERROR = 1


cdef double _reduce_rows(int kind, const floating *z, const int64_t *labels,
                         const floating *targets, const floating *w, floating *g,
                         Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """Sum over rows of the weighted per-row loss; g gets the gradient of the mean."""
    cdef int nt = threads_for(<double>rows * cols * 4, ELEMENTWISE_GRAIN), tid
    cdef double *parts = <double *>malloc(nt * sizeof(double))
    cdef double total = 0.0
    cdef Py_ssize_t r0, r1
    cdef double scale
    if parts == NULL:
        nt = 1
        parts = &total
    if kind == 0:
        scale = 1.0 / rows
    else:  # MSE, the 1/2 mean convention: d/dz (z - y)^2 / (2 n m) = (z - y) / (n m)
        scale = 1.0 / (<double>rows * cols)
    cdef unsigned int fpu
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        if kind == 0 and labels != NULL:
            parts[tid] = softmax_xent_labels(z + r0 * cols, labels + r0,
                                             w + r0 if w != NULL else NULL, g + r0 * cols,
                                             r1 - r0, cols, scale)
        elif kind == 0:
            parts[tid] = softmax_xent_targets(z + r0 * cols, targets + r0 * cols,
                                              w + r0 if w != NULL else NULL, g + r0 * cols,
                                              r1 - r0, cols, scale)
        else:
            parts[tid] = squared_error(z + r0 * cols, targets + r0 * cols,
                                       w + r0 if w != NULL else NULL, g + r0 * cols,
                                       r1 - r0, cols, scale)
        flush_denormals_end(fpu)
    if parts != &total:
        for tid in range(nt):
            total += parts[tid]
        free(parts)
    if kind == 0:
        return total / rows
    return total * 0.5 / (<double>rows * cols)


cdef inline const floating *_weights(const floating[::1] sample_weight, Py_ssize_t rows) except? NULL:
    if sample_weight is None:
        return NULL
    check_len("sample_weight", sample_weight.shape[0], rows)
    return &sample_weight[0]


def softmax_cross_entropy(const floating[:, ::1] Z, y, floating[:, ::1] grad,
                          const floating[::1] sample_weight=None):
    """Mean softmax cross-entropy of logits Z and its gradient, in one pass per row.

    loss = (1/n) sum_r w_r (logsumexp(Z_r) - Z_r[y_r]),  grad = w (softmax(Z) - onehot(y)) / n
    computed from logits (max subtracted, sum in double), so it is finite for any
    finite logits.

    Z : ndarray of shape (n, k)                          # IN  logits
    y : int64 ndarray of shape (n,) with labels in [0, k), or
        ndarray of shape (n, k) with target distributions (one-hot or soft)   # IN
    grad : ndarray of shape (n, k)                       # OUT (may be Z)
    sample_weight : ndarray of shape (n,) or None        # IN
    Returns the loss (float).
    """
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1]
    cdef const int64_t[::1] labels
    cdef const floating[:, ::1] targets
    check_shape2("grad", grad.shape[0], grad.shape[1], rows, cols)
    cdef const floating *w = _weights(sample_weight, rows)
    cdef double loss
    if rows == 0 or cols == 0:
        raise ValueError("softmax_cross_entropy needs at least one sample and one class")
    if getattr(y, "ndim", 0) == 1:
        labels = y
        check_len("y", labels.shape[0], rows)
        with nogil:
            loss = _reduce_rows(0, &Z[0, 0], &labels[0], <const floating *>NULL, w,
                                &grad[0, 0], rows, cols)
        return loss
    targets = y
    check_shape2("y", targets.shape[0], targets.shape[1], rows, cols)
    if &targets[0, 0] == &grad[0, 0]:
        raise ValueError("grad must not share memory with the targets")
    with nogil:
        loss = _reduce_rows(0, &Z[0, 0], NULL, &targets[0, 0], w, &grad[0, 0], rows, cols)
    return loss


def mean_squared_error(const floating[:, ::1] Z, const floating[:, ::1] Y,
                       floating[:, ::1] grad, const floating[::1] sample_weight=None):
    """Mean squared error with the 1/2 convention, and its gradient.

    loss = sum_r w_r sum_c (Z_rc - Y_rc)^2 / (2 n k),  grad = w (Z - Y) / (n k)

    Z, Y : ndarray of shape (n, k)                # IN
    grad : ndarray of shape (n, k)                # OUT (may be Z)
    sample_weight : ndarray of shape (n,) or None # IN
    Returns the loss (float).
    """
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1]
    check_shape2("Y", Y.shape[0], Y.shape[1], rows, cols)
    check_shape2("grad", grad.shape[0], grad.shape[1], rows, cols)
    cdef const floating *w = _weights(sample_weight, rows)
    cdef double loss
    if rows == 0 or cols == 0:
        raise ValueError("mean_squared_error needs at least one sample and one output")
    with nogil:
        loss = _reduce_rows(1, &Z[0, 0], NULL, &Y[0, 0], w, &grad[0, 0], rows, cols)
    return loss


def softmax(const floating[:, ::1] Z, floating[:, ::1] out):
    """out = softmax(Z) row by row (max subtracted first).

    Z : ndarray of shape (n, k)    # IN
    out : ndarray of shape (n, k)  # OUT (may be Z)
    """
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1], r0, r1
    check_shape2("out", out.shape[0], out.shape[1], rows, cols)
    if rows == 0 or cols == 0:
        return
    cdef int nt = threads_for(<double>rows * cols * 4, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_softmax(&Z[0, 0] + r0 * cols, &out[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)