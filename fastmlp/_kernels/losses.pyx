# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Loss kernels on the final layer's raw outputs: value and gradient in one pass.

Design
------
Every loss is one row kernel in csrc/fm_losses_impl.h, listed once in
FM_LOSSES (csrc/fm_kernels.h) and reached through the dispatch in
_losses.pxd, which the compiled train step (plan.pyx) uses too.  Here the rows
are split across threads; per-thread partial sums are added in thread order,
so the value is repeatable for a given thread count.

Every loss is a mean over the batch, weighted by sample_weight when given:
(sum_r w_r loss_r) / n for the losses with one value per sample
(softmax_cross_entropy, hinge, kl_divergence), / (n k) for the elementwise
ones (mse, mae, mape, huber, binary_cross_entropy, poisson), and the gradient
written to `grad` is that of the mean.  The formulas are in fastmlp/losses.py.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from fastmlp._kernels._losses cimport (FM_N_LOSSES, FM_Y_LABELS, FM_Y_TARGETS, fm_loss_name,
                                       fm_loss_y_kinds, loss_rows, loss_mean,
                                       loss_output as c_loss_output)
from fastmlp._kernels._blocks cimport flush_denormals_begin, flush_denormals_end, share_lo
from fastmlp._kernels._runtime cimport threads_for, ELEMENTWISE_GRAIN

include "_checks.pxi"

# loss names in the order of their codes (the code is what the compiled plan stores)
LOSSES = tuple(fm_loss_name(i).decode() for i in range(FM_N_LOSSES))
_SOFTMAX_CROSS_ENTROPY = LOSSES.index("softmax_cross_entropy")
_CODES = {name: i for i, name in enumerate(LOSSES)}
cdef int SOFTMAX_CROSS_ENTROPY = _CODES["softmax_cross_entropy"]
cdef int MSE = _CODES["mse"]
cdef int BINARY_CROSS_ENTROPY = _CODES["binary_cross_entropy"]
cdef int MAE = _CODES["mae"]
cdef int MAPE = _CODES["mape"]
cdef int HUBER = _CODES["huber"]
cdef int HINGE = _CODES["hinge"]
cdef int KL_DIVERGENCE = _CODES["kl_divergence"]
cdef int POISSON = _CODES["poisson"]


cdef double _reduce_rows(int kind, double param, const floating *z, const int64_t *labels,
                         const floating *targets, const floating *w, floating *g,
                         Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """The batch's mean loss; g gets its gradient."""
    cdef int nt = threads_for(<double>rows * cols * 4, ELEMENTWISE_GRAIN), tid
    cdef double *parts = <double *>malloc(nt * sizeof(double))
    cdef double total = 0.0
    cdef unsigned int fpu
    if parts == NULL:
        nt = 1
        parts = &total
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        parts[tid] = loss_rows(kind, param, z, labels, targets, w, g, rows,
                               share_lo(rows, tid, nt), share_lo(rows, tid + 1, nt), cols)
        flush_denormals_end(fpu)
    if parts != &total:
        for tid in range(nt):
            total += parts[tid]
        free(parts)
    return loss_mean(kind, total, rows, cols)


cdef inline const floating *_weights(const floating[::1] sample_weight, Py_ssize_t rows) except? NULL:
    if sample_weight is None:
        return NULL
    check_len("sample_weight", sample_weight.shape[0], rows)
    return &sample_weight[0]


cdef int _check_labels(const int64_t[::1] labels, Py_ssize_t k) except -1:
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(labels.shape[0]):
            if labels[i] < 0 or labels[i] >= k:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"y holds label {labels[bad]} outside [0, {k})")
    return 0


def loss_code(str name):
    """The native code of loss `name` (ValueError if there is none)."""
    try:
        return _CODES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")


def loss_and_gradient(const floating[:, ::1] Z, y, floating[:, ::1] grad, int kind,
                      double param=0.0, const floating[::1] sample_weight=None):
    """Mean loss number `kind` (loss_code(name)) of Z against y, and its gradient.

    Z : ndarray of shape (n, k)                          # IN  last layer's output
    y : int64 ndarray of shape (n,) with labels in [0, k) (softmax_cross_entropy,
        hinge), or ndarray of shape (n, k) of targets (every loss but hinge)   # IN
    grad : ndarray of shape (n, k)                       # OUT (may be Z, not y)
    kind : int, the loss code
    param : huber's delta or mape's epsilon (> 0); ignored by the others
    sample_weight : ndarray of shape (n,) or None        # IN
    Returns the loss (float).
    """
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1]
    cdef const int64_t[::1] labels
    cdef const floating[:, ::1] targets
    cdef double loss
    if not 0 <= kind < FM_N_LOSSES:
        raise ValueError(f"unknown loss code {kind}; there are {FM_N_LOSSES}")
    name = LOSSES[kind]
    check_shape2("grad", grad.shape[0], grad.shape[1], rows, cols)
    cdef const floating *w = _weights(sample_weight, rows)
    if rows == 0 or cols == 0:
        raise ValueError(f"{name} needs at least one sample and one output")
    if (kind == HUBER or kind == MAPE) and not param > 0:
        raise ValueError(f"{name} needs a parameter > 0, got {param}")
    if kind == HINGE and cols < 2:
        raise ValueError("hinge needs at least two classes")
    if getattr(y, "ndim", 0) == 1:
        if not fm_loss_y_kinds(kind) & FM_Y_LABELS:
            raise ValueError(f"{name} takes targets of shape ({rows}, {cols}), not class labels")
        labels = y
        check_len("y", labels.shape[0], rows)
        _check_labels(labels, cols)
        with nogil:
            loss = _reduce_rows(kind, param, &Z[0, 0], &labels[0], <const floating *>NULL, w,
                                &grad[0, 0], rows, cols)
        return loss
    if not fm_loss_y_kinds(kind) & FM_Y_TARGETS:
        raise ValueError(f"{name} takes int64 class labels of shape ({rows},)")
    targets = y
    check_shape2("y", targets.shape[0], targets.shape[1], rows, cols)
    if &targets[0, 0] == &grad[0, 0]:
        raise ValueError("grad must not share memory with the targets")
    with nogil:
        loss = _reduce_rows(kind, param, &Z[0, 0], NULL, &targets[0, 0], w, &grad[0, 0],
                            rows, cols)
    return loss


# ---- one function per loss (the formulas: fastmlp/losses.py) ----------------

def softmax_cross_entropy(Z, y, grad, sample_weight=None):
    """Mean softmax cross-entropy of logits Z, labels (n,) or targets t (n, k).

    loss = (1/n) sum_r w_r sum_c t_rc (logsumexp(Z_r) - Z_rc),
    grad = w_r (softmax(Z_r) sum_c t_rc - t_r) / n, from logits (max subtracted,
    sum in double), so it is finite for any finite logits.
    """
    return loss_and_gradient(Z, y, grad, SOFTMAX_CROSS_ENTROPY, 0.0, sample_weight)


def mean_squared_error(Z, Y, grad, sample_weight=None):
    """sum_r w_r sum_c (Z_rc - Y_rc)^2 / (2 n k),  grad = w_r (Z - Y) / (n k)."""
    return loss_and_gradient(Z, Y, grad, MSE, 0.0, sample_weight)


def binary_cross_entropy(Z, Y, grad, sample_weight=None):
    """Sigmoid binary cross-entropy on logits, Y in [0, 1]:
    sum_r w_r sum_c (log(1 + e^Z_rc) - Y_rc Z_rc) / (n k),  grad = w_r (sigmoid(Z) - Y) / (n k)."""
    return loss_and_gradient(Z, Y, grad, BINARY_CROSS_ENTROPY, 0.0, sample_weight)


def mean_absolute_error(Z, Y, grad, sample_weight=None):
    """sum_r w_r sum_c |Z_rc - Y_rc| / (n k),  grad = w_r sign(Z - Y) / (n k)."""
    return loss_and_gradient(Z, Y, grad, MAE, 0.0, sample_weight)


def mean_absolute_percentage_error(Z, Y, grad, sample_weight=None, double epsilon=1e-7):
    """100 sum_r w_r sum_c |Z_rc - Y_rc| / max(|Y_rc|, epsilon) / (n k)."""
    return loss_and_gradient(Z, Y, grad, MAPE, epsilon, sample_weight)


def huber(Z, Y, grad, sample_weight=None, double delta=1.0):
    """Mean Huber loss: d^2 / 2 for |d| <= delta, delta (|d| - delta / 2) beyond, d = Z - Y."""
    return loss_and_gradient(Z, Y, grad, HUBER, delta, sample_weight)


def multiclass_hinge(Z, y, grad, sample_weight=None):
    """Crammer-Singer hinge: (1/n) sum_r w_r max(0, 1 + max_{c != y_r} Z_rc - Z_r[y_r])."""
    return loss_and_gradient(Z, y, grad, HINGE, 0.0, sample_weight)


def kl_divergence(Z, T, grad, sample_weight=None):
    """(1/n) sum_r w_r KL(T_r || softmax(Z_r)), with 0 log 0 = 0."""
    return loss_and_gradient(Z, T, grad, KL_DIVERGENCE, 0.0, sample_weight)


def poisson(Z, Y, grad, sample_weight=None):
    """Poisson NLL on the log-rate Z: sum_r w_r sum_c (e^Z_rc - Y_rc Z_rc) / (n k)."""
    return loss_and_gradient(Z, Y, grad, POISSON, 0.0, sample_weight)


def loss_output(const floating[:, ::1] Z, int kind, floating[:, ::1] out):
    """out = what predict() returns under loss `kind`: softmax(Z) for
    softmax_cross_entropy and kl_divergence, sigmoid(Z) for binary_cross_entropy,
    e^Z for poisson, Z otherwise.

    Z : ndarray of shape (n, k)    # IN
    out : ndarray of shape (n, k)  # OUT (may be Z)
    """
    cdef Py_ssize_t rows = Z.shape[0], cols = Z.shape[1], r0, r1
    check_shape2("out", out.shape[0], out.shape[1], rows, cols)
    if not 0 <= kind < FM_N_LOSSES:
        raise ValueError(f"unknown loss code {kind}; there are {FM_N_LOSSES}")
    if rows == 0 or cols == 0:
        return
    cdef int nt = threads_for(<double>rows * cols * 4, ELEMENTWISE_GRAIN), tid
    cdef unsigned int fpu
    with nogil, parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        c_loss_output(kind, &Z[0, 0] + r0 * cols, &out[0, 0] + r0 * cols, r1 - r0, cols)
        flush_denormals_end(fpu)


def softmax(const floating[:, ::1] Z, floating[:, ::1] out):
    """out = softmax(Z) row by row (max subtracted first): softmax cross-entropy's
    output map, so loss_output does the work.

    Z : ndarray of shape (n, k)    # IN
    out : ndarray of shape (n, k)  # OUT (may be Z)
    """
    loss_output(Z, _SOFTMAX_CROSS_ENTROPY, out)
