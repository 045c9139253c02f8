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


/* ---- the gradient an update uses ------------------------------------------- */

#ifndef FM_GRAD_MOD_DEFINED
#define FM_GRAD_MOD_DEFINED
/*
 * What an update does to the loss gradient g before using it, element by element:
 *     g' = clamp(scale g, -clip, clip) + l2 p + l1 sign(p)
 * `scale` is the global-norm clipping factor (min(1, c / ||g||), computed over
 * the whole gradient before any update), `clip` the clip-by-value bound (inf:
 * none), and l1, l2 the coefficients of the penalty l1 |p|_1 + l2/2 |p|^2
 * (0 outside weight matrices: biases are not penalized).  A NULL modifier
 * means g' = g and selects loops without this arithmetic.
 */
typedef struct fm_grad_mod {
    double scale, clip, l1, l2;
} fm_grad_mod;

/* Inline into every clone of the caller, so the constant `has_mod` flag of a
 * loop helper selects its specialized loop at compile time. */
#if defined(__GNUC__)
#define FM_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FM_ALWAYS_INLINE static inline
#endif

/* Loop helpers take the modifier's fields as locals (FM_MOD_ARGS) and read the
 * gradient through FM_GRAD(i); `has_mod` is a literal at each call site. */
#define FM_MOD_ARGS FM_T mod_scale, FM_T mod_clip, FM_T mod_l1, FM_T mod_l2, const int has_mod
#define FM_MOD_PASS(mod) (FM_T)(mod)->scale, (FM_T)(mod)->clip, (FM_T)(mod)->l1, (FM_T)(mod)->l2
#define FM_NO_MOD (FM_T)1, (FM_T)INFINITY, (FM_T)0, (FM_T)0
#define FM_GRAD(i) (has_mod ? FM_FN(modified_grad)(g[i], p[i], mod_scale, mod_clip, mod_l1, mod_l2) \
                            : g[i])
/* Each public update: the specialized loop with or without a modifier. */
#define FM_DISPATCH_MOD(loop, ...) \
    ((mod) != NULL ? loop(__VA_ARGS__, FM_MOD_PASS(mod), 1) : loop(__VA_ARGS__, FM_NO_MOD, 0))
#endif

/* g' = clamp(scale g, -clip, clip) + l2 p + l1 sign(p)   (sign(0) = 0) */
FM_ALWAYS_INLINE FM_T FM_FN(modified_grad)(FM_T g, FM_T p, FM_T scale, FM_T clip, FM_T l1,
                                           FM_T l2)
{
    FM_T c = scale * g;
    c = c > clip ? clip : (c < -clip ? -clip : c);
    FM_T sign = (FM_T)(p > 0) - (FM_T)(p < 0);
    return c + l2 * p + l1 * sign;
}


/* ---- optimizer updates: read and write each parameter once ---------------- */
/* Each returns 1 if every updated parameter is finite, else 0 (fused check). */

/*
 * SGD, PyTorch convention (no dampening):
 *   momentum == 0:  p -= lr g
 *   otherwise:      v = mu v + g;  p -= lr v        (nesterov: p -= lr (g + mu v))
 */
FM_ALWAYS_INLINE int FM_FN(sgd_loop)(FM_T *p, const FM_T *g, FM_T *v, ptrdiff_t n, FM_T lr,
                                     FM_T mu, int nesterov, FM_MOD_ARGS)
{
    FM_T acc = 0;
    if (mu == 0) {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T pi = p[i] - lr * FM_GRAD(i);
            p[i] = pi;
            acc += pi - pi;
        }
    } else if (nesterov) {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T gi = FM_GRAD(i);
            FM_T vi = mu * v[i] + gi;
            FM_T pi = p[i] - lr * (gi + mu * vi);
            v[i] = vi;
            p[i] = pi;
            acc += pi - pi;
        }
    } else {
        FM_SIMD_SUM(acc)
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T vi = mu * v[i] + FM_GRAD(i);
            FM_T pi = p[i] - lr * vi;
            v[i] = vi;
            p[i] = pi;
            acc += pi - pi;
        }
    }
    return acc == 0;
}

static FM_HOT int FM_FN(sgd_update)(FM_T *p, const FM_T *g, FM_T *v, ptrdiff_t n,
                                    FM_T lr, FM_T mu, int nesterov, const fm_grad_mod *mod)
{
    return FM_DISPATCH_MOD(FM_FN(sgd_loop), p, g, v, n, lr, mu, nesterov);
}

/*
 * Adam (Kingma & Ba 2015, Alg. 1) with eps outside the square root, as PyTorch,
 * and AdamW's decoupled weight decay (Loshchilov & Hutter 2019) as a factor:
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p = decay p - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * where step_size = lr / (1 - b1^t), inv_sqrt_bc2 = 1 / sqrt(1 - b2^t) and
 * decay = 1 - lr wd (1 for Adam).
 */
FM_ALWAYS_INLINE int FM_FN(adam_loop)(FM_T *p, const FM_T *g, FM_T *m, FM_T *v, ptrdiff_t n,
                                      FM_T b1, FM_T b2, FM_T eps, FM_T step_size,
                                      FM_T inv_sqrt_bc2, FM_T decay, FM_MOD_ARGS)
{
    FM_T c1 = (FM_T)1 - b1, c2 = (FM_T)1 - b2, acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T gi = FM_GRAD(i);
        FM_T mi = b1 * m[i] + c1 * gi;
        FM_T vi = b2 * v[i] + c2 * gi * gi;
        FM_T pi = decay * p[i] - step_size * mi / (FM_SQRT(vi) * inv_sqrt_bc2 + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        acc += pi - pi;
    }
    return acc == 0;
}

static FM_HOT int FM_FN(adam_update)(FM_T *p, const FM_T *g, FM_T *m, FM_T *v, ptrdiff_t n,
                                     FM_T b1, FM_T b2, FM_T eps, FM_T step_size,
                                     FM_T inv_sqrt_bc2, FM_T decay, const fm_grad_mod *mod)
{
    return FM_DISPATCH_MOD(FM_FN(adam_loop), p, g, m, v, n, b1, b2, eps, step_size, inv_sqrt_bc2,
                           decay);
}

/*
 * Adagrad (Duchi, Hazan & Singer 2011), as PyTorch:
 *   s += g^2;   p -= lr g / (sqrt(s) + eps)
 */
FM_ALWAYS_INLINE int FM_FN(adagrad_loop)(FM_T *p, const FM_T *g, FM_T *s, ptrdiff_t n, FM_T lr,
                                         FM_T eps, FM_MOD_ARGS)
{
    FM_T acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T gi = FM_GRAD(i);
        FM_T si = s[i] + gi * gi;
        FM_T pi = p[i] - lr * gi / (FM_SQRT(si) + eps);
        s[i] = si;
        p[i] = pi;
        acc += pi - pi;
    }
    return acc == 0;
}

static FM_HOT int FM_FN(adagrad_update)(FM_T *p, const FM_T *g, FM_T *s, ptrdiff_t n, FM_T lr,
                                        FM_T eps, const fm_grad_mod *mod)
{
    return FM_DISPATCH_MOD(FM_FN(adagrad_loop), p, g, s, n, lr, eps);
}

/*
 * RMSprop (Tieleman & Hinton 2012, lecture 6e), as PyTorch:
 *   s = rho s + (1 - rho) g^2
 *   centered:  a = rho a + (1 - rho) g;  d = sqrt(max(s - a^2, 0)) + eps
 *   otherwise: d = sqrt(s) + eps
 *   momentum:  b = mu b + g / d;  p -= lr b
 *   otherwise: p -= lr g / d
 * `centered` and `momentum` are literals at each call, one loop per variant.
 */
FM_ALWAYS_INLINE int FM_FN(rmsprop_loop)(FM_T *p, const FM_T *g, FM_T *s, FM_T *b, FM_T *a,
                                         ptrdiff_t n, FM_T lr, FM_T rho, FM_T eps, FM_T mu,
                                         const int centered, const int momentum, FM_MOD_ARGS)
{
    FM_T c = (FM_T)1 - rho, acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T gi = FM_GRAD(i);
        FM_T si = rho * s[i] + c * gi * gi;
        FM_T d, pi;
        s[i] = si;
        if (centered) {
            FM_T ai = rho * a[i] + c * gi;
            FM_T var = si - ai * ai;
            a[i] = ai;
            d = FM_SQRT(var > 0 ? var : (FM_T)0) + eps;
        } else {
            d = FM_SQRT(si) + eps;
        }
        if (momentum) {
            FM_T bi = mu * b[i] + gi / d;
            b[i] = bi;
            pi = p[i] - lr * bi;
        } else {
            pi = p[i] - lr * gi / d;
        }
        p[i] = pi;
        acc += pi - pi;
    }
    return acc == 0;
}

/* b is NULL when mu == 0, a is NULL unless centered */
static FM_HOT int FM_FN(rmsprop_update)(FM_T *p, const FM_T *g, FM_T *s, FM_T *b, FM_T *a,
                                        ptrdiff_t n, FM_T lr, FM_T rho, FM_T eps, FM_T mu,
                                        const fm_grad_mod *mod)
{
    if (a != NULL && mu != 0)
        return FM_DISPATCH_MOD(FM_FN(rmsprop_loop), p, g, s, b, a, n, lr, rho, eps, mu, 1, 1);
    if (a != NULL)
        return FM_DISPATCH_MOD(FM_FN(rmsprop_loop), p, g, s, b, a, n, lr, rho, eps, mu, 1, 0);
    if (mu != 0)
        return FM_DISPATCH_MOD(FM_FN(rmsprop_loop), p, g, s, b, a, n, lr, rho, eps, mu, 0, 1);
    return FM_DISPATCH_MOD(FM_FN(rmsprop_loop), p, g, s, b, a, n, lr, rho, eps, mu, 0, 0);
}

/*
 * NAdam (Dozat 2016) in PyTorch's formulation, with the momentum schedule
 * mu_t = b1 (1 - 0.96^(t psi) / 2) (psi: momentum decay):
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= (c_g g + c_m m) / (sqrt(v) * inv_sqrt_bc2 + eps)
 * where c_g = lr (1 - mu_t) / (1 - prod_{i<=t} mu_i) and
 *       c_m = lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i).
 */
FM_ALWAYS_INLINE int FM_FN(nadam_loop)(FM_T *p, const FM_T *g, FM_T *m, FM_T *v, ptrdiff_t n,
                                       FM_T b1, FM_T b2, FM_T eps, FM_T c_g, FM_T c_m,
                                       FM_T inv_sqrt_bc2, FM_MOD_ARGS)
{
    FM_T c1 = (FM_T)1 - b1, c2 = (FM_T)1 - b2, acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T gi = FM_GRAD(i);
        FM_T mi = b1 * m[i] + c1 * gi;
        FM_T vi = b2 * v[i] + c2 * gi * gi;
        FM_T pi = p[i] - (c_g * gi + c_m * mi) / (FM_SQRT(vi) * inv_sqrt_bc2 + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        acc += pi - pi;
    }
    return acc == 0;
}

static FM_HOT int FM_FN(nadam_update)(FM_T *p, const FM_T *g, FM_T *m, FM_T *v, ptrdiff_t n,
                                      FM_T b1, FM_T b2, FM_T eps, FM_T c_g, FM_T c_m,
                                      FM_T inv_sqrt_bc2, const fm_grad_mod *mod)
{
    return FM_DISPATCH_MOD(FM_FN(nadam_loop), p, g, m, v, n, b1, b2, eps, c_g, c_m, inv_sqrt_bc2);
}


/* ---- reductions and constraints around the update --------------------------- */

/* sum_i x_i^2, accumulated in double (global-norm gradient clipping). */
static FM_HOT double FM_FN(sum_squares)(const FM_T *x, ptrdiff_t n)
{
    double acc = 0;
    FM_SIMD_SUM(acc)
    for (ptrdiff_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];
    return acc;
}

/* sum_i (l2/2) x_i^2 + l1 |x_i|, accumulated in double (the weight penalty). */
static FM_HOT double FM_FN(penalty)(const FM_T *x, ptrdiff_t n, double l1, double l2)
{
    double sq = 0, ab = 0;
    FM_SIMD_SUM(sq)
    for (ptrdiff_t i = 0; i < n; i++) sq += (double)x[i] * (double)x[i];
    if (l1 != 0) {
        FM_SIMD_SUM(ab)
        for (ptrdiff_t i = 0; i < n; i++) ab += fabs((double)x[i]);
    }
    return 0.5 * l2 * sq + l1 * ab;
}

/*
 * Max-norm constraint (Srivastava et al. 2014, sec. 5.1) on columns c0..c1-1 of
 * a row-major (rows, ld) weight matrix: each column is one unit's incoming
 * weight vector w, and w *= c / |w| where |w| > c.
 * Columns go in blocks whose squared norms fit in a stack buffer.
 */
#ifndef FM_MAX_NORM_BLOCK
#define FM_MAX_NORM_BLOCK 256
#endif
static FM_HOT void FM_FN(max_norm_columns)(FM_T *w, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t c0,
                                           ptrdiff_t c1, double max_norm)
{
    double sq[FM_MAX_NORM_BLOCK];
    FM_T scale[FM_MAX_NORM_BLOCK];
    for (ptrdiff_t b0 = c0; b0 < c1; b0 += FM_MAX_NORM_BLOCK) {
        ptrdiff_t nb = c1 - b0 < FM_MAX_NORM_BLOCK ? c1 - b0 : FM_MAX_NORM_BLOCK;
        int any = 0;
        for (ptrdiff_t j = 0; j < nb; j++) sq[j] = 0;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const FM_T *wr = w + r * ld + b0;
            for (ptrdiff_t j = 0; j < nb; j++) sq[j] += (double)wr[j] * (double)wr[j];
        }
        for (ptrdiff_t j = 0; j < nb; j++) {
            double norm = sqrt(sq[j]);
            scale[j] = norm > max_norm ? (FM_T)(max_norm / norm) : (FM_T)1;
            any |= norm > max_norm;
        }
        if (!any) continue;
        for (ptrdiff_t r = 0; r < rows; r++) {
            FM_T *wr = w + r * ld + b0;
            for (ptrdiff_t j = 0; j < nb; j++) wr[j] *= scale[j];
        }
    }
}
