"""Input validation at the public entries, beyond tests/test_model.py's table of
bad X and y: the layouts that must work (memory-mapped, broadcast, read-only
targets and weights), the dtypes at the edges (float16, longdouble, uint64),
bad weights and arguments, the 2^31-row limit of a training batch, and the
regression tests of the bugs the fuzzers found (each names its bug)."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp.cli import main

from .conftest import tiny_model, weights_equal

BACKENDS = ("native", "numpy")
ENTRIES = ["fit", "train_step", "evaluate", "loss_and_gradients"]


def _data(n=12, n_in=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, k, n)


def _run(model, method, X, y, **kw):
    if method == "fit":
        return model.fit(X, y, epochs=1, batch_size=4, verbose=0, shuffle=False, **kw)
    return getattr(model, method)(X, y, **kw)


def _same(a, b):
    if isinstance(a, tuple):
        return a[0] == b[0] and weights_equal(a[1], b[1])
    if hasattr(a, "history"):
        return a.history == b.history
    return a == b


# ---- layouts that must work, copying only when needed ------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ENTRIES)
def test_memory_mapped_inputs(tmp_path, backend, method):
    X, y = _data()
    Xm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                   shape=X.shape)
    Xm[...] = X
    ym = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.int64,
                                   shape=y.shape)
    ym[...] = y
    Xm.flush()
    ym.flush()
    Xr = np.load(tmp_path / "X.npy", mmap_mode="r")   # read-only mapping
    yr = np.load(tmp_path / "y.npy", mmap_mode="r")
    a, b = tiny_model(backend), tiny_model(backend)
    assert _same(_run(a, method, Xr, yr), _run(b, method, X.astype(np.float32), y))
    assert weights_equal(a.get_weights(), b.get_weights())
    np.testing.assert_array_equal(a.predict(Xr), b.predict(X.astype(np.float32)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ENTRIES)
def test_zero_stride_broadcast_inputs(backend, method):
    row = np.array([[0.5, -1.0, 2.0]])
    Xb = np.broadcast_to(row, (12, 3))            # strides (0, 8)
    yb = np.broadcast_to(np.array([2]), (12,))    # stride 0
    assert Xb.strides[0] == 0 and yb.strides[0] == 0
    a, b = tiny_model(backend), tiny_model(backend)
    assert _same(_run(a, method, Xb, yb), _run(b, method, np.repeat(row, 12, axis=0),
                                               np.full(12, 2)))
    assert weights_equal(a.get_weights(), b.get_weights())


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_fortran_targets_and_weights(backend):
    X, labels = _data()
    T = np.asfortranarray(np.eye(3)[labels] * 0.8 + 0.2 / 3)
    w = np.linspace(0.5, 2, 12)[::-1]
    for arr in (X, T, w):
        arr.flags.writeable = False
    a, b = tiny_model(backend), tiny_model(backend)
    assert a.train_step(X, T, sample_weight=w) == \
        b.train_step(X.copy(), np.ascontiguousarray(T), sample_weight=w.copy())
    assert weights_equal(a.get_weights(), b.get_weights())
    assert not T.flags.writeable and not w.flags.writeable   # not unlocked or modified


def test_a_c_contiguous_float32_input_is_not_copied():
    from fastmlp._validation import check_features

    X = np.zeros((5, 3), np.float32)
    assert check_features(X, 3, np.float32) is X
    X64 = np.zeros((5, 3))
    assert check_features(X64, 3, np.float32) is not X64


# ---- dtypes at the edges ----------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_finiteness_check_sees_every_element(threads, dtype):
    # all_finite splits a large array's flat index between the threads: a NaN or an
    # infinity anywhere - the first element, either side of the split, the last -
    # must be found.  1000 x 1000 is well above the size at which 2 threads start.
    from fastmlp._kernels.checks import all_finite
    X = np.ones((1000, 1000), dtype)
    n = X.size
    with fm.threads(threads):
        assert all_finite(X)
        for index in (0, n // 2 - 1, n // 2, n // 2 + 1, n - 1):
            for bad in (np.nan, np.inf, -np.inf):
                X.flat[index] = bad
                assert not all_finite(X), (index, bad)
                X.flat[index] = 1.0
        assert all_finite(X)
        assert all_finite(X[:0]) and all_finite(np.ones((1, 1), dtype))
        assert not all_finite(np.full((1, 1), np.nan, dtype))
        with pytest.raises(ValueError, match="NaN or infinity"):
            X[999, 999] = np.nan
            tiny_model(n_in=1000).fit(X, np.zeros(1000, int), epochs=1, verbose=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "longdouble"])
def test_float16_and_longdouble_inputs_and_labels(backend, dtype):
    # regression (float16 labels): the finiteness check had no float16 kernel and raised
    # "TypeError: No matching signature found"
    X, y = _data()
    a, b = tiny_model(backend), tiny_model(backend)
    Xd = X.astype(dtype)
    assert a.train_step(Xd, y.astype(dtype)) == b.train_step(Xd.astype(np.float64), y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        a.train_step(Xd, np.array([0, np.inf] + [1] * 10, dtype=dtype))
    with pytest.raises(ValueError, match="non-integer"):
        a.train_step(Xd, np.array([0, 0.5] + [1] * 10, dtype=dtype))


@pytest.mark.parametrize("y, match", [
    (np.array([0, 1, 2 ** 64 - 1] + [0] * 9, dtype=np.uint64), "outside"),
    (np.array([0, 1, 2 ** 63] + [0] * 9, dtype=np.uint64), "outside"),
    (np.array([0, 1, -(2 ** 63)] + [0] * 9, dtype=np.int64), "outside"),
    (np.array([0, 1, 1e300] + [0] * 9), "outside"),
    (np.array([0, 1, -0.5] + [0] * 9), "non-integer"),
    (np.array([0, 1, 2 ** 63] + [0] * 9, dtype=np.float64), "outside"),
])
def test_labels_that_would_wrap_when_cast_are_refused(y, match):
    model = tiny_model()
    with pytest.raises(ValueError, match=match):
        model.train_step(_data()[0], y)


# ---- weights and arguments ---------------------------------------------------------------

@pytest.mark.parametrize("sample_weight, match", [
    (np.r_[np.ones(11), np.nan], "NaN or infinity"), (np.r_[np.ones(11), -1.0], "negative"),
    (np.ones(11), "shape"), (np.ones((12, 1)), "shape"), (np.ones(12, complex), "complex"),
    (np.array(["1"] * 12), "string"),
])
@pytest.mark.parametrize("method", ENTRIES)
def test_bad_sample_weight(method, sample_weight, match):
    X, y = _data()
    model = tiny_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        _run(model, method, X, y, sample_weight=sample_weight)
    assert weights_equal(before, model.get_weights())


@pytest.mark.parametrize("class_weight, match", [
    ({5: 1.0}, "key"), ({-1: 1.0}, "key"), ({True: 1.0}, "key"), ({"a": 1.0}, "key"),
    ({0: np.nan}, "finite"), ({0: -1.0}, "finite"), ({0: "x"}, "number"), ([1, 2], "dict"),
])
def test_bad_class_weight(class_weight, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        tiny_model().train_step(X, y, class_weight=class_weight)


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_weights_from_broadcast_and_memory_views(backend):
    model = tiny_model(backend)
    shapes = [w.shape for w in model.get_weights()]
    views = [np.broadcast_to(np.float64(0.25), s) for s in shapes]
    model.set_weights(views)
    for w in model.get_weights():
        np.testing.assert_array_equal(w, 0.25)
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.set_weights([np.full(s, 1e39) for s in shapes])   # overflows float32


# ---- the 2^31-row limit of a training batch ----------------------------------------------------

@pytest.mark.parametrize("method", ["train_step", "loss_and_gradients"])
def test_a_batch_over_2_31_rows_is_refused_before_any_copy(method):
    # a zero-stride view: 2^31 rows of 3 features, no memory; converting it would take 24 GB
    X = np.broadcast_to(np.zeros((1, 3), np.float32), (2 ** 31, 3))
    y = np.broadcast_to(np.zeros(1, np.int64), (2 ** 31,))
    with pytest.raises(ValueError, match="2\\^31 - 1"):
        getattr(tiny_model(), method)(X, y)


def test_dense_kernel_refuses_more_rows_than_blas_takes():
    from fastmlp._backend import kernels

    k = kernels("native")
    # W with 2^31 rows and 0 columns: a zero-size array (no memory) that a 32-bit BLAS
    # dimension would truncate
    W = np.zeros((2 ** 31, 0), np.float32)
    X = np.zeros((0, 2 ** 31), np.float32)
    Z = np.zeros((0, 0), np.float32)
    with pytest.raises(ValueError, match="2\\^31 - 1"):
        k.dense_forward(X, W, np.zeros(0, np.float32), "relu", Z, Z)


# ---- the command line ---------------------------------------------------------------------

def test_cli_reports_a_diverged_training_in_one_line(tmp_path, capsys):
    # regression: a learning rate so large that training diverged ended the CLI with a
    # FloatingPointError traceback instead of its one-line error and exit status 2
    X, y = _data(60)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([y, X]), delimiter=",")
    status = main(["train", str(path), "--target=0", "--lr=1e30", "--epochs=5", "--verbose=0",
                   f"--out={tmp_path / 'm.fm'}"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("fastmlp train: error: training diverged") and err.count("\n") == 1
    assert not (tmp_path / "m.fm").exists()


@pytest.mark.parametrize("text", ['"\n', '""\n""\n', ",,\n"])
def test_cli_csv_of_empty_fields_is_refused_in_one_line(tmp_path, capsys, text):
    # regression: a CSV whose non-blank lines parse to empty fields (a lone quote) raised
    # IndexError from the loader
    path = tmp_path / "d.csv"
    path.write_text(text)
    assert main(["train", str(path), "--target=0", f"--out={tmp_path / 'm.fm'}"]) == 2
    assert "no data rows" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no data rows"):
        fm.datasets.load_table(path)


# ---- arrays over 2^31 elements (opt-in: FASTMLP_BIG_TESTS=1, ~8.6 GB) -------------------------

def test_kernels_index_arrays_over_2_31_elements(big_tests):
    # The kernels index with Py_ssize_t / ptrdiff_t (rows * cols offsets in 64 bits): an
    # int offset would wrap past element 2^31 and write before the array or miss its end.
    # One float32 array of 2^31 + 2^11 elements, transformed in place.
    from fastmlp._backend import kernels
    from fastmlp._kernels.checks import all_finite

    k = kernels("native")
    cols = 2048
    rows = 2 ** 31 // cols + 1
    Z = np.empty((rows, cols), np.float32)
    Z[:-1] = 1.0
    Z[-1] = -3.0                                   # the last row lies past element 2^31
    with fm.threads(2):
        k.activation_forward(Z, "relu", Z)          # in place
        assert (Z[-1] == 0).all() and (Z[0] == 1).all() and (Z[rows // 2] == 1).all()
        assert all_finite(Z)
        Z[-1, -1] = np.nan
        assert not all_finite(Z)                    # the check reaches the very end
        Z[-1, -1] = 0.0
        k.dropout(Z, Z, 0.5, 0, 0, 0)
        assert set(np.unique(Z[-1])) <= {0.0} and set(np.unique(Z[0])) <= {0.0, 2.0}
        assert (Z[0] == 2.0).any() and (Z[-2] == 2.0).any()
