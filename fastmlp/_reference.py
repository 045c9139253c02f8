"""The pure-NumPy twin of every native kernel.

Same names and signatures as the functions in ``fastmlp._kernels`` (and a
``Plan`` with the same methods as the compiled one), written the way a careful
NumPy user would: vectorized, outputs written in place, no Python loop over
samples.  It is the oracle the native kernels are tested against and the
baseline they are benchmarked against (``backend="numpy"``).
"""
import numpy as np

__all__ = [
    "ACTIVATIONS", "DEFAULT_ALPHA", "activation_code", "activation_alpha",
    "activation_forward", "activation_backward",
    "dense_forward", "dense_backward", "softmax_cross_entropy", "mean_squared_error",
    "softmax", "sgd_update", "adam_update", "Plan",
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
    return z / np.sqrt(1 + alpha * z * z)


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

def softmax(Z, out):
    """out = softmax(Z) row by row (max subtracted first)."""
    _check("out", out, Z.shape)
    np.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def softmax_cross_entropy(Z, y, grad, sample_weight=None):
    """Mean softmax cross-entropy of logits Z with labels (n,) or targets (n, k);
    grad = w (softmax(Z) sum(t) - t) / n.  Returns the loss."""
    n, k = Z.shape
    _check("grad", grad, Z.shape)
    if n == 0 or k == 0:
        raise ValueError("softmax_cross_entropy needs at least one sample and one class")
    shifted = Z - Z.max(axis=1, keepdims=True)
    sum_exp = np.exp(shifted).sum(axis=1, dtype=np.float64)
    log_sum = np.log(sum_exp)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has length {w.shape[0]}, expected {n}")
    softmax(Z, grad)
    if y.ndim == 1:
        _check("y", y, (n,))
        rows = np.arange(n)
        loss = log_sum - shifted[rows, y]
        grad[rows, y] -= 1
    else:
        _check("y", y, Z.shape)
        t_sum = y.sum(axis=1, dtype=np.float64)
        loss = t_sum * log_sum - (y * shifted).sum(axis=1, dtype=np.float64)
        grad *= t_sum[:, None].astype(grad.dtype)
        grad -= y
    grad *= (w / n).astype(grad.dtype)[:, None]
    return float(np.dot(w, loss) / n)


def mean_squared_error(Z, Y, grad, sample_weight=None):
    """sum_r w_r |Z_r - Y_r|^2 / (2 n k), grad = w (Z - Y) / (n k).  Returns the loss."""
    n, k = Z.shape
    _check("Y", Y, Z.shape)
    _check("grad", grad, Z.shape)
    if n == 0 or k == 0:
        raise ValueError("mean_squared_error needs at least one sample and one output")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has length {w.shape[0]}, expected {n}")
    np.subtract(Z, Y, out=grad)
    per_row = np.einsum("ij,ij->i", grad, grad, dtype=np.float64)
    grad *= (w / (n * k)).astype(grad.dtype)[:, None]
    return float(np.dot(w, per_row) / (2 * n * k))


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
    params -= t(step_size) * m / denom


# ---- the plan -------------------------------------------------------------------

class Plan:
    """NumPy twin of fastmlp._kernels.plan.Plan: the same train step, layer by
    layer with the kernels above (one NumPy call per operation)."""

    def __init__(self, layers, params, grads, loss_kind):
        if not layers:
            raise ValueError("a plan needs at least one layer")
        self.dtype = params.dtype
        self.layers = []
        for n_in, n_out, act, alpha, w_off, b_off in layers:
            W = params[w_off:w_off + n_in * n_out].reshape(n_in, n_out)
            b = params[b_off:b_off + n_out]
            dW = grads[w_off:w_off + n_in * n_out].reshape(n_in, n_out)
            db = grads[b_off:b_off + n_out]
            self.layers.append((W, b, dW, db, ACTIVATIONS[act], alpha))
        self.params, self.grads = params, grads
        self.loss_kind = loss_kind
        self.capacity = 0
        self.step = 0
        self.status = 0  # as the native Plan: 1 loss, 2 gradient, 3 parameters not finite
        self.set_sgd(0.01, 0.0, False, None)

    def set_sgd(self, lr, momentum, nesterov, velocity):
        self.opt = ("sgd", momentum, nesterov)
        self.lr, self.state = lr, (velocity,)

    def set_adam(self, lr, beta1, beta2, eps, m, v):
        self.opt = ("adam", beta1, beta2, eps)
        self.lr, self.state = lr, (m, v)

    def ensure_capacity(self, rows):
        if rows <= self.capacity:
            return
        self.buffers = []
        for W, _, _, _, act, _ in self.layers:
            Z = np.empty((rows, W.shape[1]), self.dtype)
            A = Z if act == "identity" else np.empty_like(Z)
            self.buffers.append((Z, A, np.empty_like(Z)))
        self.capacity = rows

    def _forward(self, X):
        n = X.shape[0]
        self.ensure_capacity(n)
        inp = X
        for (W, b, _, _, act, alpha), (Z, A, _) in zip(self.layers, self.buffers):
            dense_forward(inp, W, b, act, Z[:n], A[:n], alpha)
            inp = A[:n]
        return inp

    def _loss(self, out, y, sample_weight, grad):
        if self.loss_kind == 0:
            return softmax_cross_entropy(out, y, grad, sample_weight)
        return mean_squared_error(out, y, grad, sample_weight)

    def forward_backward(self, X, y, sample_weight=None):
        n = X.shape[0]
        self.status = 0
        out = self._forward(X)
        dA = self.buffers[-1][2][:n]
        loss = self._loss(out, y, sample_weight, dA)
        if not np.isfinite(loss):
            self.status = 1
            return loss
        for i in range(len(self.layers) - 1, -1, -1):
            W, _, dW, db, act, alpha = self.layers[i]
            Z, A, dZ = (buf[:n] for buf in self.buffers[i])
            inp = X if i == 0 else self.buffers[i - 1][1][:n]
            dX = None if i == 0 else self.buffers[i - 1][2][:n]
            # dZ holds dLoss/dA on entry; dense_backward turns it into dLoss/dZ in place
            dense_backward(inp, W, Z, A, dZ, act, dZ, dW, db, dX, alpha)
        if not np.isfinite(self.grads).all():
            self.status = 2
        return loss

    def apply_update(self):
        self.status = 0
        self.step += 1
        if self.opt[0] == "adam":
            _, beta1, beta2, eps = self.opt
            adam_update(self.params, self.grads, *self.state, self.lr, beta1, beta2, eps,
                        self.step)
        else:
            _, momentum, nesterov = self.opt
            sgd_update(self.params, self.grads, self.state[0], self.lr, momentum, nesterov)
        if not np.isfinite(self.params).all():
            self.status = 3

    def train_step(self, X, y, sample_weight=None):
        loss = self.forward_backward(X, y, sample_weight)
        if self.status == 0:
            self.apply_update()
        return loss

    def loss(self, X, y, sample_weight=None):
        out = self._forward(X)
        return self._loss(out, y, sample_weight, np.empty_like(out))

    def train_epoch(self, X, y, order, batch_size, losses, sample_weight=None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n_batches = -(-order.shape[0] // batch_size)
        for i in range(n_batches):
            idx = order[i * batch_size:(i + 1) * batch_size]
            sw = None if sample_weight is None else sample_weight[idx]
            losses[i] = self.train_step(X[idx], y[idx], sw)
            if self.status != 0:
                return i + 1
        return n_batches

    def predict(self, X, out, output_transform=True):
        if X.shape[0] == 0:
            return out
        out[...] = self._forward(X)
        if output_transform and self.loss_kind == 0:
            softmax(out, out)
        return out
