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
    "ACTIVATIONS", "activation_code", "activation_forward", "activation_backward", "dropout",
    "dense_forward", "dense_backward", "softmax_cross_entropy", "mean_squared_error",
    "softmax", "sgd_update", "adam_update", "Plan",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference", "prelu_forward",
    "prelu_backward", "maxout_forward", "maxout_backward",
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
    mask = _dropout_mask(X.shape, p, seed, layer, step)
    np.multiply(X, mask * X.dtype.type(1.0 / (1.0 - p)), out=out)


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

    def forward(self, inp, training):
        """A = layer(inp) (batch statistics when training, running ones otherwise)."""
        n = inp.shape[0]
        Z, A = self.Z[:n], self.A[:n]
        if self.kind == "dense":
            dense_forward(inp, self.W, self.b, self.act, Z, A, self.alpha)
        elif self.kind == "maxout":
            P = self.P[:n]
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

    def __init__(self, layers, params, grads, loss_kind, seed=0, running=None):
        if not layers:
            raise ValueError("a plan needs at least one layer")
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
        self.loss_kind = loss_kind
        self.capacity = 0
        self.step = 0
        self.status = 0  # as the native Plan: 1 loss, 2 gradient, 3 parameters not finite
        self._stats_rows = 0  # rows of batch statistics not yet in the running averages
        self.set_sgd(0.01, 0.0, False, None)

    @property
    def decay_spans(self):
        """[(offset, size), ...] of the weight matrices (dense and maxout W)."""
        return [(off, size) for spec in self.specs
                for off, size, is_weight in spec_spans(spec) if is_weight]

    def set_sgd(self, lr, momentum, nesterov, velocity):
        self.opt = ("sgd", momentum, nesterov)
        self.lr, self.state = lr, (velocity,)

    def set_adam(self, lr, beta1, beta2, eps, m, v):
        self.opt = ("adam", beta1, beta2, eps)
        self.lr, self.state = lr, (m, v)

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

    def _forward(self, X, training=True):
        n = X.shape[0]
        self.ensure_capacity(n)
        if training:
            self._stats_rows = 0  # this pass overwrites the batch statistics
        inp = X
        self._inputs = []
        for i, layer in enumerate(self.layers):
            self._inputs.append(inp)
            inp = layer.forward(inp, training)
            if training and layer.drop > 0:
                dropout(inp, layer.D[:n], layer.drop, self.seed, i, self.step)
                inp = layer.D[:n]
        return inp

    def _loss(self, out, y, sample_weight, grad):
        if self.loss_kind == 0:
            return softmax_cross_entropy(out, y, grad, sample_weight)
        return mean_squared_error(out, y, grad, sample_weight)

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
        if self._stats_rows:
            for layer in self.layers:
                if layer.kind == "batchnorm":
                    layer.update_running_stats(self._stats_rows)
            self._stats_rows = 0

    def train_step(self, X, y, sample_weight=None):
        loss = self.forward_backward(X, y, sample_weight)
        if self.status == 0:
            self.apply_update()
        return loss

    def loss(self, X, y, sample_weight=None):
        self._check_rows(X.shape[0])
        out = self._forward(X)
        return self._loss(out, y, sample_weight, np.empty_like(out))

    def train_epoch(self, X, y, order, batch_size, losses, sample_weight=None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n = order.shape[0]
        n_batches = -(-n // batch_size)
        if self.n_bn and n - (n_batches - 1) * batch_size < 2:
            raise ValueError(f"batch normalization needs at least 2 samples per training batch: "
                             f"{n} samples in batches of {batch_size} leave one of 1; choose "
                             "another batch_size")
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
        out[...] = self._forward(X, training=False)
        if output_transform and self.loss_kind == 0:
            softmax(out, out)
        return out
