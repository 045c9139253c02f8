"""Train-step throughput side by side: fastmlp's native backend, its NumPy twin,
and the GEMMs alone.

    python bench/compare.py [--sizes tiny,mnist,wide] [--repeats 5] [--threads 2]

The runner and its method (interleaved repeats, settling, the GEMMs-only floor)
are in fastmlp/_bench.py, which ``fastmlp bench`` runs too; this script runs it
on this checkout's fastmlp (built in place), with every size by default.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]  # this checkout's fastmlp (built in place)

from fastmlp._bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
