"""The whole model, native vs numpy backend, at each of the project's sizes:
one train_step, one epoch of fit() (shuffled), and predict() throughput.

Models are float32 with ReLU hidden layers, logits out, softmax cross-entropy
and Adam (_workloads.make_model).  After timing, each benchmark checks the
result: the loss is finite, and fresh native and numpy models built from the
same seed agree on the same batch.
"""
import numpy as np
import pytest

from _workloads import BACKENDS, SIZE_NAMES, SIZES, assert_close, make_data, make_model

parametrize_backend = pytest.mark.parametrize("backend", BACKENDS)
parametrize_size = pytest.mark.parametrize("size", SIZE_NAMES)


def _label(benchmark, what, size, detail, backend, samples):
    benchmark.group = f"{what} {size.name} ({size.network}, {detail})"
    benchmark.extra_info.update(backend=backend, size=size.name, samples=samples)


def _check_backends_agree(size, X, y, batch_size):
    """Fresh native and numpy models from one seed: the first steps' losses agree."""
    losses = {}
    for backend in BACKENDS:
        model = make_model(size, backend)
        history = model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=True, verbose=0)
        losses[backend] = history.history["loss"][0]
    assert np.isfinite(losses["native"]) and np.isfinite(losses["numpy"]), losses
    np.testing.assert_allclose(losses["native"], losses["numpy"], rtol=1e-4,
                               err_msg="native and numpy backends disagree on the loss")


@parametrize_size
@parametrize_backend
def test_train_step(benchmark, backend, size):
    size = SIZES[size]
    model = make_model(size, backend)
    xb, yb = make_data(size, size.batch)
    _label(benchmark, "train_step", size, f"batch {size.batch}", backend, samples=size.batch)

    # each timed call is one Adam step on the same batch
    loss = benchmark(model.train_step, xb, yb)

    assert np.isfinite(loss) and np.isfinite(model.train_step(xb, yb))
    first = {b: make_model(size, b).train_step(xb, yb) for b in BACKENDS}
    np.testing.assert_allclose(first["native"], first["numpy"], rtol=1e-5,
                               err_msg="first-step loss of native and numpy models differ")


@parametrize_size
@parametrize_backend
def test_fit_epoch(benchmark, backend, size):
    size = SIZES[size]
    model = make_model(size, backend)
    X, y = make_data(size, size.epoch_samples)
    n_batches = -(-size.epoch_samples // size.batch)
    _label(benchmark, "fit 1 epoch", size,
           f"{size.epoch_samples} samples, {n_batches} batches of {size.batch}, shuffled",
           backend, samples=size.epoch_samples)

    history = benchmark(model.fit, X, y, epochs=1, batch_size=size.batch, shuffle=True,
                        verbose=0)

    assert np.isfinite(history.history["loss"][0])
    # the native epoch loop (gather of shuffled rows included) against the numpy
    # plan, over a full batch and a ragged last one
    rows = size.batch + size.batch // 2
    _check_backends_agree(size, X[:rows], y[:rows], size.batch)


@parametrize_size
@parametrize_backend
def test_predict(benchmark, backend, size):
    size = SIZES[size]
    model = make_model(size, backend)
    X, _ = make_data(size, size.predict_samples)
    _label(benchmark, "predict", size, f"{size.predict_samples} samples", backend,
           samples=size.predict_samples)

    proba = benchmark(model.predict, X)

    assert proba.shape == (size.predict_samples, size.n_classes)
    assert_close(proba.sum(axis=1), np.ones(size.predict_samples), rtol=1e-5)
    other = make_model(size, BACKENDS[backend == "native"]).predict(X)
    assert_close(proba, other)
