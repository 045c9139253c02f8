"""Workloads shared by the benchmark suites and bench/compare.py.

The project's three network sizes, the models and data built from them and the
GEMMs-only step (the matrix products of a train step and nothing else), from
fastmlp/_bench.py (which ``fastmlp bench`` runs); one dense layer's inputs; and
float64 NumPy oracles that every benchmark checks its result against after
timing ("fast functions are no good if they return incorrect results").

Everything is float32 (fastmlp's default dtype) and seeded, so a run is
repeatable and the native and numpy backends see identical inputs.
"""
import numpy as np

# the sizes, models, data and GEMMs-only step live in the package, for `fastmlp bench`
from fastmlp._bench import (DTYPE, LR, SIZE_NAMES, SIZES, GemmStep, Size,  # noqa: F401
                            make_data, make_model)

BACKENDS = ("native", "numpy")
ALPHA = 0.01  # leaky_relu slope: both backends' default


def make_layer(rows, n_in, n_out, seed=0):
    """Inputs of one dense layer: X (rows, n_in), W (n_in, n_out) scaled so Z is O(1), b."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_in), dtype=DTYPE)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(DTYPE)
    b = (0.1 * rng.standard_normal(n_out)).astype(DTYPE)
    return X, W, b


# ---- float64 oracles ---------------------------------------------------------

def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow


ACTIVATION_ORACLES = {
    # name: (f(z), f'(z))
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, ALPHA * z),
                   lambda z: np.where(z > 0, 1.0, ALPHA)),
}


def softmax_cross_entropy_oracle(Z, y):
    """Mean softmax cross-entropy of logits Z and labels y, and its gradient (float64)."""
    Z = Z.astype(np.float64)
    n = Z.shape[0]
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_sum - shifted[rows, y]))
    grad = np.exp(shifted - log_sum[:, None])
    grad[rows, y] -= 1.0
    return loss, grad / n


def loss_inputs(name, rows, k, seed=4):
    """Outputs Z (rows, k) and targets of the kind loss `name` takes, float32."""
    rng = np.random.default_rng(seed)
    Z = (3.0 * rng.standard_normal((rows, k))).astype(DTYPE)
    if name == "hinge":
        return Z, rng.integers(0, k, rows, dtype=np.int64)
    if name in ("softmax_cross_entropy", "kl_divergence"):   # soft targets
        T = rng.random((rows, k)) + 0.05
        return Z, (T / T.sum(axis=1, keepdims=True)).astype(DTYPE)
    if name == "binary_cross_entropy":
        return Z, (rng.random((rows, k)) < 0.3).astype(DTYPE)
    if name == "poisson":
        return (Z / 3).astype(DTYPE), rng.poisson(2.0, (rows, k)).astype(DTYPE)
    return Z, (Z + rng.standard_normal((rows, k))).astype(DTYPE)


LOSS_PARAMS = {"huber": 1.0, "mape": 1e-7}


def loss_oracle(name, Z, y):
    """Mean loss `name` (fastmlp.losses' definitions) and its gradient, float64."""
    Z = Z.astype(np.float64)
    n, k = Z.shape
    if name == "hinge":
        rows = np.arange(n)
        others = Z.copy()
        others[rows, y] = -np.inf
        j = others.argmax(axis=1)
        margin = 1 + Z[rows, j] - Z[rows, y]
        G = np.zeros_like(Z)
        G[rows[margin > 0], j[margin > 0]] = 1
        G[rows[margin > 0], y[margin > 0]] = -1
        return float(np.maximum(margin, 0).sum() / n), G / n
    T = y.astype(np.float64)
    if name in ("softmax_cross_entropy", "kl_divergence"):
        log_p = Z - Z.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        E = -T * log_p
        if name == "kl_divergence":
            E += np.where(T > 0, T * np.log(np.where(T > 0, T, 1)), 0)
        G = np.exp(log_p) * T.sum(axis=1, keepdims=True) - T
        return float(E.sum() / n), G / n
    D = Z - T
    delta, eps = LOSS_PARAMS["huber"], LOSS_PARAMS["mape"]
    E, G = {
        "mse": lambda: (D ** 2 / 2, D),
        "mae": lambda: (np.abs(D), np.sign(D)),
        "mape": lambda: (100 * np.abs(D) / np.maximum(np.abs(T), eps),
                         100 * np.sign(D) / np.maximum(np.abs(T), eps)),
        "huber": lambda: (np.where(np.abs(D) <= delta, D ** 2 / 2, delta * (np.abs(D) - delta / 2)),
                          np.clip(D, -delta, delta)),
        "binary_cross_entropy": lambda: (np.logaddexp(0, Z) - T * Z, _sigmoid(Z) - T),
        "poisson": lambda: (np.exp(Z) - T * Z, np.exp(Z) - T),
    }[name]()
    return float(E.sum() / (n * k)), G / (n * k)


def adam_oracle(p, g, m, v, lr, beta1, beta2, eps, step):
    """One Adam step (eps outside the square root, bias-corrected), float64; returns (p, m, v)."""
    p, g, m, v = (a.astype(np.float64) for a in (p, g, m, v))
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def sgd_oracle(p, g, velocity, lr, momentum, nesterov):
    """One SGD step (PyTorch's convention), float64; returns (p, velocity)."""
    p, g, velocity = (a.astype(np.float64) for a in (p, g, velocity))
    velocity = momentum * velocity + g
    step = g + momentum * velocity if nesterov else velocity
    return p - lr * step, velocity


def adamw_oracle(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW step (PyTorch's decoupled decay p *= 1 - lr wd, then Adam), float64."""
    return adam_oracle(p.astype(np.float64) * (1 - lr * weight_decay), g, m, v, lr, beta1,
                       beta2, eps, step)


def adagrad_oracle(p, g, s, lr, eps):
    """One Adagrad step, float64; returns (p, s)."""
    p, g, s = (a.astype(np.float64) for a in (p, g, s))
    s = s + g * g
    return p - lr * g / (np.sqrt(s) + eps), s


def rmsprop_oracle(p, g, s, lr, rho, eps, momentum=0.0, b=None, a=None):
    """One RMSprop step (PyTorch's formulation; centered when a is given), float64;
    returns (p, s, b, a)."""
    p, g, s = (x.astype(np.float64) for x in (p, g, s))
    s = rho * s + (1 - rho) * g * g
    if a is not None:
        a = rho * a.astype(np.float64) + (1 - rho) * g
        d = np.sqrt(np.maximum(s - a * a, 0)) + eps
    else:
        d = np.sqrt(s) + eps
    if momentum:
        b = momentum * b.astype(np.float64) + g / d
        return p - lr * b, s, b, a
    return p - lr * g / d, s, b, a


def nadam_oracle(p, g, m, v, lr, beta1, beta2, eps, momentum_decay, step, mu_product):
    """One NAdam step (PyTorch's formulation), float64; returns (p, m, v)."""
    p, g, m, v = (a.astype(np.float64) for a in (p, g, m, v))
    mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    product = mu_product * mu
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    denom = np.sqrt(v / (1 - beta2 ** step)) + eps
    m_hat = mu_next * m / (1 - product * mu_next) + (1 - mu) * g / (1 - product)
    return p - lr * m_hat / denom, m, v


def assert_close(actual, desired, rtol=1e-4, atol=None, err_msg=""):
    """assert_allclose with an atol scaled to the data: values near zero (a ReLU
    output, a gradient entry that cancels) have no meaningful relative error."""
    desired = np.asarray(desired)
    if atol is None:
        atol = rtol * max(float(np.max(np.abs(desired))) if desired.size else 0.0, 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)
