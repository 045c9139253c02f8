"""The BLAS the native kernels call: scipy-openblas32's OpenBLAS opened privately
(fastmlp/_kernels/_blas_lib.py), SciPy's with FASTMLP_BLAS=scipy or without the
package; the thread guard holds for whichever is in use."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._kernels import _runtime

HAVE_PRIVATE = importlib.util.find_spec("scipy_openblas32") is not None
needs_private = pytest.mark.skipif(not HAVE_PRIVATE, reason="scipy-openblas32 not installed")

# Trains a small float64 model natively for a few steps on 2 threads (large enough
# for two-thread GEMM splits) and prints which BLAS ran and the final weights.
_TRAIN = """
import ctypes, json, sys
import numpy as np
import fastmlp as fm
from fastmlp._kernels import _runtime
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 96))
y = rng.integers(0, 5, 256)
fm.set_num_threads(2)
model = fm.Sequential([fm.Dense(160, activation="relu"), fm.Dense(5)], input_dim=96,
                      dtype="float64", seed=0)
model.compile(optimizer=fm.Adam(lr=1e-2))
model.fit(X, y, epochs=2, batch_size=128, shuffle=False, verbose=0)
print(json.dumps({
    "blas": _runtime.blas_library(),
    "controlled": _runtime.blas_thread_control(),
    "package_imported": "scipy_openblas32" in sys.modules,
    "global_symbol": hasattr(ctypes.CDLL(None), "scipy_sgemm_"),
    "scipy_linalg_imported": "scipy.linalg" in sys.modules,
    "weights": [w.ravel().tolist() for w in model.get_weights()],
}))
"""


def _train_in_subprocess(**env):
    out = subprocess.run([sys.executable, "-c", _TRAIN], capture_output=True, text=True,
                         timeout=300, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


@pytest.fixture(scope="module")
def private_run():
    """One training run on the default route, shared by the tests that read it."""
    return _train_in_subprocess(FASTMLP_BLAS="auto")[0]


def test_the_blas_in_use_is_reported_and_its_threads_controlled():
    info = _runtime.blas_library()
    assert info["path"] and os.path.exists(info["path"])
    assert info["private"] is (HAVE_PRIVATE and os.environ.get("FASTMLP_BLAS", "auto") != "scipy")
    # the guard that keeps the BLAS single-threaded in native calls found its setters
    assert _runtime.blas_thread_control() is True


@needs_private
def test_private_openblas_is_used_without_entering_the_global_namespace(private_run):
    got = private_run
    assert got["blas"]["private"] is True
    assert os.path.join("scipy_openblas32", "lib") in got["blas"]["path"]
    assert got["controlled"] is True
    # opened RTLD_LOCAL and the package never imported: SciPy's own BLAS symbols
    # (the same names) are not displaced for anything else in the process
    assert got["package_imported"] is False
    assert got["global_symbol"] is False
    # SciPy's BLAS is looked up only when it is used (importing scipy.linalg
    # would more than double the time `import fastmlp` takes)
    assert got["scipy_linalg_imported"] is False


@needs_private
def test_scipy_blas_on_request_gives_the_same_training(private_run):
    private = private_run
    scipy_route, _ = _train_in_subprocess(FASTMLP_BLAS="scipy")
    assert scipy_route["blas"]["private"] is False
    assert "cython_blas" in os.path.basename(scipy_route["blas"]["path"])
    assert scipy_route["controlled"] is True
    # two OpenBLAS releases: the same products up to the order of their sums
    for a, b in zip(private["weights"], scipy_route["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_unknown_choice_warns_and_falls_back_to_auto():
    got, err = _train_in_subprocess(FASTMLP_BLAS="mkl")
    assert "FASTMLP_BLAS='mkl' is not one of auto, scipy" in err
    assert got["blas"]["private"] is HAVE_PRIVATE


def test_native_gemm_matches_numpy_through_the_selected_blas(rng):
    # every product route of the kernels' gemm(): plain, transposed operands, one row (gemv)
    native = fm._backend.kernels("native")
    for dtype in (np.float32, np.float64):
        for rows in (1, 3, 130):
            X = rng.standard_normal((rows, 70)).astype(dtype)
            W = rng.standard_normal((70, 40)).astype(dtype)
            b = rng.standard_normal(40).astype(dtype)
            Z, A = np.empty((rows, 40), dtype), np.empty((rows, 40), dtype)
            with fm.threads(2):
                native.dense_forward(X, W, b, "identity", Z, A)
            rtol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(Z, X.astype(np.float64) @ W + b, rtol=rtol,
                                       atol=rtol * 10)
            dA = rng.standard_normal((rows, 40)).astype(dtype)
            dZ, dW, db, dX = (np.empty_like(Z), np.empty_like(W), np.empty_like(b),
                              np.empty_like(X))
            native.dense_backward(X, W, Z, A, dA, "identity", dZ, dW, db, dX)
            np.testing.assert_allclose(dW, X.T.astype(np.float64) @ dA, rtol=rtol,
                                       atol=rtol * 10)
            np.testing.assert_allclose(dX, dA.astype(np.float64) @ W.T, rtol=rtol,
                                       atol=rtol * 10)
