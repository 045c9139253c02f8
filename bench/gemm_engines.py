"""The matrix products of one train step through two GEMM engines: NumPy's
OpenBLAS (the "GEMMs only" line of compare.py; fastmlp calls a release of the
same library, see fastmlp/_kernels/_blas_lib.py) and PyTorch's (MKL in the x86
wheels), on 1 and 2 threads.

    python bench/gemm_engines.py [--sizes mnist,wide] [--repeats 7]

Both run the same products into preallocated outputs (GemmStep: forward
Z = X W per layer, dW = X^T dZ per layer, dX = dZ W^T for all but the first),
interleaved, median of the repeats.  It tells how much of a contender's lead
comes from its BLAS rather than from the work around the products.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]  # this checkout's fastmlp (built in place)

import numpy as np  # noqa: E402

from fastmlp._bench import SIZES  # noqa: E402
from fastmlp._bench.timing import untimed_calls  # noqa: E402
from fastmlp._bench.workloads import GemmStep  # noqa: E402

# seconds of untimed calls before each measurement: the other engine's threads go
# on spinning a while after its last call (OpenBLAS's ~0.1 s) and would slow the
# first timed calls on 2 threads
SETTLE = 0.3


def torch_step(torch, step, X):
    """GemmStep's products through torch.mm on the same arrays (shared memory)."""
    W = [torch.from_numpy(w) for w in step.W]
    Z = [torch.from_numpy(z) for z in step.Z]
    dZ = [torch.from_numpy(d) for d in step.dZ]
    dW = [torch.from_numpy(d) for d in step.dW]
    x = torch.from_numpy(X)

    def run():
        inp = x
        for w, z in zip(W, Z):
            torch.mm(inp, w, out=z)
            inp = z
        for layer in range(len(W) - 1, -1, -1):
            inp = x if layer == 0 else Z[layer - 1]
            torch.mm(inp.t(), dZ[layer], out=dW[layer])
            if layer > 0:
                torch.mm(dZ[layer], W[layer].t(), out=dZ[layer - 1])
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="mnist,wide")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare")
        return 1
    from threadpoolctl import threadpool_limits

    print("| size | threads | NumPy (OpenBLAS) ms | PyTorch ms | NumPy ÷ PyTorch |")
    print("|---|---|---|---|---|")
    for name in args.sizes.split(","):
        size = SIZES[name]
        X = np.random.default_rng(0).standard_normal((size.batch, size.layers[0]))
        X = X.astype(np.float32)
        step = GemmStep(size)
        engines = {"numpy": lambda: step(X), "torch": torch_step(torch, step, X)}
        for threads in (1, 2):
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            times = {k: [] for k in engines}
            with threadpool_limits(threads):
                for _ in range(args.repeats):
                    for key, run in engines.items():
                        untimed_calls(run, SETTLE)
                        calls = max(1, int(0.2 / max(_time(run), 1e-6)))
                        t = time.perf_counter()
                        for _ in range(calls):
                            run()
                        times[key].append((time.perf_counter() - t) / calls)
            torch.set_num_threads(previous)
            a, b = (statistics.median(times[k]) for k in ("numpy", "torch"))
            print(f"| {name} | {threads} | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f}× |")
    return 0


def _time(run):
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
