"""Command line: ``python -m fastmlp COMMAND`` (also installed as ``fastmlp COMMAND``).

    fastmlp demo                                  bundled digits and a spiral, native vs NumPy
    fastmlp train DATA.csv --target COL --hidden 128,64 --activation relu --epochs 20 --out model.fm
    fastmlp predict model.fm DATA.csv [--proba] [--out predictions.csv]
    fastmlp bench [--sizes tiny,mnist] [--repeats 3]

DATA is a CSV file (header optional; numeric features) or an .npz file with
arrays X and y.  A bad file or flag is reported in one line on stderr, with
exit status 2.
"""
import argparse
import csv
import io
import sys
import time

import numpy as np

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and exit status 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A bad file or flag: reported in one line, exit status 2."""


# ---- demo ---------------------------------------------------------------------------

def _status_callback(label, epochs):
    """A one-line live status (epoch and loss) on a terminal; nothing otherwise."""
    import fastmlp as fm

    if not sys.stdout.isatty():
        return []

    def show(epoch, logs):
        sys.stdout.write(f"\r  {label}: epoch {epoch + 1}/{epochs} - loss {logs['loss']:.4f}")
        sys.stdout.flush()

    def clear(logs):
        sys.stdout.write("\r" + " " * 72 + "\r")
        sys.stdout.flush()

    return [fm.callbacks.LambdaCallback(on_epoch_end=show, on_train_end=clear)]


def _train(backend, X_train, y_train, X_test, y_test, hidden, epochs, batch_size, lr, seed,
           label):
    import fastmlp as fm

    layers = [fm.Dense(units, activation="relu") for units in hidden]
    layers.append(fm.Dense(int(y_train.max()) + 1))
    model = fm.Sequential(layers, input_dim=X_train.shape[1], seed=seed, backend=backend)
    # no per-epoch metrics: accuracy is measured once after training, so the
    # timing covers training alone
    model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=lr))
    start = time.perf_counter()
    model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=_status_callback(label, epochs))
    elapsed = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(X_test).argmax(axis=1) == y_test))
    return model, accuracy, epochs * len(X_train) / elapsed, elapsed


def demo(args):
    """Train the same network on two bundled problems with both backends, side by side."""
    import fastmlp as fm

    if args.threads:
        fm.set_num_threads(args.threads)
    X, y = fm.datasets.load_digits()
    X = X / 16.0  # pixel intensities 0..16 -> [0, 1]
    digits = fm.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    X_spiral, y_spiral = fm.datasets.spiral(n_samples=600, n_classes=3, noise=0.2, seed=0)
    spiral = fm.datasets.train_test_split(X_spiral, y_spiral, test_size=0.25, seed=0,
                                          stratify=True)
    problems = [
        ("digits 8x8 (1797 images, 10 classes)", digits, (128, 64), args.epochs, 32, 1e-3),
        ("spiral (600 points, 3 arms)", spiral, (64, 64), args.epochs * 10, 32, 1e-2),
    ]
    print(f"fastmlp {fm.__version__} demo - {fm.get_num_threads()} thread(s), float32, Adam, "
          "ReLU hidden layers, softmax cross-entropy\n")
    header = (f"{'problem':38s} {'backend':8s} {'epochs':>6s} {'test acc':>9s} "
              f"{'samples/s':>12s} {'time':>8s}")
    print(header)
    print("-" * len(header), flush=True)
    spiral_model = None
    for name, (X_tr, X_te, y_tr, y_te), hidden, epochs, batch, lr in problems:
        speeds = {}
        for backend in ("native", "numpy"):
            model, acc, speed, elapsed = _train(backend, X_tr, y_tr, X_te, y_te, hidden, epochs,
                                                batch, lr, seed=0,
                                                label=f"{name.split()[0]} {backend}")
            speeds[backend] = speed
            if name.startswith("spiral") and backend == "native":
                spiral_model = model
            print(f"{name:38s} {backend:8s} {epochs:6d} {acc:9.3f} {speed:12,.0f} "
                  f"{elapsed:7.2f}s", flush=True)
        print(f"{'':38s} native is {speeds['native'] / speeds['numpy']:.1f}x the NumPy backend\n")
    if args.plot:
        _demo_plot(spiral_model, X_spiral, y_spiral, args.plot)
    return 0


def _demo_plot(model, X, y, path):
    try:
        import matplotlib
    except ImportError:
        print("(matplotlib is not installed: no decision-boundary picture; "
              "pip install fastmlp[plot])")
        return
    matplotlib.use("Agg")
    import fastmlp as fm

    fig = fm.plot.plot_decision_boundary(model, X, y)
    fig.axes[0].set_title("spiral: decision regions of the native model, shaded by P(class | x)",
                          fontsize=9)
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt
    plt.close(fig)
    print(f"wrote {path} (the spiral's decision regions)")


# ---- train ---------------------------------------------------------------------------

def _positive_ints(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _choose_task(y, task):
    if task != "auto":
        if task == "regression" and y.dtype.kind not in "fiu":
            raise UsageError("--task regression needs a numeric target column")
        return task
    if y.dtype.kind not in "fiu":
        return "classification"
    integral = bool(np.all(y == np.round(y)))
    return "classification" if integral and len(np.unique(y)) <= 50 else "regression"


def _label(value):
    """A class label as written: integral numbers without ".0"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def train(args):
    import fastmlp as fm
    from fastmlp.datasets import load_table, train_test_split

    if args.threads:
        fm.set_num_threads(args.threads)
    if args.target is None and not args.data.lower().endswith(".npz"):
        raise UsageError(f"{args.data}: which column is the target? pass --target COLUMN "
                         "(a header name or a 0-based index)")
    table = load_table(args.data, target=args.target)
    if table.y is None:
        raise UsageError(f"{args.data}: no target: pass --target COLUMN (a header name or a "
                         "0-based index)")
    task = _choose_task(table.y, args.task)
    X, y = table.X, table.y
    meta = {"task": task, "target": table.target_name, "features": table.feature_names}
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)
        y = y.reshape(-1).astype(np.int64)
        if len(classes) < 2:
            raise UsageError(f"{args.data}: the target {table.target_name!r} has a single class")
        meta["classes"] = [_label(c) for c in classes.tolist()]
    else:
        y = y.astype(np.float64)
    if args.standardize:
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        X = (X - mean) / scale
        meta.update(x_mean=mean.tolist(), x_scale=scale.tolist())
        if task == "regression":
            y_mean, y_scale = float(y.mean()), float(y.std()) or 1.0
            y = (y - y_mean) / y_scale
            meta.update(y_mean=y_mean, y_scale=y_scale)
    validation = None
    if args.validation_split > 0:
        X, X_val, y, y_val = train_test_split(X, y, test_size=args.validation_split,
                                              seed=args.seed,
                                              stratify=task == "classification")
        validation = (X_val, y_val)

    n_out = len(meta["classes"]) if task == "classification" else 1
    layers = [fm.Dense(units, activation=args.activation) for units in args.hidden]
    layers.append(fm.Dense(n_out))
    model = fm.Sequential(layers, input_dim=X.shape[1], dtype=args.dtype, seed=args.seed)
    optimizer = _make_optimizer(args.optimizer, args.lr)
    if task == "classification":
        model.compile(loss="softmax_cross_entropy", optimizer=optimizer, metrics=["accuracy"])
    else:
        model.compile(loss="mse", optimizer=optimizer, metrics=["r2"])
    if args.verbose:
        print(f"{task} of {table.target_name!r} from {X.shape[1]} features, "
              f"{X.shape[0]} training rows" + (f", {len(validation[0])} validation rows"
                                               if validation else ""))
    history = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=validation, verbose=args.verbose)
    model.save(args.out, metadata={"cli": meta})
    last = {k: v[-1] for k, v in history.history.items()}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items())
    print(f"saved {args.out}" + (f" ({shown})" if shown else ""))
    return 0


# ---- predict -------------------------------------------------------------------------

def _features_for(model, table, meta, path):
    """The model's input columns from `table` (by name when both sides have names)."""
    names = meta.get("features")
    X = table.X
    if names and all(n in table.feature_names for n in names):
        X = table.X[:, [table.feature_names.index(n) for n in names]]
    elif X.shape[1] != model.input_dim:
        raise UsageError(f"{path}: {X.shape[1]} feature columns, the model takes "
                         f"{model.input_dim}")
    if "x_mean" in meta:
        X = (X - np.asarray(meta["x_mean"])) / np.asarray(meta["x_scale"])
    return X


def predict(args):
    import fastmlp as fm
    from fastmlp.datasets import load_table

    model = fm.load_model(args.model)
    if model.loss is None:
        raise UsageError(f"{args.model}: the model was saved before compile(); it has no output "
                         "transform to predict with")
    meta = model.metadata.get("cli", {}) if isinstance(model.metadata, dict) else {}
    target = meta.get("target")
    # the file may hold the target column too: then it is set aside and scored
    table = load_table(args.data, target=target, target_optional=True)
    X = _features_for(model, table, meta, args.data)
    out = model.predict(X).astype(np.float64)
    classification = model.loss.classification
    classes = meta.get("classes", [str(c) for c in range(model.n_outputs)])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if classification:
        labels = [classes[i] for i in out.argmax(axis=1)]
        if args.proba:
            writer.writerow(["prediction"] + [f"p({c})" for c in classes])
            writer.writerows([label] + [f"{p:.6g}" for p in row]
                             for label, row in zip(labels, out))
        else:
            writer.writerow(["prediction"])
            writer.writerows([label] for label in labels)
    else:
        if "y_mean" in meta:
            out = out * meta["y_scale"] + meta["y_mean"]
        names = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}"
                                                          for j in range(out.shape[1])]
        writer.writerow(names)
        writer.writerows([f"{v:.8g}" for v in row] for row in out)
    if args.out:
        with open(args.out, "w", newline="") as f:
            f.write(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
    if table.y is not None and target is not None:
        _report_score(table.y, out, classification, classes, target)
    return 0


def _report_score(y, out, classification, classes, target):
    if classification:
        predicted = [classes[i] for i in out.argmax(axis=1)]
        acc = float(np.mean([p == _label(t) for p, t in zip(predicted, y.tolist())]))
        print(f"accuracy against the file's {target!r} column: {acc:.4f} ({len(y)} rows)",
              file=sys.stderr)
    elif y.dtype.kind in "fiu":
        from fastmlp.metrics import r2_score
        print(f"r2 against the file's {target!r} column: {r2_score(out, y):.4f} "
              f"({len(y)} rows)", file=sys.stderr)


# ---- bench ---------------------------------------------------------------------------

def bench(args):
    from fastmlp import _bench

    return _bench.main(args.rest if hasattr(args, "rest") else args, prog="fastmlp bench",
                       defaults={"sizes": "tiny,mnist", "repeats": 3}, parser_class=_Parser)


# ---- entry point -----------------------------------------------------------------------

def build_parser():
    parser = _Parser(prog="fastmlp", description="fast multi-layer perceptrons")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="train on the bundled digits and a spiral, native vs NumPy")
    p.add_argument("--epochs", type=int, default=20, help="epochs on digits (spiral: 10x)")
    p.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    p.add_argument("--plot", default="fastmlp-demo.png",
                   help="decision-boundary PNG of the spiral, written when matplotlib is "
                        "installed (default: %(default)s)")
    p.add_argument("--no-plot", dest="plot", action="store_const", const=None,
                   help="write no picture")
    p.set_defaults(func=demo, parser=p)

    p = sub.add_parser("train", help="train a classifier or regressor on a CSV or NPZ file")
    p.add_argument("data", help="CSV file (numeric features) or .npz with arrays X and y")
    p.add_argument("--target", help="target column: header name or 0-based index")
    p.add_argument("--hidden", type=_positive_ints, default=[64],
                   help="hidden layer sizes, e.g. 128,64 (default: 64)")
    p.add_argument("--activation", default="relu",
                   help="activation of the hidden layers (default: relu)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--optimizer", choices=_OPTIMIZERS, default="adam")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="auto: classification for text labels or at most 50 distinct "
                        "integers, regression otherwise")
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction held out (shuffled, stratified) to report validation "
                        "loss (default: 0.1; 0 for none)")
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="do not scale features (and regression targets) to mean 0, std 1; "
                        "the scaling is saved with the model and applied by predict")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    p.add_argument("--out", default="model.fm", help="model file (default: %(default)s)")
    p.set_defaults(func=train, parser=p)

    p = sub.add_parser("predict", help="predict with a saved model; CSV on stdout")
    p.add_argument("model", help="a model file written by fastmlp train or Sequential.save")
    p.add_argument("data", help="CSV or .npz file with the same feature columns")
    p.add_argument("--proba", action="store_true", help="also print class probabilities")
    p.add_argument("--out", help="write the CSV here instead of stdout")
    p.set_defaults(func=predict, parser=p)

    p = sub.add_parser("bench", add_help=False,
                       help="one training epoch, predict and single-row latency side by "
                            "side: native, NumPy backend, scikit-learn, PyTorch, GEMMs only "
                            "(fastmlp bench --help for options)")
    p.set_defaults(func=bench)  # main() hands its arguments to fastmlp._bench
    return parser


def _check_args(args):
    parser = args.parser  # errors name the subcommand, like argparse's own
    if args.command in ("demo", "train"):
        if args.epochs < 1:
            parser.error("--epochs must be >= 1")
        if args.threads < 0:
            parser.error("--threads must be >= 0")
    if args.command == "train":
        if args.batch_size < 1:
            parser.error("--batch-size must be >= 1")
        if not 0.0 <= args.validation_split < 1.0:
            parser.error("--validation-split must be in [0, 1)")
        if not args.lr > 0:
            parser.error("--lr must be > 0")


_OPTIMIZERS = ("adagrad", "adam", "adamw", "nadam", "rmsprop", "sgd")


def _make_optimizer(name, lr):
    """--optimizer NAME with --lr (SGD gets momentum 0.9)."""
    import fastmlp as fm

    if name == "sgd":
        return fm.SGD(lr=lr, momentum=0.9)
    return {"adagrad": fm.Adagrad, "adam": fm.Adam, "adamw": fm.AdamW, "nadam": fm.Nadam,
            "rmsprop": fm.RMSprop}[name](lr=lr)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options are fastmlp._bench's
        return bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(args)
    try:
        return args.func(args)
    except (UsageError, ValueError, OSError, FloatingPointError) as e:  # diverged: --lr too high
        message = " ".join(str(e).split()) or type(e).__name__
        if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in message:
            message = f"{e.filename}: {message}"
        print(f"fastmlp {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
