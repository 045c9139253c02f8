"""The side-by-side contenders of ``fastmlp bench`` at each of the project's
sizes: one epoch of training (shuffled mini-batches, Adam) and single-row
predict latency, for fastmlp native, its NumPy backend, scikit-learn and
PyTorch (each skipped when not installed) and the GEMMs alone.

The contenders are fastmlp/_bench/contenders.py's, so these are the very
workloads of the table.  After timing, each benchmark checks the result: the
epoch's loss is finite and the model still predicts probabilities; PyTorch,
started from the fastmlp model's initial weights, takes the same first step
and predicts the same probabilities.

Under ``--benchmark-disable`` (the CI smoke test) nothing is timed, so the
epoch runs over two batches instead of the size's full epoch: every code
path, a fraction of the time.
"""
import os

import numpy as np
import pytest

from _workloads import SIZE_NAMES, SIZES, assert_close, make_data, make_model
from fastmlp._bench.contenders import CONTENDERS, build

parametrize_size = pytest.mark.parametrize("size", SIZE_NAMES)
parametrize_contender = pytest.mark.parametrize("contender", list(CONTENDERS))

THREADS = min(2, os.cpu_count() or 1)
_LIBRARY = {"scikit-learn": "sklearn", "PyTorch": "torch"}


def _contender(name, size, rows):
    if name in _LIBRARY:
        pytest.importorskip(_LIBRARY[name])
    X, y = make_data(size, rows)
    return build(name, size, X, y, THREADS)


def _label(benchmark, what, size, detail, name, samples):
    benchmark.group = f"{what} {size.name} ({size.network}, {detail})"
    benchmark.extra_info.update(backend=name, size=size.name, samples=samples)


@parametrize_size
@parametrize_contender
def test_epoch(benchmark, contender, size):
    size = SIZES[size]
    rows = 2 * size.batch if benchmark.disabled else size.epoch_samples
    c = _contender(contender, size, rows)
    _label(benchmark, "one epoch", size, f"{rows} samples in batches of {size.batch}, shuffled",
           contender, samples=rows)

    with c.scope():
        loss = benchmark(c.epoch)

    if contender == "GEMMs only":
        assert np.isnan(loss) and all(np.isfinite(dW).all() for dW in c.step.dW)
        return
    assert np.isfinite(loss)
    proba = c.predict(c.X[:16])
    assert_close(proba.sum(axis=1), np.ones(16), rtol=1e-5)
    if contender == "PyTorch":
        # the same first step as fastmlp from the same weights on the same batch
        fresh = _contender(contender, size, size.batch)
        first = make_model(size, "native").train_step(fresh.X, fresh.y)
        np.testing.assert_allclose(fresh.step(fresh.tX, fresh.ty), first, rtol=1e-5)


@parametrize_size
@parametrize_contender
def test_predict_latency(benchmark, contender, size):
    size = SIZES[size]
    c = _contender(contender, size, size.batch)
    row = np.ascontiguousarray(c.X[:1])
    _label(benchmark, "predict 1 row", size, "latency", contender, samples=1)

    with c.scope():
        out = benchmark(c.predict, row)

    assert out.shape == (1, size.n_classes)
    if contender == "GEMMs only":
        return
    assert_close(out.sum(axis=1), np.ones(1), rtol=1e-5)
    if contender in ("native", "native 1T", "numpy", "PyTorch"):
        # all start from the same initial weights: the same probabilities
        assert_close(out, make_model(size, "native").predict(row), rtol=1e-4)
