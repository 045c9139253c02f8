"""Aligned allocation (fastmlp/_memory.py) and the buffers that use it."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._memory import ALIGNMENT, aligned_empty, aligned_zeros


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [1, 5, 17, (3, 4), (128, 784), (2, 3, 5)])
def test_aligned_arrays_start_on_a_cache_line_and_behave_like_numpys(shape, dtype):
    for make, reference in ((aligned_empty, np.empty), (aligned_zeros, np.zeros)):
        a = make(shape, dtype)
        like = reference(shape, dtype)
        assert a.ctypes.data % ALIGNMENT == 0
        assert a.shape == like.shape and a.dtype == like.dtype
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = np.arange(a.size).reshape(a.shape)   # every element is its own memory
        assert np.array_equal(a.ravel(), np.arange(a.size))
    assert not aligned_zeros(shape, dtype).any()


def test_aligned_zero_size_and_bad_shapes():
    assert aligned_zeros(0, np.float32).shape == (0,)
    assert aligned_empty((0, 7), np.float64).shape == (0, 7)
    with pytest.raises(ValueError, match="negative"):
        aligned_empty((3, -1), np.float32)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_flat_buffers_are_aligned(backend, dtype):
    model = fm.Sequential([fm.Dense(30, activation="relu"), fm.BatchNorm(), fm.Dense(3)],
                          input_dim=7, dtype=dtype, seed=0, backend=backend)
    model.compile(optimizer=fm.Adam())
    flat = [model.params, model.grads, model.state, *model._opt_state]
    assert len(flat) == 5
    for a in flat:
        assert a.ctypes.data % ALIGNMENT == 0
    # so does each layer's W, b, gamma and beta, at 64-byte offsets in those buffers
    views = model._views(model.params) + model._views(model.grads)
    assert len(views) == 2 * len(model.get_weights())
    for a in views:
        assert np.shares_memory(a, model.params) or np.shares_memory(a, model.grads)
        assert a.ctypes.data % ALIGNMENT == 0
