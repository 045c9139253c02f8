"""One knob for both thread pools: fastmlp's OpenMP threads and the BLAS's."""
import contextlib
import numbers

from ._kernels import _runtime

__all__ = ["set_num_threads", "get_num_threads", "threads"]

_blas_limiter = None  # threadpoolctl limits, kept alive while in force


def set_num_threads(n):
    """Use `n` threads for fastmlp's native kernels and for the BLAS that NumPy
    and SciPy call (the NumPy backend's matrix products): those loaded by then,
    as threadpoolctl sees them (SciPy's once scipy.linalg has been imported).

    The native kernels keep their BLAS single-threaded while they run and split
    the work over their own OpenMP threads (see DESIGN.md, "one pool at a time").

    Parameters
    ----------
    n : int >= 1
    """
    global _blas_limiter
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"the number of threads must be an integer >= 1, got {n!r}")
    n = int(n)
    _runtime.set_native_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return
    _blas_limiter = threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """Number of threads the native kernels use."""
    return _runtime.get_native_threads()


@contextlib.contextmanager
def threads(n):
    """Context manager: ``with fastmlp.threads(1): ...`` runs the block with n
    threads and restores the previous setting after."""
    global _blas_limiter
    previous_native, previous_limiter = get_num_threads(), _blas_limiter
    set_num_threads(n)
    limiter = _blas_limiter
    try:
        yield
    finally:
        _runtime.set_native_threads(previous_native)
        if limiter is not None:
            limiter.restore_original_limits()
        _blas_limiter = previous_limiter
