"""Private native kernels of fastmlp (Cython + OpenMP + BLAS). Users import fastmlp."""
import importlib.machinery
import os


def _require_built():
    """Fail with a clear message when this directory holds the sources but not
    the compiled modules: a checkout imported from its own root after a plain
    `pip install .`, which installs the compiled package elsewhere."""
    here = os.path.dirname(os.path.abspath(__file__))
    if any(name.startswith("_runtime") and name.endswith(suffix)
           for name in os.listdir(here) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        return
    raise ImportError(
        f"fastmlp's compiled kernels are not built in {os.path.dirname(here)}, the source "
        "checkout Python found first. Build them there with `pip install -e .`, or run from "
        "outside the checkout (the `fastmlp` command works anywhere) so that the installed "
        "fastmlp is imported.")


_require_built()
