"""fit() of fastmlp's MLPClassifier against scikit-learn's, same hyperparameters,
same data: the 8x8 digits (1797 x 64, hidden (100,)) and a synthetic
60000 x 784, 10-class set (hidden (100, 100)).

Both run a fixed number of epochs (n_iter_no_change = max_iter turns the tol
stopping off), so the timings compare the same work.  After timing, each
benchmark checks the fitted model (digits: training accuracy; synthetic: a
finite loss that fell).

    python -m pytest bench/test_bench_estimators.py --benchmark-only -q
    python -m pytest bench/test_bench_estimators.py --benchmark-disable -q   # smoke
    python bench/test_bench_estimators.py [repeats]     # interleaved fit-time ratios

FASTMLP_BENCH_EPOCHS scales the synthetic set's epochs (default 1).
"""
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import fastmlp as fm  # noqa: E402

IMPLEMENTATIONS = {"fastmlp": fm.MLPClassifier, "sklearn": SkMLPClassifier}
DIGITS_EPOCHS = 20
SYNTHETIC_EPOCHS = int(os.environ.get("FASTMLP_BENCH_EPOCHS", "1"))


def digits():
    X, y = fm.datasets.load_digits()
    return X / 16.0, y, dict(hidden_layer_sizes=(100,), max_iter=DIGITS_EPOCHS)


def synthetic(n=60000, d=784, k=10, seed=0):
    """Gaussian classes around random centers: MNIST's shape, float64 as scikit-learn's
    default."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.normal(scale=0.3, size=(k, d))
    X = centers[y] + rng.normal(size=(n, d))
    return X, y, dict(hidden_layer_sizes=(100, 100), max_iter=SYNTHETIC_EPOCHS)


DATASETS = {"digits": digits, "synthetic60k": synthetic}
_CACHE = {}


def _data(name):
    if name not in _CACHE:
        _CACHE[name] = DATASETS[name]()
    return _CACHE[name]


def fit(impl, X, y, params):
    clf = IMPLEMENTATIONS[impl](random_state=0, n_iter_no_change=params["max_iter"], **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_fit(benchmark, dataset, impl):
    X, y, params = _data(dataset)
    benchmark.group = f"estimator fit {dataset} {X.shape[0]}x{X.shape[1]} {params}"
    benchmark.extra_info.update(impl=impl, samples=X.shape[0] * params["max_iter"])
    rounds = 1 if dataset == "synthetic60k" else 3
    clf = benchmark.pedantic(fit, args=(impl, X, y, params), rounds=rounds, iterations=1)
    assert clf.n_iter_ == params["max_iter"]
    if dataset == "digits":
        assert clf.score(X, y) > 0.9
    else:
        assert np.isfinite(clf.loss_) and clf.loss_ < np.log(10)


def measure_ratios(repeats=3):
    """Median fit time of each implementation over `repeats` interleaved runs, with
    every thread pool at 1 thread and at the machine's default."""
    rows = []
    for threads in (1, None):
        for name in DATASETS:
            X, y, params = _data(name)
            times = {impl: [] for impl in IMPLEMENTATIONS}
            for _ in range(repeats):
                for impl in IMPLEMENTATIONS:
                    limits = threadpool_limits(threads) if threads else None
                    ctx = fm.threads(threads) if threads else None
                    try:
                        if ctx:
                            ctx.__enter__()
                        time.sleep(0.2)   # let idle BLAS/OpenMP workers go to sleep
                        start = time.perf_counter()
                        fit(impl, X, y, params)
                        times[impl].append(time.perf_counter() - start)
                    finally:
                        if ctx:
                            ctx.__exit__(None, None, None)
                        if limits:
                            limits.restore_original_limits()
            med = {impl: statistics.median(t) for impl, t in times.items()}
            rows.append((name, threads or "default", params, med))
            print(f"{name:13s} threads={str(threads or 'default'):7s} {params}: "
                  f"fastmlp {med['fastmlp']:.3f} s, sklearn {med['sklearn']:.3f} s, "
                  f"ratio sklearn/fastmlp {med['sklearn'] / med['fastmlp']:.1f}x", flush=True)
    return rows


if __name__ == "__main__":
    measure_ratios(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
