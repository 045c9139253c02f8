"""Train-step throughput side by side: fastmlp's native backend, its NumPy twin,
and the GEMMs alone (``fastmlp bench``, ``python bench/compare.py``).

For each size (float32, ReLU hidden layers, softmax cross-entropy, Adam) it
times ``model.train_step`` of a native and a numpy model on one batch, and the
"GEMMs only" step: the same step's matrix products and nothing else (forward
X W per layer, backward dW = X^T dZ and dX = dZ W^T) through NumPy's BLAS into
preallocated outputs (np.matmul(out=)).  The GEMMs are most of a step's
arithmetic, so native / GEMMs-only says how close the whole compiled step
(bias, activations, loss, optimizer, Python call) comes to that floor.

Measurements are interleaved (native, numpy, GEMMs, rotating the order in each
repeat) so that a noisy neighbour on a shared machine hits every variant alike;
each is a run of steps lasting about --target-time seconds (at least
--min-steps steps, which keeps the ~0.1-0.3 s wide steps short), after
--settle seconds of untimed steps of the same variant: NumPy's OpenBLAS
workers busy-wait ~0.1 s after each call and slow the native steps that run
meanwhile (see bench/test_bench_threads.py), so without it each native run
would pay for the numpy run before it.  The table is steady-state throughput.
The table gives the median samples/s and the min-max over the repeats; each
ratio is the ratio of medians, with the min-max of the per-repeat ratios.

Before timing, fresh native and numpy models from one seed take one step on
the same batch: their losses must agree (exit status 1 otherwise).

The workloads (sizes, models, data, the GEMMs-only step) are shared with the
pytest-benchmark suites in bench/ (bench/_workloads.py imports them from here).
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy

import fastmlp as fm

__all__ = ["Size", "SIZES", "SIZE_NAMES", "make_model", "make_data", "GemmStep", "measure",
           "main"]

DTYPE = np.float32
LR = 1e-3
VARIANTS = ("native", "numpy", "GEMMs only")


@dataclass(frozen=True)
class Size:
    """A network shape and the batch sizes it is benchmarked with.

    layers : (n_features, hidden..., n_classes)
    batch : rows of one train step
    epoch_samples : rows of the data set one benchmarked epoch runs over
    predict_samples : rows one benchmarked predict() call runs on
    """

    name: str
    layers: tuple
    batch: int
    epoch_samples: int
    predict_samples: int

    @property
    def network(self):
        return "-".join(map(str, self.layers))

    @property
    def n_features(self):
        return self.layers[0]

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def n_params(self):
        """Trainable parameters (every W and b entry)."""
        return sum(i * o + o for i, o in zip(self.layers[:-1], self.layers[1:]))

    @property
    def kernel_layer(self):
        """(rows, n_in, n_out) of the layer the kernel benchmarks use: the first hidden one."""
        return self.batch, self.layers[0], self.layers[1]

    def train_step_flops(self, rows=None):
        """Floating-point operations of one step's GEMMs (2 per multiply-add):
        forward X W and backward dW per layer, dX for every layer but the first."""
        rows = self.batch if rows is None else rows
        macs = [i * o for i, o in zip(self.layers[:-1], self.layers[1:])]
        return 2 * rows * (2 * sum(macs) + sum(macs[1:]))


SIZES = {
    "tiny": Size("tiny", (2, 64, 64, 2), batch=32, epoch_samples=4096, predict_samples=8192),
    "mnist": Size("mnist", (784, 256, 128, 10), batch=128, epoch_samples=4096,
                  predict_samples=8192),
    # ~0.1-0.3 s per step on 2 cores: small data sets keep the suites short
    "wide": Size("wide", (1024, 2048, 2048, 10), batch=512, epoch_samples=2048,
                 predict_samples=1024),
}
SIZE_NAMES = tuple(SIZES)


def make_model(size, backend, seed=0, threads=None):
    """float32 MLP of `size`: ReLU hidden layers, logits out, softmax CE, Adam(lr=1e-3)."""
    hidden = [fm.Dense(units, activation="relu") for units in size.layers[1:-1]]
    model = fm.Sequential(hidden + [fm.Dense(size.n_classes)], input_dim=size.n_features,
                          dtype="float32", seed=seed, backend=backend)
    return model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=LR))


def make_data(size, rows, seed=0):
    """Standard-normal features (rows, n_features) and int64 labels (rows,)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, size.n_features), dtype=DTYPE)
    y = rng.integers(0, size.n_classes, rows, dtype=np.int64)
    return X, y


class GemmStep:
    """The matrix products of one train step of `size` and nothing else, through
    NumPy's BLAS into preallocated outputs: forward Z = X W per layer, backward
    dW = X^T dZ per layer and dX = dZ W^T for every layer but the first.
    Its time is the floor a train step's other work (bias, activations, loss,
    optimizer, Python) adds to."""

    def __init__(self, size, seed=0):
        rng = np.random.default_rng(seed)
        rows, dims = size.batch, size.layers
        pairs = list(zip(dims[:-1], dims[1:]))
        self.W = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(DTYPE) for i, o in pairs]
        self.dW = [np.empty((i, o), DTYPE) for i, o in pairs]
        self.Z = [np.empty((rows, o), DTYPE) for _, o in pairs]
        # dLoss/dZ of the last layer is fixed; the others are produced by the dX products
        self.dZ = [np.zeros((rows, o), DTYPE) for _, o in pairs]
        self.dZ[-1][...] = rng.standard_normal((rows, dims[-1])) / rows

    def __call__(self, X):
        inp = X
        for W, Z in zip(self.W, self.Z):
            np.matmul(inp, W, out=Z)
            inp = Z
        for layer in range(len(self.W) - 1, -1, -1):
            inp = X if layer == 0 else self.Z[layer - 1]
            np.matmul(inp.T, self.dZ[layer], out=self.dW[layer])
            if layer > 0:
                np.matmul(self.dZ[layer], self.W[layer].T, out=self.dZ[layer - 1])


def parse_args(argv=None, prog=None, defaults=None, parser_class=argparse.ArgumentParser):
    """Parse the options; `defaults` overrides the defaults of sizes and repeats."""
    defaults = {"sizes": ",".join(SIZE_NAMES), "repeats": 5, **(defaults or {})}
    parser = parser_class(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=defaults["sizes"],
                        help=f"comma-separated, from {', '.join(SIZE_NAMES)} "
                             f"(default: {defaults['sizes']})")
    parser.add_argument("--repeats", type=int, default=defaults["repeats"],
                        help="interleaved measurements per variant "
                             f"(default: {defaults['repeats']})")
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


def main(argv=None, prog=None, defaults=None, parser_class=argparse.ArgumentParser):
    """Print the side-by-side table; returns the exit status (1 if the backends disagree)."""
    args = parse_args(argv, prog, defaults, parser_class)
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

