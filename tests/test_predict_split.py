"""How the native predict divides its work between threads, and that every way
gives the NumPy twin's answer: a split by rows in blocks (long blocks, shorter
ones for very wide layers), and for a few rows through a network of dense
layers a split by columns of W with a barrier between layers."""
import threading

import numpy as np
import pytest

import fastmlp as fm

TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def _pair(layers, n_in, dtype, loss, seed=0):
    """A native model and its NumPy twin with the same weights."""
    native = fm.Sequential(layers(), input_dim=n_in, dtype=dtype, seed=seed).compile(loss=loss)
    twin = fm.Sequential(layers(), input_dim=n_in, dtype=dtype, seed=seed, backend="numpy")
    twin.compile(loss=loss)
    # biases start at zero: random ones, so a bias paired with the wrong column shows
    rng = np.random.default_rng(seed + 100)
    weights = [w if w.ndim > 1 else rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
               for w in native.get_weights()]
    native.set_weights(weights)
    twin.set_weights(weights)
    return native, twin


def _big_dense():
    # widths that are not multiples of 16 (column shares are), a bipolar activation
    # (its units alternate by column parity), ~2.5M multiply-adds per row
    return [fm.Dense(1500, activation="brelu"), fm.Dense(1030, activation="tanh"), fm.Dense(7)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "mse",
                                  "poisson"])
@pytest.mark.parametrize("threads", [1, 2])
def test_few_rows_split_by_columns_agree_with_the_twin(dtype, loss, threads):
    native, twin = _pair(_big_dense, 600, dtype, loss)
    X = np.random.default_rng(1).standard_normal((100, 600)).astype(dtype)
    with fm.threads(threads):
        for rows in (1, 3, 17, 40, 100):
            how, nt = native._plan.predict_split(rows)
            if threads == 2:
                assert (how, nt) == ("columns", 2)    # the path under test runs
            else:
                assert (how, nt) == ("rows", 1)
            np.testing.assert_allclose(native.predict(X[:rows]), twin.predict(X[:rows]),
                                       **TOL[dtype])


def test_the_split_follows_the_rows_and_the_layers():
    native, _ = _pair(_big_dense, 600, "float32", "softmax_cross_entropy")
    with fm.threads(2):
        assert native._plan.predict_split(749) == ("columns", 2)   # fewer than half of 1500
        assert native._plan.predict_split(750) == ("rows", 2)
        assert native._plan.predict_split(5000) == ("rows", 2)
    small = fm.Sequential([fm.Dense(8, activation="relu"), fm.Dense(3)], input_dim=4)
    small.compile(loss="softmax_cross_entropy")
    with fm.threads(2):
        assert small._plan.predict_split(1) == ("rows", 1)          # too little work to share
    maxout = fm.Sequential([fm.Maxout(1500, pieces=2), fm.Dense(7)], input_dim=600)
    maxout.compile(loss="softmax_cross_entropy")
    with fm.threads(2):
        assert maxout._plan.predict_split(1) == ("rows", 1)         # dense layers only


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_in_several_blocks_agree_with_the_twin(dtype, threads):
    # 5000 units: a block holds 2^21 / 5000 = 419 rows, so each thread's 600 or
    # 1200 rows take several blocks, the last one shorter
    def layers():
        return [fm.Dense(5000, activation="relu"), fm.Dense(3)]
    native, twin = _pair(layers, 3, dtype, "softmax_cross_entropy")
    X = np.random.default_rng(2).standard_normal((1200, 3)).astype(dtype)
    with fm.threads(threads):
        assert native._plan.predict_split(1200)[0] == "rows"
        np.testing.assert_allclose(native.predict(X), twin.predict(X), **TOL[dtype])


@pytest.mark.parametrize("threads", [1, 2])
def test_maxout_and_batch_norm_in_long_blocks_agree_with_the_twin(threads):
    def layers():
        return [fm.Maxout(40, pieces=3), fm.Dense(30), fm.BatchNorm(activation="relu"),
                fm.Dense(4)]
    native, twin = _pair(layers, 20, "float64", "softmax_cross_entropy")
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((3000, 20)), rng.integers(0, 4, 3000)
    native.fit(X, y, epochs=1, batch_size=100, verbose=0)   # running statistics move
    twin.set_weights(native.get_weights())
    twin.set_state(native.get_state())
    with fm.threads(threads):
        np.testing.assert_allclose(native.predict(X), twin.predict(X), **TOL["float64"])


def test_concurrent_column_split_predictions():
    # each call has its own scratch and its own team of threads
    native, twin = _pair(_big_dense, 600, "float32", "softmax_cross_entropy")
    X = np.random.default_rng(4).standard_normal((8, 3, 600)).astype(np.float32)
    expected = [twin.predict(x) for x in X]
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = native.predict(X[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with fm.threads(2):
        assert native._plan.predict_split(3)[0] == "columns"
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, **TOL["float32"])
