"""Private native kernels of fastmlp (Cython + OpenMP + BLAS). Users import fastmlp."""
import importlib.machinery
import os

try:
    from . import _runtime  # noqa: F401  (every kernel module needs it)
except ImportError as e:
    # A checkout imported from its own root after a plain `pip install .` (which
    # installs the compiled package elsewhere) has the sources here, not the
    # compiled modules: say so, instead of "cannot import name '_runtime'".
    _here = os.path.dirname(os.path.abspath(__file__))
    if not any(name.startswith("_runtime") and name.endswith(suffix)
               for name in os.listdir(_here)
               for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        raise ImportError(
            f"fastmlp's compiled kernels are not built in {os.path.dirname(_here)}, the source "
            "checkout Python found first. Build them there with `pip install -e .`, or run "
            "from outside the checkout (the `fastmlp` command works anywhere) so that the "
            "installed fastmlp is imported.") from e
    raise
