/*
 * Layers with their own computation (type-generic): batch normalization,
 * PReLU and maxout.  Included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and FM_SQRT defined; the
 * double-only helpers at the top are compiled once.
 *
 * Every function works on one row block: a (rows, cols) array, row-major with
 * leading dimension cols (the compiled step calls it on a thread's rows while
 * they are in cache).  Per-feature sums accumulate in double.
 */

#ifndef FM_LAYERS_ONCE
#define FM_LAYERS_ONCE

/*
 * Merge per-block batch statistics in block order (Chan, Golub & LeVeque
 * 1979, pairwise update):  block p holds counts[p] rows with per-feature mean
 * means[p stride + c] and sum of squared deviations m2s[p stride + c].
 *   n_ab = n_a + n_b,  d = mean_b - mean_a
 *   mean_ab = mean_a + d n_b / n_ab,  M2_ab = M2_a + M2_b + d^2 n_a n_b / n_ab
 * Writes the mean and the biased variance M2 / n of all the rows.  Exact
 * two-pass statistics within a block and this merge keep the variance
 * accurate when |mean| >> std (E[x^2] - mean^2 would cancel).  A fixed block
 * order makes the result repeatable for a given number of blocks.
 */
static void fm_bn_merge_stats(int n_parts, const ptrdiff_t *counts, const double *means,
                              const double *m2s, ptrdiff_t stride, ptrdiff_t cols,
                              double *mean, double *var)
{
    double n = 0.0;
    for (ptrdiff_t c = 0; c < cols; c++) { mean[c] = 0.0; var[c] = 0.0; }
    for (int p = 0; p < n_parts; p++) {
        if (counts[p] <= 0) continue;
        double nb = (double)counts[p], nab = n + nb;
        double wb = nb / nab, wc = n * nb / nab;
        const double *pm = means + p * stride, *pm2 = m2s + p * stride;
        for (ptrdiff_t c = 0; c < cols; c++) {
            double d = pm[c] - mean[c];
            mean[c] += d * wb;
            var[c] += pm2[c] + d * d * wc;
        }
        n = nab;
    }
    if (n > 0)
        for (ptrdiff_t c = 0; c < cols; c++) var[c] /= n;
}

/* out[c] = sum_p parts[p stride + c], in part order */
static void fm_sum_parts(int n_parts, const double *parts, ptrdiff_t stride, ptrdiff_t cols,
                         double *out)
{
    for (ptrdiff_t c = 0; c < cols; c++) out[c] = 0.0;
    for (int p = 0; p < n_parts; p++)
        for (ptrdiff_t c = 0; c < cols; c++) out[c] += parts[p * stride + c];
}

#define FM_COLUMN_CHUNK 256  /* double accumulators of a column-share sum, on the stack */

/* Maxout's running maximum m takes piece v when v > m or v is NaN, so the first
 * maximal piece wins ties and a NaN piece makes the unit NaN (a NaN m is never
 * replaced: NaN > x and x > NaN are both false). */
#define FM_MAXOUT_TAKES(v, m) (((v) > (m)) | ((v) != (v)))

#endif /* FM_LAYERS_ONCE */


/* ---- batch normalization (Ioffe & Szegedy 2015) --------------------------- */

/* Exact two-pass statistics of a block:  mean[c] = sum_r x / rows,
 * m2[c] = sum_r (x - mean)^2  (in double; zeros for an empty block). */
static FM_HOT void FM_FN(bn_block_stats)(const FM_T *x, ptrdiff_t rows, ptrdiff_t cols,
                                         double *mean, double *m2)
{
    for (ptrdiff_t c = 0; c < cols; c++) { mean[c] = 0.0; m2[c] = 0.0; }
    if (rows <= 0) return;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++) mean[c] += (double)xr[c];
    }
    double inv = 1.0 / (double)rows;
    for (ptrdiff_t c = 0; c < cols; c++) mean[c] *= inv;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++) {
            double d = (double)xr[c] - mean[c];
            m2[c] += d * d;
        }
    }
}

/* z = (x - center_c) scale_c + shift_c;  a = f(z)   (a may be z)
 * Training: center = batch mean, scale = gamma / sqrt(var + eps), shift = beta;
 * inference: the running mean and variance instead. */
static FM_HOT void FM_FN(bn_apply)(int act, FM_T alpha, const FM_T *x, const FM_T *center,
                                   const FM_T *scale, const FM_T *shift, FM_T *z, FM_T *a,
                                   ptrdiff_t rows, ptrdiff_t cols)
{
    switch (act) {
#define FM_X(code, name, bipolar, default_alpha)                            \
    case code:                                                             \
        for (ptrdiff_t r = 0; r < rows; r++) {                             \
            const FM_T *xr = x + r * cols;                                 \
            FM_T *zr = z + r * cols, *ar = a + r * cols;                   \
            for (ptrdiff_t c = 0; c < cols; c++) {                         \
                FM_T v = (xr[c] - center[c]) * scale[c] + shift[c];        \
                zr[c] = v;                                                 \
                ar[c] = FM_ACTIVATE(name, bipolar, v, c, alpha);           \
            }                                                              \
        }                                                                  \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* Per-feature sums of a block for the backward pass (in double):
 *   sum_dy[c] = sum_r dy,  sum_dyx[c] = sum_r dy xhat,  xhat = (x - center_c) inv_std_c */
static FM_HOT void FM_FN(bn_grad_sums)(const FM_T *x, const FM_T *center, const FM_T *inv_std,
                                       const FM_T *dy, ptrdiff_t rows, ptrdiff_t cols,
                                       double *sum_dy, double *sum_dyx)
{
    for (ptrdiff_t c = 0; c < cols; c++) { sum_dy[c] = 0.0; sum_dyx[c] = 0.0; }
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols, *dr = dy + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T xhat = (xr[c] - center[c]) * inv_std[c];
            sum_dy[c] += (double)dr[c];
            sum_dyx[c] += (double)(dr[c] * xhat);
        }
    }
}

/* dx = scale_c (dy - mean_dy_c - xhat mean_dyx_c),  xhat = (x - center_c) inv_std_c,
 * with scale = gamma / sqrt(var + eps), mean_dy = sum_r dy / n, mean_dyx = sum_r dy xhat / n
 * (the batch-norm input gradient; dx may be dy). */
static FM_HOT void FM_FN(bn_input_grad)(const FM_T *x, const FM_T *center, const FM_T *inv_std,
                                        const FM_T *scale, const FM_T *mean_dy,
                                        const FM_T *mean_dyx, const FM_T *dy, FM_T *dx,
                                        ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols, *dr = dy + r * cols;
        FM_T *out = dx + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T xhat = (xr[c] - center[c]) * inv_std[c];
            out[c] = scale[c] * (dr[c] - mean_dy[c] - xhat * mean_dyx[c]);
        }
    }
}


/* ---- PReLU (He et al. 2015) ------------------------------------------------ */

/* a = x if x > 0 else alpha_c x   (a may be x; NaN stays NaN) */
static FM_HOT void FM_FN(prelu_forward)(const FM_T *x, const FM_T *alpha, FM_T *a,
                                        ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols;
        FM_T *ar = a + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T v = xr[c];
            ar[c] = v > 0 ? v : alpha[c] * v;
        }
    }
}

/* dx = da (1 if x > 0 else alpha_c)   (dx may be da) */
static FM_HOT void FM_FN(prelu_input_grad)(const FM_T *x, const FM_T *alpha, const FM_T *da,
                                           FM_T *dx, ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * cols, *dr = da + r * cols;
        FM_T *out = dx + r * cols;
        for (ptrdiff_t c = 0; c < cols; c++)
            out[c] = dr[c] * (xr[c] > 0 ? (FM_T)1 : alpha[c]);
    }
}

/* dalpha[c] = sum_r da[r, c] min(x[r, c], 0) for c in [c0, c1) (accumulated in
 * double; NaN in x propagates).  A thread takes a share of the columns, so no
 * element is summed by two threads. */
static FM_HOT void FM_FN(prelu_alpha_grad)(const FM_T *x, const FM_T *da, FM_T *dalpha,
                                           ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t c0,
                                           ptrdiff_t c1)
{
    double acc[FM_COLUMN_CHUNK];
    for (ptrdiff_t lo = c0; lo < c1; lo += FM_COLUMN_CHUNK) {
        ptrdiff_t w = c1 - lo < FM_COLUMN_CHUNK ? c1 - lo : FM_COLUMN_CHUNK;
        for (ptrdiff_t j = 0; j < w; j++) acc[j] = 0.0;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const FM_T *xr = x + r * cols + lo, *dr = da + r * cols + lo;
            for (ptrdiff_t j = 0; j < w; j++) {
                FM_T v = xr[j];
                acc[j] += (double)(dr[j] * (v > 0 ? (FM_T)0 : v));
            }
        }
        for (ptrdiff_t j = 0; j < w; j++) dalpha[lo + j] = (FM_T)acc[j];
    }
}


/* ---- maxout (Goodfellow et al. 2013) ---------------------------------------- */

/*
 * A row of a maxout layer's pre-activations holds its k pieces piece-major:
 * piece j of unit u is column j units + u.  Every loop below then runs over
 * contiguous units and vectorizes for any k; the selects are branch-free
 * (comparisons of random data mispredict half the time: a branchy maxout
 * measured 30-70x slower).  Rule of the running maximum: FM_MAXOUT_TAKES.
 */

#define FM_MAXOUT_CHUNK 512  /* units per chunk of the backward pass's stack scratch */

/* a[u] = max_j z[j units + u] */
static inline void FM_FN(maxout_row)(const FM_T *restrict z, FM_T *restrict a, ptrdiff_t units,
                                     ptrdiff_t k)
{
    for (ptrdiff_t u = 0; u < units; u++) a[u] = z[u];
    for (ptrdiff_t j = 1; j < k; j++) {
        const FM_T *zj = z + j * units;
        for (ptrdiff_t u = 0; u < units; u++) {
            FM_T v = zj[u], m = a[u];
            a[u] = FM_MAXOUT_TAKES(v, m) ? v : m;
        }
    }
}

/*
 * z += b  (when b is not NULL: the dense layer's bias, fused here; z is not
 *          written when b is NULL)
 * a[r, u] = max_j z[r, j units + u]
 * The first maximal piece wins ties; a NaN piece makes the unit NaN.  a must
 * not overlap z.
 */
static FM_HOT void FM_FN(maxout_forward)(FM_T *z, const FM_T *b, FM_T *a, ptrdiff_t rows,
                                         ptrdiff_t units, ptrdiff_t k)
{
    ptrdiff_t width = units * k;
    for (ptrdiff_t r = 0; r < rows; r++) {
        FM_T *zr = z + r * width;
        if (b)
            for (ptrdiff_t c = 0; c < width; c++) zr[c] += b[c];
        FM_FN(maxout_row)(zr, a + r * units, units, k);
    }
}

/*
 * dz[r, j units + u] = da[r, u] if piece j is the first to reach unit u's
 * maximum (the forward pass's rule: with a NaN maximum, the first NaN piece),
 * else 0.  The maximum is recomputed from z; g holds the gradient still to be
 * given and drops to 0 once a piece took it.
 */
static FM_HOT void FM_FN(maxout_backward)(const FM_T *z, const FM_T *da, FM_T *dz,
                                          ptrdiff_t rows, ptrdiff_t units, ptrdiff_t k)
{
    FM_T m[FM_MAXOUT_CHUNK], g[FM_MAXOUT_CHUNK];
    ptrdiff_t width = units * k;
    for (ptrdiff_t r = 0; r < rows; r++) {
        for (ptrdiff_t lo = 0; lo < units; lo += FM_MAXOUT_CHUNK) {
            ptrdiff_t w = units - lo < FM_MAXOUT_CHUNK ? units - lo : FM_MAXOUT_CHUNK;
            const FM_T *restrict zr = z + r * width + lo;
            FM_T *restrict gr = dz + r * width + lo;
            for (ptrdiff_t u = 0; u < w; u++) { m[u] = zr[u]; g[u] = da[r * units + lo + u]; }
            for (ptrdiff_t j = 1; j < k; j++)
                for (ptrdiff_t u = 0; u < w; u++) {
                    FM_T v = zr[j * units + u];
                    m[u] = FM_MAXOUT_TAKES(v, m[u]) ? v : m[u];
                }
            for (ptrdiff_t j = 0; j < k; j++)
                for (ptrdiff_t u = 0; u < w; u++) {
                    FM_T v = zr[j * units + u];
                    int hit = (v == m[u]) | (v != v);
                    gr[j * units + u] = hit ? g[u] : (FM_T)0;
                    g[u] = hit ? (FM_T)0 : g[u];
                }
        }
    }
}
