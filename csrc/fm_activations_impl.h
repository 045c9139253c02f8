/*
 * Activations (type-generic): included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching math names
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


/* ---- dropout --------------------------------------------------------------- */

/* out[r, :] = in[r, :] * keep(r, c) * scale for rows [r0, r1) of a (., cols) array
 * (in may be out: the backward pass applies the same mask to the gradient). */
static FM_HOT void FM_FN(dropout_rows)(const FM_T *in, FM_T *out, ptrdiff_t r0, ptrdiff_t r1,
                                       ptrdiff_t cols, uint32_t k0, uint32_t k1,
                                       uint32_t threshold, FM_T scale)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const FM_T *ir = in + r * cols;
        FM_T *orow = out + r * cols;
        uint32_t base = (uint32_t)(r * cols);
        for (ptrdiff_t c = 0; c < cols; c++) {
            uint32_t u = fm_hash32(fm_hash32((base + (uint32_t)c) ^ k0) + k1);
            orow[c] = u >= threshold ? ir[c] * scale : (FM_T)0;
        }
    }
}
