"""The BLAS library whose GEMMs the native kernels call.

By default: the OpenBLAS of the ``scipy-openblas32`` package (a dependency of
fastmlp; the OpenBLAS build that NumPy and SciPy vendor into their wheels,
published on PyPI with every OpenBLAS release).  SciPy's wheels carry the
OpenBLAS release of their build, which can be several releases older, and
newer releases have run the benchmark's train steps faster
(``python bench/blas_routes.py``; README, "Benchmarks").

The library is opened privately (RTLD_LOCAL) and the package is not imported:
importing it would load the library into the process's global namespace,
where its symbols, named like those of SciPy's own OpenBLAS, could take the
place of SciPy's.  Opened locally, it serves fastmlp's calls and nothing else.

When the package is missing or its library does not load, or when the
environment variable ``FASTMLP_BLAS=scipy`` is set before fastmlp is imported,
the kernels call the BLAS behind ``scipy.linalg.cython_blas`` instead (the
route scikit-learn uses).  Either way the BLAS is kept single-threaded inside
native calls (see csrc/fm_blas_threads.h).
"""
import ctypes
import importlib.util
import os
import warnings

__all__ = ["SYMBOLS", "open_private_openblas"]

# Fortran-interface entry points, in the order _runtime.pyx takes their addresses
SYMBOLS = ("scipy_sgemm_", "scipy_dgemm_", "scipy_sgemv_", "scipy_dgemv_")
_CHOICES = ("auto", "scipy")
_library = None  # the open library, kept alive for as long as the process runs


def _library_path():
    """Path of scipy-openblas32's shared library, or None, without importing it."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    try:
        names = sorted(name for name in os.listdir(lib_dir)
                       if name.startswith("libscipy_openblas")
                       and name.endswith((".so", ".dylib", ".dll")))
    except OSError:
        return None
    return os.path.join(lib_dir, names[0]) if names else None


def open_private_openblas():
    """(path, addresses of SYMBOLS) of scipy-openblas32's OpenBLAS, opened
    privately; None when FASTMLP_BLAS=scipy, or when it is not installed or
    does not load (then SciPy's BLAS is used)."""
    global _library
    choice = os.environ.get("FASTMLP_BLAS", "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        warnings.warn(f"FASTMLP_BLAS={choice!r} is not one of {', '.join(_CHOICES)}; "
                      "using 'auto'", RuntimeWarning, stacklevel=2)
        choice = "auto"
    if choice == "scipy":
        return None
    path = _library_path()
    if path is None:
        return None
    mode = getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 0)
    try:
        library = ctypes.CDLL(path, mode=mode)
        addresses = [ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                     for name in SYMBOLS]
    except (OSError, AttributeError) as e:
        warnings.warn(f"fastmlp: {path} did not load ({e}); using SciPy's BLAS",
                      RuntimeWarning, stacklevel=2)
        return None
    _library = library
    return path, addresses
