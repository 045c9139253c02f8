"""Thread control: one knob (fastmlp.set_num_threads / threads()) for the OpenMP
threads of the native kernels and for the BLAS; results agree across thread counts."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastmlp as fm
from fastmlp._kernels import _runtime

from conftest import assert_close


def blas_threads():
    """Thread counts of every BLAS threadpoolctl sees, by library path."""
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}


@pytest.fixture
def restore_threads():
    """For tests that call set_num_threads directly: put both pools back after."""
    before_native, before_blas = fm.get_num_threads(), blas_threads()
    yield
    fm.set_num_threads(before_native)
    for n in set(before_blas.values()):
        threadpool_limits(limits=n, user_api="blas")
    assert fm.get_num_threads() == before_native
    assert blas_threads() == before_blas


# ---- the knob --------------------------------------------------------------------

def test_runtime_facts_of_this_build():
    assert _runtime.blas_thread_control() is True  # the BLAS in use: its thread setters found
    assert isinstance(_runtime.openmp_enabled(), bool)
    assert _runtime.default_threads() >= 1
    assert fm.get_num_threads() >= 1


def test_set_and_get(restore_threads):
    fm.set_num_threads(1)
    assert fm.get_num_threads() == 1
    assert set(blas_threads().values()) == {1}
    fm.set_num_threads(2)
    expected = 2 if _runtime.openmp_enabled() else 1
    assert fm.get_num_threads() == expected
    assert set(blas_threads().values()) == {2}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_context_manager_sets_and_restores(n):
    before_native, before_blas = fm.get_num_threads(), blas_threads()
    with fm.threads(n):
        assert fm.get_num_threads() == (n if _runtime.openmp_enabled() else 1)
        assert set(blas_threads().values()) == {n}
    assert fm.get_num_threads() == before_native
    assert blas_threads() == before_blas


def test_context_manager_restores_after_an_exception():
    before_native, before_blas = fm.get_num_threads(), blas_threads()
    with pytest.raises(KeyError):
        with fm.threads(1):
            raise KeyError("boom")
    assert fm.get_num_threads() == before_native
    assert blas_threads() == before_blas


def test_nested_context_managers():
    before = fm.get_num_threads()
    with fm.threads(1):
        with fm.threads(2):
            assert set(blas_threads().values()) == {2}
            with fm.threads(1):
                assert fm.get_num_threads() == 1
            assert set(blas_threads().values()) == {2}
        assert fm.get_num_threads() == 1
        assert set(blas_threads().values()) == {1}
    assert fm.get_num_threads() == before


@pytest.mark.parametrize("n", [0, -1, 1.5, 2.0, "2", None, True, False])
def test_invalid_counts_raise(n):
    before_native, before_blas = fm.get_num_threads(), blas_threads()
    with pytest.raises(ValueError, match="integer >= 1"):
        fm.set_num_threads(n)
    with pytest.raises(ValueError, match="integer >= 1"):
        with fm.threads(n):
            pass  # pragma: no cover
    assert fm.get_num_threads() == before_native
    assert blas_threads() == before_blas
    if isinstance(n, int) and n < 1:
        with pytest.raises(ValueError):
            _runtime.set_native_threads(n)


def test_native_call_leaves_the_blas_setting_alone(native, rng):
    # native calls make the BLAS single-threaded while they run, then put it back
    X = rng.standard_normal((130, 64))
    W = rng.standard_normal((64, 64))
    Z = np.empty((130, 64))
    for n in (1, 2):
        with fm.threads(n):
            before = blas_threads()
            native.dense_forward(X, W, np.zeros(64), "relu", Z, Z)
            assert blas_threads() == before


# ---- results do not depend on the thread count --------------------------------------

def _run_with(n_threads, fn):
    with fm.threads(n_threads):
        return fn()


def test_dense_kernels_agree_across_threads(native, dtype, rng):
    X = rng.standard_normal((130, 64)).astype(dtype)   # 532k multiply-adds: two threads
    W = (rng.standard_normal((64, 64)) / 8).astype(dtype)
    b = rng.standard_normal(64).astype(dtype)
    dA = rng.standard_normal((130, 64)).astype(dtype)

    def run():
        Z, A = np.empty((130, 64), dtype), np.empty((130, 64), dtype)
        native.dense_forward(X, W, b, "tanh", Z, A)
        dZ, dW, db, dX = (np.empty_like(Z), np.empty_like(W), np.empty_like(b),
                          np.empty_like(X))
        native.dense_backward(X, W, Z, A, dA, "tanh", dZ, dW, db, dX)
        return Z, A, dZ, dW, db, dX

    one, two = _run_with(1, run), _run_with(2, run)
    again = _run_with(2, run)
    for name, serial, parallel, repeat in zip(("Z", "A", "dZ", "dW", "db", "dX"), one, two,
                                              again):
        assert_close(parallel, serial, dtype, err_msg=name)
        np.testing.assert_array_equal(repeat, parallel, err_msg=name)  # same threads, same bits


def test_loss_kernels_agree_across_threads(native, dtype, rng):
    Z = (3 * rng.standard_normal((1000, 101))).astype(dtype)  # enough rows for two threads
    y = rng.integers(0, 101, size=1000)
    Y = rng.standard_normal((1000, 101)).astype(dtype)

    def run():
        g1, g2, p = np.empty_like(Z), np.empty_like(Z), np.empty_like(Z)
        l1 = native.softmax_cross_entropy(Z, y, g1)
        l2 = native.mean_squared_error(Z, Y, g2)
        native.softmax(Z, p)
        return l1, l2, g1, g2, p

    one, two = _run_with(1, run), _run_with(2, run)
    rtol = 1e-6 if dtype == np.float32 else 1e-13  # sums accumulate in double
    np.testing.assert_allclose(two[0], one[0], rtol=rtol)
    np.testing.assert_allclose(two[1], one[1], rtol=rtol)
    for a, b in zip(one[2:], two[2:]):
        np.testing.assert_array_equal(a, b)  # per-row values: no reduction across threads


def test_activation_kernels_are_bitwise_identical_across_threads(native, rng):
    Z = rng.standard_normal((1700, 1900)).astype(np.float32)  # 3.2M elements: two threads

    def run():
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        native.activation_forward(Z, "sigmoid", A)
        native.activation_backward(Z, A, Z, "sigmoid", dZ)
        return A, dZ

    for a, b in zip(_run_with(1, run), _run_with(2, run)):
        np.testing.assert_array_equal(a, b)


def test_model_training_agrees_across_threads(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((256, 5))
    y = rng.integers(0, 3, size=256)

    def run():
        model = fm.Sequential([fm.Dense(64, activation="relu"), fm.Dense(64, activation="tanh"),
                               fm.Dense(3)], input_dim=5, dtype=dtype, seed=3)
        model.compile(optimizer=fm.Adam(lr=1e-3))
        losses = [model.train_step(X, y) for _ in range(3)]
        return losses, model.get_weights(), model.predict(X)

    (l1, w1, p1), (l2, w2, p2) = _run_with(1, run), _run_with(2, run)
    np.testing.assert_allclose(l2, l1, rtol=1e-4 if dtype == np.float32 else 1e-10)
    for a, b in zip(w1, w2):
        assert_close(b, a, dtype)
    assert_close(p2, p1, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_split_forward_agrees_with_twin_and_one_thread(dtype):
    # layers wider than the batch (512 and 300 units, batches of 96) run their forward
    # GEMM split by columns of W on two threads, with barriers around it; through
    # dropout, batch statistics and the gathered batches of fit
    rng = np.random.default_rng(2)
    X = rng.standard_normal((192, 64))
    y = rng.integers(0, 10, size=192)

    def run(backend):
        model = fm.Sequential([fm.Dense(512, activation="relu"), fm.Dropout(0.2),
                               fm.Dense(300), fm.BatchNorm(activation="tanh"), fm.Dense(10)],
                              input_dim=64, dtype=dtype, seed=4, backend=backend)
        model.compile(optimizer=fm.SGD(lr=0.05, momentum=0.9))
        losses = [model.train_step(X[:96], y[:96]) for _ in range(2)]
        losses += model.fit(X, y, epochs=2, batch_size=96, verbose=0).history["loss"]
        return losses, model.get_weights(), model.predict(X)

    rtol = 1e-4 if dtype == np.float32 else 1e-10
    one, two = _run_with(1, lambda: run("native")), _run_with(2, lambda: run("native"))
    twin = run("numpy")
    # the Dense bias before a batch norm has a gradient of rounding noise only: compare
    # every array to a tolerance on the weights' scale (about 1), not its own
    atol = 1e-5 if dtype == np.float32 else 1e-11
    for other in (one, twin):
        np.testing.assert_allclose(two[0], other[0], rtol=rtol)
        for a, b in zip(two[1], other[1]):
            assert_close(a, b, dtype, atol=atol)
        assert_close(two[2], other[2], dtype)


# a dense layer whose input is at least twice as wide as both the batch and its
# output, with at least 16384 weights (like the mnist net's 784 -> 256 and 256 -> 128
# on batches of 128), splits its forward GEMM along the inner dimension: partial
# products over shares of the input, added in thread order; the update then gives
# each thread the rows of that W it multiplied
# (input width, layers, each layer's split by thread count; batches of 32 rows per thread)
INNER_SPLIT_NETS = {
    # first layer, on fit's gathered batches; then 90 units: split by columns on 64
    # rows, by rows on 96
    "first": (400, lambda: [fm.Dense(100, activation="relu"), fm.Dense(90, activation="tanh"),
                            fm.Dense(10)],
              {2: ["inner", "columns", "rows"], 3: ["inner", "rows", "rows"]}),
    # after a column split with dropout, before a batch norm: weight spans on both
    # sides of the inner-split W, which the update shares out around it
    "middle": (64, lambda: [fm.Dense(300, activation="relu"), fm.Dropout(0.2), fm.Dense(100),
                            fm.BatchNorm(activation="tanh"), fm.Dense(10)],
               {nt: ["columns", "inner", "rows", "rows"] for nt in (2, 3)}),
    # narrower than the batch: the input is still more than twice as wide as both
    "narrow": (900, lambda: [fm.Dense(40, activation="relu"), fm.Dense(10)],
               {nt: ["inner", "rows"] for nt in (2, 3)}),
    # ties: the input exactly twice as wide as the output splits inner; 128 -> 10 on
    # 64 rows ties too, but has fewer weights than the inner split's floor
    "tie": (256, lambda: [fm.Dense(128, activation="relu"), fm.Dense(10)],
            {nt: ["inner", "rows"] for nt in (2, 3)}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("net", sorted(INNER_SPLIT_NETS))
@pytest.mark.parametrize("threads", [2, 3])
def test_inner_split_forward_agrees_with_twin_and_one_thread(dtype, net, threads):
    n_in, layers, splits = INNER_SPLIT_NETS[net]
    batch = 32 * threads                      # the fewest rows that employ every thread
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3 * batch, n_in))
    y = rng.integers(0, 10, size=3 * batch)

    def run(backend, expect=None):
        model = fm.Sequential(layers(), input_dim=n_in, dtype=dtype, seed=6, backend=backend)
        # an L1/L2 penalty (weight matrices only) and clipping by global norm: every
        # path of the update (Adam would turn the rounding noise of the bias gradient
        # before the batch norm into steps of lr)
        model.compile(optimizer=fm.SGD(lr=0.05, momentum=0.9, clipnorm=5.0),
                      regularizer=fm.regularizers.l1_l2(1e-4, 1e-3))
        if expect is not None:
            assert model._plan.train_split(batch) == expect    # the path under test runs
        losses = [model.train_step(X[:batch], y[:batch]) for _ in range(2)]
        losses += model.fit(X, y, epochs=2, batch_size=batch, verbose=0).history["loss"]
        return losses, model.get_weights(), model.predict(X)

    rtol = 1e-4 if dtype == np.float32 else 1e-10
    many = _run_with(threads, lambda: run("native", (splits[threads], threads)))
    one = _run_with(1, lambda: run("native", (["rows"] * len(splits[threads]), 1)))
    twin = run("numpy")
    atol = 1e-5 if dtype == np.float32 else 1e-11   # as in the column-split test above
    for other in (one, twin):
        np.testing.assert_allclose(many[0], other[0], rtol=rtol)
        for a, b in zip(many[1], other[1]):
            assert_close(a, b, dtype, atol=atol)
        assert_close(many[2], other[2], dtype)
    # the same thread count repeats bit for bit (partials are added in thread order)
    again = _run_with(threads, lambda: run("native"))
    for a, b in zip(many[1], again[1]):
        np.testing.assert_array_equal(a, b)


def test_numpy_backend_agrees_across_threads(twin, rng):
    X = rng.standard_normal((300, 200))
    W = rng.standard_normal((200, 150))
    Z, A = np.empty((300, 150)), np.empty((300, 150))

    def run():
        twin.dense_forward(X, W, np.zeros(150), "relu", Z, A)
        return A.copy()

    np.testing.assert_allclose(_run_with(2, run), _run_with(1, run), rtol=1e-12, atol=1e-12)


def test_concurrent_predictions_are_safe():
    # predict allocates its scratch per call and per thread, so Python threads may share a model
    rng = np.random.default_rng(0)
    model = fm.Sequential([fm.Dense(64, activation="relu"), fm.Dense(32, activation="tanh"),
                           fm.Dense(4)], input_dim=6, seed=0)
    model.compile()
    inputs = [rng.standard_normal((n, 6)) for n in (1, 50, 300, 700, 64, 1000)] * 4
    expected = [model.predict(X) for X in inputs]
    before = blas_threads()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(model.predict, inputs))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    # the last native call to leave restores the BLAS's own setting
    assert blas_threads() == before
