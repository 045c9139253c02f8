"""Train-step throughput side by side: fastmlp's native backend, its NumPy twin,
and the GEMMs alone.

    python bench/compare.py [--sizes tiny,mnist,wide] [--repeats 5] [--threads 2]

For each size (bench/_workloads.py: float32, ReLU hidden layers, softmax
cross-entropy, Adam) it times ``model.train_step`` of a native and a numpy
model on one batch, and the "GEMMs only" step: the same step's matrix products
and nothing else (forward X W per layer, backward dW = X^T dZ and dX = dZ W^T)
through NumPy's BLAS into preallocated outputs (np.matmul(out=)).  The GEMMs
are most of a step's arithmetic, so native / GEMMs-only says how close the
whole compiled step (bias, activations, loss, optimizer, Python call) comes
to that floor.

Measurements are interleaved (native, numpy, GEMMs, rotating the order in each
repeat) so that a noisy neighbour on a shared machine hits every variant alike;
each is a run of steps lasting about --target-time seconds (at least
--min-steps steps, which keeps the ~0.1-0.3 s wide steps short), after
--settle seconds of untimed steps of the same variant: NumPy's OpenBLAS
workers busy-wait ~0.1 s after each call and slow the native steps that run
meanwhile (see test_bench_threads.py), so without it each native run would
pay for the numpy run before it.  The table is steady-state throughput.  The table
gives the median samples/s and the min-max over the repeats; each ratio is
the ratio of medians, with the min-max of the per-repeat ratios.

Before timing, fresh native and numpy models from one seed take one step on
the same batch: their losses must agree (exit status 1 otherwise).
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # this checkout's fastmlp (built in place)

import numpy as np  # noqa: E402
import scipy  # noqa: E402

import fastmlp as fm  # noqa: E402
from _workloads import SIZE_NAMES, SIZES, GemmStep, make_data, make_model  # noqa: E402

VARIANTS = ("native", "numpy", "GEMMs only")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(SIZE_NAMES),
                        help=f"comma-separated, from {', '.join(SIZE_NAMES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved measurements per variant (default: 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="fastmlp.set_num_threads (native kernels and the BLAS); "
                             "default: the CPU count")
    parser.add_argument("--target-time", type=float, default=0.3,
                        help="seconds per measurement (default: 0.3)")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="untimed seconds of a variant before each of its runs "
                             "(default: 0.2)")
    parser.add_argument("--min-steps", type=int, default=2,
                        help="fewest steps per measurement (default: 2)")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZE_NAMES)}")
    if args.repeats < 1 or args.threads < 1 or args.min_steps < 1 or args.target_time <= 0 \
            or args.settle < 0:
        parser.error("--repeats, --threads and --min-steps must be >= 1, --target-time > 0, "
                     "--settle >= 0")
    return args


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines():
    lines = [f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
             f"{platform.release()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, "
             f"scipy {scipy.__version__}, fastmlp {fm.__version__}",
             f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"- fastmlp threads: {fm.get_num_threads()}"]
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


def steps_for(fn, target, min_steps, settle):
    """Steps that take about `target` seconds, counted after `settle` seconds (and
    at least two calls) of warm-up so the previous variant's threads are idle."""
    fn()
    end = time.perf_counter() + settle
    fn()
    while time.perf_counter() < end:
        fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 10:
            break
        n *= 2
    return max(min_steps, round(target * n / elapsed))


def check_first_step(size, xb, yb):
    """Fresh native and numpy models, one seed: (loss_native, loss_numpy, ok)."""
    native = make_model(size, "native").train_step(xb, yb)
    numpy = make_model(size, "numpy").train_step(xb, yb)
    ok = bool(np.isfinite(native) and np.isclose(native, numpy, rtol=1e-5, atol=0))
    return native, numpy, ok


def measure(size, repeats, target, min_steps, settle):
    """Samples/s of each variant, one list per variant (one value per repeat)."""
    xb, yb = make_data(size, size.batch)
    native, numpy = make_model(size, "native"), make_model(size, "numpy")
    gemm = GemmStep(size)
    fns = {"native": lambda: native.train_step(xb, yb),
           "numpy": lambda: numpy.train_step(xb, yb),
           "GEMMs only": lambda: gemm(xb)}
    steps = {v: steps_for(fns[v], target, min_steps, settle) for v in VARIANTS}
    untimed = {v: max(1, round(settle / target * steps[v])) if settle > 0 else 0
               for v in VARIANTS}
    rates = {v: [] for v in VARIANTS}
    for r in range(repeats):
        for v in VARIANTS[r % 3:] + VARIANTS[:r % 3]:  # rotate the order
            fn, n = fns[v], steps[v]
            for _ in range(untimed[v]):
                fn()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            rates[v].append(n * size.batch / (time.perf_counter() - start))
    for model in (native, numpy):  # the models trained throughout: still finite
        if not np.isfinite(model.train_step(xb, yb)):
            raise FloatingPointError(f"{size.name}: the loss became non-finite while timing")
    return rates, steps


def _rate(values):
    return (f"{statistics.median(values):,.0f} "
            f"({min(values):,.0f}–{max(values):,.0f})")


def _ratio(num, den):
    paired = [a / b for a, b in zip(num, den)]
    return (f"{statistics.median(num) / statistics.median(den):.2f}× "
            f"({min(paired):.2f}–{max(paired):.2f})")


def main(argv=None):
    args = parse_args(argv)
    fm.set_num_threads(args.threads)
    command = shlex.join([os.path.basename(sys.executable)] + sys.argv)
    print("# fastmlp train_step throughput: native vs numpy backend vs GEMMs only\n")
    print(f"- command: `{command}`")
    for line in machine_lines():
        print(line)
    print(f"- {args.repeats} interleaved repeats of ~{args.target_time:g} s per variant "
          f"(at least {args.min_steps} steps, after {args.settle:g} s untimed); float32, Adam, "
          "ReLU, softmax cross-entropy\n", flush=True)

    header = ("| size | network | batch | native samples/s | numpy samples/s "
              "| GEMMs-only samples/s | native/numpy | native/GEMMs-only |")
    table = [header, "|" + "---|" * header.count(" | ") + "---|"]
    notes, failed = [], False
    for name in args.sizes:
        size = SIZES[name]
        xb, yb = make_data(size, size.batch)
        loss_native, loss_numpy, ok = check_first_step(size, xb, yb)
        failed |= not ok
        rates, steps = measure(size, args.repeats, args.target_time, args.min_steps,
                               args.settle)
        nat, ref, gem = (rates[v] for v in VARIANTS)
        table.append(f"| {name} | {size.network} | {size.batch} | {_rate(nat)} | {_rate(ref)} "
                     f"| {_rate(gem)} | {_ratio(nat, ref)} | {_ratio(nat, gem)} |")
        ms = {v: 1e3 * size.batch / statistics.median(rates[v]) for v in VARIANTS}
        gflops = {v: size.train_step_flops() / (ms[v] * 1e6) for v in VARIANTS}
        notes.append(
            f"- {name}: median ms/step native {ms['native']:.3g}, numpy {ms['numpy']:.3g}, "
            f"GEMMs only {ms['GEMMs only']:.3g} (the step's GEMM work at "
            + " / ".join(f"{gflops[v]:.0f}" for v in VARIANTS) + " GFLOP/s); "
            + f"steps per measurement {' / '.join(str(steps[v]) for v in VARIANTS)}; first-step "
            f"loss native {loss_native:.6f}, numpy {loss_numpy:.6f} "
            f"({'agree' if ok else 'DISAGREE'})")
        print(f"... {name} done", file=sys.stderr, flush=True)
    print("\n".join(table))
    print("\nRatios are of throughput: native/numpy > 1 means native is faster; native/GEMMs-only"
          " near 1 means the step costs little beyond its matrix products.\n")
    print("\n".join(notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
