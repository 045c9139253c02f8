"""Formatting of the side-by-side benchmark: the machine, rates, ratios."""
import datetime
import os
import platform
import statistics

import numpy as np
import scipy

import fastmlp as fm

__all__ = ["machine_lines", "rate", "ratio", "micros"]


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions():
    """Installed versions of the optional contenders' libraries (not imported)."""
    from importlib import metadata
    found = []
    for name in ("scikit-learn", "torch"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return found


def _blas_line():
    """Which BLAS library the native kernels call (fastmlp/_kernels/_blas_lib.py)."""
    from fastmlp._kernels import _runtime
    info = _runtime.blas_library()
    if info["private"]:
        from importlib import metadata
        return f"scipy-openblas32 {metadata.version('scipy-openblas32')} (private)"
    return f"SciPy's ({os.path.basename(info['path'] or '?')})"


def machine_lines():
    """Markdown bullet lines describing the machine, the libraries and the load."""
    lines = [f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
             f"{platform.release()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, "
             f"scipy {scipy.__version__}, fastmlp {fm.__version__}, " + ", ".join(_versions()),
             f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"- fastmlp threads: {fm.get_num_threads()}",
             f"- fastmlp BLAS: {_blas_line()}"]
    if hasattr(os, "getloadavg"):
        lines.append("- load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    try:
        from threadpoolctl import threadpool_info
        pools = [" ".join(filter(None, (p["internal_api"], p.get("version"))))
                 + f" {p['num_threads']} threads ({os.path.basename(p['filepath'])})"
                 for p in threadpool_info()]
        lines.append("- thread pools: " + "; ".join(pools))
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency of fastmlp
        pass
    return lines


def rate(values, digits=0):
    """'median (min–max)' of a list of rates."""
    return (f"{statistics.median(values):,.{digits}f} "
            f"({min(values):,.{digits}f}–{max(values):,.{digits}f})")


def micros(seconds):
    """'median (min–max)' of a list of durations in seconds, in µs."""
    us = [1e6 * s for s in seconds]
    digits = 1 if statistics.median(us) < 100 else 0
    return rate(us, digits)


def ratio(num, den):
    """Ratio of the medians of two rate lists, with the min–max of the per-repeat
    ratios (the repeats were interleaved, so repeat i of each ran side by side)."""
    paired = [a / b for a, b in zip(num, den)]
    return (f"{statistics.median(num) / statistics.median(den):.2f}× "
            f"({min(paired):.2f}–{max(paired):.2f})")
