/*
 * Activations (type-generic): included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching math names
 * FM_EXP, FM_LOG, FM_TANH, FM_SQRT, FM_EXPM1, FM_LOG1P, FM_ATAN, FM_ASINH,
 * FM_ERFC and the threshold FM_BIG defined.  No include guard on purpose.
 *
 * Every activation is finite with a finite derivative for any finite z whose
 * f(z) is representable (no z^2 or z^3 that overflows: such terms are
 * evaluated on z clamped to +-FM_BIG, past which the result no longer changes
 * in FM_T, or rewritten) and maps NaN to NaN (a diverged model must not look
 * healthy).
 *
 * Arrays are row-major and contiguous: a (rows, cols) block has leading
 * dimension cols.  Reductions that feed a loss accumulate in double.
 */

/* ---- activations: scalar value f(z) and derivative f'(z) given a = f(z) ---- */

/* f(z) = z */
FM_INLINE FM_T FM_FN(identity)(FM_T z, FM_T alpha) { (void)alpha; return z; }
FM_INLINE FM_T FM_FN(identity_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)a; (void)alpha; return (FM_T)1; }

/* f(z) = 1 / (1 + e^-z), evaluated through e^-|z| so it never overflows */
FM_INLINE FM_T FM_FN(sigmoid)(FM_T z, FM_T alpha)
{
    (void)alpha;
    FM_T e = FM_EXP(z >= 0 ? -z : z);  /* e^-|z| */
    FM_T s = (FM_T)1 / ((FM_T)1 + e);
    return z >= 0 ? s : e * s;
}
/* f' = a (1 - a) */
FM_INLINE FM_T FM_FN(sigmoid_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)alpha; return a * ((FM_T)1 - a); }

/* f(z) = tanh z */
FM_INLINE FM_T FM_FN(tanh)(FM_T z, FM_T alpha) { (void)alpha; return FM_TANH(z); }
/* f' = 1 - a^2 */
FM_INLINE FM_T FM_FN(tanh_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)alpha; return (FM_T)1 - a * a; }

/* f(z) = max(z, 0); NaN stays NaN (a diverged model must not look healthy) */
FM_INLINE FM_T FM_FN(relu)(FM_T z, FM_T alpha) { (void)alpha; return z < 0 ? (FM_T)0 : z; }
/* f' = [z > 0] */
FM_INLINE FM_T FM_FN(relu_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; (void)alpha; return z > 0 ? (FM_T)1 : (FM_T)0; }

/* f(z) = z if z > 0 else alpha z */
FM_INLINE FM_T FM_FN(leaky_relu)(FM_T z, FM_T alpha) { return z > 0 ? z : alpha * z; }
/* f' = 1 if z > 0 else alpha */
FM_INLINE FM_T FM_FN(leaky_relu_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; return z > 0 ? (FM_T)1 : alpha; }

/* f(z) = 1 if z >= 0 else 0 (Heaviside; the perceptron of Rosenblatt 1958) */
FM_INLINE FM_T FM_FN(binary_step)(FM_T z, FM_T alpha)
{ (void)alpha; return z >= 0 ? (FM_T)1 : (z < 0 ? (FM_T)0 : z); }
/* f' = 0 (almost everywhere; no gradient flows through a step) */
FM_INLINE FM_T FM_FN(binary_step_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)z; (void)a; (void)alpha; return (FM_T)0; }

/* f(z) = z if z > 0 else alpha (e^z - 1)   (Clevert et al. 2016) */
FM_INLINE FM_T FM_FN(elu)(FM_T z, FM_T alpha)
{ return z > 0 ? z : alpha * FM_EXPM1(z > 0 ? (FM_T)0 : z); }
/* f' = 1 if z > 0 else alpha e^z  (from z: a + alpha cancels where e^z is small) */
FM_INLINE FM_T FM_FN(elu_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; return z > 0 ? (FM_T)1 : alpha * FM_EXP(z > 0 ? (FM_T)0 : z); }

/* f(z) = lambda (z if z > 0 else alpha (e^z - 1)) with the fixed point constants of
 * Klambauer et al. 2017: alpha = 1.6732632423543772, lambda = 1.0507009873554805 */
#define FM_SELU_ALPHA ((FM_T)1.6732632423543772848170429916717)
#define FM_SELU_LAMBDA ((FM_T)1.0507009873554804934193349852946)
FM_INLINE FM_T FM_FN(selu)(FM_T z, FM_T alpha)
{
    (void)alpha;
    return FM_SELU_LAMBDA * (z > 0 ? z : FM_SELU_ALPHA * FM_EXPM1(z > 0 ? (FM_T)0 : z));
}
/* f' = lambda if z > 0 else lambda alpha e^z */
FM_INLINE FM_T FM_FN(selu_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    return z > 0 ? FM_SELU_LAMBDA
                 : FM_SELU_LAMBDA * FM_SELU_ALPHA * FM_EXP(z > 0 ? (FM_T)0 : z);
}
#undef FM_SELU_ALPHA
#undef FM_SELU_LAMBDA

/* f(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|)   (never overflows) */
FM_INLINE FM_T FM_FN(softplus)(FM_T z, FM_T alpha)
{
    (void)alpha;
    FM_T e = FM_EXP(z >= 0 ? -z : z);  /* e^-|z| */
    return (z > 0 ? z : (FM_T)0) + FM_LOG1P(e);
}
/* f' = sigmoid(z) */
FM_INLINE FM_T FM_FN(softplus_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; return FM_FN(sigmoid)(z, alpha); }

/* f(z) = z / (1 + |z|) */
FM_INLINE FM_T FM_FN(softsign)(FM_T z, FM_T alpha)
{ (void)alpha; return z / ((FM_T)1 + (z < 0 ? -z : z)); }
/* f' = 1 / (1 + |z|)^2 */
FM_INLINE FM_T FM_FN(softsign_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    FM_T d = (FM_T)1 + (z < 0 ? -z : z);
    return (FM_T)1 / (d * d);
}

/* f(z) = arctan z */
FM_INLINE FM_T FM_FN(arctan)(FM_T z, FM_T alpha) { (void)alpha; return FM_ATAN(z); }
/* f' = 1 / (1 + z^2) */
FM_INLINE FM_T FM_FN(arctan_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; (void)alpha; return (FM_T)1 / ((FM_T)1 + z * z); }

/* f(z) = asinh z = log(z + sqrt(z^2 + 1)) */
FM_INLINE FM_T FM_FN(asinh)(FM_T z, FM_T alpha) { (void)alpha; return FM_ASINH(z); }
/* f' = 1 / sqrt(1 + z^2)  (= 1/|z| to rounding past FM_BIG) */
FM_INLINE FM_T FM_FN(asinh_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    FM_T t = z < 0 ? -z : z;
    FM_T tc = t > FM_BIG ? FM_BIG : t;
    return t > FM_BIG ? (FM_T)1 / t : (FM_T)1 / FM_SQRT((FM_T)1 + tc * tc);
}

/* 1 / sqrt(1 + alpha z^2) = q / s with q = 1 / max(|z|, 1), s = sqrt(q^2 + alpha (z q)^2):
 * scaled so that alpha z^2 cannot overflow (alpha > 0); z q is exactly sign(z) for |z| > 1.
 * Returns 1/s and sets *q, *zq. */
FM_INLINE FM_T FM_FN(isr_scaled)(FM_T z, FM_T alpha, FM_T *q, FM_T *zq)
{
    FM_T t = z < 0 ? -z : z;
    *q = (FM_T)1 / (t > 1 ? t : (FM_T)1);
    *zq = t > 1 ? (z < 0 ? (FM_T)-1 : (FM_T)1) : z;
    return (FM_T)1 / FM_SQRT(*q * *q + alpha * *zq * *zq);
}

/* z / sqrt(1 + alpha z^2) */
FM_INLINE FM_T FM_FN(isr_value)(FM_T z, FM_T alpha)
{
    FM_T q, zq, rs = FM_FN(isr_scaled)(z, alpha, &q, &zq);
    return zq * rs;
}

/* (1 / sqrt(1 + alpha z^2))^3 */
FM_INLINE FM_T FM_FN(isr_cubed)(FM_T z, FM_T alpha)
{
    FM_T q, zq, rs = FM_FN(isr_scaled)(z, alpha, &q, &zq);
    FM_T r = q * rs;
    return r * r * r;
}

/* f(z) = z / sqrt(1 + alpha z^2)   (inverse square root unit, Carlile et al. 2017) */
FM_INLINE FM_T FM_FN(isru)(FM_T z, FM_T alpha) { return FM_FN(isr_value)(z, alpha); }
/* f' = (1 / sqrt(1 + alpha z^2))^3 */
FM_INLINE FM_T FM_FN(isru_grad)(FM_T z, FM_T a, FM_T alpha)
{ (void)a; return FM_FN(isr_cubed)(z, alpha); }

/* f(z) = z if z >= 0 else z / sqrt(1 + alpha z^2)   (ISRLU, Carlile et al. 2017).
 * Both sides are computed and one selected: a branch here keeps GCC from
 * vectorizing the loop. */
FM_INLINE FM_T FM_FN(isrlu)(FM_T z, FM_T alpha)
{
    FM_T negative = FM_FN(isr_value)(z, alpha);
    return z >= 0 ? z : negative;
}
/* f' = 1 if z >= 0 else (1 / sqrt(1 + alpha z^2))^3 */
FM_INLINE FM_T FM_FN(isrlu_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a;
    FM_T negative = FM_FN(isr_cubed)(z, alpha);
    return z >= 0 ? (FM_T)1 : negative;
}

/* f(z) = 1 if z > 2; z - z^2/4 if 0 <= z <= 2; z + z^2/4 if -2 <= z < 0; -1 if z < -2
 * (square nonlinearity, Wuraola & Patel 2018), i.e. z - z|z|/4 on [-2, 2] */
FM_INLINE FM_T FM_FN(sqnl)(FM_T z, FM_T alpha)
{
    (void)alpha;
    FM_T t = z < 0 ? -z : z;
    return z > 2 ? (FM_T)1 : (z < -2 ? (FM_T)-1 : z - (FM_T)0.25 * z * t);
}
/* f' = 1 - |z|/2 on [-2, 2], 0 outside */
FM_INLINE FM_T FM_FN(sqnl_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    FM_T t = z < 0 ? -z : z;
    return t > 2 ? (FM_T)0 : (FM_T)1 - (FM_T)0.5 * t;
}

/* f(z) = (sqrt(z^2 + 1) - 1) / 2 + z, with sqrt(z^2 + 1) - 1 = z^2 / (sqrt(z^2 + 1) + 1)
 * (no cancellation near 0) and = |z| - 1 to rounding past FM_BIG */
FM_INLINE FM_T FM_FN(bent_identity)(FM_T z, FM_T alpha)
{
    (void)alpha;
    FM_T t = z < 0 ? -z : z;
    FM_T tc = t > FM_BIG ? FM_BIG : t;
    FM_T bend = t > FM_BIG ? t - (FM_T)1 : tc * tc / (FM_SQRT(tc * tc + (FM_T)1) + (FM_T)1);
    return (FM_T)0.5 * bend + z;
}
/* f' = z / (2 sqrt(z^2 + 1)) + 1 */
FM_INLINE FM_T FM_FN(bent_identity_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    FM_T zc = z > FM_BIG ? FM_BIG : (z < -FM_BIG ? -FM_BIG : z);
    return zc / ((FM_T)2 * FM_SQRT(zc * zc + (FM_T)1)) + (FM_T)1;
}

/* f(z) = z Phi~(z), Phi~(z) = (1 + tanh(u)) / 2 = sigmoid(2u),
 * u = sqrt(2/pi) (z + 0.044715 z^3)   (GELU, tanh approximation; Hendrycks & Gimpel 2016).
 * The sigmoid form has no cancellation in 1 + tanh(u) for z < 0. */
#define FM_GELU_C2 ((FM_T)1.5957691216057307117597842397375)  /* 2 sqrt(2/pi) */
#define FM_GELU_K ((FM_T)0.044715)
FM_INLINE FM_T FM_FN(gelu)(FM_T z, FM_T alpha)
{
    FM_T zc = z > FM_BIG ? FM_BIG : (z < -FM_BIG ? -FM_BIG : z);
    return z * FM_FN(sigmoid)(FM_GELU_C2 * (zc + FM_GELU_K * zc * zc * zc), alpha);
}
/* f' = s + z s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 z^2),  s = sigmoid(2u) */
FM_INLINE FM_T FM_FN(gelu_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a;
    FM_T zc = z > FM_BIG ? FM_BIG : (z < -FM_BIG ? -FM_BIG : z);
    FM_T z2 = zc * zc;
    FM_T s = FM_FN(sigmoid)(FM_GELU_C2 * (zc + FM_GELU_K * z2 * zc), alpha);
    return s + zc * s * ((FM_T)1 - s) * FM_GELU_C2 * ((FM_T)1 + (FM_T)3 * FM_GELU_K * z2);
}
#undef FM_GELU_C2
#undef FM_GELU_K

/* f(z) = z Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2 the standard normal CDF
 * (GELU, exact form; Hendrycks & Gimpel 2016).  erfc rather than 1 + erf: no
 * cancellation for z < 0. */
#define FM_RSQRT2 ((FM_T)0.70710678118654752440084436210485)
#define FM_RSQRT2PI ((FM_T)0.39894228040143267793994605993438)
FM_INLINE FM_T FM_FN(gelu_exact)(FM_T z, FM_T alpha)
{
    (void)alpha;
    return z * ((FM_T)0.5 * FM_ERFC(-FM_RSQRT2 * z));
}
/* f' = Phi(z) + z phi(z),  phi(z) = e^(-z^2/2) / sqrt(2 pi) */
FM_INLINE FM_T FM_FN(gelu_exact_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a; (void)alpha;
    FM_T zc = z > FM_BIG ? FM_BIG : (z < -FM_BIG ? -FM_BIG : z);
    return (FM_T)0.5 * FM_ERFC(-FM_RSQRT2 * zc)
           + zc * FM_RSQRT2PI * FM_EXP((FM_T)-0.5 * zc * zc);
}
#undef FM_RSQRT2
#undef FM_RSQRT2PI

/* f(z) = z sigmoid(beta z), beta = alpha   (SiLU, Hendrycks & Gimpel 2016, Elfwing et
 * al. 2018; swish, Ramachandran et al. 2017, where beta = 1 is the usual choice) */
FM_INLINE FM_T FM_FN(silu)(FM_T z, FM_T alpha) { return z * FM_FN(sigmoid)(alpha * z, 0); }
/* f' = s (1 + beta z (1 - s)),  s = sigmoid(beta z) */
FM_INLINE FM_T FM_FN(silu_grad)(FM_T z, FM_T a, FM_T alpha)
{
    (void)a;
    FM_T s = FM_FN(sigmoid)(alpha * z, 0);
    return s * ((FM_T)1 + alpha * z * ((FM_T)1 - s));
}

/* Bipolar ReLU (Eidnes & Noekland 2017): f(z) = max(z, 0) on even units and
 * -max(-z, 0) = min(z, 0) on odd ones.  Below is the even-unit form; the loops
 * apply -f(-z) to odd units (FM_ACTIVATIONS marks it bipolar). */
FM_INLINE FM_T FM_FN(brelu)(FM_T z, FM_T alpha) { return FM_FN(relu)(z, alpha); }
/* f' = [z > 0] (even units), [z < 0] (odd units) */
FM_INLINE FM_T FM_FN(brelu_grad)(FM_T z, FM_T a, FM_T alpha)
{ return FM_FN(relu_grad)(z, a, alpha); }


/* ---- activation loops ---------------------------------------------------- */

/* Bipolar activations go through FM_ACTIVATE and FM_SIGN_OF_COLUMN (fm_kernels.h). */

/* z[r, :] += b;  a[r, :] = f(z[r, :]).  a may be z (pre-activation not kept). */
static FM_HOT void FM_FN(bias_activation)(int act, FM_T alpha, FM_T *z, FM_T *a,
                                          const FM_T *b, ptrdiff_t rows, ptrdiff_t cols)
{
    switch (act) {
#define FM_X(code, name, bipolar, default_alpha)                        \
    case code:                                                          \
        for (ptrdiff_t r = 0; r < rows; r++) {                          \
            FM_T *zr = z + r * cols, *ar = a + r * cols;                \
            for (ptrdiff_t c = 0; c < cols; c++) {                      \
                FM_T v = zr[c] + b[c];                                  \
                zr[c] = v;                                              \
                ar[c] = FM_ACTIVATE(name, bipolar, v, c, alpha);        \
            }                                                           \
        }                                                               \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* a = f(z) on a (rows, cols) block (a may be z). */
static FM_HOT void FM_FN(activation_forward)(int act, FM_T alpha, const FM_T *z, FM_T *a,
                                             ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t n = rows * cols;
    switch (act) {
#define FM_X(code, name, bipolar, default_alpha)                        \
    case code:                                                          \
        if (bipolar) {                                                  \
            for (ptrdiff_t r = 0; r < rows; r++) {                      \
                const FM_T *zr = z + r * cols;                          \
                FM_T *ar = a + r * cols;                                \
                for (ptrdiff_t c = 0; c < cols; c++)                    \
                    ar[c] = FM_ACTIVATE(name, 1, zr[c], c, alpha);      \
            }                                                           \
        } else {                                                        \
            for (ptrdiff_t i = 0; i < n; i++) a[i] = FM_FN(name)(z[i], alpha); \
        }                                                               \
        break;
        FM_ACTIVATIONS(FM_X)
#undef FM_X
    default: break;
    }
}

/* dz = da * f'(z) on a (rows, cols) block (dz may be da: chain rule in place). */
static FM_HOT void FM_FN(activation_backward)(int act, FM_T alpha, const FM_T *z,
                                              const FM_T *a, const FM_T *da, FM_T *dz,
                                              ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t n = rows * cols;
    switch (act) {
#define FM_X(code, name, bipolar, default_alpha)                                  \
    case code:                                                                    \
        if (bipolar) {                                                            \
            for (ptrdiff_t r = 0; r < rows; r++) {                                \
                const FM_T *zr = z + r * cols, *ar = a + r * cols, *dar = da + r * cols; \
                FM_T *dzr = dz + r * cols;                                        \
                for (ptrdiff_t c = 0; c < cols; c++) {                            \
                    FM_T s = FM_SIGN_OF_COLUMN(c);                                \
                    dzr[c] = dar[c] * FM_FN(name##_grad)(s * zr[c], s * ar[c], alpha); \
                }                                                                 \
            }                                                                     \
        } else {                                                                  \
            for (ptrdiff_t i = 0; i < n; i++)                                     \
                dz[i] = da[i] * FM_FN(name##_grad)(z[i], a[i], alpha);            \
        }                                                                         \
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


/* y[i] += x[i] for i in [0, n) (partial products summed in a fixed order). */
static FM_HOT void FM_FN(add_to)(FM_T *y, const FM_T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] += x[i];
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
