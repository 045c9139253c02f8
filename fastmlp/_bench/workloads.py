"""The benchmarked workloads: the project's three network sizes, the models and
data built from them, and the GEMMs-only step (a train step's matrix products
and nothing else, the practical floor of a step on a given machine).

Shared by ``fastmlp bench`` (fastmlp/_bench/runner.py) and the pytest-benchmark
suites in bench/ (bench/_workloads.py imports them from here).
"""
from dataclasses import dataclass

import numpy as np

import fastmlp as fm

__all__ = ["DTYPE", "LR", "Size", "SIZES", "SIZE_NAMES", "make_model", "make_data", "GemmStep",
           "GemmForward"]

DTYPE = np.float32
LR = 1e-3


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

    def forward_flops(self, rows):
        """Floating-point operations of the forward GEMMs of `rows` rows (predict)."""
        return 2 * rows * sum(i * o for i, o in zip(self.layers[:-1], self.layers[1:]))


SIZES = {
    "tiny": Size("tiny", (2, 64, 64, 2), batch=32, epoch_samples=4096, predict_samples=8192),
    "mnist": Size("mnist", (784, 256, 128, 10), batch=128, epoch_samples=4096,
                  predict_samples=8192),
    # ~0.1-0.3 s per step on 2 cores: small data sets keep the suites short
    "wide": Size("wide", (1024, 2048, 2048, 10), batch=512, epoch_samples=2048,
                 predict_samples=1024),
}
SIZE_NAMES = tuple(SIZES)


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


class GemmForward:
    """The forward matrix products Z = X W of every layer for `rows` rows and
    nothing else, into preallocated outputs: the floor of predict()."""

    def __init__(self, size, rows, seed=0):
        self.W = GemmStep(size, seed).W
        self.Z = [np.empty((rows, W.shape[1]), DTYPE) for W in self.W]

    def __call__(self, X):
        inp = X
        for W, Z in zip(self.W, self.Z):
            np.matmul(inp, W, out=Z)
            inp = Z
        return inp
