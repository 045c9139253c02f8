# cython: language_level=3
"""Per-thread blocks of the dense layer, shared by the standalone kernels
(dense.pyx) and the compiled train step (plan.pyx).

Each function does one thread's share of one operation: a single-threaded
GEMM on a block followed by its fused elementwise epilogue, while the block
is still in cache.  Shares are static (thread `tid` of `nt` always gets the
same block), so results are repeatable for a given thread count.
"""
from cython cimport floating
from libc.math cimport sqrt, pow
from fastmlp._kernels._blas cimport gemm
from fastmlp._kernels._cfm cimport (bias_activation, activation_backward, column_sums, block_finite,
                                    maxout_forward)

cdef extern from "fm_fpu.h" nogil:
    # subnormals flushed to zero for the calling thread; returns the state to restore
    unsigned int flush_denormals_begin "fm_flush_denormals_begin" ()
    void flush_denormals_end "fm_flush_denormals_end" (unsigned int saved)


cdef inline Py_ssize_t share_lo(Py_ssize_t n, int tid, int nt) noexcept nogil:
    """First index of thread tid's share of range(n)."""
    return (n * tid) // nt


cdef inline Py_ssize_t chunk_lo(Py_ssize_t n, int tid, int nt) noexcept nogil:
    """Start of thread tid's share of a flat buffer of n elements, rounded down
    to 16 elements (whole cache lines); tid == nt gives n."""
    if tid >= nt:
        return n
    return ((n * tid) // nt) & ~(<Py_ssize_t>15)


cdef inline void adam_scales(double lr, double beta1, double beta2, long step,
                             double *step_size, double *inv_sqrt_bc2) noexcept nogil:
    """Adam's bias corrections for step t: lr / (1 - b1^t) and 1 / sqrt(1 - b2^t)."""
    step_size[0] = lr / (1.0 - pow(beta1, step))
    inv_sqrt_bc2[0] = 1.0 / sqrt(1.0 - pow(beta2, step))


cdef inline double nadam_mu(double beta1, double momentum_decay, long step) noexcept nogil:
    """NAdam's momentum coefficient of step t: mu_t = b1 (1 - 0.96^(t psi) / 2)."""
    return beta1 * (1.0 - 0.5 * pow(0.96, step * momentum_decay))


cdef inline double nadam_scales(double lr, double beta1, double beta2, double momentum_decay,
                                long step, double mu_product, double *c_g, double *c_m,
                                double *inv_sqrt_bc2) noexcept nogil:
    """NAdam's per-step factors (PyTorch's formulation) from mu_product =
    prod_{i<t} mu_i; returns prod_{i<=t} mu_i:
    c_g = lr (1 - mu_t) / (1 - prod_{i<=t} mu_i),
    c_m = lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i), inv_sqrt_bc2 = 1 / sqrt(1 - b2^t)."""
    cdef double mu = nadam_mu(beta1, momentum_decay, step)
    cdef double mu_next = nadam_mu(beta1, momentum_decay, step + 1)
    mu_product = mu_product * mu
    c_g[0] = lr * (1.0 - mu) / (1.0 - mu_product)
    c_m[0] = lr * mu_next / (1.0 - mu_product * mu_next)
    inv_sqrt_bc2[0] = 1.0 / sqrt(1.0 - pow(beta2, step))
    return mu_product


cdef inline void dense_forward_rows(const floating *x, const floating *w, const floating *b,
                                    floating *z, floating *a, Py_ssize_t r0, Py_ssize_t r1,
                                    int n_in, int n_out, int act,
                                    double alpha) noexcept nogil:
    """z[r0:r1] = x[r0:r1] W + b;  a[r0:r1] = f(z[r0:r1])   (a may be z)."""
    gemm(False, False, <int>(r1 - r0), n_out, n_in, <floating>1, x + r0 * n_in, n_in,
         w, n_out, <floating>0, z + r0 * n_out, n_out)
    bias_activation(act, alpha, z + r0 * n_out, a + r0 * n_out, b, r1 - r0, n_out)


cdef inline void dense_forward_columns(const floating *x, const floating *w, floating *z,
                                       Py_ssize_t rows, Py_ssize_t c0, Py_ssize_t c1,
                                       int n_in, int n_out) noexcept nogil:
    """z[:, c0:c1] = x W[:, c0:c1] over all rows (no bias or activation)."""
    gemm(False, False, <int>rows, <int>(c1 - c0), n_in, <floating>1, x, n_in, w + c0, n_out,
         <floating>0, z + c0, n_out)


cdef inline void dense_forward_inner(const floating *x, const floating *w, floating *z,
                                     Py_ssize_t rows, Py_ssize_t k0, Py_ssize_t k1,
                                     int n_in, int n_out) noexcept nogil:
    """z = x[:, k0:k1] W[k0:k1, :] over all rows: one thread's partial product
    when the GEMM is split along its inner dimension (no bias or activation)."""
    gemm(False, False, <int>rows, n_out, <int>(k1 - k0), <floating>1, x + k0, n_in,
         w + k0 * n_out, n_out, <floating>0, z, n_out)


cdef inline bint dense_param_grad_share(const floating *x, const floating *dz, floating *dw,
                                        floating *db, Py_ssize_t rows, int n_in, int n_out,
                                        int tid, int nt) noexcept nogil:
    """Thread tid's share of dW = x^T dz and db = sum_rows dz; returns whether
    the share is finite (checked while it is in cache).

    dW is split along its longer side (rows = input units, or columns = output
    units), so each element is one full dot product over the batch and no
    cross-thread reduction is needed; db is split by columns.
    """
    cdef Py_ssize_t lo, hi
    cdef bint finite
    if n_in >= n_out:
        lo = share_lo(n_in, tid, nt)
        hi = share_lo(n_in, tid + 1, nt)
        # dW[lo:hi, :] = x[:, lo:hi]^T dz
        gemm(True, False, <int>(hi - lo), n_out, <int>rows, <floating>1, x + lo, n_in,
             dz, n_out, <floating>0, dw + lo * n_out, n_out)
        finite = block_finite(dw + lo * n_out, hi - lo, n_out, 0, n_out)
    else:
        lo = share_lo(n_out, tid, nt)
        hi = share_lo(n_out, tid + 1, nt)
        # dW[:, lo:hi] = x^T dz[:, lo:hi]
        gemm(True, False, n_in, <int>(hi - lo), <int>rows, <floating>1, x, n_in,
             dz + lo, n_out, <floating>0, dw + lo, n_out)
        finite = block_finite(dw, n_in, n_out, lo, hi)
    lo = share_lo(n_out, tid, nt)
    hi = share_lo(n_out, tid + 1, nt)
    column_sums(dz, db, rows, n_out, lo, hi)
    return finite and block_finite(db, 1, n_out, lo, hi)


cdef inline void dense_input_grad_rows(const floating *dz, const floating *w, floating *dx,
                                       Py_ssize_t r0, Py_ssize_t r1, int n_in,
                                       int n_out) noexcept nogil:
    """dx[r0:r1] = dz[r0:r1] W^T."""
    gemm(False, True, <int>(r1 - r0), n_in, n_out, <floating>1, dz + r0 * n_out, n_out,
         w, n_out, <floating>0, dx + r0 * n_in, n_in)


cdef inline void dense_input_grad_columns(const floating *dz, const floating *w, floating *dx,
                                          Py_ssize_t rows, Py_ssize_t c0, Py_ssize_t c1,
                                          int n_in, int n_out) noexcept nogil:
    """dx[:, c0:c1] = dz W[c0:c1, :]^T over all rows."""
    gemm(False, True, <int>rows, <int>(c1 - c0), n_out, <floating>1, dz, n_out,
         w + c0 * n_out, n_out, <floating>0, dx + c0, n_in)


cdef inline void activation_backward_rows(const floating *z, const floating *a, floating *d,
                                          Py_ssize_t r0, Py_ssize_t r1, int cols, int act,
                                          double alpha) noexcept nogil:
    """d[r0:r1] *= f'(z[r0:r1])  (chain rule through the activation, in place)."""
    activation_backward(act, alpha, z + r0 * cols, a + r0 * cols, d + r0 * cols,
                        d + r0 * cols, r1 - r0, cols)


cdef inline void maxout_forward_rows(const floating *x, const floating *w, const floating *b,
                                     floating *z, floating *a, Py_ssize_t r0, Py_ssize_t r1,
                                     int n_in, int units, int k) noexcept nogil:
    """z[r0:r1] = x[r0:r1] W + b  (units k pieces per row);
    a[r0:r1, u] = max_j z[r0:r1, j units + u]  (bias and max in one pass)."""
    gemm(False, False, <int>(r1 - r0), units * k, n_in, <floating>1, x + r0 * n_in, n_in,
         w, units * k, <floating>0, z + r0 * units * k, units * k)
    maxout_forward(z + r0 * units * k, b, a + r0 * units, r1 - r0, units, k)
