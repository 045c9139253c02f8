# cython: language_level=3
"""The loss dispatch shared by the standalone loss kernels (losses.pyx) and the
compiled train step (plan.pyx): one call computes a block of rows' loss and
gradient for any loss code (FM_LOSSES in csrc/fm_kernels.h), so the two cannot
disagree on a loss, its normalization or its parameter."""
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fm_kernels.h" nogil:
    int FM_N_LOSSES
    int FM_Y_LABELS
    int FM_Y_TARGETS
    const char *fm_loss_name(int kind)
    int fm_loss_per_output(int kind)
    int fm_loss_y_kinds(int kind)

    double fm_loss_rows_f32(int kind, float param, const float *z, const int64_t *y,
                            const float *t, const float *w, float *g, Py_ssize_t rows,
                            Py_ssize_t cols, float scale)
    double fm_loss_rows_f64(int kind, double param, const double *z, const int64_t *y,
                            const double *t, const double *w, double *g, Py_ssize_t rows,
                            Py_ssize_t cols, double scale)
    void fm_loss_output_f32(int kind, const float *z, float *out, Py_ssize_t rows,
                            Py_ssize_t cols)
    void fm_loss_output_f64(int kind, const double *z, double *out, Py_ssize_t rows,
                            Py_ssize_t cols)
    void fm_softmax_f32(const float *z, float *p, Py_ssize_t rows, Py_ssize_t cols)
    void fm_softmax_f64(const double *z, double *p, Py_ssize_t rows, Py_ssize_t cols)


cdef inline double loss_divisor(int kind, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The batch loss is (sum_r w_r loss_r) / divisor: n k for the losses that
    average over outputs, n for those with one loss per sample."""
    return <double>n * k if fm_loss_per_output(kind) else <double>n


cdef inline double loss_rows(int kind, double param, const floating *z, const int64_t *labels,
                             const floating *targets, const floating *w, floating *g,
                             Py_ssize_t n, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t k) noexcept nogil:
    """Rows [r0, r1) of a batch of n rows and k outputs (z, labels, targets, w and
    g point at row 0; labels, targets and w may be NULL): returns their sum of
    w_r loss_r and writes the gradient of the batch mean into g[r0:r1]."""
    cdef double scale = 1.0 / loss_divisor(kind, n, k)
    cdef const int64_t *y = labels + r0 if labels != NULL else NULL
    cdef const floating *t = targets + r0 * k if targets != NULL else NULL
    cdef const floating *wr = w + r0 if w != NULL else NULL
    if floating is float:
        return fm_loss_rows_f32(kind, <float>param, z + r0 * k, y, t, wr, g + r0 * k, r1 - r0, k,
                                <float>scale)
    else:
        return fm_loss_rows_f64(kind, param, z + r0 * k, y, t, wr, g + r0 * k, r1 - r0, k, scale)


cdef inline double loss_mean(int kind, double total, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The batch loss from the sum of loss_rows over all n rows."""
    return total / loss_divisor(kind, n, k)


cdef inline void loss_output(int kind, const floating *z, floating *out, Py_ssize_t rows,
                             Py_ssize_t cols) noexcept nogil:
    """out = what predict() returns for the last layer's output z (softmax,
    sigmoid, e^z or z itself, by loss); out may be z."""
    if floating is float:
        fm_loss_output_f32(kind, z, out, rows, cols)
    else:
        fm_loss_output_f64(kind, z, out, rows, cols)


cdef inline void softmax(const floating *z, floating *p, Py_ssize_t rows,
                         Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_softmax_f32(z, p, rows, cols)
    else:
        fm_softmax_f64(z, p, rows, cols)
