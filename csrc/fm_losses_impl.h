/*
 * Losses (type-generic): included by fm_kernels.h once per floating type with
 * FM_T (float or double), FM_SUF (f32 or f64) and the matching math names
 * FM_EXP, FM_LOG, FM_TANH, FM_SQRT defined.  No include guard on purpose.
 *
 * Arrays are row-major and contiguous: a (rows, cols) block has leading
 * dimension cols.  Reductions that feed a loss accumulate in double.
 */

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
