/*
 * Type-generic body of fm_kernels.h: included once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching libm names
 * FM_EXP, FM_LOG, FM_TANH, FM_SQRT defined.  No include guard on purpose.
 *
 * Arrays are row-major and contiguous: a (rows, cols) block has leading
 * dimension cols.  Reductions that feed a loss accumulate in double.
 */

/* ---- activations: scalar value f(z) and derivative f'(z) given a = f(z) ---- */

/* f(z) = z */
static inline FM_T FM_FN(identity)(FM_T z, FM_T alpha) { (void)alpha; return z; }
static inline FM_T FM_FN(identity_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)a; (void)alpha; return (FM_T)1; }

/* f(z) = 1 / (1 + e^-z), evaluated through e^-|z| so it never overflows */
static inline FM_T FM_FN(sigmoid)(FM_T z, FM_T alpha)
{
    (void)alpha;
    FM_T e = FM_EXP(z >= 0 ? -z : z);  /* e^-|z| */
    FM_T s = (FM_T)1 / ((FM_T)1 + e);
    return z >= 0 ? s : e * s;
}
/* f' = a (1 - a) */
static inline FM_T FM_FN(sigmoid_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)alpha; return a * ((FM_T)1 - a); }

/* f(z) = tanh z */
static inline FM_T FM_FN(tanh)(FM_T z, FM_T alpha) { (void)alpha; return FM_TANH(z); }
/* f' = 1 - a^2 */
static inline FM_T FM_FN(tanh_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)alpha; return (FM_T)1 - a * a; }

/* f(z) = max(z, 0); NaN stays NaN (a diverged model must not look healthy) */
static inline FM_T FM_FN(relu)(FM_T z, FM_T alpha) { (void)alpha; return z < 0 ? (FM_T)0 : z; }
/* f' = [z > 0] */
static inline FM_T FM_FN(relu_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; (void)alpha; return z > 0 ? (FM_T)1 : (FM_T)0; }

/* f(z) = z if z > 0 else alpha z */
static inline FM_T FM_FN(leaky_relu)(FM_T z, FM_T alpha) { return z > 0 ? z : alpha * z; }
/* f' = 1 if z > 0 else alpha */
static inline FM_T FM_FN(leaky_relu_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; return z > 0 ? (FM_T)1 : alpha; }


/* ---- activation loops ---------------------------------------------------- */

/* z[r, :] += b;  a[r, :] = f(z[r, :]).  a may be z (pre-activation not kept). */
static FM_HOT void FM_FN(bias_activation)(int act, FM_T alpha, FM_T *z, FM_T *a,
                                          const FM_T *b, ptrdiff_t rows, ptrdiff_t cols)
{
    switch (act) {
#define FM_X(code, name)                                               \
    case code:                                                         \
        for (ptrdiff_t r = 0; r < rows; r++) {                         \
            FM_T *zr = z + r * cols, *ar = a + r * cols;               \
            for (ptrdiff_t c = 0; c < cols; c++) {                     \
                FM_T v = zr[c] + b[c];                                 \
                zr[c] = v;                                             \
                ar[c] = FM_FN(name)(v, alpha);                         \
            }                                                          \
        }                                                              \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* a = f(z) over n contiguous elements (a may be z). */
static FM_HOT void FM_FN(activation_forward)(int act, FM_T alpha, const FM_T *z, FM_T *a,
                                             ptrdiff_t n)
{
    switch (act) {
#define FM_X(code, name)                                               \
    case code:                                                         \
        for (ptrdiff_t i = 0; i < n; i++) a[i] = FM_FN(name)(z[i], alpha); \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* dz = da * f'(z) over n contiguous elements (dz may be da: chain rule in place). */
static FM_HOT void FM_FN(activation_backward)(int act, FM_T alpha, const FM_T *z,
                                              const FM_T *a, const FM_T *da, FM_T *dz,
                                              ptrdiff_t n)
{
    switch (act) {
#define FM_X(code, name)                                                        \
    case code:                                                                  \
        for (ptrdiff_t i = 0; i < n; i++) dz[i] = da[i] * FM_FN(name##_grad)(z[i], a[i], alpha); \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* db[c] = sum_r dz[r, c] for c in [c0, c1); dz has `cols` columns. */
static FM_HOT void FM_FN(column_sums)(const FM_T *dz, FM_T *db, ptrdiff_t rows, ptrdiff_t cols,
                                      ptrdiff_t c0, ptrdiff_t c1)
{
    for (ptrdiff_t c = c0; c < c1; c++) db[c] = 0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *dr = dz + r * cols;
        for (ptrdiff_t c = c0; c < c1; c++) db[c] += dr[c];
    }
}


/* ---- losses on logits: value and gradient in one pass per row ------------- */

/*
 * Softmax cross-entropy with integer labels, rows [0, rows).
 *   m = max_c z_c,  s = sum_c e^(z_c - m)  (in double)
 *   loss_r = log s - (z_y - m)          (= logsumexp(z) - z_y, never overflows)
 *   g_rc   = scale * (e^(z_c - m) / s - [c == y])
 * Returns sum_r w_r loss_r (w = NULL means all ones); the gradient of row r
 * is multiplied by w_r too.  g may alias z.
 */
static FM_HOT double FM_FN(softmax_xent_labels)(const FM_T *z, const int64_t *y, const FM_T *w,
                                                FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                                FM_T scale)
{
    double total = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *zr = z + r * cols;
        FM_T *gr = g + r * cols;
        FM_T m = zr[0];
        for (ptrdiff_t c = 1; c < cols; c++) m = zr[c] > m ? zr[c] : m;
        FM_T zy = zr[y[r]] - m;
        double s = 0.0;
        FM_SIMD_SUM(s)
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T e = FM_EXP(zr[c] - m);
            gr[c] = e;
            s += (double)e;
        }
        FM_T wr = w ? w[r] : (FM_T)1;
        total += (double)wr * (log(s) - (double)zy);
        FM_T k = (FM_T)((double)(scale * wr) / s);
        for (ptrdiff_t c = 0; c < cols; c++) gr[c] *= k;
        gr[y[r]] -= scale * wr;
    }
    return total;
}

/*
 * Softmax cross-entropy with target distributions t (one-hot or soft), rows [0, rows).
 *   loss_r = sum_c t_c (log s - (z_c - m))
 *   g_rc   = scale * (p_c * sum_c t_c - t_c),   p = softmax(z)
 * Returns sum_r w_r loss_r.  g may alias z but not t.
 */
static FM_HOT double FM_FN(softmax_xent_targets)(const FM_T *z, const FM_T *t, const FM_T *w,
                                                 FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                                 FM_T scale)
{
    double total = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *zr = z + r * cols, *tr = t + r * cols;
        FM_T *gr = g + r * cols;
        FM_T m = zr[0];
        for (ptrdiff_t c = 1; c < cols; c++) m = zr[c] > m ? zr[c] : m;
        double s = 0.0, tsum = 0.0, tz = 0.0;
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T d = zr[c] - m;
            tz += (double)tr[c] * (double)d;
            tsum += (double)tr[c];
            FM_T e = FM_EXP(d);
            gr[c] = e;
            s += (double)e;
        }
        FM_T wr = w ? w[r] : (FM_T)1;
        total += (double)wr * (tsum * log(s) - tz);
        FM_T k = (FM_T)((double)(scale * wr) * tsum / s);
        FM_T sw = scale * wr;
        for (ptrdiff_t c = 0; c < cols; c++) gr[c] = gr[c] * k - sw * tr[c];
    }
    return total;
}

/* p = softmax(z) row by row (p may alias z). */
static FM_HOT void FM_FN(softmax)(const FM_T *z, FM_T *p, ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *zr = z + r * cols;
        FM_T *pr = p + r * cols;
        FM_T m = zr[0];
        for (ptrdiff_t c = 1; c < cols; c++) m = zr[c] > m ? zr[c] : m;
        double s = 0.0;
        FM_SIMD_SUM(s)
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T e = FM_EXP(zr[c] - m);
            pr[c] = e;
            s += (double)e;
        }
        FM_T k = (FM_T)(1.0 / s);
        for (ptrdiff_t c = 0; c < cols; c++) pr[c] *= k;
    }
}

/*
 * Squared error, rows [0, rows):  returns sum_r w_r sum_c (z - y)^2,
 * g = scale * w_r * (z - y).  g may alias z.
 */
static FM_HOT double FM_FN(squared_error)(const FM_T *z, const FM_T *y, const FM_T *w, FM_T *g,
                                          ptrdiff_t rows, ptrdiff_t cols, FM_T scale)
{
    double total = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *zr = z + r * cols, *yr = y + r * cols;
        FM_T *gr = g + r * cols;
        FM_T wr = w ? w[r] : (FM_T)1;
        FM_T sw = scale * wr;
        double row = 0.0;
        for (ptrdiff_t c = 0; c < cols; c++) {
            FM_T d = zr[c] - yr[c];
            row += (double)d * (double)d;
            gr[c] = sw * d;
        }
        total += (double)wr * row;
    }
    return total;
}


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
