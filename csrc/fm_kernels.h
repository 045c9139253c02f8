/*
 * fastmlp elementwise kernels in plain C99.
 *
 * Design
 * ------
 * Everything here works on raw pointers and sizes: one row block at a time, no
 * Python, no allocation, no threads.  The Cython layer (fastmlp/_kernels) splits
 * the work across OpenMP threads and calls these functions on each thread's
 * block while it is still in cache after the GEMM that produced it.
 *
 * The code is written once, type-generic, in fm_activations_impl.h,
 * fm_losses_impl.h, fm_optim_impl.h and fm_layers_impl.h (batch norm, PReLU,
 * maxout), and instantiated twice: for float (suffix _f32) and double
 * (suffix _f64).
 *
 * Activations are listed once, in FM_ACTIVATIONS below.  Adding one means:
 *   1. a scalar forward  fm_<name>_<T>(z, alpha)            in fm_activations_impl.h
 *   2. a scalar derivative fm_<name>_grad_<T>(z, a, alpha)  (a = f(z) is given
 *      so derivatives such as sigmoid's a(1-a) need no second exp)
 *   3. one line in FM_ACTIVATIONS, its NumPy twin in fastmlp/_reference.py
 *      (same position in its table) and a row in fastmlp/activations.py.
 */
#ifndef FASTMLP_KERNELS_H
#define FASTMLP_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fm_math.h"
#include "fm_dropout.h"

/* Reductions in the loops below may be reordered (vectorized): the results
 * then differ from a serial sum only by rounding, and NaN still propagates. */
#define FM_PRAGMA(x) _Pragma(#x)
#define FM_SIMD_SUM(var) FM_PRAGMA(omp simd reduction(+:var))

/* For a bipolar activation, unit (column) c of a row uses s f(s z) with s = +1
 * for even c and -1 for odd c; its derivative is then f'(s z), which the _grad
 * functions get as (s z, s a).  FM_T is the floating type of the instantiation
 * that expands it. */
#define FM_SIGN_OF_COLUMN(c) ((c) & 1 ? (FM_T)-1 : (FM_T)1)
/* The activation `name` of unit (column) c at value v: s f(s v) when bipolar.
 * `bipolar` is a literal in every FM_ACTIVATIONS expansion, so the test folds. */
#define FM_ACTIVATE(name, bipolar, v, c, alpha)                                   \
    ((bipolar) ? FM_SIGN_OF_COLUMN(c) * FM_FN(name)(FM_SIGN_OF_COLUMN(c) * (v), (alpha)) \
               : FM_FN(name)((v), (alpha)))

/* A barrier of the enclosing OpenMP parallel region, called by every thread of
 * its team (an orphaned directive; nothing in a build without OpenMP). */
static inline void fm_barrier(void) { FM_PRAGMA(omp barrier) }

/* X(code, name, bipolar, alpha): the code is what the compiled plan stores per
 * layer; alpha is the default of the activation's parameter (0: it has none);
 * bipolar = 1 applies f to even units (columns 0, 2, ...) and -f(-z) to odd
 * ones (Eidnes & Noekland 2017), so the row loops pass the column parity. */
#define FM_ACTIVATIONS(X)                \
    X(0, identity, 0, 0.0)               \
    X(1, sigmoid, 0, 0.0)                \
    X(2, tanh, 0, 0.0)                   \
    X(3, relu, 0, 0.0)                   \
    X(4, leaky_relu, 0, 0.01)            \
    X(5, binary_step, 0, 0.0)            \
    X(6, elu, 0, 1.0)                    \
    X(7, selu, 0, 0.0)                   \
    X(8, softplus, 0, 0.0)               \
    X(9, softsign, 0, 0.0)               \
    X(10, arctan, 0, 0.0)                \
    X(11, asinh, 0, 0.0)                 \
    X(12, isru, 0, 1.0)                  \
    X(13, isrlu, 0, 1.0)                 \
    X(14, sqnl, 0, 0.0)                  \
    X(15, bent_identity, 0, 0.0)         \
    X(16, gelu, 0, 0.0)                  \
    X(17, gelu_exact, 0, 0.0)            \
    X(18, silu, 0, 1.0)                  \
    X(19, brelu, 1, 0.0)

#define FM_X_COUNT(code, name, bipolar, alpha) +1
enum { FM_N_ACTIVATIONS = 0 FM_ACTIVATIONS(FM_X_COUNT) };
#undef FM_X_COUNT

/* Name of activation `code`, or NULL past the end (lets Python build its table
 * from this list, so the two cannot drift apart). */
static const char *fm_activation_name(int code)
{
    switch (code) {
#define FM_X_NAME(c, name, bipolar, alpha) case c: return #name;
        FM_ACTIVATIONS(FM_X_NAME)
#undef FM_X_NAME
    default: return NULL;
    }
}

/* Default parameter of activation `code` (0 for those without one). */
static double fm_activation_default_alpha(int code)
{
    switch (code) {
#define FM_X_ALPHA(c, name, bipolar, alpha) case c: return alpha;
        FM_ACTIVATIONS(FM_X_ALPHA)
#undef FM_X_ALPHA
    default: return 0.0;
    }
}

/* Losses, listed once.  X(code, name, per_output, y_kinds):
 *   per_output  1: the mean runs over the n k entries of the batch (elementwise
 *               losses); 0: over the n samples (a loss per sample, summed over
 *               its k outputs).
 *   y_kinds     which targets the kernel takes: FM_Y_LABELS (int64 class labels
 *               (n,)), FM_Y_TARGETS (an (n, k) array), or both.
 * Adding one means: a row kernel fm_<name>_rows_<T> in fm_losses_impl.h with
 * the common signature, one line here, its NumPy twin in fastmlp/_reference.py
 * and its entry in fastmlp/losses.py. */
enum { FM_Y_LABELS = 1, FM_Y_TARGETS = 2 };
#define FM_LOSSES(X)                                         \
    X(0, softmax_cross_entropy, 0, FM_Y_LABELS | FM_Y_TARGETS) \
    X(1, mse, 1, FM_Y_TARGETS)                               \
    X(2, binary_cross_entropy, 1, FM_Y_TARGETS)              \
    X(3, mae, 1, FM_Y_TARGETS)                               \
    X(4, mape, 1, FM_Y_TARGETS)                              \
    X(5, huber, 1, FM_Y_TARGETS)                             \
    X(6, hinge, 0, FM_Y_LABELS)                              \
    X(7, kl_divergence, 0, FM_Y_TARGETS)                     \
    X(8, poisson, 1, FM_Y_TARGETS)

#define FM_X_ENUM(code, name, per_output, y_kinds) FM_LOSS_##name = code,
enum { FM_LOSSES(FM_X_ENUM) };
#undef FM_X_ENUM
#define FM_X_COUNT(code, name, per_output, y_kinds) +1
enum { FM_N_LOSSES = 0 FM_LOSSES(FM_X_COUNT) };
#undef FM_X_COUNT

/* Name of loss `code`, or NULL past the end. */
static const char *fm_loss_name(int code)
{
    switch (code) {
#define FM_X_NAME(c, name, per_output, y_kinds) case c: return #name;
        FM_LOSSES(FM_X_NAME)
#undef FM_X_NAME
    default: return NULL;
    }
}

/* 1 when loss `code` averages over every output of the batch (see FM_LOSSES). */
static int fm_loss_per_output(int code)
{
    switch (code) {
#define FM_X_FLAG(c, name, per_output, y_kinds) case c: return per_output;
        FM_LOSSES(FM_X_FLAG)
#undef FM_X_FLAG
    default: return 0;
    }
}

/* FM_Y_LABELS | FM_Y_TARGETS: the targets loss `code` accepts (0: no such loss). */
static int fm_loss_y_kinds(int code)
{
    switch (code) {
#define FM_X_KINDS(c, name, per_output, y_kinds) case c: return y_kinds;
        FM_LOSSES(FM_X_KINDS)
#undef FM_X_KINDS
    default: return 0;
    }
}

/* fm_<name>_f32 / fm_<name>_f64 */
#define FM_CAT2_(a, b) a##_##b
#define FM_CAT2(a, b) FM_CAT2_(a, b)
#define FM_FN(name) FM_CAT2(fm_##name, FM_SUF)

/* Hot loops are compiled for baseline x86-64 and for AVX2+FMA and AVX-512,
 * and the loader picks the widest one this CPU has (GCC function
 * multi-versioning through ifunc).  A wheel therefore runs on any x86-64 and
 * still uses AVX-512 where present; no -march=native is needed. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FM_NO_CLONES)
#define FM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FM_HOT
#endif

#define FM_T float
#define FM_SUF f32
#define FM_EXP fm_expf
#define FM_LOG logf
#define FM_TANH fm_tanhf
#define FM_SQRT sqrtf
#define FM_EXPM1 fm_expm1f
#define FM_LOG1P fm_log1pf
#define FM_ATAN fm_atanf
#define FM_ASINH fm_asinhf
#define FM_ERFC fm_erfcf
#define FM_BIG 8192.0f        /* |z| past which 1 + z^2 rounds to z^2 (and z^2 is finite) */
#include "fm_activations_impl.h"
#include "fm_losses_impl.h"
#include "fm_optim_impl.h"
#include "fm_layers_impl.h"
#undef FM_T
#undef FM_SUF
#undef FM_EXP
#undef FM_LOG
#undef FM_TANH
#undef FM_SQRT
#undef FM_EXPM1
#undef FM_LOG1P
#undef FM_ATAN
#undef FM_ASINH
#undef FM_ERFC
#undef FM_BIG

#define FM_T double
#define FM_SUF f64
#define FM_EXP exp
#define FM_LOG log
#define FM_TANH tanh
#define FM_SQRT sqrt
#define FM_EXPM1 expm1
#define FM_LOG1P log1p
#define FM_ATAN atan
#define FM_ASINH asinh
#define FM_ERFC erfc
#define FM_BIG 134217728.0    /* 2^27 */
#include "fm_activations_impl.h"
#include "fm_losses_impl.h"
#include "fm_optim_impl.h"
#include "fm_layers_impl.h"
#undef FM_T
#undef FM_SUF
#undef FM_EXP
#undef FM_LOG
#undef FM_TANH
#undef FM_SQRT
#undef FM_EXPM1
#undef FM_LOG1P
#undef FM_ATAN
#undef FM_ASINH
#undef FM_ERFC
#undef FM_BIG

#endif /* FASTMLP_KERNELS_H */
