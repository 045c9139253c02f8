"""The pure-NumPy twin of every native kernel.

Same names and signatures as the functions in ``fastmlp._kernels`` (and a
``Plan`` with the same methods as the compiled one), written the way a careful
NumPy user would: vectorized, outputs written in place, no Python loop over
samples.  It is the oracle the native kernels are tested against and the
baseline they are benchmarked against (``backend="numpy"``).
"""
import numpy as np

from ._layer_specs import layer_spec, spec_spans

__all__ = [
    "ACTIVATIONS", "DEFAULT_ALPHA", "activation_code", "activation_alpha",
    "activation_forward", "activation_backward", "dropout",
    "dense_forward", "dense_backward",
    "LOSSES", "loss_code", "loss_and_gradient", "loss_output", "softmax",
    "softmax_cross_entropy", "mean_squared_error", "binary_cross_entropy", "mean_absolute_error",
    "mean_absolute_percentage_error", "huber", "multiclass_hinge", "kl_divergence", "poisson",
    "sgd_update", "adam_update", "adamw_update", "adagrad_update", "rmsprop_update",
    "nadam_update", "max_norm_constraint", "Plan",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference", "prelu_forward",
    "prelu_backward", "maxout_forward", "maxout_backward",
]


# ---- activations: f(z, alpha) and f'(z, a, alpha) with a = f(z) ----------------
# z and out are 2-D (rows, units); out may be z.  The formulas and their sources
# are in fastmlp/activations.py and csrc/fm_activations_impl.h.

_SELU_ALPHA = 1.6732632423543772848170429916717   # Klambauer et al. 2017
_SELU_LAMBDA = 1.0507009873554804934193349852946
_GELU_C2 = 1.5957691216057307117597842397375      # 2 sqrt(2/pi)
_GELU_K = 0.044715
_RSQRT_2PI = 0.39894228040143267793994605993438   # 1 / sqrt(2 pi)
# past this |z|, gelu's sigmoid is exactly 0 or 1 in float32 and float64 (and z^3
# does not overflow float32)
_GELU_CLIP = 1e4


def _sigmoid(z, alpha, out):
    # 1 / (1 + e^-z) through e^-|z|, so no overflow; the mask is taken before
    # out is written, since out may be z
    negative = z < 0
    e = np.exp(-np.abs(z))
    np.divide(1.0, 1.0 + e, out=out)
    np.multiply(out, e, out=out, where=negative)
    return out


def _sigmoid_of(z):
    return _sigmoid(z, 0.0, np.empty_like(z))


def _elu(z, alpha, out):
    np.copyto(out, np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))))


def _elu_grad(z, a, alpha):
    return np.where(z > 0, z.dtype.type(1), alpha * np.exp(np.minimum(z, 0)))


def _selu(z, alpha, out):
    _elu(z, _SELU_ALPHA, out)
    np.multiply(out, _SELU_LAMBDA, out=out)


def _softplus(z, alpha, out):
    # max(z, 0) + log1p(e^-|z|): no overflow
    np.add(np.maximum(z, 0), np.log1p(np.exp(-np.abs(z))), out=out)


def _isru(z, alpha):
    # z / sqrt(1 + a z^2); for |z| > 1 as sign(z) / sqrt(1/z^2 + a), so that z^2
    # overflowing (|z| > ~1.8e19 in float32) still gives +-1/sqrt(a), not 0
    if alpha == 0:
        return z.copy()
    with np.errstate(over="ignore", under="ignore"):
        big = np.abs(z) > 1
        inv = 1 / np.where(big, z, 1)
        return np.where(big, np.sign(z) / np.sqrt(inv * inv + alpha),
                        z / np.sqrt(1 + alpha * z * z))


def _isru_grad(z, alpha):
    return (1 / np.sqrt(1 + alpha * z * z)) ** 3


def _sqnl(z, alpha, out):
    np.copyto(out, np.where(z > 2, 1, np.where(z < -2, -1, z - z * np.abs(z) / 4)))


def _gelu_s(z):
    """(sigmoid(2u), z clipped), u = sqrt(2/pi) (z + 0.044715 z^3)."""
    zc = np.clip(z, -_GELU_CLIP, _GELU_CLIP)
    return _sigmoid_of(_GELU_C2 * (zc + _GELU_K * zc ** 3)), zc


def _gelu(z, alpha, out):
    # 0.5 z (1 + tanh u) = z sigmoid(2u), which does not cancel for z < 0
    s, _ = _gelu_s(z)
    np.multiply(z, s, out=out)


def _gelu_grad(z, a, alpha):
    s, zc = _gelu_s(z)
    return s + zc * s * (1 - s) * _GELU_C2 * (1 + 3 * _GELU_K * zc * zc)


def _ndtr(z):
    from scipy.special import ndtr  # the standard normal CDF, accurate in both tails
    return ndtr(z)


def _silu(z, alpha, out):
    np.multiply(z, _sigmoid_of(alpha * z), out=out)


def _silu_grad(z, a, alpha):
    s = _sigmoid_of(alpha * z)
    return s * (1 + alpha * z * (1 - s))


def _brelu(z, alpha, out):
    # even units max(z, 0), odd units -max(-z, 0) = min(z, 0)
    np.maximum(z[:, 0::2], 0, out=out[:, 0::2])
    np.minimum(z[:, 1::2], 0, out=out[:, 1::2])


def _brelu_grad(z, a, alpha):
    d = z > 0
    d[:, 1::2] = z[:, 1::2] < 0
    return d


_FORWARD = {
    "identity": lambda z, alpha, out: np.copyto(out, z),
    "sigmoid": _sigmoid,
    "tanh": lambda z, alpha, out: np.tanh(z, out=out),
    "relu": lambda z, alpha, out: np.maximum(z, 0, out=out),
    "leaky_relu": lambda z, alpha, out: np.copyto(out, np.where(z > 0, z, z * out.dtype.type(alpha))),
    "binary_step": lambda z, alpha, out: np.heaviside(z, 1, out=out),
    "elu": _elu,
    "selu": _selu,
    "softplus": _softplus,
    "softsign": lambda z, alpha, out: np.divide(z, 1 + np.abs(z), out=out),
    "arctan": lambda z, alpha, out: np.arctan(z, out=out),
    "asinh": lambda z, alpha, out: np.arcsinh(z, out=out),
    "isru": lambda z, alpha, out: np.copyto(out, _isru(z, alpha)),
    "isrlu": lambda z, alpha, out: np.copyto(out, np.where(z >= 0, z, _isru(z, alpha))),
    "sqnl": _sqnl,
    "bent_identity": lambda z, alpha, out: np.copyto(out, (np.hypot(z, 1) - 1) / 2 + z),
    "gelu": _gelu,
    "gelu_exact": lambda z, alpha, out: np.multiply(z, _ndtr(z), out=out),
    "silu": _silu,
    "brelu": _brelu,
}

_DERIVATIVE = {
    "identity": lambda z, a, alpha: 1,
    "sigmoid": lambda z, a, alpha: a * (1 - a),
    "tanh": lambda z, a, alpha: 1 - a * a,
    "relu": lambda z, a, alpha: z > 0,
    "leaky_relu": lambda z, a, alpha: np.where(z > 0, 1, a.dtype.type(alpha)).astype(a.dtype),
    "binary_step": lambda z, a, alpha: np.zeros_like(z),
    "elu": _elu_grad,
    "selu": lambda z, a, alpha: _SELU_LAMBDA * _elu_grad(z, a, _SELU_ALPHA),
    "softplus": lambda z, a, alpha: _sigmoid_of(z),
    "softsign": lambda z, a, alpha: 1 / (1 + np.abs(z)) ** 2,
    "arctan": lambda z, a, alpha: 1 / (1 + z * z),
    "asinh": lambda z, a, alpha: 1 / np.hypot(z, 1),
    "isru": lambda z, a, alpha: _isru_grad(z, alpha),
    "isrlu": lambda z, a, alpha: np.where(z >= 0, z.dtype.type(1), _isru_grad(z, alpha)),
    "sqnl": lambda z, a, alpha: np.where(np.abs(z) > 2, 0, 1 - np.abs(z) / 2),
    "bent_identity": lambda z, a, alpha: z / (2 * np.hypot(z, 1)) + 1,
    "gelu": _gelu_grad,
    "gelu_exact": lambda z, a, alpha: _ndtr(z) + z * _RSQRT_2PI * np.exp(-0.5 * z * z),
    "silu": _silu_grad,
    "brelu": _brelu_grad,
}

ACTIVATIONS = tuple(_FORWARD)
assert tuple(_DERIVATIVE) == ACTIVATIONS

# the default of each activation's parameter (0.0 where it has none)
DEFAULT_ALPHA = dict.fromkeys(ACTIVATIONS, 0.0)
DEFAULT_ALPHA.update({"leaky_relu": 0.01, "elu": 1.0, "isru": 1.0, "isrlu": 1.0, "silu": 1.0})


def activation_code(name):
    """Index of activation `name` (ValueError if there is none)."""
    if name not in _FORWARD:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS.index(name)


def activation_alpha(name, alpha):
    """`alpha`, or the default parameter of activation `name` when alpha is None."""
    activation_code(name)
    return DEFAULT_ALPHA[name] if alpha is None else float(alpha)


def _check(name, a, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")


def activation_forward(Z, activation, out, alpha=None):
    """out = f(Z) elementwise (alpha None: the activation's default parameter)."""
    alpha = activation_alpha(activation, alpha)
    _check("out", out, Z.shape)
    _FORWARD[activation](Z, alpha, out)


def activation_backward(Z, A, dA, activation, out, alpha=None):
    """out = dA * f'(Z) elementwise, where A = f(Z)."""
    alpha = activation_alpha(activation, alpha)
    for name, M in (("A", A), ("dA", dA), ("out", out)):
        _check(name, M, Z.shape)
    np.multiply(dA, _DERIVATIVE[activation](Z, A, alpha), out=out)


# ---- dropout: the counter-based masks of csrc/fm_dropout.h ------------------------

def _hash32(x):
    """lowbias32 (C. Wellons) on uint32 arrays or scalars, wrapping like C."""
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _dropout_key(seed, layer, step):
    seed, step = int(seed) & 0xFFFFFFFFFFFFFFFF, int(step) & 0xFFFFFFFFFFFFFFFF
    with np.errstate(over="ignore"):
        h = _hash32(np.uint32(seed & 0xFFFFFFFF)
                    ^ _hash32(np.uint32(seed >> 32) + np.uint32(0x9E3779B9)))
        h = _hash32(h ^ _hash32(np.uint32(layer) + np.uint32(0x85EBCA6B)))
        h = _hash32(h ^ np.uint32(step & 0xFFFFFFFF))
        h = _hash32(h ^ np.uint32(step >> 32))
        return h, _hash32(h + np.uint32(0x632BE5AB))


def _dropout_mask(shape, p, seed, layer, step):
    """Boolean keep-mask of a (rows, cols) output: element (r, c) is kept iff its
    draw H(H((r cols + c) ^ k0) + k1) reaches p 2^32."""
    rows, cols = shape
    k0, k1 = _dropout_key(seed, layer, step)
    counters = np.arange(rows * cols, dtype=np.uint64).astype(np.uint32).reshape(rows, cols)
    with np.errstate(over="ignore"):
        draws = _hash32(_hash32(counters ^ k0) + k1)
    threshold = min(int(p * 4294967296.0), 0xFFFFFFFF)
    return draws >= np.uint32(threshold)


def dropout(X, out, p, seed, layer, step):
    """Inverted dropout: out = X * mask / (1 - p) with the mask keyed by
    (seed, layer, step, row, unit) (out may be X)."""
    _check("out", out, X.shape)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"the dropout rate must be in [0, 1), got {p}")
    if not 0 <= layer < 2 ** 31:
        raise ValueError(f"layer must be in [0, 2^31), got {layer}")
    mask = _dropout_mask(X.shape, p, seed, layer, step)
    np.multiply(X, mask * X.dtype.type(1.0 / (1.0 - p)), out=out)


# ---- dense layer ---------------------------------------------------------------

def dense_forward(X, W, b, activation, Z, A, alpha=None):
    """Z = X W + b and A = f(Z) (A may be Z)."""
    alpha = activation_alpha(activation, alpha)
    n_in, n_out = W.shape
    _check("X", X, (X.shape[0], n_in))
    _check("b", b, (n_out,))
    _check("Z", Z, (X.shape[0], n_out))
    _check("A", A, (X.shape[0], n_out))
    np.matmul(X, W, out=Z)
    Z += b
    _FORWARD[activation](Z, alpha, A)


def dense_backward(X, W, Z, A, dA, activation, dZ, dW, db, dX, alpha=None):
    """dZ = dA * f'(Z), dW = X^T dZ, db = sum_rows dZ, dX = dZ W^T (dX None: skipped)."""
    alpha = activation_alpha(activation, alpha)
    n, (n_in, n_out) = X.shape[0], W.shape
    _check("X", X, (n, n_in))
    for name, M in (("Z", Z), ("A", A), ("dA", dA), ("dZ", dZ)):
        _check(name, M, (n, n_out))
    _check("dW", dW, (n_in, n_out))
    _check("db", db, (n_out,))
    np.multiply(dA, _DERIVATIVE[activation](Z, A, alpha), out=dZ)
    np.matmul(X.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dX is not None:
        _check("dX", dX, (n, n_in))
        np.matmul(dZ, W.T, out=dX)


# ---- losses (mean over the batch, weighted by sample_weight) ---------------------
#
# Each returns the batch loss and writes the gradient of that mean into grad:
# (sum_r w_r loss_r) / n for the losses with one value per sample, / (n k) for
# the elementwise ones (LOSSES lists them in the order of their native codes).

LOSSES = ("softmax_cross_entropy", "mse", "binary_cross_entropy", "mae", "mape", "huber",
          "hinge", "kl_divergence", "poisson")
_PER_OUTPUT = {"mse", "binary_cross_entropy", "mae", "mape", "huber", "poisson"}
_TAKES_LABELS = {"softmax_cross_entropy", "hinge"}
_TAKES_TARGETS = set(LOSSES) - {"hinge"}


def loss_code(name):
    """Index of loss `name` (ValueError if there is none)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return LOSSES.index(name)


def _loss_inputs(name, Z, y, grad, sample_weight):
    """Check the arrays of loss `name`; returns the weights as float64 (n,)."""
    n, k = Z.shape
    _check("grad", grad, Z.shape)
    if n == 0 or k == 0:
        raise ValueError(f"{name} needs at least one sample and one output")
    if y.ndim == 1:
        if name not in _TAKES_LABELS:
            raise ValueError(f"{name} takes targets of shape ({n}, {k}), not class labels")
        _check("y", y, (n,))
        if y.min() < 0 or y.max() >= k:
            bad = y.min() if y.min() < 0 else y.max()
            raise ValueError(f"y holds label {bad} outside [0, {k})")
    else:
        if name not in _TAKES_TARGETS:
            raise ValueError(f"{name} takes int64 class labels of shape ({n},)")
        _check("y", y, Z.shape)
        if np.shares_memory(y, grad):
            raise ValueError("grad must not share memory with the targets")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has length {w.shape[0]}, expected {n}")
    return w


def _weighted_mean(per_row, w, grad, divisor):
    """sum_r w_r per_row_r / divisor; grad (the per-entry derivative) scaled to match."""
    grad *= (w / divisor).astype(grad.dtype)[:, None]
    return float(np.dot(w, per_row) / divisor)


def softmax(Z, out):
    """out = softmax(Z) row by row (max subtracted first)."""
    _check("out", out, Z.shape)
    if Z.size == 0:  # no rows or no classes: nothing to write (as the native kernel)
        return
    np.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def _softmax_targets(Z, T, grad, with_entropy):
    """Per-row sum_c T_c (logsumexp(Z) - Z_c) (+ sum_c T_c log T_c); grad = softmax(Z) sum(T) - T."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, dtype=np.float64))
    softmax(Z, grad)
    t_sum = T.sum(axis=1, dtype=np.float64)
    per_row = t_sum * log_sum - (T * shifted).sum(axis=1, dtype=np.float64)
    if with_entropy:  # 0 log 0 = 0
        T64 = T.astype(np.float64)
        per_row += (T64 * np.log(T64, out=np.zeros_like(T64), where=T64 > 0)).sum(axis=1)
    grad *= t_sum[:, None].astype(grad.dtype)
    grad -= T
    return per_row


def softmax_cross_entropy(Z, y, grad, sample_weight=None):
    """Mean softmax cross-entropy of logits Z with labels (n,) or targets (n, k);
    grad = w (softmax(Z) sum(t) - t) / n.  Returns the loss."""
    w = _loss_inputs("softmax_cross_entropy", Z, y, grad, sample_weight)
    n = Z.shape[0]
    if y.ndim == 1:
        shifted = Z - Z.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1, dtype=np.float64))
        rows = np.arange(n)
        per_row = log_sum - shifted[rows, y]
        softmax(Z, grad)
        grad[rows, y] -= 1
    else:
        per_row = _softmax_targets(Z, y, grad, False)
    return _weighted_mean(per_row, w, grad, n)


def kl_divergence(Z, T, grad, sample_weight=None):
    """(1/n) sum_r w_r sum_c T_rc (log T_rc - log softmax(Z_r)_c), 0 log 0 = 0;
    grad = w (softmax(Z) sum(T) - T) / n.  Returns the loss."""
    w = _loss_inputs("kl_divergence", Z, T, grad, sample_weight)
    return _weighted_mean(_softmax_targets(Z, T, grad, True), w, grad, Z.shape[0])


def multiclass_hinge(Z, y, grad, sample_weight=None):
    """Crammer-Singer: (1/n) sum_r w_r max(0, 1 + max_{c != y} Z_rc - Z_r[y_r]);
    grad = w (e_j - e_y) / n where the margin is positive (j: the first argmax)."""
    w = _loss_inputs("hinge", Z, y, grad, sample_weight)
    n, k = Z.shape
    if k < 2:
        raise ValueError("hinge needs at least two classes")
    rows = np.arange(n)
    others = Z.astype(np.float64)
    others[rows, y] = -np.inf
    j = others.argmax(axis=1)
    margin = 1.0 + Z[rows, j].astype(np.float64) - Z[rows, y]
    # a score that is not finite makes the loss NaN (a diverged model must not look healthy)
    per_row = np.where(np.isfinite(Z).all(axis=1), np.maximum(margin, 0.0), np.nan)
    grad[...] = 0
    active = margin > 0
    grad[rows[active], j[active]] = 1
    grad[rows[active], y[active]] = -1
    return _weighted_mean(per_row, w, grad, n)


def _elementwise(name, Z, Y, grad, sample_weight, value, derivative):
    """Mean over the n k entries of value(Z, Y); grad = w derivative(Z, Y) / (n k)."""
    w = _loss_inputs(name, Z, Y, grad, sample_weight)
    per_row = value(Z, Y).sum(axis=1, dtype=np.float64)
    grad[...] = derivative(Z, Y)
    return _weighted_mean(per_row, w, grad, Z.size)


def mean_squared_error(Z, Y, grad, sample_weight=None):
    """sum_r w_r |Z_r - Y_r|^2 / (2 n k), grad = w (Z - Y) / (n k).  Returns the loss."""
    return _elementwise("mse", Z, Y, grad, sample_weight,
                        lambda Z, Y: 0.5 * (Z - Y) ** 2, lambda Z, Y: Z - Y)


def mean_absolute_error(Z, Y, grad, sample_weight=None):
    """sum_r w_r sum_c |Z_rc - Y_rc| / (n k), grad = w sign(Z - Y) / (n k)."""
    return _elementwise("mae", Z, Y, grad, sample_weight,
                        lambda Z, Y: np.abs(Z - Y), lambda Z, Y: np.sign(Z - Y))


def mean_absolute_percentage_error(Z, Y, grad, sample_weight=None, epsilon=1e-7):
    """100 sum_r w_r sum_c |Z_rc - Y_rc| / max(|Y_rc|, epsilon) / (n k)."""
    if not epsilon > 0:
        raise ValueError(f"mape needs a parameter > 0, got {epsilon}")
    def scale(Y):
        return Y.dtype.type(100) / np.maximum(np.abs(Y), Y.dtype.type(epsilon))
    return _elementwise("mape", Z, Y, grad, sample_weight,
                        lambda Z, Y: np.abs(Z - Y) * scale(Y),
                        lambda Z, Y: np.sign(Z - Y) * scale(Y))


def huber(Z, Y, grad, sample_weight=None, delta=1.0):
    """Mean over entries of d^2/2 if |d| <= delta else delta (|d| - delta/2), d = Z - Y;
    grad = w clip(d, -delta, delta) / (n k)."""
    if not delta > 0:
        raise ValueError(f"huber needs a parameter > 0, got {delta}")
    t = Z.dtype.type
    return _elementwise("huber", Z, Y, grad, sample_weight,
                        lambda Z, Y: np.where(np.abs(Z - Y) <= t(delta), t(0.5) * (Z - Y) ** 2,
                                              t(delta) * (np.abs(Z - Y) - t(0.5 * delta))),
                        lambda Z, Y: np.clip(Z - Y, -t(delta), t(delta)))


def binary_cross_entropy(Z, Y, grad, sample_weight=None):
    """Mean over entries of log(1 + e^Z) - Y Z (sigmoid on logits, stable form
    max(Z, 0) - Y Z + log1p(e^-|Z|)); grad = w (sigmoid(Z) - Y) / (n k)."""
    def value(Z, Y):
        return np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))
    def derivative(Z, Y):
        return _sigmoid(Z, 0.0, np.empty_like(Z)) - Y
    return _elementwise("binary_cross_entropy", Z, Y, grad, sample_weight, value, derivative)


def poisson(Z, Y, grad, sample_weight=None):
    """Poisson NLL on the log-rate: mean over entries of e^Z - Y Z; grad = w (e^Z - Y) / (n k)."""
    return _elementwise("poisson", Z, Y, grad, sample_weight,
                        lambda Z, Y: np.exp(Z) - Y * Z, lambda Z, Y: np.exp(Z) - Y)


_LOSS_FUNCTIONS = {
    "softmax_cross_entropy": softmax_cross_entropy, "mse": mean_squared_error,
    "binary_cross_entropy": binary_cross_entropy, "mae": mean_absolute_error,
    "mape": lambda Z, y, grad, w, param: mean_absolute_percentage_error(Z, y, grad, w, param),
    "huber": lambda Z, y, grad, w, param: huber(Z, y, grad, w, param),
    "hinge": multiclass_hinge, "kl_divergence": kl_divergence, "poisson": poisson,
}


def loss_and_gradient(Z, y, grad, kind, param=0.0, sample_weight=None):
    """Mean loss number `kind` (loss_code(name)) of Z against y, and its gradient into grad."""
    if not 0 <= kind < len(LOSSES):
        raise ValueError(f"unknown loss code {kind}; there are {len(LOSSES)}")
    name = LOSSES[kind]
    if name in ("mape", "huber"):
        return _LOSS_FUNCTIONS[name](Z, y, grad, sample_weight, param)
    return _LOSS_FUNCTIONS[name](Z, y, grad, sample_weight)


def loss_output(Z, kind, out):
    """out = what predict() returns under loss `kind`: softmax, sigmoid, e^Z or Z."""
    _check("out", out, Z.shape)
    if not 0 <= kind < len(LOSSES):
        raise ValueError(f"unknown loss code {kind}; there are {len(LOSSES)}")
    name = LOSSES[kind]
    if Z.size == 0:
        return
    if name in ("softmax_cross_entropy", "kl_divergence"):
        softmax(Z, out)
    elif name == "binary_cross_entropy":
        _sigmoid(Z, 0.0, out)
    elif name == "poisson":
        np.exp(Z, out=out)
    else:
        np.copyto(out, Z)


# ---- optimizers ---------------------------------------------------------------

def sgd_update(params, grads, velocity, lr, momentum=0.0, nesterov=False):
    """One SGD step in place (PyTorch's convention, no dampening)."""
    if momentum == 0:
        params -= params.dtype.type(lr) * grads
        return
    velocity *= velocity.dtype.type(momentum)
    velocity += grads
    if nesterov:
        params -= params.dtype.type(lr) * (grads + velocity.dtype.type(momentum) * velocity)
    else:
        params -= params.dtype.type(lr) * velocity


def adam_update(params, grads, m, v, lr, beta1, beta2, eps, step):
    """One Adam step in place (eps outside the square root, bias-corrected, as PyTorch)."""
    _adam(params, grads, m, v, lr, beta1, beta2, eps, 0.0, step)


def adamw_update(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW step in place: p *= 1 - lr wd, then the Adam step (as PyTorch)."""
    _adam(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step)


def _adam(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step):
    _check_lengths(params, grads=grads, m=m, v=v)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    t = params.dtype.type
    m *= t(beta1)
    m += t(1 - beta1) * grads
    v *= t(beta2)
    v += t(1 - beta2) * grads * grads
    step_size = lr / (1 - beta1 ** step)
    inv_sqrt_bc2 = 1 / np.sqrt(1 - beta2 ** step)
    denom = np.sqrt(v) * t(inv_sqrt_bc2) + t(eps)
    if weight_decay:
        params *= t(1 - lr * weight_decay)
    params -= t(step_size) * m / denom


def adagrad_update(params, grads, accumulator, lr, eps):
    """One Adagrad step in place: s += g^2; p -= lr g / (sqrt(s) + eps)."""
    _check_lengths(params, grads=grads, accumulator=accumulator)
    t = params.dtype.type
    accumulator += grads * grads
    params -= t(lr) * grads / (np.sqrt(accumulator) + t(eps))


def rmsprop_update(params, grads, square_avg, lr, rho, eps, momentum=0.0, momentum_buffer=None,
                   grad_avg=None):
    """One RMSprop step in place (PyTorch's formulation; centered when grad_avg is given)."""
    _check_lengths(params, grads=grads, square_avg=square_avg)
    if momentum != 0:
        if momentum_buffer is None:
            raise ValueError("momentum needs a momentum_buffer")
        _check_lengths(params, momentum_buffer=momentum_buffer)
    if grad_avg is not None:
        _check_lengths(params, grad_avg=grad_avg)
    t = params.dtype.type
    square_avg *= t(rho)
    square_avg += t(1 - rho) * grads * grads
    if grad_avg is not None:
        grad_avg *= t(rho)
        grad_avg += t(1 - rho) * grads
        denom = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0)) + t(eps)
    else:
        denom = np.sqrt(square_avg) + t(eps)
    if momentum != 0:
        momentum_buffer *= t(momentum)
        momentum_buffer += grads / denom
        params -= t(lr) * momentum_buffer
    else:
        params -= t(lr) * grads / denom


def _nadam_mu(beta1, momentum_decay, step):
    return beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))


def nadam_update(params, grads, m, v, lr, beta1, beta2, eps, momentum_decay, step, mu_product):
    """One NAdam step in place (PyTorch's formulation); mu_product is prod_{i<t} mu_i.
    Returns prod_{i<=t} mu_i."""
    _check_lengths(params, grads=grads, m=m, v=v)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    t = params.dtype.type
    mu = _nadam_mu(beta1, momentum_decay, step)
    mu_next = _nadam_mu(beta1, momentum_decay, step + 1)
    mu_product = mu_product * mu
    m *= t(beta1)
    m += t(1 - beta1) * grads
    v *= t(beta2)
    v += t(1 - beta2) * grads * grads
    denom = np.sqrt(v) * t(1 / np.sqrt(1 - beta2 ** step)) + t(eps)
    c_g = lr * (1 - mu) / (1 - mu_product)
    c_m = lr * mu_next / (1 - mu_product * mu_next)
    params -= (t(c_g) * grads + t(c_m) * m) / denom
    return mu_product


def max_norm_constraint(W, max_norm):
    """W[:, j] *= max_norm / |W[:, j]| for every column whose norm exceeds max_norm."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norms = np.sqrt(np.einsum("ij,ij->j", W, W, dtype=np.float64))
    too_long = norms > max_norm
    if too_long.any():
        W[:, too_long] *= (max_norm / norms[too_long]).astype(W.dtype)


def _check_lengths(params, **others):
    for name, a in others.items():
        if a.shape != params.shape:
            raise ValueError(f"{name} has length {a.shape[0]}, expected {params.shape[0]}")


# ---- batch normalization, PReLU, maxout -------------------------------------------

def _check_eps(eps):
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")


def batchnorm_forward(X, gamma, beta, Y, mean, var, eps=1e-5):
    """Batch normalization with the batch's statistics (Ioffe & Szegedy 2015):
    mean, var (float64, biased) over the rows; Y = gamma (X - mean) / sqrt(var + eps) + beta."""
    n, m = X.shape
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        _check(name, v, (m,))
    _check("Y", Y, X.shape)
    _check_eps(eps)
    if n == 0:
        raise ValueError("batch normalization needs at least one row")
    Xd = X.astype(np.float64)
    mean[...] = Xd.mean(axis=0)
    var[...] = ((Xd - mean) ** 2).mean(axis=0)
    scale = (gamma / np.sqrt(var + eps)).astype(X.dtype)
    np.multiply(X - mean.astype(X.dtype), scale, out=Y)
    Y += beta


def batchnorm_backward(X, gamma, mean, var, dY, dX, dgamma, dbeta, eps=1e-5):
    """dbeta = sum dY, dgamma = sum dY xhat,
    dX = gamma / sqrt(var + eps) (dY - dbeta / n - xhat dgamma / n)."""
    n, m = X.shape
    for name, v in (("gamma", gamma), ("mean", mean), ("var", var), ("dgamma", dgamma),
                    ("dbeta", dbeta)):
        _check(name, v, (m,))
    _check("dY", dY, X.shape)
    _check("dX", dX, X.shape)
    _check_eps(eps)
    if n == 0:
        raise ValueError("batch normalization needs at least one row")
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (X - mean.astype(X.dtype)) * inv_std.astype(X.dtype)
    sum_dy = dY.sum(axis=0, dtype=np.float64)
    sum_dyx = (dY * xhat).sum(axis=0, dtype=np.float64)
    dbeta[...] = sum_dy
    dgamma[...] = sum_dyx
    scale = (gamma * inv_std).astype(X.dtype)
    np.multiply(scale, dY - (sum_dy / n).astype(X.dtype) - xhat * (sum_dyx / n).astype(X.dtype),
                out=dX)


def batchnorm_inference(X, gamma, beta, running_mean, running_var, Y, eps=1e-5):
    """Y = gamma (X - running_mean) / sqrt(running_var + eps) + beta."""
    m = X.shape[1]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _check(name, v, (m,))
    _check("Y", Y, X.shape)
    _check_eps(eps)
    scale = (gamma / np.sqrt(running_var.astype(np.float64) + eps)).astype(X.dtype)
    np.multiply(X - running_mean, scale, out=Y)
    Y += beta


def prelu_forward(X, alpha, out):
    """Parametric ReLU (He et al. 2015): out = X if X > 0 else alpha_c X."""
    _check("alpha", alpha, (X.shape[1],))
    _check("out", out, X.shape)
    np.copyto(out, np.where(X > 0, X, alpha * X))


def prelu_backward(X, alpha, dA, dX, dalpha):
    """dX = dA (1 if X > 0 else alpha_c) (dX None: skipped), dalpha_c = sum_r dA min(X, 0)."""
    _check("alpha", alpha, (X.shape[1],))
    _check("dA", dA, X.shape)
    _check("dalpha", dalpha, (X.shape[1],))
    dalpha[...] = (dA * np.minimum(X, 0)).sum(axis=0, dtype=np.float64)
    if dX is not None:
        _check("dX", dX, X.shape)
        np.multiply(dA, np.where(X > 0, X.dtype.type(1), alpha), out=dX)


def _pieces(Z, units, pieces):
    if pieces < 2:
        raise ValueError(f"maxout needs pieces >= 2, got {pieces}")
    if Z.shape[1] != units * pieces:
        raise ValueError(f"Z has {Z.shape[1]} columns, expected units * pieces = "
                         f"{units} * {pieces}")
    return Z.reshape(Z.shape[0], pieces, units)   # piece j of unit u: column j units + u


def maxout_forward(Z, out, pieces):
    """Maxout (Goodfellow et al. 2013): out[r, u] = max_j Z[r, j units + u]."""
    P = _pieces(Z, out.shape[1], pieces)
    _check("out", out, (Z.shape[0], out.shape[1]))
    np.max(P, axis=1, out=out)


def maxout_backward(Z, dA, dZ, pieces):
    """dZ[r, j units + u] = dA[r, u] at each unit's first maximal piece, else 0."""
    n, units = dA.shape
    P = _pieces(Z, units, pieces)
    _check("dA", dA, (Z.shape[0], units))
    _check("dZ", dZ, Z.shape)
    best = P.argmax(axis=1)
    dZ[...] = 0
    dZ.reshape(n, pieces, units)[np.arange(n)[:, None], best, np.arange(units)[None, :]] = dA


# ---- the plan -------------------------------------------------------------------

class _Layer:
    """One layer of the twin plan: its spec, views of its parameters and
    gradients in the flat buffers, and its activation buffers."""

    def __init__(self, spec, params, grads, running):
        self.kind, self.n_in, self.n_out = spec["kind"], spec["n_in"], spec["n_out"]
        self.pieces, self.drop = spec["pieces"], spec["drop"]
        self.act, self.alpha = ACTIVATIONS[spec["act"]], spec["alpha"]
        self.momentum, self.eps = spec["momentum"], spec["eps"]
        views = [(params[off:off + size], grads[off:off + size])
                 for off, size, _ in spec_spans(spec)]
        n_z = self.n_out * self.pieces
        if self.kind in ("dense", "maxout"):
            (W, dW), (self.b, self.db) = views
            self.W, self.dW = W.reshape(self.n_in, n_z), dW.reshape(self.n_in, n_z)
        elif self.kind == "batchnorm":
            (self.gamma, self.dgamma), (self.beta, self.dbeta) = views
            self.running_mean = running[spec["rm_off"]:spec["rm_off"] + self.n_out]
            self.running_var = running[spec["rv_off"]:spec["rv_off"] + self.n_out]
            self.mean, self.var = np.zeros(self.n_out), np.zeros(self.n_out)  # batch statistics
        else:
            ((self.slope, self.dslope),) = views

    def allocate(self, rows, dtype):
        shape = (rows, self.n_out)
        self.Z = np.empty(shape, dtype)
        self.A = self.Z if self.act == "identity" else np.empty(shape, dtype)
        self.D = self.A if self.drop == 0 else np.empty(shape, dtype)
        self.dZ = np.empty(shape, dtype)
        if self.kind == "maxout":
            self.P = np.empty((rows, self.n_out * self.pieces), dtype)
            self.dP = np.empty_like(self.P)

    def forward(self, inp):
        """A = layer(inp) in training (batch statistics), into the plan's buffers."""
        n = inp.shape[0]
        P = self.P[:n] if self.kind == "maxout" else None
        return self._apply(inp, self.Z[:n], self.A[:n], P, training=True)

    def infer(self, inp):
        """The layer at inference (running statistics, no dropout) on inp, into
        arrays of this call: safe when several threads predict at once."""
        A = np.empty((inp.shape[0], self.n_out), inp.dtype)
        Z = A if self.act == "identity" else np.empty_like(A)
        P = (np.empty((inp.shape[0], self.n_out * self.pieces), inp.dtype)
             if self.kind == "maxout" else None)
        return self._apply(inp, Z, A, P, training=False)

    def _apply(self, inp, Z, A, P, training):
        """A = layer(inp), with Z the pre-activation and P maxout's pieces;
        batch statistics when training, the running ones otherwise."""
        if self.kind == "dense":
            dense_forward(inp, self.W, self.b, self.act, Z, A, self.alpha)
        elif self.kind == "maxout":
            np.matmul(inp, self.W, out=P)
            P += self.b
            maxout_forward(P, A, self.pieces)
        elif self.kind == "prelu":
            prelu_forward(inp, self.slope, A)
        else:
            if training:
                batchnorm_forward(inp, self.gamma, self.beta, Z, self.mean, self.var, self.eps)
            else:
                batchnorm_inference(inp, self.gamma, self.beta, self.running_mean,
                                    self.running_var, Z, self.eps)
            _FORWARD[self.act](Z, self.alpha, A)
        return A

    def backward(self, inp, dZ, dX):
        """dZ holds dLoss/dA: the parameter gradients, and dX = dLoss/dinp (None: skipped)."""
        n = inp.shape[0]
        if self.kind == "dense":
            dense_backward(inp, self.W, self.Z[:n], self.A[:n], dZ, self.act, dZ, self.dW,
                           self.db, dX, self.alpha)
        elif self.kind == "maxout":
            dP = self.dP[:n]
            maxout_backward(self.P[:n], dZ, dP, self.pieces)
            np.matmul(inp.T, dP, out=self.dW)
            np.sum(dP, axis=0, out=self.db)
            if dX is not None:
                np.matmul(dP, self.W.T, out=dX)
        elif self.kind == "prelu":
            prelu_backward(inp, self.slope, dZ, dX, self.dslope)
        else:
            np.multiply(dZ, _DERIVATIVE[self.act](self.Z[:n], self.A[:n], self.alpha), out=dZ)
            batchnorm_backward(inp, self.gamma, self.mean, self.var, dZ,
                               np.empty_like(dZ) if dX is None else dX, self.dgamma,
                               self.dbeta, self.eps)

    def update_running_stats(self, rows):
        m = self.momentum
        self.running_mean[...] = m * self.running_mean.astype(np.float64) + (1 - m) * self.mean
        self.running_var[...] = (m * self.running_var.astype(np.float64)
                                 + (1 - m) * self.var * (rows / (rows - 1) if rows > 1 else 1.0))


class Plan:
    """NumPy twin of fastmlp._kernels.plan.Plan: the same train step, layer by
    layer with the kernels above (one NumPy call per operation), from the same
    layer specs (fastmlp._layer_specs)."""

    def __init__(self, layers, params, grads, loss_kind, loss_param=0.0, seed=0, running=None):
        if not layers:
            raise ValueError("a plan needs at least one layer")
        if not 0 <= loss_kind < len(LOSSES):
            raise ValueError(f"unknown loss code {loss_kind}; there are {len(LOSSES)}")
        if LOSSES[loss_kind] in ("huber", "mape") and not loss_param > 0:
            raise ValueError(f"{LOSSES[loss_kind]} needs a parameter > 0, got {loss_param}")
        self.specs = [layer_spec(i, spec, len(ACTIVATIONS)) for i, spec in enumerate(layers)]
        self.n_bn = sum(spec["kind"] == "batchnorm" for spec in self.specs)
        if self.n_bn and (running is None or running.dtype != params.dtype or running.ndim != 1):
            raise ValueError("batchnorm layers need `running`: a writeable contiguous 1-D "
                             "array of the parameters' dtype")
        self.dtype = params.dtype
        self.seed = seed
        self.layers = []
        for i, spec in enumerate(self.specs):
            for off, size, _ in spec_spans(spec):
                if off < 0 or off + size > params.shape[0]:
                    raise ValueError(f"layer {i} does not fit in the parameter buffer")
            if spec["kind"] == "batchnorm":
                for off in (spec["rm_off"], spec["rv_off"]):
                    if off < 0 or off + spec["n_out"] > running.shape[0]:
                        raise ValueError(f"layer {i} does not fit in the running-statistics "
                                         "buffer")
            if i > 0 and spec["n_in"] != self.specs[i - 1]["n_out"]:
                raise ValueError(f"layer {i} expects {spec['n_in']} inputs, the previous layer "
                                 f"has {self.specs[i - 1]['n_out']} outputs")
            if spec["drop"] > 0 and i == len(self.specs) - 1:
                raise ValueError(f"layer {i}: dropout rate {spec['drop']} must be in [0, 1), "
                                 "and 0 on the last layer")
            self.layers.append(_Layer(spec, params, grads, running))
        self.params, self.grads, self.running = params, grads, running
        self.loss_kind, self.loss_param = loss_kind, loss_param
        self.capacity = 0
        self._step = 0
        self.status = 0  # as the native Plan: 1 loss, 2 gradient, 3 parameters not finite
        self._stats_rows = 0  # rows of batch statistics not yet in the running averages
        # [start, end, is_weight_matrix) pieces covering the flat buffer
        spans = sorted((off, off + size) for off, size in self.decay_spans)
        self.segments, cur = [], 0
        for start, end in spans:
            if start < cur:
                raise ValueError("weight matrices overlap in the parameter buffer")
            self.segments += [(cur, start, False), (start, end, True)]
            cur = end
        self.segments.append((cur, params.shape[0], False))
        self.segments = [seg for seg in self.segments if seg[1] > seg[0]]
        self.set_sgd(0.01, 0.0, False, None)
        self.set_regularization(0.0, 0.0, 0.0)
        self.set_clipping(0.0, 0.0)

    # -- optimizer (same methods as the native Plan) ----------------------------

    @property
    def decay_spans(self):
        """[(offset, size), ...] of the weight matrices (dense and maxout W)."""
        return [(off, size) for spec in self.specs
                for off, size, is_weight in spec_spans(spec) if is_weight]

    def set_sgd(self, lr, momentum, nesterov, velocity):
        self._set("sgd", lr, (momentum, nesterov), (velocity,))

    def set_adam(self, lr, beta1, beta2, eps, m, v, weight_decay=0.0):
        self._set("adam", lr, (beta1, beta2, eps, weight_decay), (m, v))

    def set_adagrad(self, lr, eps, accumulator):
        self._set("adagrad", lr, (eps,), (accumulator,))

    def set_rmsprop(self, lr, rho, eps, momentum, square_avg, momentum_buffer=None,
                    grad_avg=None):
        self._set("rmsprop", lr, (rho, eps, momentum), (square_avg, momentum_buffer, grad_avg))

    def set_nadam(self, lr, beta1, beta2, eps, momentum_decay, m, v):
        self._set("nadam", lr, (beta1, beta2, eps, momentum_decay), (m, v))

    def _set(self, kind, lr, hyper, state):
        self.opt, self.hyper, self.state = kind, hyper, state
        self.lr = lr
        self._sync_mu_product()

    def _sync_mu_product(self):
        self.mu_product = 1.0
        if self.opt == "nadam":
            beta1, _, _, momentum_decay = self.hyper
            for t in range(1, self._step + 1):
                self.mu_product *= _nadam_mu(beta1, momentum_decay, t)

    def set_regularization(self, l1, l2, max_norm):
        for name, value in (("l1", l1), ("l2", l2), ("max_norm", max_norm)):
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.l1, self.l2, self.max_norm = float(l1), float(l2), float(max_norm)

    def set_clipping(self, clip_norm, clip_value):
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.clip_norm, self.clip_value = float(clip_norm), float(clip_value)

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        if not (value >= 0 and np.isfinite(value)):
            raise ValueError(f"the learning rate must be finite and >= 0, got {value}")
        self._lr = float(value)

    @property
    def step(self):
        return self._step

    @step.setter
    def step(self, value):
        if value < 0:
            raise ValueError("step must be >= 0")
        self._step = int(value)
        self._sync_mu_product()

    def penalty(self):
        """l1 |W|_1 + l2/2 |W|^2 over the weight matrices."""
        total = 0.0
        if not (self.l1 or self.l2):
            return total
        for start, end, weights in self.segments:
            if weights:
                W = self.params[start:end].astype(np.float64)
                total += 0.5 * self.l2 * np.dot(W, W) + self.l1 * np.abs(W).sum()
        return total

    def ensure_capacity(self, rows):
        if rows <= self.capacity:
            return
        for layer in self.layers:
            layer.allocate(rows, self.dtype)
        self.capacity = rows

    def _check_rows(self, rows):
        if rows == 0:
            raise ValueError("the batch is empty")
        if self.n_bn and rows < 2:
            raise ValueError("batch normalization needs at least 2 samples per training batch")

    def _forward(self, X):
        """The training forward pass (batch statistics, dropout) into the plan's buffers."""
        n = X.shape[0]
        self.ensure_capacity(n)
        self._stats_rows = 0  # this pass overwrites the batch statistics
        inp = X
        self._inputs = []
        for i, layer in enumerate(self.layers):
            self._inputs.append(inp)
            inp = layer.forward(inp)
            if layer.drop > 0:
                dropout(inp, layer.D[:n], layer.drop, self.seed, i, self.step)
                inp = layer.D[:n]
        return inp

    def _loss(self, out, y, sample_weight, grad):
        return loss_and_gradient(out, y, grad, self.loss_kind, self.loss_param, sample_weight)

    def forward_backward(self, X, y, sample_weight=None):
        n = X.shape[0]
        self._check_rows(n)
        self.status = 0
        out = self._forward(X)
        loss = self._loss(out, y, sample_weight, self.layers[-1].dZ[:n])
        if not np.isfinite(loss):
            self.status = 1
            return loss
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            dZ = layer.dZ[:n]  # dLoss/dD on entry
            if layer.drop > 0:  # through the same mask to dLoss/dA
                dropout(dZ, dZ, layer.drop, self.seed, i, self.step)
            layer.backward(self._inputs[i], dZ, None if i == 0 else self.layers[i - 1].dZ[:n])
        if not np.isfinite(self.grads).all():
            self.status = 2
        elif self.n_bn:
            self._stats_rows = n
        return loss

    def apply_update(self):
        """Clip the gradient, add the penalty gradient on weight matrices, update
        each piece of the flat buffer, then the max-norm constraint; returns the
        penalty before the update."""
        self.status = 0
        self._step += 1
        t = self.dtype.type
        scale = 1.0
        if self.clip_norm > 0:
            norm = np.sqrt(np.dot(self.grads.astype(np.float64), self.grads.astype(np.float64)))
            scale = self.clip_norm / norm if norm > self.clip_norm else 1.0
        penalty = self.penalty()
        mu_product = self.mu_product
        # weight matrices and the rest differ only under a penalty or weight decay;
        # without one the whole flat buffer is one update, as a NumPy user would write it
        per_weight = self.l1 or self.l2 or (self.opt == "adam" and self.hyper[3])
        segments = self.segments if per_weight else [(0, self.params.shape[0], False)]
        for start, end, weights in segments:
            p, g = self.params[start:end], self.grads[start:end]
            state = [None if a is None else a[start:end] for a in self.state]
            if scale != 1.0:
                g = g * t(scale)
            if self.clip_value > 0:
                g = np.clip(g, t(-self.clip_value), t(self.clip_value))
            if weights and self.l2:
                g = g + t(self.l2) * p
            if weights and self.l1:
                g = g + t(self.l1) * np.sign(p)
            if self.opt == "adam":
                beta1, beta2, eps, weight_decay = self.hyper
                adamw_update(p, g, *state, self.lr, beta1, beta2, eps,
                             weight_decay if weights else 0.0, self._step)
            elif self.opt == "nadam":
                mu_product = nadam_update(p, g, *state, self.lr, *self.hyper, self._step,
                                          self.mu_product)
            elif self.opt == "adagrad":
                adagrad_update(p, g, state[0], self.lr, self.hyper[0])
            elif self.opt == "rmsprop":
                rho, eps, momentum = self.hyper
                rmsprop_update(p, g, state[0], self.lr, rho, eps, momentum, state[1], state[2])
            else:
                momentum, nesterov = self.hyper
                sgd_update(p, g, state[0], self.lr, momentum, nesterov)
        self.mu_product = mu_product
        if not np.isfinite(self.params).all():
            self.status = 3
        elif self.max_norm > 0:
            for layer in self.layers:
                if layer.kind in ("dense", "maxout"):
                    max_norm_constraint(layer.W, self.max_norm)
        if self._stats_rows:
            for layer in self.layers:
                if layer.kind == "batchnorm":
                    layer.update_running_stats(self._stats_rows)
            self._stats_rows = 0
        return penalty

    def train_step(self, X, y, sample_weight=None):
        loss = self.forward_backward(X, y, sample_weight)
        if self.status == 0:
            loss += self.apply_update()
        return loss

    def loss(self, X, y, sample_weight=None):
        self._check_rows(X.shape[0])
        out = self._forward(X)
        return self._loss(out, y, sample_weight, np.empty_like(out))

    def train_epoch(self, X, y, order, batch_size, losses, sample_weight=None, lrs=None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n = order.shape[0]
        n_batches = -(-n // batch_size)
        if self.n_bn and n - (n_batches - 1) * batch_size < 2:
            raise ValueError(f"batch normalization needs at least 2 samples per training batch: "
                             f"{n} samples in batches of {batch_size} leave one of 1; choose "
                             "another batch_size")
        if lrs is not None:
            if lrs.shape[0] < n_batches:
                raise ValueError(f"lrs must hold a learning rate for each of {n_batches} batches")
            if not (np.isfinite(lrs[:n_batches]).all() and (lrs[:n_batches] >= 0).all()):
                raise ValueError("the learning rates must be finite and >= 0")
        for i in range(n_batches):
            if lrs is not None:
                self.lr = lrs[i]
            idx = order[i * batch_size:(i + 1) * batch_size]
            sw = None if sample_weight is None else sample_weight[idx]
            losses[i] = self.train_step(X[idx], y[idx], sw)
            if self.status != 0:
                return i + 1
        return n_batches

    def predict(self, X, out, output_transform=True):
        if X.shape[0] == 0:
            return out
        # buffers of this call, not the plan's (as the native plan), so that several
        # threads may predict at once
        inp = X
        for layer in self.layers:
            inp = layer.infer(inp)
        out[...] = inp
        if output_transform:
            loss_output(out, self.loss_kind, out)
        return out
