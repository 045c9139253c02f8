/*
 * Finiteness checks and optimizer updates (type-generic): included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching math names
 * FM_EXP, FM_LOG, FM_TANH, FM_SQRT defined.  No include guard on purpose.
 *
 * Arrays are row-major and contiguous: a (rows, cols) block has leading
 * dimension cols.  Reductions that feed a loss accumulate in double.
 */

/* ---- finiteness ------------------------------------------------------------ */

/* 1 if x[r, c0:c1] is finite for every row r < rows of a (rows, ld) block, else 0.
 * x - x is 0 for finite x and NaN for inf or NaN, and the sum stays NaN. */
static FM_HOT int FM_FN(block_finite)(const FM_T *x, ptrdiff_t rows, ptrdiff_t ld,
                                      ptrdiff_t c0, ptrdiff_t c1)
{
    FM_T acc = 0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * ld;
        FM_SIMD_SUM(acc)
        for (ptrdiff_t c = c0; c < c1; c++) acc += xr[c] - xr[c];
    }
    return acc == 0;
}


/* ---- optimizer updates: read and write each parameter once ---------------- */
/* Each returns 1 if every updated parameter is finite, else 0 (fused check). */

/*
 * SGD, PyTorch convention (no dampening):
 *   momentum == 0:  p -= lr g
 *   otherwise:      v = mu v + g;  p -= lr v        (nesterov: p -= lr (g + mu v))
 */
static FM_HOT int FM_FN(sgd_update)(FM_T *p, const FM_T *g, FM_T *v, ptrdiff_t n,
                                    FM_T lr, FM_T mu, int nesterov)
{
    FM_T acc = 0;
    if (mu == 0) {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T pi = p[i] - lr * g[i];
            p[i] = pi;
            acc += pi - pi;
        }
    } else if (nesterov) {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T vi = mu * v[i] + g[i];
            FM_T pi = p[i] - lr * (g[i] + mu * vi);
            v[i] = vi;
            p[i] = pi;
            acc += pi - pi;
        }
    } else {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T vi = mu * v[i] + g[i];
            FM_T pi = p[i] - lr * vi;
            v[i] = vi;
            p[i] = pi;
            acc += pi - pi;
        }
    }
    return acc == 0;
}

/*
 * Adam (Kingma & Ba 2015, Alg. 1) with eps outside the square root, as PyTorch:
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * where step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t).
 */
static FM_HOT int FM_FN(adam_update)(FM_T *p, const FM_T *g, FM_T *m, FM_T *v, ptrdiff_t n,
                                     FM_T b1, FM_T b2, FM_T eps, FM_T step_size,
                                     FM_T inv_sqrt_bc2)
{
    FM_T c1 = (FM_T)1 - b1, c2 = (FM_T)1 - b2, acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T gi = g[i];
        FM_T mi = b1 * m[i] + c1 * gi;
        FM_T vi = b2 * v[i] + c2 * gi * gi;
        FM_T pi = p[i] - step_size * mi / (FM_SQRT(vi) * inv_sqrt_bc2 + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        acc += pi - pi;
    }
    return acc == 0;
}
