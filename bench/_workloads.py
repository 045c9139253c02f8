"""Workloads shared by the benchmark suites and bench/compare.py.

The project's three network sizes, the models and data built from them, the
GEMMs-only step (the matrix products of a train step and nothing else), and
float64 NumPy oracles that every benchmark checks its result against after
timing ("fast functions are no good if they return incorrect results").

Everything is float32 (fastmlp's default dtype) and seeded, so a run is
repeatable and the native and numpy backends see identical inputs.
"""
from dataclasses import dataclass

import numpy as np

import fastmlp as fm

BACKENDS = ("native", "numpy")
DTYPE = np.float32
LR = 1e-3
ALPHA = 0.01  # leaky_relu slope: both backends' default


@dataclass(frozen=True)
class Size:
    """A network shape and the batch sizes it is benchmarked with.

    layers : (n_features, hidden..., n_classes)
    batch : rows of one train step
    epoch_samples : rows of the data set one benchmarked epoch runs over
    predict_samples : rows one benchmarked predict() call runs on
    """

    name: str
    layers: tuple
    batch: int
    epoch_samples: int
    predict_samples: int

    @property
    def network(self):
        return "-".join(map(str, self.layers))

    @property
    def n_features(self):
        return self.layers[0]

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def n_params(self):
        """Trainable parameters (every W and b entry)."""
        return sum(i * o + o for i, o in zip(self.layers[:-1], self.layers[1:]))

    @property
    def kernel_layer(self):
        """(rows, n_in, n_out) of the layer the kernel benchmarks use: the first hidden one."""
        return self.batch, self.layers[0], self.layers[1]

    def train_step_flops(self, rows=None):
        """Floating-point operations of one step's GEMMs (2 per multiply-add):
        forward X W and backward dW per layer, dX for every layer but the first."""
        rows = self.batch if rows is None else rows
        macs = [i * o for i, o in zip(self.layers[:-1], self.layers[1:])]
        return 2 * rows * (2 * sum(macs) + sum(macs[1:]))


SIZES = {
    "tiny": Size("tiny", (2, 64, 64, 2), batch=32, epoch_samples=4096, predict_samples=8192),
    "mnist": Size("mnist", (784, 256, 128, 10), batch=128, epoch_samples=4096,
                  predict_samples=8192),
    # ~0.1-0.3 s per step on 2 cores: small data sets keep the suites short
    "wide": Size("wide", (1024, 2048, 2048, 10), batch=512, epoch_samples=2048,
                 predict_samples=1024),
}
SIZE_NAMES = tuple(SIZES)


# ---- models and data -------------------------------------------------------

def make_model(size, backend, seed=0, threads=None):
    """float32 MLP of `size`: ReLU hidden layers, logits out, softmax CE, Adam(lr=1e-3)."""
    hidden = [fm.Dense(units, activation="relu") for units in size.layers[1:-1]]
    model = fm.Sequential(hidden + [fm.Dense(size.n_classes)], input_dim=size.n_features,
                          dtype="float32", seed=seed, backend=backend)
    return model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=LR))


def make_data(size, rows, seed=0):
    """Standard-normal features (rows, n_features) and int64 labels (rows,)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, size.n_features), dtype=DTYPE)
    y = rng.integers(0, size.n_classes, rows, dtype=np.int64)
    return X, y


def make_layer(rows, n_in, n_out, seed=0):
    """Inputs of one dense layer: X (rows, n_in), W (n_in, n_out) scaled so Z is O(1), b."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_in), dtype=DTYPE)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(DTYPE)
    b = (0.1 * rng.standard_normal(n_out)).astype(DTYPE)
    return X, W, b


class GemmStep:
    """The matrix products of one train step of `size` and nothing else, through
    NumPy's BLAS into preallocated outputs: forward Z = X W per layer, backward
    dW = X^T dZ per layer and dX = dZ W^T for every layer but the first.
    Its time is the floor a train step's other work (bias, activations, loss,
    optimizer, Python) adds to."""

    def __init__(self, size, seed=0):
        rng = np.random.default_rng(seed)
        rows, dims = size.batch, size.layers
        pairs = list(zip(dims[:-1], dims[1:]))
        self.W = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(DTYPE) for i, o in pairs]
        self.dW = [np.empty((i, o), DTYPE) for i, o in pairs]
        self.Z = [np.empty((rows, o), DTYPE) for _, o in pairs]
        # dLoss/dZ of the last layer is fixed; the others are produced by the dX products
        self.dZ = [np.zeros((rows, o), DTYPE) for _, o in pairs]
        self.dZ[-1][...] = rng.standard_normal((rows, dims[-1])) / rows

    def __call__(self, X):
        inp = X
        for W, Z in zip(self.W, self.Z):
            np.matmul(inp, W, out=Z)
            inp = Z
        for layer in range(len(self.W) - 1, -1, -1):
            inp = X if layer == 0 else self.Z[layer - 1]
            np.matmul(inp.T, self.dZ[layer], out=self.dW[layer])
            if layer > 0:
                np.matmul(self.dZ[layer], self.W[layer].T, out=self.dZ[layer - 1])


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


def assert_close(actual, desired, rtol=1e-4, atol=None, err_msg=""):
    """assert_allclose with an atol scaled to the data: values near zero (a ReLU
    output, a gradient entry that cancels) have no meaningful relative error."""
    desired = np.asarray(desired)
    if atol is None:
        atol = rtol * max(float(np.max(np.abs(desired))) if desired.size else 0.0, 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)
