"""Determinism: the same seed and thread count give bit-identical weights; one
and two threads agree to rounding; dropout masks do not depend on threads.

The model here (32-256-256-10, batches of 128) is large enough that the
compiled step really splits across two threads: a step is ~9.7M multiply-adds,
above the 2 x GEMM_GRAIN (1M per thread) the plan asks for, and 128 rows give
each thread at least MIN_ROWS_PER_THREAD (32).  test_two_threads_are_really_used
checks that in a fresh process.

Tolerances for 1 vs 2 threads (stated in README, "Robustness"): after one epoch
of Adam, every weight agrees to rtol 1e-4 (float32) / 1e-10 (float64) with an
atol of that rtol times the largest weight; predictions likewise.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._backend import kernels

from conftest import assert_close

RTOL_THREADS = {np.float32: 1e-4, np.float64: 1e-10}


def _data(n=512):
    rng = np.random.default_rng(3)
    return rng.standard_normal((n, 32)), rng.integers(0, 10, n)


def _train(backend, dtype, n_threads, seed=0, dropout=0.25):
    X, y = _data()
    with fm.threads(n_threads):
        layers = [fm.Dense(256, activation="relu")]
        if dropout:
            layers.append(fm.Dropout(dropout))
        layers += [fm.Dense(256, activation="tanh"), fm.Dense(10)]
        model = fm.Sequential(layers, input_dim=32, dtype=dtype, seed=seed, backend=backend)
        model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=1e-3))
        history = model.fit(X, y, epochs=1, batch_size=128, verbose=0)
        return model.get_weights(), history.history["loss"], model.predict(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_seed_and_threads_are_bit_identical(backend, dtype, n_threads):
    if backend == "numpy" and n_threads == 2:
        pytest.skip("the NumPy backend's threads are the BLAS's: covered by n_threads=1")
    w1, loss1, p1 = _train(backend, dtype, n_threads)
    w2, loss2, p2 = _train(backend, dtype, n_threads)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert loss1 == loss2
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_and_two_threads_agree_to_rounding(dtype):
    w1, loss1, p1 = _train("native", dtype, 1)
    w2, loss2, p2 = _train("native", dtype, 2)
    rtol = RTOL_THREADS[dtype]
    np.testing.assert_allclose(loss1, loss2, rtol=rtol)
    for i, (a, b) in enumerate(zip(w1, w2)):
        assert_close(a, b, dtype, rtol=rtol, err_msg=f"weights {i}")
    assert_close(p1, p2, dtype, rtol=rtol)


def test_two_threads_are_really_used():
    # In a fresh process with a single-threaded BLAS, OpenMP's worker thread
    # appears only once a parallel region runs on two threads: after the big
    # model's step, not after a tiny one.
    code = textwrap.dedent("""
        import os, numpy as np, fastmlp as fm
        def tasks():
            return len(os.listdir("/proc/self/task"))
        fm.set_num_threads(2)
        X = np.random.default_rng(0).standard_normal((128, 32))
        y = np.zeros(128, dtype=np.int64)
        base = tasks()
        small = fm.Sequential([fm.Dense(4), fm.Dense(10)], input_dim=32)
        small.compile(loss="softmax_cross_entropy")
        small.train_step(X, y)
        after_small = tasks()
        big = fm.Sequential([fm.Dense(256, activation="relu"), fm.Dense(256), fm.Dense(10)],
                            input_dim=32)
        big.compile(loss="softmax_cross_entropy")
        big.train_step(X, y)
        print(base, after_small, tasks())
    """)
    if not os.path.isdir("/proc/self/task") or not fm._kernels._runtime.openmp_enabled():
        pytest.skip("needs Linux /proc and an OpenMP build")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2",
               MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(fm.__file__)))
    base, after_small, after_big = map(int, out.stdout.split())
    assert after_small == base, "a tiny step should run on one thread"
    assert after_big > base, "the 9.7M multiply-add step should use a second thread"


def test_dropout_masks_do_not_depend_on_threads(dtype):
    native, twin = kernels("native"), kernels("numpy")
    X = np.random.default_rng(0).standard_normal((2048, 1024)).astype(dtype)  # 2M: 2 threads
    outs = []
    for n in (1, 2):
        out = np.empty_like(X)
        with fm.threads(n):
            native.dropout(X, out, 0.3, 12345, 2, 17)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    expected = np.empty_like(X)
    twin.dropout(X, expected, 0.3, 12345, 2, 17)
    np.testing.assert_array_equal(outs[0] == 0, expected == 0)


def test_dropout_gradients_agree_across_threads(dtype):
    # the same masks inside the compiled step: gradients agree to rounding (different
    # masks would make them differ by O(1))
    X, y = _data(256)
    grads = []
    for n in (1, 2):
        with fm.threads(n):
            model = fm.Sequential([fm.Dense(256, activation="relu"), fm.Dropout(0.5),
                                   fm.Dense(256, activation="relu"), fm.Dropout(0.5),
                                   fm.Dense(10)], input_dim=32, dtype=dtype, seed=4)
            model.compile(loss="softmax_cross_entropy", optimizer=fm.SGD(lr=0.1))
            model.train_step(X, y)            # step 1 masks, then step 2's gradients
            grads.append(model.loss_and_gradients(X, y)[1])
    for i, (a, b) in enumerate(zip(*grads)):
        assert_close(a, b, dtype, rtol=RTOL_THREADS[np.dtype(dtype).type], err_msg=f"grad {i}")
