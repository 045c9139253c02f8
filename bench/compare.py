"""Side by side: one epoch of training, predict throughput and single-row
latency of fastmlp native (2 threads and 1), its NumPy backend, scikit-learn,
PyTorch and the GEMMs alone.

    python bench/compare.py [--sizes tiny,mnist,wide] [--repeats 5] [--threads 2]
                            [--contenders native,numpy,...] [--phases train,predict,latency]

The runner and its method (interleaved repeats, settling, the GEMMs-only floor)
are in fastmlp/_bench/, which ``fastmlp bench`` runs too; this script runs it
on this checkout's fastmlp (built in place), with every size by default.
scikit-learn and PyTorch are optional: missing ones are reported "not installed".
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]  # this checkout's fastmlp (built in place)

from fastmlp._bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
