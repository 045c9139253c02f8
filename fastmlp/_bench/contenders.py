"""The contenders of the side-by-side benchmark, each doing the same work.

Every contender trains the network of a `Size` (float32, ReLU hidden layers,
logits, softmax cross-entropy, Adam with lr 1e-3 and the default betas and eps)
for one epoch over the same data (X, y): a new random permutation of the rows
per epoch, consecutive mini-batches of ``size.batch`` rows gathered from it,
one Adam step per batch.  A contender's model is built once and each epoch
continues training it (steady state, as the epochs of a real run).  Each also
predicts class probabilities for a batch of rows and for a single row.

* ``native`` / ``native 1T``: ``Sequential.fit(epochs=1, shuffle=True)``
  with all threads / inside ``fastmlp.threads(1)``;
* ``numpy``: the same model with ``backend="numpy"``;
* ``scikit-learn``: ``MLPClassifier(solver="adam", alpha=0, tol=0,
  max_iter=1, warm_start=True, shuffle=True)``, one ``fit`` per epoch.  Given
  float32 input it computes in float32 (its weights take X's dtype since
  scikit-learn 1.2); its ConvergenceWarning after each one-epoch fit is
  silenced;
* ``PyTorch``: eager ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU``, started
  from the fastmlp model's initial weights, ``nn.CrossEntropyLoss``,
  ``torch.optim.Adam(fused=True)`` (``foreach=True`` where fused Adam is not
  available on the CPU), ``torch.set_num_threads`` equal to fastmlp's; the
  loop is the usual one without a DataLoader (``randperm``, ``index_select``,
  ``zero_grad``, forward, ``backward``, ``step``, ``loss.item()``);
* ``GEMMs only``: the epoch's matrix products and nothing else (GemmStep on
  consecutive slices of X: the products do not depend on which rows).

A contender whose library is missing raises `Unavailable` when built.
"""
import contextlib
import warnings

import numpy as np

import fastmlp as fm

from .workloads import LR, GemmForward, GemmStep, make_model

__all__ = ["Unavailable", "CONTENDERS", "build"]


class Unavailable(Exception):
    """The contender's library is not installed (the message says which)."""


def optional_import(module, library):
    """import `module`, or raise Unavailable naming `library`."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"{library} is not installed") from None


class Contender:
    """A model of one size trained and queried by one library.

    Attributes
    ----------
    name : str
    size : Size
    threads : int
        Threads the contender computes with.
    """

    name = "?"

    def __init__(self, size, X, y, threads):
        self.size, self.X, self.y, self.threads = size, X, y, threads

    def scope(self):
        """Context in force while the contender runs (thread settings)."""
        return contextlib.nullcontext()

    def epoch(self):
        """Train one epoch; returns the epoch's mean batch loss (nan when not computed)."""
        raise NotImplementedError

    def predict(self, X):
        """Class probabilities (n, n_classes) for float32 X (n, n_features)."""
        raise NotImplementedError


class Native(Contender):
    name = "native"
    backend = "native"

    def __init__(self, size, X, y, threads):
        super().__init__(size, X, y, threads)
        self.model = make_model(size, self.backend)

    def scope(self):
        return fm.threads(self.threads)

    def epoch(self):
        history = self.model.fit(self.X, self.y, epochs=1, batch_size=self.size.batch,
                                 shuffle=True, verbose=0)
        return history.history["loss"][0]

    def predict(self, X):
        return self.model.predict(X)


class NativeOneThread(Native):
    name = "native 1T"

    def __init__(self, size, X, y, threads):
        super().__init__(size, X, y, 1)


class NumpyBackend(Native):
    name = "numpy"
    backend = "numpy"


class ScikitLearn(Contender):
    name = "scikit-learn"

    def __init__(self, size, X, y, threads):
        super().__init__(size, X, y, threads)
        self._warning = optional_import("sklearn.exceptions", self.name).ConvergenceWarning
        MLPClassifier = optional_import("sklearn.neural_network", self.name).MLPClassifier
        self.model = MLPClassifier(hidden_layer_sizes=size.layers[1:-1], activation="relu",
                                   solver="adam", learning_rate_init=LR,
                                   batch_size=size.batch, max_iter=1, shuffle=True, alpha=0.0,
                                   tol=0.0, warm_start=True, random_state=0)
        # the first fit initializes the weights (untimed, like the other models' construction)
        self.epoch()

    def scope(self):
        return fm.threads(self.threads)  # its matrix products go to NumPy's BLAS

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._warning)
            self.model.fit(self.X, self.y)
        return float(self.model.loss_)

    def predict(self, X):
        return self.model.predict_proba(X)


class Torch(Contender):
    name = "PyTorch"

    def __init__(self, size, X, y, threads):
        super().__init__(size, X, y, threads)
        self.torch = torch = optional_import("torch", self.name)
        torch.set_num_threads(threads)
        layers = []
        weights = make_model(size, "native").get_weights()  # the same initial weights
        for i, (n_in, n_out) in enumerate(zip(size.layers[:-1], size.layers[1:])):
            linear = torch.nn.Linear(n_in, n_out)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
            layers.append(linear)
            if i < len(size.layers) - 2:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        try:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, fused=True)
            self.optimizer_kind = "fused"
        except (RuntimeError, TypeError, ValueError):  # no fused Adam on this CPU build
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, foreach=True)
            self.optimizer_kind = "foreach"
        self.tX = torch.from_numpy(X)
        self.ty = torch.from_numpy(y)
        self.generator = torch.Generator().manual_seed(0)

    def scope(self):
        return _torch_threads(self.torch, self.threads)

    def step(self, xb, yb):
        """One Adam step on a batch of tensors; returns the loss before it."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def epoch(self):
        torch, n, batch = self.torch, self.tX.shape[0], self.size.batch
        order = torch.randperm(n, generator=self.generator)
        total = 0.0
        for lo in range(0, n, batch):
            idx = order[lo:lo + batch]
            total += self.step(self.tX.index_select(0, idx), self.ty.index_select(0, idx)) \
                * idx.shape[0]
        return total / n

    def predict(self, X):
        torch = self.torch
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(X)), dim=1).numpy()


@contextlib.contextmanager
def _torch_threads(torch, n):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class GemmsOnly(Contender):
    name = "GEMMs only"

    def __init__(self, size, X, y, threads):
        super().__init__(size, X, y, threads)
        self.step = GemmStep(size)
        self._forward = {}

    def scope(self):
        return fm.threads(self.threads)

    def epoch(self):
        X, batch = self.X, self.size.batch
        # full batches only: the sizes' epochs are whole numbers of batches
        for lo in range(0, X.shape[0] - batch + 1, batch):
            self.step(X[lo:lo + batch])
        return float("nan")

    def predict(self, X):
        forward = self._forward.get(X.shape[0])
        if forward is None:
            forward = self._forward[X.shape[0]] = GemmForward(self.size, X.shape[0])
        return forward(X)


CONTENDERS = {c.name: c for c in (Native, NativeOneThread, NumpyBackend, ScikitLearn, Torch,
                                  GemmsOnly)}


def build(name, size, X, y, threads):
    """The contender `name` for `size` on (X, y) with `threads` threads (raises Unavailable)."""
    return CONTENDERS[name](size, X, y, threads)
