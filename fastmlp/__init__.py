"""fastmlp: fast multi-layer perceptrons on the CPU.

Fused Cython/OpenMP kernels with GEMMs through BLAS, a compiled train step,
and a pure-NumPy twin of every kernel (``backend="numpy"``).

>>> import fastmlp as fm
>>> model = fm.Sequential([fm.Dense(64, activation="relu"), fm.Dense(3)], input_dim=2)
>>> model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=1e-2))
"""
from . import (activations, callbacks, datasets, initializers, io, losses, metrics,
               optimizers, plot, regularizers, schedules)
from ._threads import get_num_threads, set_num_threads, threads
from .callbacks import History
from .diagnostics import dead_units, gradcheck
from .io import load_model
from .layers import BatchNorm, Dense, Dropout, Maxout, PReLU
from .model import Sequential
from .optimizers import GD, SGD, Adagrad, Adam, AdamW, Nadam, RMSprop

__version__ = "0.1.0"

# MLPClassifier and MLPRegressor (scikit-learn estimators, see __getattr__) are left
# out so that `from fastmlp import *` works without scikit-learn
__all__ = [
    "Sequential", "Dense", "Dropout", "BatchNorm", "PReLU", "Maxout", "History", "load_model",
    "gradcheck", "dead_units", "GD", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Nadam",
    "set_num_threads", "get_num_threads", "threads",
    "activations", "callbacks", "datasets", "initializers", "io", "losses", "metrics",
    "optimizers", "plot", "regularizers", "schedules",
]

_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):
    # the scikit-learn estimators load on first use: scikit-learn is optional
    if name in _ESTIMATORS:
        try:
            from . import estimators
        except ImportError as e:
            if getattr(e, "name", None) is None or not e.name.startswith("sklearn"):
                raise
            raise ImportError(f"fastmlp.{name} needs scikit-learn: pip install "
                              f"fastmlp[sklearn] (or pip install scikit-learn)") from e
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
