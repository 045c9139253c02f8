"""The pure-NumPy twin of every native kernel.

Same names and signatures as the functions in ``fastmlp._kernels`` (and a
``Plan`` with the same methods as the compiled one), written the way a careful
NumPy user would: vectorized, outputs written in place, no Python loop over
samples.  It is the oracle the native kernels are tested against and the
baseline they are benchmarked against (``backend="numpy"``).
"""
import numpy as np

__all__ = [
    "ACTIVATIONS", "activation_code", "activation_forward", "activation_backward",
    "dense_forward", "dense_backward",
    "LOSSES", "loss_code", "loss_and_gradient", "loss_output", "softmax",
    "softmax_cross_entropy", "mean_squared_error", "binary_cross_entropy", "mean_absolute_error",
    "mean_absolute_percentage_error", "huber", "multiclass_hinge", "kl_divergence", "poisson",
    "sgd_update", "adam_update", "Plan",
]


# ---- activations: f(z, alpha) and f'(z, a, alpha) with a = f(z) ----------------

def _sigmoid(z, alpha, out):
    # 1 / (1 + e^-z) through e^-|z|, so no overflow; the mask is taken before
    # out is written, since out may be z
    negative = z < 0
    e = np.exp(-np.abs(z))
    np.divide(1.0, 1.0 + e, out=out)
    np.multiply(out, e, out=out, where=negative)
    return out


_FORWARD = {
    "identity": lambda z, alpha, out: np.copyto(out, z),
    "sigmoid": _sigmoid,
    "tanh": lambda z, alpha, out: np.tanh(z, out=out),
    "relu": lambda z, alpha, out: np.maximum(z, 0, out=out),
    "leaky_relu": lambda z, alpha, out: np.copyto(out, np.where(z > 0, z, z * out.dtype.type(alpha))),
}

_DERIVATIVE = {
    "identity": lambda z, a, alpha: 1,
    "sigmoid": lambda z, a, alpha: a * (1 - a),
    "tanh": lambda z, a, alpha: 1 - a * a,
    "relu": lambda z, a, alpha: z > 0,
    "leaky_relu": lambda z, a, alpha: np.where(z > 0, 1, a.dtype.type(alpha)).astype(a.dtype),
}

ACTIVATIONS = tuple(_FORWARD)


def activation_code(name):
    """Index of activation `name` (ValueError if there is none)."""
    if name not in _FORWARD:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS.index(name)


def _check(name, a, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")


def activation_forward(Z, activation, out, alpha=0.01):
    """out = f(Z) elementwise."""
    activation_code(activation)
    _check("out", out, Z.shape)
    _FORWARD[activation](Z, alpha, out)


def activation_backward(Z, A, dA, activation, out, alpha=0.01):
    """out = dA * f'(Z) elementwise, where A = f(Z)."""
    activation_code(activation)
    for name, M in (("A", A), ("dA", dA), ("out", out)):
        _check(name, M, Z.shape)
    np.multiply(dA, _DERIVATIVE[activation](Z, A, alpha), out=out)


# ---- dense layer ---------------------------------------------------------------

def dense_forward(X, W, b, activation, Z, A, alpha=0.01):
    """Z = X W + b and A = f(Z) (A may be Z)."""
    activation_code(activation)
    n_in, n_out = W.shape
    _check("X", X, (X.shape[0], n_in))
    _check("b", b, (n_out,))
    _check("Z", Z, (X.shape[0], n_out))
    _check("A", A, (X.shape[0], n_out))
    np.matmul(X, W, out=Z)
    Z += b
    _FORWARD[activation](Z, alpha, A)


def dense_backward(X, W, Z, A, dA, activation, dZ, dW, db, dX, alpha=0.01):
    """dZ = dA * f'(Z), dW = X^T dZ, db = sum_rows dZ, dX = dZ W^T (dX None: skipped)."""
    activation_code(activation)
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

    def __init__(self, layers, params, grads, loss_kind, loss_param=0.0):
        if not layers:
            raise ValueError("a plan needs at least one layer")
        if not 0 <= loss_kind < len(LOSSES):
            raise ValueError(f"unknown loss code {loss_kind}; there are {len(LOSSES)}")
        if LOSSES[loss_kind] in ("huber", "mape") and not loss_param > 0:
            raise ValueError(f"{LOSSES[loss_kind]} needs a parameter > 0, got {loss_param}")
        self.dtype = params.dtype
        self.layers = []
        for n_in, n_out, act, alpha, w_off, b_off in layers:
            W = params[w_off:w_off + n_in * n_out].reshape(n_in, n_out)
            b = params[b_off:b_off + n_out]
            dW = grads[w_off:w_off + n_in * n_out].reshape(n_in, n_out)
            db = grads[b_off:b_off + n_out]
            self.layers.append((W, b, dW, db, ACTIVATIONS[act], alpha))
        self.params, self.grads = params, grads
        self.loss_kind, self.loss_param = loss_kind, loss_param
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
        return loss_and_gradient(out, y, grad, self.loss_kind, self.loss_param, sample_weight)

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
        if output_transform:
            loss_output(out, self.loss_kind, out)
        return out
