"""Side-by-side benchmark (``fastmlp bench``, ``python bench/compare.py``).

Method.  For each size (workloads.py: tiny 2-64-64-2 batch 32, mnist
784-256-128-10 batch 128, wide 1024-2048-2048-10 batch 512; float32, ReLU
hidden layers, softmax cross-entropy, Adam lr 1e-3) every contender
(contenders.py: fastmlp native with all threads and with one, its NumPy
backend, scikit-learn's MLPClassifier, PyTorch eager with fused Adam, and the
epoch's GEMMs alone) trains one epoch over the same synthetic data in shuffled
mini-batches, then predicts class probabilities for a batch of rows
(throughput) and for one row (latency: the median of many calls, each timed
alone).  Contenders are interleaved with a rotating order, each measurement
after untimed calls of the same contender (timing.py), and the table gives
the median and the min-max over the repeats; ratios are of medians, with the
min-max of the per-repeat ratios.  GFLOP/s counts the GEMM work of the step
(2 M N K per product: forward and dW per layer, dX for all but the first).

Before the table, fresh native and numpy models (and PyTorch from the same
initial weights) take one step on the same batch: their losses must agree
(exit status 1 otherwise).
"""
from .report import machine_lines
from .runner import check_first_step, main, parse_args
from .workloads import (DTYPE, LR, SIZE_NAMES, SIZES, GemmForward, GemmStep, Size, make_data,
                        make_model)

__all__ = ["DTYPE", "LR", "Size", "SIZES", "SIZE_NAMES", "make_model", "make_data", "GemmStep",
           "GemmForward", "machine_lines", "check_first_step", "parse_args", "main"]
