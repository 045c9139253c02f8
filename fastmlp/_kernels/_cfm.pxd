# cython: language_level=3
"""Declarations of the plain-C kernels in csrc/fm_kernels.h, with one fused
`floating` wrapper per kernel so Cython code calls a single name for float32
and float64 (the C side has an _f32 and an _f64 instance of each)."""
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fm_kernels.h" nogil:
    void fm_barrier()
    ctypedef struct fm_dropout_key_t:
        unsigned int k0
        unsigned int k1
    fm_dropout_key_t fm_dropout_key(unsigned long long seed, unsigned int layer,
                                    unsigned long long step)
    unsigned int fm_dropout_threshold(double p)
    void fm_dropout_rows_f32(const float *inp, float *out, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t cols, unsigned int k0, unsigned int k1,
                             unsigned int threshold, float scale)
    void fm_dropout_rows_f64(const double *inp, double *out, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t cols, unsigned int k0, unsigned int k1,
                             unsigned int threshold, double scale)

    int FM_N_ACTIVATIONS
    const char *fm_activation_name(int code)
    double fm_activation_default_alpha(int code)

    void fm_bias_activation_f32(int act, float alpha, float *z, float *a, const float *b,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fm_bias_activation_f64(int act, double alpha, double *z, double *a, const double *b,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fm_activation_forward_f32(int act, float alpha, const float *z, float *a,
                                   Py_ssize_t rows, Py_ssize_t cols)
    void fm_activation_forward_f64(int act, double alpha, const double *z, double *a,
                                   Py_ssize_t rows, Py_ssize_t cols)
    void fm_activation_backward_f32(int act, float alpha, const float *z, const float *a,
                                    const float *da, float *dz, Py_ssize_t rows, Py_ssize_t cols)
    void fm_activation_backward_f64(int act, double alpha, const double *z, const double *a,
                                    const double *da, double *dz, Py_ssize_t rows,
                                    Py_ssize_t cols)
    void fm_column_sums_f32(const float *dz, float *db, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t c0, Py_ssize_t c1)
    void fm_column_sums_f64(const double *dz, double *db, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t c0, Py_ssize_t c1)
    void fm_add_to_f32(float *y, const float *x, Py_ssize_t n)
    void fm_add_to_f64(double *y, const double *x, Py_ssize_t n)

    int fm_block_finite_f32(const float *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                            Py_ssize_t c1)
    int fm_block_finite_f64(const double *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                            Py_ssize_t c1)

    ctypedef struct fm_grad_mod:
        double scale   # global-norm clipping factor
        double clip    # clip-by-value bound (inf: none)
        double l1      # penalty coefficients (0 outside weight matrices)
        double l2

    int fm_sgd_update_f32(float *p, const float *g, float *v, Py_ssize_t n, float lr, float mu,
                          int nesterov, const fm_grad_mod *mod)
    int fm_sgd_update_f64(double *p, const double *g, double *v, Py_ssize_t n, double lr,
                          double mu, int nesterov, const fm_grad_mod *mod)
    int fm_adam_update_f32(float *p, const float *g, float *m, float *v, Py_ssize_t n, float b1,
                           float b2, float eps, float step_size, float inv_sqrt_bc2, float decay,
                           const fm_grad_mod *mod)
    int fm_adam_update_f64(double *p, const double *g, double *m, double *v, Py_ssize_t n,
                           double b1, double b2, double eps, double step_size,
                           double inv_sqrt_bc2, double decay, const fm_grad_mod *mod)
    int fm_adagrad_update_f32(float *p, const float *g, float *s, Py_ssize_t n, float lr,
                              float eps, const fm_grad_mod *mod)
    int fm_adagrad_update_f64(double *p, const double *g, double *s, Py_ssize_t n, double lr,
                              double eps, const fm_grad_mod *mod)
    int fm_rmsprop_update_f32(float *p, const float *g, float *s, float *b, float *a,
                              Py_ssize_t n, float lr, float rho, float eps, float mu,
                              const fm_grad_mod *mod)
    int fm_rmsprop_update_f64(double *p, const double *g, double *s, double *b, double *a,
                              Py_ssize_t n, double lr, double rho, double eps, double mu,
                              const fm_grad_mod *mod)
    int fm_nadam_update_f32(float *p, const float *g, float *m, float *v, Py_ssize_t n, float b1,
                            float b2, float eps, float c_g, float c_m, float inv_sqrt_bc2,
                            const fm_grad_mod *mod)
    int fm_nadam_update_f64(double *p, const double *g, double *m, double *v, Py_ssize_t n,
                            double b1, double b2, double eps, double c_g, double c_m,
                            double inv_sqrt_bc2, const fm_grad_mod *mod)
    double fm_sum_squares_f32(const float *x, Py_ssize_t n)
    double fm_sum_squares_f64(const double *x, Py_ssize_t n)
    double fm_penalty_f32(const float *x, Py_ssize_t n, double l1, double l2)
    double fm_penalty_f64(const double *x, Py_ssize_t n, double l1, double l2)
    void fm_max_norm_columns_f32(float *w, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                                 Py_ssize_t c1, double max_norm)
    void fm_max_norm_columns_f64(double *w, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                                 Py_ssize_t c1, double max_norm)


# z += b; a = f(z)   (a may be z)
cdef inline void bias_activation(int act, double alpha, floating *z, floating *a,
                                 const floating *b, Py_ssize_t rows,
                                 Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_bias_activation_f32(act, <float>alpha, z, a, b, rows, cols)
    else:
        fm_bias_activation_f64(act, alpha, z, a, b, rows, cols)


# out[r0:r1] = inp[r0:r1] * mask * 1/(1-p), the mask of (seed, layer, step)
cdef inline void dropout_rows(const floating *inp, floating *out, Py_ssize_t r0, Py_ssize_t r1,
                              Py_ssize_t cols, fm_dropout_key_t key, double p) noexcept nogil:
    if floating is float:
        fm_dropout_rows_f32(inp, out, r0, r1, cols, key.k0, key.k1, fm_dropout_threshold(p),
                            <float>(1.0 / (1.0 - p)))
    else:
        fm_dropout_rows_f64(inp, out, r0, r1, cols, key.k0, key.k1, fm_dropout_threshold(p),
                            1.0 / (1.0 - p))


# a = f(z) on a (rows, cols) block (the column matters to bipolar activations)
cdef inline void activation_forward(int act, double alpha, const floating *z, floating *a,
                                    Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_activation_forward_f32(act, <float>alpha, z, a, rows, cols)
    else:
        fm_activation_forward_f64(act, alpha, z, a, rows, cols)


# dz = da * f'(z) on a (rows, cols) block
cdef inline void activation_backward(int act, double alpha, const floating *z,
                                     const floating *a, const floating *da, floating *dz,
                                     Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_activation_backward_f32(act, <float>alpha, z, a, da, dz, rows, cols)
    else:
        fm_activation_backward_f64(act, alpha, z, a, da, dz, rows, cols)


# db[c0:c1] = sum over rows of dz[:, c0:c1]
cdef inline void column_sums(const floating *dz, floating *db, Py_ssize_t rows, Py_ssize_t cols,
                             Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    if floating is float:
        fm_column_sums_f32(dz, db, rows, cols, c0, c1)
    else:
        fm_column_sums_f64(dz, db, rows, cols, c0, c1)


# y[:n] += x[:n]
cdef inline void add_to(floating *y, const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fm_add_to_f32(y, x, n)
    else:
        fm_add_to_f64(y, x, n)


# 1 if x[r, c0:c1] is finite for all rows r of a (rows, ld) block
cdef inline bint block_finite(const floating *x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                              Py_ssize_t c1) noexcept nogil:
    if floating is float:
        return fm_block_finite_f32(x, rows, ld, c0, c1)
    else:
        return fm_block_finite_f64(x, rows, ld, c0, c1)


# The updates return 1 when every new parameter is finite.  `mod` (NULL: none)
# clips the loss gradient and adds the penalty gradient first (fm_optim_impl.h).

# v = mu v + g;  p -= lr v   (nesterov: p -= lr (g + mu v); mu == 0: p -= lr g)
cdef inline bint sgd_update(floating *p, const floating *g, floating *v, Py_ssize_t n,
                            double lr, double mu, bint nesterov,
                            const fm_grad_mod *mod) noexcept nogil:
    if floating is float:
        return fm_sgd_update_f32(p, g, v, n, <float>lr, <float>mu, nesterov, mod)
    else:
        return fm_sgd_update_f64(p, g, v, n, lr, mu, nesterov, mod)


# m, v moments;  p = decay p - step_size m / (sqrt(v) inv_sqrt_bc2 + eps)
cdef inline bint adam_update(floating *p, const floating *g, floating *m, floating *v,
                             Py_ssize_t n, double b1, double b2, double eps, double step_size,
                             double inv_sqrt_bc2, double decay,
                             const fm_grad_mod *mod) noexcept nogil:
    if floating is float:
        return fm_adam_update_f32(p, g, m, v, n, <float>b1, <float>b2, <float>eps,
                                  <float>step_size, <float>inv_sqrt_bc2, <float>decay, mod)
    else:
        return fm_adam_update_f64(p, g, m, v, n, b1, b2, eps, step_size, inv_sqrt_bc2, decay,
                                  mod)


# s += g^2;  p -= lr g / (sqrt(s) + eps)
cdef inline bint adagrad_update(floating *p, const floating *g, floating *s, Py_ssize_t n,
                                double lr, double eps, const fm_grad_mod *mod) noexcept nogil:
    if floating is float:
        return fm_adagrad_update_f32(p, g, s, n, <float>lr, <float>eps, mod)
    else:
        return fm_adagrad_update_f64(p, g, s, n, lr, eps, mod)


# s = rho s + (1 - rho) g^2;  p -= lr g / (sqrt(s) + eps)  (b: momentum, a: centered)
cdef inline bint rmsprop_update(floating *p, const floating *g, floating *s, floating *b,
                                floating *a, Py_ssize_t n, double lr, double rho, double eps,
                                double mu, const fm_grad_mod *mod) noexcept nogil:
    if floating is float:
        return fm_rmsprop_update_f32(p, g, s, b, a, n, <float>lr, <float>rho, <float>eps,
                                     <float>mu, mod)
    else:
        return fm_rmsprop_update_f64(p, g, s, b, a, n, lr, rho, eps, mu, mod)


# m, v moments;  p -= (c_g g + c_m m) / (sqrt(v) inv_sqrt_bc2 + eps)
cdef inline bint nadam_update(floating *p, const floating *g, floating *m, floating *v,
                              Py_ssize_t n, double b1, double b2, double eps, double c_g,
                              double c_m, double inv_sqrt_bc2,
                              const fm_grad_mod *mod) noexcept nogil:
    if floating is float:
        return fm_nadam_update_f32(p, g, m, v, n, <float>b1, <float>b2, <float>eps, <float>c_g,
                                   <float>c_m, <float>inv_sqrt_bc2, mod)
    else:
        return fm_nadam_update_f64(p, g, m, v, n, b1, b2, eps, c_g, c_m, inv_sqrt_bc2, mod)


# sum x^2 in double
cdef inline double sum_squares(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fm_sum_squares_f32(x, n)
    else:
        return fm_sum_squares_f64(x, n)


# sum (l2/2) x^2 + l1 |x| in double
cdef inline double penalty(const floating *x, Py_ssize_t n, double l1, double l2) noexcept nogil:
    if floating is float:
        return fm_penalty_f32(x, n, l1, l2)
    else:
        return fm_penalty_f64(x, n, l1, l2)


# columns c0..c1-1 of a (rows, ld) matrix: w *= max_norm / |w| where |w| > max_norm
cdef inline void max_norm_columns(floating *w, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t c0,
                                  Py_ssize_t c1, double max_norm) noexcept nogil:
    if floating is float:
        fm_max_norm_columns_f32(w, rows, ld, c0, c1, max_norm)
    else:
        fm_max_norm_columns_f64(w, rows, ld, c0, c1, max_norm)



# ---- batch normalization, PReLU, maxout (csrc/fm_layers_impl.h) --------------------

cdef extern from "fm_kernels.h" nogil:
    void fm_bn_merge_stats(int n_parts, const Py_ssize_t *counts, const double *means,
                           const double *m2s, Py_ssize_t stride, Py_ssize_t cols, double *mean,
                           double *var)
    void fm_sum_parts(int n_parts, const double *parts, Py_ssize_t stride, Py_ssize_t cols,
                      double *out)
    void fm_bn_block_stats_f32(const float *x, Py_ssize_t rows, Py_ssize_t cols, double *mean,
                               double *m2)
    void fm_bn_block_stats_f64(const double *x, Py_ssize_t rows, Py_ssize_t cols, double *mean,
                               double *m2)
    void fm_bn_apply_f32(int act, float alpha, const float *x, const float *center,
                         const float *scale, const float *shift, float *z, float *a,
                         Py_ssize_t rows, Py_ssize_t cols)
    void fm_bn_apply_f64(int act, double alpha, const double *x, const double *center,
                         const double *scale, const double *shift, double *z, double *a,
                         Py_ssize_t rows, Py_ssize_t cols)
    void fm_bn_grad_sums_f32(const float *x, const float *center, const float *inv_std,
                             const float *dy, Py_ssize_t rows, Py_ssize_t cols, double *sum_dy,
                             double *sum_dyx)
    void fm_bn_grad_sums_f64(const double *x, const double *center, const double *inv_std,
                             const double *dy, Py_ssize_t rows, Py_ssize_t cols, double *sum_dy,
                             double *sum_dyx)
    void fm_bn_input_grad_f32(const float *x, const float *center, const float *inv_std,
                              const float *scale, const float *mean_dy, const float *mean_dyx,
                              const float *dy, float *dx, Py_ssize_t rows, Py_ssize_t cols)
    void fm_bn_input_grad_f64(const double *x, const double *center, const double *inv_std,
                              const double *scale, const double *mean_dy,
                              const double *mean_dyx, const double *dy, double *dx,
                              Py_ssize_t rows, Py_ssize_t cols)
    void fm_prelu_forward_f32(const float *x, const float *alpha, float *a, Py_ssize_t rows,
                              Py_ssize_t cols)
    void fm_prelu_forward_f64(const double *x, const double *alpha, double *a, Py_ssize_t rows,
                              Py_ssize_t cols)
    void fm_prelu_input_grad_f32(const float *x, const float *alpha, const float *da, float *dx,
                                 Py_ssize_t rows, Py_ssize_t cols)
    void fm_prelu_input_grad_f64(const double *x, const double *alpha, const double *da,
                                 double *dx, Py_ssize_t rows, Py_ssize_t cols)
    void fm_prelu_alpha_grad_f32(const float *x, const float *da, float *dalpha, Py_ssize_t rows,
                                 Py_ssize_t cols, Py_ssize_t c0, Py_ssize_t c1)
    void fm_prelu_alpha_grad_f64(const double *x, const double *da, double *dalpha,
                                 Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t c0, Py_ssize_t c1)
    void fm_maxout_forward_f32(float *z, const float *b, float *a, Py_ssize_t rows,
                               Py_ssize_t units, Py_ssize_t k)
    void fm_maxout_forward_f64(double *z, const double *b, double *a, Py_ssize_t rows,
                               Py_ssize_t units, Py_ssize_t k)
    void fm_maxout_backward_f32(const float *z, const float *da, float *dz, Py_ssize_t rows,
                                Py_ssize_t units, Py_ssize_t k)
    void fm_maxout_backward_f64(const double *z, const double *da, double *dz, Py_ssize_t rows,
                                Py_ssize_t units, Py_ssize_t k)


# mean[c], m2[c] of a block: exact two-pass, in double
cdef inline void bn_block_stats(const floating *x, Py_ssize_t rows, Py_ssize_t cols,
                                double *mean, double *m2) noexcept nogil:
    if floating is float:
        fm_bn_block_stats_f32(x, rows, cols, mean, m2)
    else:
        fm_bn_block_stats_f64(x, rows, cols, mean, m2)


# z = (x - center) scale + shift;  a = f(z)
cdef inline void bn_apply(int act, double alpha, const floating *x, const floating *center,
                          const floating *scale, const floating *shift, floating *z, floating *a,
                          Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_bn_apply_f32(act, <float>alpha, x, center, scale, shift, z, a, rows, cols)
    else:
        fm_bn_apply_f64(act, alpha, x, center, scale, shift, z, a, rows, cols)


# sum_dy = sum_r dy;  sum_dyx = sum_r dy xhat   (double)
cdef inline void bn_grad_sums(const floating *x, const floating *center, const floating *inv_std,
                              const floating *dy, Py_ssize_t rows, Py_ssize_t cols,
                              double *sum_dy, double *sum_dyx) noexcept nogil:
    if floating is float:
        fm_bn_grad_sums_f32(x, center, inv_std, dy, rows, cols, sum_dy, sum_dyx)
    else:
        fm_bn_grad_sums_f64(x, center, inv_std, dy, rows, cols, sum_dy, sum_dyx)


# dx = scale (dy - mean_dy - xhat mean_dyx)
cdef inline void bn_input_grad(const floating *x, const floating *center,
                               const floating *inv_std, const floating *scale,
                               const floating *mean_dy, const floating *mean_dyx,
                               const floating *dy, floating *dx, Py_ssize_t rows,
                               Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_bn_input_grad_f32(x, center, inv_std, scale, mean_dy, mean_dyx, dy, dx, rows, cols)
    else:
        fm_bn_input_grad_f64(x, center, inv_std, scale, mean_dy, mean_dyx, dy, dx, rows, cols)


# a = x if x > 0 else alpha_c x
cdef inline void prelu_forward(const floating *x, const floating *alpha, floating *a,
                               Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_prelu_forward_f32(x, alpha, a, rows, cols)
    else:
        fm_prelu_forward_f64(x, alpha, a, rows, cols)


# dx = da (1 if x > 0 else alpha_c)
cdef inline void prelu_input_grad(const floating *x, const floating *alpha, const floating *da,
                                  floating *dx, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fm_prelu_input_grad_f32(x, alpha, da, dx, rows, cols)
    else:
        fm_prelu_input_grad_f64(x, alpha, da, dx, rows, cols)


# dalpha[c0:c1] = sum_r da min(x, 0)
cdef inline void prelu_alpha_grad(const floating *x, const floating *da, floating *dalpha,
                                  Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t c0,
                                  Py_ssize_t c1) noexcept nogil:
    if floating is float:
        fm_prelu_alpha_grad_f32(x, da, dalpha, rows, cols, c0, c1)
    else:
        fm_prelu_alpha_grad_f64(x, da, dalpha, rows, cols, c0, c1)


# z += b (b may be NULL);  a[r, u] = max_j z[r, j units + u]
cdef inline void maxout_forward(floating *z, const floating *b, floating *a, Py_ssize_t rows,
                                Py_ssize_t units, Py_ssize_t k) noexcept nogil:
    if floating is float:
        fm_maxout_forward_f32(z, b, a, rows, units, k)
    else:
        fm_maxout_forward_f64(z, b, a, rows, units, k)


# dz[r, j units + u] = da[r, u] at the (first) argmax piece, 0 elsewhere
cdef inline void maxout_backward(const floating *z, const floating *da, floating *dz,
                                 Py_ssize_t rows, Py_ssize_t units, Py_ssize_t k) noexcept nogil:
    if floating is float:
        fm_maxout_backward_f32(z, da, dz, rows, units, k)
    else:
        fm_maxout_backward_f64(z, da, dz, rows, units, k)
