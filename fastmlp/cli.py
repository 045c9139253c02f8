"""Command line: ``python -m fastmlp demo`` (also installed as ``fastmlp demo``)."""
import argparse
import sys
import time

import numpy as np


def _train(backend, X_train, y_train, X_test, y_test, hidden, epochs, batch_size, lr, seed):
    import fastmlp as fm

    layers = [fm.Dense(units, activation="relu") for units in hidden]
    layers.append(fm.Dense(int(y_train.max()) + 1))
    model = fm.Sequential(layers, input_dim=X_train.shape[1], seed=seed, backend=backend)
    # no per-epoch metrics: accuracy is measured once after training, so the
    # timing covers training alone
    model.compile(loss="softmax_cross_entropy", optimizer=fm.Adam(lr=lr))
    start = time.perf_counter()
    model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    elapsed = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(X_test).argmax(axis=1) == y_test))
    return accuracy, epochs * len(X_train) / elapsed, elapsed


def demo(args):
    """Train the same network on two bundled problems with both backends, side by side."""
    import fastmlp as fm

    if args.threads:
        fm.set_num_threads(args.threads)
    X, y = fm.datasets.load_digits()
    X = X / 16.0  # pixel intensities 0..16 -> [0, 1]
    digits = fm.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    X, y = fm.datasets.spiral(n_samples=600, n_classes=3, noise=0.2, seed=0)
    spiral = fm.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    problems = [
        ("digits 8x8 (1797 images, 10 classes)", digits, (128, 64), args.epochs, 32, 1e-3),
        ("spiral (600 points, 3 arms)", spiral, (64, 64), args.epochs * 10, 32, 1e-2),
    ]
    print(f"fastmlp {fm.__version__} demo - {fm.get_num_threads()} thread(s), float32, Adam, "
          "ReLU hidden layers, softmax cross-entropy\n")
    header = f"{'problem':38s} {'backend':8s} {'epochs':>6s} {'test acc':>9s} {'samples/s':>12s} {'time':>8s}"
    print(header)
    print("-" * len(header))
    for name, (X_tr, X_te, y_tr, y_te), hidden, epochs, batch, lr in problems:
        speeds = {}
        for backend in ("native", "numpy"):
            acc, speed, elapsed = _train(backend, X_tr, y_tr, X_te, y_te, hidden, epochs,
                                         batch, lr, seed=0)
            speeds[backend] = speed
            print(f"{name:38s} {backend:8s} {epochs:6d} {acc:9.3f} {speed:12,.0f} {elapsed:7.2f}s")
        print(f"{'':38s} native is {speeds['native'] / speeds['numpy']:.1f}x the NumPy backend\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastmlp", description="fast multi-layer perceptrons")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on the bundled digits and a spiral, native vs NumPy")
    p.add_argument("--epochs", type=int, default=20, help="epochs on digits (spiral: 10x)")
    p.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    if getattr(args, "epochs", 1) < 1:
        parser.error("--epochs must be >= 1")
    if getattr(args, "threads", 0) < 0:
        parser.error("--threads must be >= 0")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
