/*
 * Losses (type-generic): included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching math names
 * FM_EXP, FM_LOG, FM_TANH, FM_SQRT defined.  No include guard on purpose.
 *
 * Arrays are row-major and contiguous: a (rows, cols) block has leading
 * dimension cols.  Reductions that feed a loss accumulate in double.
 *
 * Every loss (FM_LOSSES in fm_kernels.h) has a row kernel with one signature:
 *
 *   double fm_<name>_rows_<T>(z, y, t, w, g, rows, cols, scale, param)
 *     z      (rows, cols) the last layer's output              IN
 *     y      (rows,) int64 class labels, or NULL                IN
 *     t      (rows, cols) targets, or NULL                      IN
 *     w      (rows,) sample weights, or NULL for all ones        IN
 *     g      (rows, cols) gradient; may alias z (not t)         OUT
 *     scale  factor of the gradient: 1 / (the mean's divisor)
 *     param  the loss's parameter (huber's delta, mape's epsilon)
 *   returns sum_r w_r loss_r, where loss_r sums the row's k outputs, and
 *   writes g_rc = scale w_r d loss_r / d z_rc.
 *
 * fm_loss_rows_<T> dispatches on the loss code; the caller divides the sum by
 * n (a loss per sample) or n k (per output, see fm_loss_per_output).
 */

/* Each row kernel is compiled per instruction set (FM_HOT), with its helpers
 * (and the fm_math.h functions they call) inlined into every clone.  One
 * clone holding all the losses grew too big for GCC's inliner: it called
 * fm_expf out of line, or outlined a whole loss for baseline x86-64, and ran
 * 3-10x slower. */
#ifndef FM_LOSS_INLINE
#if defined(__GNUC__)
#define FM_LOSS_INLINE static inline __attribute__((always_inline))
#else
#define FM_LOSS_INLINE static inline
#endif
#endif

/* log(1 + x) for x in [-0.3, 1], branch-free so the loops that call it vectorize
 * (libm's log1p is a scalar call).  log(1 + x) = 2 atanh(s), s = x / (2 + x) in
 * [-0.18, 1/3], with atanh(s) = s sum_i s^(2i) / (2i + 1) cut after m terms: the
 * relative remainder is below (1/9)^m / (2m + 1) / (1 - 1/9), 2e-9 for float
 * (m = 8) and 2e-17 for double (m = 16).  Accurate for tiny x too (s ~ x / 2). */
FM_LOSS_INLINE FM_T FM_FN(log1p_unit)(FM_T x)
{
    FM_T s = x / ((FM_T)2 + x), s2 = s * s, p;
#define FM_H(c) p = p * s2 + (FM_T)(1.0 / (c));
    if (sizeof(FM_T) == sizeof(float)) {
        p = (FM_T)(1.0 / 15);
        FM_H(13) FM_H(11) FM_H(9) FM_H(7) FM_H(5) FM_H(3) FM_H(1)
    } else {
        p = (FM_T)(1.0 / 31);
        FM_H(29) FM_H(27) FM_H(25) FM_H(23) FM_H(21) FM_H(19) FM_H(17)
        FM_H(15) FM_H(13) FM_H(11) FM_H(9) FM_H(7) FM_H(5) FM_H(3) FM_H(1)
    }
#undef FM_H
    return (FM_T)2 * s * p;
}

/* log(x) for finite x > 0 (subnormals flushed), branch-free: x = m 2^k with m
 * in [sqrt(1/2), sqrt(2)) taken from the bits, log x = k ln2 + log1p(m - 1)
 * (m - 1 in [-0.3, 0.42], where log1p_unit's series converges faster still). */
FM_LOSS_INLINE FM_T FM_FN(log_pos)(FM_T x)
{
    if (sizeof(FM_T) == sizeof(float)) {
        float xf = (float)x, m;
        int32_t bits, k;
        memcpy(&bits, &xf, sizeof bits);
        bits -= 0x3f3504f3;                              /* bits of sqrt(1/2) */
        k = bits >> 23;                                  /* arithmetic shift */
        bits = (bits & 0x007fffff) + 0x3f3504f3;
        memcpy(&m, &bits, sizeof m);
        return (FM_T)((float)k * 0.693147180559945309f + (float)FM_FN(log1p_unit)((FM_T)(m - 1.0f)));
    } else {
        double xd = (double)x, m;
        int64_t bits, k;
        memcpy(&bits, &xd, sizeof bits);
        bits -= 0x3fe6a09e667f3bcdLL;
        k = bits >> 52;
        bits = (bits & 0x000fffffffffffffLL) + 0x3fe6a09e667f3bcdLL;
        memcpy(&m, &bits, sizeof m);
        return (FM_T)((double)k * 0.693147180559945309 + (double)FM_FN(log1p_unit)((FM_T)(m - 1.0)));
    }
}

/* ---- losses per sample (mean over the n samples) ------------------------- */

/* The softmax losses work on groups of rows: per row, the max m is subtracted
 * (g = z - m, with what the loss needs of z - m kept); then e^g is taken over
 * the whole group in one flat loop, which vectorizes however few classes a row
 * has (at 10 classes a loop per row runs mostly in its scalar remainder: 3x
 * slower); then per row, s = sum e^g and the gradient.  A group holds about
 * FM_GROUP_ELEMENTS entries, so it stays in L1 between the passes. */
#define FM_GROUP_ELEMENTS 2048
#define FM_GROUP_ROWS 256

FM_LOSS_INLINE ptrdiff_t FM_FN(group_rows)(ptrdiff_t cols)
{
    ptrdiff_t n = FM_GROUP_ELEMENTS / cols;
    return n < 1 ? 1 : (n > FM_GROUP_ROWS ? FM_GROUP_ROWS : n);
}

/* g = z - max_c z_c on one row (g may alias z) */
FM_LOSS_INLINE void FM_FN(shift_by_max)(const FM_T *zr, FM_T *gr, ptrdiff_t cols)
{
    FM_T m = zr[0];
    if (cols >= 64) {  /* vectorized (a NaN may be skipped here, but not below) */
        FM_PRAGMA(omp simd reduction(max:m))
        for (ptrdiff_t c = 1; c < cols; c++) m = zr[c] > m ? zr[c] : m;
    } else {           /* too short for vectors: the plain loop is faster */
        for (ptrdiff_t c = 1; c < cols; c++) m = zr[c] > m ? zr[c] : m;
    }
    for (ptrdiff_t c = 0; c < cols; c++) gr[c] = zr[c] - m;
}

/* g = e^g on the nr rows of a group, and sums[i] = sum_c e^g_ic in double.
 * Rows that fill vectors take one fused pass each; narrower ones one flat
 * exponential pass over the group, then a sum per row. */
FM_LOSS_INLINE void FM_FN(exp_rows)(FM_T *g, ptrdiff_t nr, ptrdiff_t cols, double *sums)
{
    if (cols >= 64) {
        for (ptrdiff_t i = 0; i < nr; i++) {
            FM_T *gr = g + i * cols;
            double s = 0.0;
            FM_SIMD_SUM(s)
            for (ptrdiff_t c = 0; c < cols; c++) {
                FM_T e = FM_EXP(gr[c]);
                gr[c] = e;
                s += (double)e;
            }
            sums[i] = s;
        }
        return;
    }
    const ptrdiff_t n = nr * cols;
    for (ptrdiff_t j = 0; j < n; j++) g[j] = FM_EXP(g[j]);
    for (ptrdiff_t i = 0; i < nr; i++) {
        const FM_T *gr = g + i * cols;
        double s = 0.0;
        FM_SIMD_SUM(s)
        for (ptrdiff_t c = 0; c < cols; c++) s += (double)gr[c];
        sums[i] = s;
    }
}

/* out[i] = sum_c t_ic log t_ic (0 log 0 = 0) for the nr rows of a group
 * (FM_GROUP_ELEMENTS entries at most when cols < 64): narrow rows go through
 * one flat vectorized pass into scratch first. */
FM_LOSS_INLINE void FM_FN(entropy_rows)(const FM_T *t, ptrdiff_t nr, ptrdiff_t cols, double *out)
{
    if (cols < 64) {
        FM_T tl[FM_GROUP_ELEMENTS];
        const ptrdiff_t n = nr * cols;
        for (ptrdiff_t j = 0; j < n; j++) tl[j] = t[j] > 0 ? t[j] * FM_FN(log_pos)(t[j]) : (FM_T)0;
        for (ptrdiff_t i = 0; i < nr; i++) {
            double s = 0.0;
            for (ptrdiff_t c = 0; c < cols; c++) s += (double)tl[i * cols + c];
            out[i] = s;
        }
        return;
    }
    for (ptrdiff_t i = 0; i < nr; i++) {
        const FM_T *tr = t + i * cols;
        double s = 0.0;
        FM_SIMD_SUM(s)
        for (ptrdiff_t c = 0; c < cols; c++)
            s += tr[c] > 0 ? (double)tr[c] * (double)FM_FN(log_pos)(tr[c]) : 0.0;
        out[i] = s;
    }
}

/*
 * Softmax cross-entropy on logits with integer labels.
 *   m = max_c z_c,  s = sum_c e^(z_c - m)  (in double)
 *   loss_r = log s - (z_y - m)          (= logsumexp(z) - z_y, never overflows)
 *   g_rc   = scale * w_r (e^(z_c - m) / s - [c == y])
 */
FM_LOSS_INLINE double FM_FN(softmax_xent_labels)(const FM_T *z, const int64_t *y, const FM_T *w,
                                                FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                                FM_T scale)
{
    double total = 0.0;
    FM_T zy[FM_GROUP_ROWS];                 /* z_y - m per row of the group */
    double sums[FM_GROUP_ROWS];
    const ptrdiff_t group = FM_FN(group_rows)(cols);
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += group) {
        ptrdiff_t nr = rows - r0 < group ? rows - r0 : group;
        for (ptrdiff_t i = 0; i < nr; i++) {
            ptrdiff_t r = r0 + i;
            FM_FN(shift_by_max)(z + r * cols, g + r * cols, cols);
            zy[i] = g[r * cols + y[r]];
        }
        FM_FN(exp_rows)(g + r0 * cols, nr, cols, sums);
        for (ptrdiff_t i = 0; i < nr; i++) {
            ptrdiff_t r = r0 + i;
            FM_T *gr = g + r * cols;
            double s = sums[i];
            FM_T wr = w ? w[r] : (FM_T)1;
            total += (double)wr * (log(s) - (double)zy[i]);
            FM_T k = (FM_T)((double)(scale * wr) / s);
            for (ptrdiff_t c = 0; c < cols; c++) gr[c] *= k;
            gr[y[r]] -= scale * wr;
        }
    }
    return total;
}

/*
 * Softmax cross-entropy on logits with target distributions t (one-hot or soft).
 *   loss_r = sum_c t_c (log s - (z_c - m))
 *   g_rc   = scale * w_r (p_c sum_c t_c - t_c),   p = softmax(z)
 * With negent != 0, sum_c t_c log t_c (0 log 0 = 0) is added to loss_r: the
 * Kullback-Leibler divergence KL(t || p) = sum_c t_c (log t_c - log p_c),
 * whose gradient is the same.  t must not alias g.
 */
FM_LOSS_INLINE double FM_FN(softmax_xent_targets)(const FM_T *z, const FM_T *t, const FM_T *w,
                                                 FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                                 FM_T scale, int negent)
{
    double total = 0.0;
    double part[FM_GROUP_ROWS], tsums[FM_GROUP_ROWS];  /* per row: tlogt - tz, sum t */
    double sums[FM_GROUP_ROWS];
    const ptrdiff_t group = FM_FN(group_rows)(cols);
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += group) {
        ptrdiff_t nr = rows - r0 < group ? rows - r0 : group;
        if (negent)
            FM_FN(entropy_rows)(t + r0 * cols, nr, cols, part);
        for (ptrdiff_t i = 0; i < nr; i++) {
            ptrdiff_t r = r0 + i;
            const FM_T *tr = t + r * cols;
            FM_T *gr = g + r * cols;
            FM_FN(shift_by_max)(z + r * cols, gr, cols);
            double tsum = 0.0, tz = 0.0;
            FM_PRAGMA(omp simd reduction(+:tsum, tz))
            for (ptrdiff_t c = 0; c < cols; c++) {
                tz += (double)tr[c] * (double)gr[c];
                tsum += (double)tr[c];
            }
            part[i] = (negent ? part[i] : 0.0) - tz;
            tsums[i] = tsum;
        }
        FM_FN(exp_rows)(g + r0 * cols, nr, cols, sums);
        for (ptrdiff_t i = 0; i < nr; i++) {
            ptrdiff_t r = r0 + i;
            const FM_T *tr = t + r * cols;
            FM_T *gr = g + r * cols;
            double s = sums[i];
            FM_T wr = w ? w[r] : (FM_T)1;
            total += (double)wr * (part[i] + tsums[i] * log(s));
            FM_T k = (FM_T)((double)(scale * wr) * tsums[i] / s);
            FM_T sw = scale * wr;
            for (ptrdiff_t c = 0; c < cols; c++) gr[c] = gr[c] * k - sw * tr[c];
        }
    }
    return total;
}

/* softmax cross-entropy: labels when y is given, else targets t */
static FM_HOT double FM_FN(softmax_cross_entropy_rows)(const FM_T *z, const int64_t *y,
                                                       const FM_T *t, const FM_T *w, FM_T *g,
                                                       ptrdiff_t rows, ptrdiff_t cols,
                                                       FM_T scale, FM_T param)
{
    (void)param;
    if (y) return FM_FN(softmax_xent_labels)(z, y, w, g, rows, cols, scale);
    return FM_FN(softmax_xent_targets)(z, t, w, g, rows, cols, scale, 0);
}

/* KL(t || softmax(z)) on logits, targets t >= 0 (see softmax_xent_targets) */
static FM_HOT double FM_FN(kl_divergence_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                               const FM_T *w, FM_T *g, ptrdiff_t rows,
                                               ptrdiff_t cols, FM_T scale, FM_T param)
{
    (void)y; (void)param;
    return FM_FN(softmax_xent_targets)(z, t, w, g, rows, cols, scale, 1);
}

/*
 * Multi-class hinge, Crammer and Singer (2001): integer labels y, k >= 2.
 *   j = argmax_{c != y} z_c (the first one on ties)
 *   loss_r = max(0, 1 + z_j - z_y)
 *   g_r    = scale * w_r (e_j - e_y) when 1 + z_j - z_y > 0, else 0
 * A NaN or infinite score makes the row's loss NaN (the comparisons above
 * would otherwise skip it).
 */
static FM_HOT double FM_FN(hinge_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                       const FM_T *w, FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                       FM_T scale, FM_T param)
{
    (void)t; (void)param;
    double total = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T *zr = z + r * cols;
        FM_T *gr = g + r * cols;
        ptrdiff_t yr = (ptrdiff_t)y[r], j = yr == 0 ? 1 : 0;
        FM_T best = zr[j];
        double bad = 0.0;  /* 0, or NaN when a score is not finite */
        for (ptrdiff_t c = 0; c < cols; c++) {
            bad += (double)(zr[c] - zr[c]);
            if (c != yr && zr[c] > best) {
                best = zr[c];
                j = c;
            }
        }
        FM_T margin = (FM_T)1 + best - zr[yr];
        FM_T wr = w ? w[r] : (FM_T)1;
        for (ptrdiff_t c = 0; c < cols; c++) gr[c] = 0;
        if (margin > 0) {
            total += (double)wr * (double)margin;
            gr[j] = scale * wr;
            gr[yr] = -scale * wr;
        }
        total += bad;
    }
    return total;
}

/* ---- losses per output (mean over the n k entries) ----------------------- */

/* Loop skeleton of the elementwise losses: for each entry, `body` reads
 * zc, tc and sw (= scale * w_r) and sets the double `value` and the FM_T `grad`.
 * Without weights the block is one flat loop: rows are often shorter than a
 * vector (10 classes), and a loop over them would run mostly in its scalar
 * remainder. */
#define FM_ELEMENTWISE_LOSS(body)                                              \
    double total = 0.0;                                                        \
    if (!w) {                                                                  \
        const FM_T sw = scale;                                                 \
        const ptrdiff_t n = rows * cols;                                       \
        FM_SIMD_SUM(total)                                                     \
        for (ptrdiff_t i = 0; i < n; i++) {                                    \
            FM_T zc = z[i], tc = t[i], grad;                                   \
            double value;                                                      \
            body                                                               \
            total += value;                                                    \
            g[i] = grad;                                                       \
        }                                                                      \
        return total;                                                          \
    }                                                                          \
    for (ptrdiff_t r = 0; r < rows; r++) {                                     \
        const FM_T *zr = z + r * cols, *tr = t + r * cols;                     \
        FM_T *gr = g + r * cols;                                               \
        FM_T wr = w[r];                                                        \
        FM_T sw = scale * wr;                                                  \
        double row = 0.0;                                                      \
        FM_SIMD_SUM(row)                                                       \
        for (ptrdiff_t c = 0; c < cols; c++) {                                 \
            FM_T zc = zr[c], tc = tr[c], grad;                                 \
            double value;                                                      \
            body                                                               \
            row += value;                                                      \
            gr[c] = grad;                                                      \
        }                                                                      \
        total += (double)wr * row;                                             \
    }                                                                          \
    return total;

/* squared error, 1/2 convention: loss = (z - t)^2 / 2, g = sw (z - t) */
static FM_HOT double FM_FN(mse_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                     const FM_T *w, FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                     FM_T scale, FM_T param)
{
    (void)y; (void)param;
    FM_ELEMENTWISE_LOSS(
        FM_T d = zc - tc;
        value = (double)((FM_T)0.5 * d * d);
        grad = sw * d;
    )
}

/* absolute error: loss = |z - t|, g = sw sign(z - t) (0 at z = t) */
static FM_HOT double FM_FN(mae_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                     const FM_T *w, FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                     FM_T scale, FM_T param)
{
    (void)y; (void)param;
    FM_ELEMENTWISE_LOSS(
        FM_T d = zc - tc;
        value = (double)(d < 0 ? -d : d);
        grad = d > 0 ? sw : (d < 0 ? -sw : (FM_T)0);
    )
}

/* absolute percentage error with epsilon = param > 0:
 *   loss = 100 |z - t| / max(|t|, epsilon),  g = sw 100 sign(z - t) / max(|t|, epsilon) */
static FM_HOT double FM_FN(mape_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                      const FM_T *w, FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                      FM_T scale, FM_T param)
{
    (void)y;
    FM_ELEMENTWISE_LOSS(
        FM_T d = zc - tc;
        FM_T at = tc < 0 ? -tc : tc;
        FM_T q = (FM_T)100 / (at > param ? at : param);
        value = (double)((d < 0 ? -d : d) * q);
        grad = d > 0 ? sw * q : (d < 0 ? -sw * q : (FM_T)0);
    )
}

/* Huber (1964) with delta = param > 0, d = z - t:
 *   loss = d^2 / 2 if |d| <= delta else delta (|d| - delta / 2)
 *   g    = sw clip(d, -delta, delta) */
static FM_HOT double FM_FN(huber_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                       const FM_T *w, FM_T *g, ptrdiff_t rows, ptrdiff_t cols,
                                       FM_T scale, FM_T param)
{
    (void)y;
    FM_ELEMENTWISE_LOSS(
        FM_T d = zc - tc;
        FM_T ad = d < 0 ? -d : d;
        value = (double)(ad <= param ? (FM_T)0.5 * d * d : param * (ad - (FM_T)0.5 * param));
        grad = sw * (d > param ? param : (d < -param ? -param : d));
    )
}

/* Binary cross-entropy on logits, targets t in [0, 1] (each output its own sigmoid):
 *   loss = log(1 + e^z) - t z = max(z, 0) - t z + log1p(e^-|z|)
 *   g    = sw (sigmoid(z) - t)
 * Only e^-|z| <= 1 is ever formed, so no input overflows; the exact part
 * max(z, 0) - t z is summed apart from the log1p term, which keeps tiny
 * losses of confident, correct outputs. */
static FM_HOT double FM_FN(binary_cross_entropy_rows)(const FM_T *z, const int64_t *y,
                                                      const FM_T *t, const FM_T *w, FM_T *g,
                                                      ptrdiff_t rows, ptrdiff_t cols,
                                                      FM_T scale, FM_T param)
{
    (void)y; (void)param;
    FM_ELEMENTWISE_LOSS(
        FM_T e = FM_EXP(zc < 0 ? zc : -zc);             /* e^-|z| */
        FM_T s = (FM_T)1 / ((FM_T)1 + e);
        FM_T p = zc >= 0 ? s : e * s;                   /* sigmoid(z) */
        value = (double)((zc > 0 ? zc : (FM_T)0) - tc * zc) + (double)FM_FN(log1p_unit)(e);
        grad = sw * (p - tc);
    )
}

/* Poisson negative log-likelihood on the log-rate z, counts t >= 0 (PyTorch's
 * PoissonNLLLoss(log_input=True, full=False)):
 *   loss = e^z - t z   (log t! dropped: it does not depend on z),  g = sw (e^z - t)
 * e^z overflows (inf loss) for z above ~88 in float32, ~709 in float64. */
static FM_HOT double FM_FN(poisson_rows)(const FM_T *z, const int64_t *y, const FM_T *t,
                                         const FM_T *w, FM_T *g, ptrdiff_t rows,
                                         ptrdiff_t cols, FM_T scale, FM_T param)
{
    (void)y; (void)param;
    FM_ELEMENTWISE_LOSS(
        FM_T e = FM_EXP(zc);
        value = (double)(e - tc * zc);
        grad = sw * (e - tc);
    )
}

#undef FM_ELEMENTWISE_LOSS

/* ---- dispatch ------------------------------------------------------------ */

/* The row kernel of loss `kind` (see the top of this file); NaN for an unknown kind. */
static double FM_FN(loss_rows)(int kind, FM_T param, const FM_T *z, const int64_t *y,
                                      const FM_T *t, const FM_T *w, FM_T *g, ptrdiff_t rows,
                                      ptrdiff_t cols, FM_T scale)
{
    switch (kind) {
#define FM_X(code, name, per_output, y_kinds)                                          \
    case code: return FM_FN(name##_rows)(z, y, t, w, g, rows, cols, scale, param);
        FM_LOSSES(FM_X)
#undef FM_X
    default: return NAN;
    }
}

/* p = softmax(z) row by row (p may alias z), in groups of rows as the losses. */
static FM_HOT void FM_FN(softmax)(const FM_T *z, FM_T *p, ptrdiff_t rows, ptrdiff_t cols)
{
    double sums[FM_GROUP_ROWS];
    const ptrdiff_t group = FM_FN(group_rows)(cols);
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += group) {
        ptrdiff_t nr = rows - r0 < group ? rows - r0 : group;
        for (ptrdiff_t r = r0; r < r0 + nr; r++) FM_FN(shift_by_max)(z + r * cols, p + r * cols, cols);
        FM_FN(exp_rows)(p + r0 * cols, nr, cols, sums);
        for (ptrdiff_t i = 0; i < nr; i++) {
            FM_T *pr = p + (r0 + i) * cols;
            FM_T k = (FM_T)(1.0 / sums[i]);
            for (ptrdiff_t c = 0; c < cols; c++) pr[c] *= k;
        }
    }
}

/* What predict() returns for loss `kind` given the last layer's output z (out
 * may alias z): softmax probabilities for softmax_cross_entropy and
 * kl_divergence, sigmoid probabilities for binary_cross_entropy, the rate e^z
 * for poisson, z itself otherwise. */
static FM_HOT void FM_FN(loss_output)(int kind, const FM_T *z, FM_T *out, ptrdiff_t rows,
                                      ptrdiff_t cols)
{
    ptrdiff_t n = rows * cols;
    switch (kind) {
    case FM_LOSS_softmax_cross_entropy:
    case FM_LOSS_kl_divergence:
        FM_FN(softmax)(z, out, rows, cols);
        break;
    case FM_LOSS_binary_cross_entropy:
        for (ptrdiff_t i = 0; i < n; i++) out[i] = FM_FN(sigmoid)(z[i], (FM_T)0);
        break;
    case FM_LOSS_poisson:
        for (ptrdiff_t i = 0; i < n; i++) out[i] = FM_EXP(z[i]);
        break;
    default:
        if (out != z)
            for (ptrdiff_t i = 0; i < n; i++) out[i] = z[i];
        break;
    }
}
