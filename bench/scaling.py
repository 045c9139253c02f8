"""How training scales from 1 to 2 threads, next to what this machine allows.

    python bench/scaling.py [--sizes mnist,wide] [--rounds 6] [--seconds 2]

Five measurements per size, each in fresh processes, in an order rotated from
round to round; samples/s over `--seconds` of back-to-back epochs (shuffled
batches, the compare.py workload), the median over the rounds:

  native 1T, 2T         fastmlp's train step on 1 and on 2 threads
  two 1T processes      two independent 1-thread trainings started together,
                        their samples/s added: the same work with no sharing
                        and no synchronization, the most 2 cores give here
  GEMMs only 1T, 2T     the step's matrix products alone (compare.py's floor),
                        threaded by NumPy's OpenBLAS itself, which packs each
                        shared panel once for both threads

The ratios say how much of the 2-core ceiling the step reaches, and how well
the products alone parallelize at that size.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_MEASURE = """
import sys, time
import numpy as np
import fastmlp as fm
from fastmlp._bench import SIZES, make_model, make_data
from fastmlp._bench.workloads import GemmStep
kind, name, nt, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
size = SIZES[name]
n_batches = size.epoch_samples // size.batch  # compare.py's epoch
X, y = make_data(size, size.epoch_samples, seed=0)
rng = np.random.default_rng(0)
with fm.threads(nt):
    if kind == "native":
        plan = make_model(size, "native", seed=0)._plan
        losses = np.empty(n_batches)
        def epoch():
            plan.train_epoch(X, y, rng.permutation(X.shape[0]).astype(np.int64), size.batch,
                             losses)
    else:
        step = GemmStep(size)
        def epoch():
            for lo in range(0, X.shape[0], size.batch):
                step(X[lo:lo + size.batch])
    epoch()
    print("ready", flush=True)
    sys.stdin.readline()          # start together with the other processes
    epochs, start = 0, time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        epoch()
        epochs += 1
    elapsed = time.perf_counter() - start
print(epochs * X.shape[0] / elapsed)
"""

# name -> (kind, threads, processes)
MEASUREMENTS = {"native 1T": ("native", 1, 1), "native 2T": ("native", 2, 1),
                "two 1T processes": ("native", 1, 2), "GEMMs only 1T": ("gemms", 1, 1),
                "GEMMs only 2T": ("gemms", 2, 1)}


def measure(name, size, seconds):
    """Samples/s of measurement `name`, summed over its processes."""
    kind, threads, processes = MEASUREMENTS[name]
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", _MEASURE, kind, size, str(threads),
                               str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(processes)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit(f"{name}: the measuring process failed")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        total = 0.0
        for p in procs:
            out, _ = p.communicate()
            if p.returncode:
                raise SystemExit(f"{name}: the measuring process failed")
            total += float(out)
        return total
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="mnist,wide")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("this needs at least 2 CPUs")
    names = list(MEASUREMENTS)
    print("| size | " + " | ".join(f"{n} samples/s" for n in names)
          + " | native 2T ÷ 1T | two processes ÷ one | native 2T ÷ two processes"
          " | GEMMs only 2T ÷ 1T |")
    print("|---" * (len(names) + 5) + "|")
    for size in args.sizes.split(","):
        rounds = []
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            rounds.append({n: measure(n, size, args.seconds) for n in order})

        def ratio(a, b):  # median of the per-round ratios
            return statistics.median(g[a] / g[b] for g in rounds)

        med = {n: statistics.median(g[n] for g in rounds) for n in names}
        print(f"| {size} | " + " | ".join(f"{med[n]:,.0f}" for n in names)
              + f" | {ratio('native 2T', 'native 1T'):.2f}×"
              f" | {ratio('two 1T processes', 'native 1T'):.2f}×"
              f" | {ratio('native 2T', 'two 1T processes'):.2f}×"
              f" | {ratio('GEMMs only 2T', 'GEMMs only 1T'):.2f}× |", flush=True)


if __name__ == "__main__":
    main()
