"""Backend selection: "native" (the compiled kernels) or "numpy" (their twin)."""
from types import SimpleNamespace

from . import _reference

BACKENDS = ("native", "numpy")

_KERNEL_NAMES = _reference.__all__


def _native_namespace():
    from ._kernels import activations, dense, layers, losses, optim, plan

    found = {}
    for module in (activations, dense, layers, losses, optim, plan):
        for name in _KERNEL_NAMES:
            if hasattr(module, name):
                found[name] = getattr(module, name)
    missing = set(_KERNEL_NAMES) - set(found)
    if missing:  # the twin and the native side must offer the same names
        raise ImportError(f"native kernels missing: {sorted(missing)}")
    return SimpleNamespace(**found)


_NATIVE = None


def kernels(backend):
    """The kernel namespace of `backend`: same names and signatures for both."""
    global _NATIVE
    if backend == "numpy":
        return _reference
    if backend == "native":
        if _NATIVE is None:
            _NATIVE = _native_namespace()
        return _NATIVE
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
