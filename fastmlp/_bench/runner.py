"""The side-by-side table: ``fastmlp bench`` and ``python bench/compare.py``."""
import argparse
import math
import os
import shlex
import statistics
import sys

import numpy as np

import fastmlp as fm

from . import report
from .contenders import CONTENDERS, Torch, Unavailable, build
from .timing import interleave
from .workloads import SIZE_NAMES, SIZES, make_data, make_model

__all__ = ["parse_args", "check_first_step", "measure_size", "main"]

PHASES = ("train", "predict", "latency")
DESCRIPTION = ("One epoch of training side by side: fastmlp native, its NumPy backend, "
               "scikit-learn, PyTorch and the GEMMs alone; predict throughput and "
               "single-row latency.")


def parse_args(argv=None, prog=None, defaults=None, parser_class=argparse.ArgumentParser):
    """Parse the options; `defaults` overrides the defaults of sizes and repeats."""
    from . import __doc__ as method
    defaults = {"sizes": ",".join(SIZE_NAMES), "repeats": 5, **(defaults or {})}
    parser = parser_class(prog=prog, description=DESCRIPTION + "\n\n" + method,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=defaults["sizes"],
                        help=f"comma-separated, from {', '.join(SIZE_NAMES)} "
                             f"(default: {defaults['sizes']})")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated, from " + ", ".join(CONTENDERS) + " (default: all)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, from {', '.join(PHASES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=defaults["repeats"],
                        help="interleaved measurements per contender "
                             f"(default: {defaults['repeats']})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of every contender (fastmlp.set_num_threads, "
                             "torch.set_num_threads); default: the CPU count")
    parser.add_argument("--target-time", type=float, default=0.3,
                        help="seconds per measurement (default: 0.3)")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="untimed seconds of a contender before each of its "
                             "measurements (default: 0.2)")
    parser.add_argument("--min-steps", type=int, default=1,
                        help="fewest epochs (or predict calls) per measurement (default: 1)")
    args = parser.parse_args(argv)

    def names(option, text, known):
        chosen = [s.strip() for s in text.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in known]
        if unknown or not chosen:
            parser.error(f"unknown {option} {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(known)}")
        return chosen

    args.sizes = names("size(s)", args.sizes, SIZE_NAMES)
    args.contenders = names("contender(s)", args.contenders, tuple(CONTENDERS))
    args.phases = names("phase(s)", args.phases, PHASES)
    if args.repeats < 1 or args.threads < 1 or args.min_steps < 1 or args.target_time <= 0 \
            or args.settle < 0:
        parser.error("--repeats, --threads and --min-steps must be >= 1, --target-time > 0, "
                     "--settle >= 0")
    return args


def check_first_step(size, xb, yb, torch_contender=None):
    """Fresh native and numpy models (and PyTorch from the same initial weights)
    take one step on the same batch: {name: loss} and whether they agree."""
    losses = {"native": make_model(size, "native").train_step(xb, yb),
              "numpy": make_model(size, "numpy").train_step(xb, yb)}
    if torch_contender is not None:
        fresh = Torch(size, xb, yb, torch_contender.threads)
        losses["PyTorch"] = fresh.step(fresh.tX, fresh.ty)
    ok = all(np.isfinite(v) and np.isclose(v, losses["native"], rtol=1e-5, atol=0)
             for v in losses.values())
    return losses, ok


def measure_size(size, args):
    """Per contender: seconds per epoch, per predict call and per single-row call
    (lists over the repeats), the losses seen, and the unavailable ones."""
    X, y = make_data(size, size.epoch_samples)
    Xp, _ = make_data(size, size.predict_samples, seed=1)
    row = np.ascontiguousarray(Xp[:1])
    contenders, missing = {}, {}
    for name in args.contenders:
        try:
            contenders[name] = build(name, size, X, y, args.threads)
        except Unavailable as e:
            missing[name] = str(e)
    results = {name: {} for name in contenders}
    losses = {name: [] for name in contenders}

    def epoch_of(name, c):
        return lambda: losses[name].append(c.epoch())

    jobs = {
        "train": {n: (c.scope, epoch_of(n, c)) for n, c in contenders.items()},
        "predict": {n: (c.scope, (lambda c=c: c.predict(Xp))) for n, c in contenders.items()},
        "latency": {n: (c.scope, (lambda c=c: c.predict(row))) for n, c in contenders.items()
                    if n != "native 1T"},  # one row runs on one thread anyway
    }
    for phase in args.phases:
        seconds = interleave(jobs[phase], args.repeats, args.target_time, args.settle,
                             min_calls=args.min_steps if phase == "train" else 1,
                             per_call=phase == "latency")
        for name, values in seconds.items():
            results[name][phase] = values
    for name, c in contenders.items():  # the results are probabilities, the losses finite
        if name != "GEMMs only":
            proba = c.predict(Xp[:64])
            if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-4):
                raise AssertionError(f"{size.name}: {name}'s predictions are not probabilities")
            if not all(math.isfinite(v) for v in losses[name]):
                raise FloatingPointError(f"{size.name}: {name}'s loss became non-finite")
    return results, losses, missing, contenders


def _table(args, all_results):
    """The one side-by-side table and the ratio table, as Markdown lines."""
    head = ("| size | network | batch | contender | train samples/s | train GFLOP/s "
            "| ÷ GEMMs only | predict samples/s | 1-row predict µs |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    ratios = ["| size | native ÷ GEMMs only | native ÷ numpy | native ÷ PyTorch "
              "| native ÷ scikit-learn | 2 threads ÷ 1 (native) |", "|---|---|---|---|---|---|"]
    for size, (results, missing) in all_results.items():
        lead = f"| {size.name} | {size.network} | {size.batch} |"
        rows = size.epoch_samples
        floor = results.get("GEMMs only", {}).get("train")
        for name in args.contenders:
            if name in missing:
                lines.append(f"{lead} {name} | not installed | | | | |")
                continue
            r = results[name]
            cells = []
            train = [rows / s for s in r["train"]] if "train" in r else None
            if train:
                gflops = [size.train_step_flops(rows) / s / 1e9 for s in r["train"]]
                floor_rates = [rows / s for s in floor] if floor else None
                cells += [report.rate(train), report.rate(gflops, 1),
                          report.ratio(train, floor_rates) if floor_rates else ""]
            else:
                cells += ["", "", ""]
            cells.append(report.rate([size.predict_samples / s for s in r["predict"]])
                         if "predict" in r else "")
            cells.append(report.micros(r["latency"]) if "latency" in r else "")
            lines.append(f"{lead} {name} | " + " | ".join(cells) + " |")
        native = results.get("native", {}).get("train")
        if native:
            native_rates = [rows / s for s in native]
            cells = []
            for other in ("GEMMs only", "numpy", "PyTorch", "scikit-learn", "native 1T"):
                seconds = results.get(other, {}).get("train")
                if seconds:
                    cells.append(report.ratio(native_rates, [rows / s for s in seconds]))
                else:
                    cells.append("not installed" if other in missing else "")
            ratios.append(f"| {size.name} | " + " | ".join(cells) + " |")
    return lines, ratios


def main(argv=None, prog=None, defaults=None, parser_class=argparse.ArgumentParser):
    """Print the side-by-side table; returns the exit status (1 if the first
    training steps of the contenders disagree)."""
    args = parse_args(argv, prog, defaults, parser_class)
    fm.set_num_threads(args.threads)
    command = shlex.join([os.path.basename(sys.executable)] + sys.argv)
    print("# fastmlp side by side: one epoch of training, predict, single-row latency\n")
    print(f"- command: `{command}`")
    for line in report.machine_lines():
        print(line)
    print(f"- {args.repeats} interleaved repeats of ~{args.target_time:g} s per contender "
          f"(at least {args.min_steps} epoch(s), after {args.settle:g} s untimed); float32, "
          "ReLU hidden layers, softmax cross-entropy, Adam lr 1e-3, shuffled mini-batches\n",
          flush=True)
    all_results, notes, failed = {}, [], False
    for name in args.sizes:
        size = SIZES[name]
        results, losses, missing, contenders = measure_size(size, args)
        xb, yb = make_data(size, size.batch)
        first, ok = check_first_step(size, xb, yb, contenders.get("PyTorch"))
        failed |= not ok
        all_results[size] = (results, missing)
        n_batches = size.epoch_samples // size.batch
        extra = ""
        if "PyTorch" in contenders:
            extra = f"; PyTorch Adam: {contenders['PyTorch'].optimizer_kind}"
        notes.append(
            f"- {name}: epoch of {size.epoch_samples} samples ({n_batches} batches of "
            f"{size.batch}), predict on {size.predict_samples} rows; first-step loss "
            + ", ".join(f"{k} {v:.6f}" for k, v in first.items())
            + f" ({'agree' if ok else 'DISAGREE'}){extra}; median epoch loss "
            + ", ".join(f"{k} {statistics.median(v):.4f}" for k, v in losses.items()
                        if v and not math.isnan(v[0])))
        print(f"... {name} done", file=sys.stderr, flush=True)
    lines, ratios = _table(args, all_results)
    print("\n".join(lines))
    print("\nRatios of training throughput (median, min–max of the per-repeat ratios):\n")
    print("\n".join(ratios))
    print("\nGFLOP/s counts the step's GEMM work (2 M N K per product: forward and dW per "
          "layer, dX for all but the first) at each contender's speed.\n")
    print("\n".join(notes))
    return 1 if failed else 0
