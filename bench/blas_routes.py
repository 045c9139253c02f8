"""The native train step with each BLAS route fastmlp can call: scipy-openblas32's
OpenBLAS (the default) and SciPy's own (FASTMLP_BLAS=scipy).

    python bench/blas_routes.py [--sizes mnist,wide] [--threads 2] [--rounds 8] [--seconds 2]

The route is fixed when fastmlp is imported, so each measurement is a fresh
process: one epoch after another on shuffled rows for `--seconds`, the median
time per step.  The routes alternate for `--rounds` rounds; the table gives the
median over the rounds and the median of the per-round ratios.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ROUTES = {"scipy-openblas32": "auto", "SciPy's": "scipy"}

_MEASURE = """
import statistics, sys, time
import numpy as np
import fastmlp as fm
from fastmlp._bench import SIZES, make_model, make_data
from fastmlp._kernels import _runtime
name, nt, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
size = SIZES[name]
n_batches = size.epoch_samples // size.batch  # compare.py's epoch
X, y = make_data(size, size.epoch_samples, seed=0)
rng = np.random.default_rng(0)
losses = np.empty(n_batches)
with fm.threads(nt):
    plan = make_model(size, "native", seed=0)._plan
    plan.train_epoch(X, y, rng.permutation(X.shape[0]).astype(np.int64), size.batch, losses)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        order = rng.permutation(X.shape[0]).astype(np.int64)
        start = time.perf_counter()
        plan.train_epoch(X, y, order, size.batch, losses)
        times.append((time.perf_counter() - start) / n_batches)
print(statistics.median(times), _runtime.blas_library()["private"])
"""


def measure(route, size, threads, seconds):
    env = {**os.environ, "FASTMLP_BLAS": ROUTES[route],
           "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", _MEASURE, size, str(threads), str(seconds)],
                         capture_output=True, text=True, env=env, check=True)
    seconds_per_step, private = out.stdout.split()
    if (private == "True") != (ROUTES[route] == "auto"):
        raise SystemExit(f"the {route} route did not load (is scipy-openblas32 installed?)")
    return float(seconds_per_step)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="mnist,wide")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    names = list(ROUTES)
    print(f"| size | threads | {names[0]} µs/step | {names[1]} µs/step | speed-up |")
    print("|---|---|---|---|---|")
    for size in args.sizes.split(","):
        rounds = []
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            got = {route: measure(route, size, args.threads, args.seconds) for route in order}
            rounds.append(got)
        med = {route: statistics.median(g[route] for g in rounds) for route in names}
        ratio = statistics.median(g[names[1]] / g[names[0]] for g in rounds)
        print(f"| {size} | {args.threads} | {med[names[0]] * 1e6:,.0f} | "
              f"{med[names[1]] * 1e6:,.0f} | {ratio:.3f}× |", flush=True)


if __name__ == "__main__":
    main()
