"""The command line: demo, train, predict, bench; bad files and flags exit 2 in one line."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp.cli import main


@pytest.fixture
def spiral_csv(tmp_path):
    X, y = fm.datasets.spiral(n_samples=300, seed=0)
    names = np.array(["red", "green", "blue"])
    path = tmp_path / "spiral.csv"
    lines = ["x,y,arm"] + [f"{float(a)!r},{float(b)!r},{names[k]}" for (a, b), k in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"fastmlp{' ' + command if command else ''}: error: ")
    return err


def test_train_then_predict_a_classifier(tmp_path, spiral_csv, capsys):
    out = tmp_path / "m.fm"
    assert main(["train", str(spiral_csv), "--target", "arm", "--hidden", "32,32", "--epochs",
                 "40", "--lr", "0.01", "--out", str(out), "--verbose", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("classification of 'arm' from 2 features, 270 training rows, "
                           "30 validation rows")
    assert "epoch 40/40" in text and f"saved {out}" in text
    model = fm.load_model(out)
    meta = model.metadata["cli"]
    assert meta["classes"] == ["blue", "green", "red"] and meta["features"] == ["x", "y"]
    assert [layer.units for layer in model.layers] == [32, 32, 3]

    assert main(["predict", str(out), str(spiral_csv)]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0] == "prediction" and len(rows) == 301
    assert set(rows[1:]) <= {"red", "green", "blue"}
    labels = rows[1:]
    accuracy = float(captured.err.split(": ")[1].split()[0])
    assert captured.err.startswith("accuracy against the file's 'arm' column")
    assert accuracy > 0.8

    features = tmp_path / "features.csv"     # without the target column, columns reordered
    features.write_text("y,x\n" + "\n".join(
        line.split(",")[1] + "," + line.split(",")[0]
        for line in spiral_csv.read_text().splitlines()[1:]) + "\n")
    predictions = tmp_path / "p.csv"
    assert main(["predict", str(out), str(features), "--proba", "--out", str(predictions)]) == 0
    rows = predictions.read_text().splitlines()
    assert rows[0] == "prediction,p(blue),p(green),p(red)"
    assert [r.split(",")[0] for r in rows[1:]] == labels    # columns matched by name
    probabilities = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert capsys.readouterr().err == ""                    # no target column: no score


def test_train_then_predict_a_regressor_from_npz(tmp_path, capsys):
    X, y = fm.datasets.sine_regression(n_samples=200, noise=0.0)
    y = 10 * y + 50                                           # targets far from mean 0, std 1
    np.savez(tmp_path / "sine.npz", X=X, y=y)
    out = tmp_path / "r.fm"
    assert main(["train", str(tmp_path / "sine.npz"), "--hidden", "32", "--activation", "tanh",
                 "--epochs", "150", "--lr", "0.01", "--out", str(out), "--verbose", "0"]) == 0
    assert "r2" in capsys.readouterr().out
    assert fm.load_model(out).metadata["cli"]["task"] == "regression"
    assert main(["predict", str(out), str(tmp_path / "sine.npz")]) == 0
    captured = capsys.readouterr()
    predictions = np.array([float(v) for v in captured.out.splitlines()[1:]])
    assert np.corrcoef(predictions, y)[0, 1] > 0.9
    assert abs(predictions.mean() - 50) < 2                 # the target scaling is undone
    assert captured.err.startswith("r2 against the file's 'y' column")


def test_task_choice(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(20)) + "\n")
    out = str(tmp_path / "m.fm")
    assert main(["train", str(path), "--target", "b", "--epochs", "1", "--out", out,
                 "--verbose", "0"]) == 0
    assert fm.load_model(out).metadata["cli"]["classes"] == ["0", "1"]
    assert main(["train", str(path), "--target", "b", "--task", "regression", "--epochs", "1",
                 "--out", out, "--verbose", "0"]) == 0
    assert fm.load_model(out).loss.name == "mse"


@pytest.mark.parametrize("args, command, message", [
    (["train", "{csv}", "--target", "nope"], "train", "no column named 'nope'"),
    (["train", "{csv}"], "train", "pass --target"),
    (["train", "{missing}", "--target", "arm"], "train", "No such file"),
    (["train", "{csv}", "--target", "arm", "--hidden", "3,x"], "train", "--hidden"),
    (["train", "{csv}", "--target", "arm", "--hidden", "0"], "train", "--hidden"),
    (["train", "{csv}", "--target", "arm", "--epochs", "0"], "train", "--epochs"),
    (["train", "{csv}", "--target", "arm", "--lr", "-1"], "train", "--lr"),
    (["train", "{csv}", "--target", "arm", "--batch-size", "0"], "train", "--batch-size"),
    (["train", "{csv}", "--target", "arm", "--validation-split", "1"], "train",
     "--validation-split"),
    (["train", "{csv}", "--target", "arm", "--optimizer", "adadelta"], "train", "--optimizer"),
    (["train", "{csv}", "--target", "arm", "--activation", "no_such_activation", "--epochs", "1"], "train",
     "unknown activation"),
    (["train", "{csv}", "--target", "arm", "--task", "regression"], "train", "numeric target"),
    (["train", "{csv}", "--target", "x", "--epochs", "1"], "train", "non-numeric value"),
    (["predict", "{csv}", "{csv}"], "predict", "not a fastmlp model file"),
    (["predict", "{missing}", "{csv}"], "predict", "No such file"),
    (["predict"], "predict", "required"),
    (["frobnicate"], "", "invalid choice"),
    ([], "", "required"),
    (["bench", "--sizes", "huge"], "bench", "unknown size"),
    (["bench", "--repeats", "0"], "bench", "--repeats"),
    (["bench", "--contenders", "jax"], "bench", "unknown contender"),
    (["bench", "--phases", "fit"], "bench", "unknown phase"),
])
def test_errors_are_one_line_with_exit_status_2(tmp_path, spiral_csv, capsys, args, command,
                                                message):
    args = [a.format(csv=spiral_csv, missing=tmp_path / "missing.csv") for a in args]
    try:
        status = main(args)
    except SystemExit as e:      # argparse's own errors
        status = e.code
    assert status == 2
    assert message in one_line_error(capsys, command)


def test_predict_with_the_wrong_feature_count(tmp_path, capsys):
    model = fm.Sequential([fm.Dense(3)], input_dim=5)
    model.compile()
    model.save(tmp_path / "m.fm")
    (tmp_path / "d.csv").write_text("1,2\n3,4\n")
    assert main(["predict", str(tmp_path / "m.fm"), str(tmp_path / "d.csv")]) == 2
    assert "the model takes 5" in one_line_error(capsys, "predict")


def test_predict_with_a_python_saved_model(tmp_path, capsys):
    X, y = fm.datasets.xor()
    model = fm.Sequential([fm.Dense(4, activation="tanh"), fm.Dense(2)], input_dim=2)
    model.compile()
    model.save(tmp_path / "m.fm")
    np.savez(tmp_path / "x.npz", X=X)
    assert main(["predict", str(tmp_path / "m.fm"), str(tmp_path / "x.npz"), "--proba"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "prediction,p(0),p(1)" and len(rows) == 5


def test_bench(capsys, monkeypatch):
    # PyTorch reported missing (importing it takes seconds; bench/ runs it when installed)
    from fastmlp._bench import contenders

    real_import = contenders.optional_import

    def without_torch(module, library):
        if module == "torch":
            raise contenders.Unavailable("PyTorch is not installed")
        return real_import(module, library)

    monkeypatch.setattr(contenders, "optional_import", without_torch)
    assert main(["bench", "--sizes", "tiny", "--repeats", "1", "--target-time", "0.01",
                 "--settle", "0", "--min-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "| tiny | 2-64-64-2 | 32 |" in out and "(agree)" in out
    assert "| tiny | 2-64-64-2 | 32 | PyTorch | not installed |" in out
    for contender in ("native", "native 1T", "numpy", "scikit-learn", "GEMMs only"):
        assert f"| tiny | 2-64-64-2 | 32 | {contender} | " in out
    assert "| tiny | " in out.split("2 threads ÷ 1 (native) |")[1]  # the ratio table


def test_bench_contenders_and_phases(capsys):
    assert main(["bench", "--sizes", "tiny", "--repeats", "2", "--target-time", "0.01",
                 "--settle", "0", "--contenders", "native,GEMMs only",
                 "--phases", "train,latency"]) == 0
    out = capsys.readouterr().out
    native = next(line for line in out.splitlines() if line.startswith("| tiny |")
                  and "| native |" in line)
    cells = [c.strip() for c in native.strip("|").split("|")]
    assert cells[4].replace(",", "").split()[0].isdigit()   # train samples/s
    assert cells[7] == ""                                    # no predict phase
    assert float(cells[8].split()[0]) > 0                    # single-row latency in µs
    assert "PyTorch |" not in out.split("| size | network")[1].split("Ratios")[0]


def test_demo(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    picture = tmp_path / "demo.png"
    assert main(["demo", "--epochs", "1", "--plot", str(picture)]) == 0
    out = capsys.readouterr().out
    assert out.count("native is ") == 2 and "test acc" in out
    assert f"wrote {picture}" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["demo", "--epochs", "1", "--no-plot"]) == 0
    assert "wrote" not in capsys.readouterr().out
