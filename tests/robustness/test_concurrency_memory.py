"""Concurrency and memory: predict from several Python threads at once on one
model gives the serial results; 1000 fit/predict cycles leak nothing.

Bounds (stated in README, "Robustness"): after a warm-up of 100 cycles, the
next 900 cycles of fit + predict + evaluate + train_step on a tiny model may
grow Python-tracked memory (tracemalloc) by at most 256 KiB and the resident
set (RSS, /proc/self/statm) by at most 16 MiB; one cycle allocates ~10 KiB, so
a leak of even one buffer per cycle would exceed both.
"""
import gc
import os
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastmlp as fm

from .conftest import tiny_model

BACKENDS = ("native", "numpy")


def _model(backend, dtype="float32"):
    model = fm.Sequential([fm.Dense(128, activation="relu"), fm.Dense(64, activation="tanh"),
                           fm.Dense(5)], input_dim=20, dtype=dtype, seed=1, backend=backend)
    model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=1e-3))
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_from_many_python_threads_at_once(backend, n_threads):
    # regression (numpy backend): the twin plan predicted into its shared training
    # buffers, so concurrent predictions overwrote each other
    model = _model(backend)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((int(rng.integers(1, 700)), 20)) for _ in range(16)]
    with fm.threads(n_threads):
        expected = [model.predict(X) for X in inputs]
        results = [None] * len(inputs)
        errors = []
        start = threading.Barrier(8)

        def work(worker):
            try:
                start.wait()
                for _ in range(5):
                    for i in range(worker, len(inputs), 8):
                        results[i] = model.predict(inputs[i])
                        np.testing.assert_array_equal(results[i], expected[i])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_native_predict_releases_the_gil():
    # while one thread predicts a large batch natively, another Python thread keeps running
    model = _model("native")
    X = np.random.default_rng(0).standard_normal((200_000, 20)).astype(np.float32)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    with fm.threads(1):
        model.predict(X[:1000])
        t = threading.Thread(target=ticker)
        t.start()
        time.sleep(0.01)
        begin = time.perf_counter()
        model.predict(X)
        end = time.perf_counter()
        done.set()
        t.join()
    during = [x for x in ticks if begin < x < end]
    # holding the GIL for the whole call would leave no tick inside it
    assert end - begin > 0.02, "the batch is too small to tell"
    assert len(during) >= 3, f"{len(during)} ticks during a {end - begin:.3f} s predict"


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_memory_growth_over_1000_fit_predict_cycles(backend):
    X, y = np.random.default_rng(0).standard_normal((32, 3)), np.arange(32) % 3
    model = tiny_model(backend, n_in=3, n_out=3, hidden=8)

    def cycle():
        model.fit(X, y, epochs=1, batch_size=8, verbose=0)
        model.predict(X)
        model.evaluate(X, y)
        model.train_step(X[:4], y[:4])

    for _ in range(100):   # warm-up: buffers, caches, first-call allocations
        cycle()
    gc.collect()
    tracemalloc.start()
    try:
        traced0, rss0 = tracemalloc.get_traced_memory()[0], _rss()
        for _ in range(900):
            cycle()
        gc.collect()
        traced1, rss1 = tracemalloc.get_traced_memory()[0], _rss()
    finally:
        tracemalloc.stop()
    assert traced1 - traced0 < 256 * 1024, f"tracemalloc grew {traced1 - traced0} bytes"
    assert rss1 - rss0 < 16 * 2 ** 20, f"RSS grew {(rss1 - rss0) / 2 ** 20:.1f} MiB"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_no_memory_growth_over_1000_model_lifetimes():
    # building, compiling and dropping models frees the plan's native buffers
    X, y = np.random.default_rng(0).standard_normal((16, 3)), np.arange(16) % 3

    def lifetime():
        model = tiny_model("native", n_in=3, n_out=3, hidden=8)
        model.train_step(X, y)
        model.predict(X)

    for _ in range(100):
        lifetime()
    gc.collect()
    rss0 = _rss()
    for _ in range(900):
        lifetime()
    gc.collect()
    assert _rss() - rss0 < 16 * 2 ** 20
