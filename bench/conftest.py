"""Settings and reporting for the pytest-benchmark suites in bench/.

    python -m pytest bench/ --benchmark-disable -q   # smoke test: each benchmark runs once,
                                                     # every result is still checked
    python -m pytest bench/ --benchmark-only -q      # timings

Each benchmark is parametrized by backend ("native", "numpy") and size (tiny,
mnist, wide; see _workloads.py) and sets ``benchmark.group`` so the two
backends of one kernel and size sit side by side.  After the pytest-benchmark
tables, a summary prints numpy/native speed-ups per group and the thread
benchmarks' ratios (see test_bench_threads.py).
"""
import os
import platform
import sys
import time

import pytest

# bench/ is not a package: make its helper module importable under any --import-mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Defaults for bench/ that differ from pytest-benchmark's (an option given on the
# command line wins).  max_time is the time budget per benchmark: 0.5 s instead of
# the plugin's 1 s keeps a full run of the 114 benchmarks at ~1-1.5 min on 2 cores;
# the plugin's min_rounds (5) still gives the ~0.1 s wide steps 5 timed rounds.
BENCH_DEFAULTS = {"benchmark_max_time": ("--benchmark-max-time", "0.5")}

# filled by the _record fixture, printed by pytest_terminal_summary
_RESULTS = []


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # runs before pytest-benchmark's own pytest_configure (trylast) reads the options
    given = " ".join(map(str, config.invocation_params.args))
    for dest, (flag, value) in BENCH_DEFAULTS.items():
        if hasattr(config.option, dest) and flag not in given:
            setattr(config.option, dest, value)


def pytest_report_header(config):
    import numpy as np
    import scipy
    import fastmlp as fm
    from fastmlp._kernels import _runtime

    lines = [f"fastmlp {fm.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
             f"python {platform.python_version()}",
             f"cpus: {os.cpu_count()}, fastmlp threads: {fm.get_num_threads()}, "
             f"openmp: {_runtime.openmp_enabled()}, "
             f"BLAS kept single-threaded in native calls: {_runtime.blas_thread_control()}"]
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            name = " ".join(filter(None, (pool["internal_api"], pool.get("version"))))
            lines.append(f"  {name} ({pool['num_threads']} threads): "
                         f"{os.path.basename(pool['filepath'])}")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency of fastmlp
        pass
    return lines


# Seconds to idle before each timed benchmark.  NumPy's OpenBLAS workers busy-wait
# ~0.1 s after each call and slow whatever runs next on the same cores (see
# test_bench_threads.py), so without a pause a native benchmark that follows a
# numpy one would pay for it during its first rounds.
SETTLE = 0.2


@pytest.fixture(autouse=True)
def _settle(request):
    if "benchmark" in request.fixturenames and not request.config.getoption(
            "benchmark_disable", default=False):
        time.sleep(SETTLE)


@pytest.fixture(autouse=True)
def _record(request):
    """After each benchmark, keep its group, median and extra_info for the summary."""
    yield
    bench = getattr(request.node, "funcargs", {}).get("benchmark")
    stats = getattr(bench, "stats", None)
    if bench is None or bench.disabled or stats is None:
        return
    _RESULTS.append({"group": bench.group, "name": bench.name,
                     "median": stats.stats.median, "extra": dict(bench.extra_info)})


def _fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    write = terminalreporter.write_line
    groups = {}
    for r in _RESULTS:
        groups.setdefault(r["group"], []).append(r)

    pairs = []
    for group, rows in groups.items():
        by_backend = {r["extra"].get("backend"): r for r in rows if "variant" not in r["extra"]}
        if "native" in by_backend and "numpy" in by_backend:
            pairs.append((group, by_backend["native"], by_backend["numpy"]))
    if pairs:
        terminalreporter.section("fastmlp: native vs numpy (medians)")
        width = max(len(group) for group, _, _ in pairs)
        write(f"{'group':{width}s} {'native':>10s} {'numpy':>10s} {'numpy/native':>12s}"
              f" {'native samples/s':>17s}")
        for group, nat, ref in pairs:
            samples = nat["extra"].get("samples")
            rate = f"{samples / nat['median']:17,.0f}" if samples else " " * 17
            times = f"{_fmt_time(nat['median']):>10s} {_fmt_time(ref['median']):>10s}"
            write(f"{group:{width}s} {times} {ref['median'] / nat['median']:11.2f}x {rate}")

    variants = [r for r in _RESULTS if "variant" in r["extra"]]
    if variants:
        terminalreporter.section("fastmlp: threads (medians; ratio to the group's baseline)")
        for group, rows in groups.items():
            rows = [r for r in rows if "variant" in r["extra"]]
            base = next((r for r in rows if r["extra"].get("baseline")), None)
            if not rows:
                continue
            write(group)
            for r in rows:
                ratio = f"{r['median'] / base['median']:.2f}x" if base else ""
                measured = "".join(f"; {key}: {value}x" for key, value in r["extra"].items()
                                   if key.startswith("interleaved"))
                write(f"  {r['extra']['variant']:32s} {_fmt_time(r['median']):>10s}  "
                      f"{ratio:>6s}{measured}")
