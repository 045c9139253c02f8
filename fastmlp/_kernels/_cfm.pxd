# cython: language_level=3
"""Declarations of the plain-C kernels in csrc/fm_kernels.h, with one fused
`floating` wrapper per kernel so Cython code calls a single name for float32
and float64 (the C side has an _f32 and an _f64 instance of each)."""
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fm_kernels.h" nogil:
    int FM_N_ACTIVATIONS
    const char *fm_activation_name(int code)

    void fm_bias_activation_f32(int act, float alpha, float *z, float *a, const float *b,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fm_bias_activation_f64(int act, double alpha, double *z, double *a, const double *b,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fm_activation_forward_f32(int act, float alpha, const float *z, float *a, Py_ssize_t n)
    void fm_activation_forward_f64(int act, double alpha, const double *z, double *a, Py_ssize_t n)
    void fm_activation_backward_f32(int act, float alpha, const float *z, const float *a,
                                    const float *da, float *dz, Py_ssize_t n)
    void fm_activation_backward_f64(int act, double alpha, const double *z, const double *a,
                                    const double *da, double *dz, Py_ssize_t n)
    void fm_column_sums_f32(const float *dz, float *db, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t c0, Py_ssize_t c1)
    void fm_column_sums_f64(const double *dz, double *db, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t c0, Py_ssize_t c1)

    int fm_block_finite_f32(const float *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                            Py_ssize_t c1)
    int fm_block_finite_f64(const double *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                            Py_ssize_t c1)

    int fm_sgd_update_f32(float *p, const float *g, float *v, Py_ssize_t n, float lr, float mu,
                           int nesterov)
    int fm_sgd_update_f64(double *p, const double *g, double *v, Py_ssize_t n, double lr,
                           double mu, int nesterov)
    int fm_adam_update_f32(float *p, const float *g, float *m, float *v, Py_ssize_t n, float b1,
                            float b2, float eps, float step_size, float inv_sqrt_bc2)
    int fm_adam_update_f64(double *p, const double *g, double *m, double *v, Py_ssize_t n,
                            double b1, double b2, double eps, double step_size,
                            double inv_sqrt_bc2)


# z += b; a = f(z)   (a may be z)
cdef inline void bias_activation(int act, double alpha, floating *z, floating *a,
                                 const floating *b, Py_ssize_t rows,
                                 Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_bias_activation_f32(act, <float>alpha, z, a, b, rows, cols)
    else:
        fm_bias_activation_f64(act, alpha, z, a, b, rows, cols)


# a = f(z)
cdef inline void activation_forward(int act, double alpha, const floating *z, floating *a,
                                    Py_ssize_t n) noexcept nogil:
    if floating is float:
        fm_activation_forward_f32(act, <float>alpha, z, a, n)
    else:
        fm_activation_forward_f64(act, alpha, z, a, n)


# dz = da * f'(z)
cdef inline void activation_backward(int act, double alpha, const floating *z,
                                     const floating *a, const floating *da, floating *dz,
                                     Py_ssize_t n) noexcept nogil:
    if floating is float:
        fm_activation_backward_f32(act, <float>alpha, z, a, da, dz, n)
    else:
        fm_activation_backward_f64(act, alpha, z, a, da, dz, n)


# db[c0:c1] = sum over rows of dz[:, c0:c1]
cdef inline void column_sums(const floating *dz, floating *db, Py_ssize_t rows, Py_ssize_t cols,
                             Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    if floating is float:
        fm_column_sums_f32(dz, db, rows, cols, c0, c1)
    else:
        fm_column_sums_f64(dz, db, rows, cols, c0, c1)


# 1 if x[r, c0:c1] is finite for all rows r of a (rows, ld) block
cdef inline bint block_finite(const floating *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                              Py_ssize_t c1) noexcept nogil:
    if floating is float:
        return fm_block_finite_f32(x, rows, ld, c0, c1)
    else:
        return fm_block_finite_f64(x, rows, ld, c0, c1)


# the updates return 1 when every new parameter is finite
cdef inline bint sgd_update(floating *p, const floating *g, floating *v, Py_ssize_t n,
                            double lr, double mu, bint nesterov) noexcept nogil:
    if floating is float:
        return fm_sgd_update_f32(p, g, v, n, <float>lr, <float>mu, nesterov)
    else:
        return fm_sgd_update_f64(p, g, v, n, lr, mu, nesterov)


cdef inline bint adam_update(floating *p, const floating *g, floating *m, floating *v,
                             Py_ssize_t n, double b1, double b2, double eps, double step_size,
                             double inv_sqrt_bc2) noexcept nogil:
    if floating is float:
        return fm_adam_update_f32(p, g, m, v, n, <float>b1, <float>b2, <float>eps,
                                  <float>step_size, <float>inv_sqrt_bc2)
    else:
        return fm_adam_update_f64(p, g, m, v, n, b1, b2, eps, step_size, inv_sqrt_bc2)
