/*
 * Vectorizable float32 elementary functions.
 *
 * libm's expf/tanhf/logf/... are scalar calls, which stop GCC from vectorizing
 * a loop (measured here: a native tanh forward 16-60x slower than NumPy's SIMD
 * one).  These are branch-free (selects only) and inline, so loops that call
 * them vectorize at whatever width the function-multi-versioned clone targets.
 * Accuracy is the largest error seen against the float64 libm result rounded
 * to float32, in ULP of that result, over the stated range (tests/test_math.py
 * measures it on a dense grid of each range):
 *
 * fm_expf: Cody-Waite range reduction x = n ln2 + r with |r| <= ln2/2 and the
 *   Cephes expf polynomial for e^r (S. L. Moshier, Cephes Math Library);
 *   2^n is applied as two halves so n may reach the subnormal and overflow
 *   ends.  Within 2 ULP on [-87, 88.7]; +-inf, NaN and overflow as libm.
 * fm_tanhf: odd polynomial (Cephes tanhf) for |x| < 0.625, otherwise
 *   1 - 2 / (e^(2|x|) + 1) with the sign restored.  Within 3 ULP.
 * fm_expm1f: e^x - 1 without the cancellation of expf(x) - 1 near 0: the same
 *   reduction, e^r - 1 = r + r^2 P(r) with Cephes' P, then
 *   2^n (e^r - 1) + (2^n - 1) (as in ARM's optimized-routines expm1f).
 *   Within 2 ULP on [-20, 88.7]; -1 below, +inf above 88.72.
 * fm_logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)) read from the bits, then
 *   the Cephes logf polynomial for log(m).  Within 1 ULP on (0, inf).
 * fm_log1pf: log(w) + c / w with w = 1 + x rounded and c = (1 + x) - w exact
 *   (Fast2Sum), so tiny x keeps its relative accuracy.  Within 2 ULP on (-1, inf).
 * fm_atanf: Cephes atanf (reduction by tan(pi/8), tan(3 pi/8), odd polynomial).
 *   Within 3 ULP.
 * fm_asinhf: sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2))), and log(|x|) + ln2
 *   past |x| = 2^13 where x^2 would lose the 1 (and overflow later).  Within 2 ULP.
 * fm_erfcf: Numerical Recipes' erfcc (Press et al., 2nd ed., sec. 6.2; fitted
 *   fractional error < 1.2e-7) with e^(-x^2) split as e^(-h^2) e^(-(x-h)(x+h)),
 *   h = x with its low 12 mantissa bits cleared (h^2 is exact), so the argument
 *   of the exponential does not lose the result's relative accuracy in the
 *   tail; the fit itself is evaluated in double.  Within 6 ULP on [-9, 9]
 *   (where erfc is a normal float).
 *
 * float64 uses libm.
 */
#ifndef FASTMLP_MATH_H
#define FASTMLP_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The hot loops switch over every activation, and each case inlines its
 * scalar function into a loop the compiler vectorizes; that many inlined
 * bodies exceed GCC's inlining budget, which then leaves some of them as
 * scalar calls and their loops unvectorized (measured: a sigmoid forward 40x
 * slower).  So the scalar math is always inlined. */
#if defined(__GNUC__)
#define FM_INLINE static inline __attribute__((always_inline))
#else
#define FM_INLINE static inline
#endif

/* 2^n for n in [-126, 127], built from its exponent bits */
FM_INLINE float fm_pow2i(int32_t n)
{
    int32_t bits = (n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

FM_INLINE float fm_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float c1 = 0.693359375f, c2 = -2.12194440e-4f;  /* ln2 = c1 + c2, c1 exact */
    float xc = x < -104.0f ? -104.0f : (x > 88.7228394f ? 88.7228394f : x);
    /* round to nearest by the 1.5 * 2^23 trick: plain SSE2, so the baseline clone
     * vectorizes too (floorf/rintf need SSE4.1 or a libm call) */
    const float round_magic = 12582912.0f;
    float fn = (xc * log2e + round_magic) - round_magic;
    float r = xc - fn * c1 - fn * c2;
    float z = r * r;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    int32_t n = (int32_t)fn;
    int32_t half = n / 2;                       /* 2^n = 2^half * 2^(n - half) */
    float y = p * fm_pow2i(half) * fm_pow2i(n - half);
    y = x > 88.7228394f ? INFINITY : y;
    return x != x ? x : y;                      /* NaN in, NaN out */
}

FM_INLINE float fm_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float z = x * x;
    /* small |x|: x + x^3 P(x^2) */
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                    + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    /* large |x|: 1 - 2 / (e^(2|x|) + 1); e^(2|x|) = inf gives exactly 1 */
    float large = 1.0f - 2.0f / (fm_expf(2.0f * ax) + 1.0f);
    large = x < 0 ? -large : large;
    float y = ax < 0.625f ? small : large;
    return x != x ? x : y;
}

/* e^x - 1 */
FM_INLINE float fm_expm1f(float x)
{
    const float log2e = 1.44269504088896341f;
    const float c1 = 0.693359375f, c2 = -2.12194440e-4f;
    const float round_magic = 12582912.0f;
    float xc = x < -20.0f ? -20.0f : (x > 88.7228394f ? 88.7228394f : x);
    float fn = (xc * log2e + round_magic) - round_magic;   /* n in [-29, 128] */
    float r = xc - fn * c1 - fn * c2;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    float q = p * (r * r) + r;                         /* e^r - 1 */
    /* e^x - 1 = 2 (2^(n-1) q + (2^(n-1) - 1/2)): 2^(n-1) stays finite for n = 128 */
    float th = fm_pow2i((int32_t)fn - 1);
    float y = 2.0f * (q * th + (th - 0.5f));
    y = x > 88.7228394f ? INFINITY : y;
    return x != x ? x : y;
}

/* natural logarithm */
FM_INLINE float fm_logf(float x)
{
    const float sqrt_half = 0.707106781186547524f;
    /* subnormal x: scale by 2^23 first so the exponent field is meaningful */
    int tiny = x < 1.17549435e-38f;
    float xs = tiny ? x * 8388608.0f : x;
    int32_t bits;
    memcpy(&bits, &xs, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 126 - (tiny ? 23 : 0);
    int32_t mbits = (bits & 0x007fffff) | 0x3f000000;  /* m in [0.5, 1) */
    float m;
    memcpy(&m, &mbits, sizeof m);
    int low = m < sqrt_half;                           /* then use 2m in [sqrt(1/2), 1) */
    e = low ? e - 1 : e;
    float f = low ? m + m - 1.0f : m - 1.0f;           /* log(1 + f), f in [-0.29, 0.41] */
    float z = f * f;
    float y = ((((((((7.0376836292e-2f * f - 1.1514610310e-1f) * f + 1.1676998740e-1f) * f
                   - 1.2420140846e-1f) * f + 1.4249322787e-1f) * f - 1.6668057665e-1f) * f
                + 2.0000714765e-1f) * f - 2.4999993993e-1f) * f + 3.3333331174e-1f) * f * z;
    float fe = (float)e;
    y += -2.12194440e-4f * fe;                         /* e ln2, ln2 = c1 + c2 */
    y += -0.5f * z;
    float r = f + y;
    r += 0.693359375f * fe;
    r = x == INFINITY ? x : r;
    r = x == 0.0f ? -INFINITY : r;
    r = x < 0.0f ? NAN : r;
    return x != x ? x : r;
}

/* log(1 + x) */
FM_INLINE float fm_log1pf(float x)
{
    float w = 1.0f + x;
    /* c = (1 + x) - w exactly: Fast2Sum with the larger operand first */
    float c = x > 1.0f ? 1.0f - (w - x) : x - (w - 1.0f);
    float y = fm_logf(w) + c / w;                      /* log(w + c) = log w + log(1 + c/w) */
    y = x == INFINITY ? x : y;
    y = w == 0.0f ? -INFINITY : y;
    return x != x ? x : y;
}

/* arctan */
FM_INLINE float fm_atanf(float x)
{
    float ax = x < 0 ? -x : x;
    int big = ax > 2.414213562373095f;                 /* tan(3 pi/8) */
    int mid = ax > 0.4142135623730950f;                /* tan(pi/8) */
    /* atan(a) = pi/2 + atan(-1/a) = pi/4 + atan((a - 1)/(a + 1)) */
    float num = big ? -1.0f : (mid ? ax - 1.0f : ax);
    float den = big ? ax : (mid ? ax + 1.0f : 1.0f);
    float y0 = big ? 1.57079632679489662f : (mid ? 0.785398163397448310f : 0.0f);
    float t = num / den;
    float z = t * t;
    float y = y0 + ((((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z
                     - 3.33329491539e-1f) * z * t + t);
    y = x < 0 ? -y : y;
    return x != x ? x : y;
}

/* inverse hyperbolic sine */
FM_INLINE float fm_asinhf(float x)
{
    float ax = x < 0 ? -x : x;
    int huge = ax > 8192.0f;
    float a = huge ? 8192.0f : ax;
    /* log(a + sqrt(1 + a^2)) = log1p(a + a^2 / (1 + sqrt(1 + a^2))): no cancellation */
    float arg = huge ? ax - 1.0f : a + a * a / (1.0f + sqrtf(1.0f + a * a));
    float y = fm_log1pf(arg) + (huge ? 0.693147180559945309f : 0.0f);
    y = x < 0 ? -y : y;
    return x != x ? x : y;
}

/* complementary error function */
FM_INLINE float fm_erfcf(float x)
{
    float ax0 = x < 0 ? -x : x;
    float ax = ax0 > 10.0f ? 10.0f : ax0;              /* erfc(10) = 2e-45: ~0 in float32 */
    /* the fit in double: in float its rounding errors (terms up to 1.5 in magnitude)
     * would add ~5 ULP to the result */
    double t = 1.0 / (1.0 + 0.5 * (double)ax);
    double p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
               + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
               + t * (-0.82215223 + t * 0.17087277))))))));
    /* e^(-ax^2 + p) = e^(-h^2) e^(p - (ax - h)(ax + h)), h^2 exact */
    int32_t bits;
    memcpy(&bits, &ax, sizeof bits);
    bits &= (int32_t)0xfffff000;
    float h;
    memcpy(&h, &bits, sizeof h);
    float rest = (float)(p - ((double)ax - h) * ((double)ax + h));
    float y = (float)t * fm_expf(-h * h) * fm_expf(rest);
    y = ax0 > 10.0f ? 0.0f : y;
    y = x < 0 ? 2.0f - y : y;
    return x != x ? x : y;
}

#endif /* FASTMLP_MATH_H */
