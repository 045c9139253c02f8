"""Plots render to PNG with the Agg backend (skipped without matplotlib)."""
import sys

import numpy as np
import pytest

import fastmlp as fm

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def check_png(fig, path, min_size=(200, 150)):
    fig.savefig(path, dpi=60)
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape[1] >= min_size[0] and image.shape[0] >= min_size[1]
    assert image[..., :3].std() > 0.01     # not a blank canvas
    return image


@pytest.fixture(scope="module")
def spiral_model():
    X, y = fm.datasets.spiral(n_samples=150, seed=0)
    model = fm.Sequential([fm.Dense(16, activation="relu"), fm.Dense(5, activation="tanh"),
                           fm.Dense(3, activation="tanh"), fm.Dense(3)], input_dim=2, seed=0)
    model.compile(optimizer=fm.Adam(lr=1e-2), metrics=["accuracy"])
    history = model.fit(X, y, epochs=4, validation_split=0.2, verbose=0)
    return model, history, X, y


def test_plot_history(tmp_path, spiral_model):
    _, history, _, _ = spiral_model
    fig = fm.plot.plot_history(history)
    assert len(fig.axes) == 2                       # loss and accuracy panels
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["training loss", "validation loss"]
    np.testing.assert_array_equal(lines[1].get_ydata(), history.history["val_loss"])
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
    check_png(fig, tmp_path / "history.png")
    fig = fm.plot.plot_history(history.history, keys="loss")
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no 'r2'"):
        fm.plot.plot_history(history, keys=["r2"])
    with pytest.raises(ValueError, match="empty"):
        fm.plot.plot_history(fm.History())


def test_plot_decision_boundary(tmp_path, spiral_model):
    model, _, X, y = spiral_model
    fig = fm.plot.plot_decision_boundary(model, X, y, resolution=60)
    image = check_png(fig, tmp_path / "boundary.png")
    assert image.shape[2] in (3, 4)
    ax = fig.axes[0]
    shading = ax.get_images()[0].get_array()
    assert shading.shape == (60, 60, 3)
    assert shading.min() >= 0 and shading.max() <= 1
    fm.plot.plot_decision_boundary(model, X, resolution=20)          # no labels
    fig, ax = plt.subplots()
    assert fm.plot.plot_decision_boundary(model, X, y, ax=ax, resolution=20) is fig


def test_decision_boundary_shading_follows_the_probabilities():
    # a constant model: every grid point gets the same colour, the P-weighted mix
    model = fm.Sequential([fm.Dense(2)], input_dim=2)
    model.compile()
    model.set_weights([np.zeros((2, 2)), np.array([0.0, np.log(3.0)])])  # P = (1/4, 3/4)
    fig = fm.plot.plot_decision_boundary(model, np.array([[0.0, 0.0], [1.0, 1.0]]),
                                         resolution=10)
    shading = fig.axes[0].get_images()[0].get_array()
    colors = np.array([plt.get_cmap("tab10")(i)[:3] for i in range(2)])
    strength = fm.plot._PASTEL * (0.75 - 0.5) / 0.5
    expected = 1.0 - strength * (1.0 - np.array([0.25, 0.75]) @ colors)
    np.testing.assert_allclose(shading[3, 4], expected, rtol=1e-5)


def test_decision_boundary_of_a_single_sigmoid_output(tmp_path):
    X, y = fm.datasets.moons(n_samples=80)
    model = fm.Sequential([fm.Dense(8, activation="tanh"), fm.Dense(1, activation="sigmoid")],
                          input_dim=2)
    model.compile(loss="mse")
    check_png(fm.plot.plot_decision_boundary(model, X, y, resolution=20), tmp_path / "s.png")


def test_decision_boundary_errors(spiral_model):
    model, _, X, y = spiral_model
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        fm.plot.plot_decision_boundary(model, X[:, :1], y)
    with pytest.raises(ValueError, match="resolution"):
        fm.plot.plot_decision_boundary(model, X, y, resolution=3)
    with pytest.raises(ValueError, match="labels"):
        fm.plot.plot_decision_boundary(model, X, y[:5])
    regression = fm.Sequential([fm.Dense(2)], input_dim=2)
    regression.compile(loss="mse")
    with pytest.raises(ValueError, match="classifier"):
        fm.plot.plot_decision_boundary(regression, X, y)
    wide = fm.Sequential([fm.Dense(2)], input_dim=3)
    wide.compile()
    with pytest.raises(ValueError, match="takes 3 inputs"):
        fm.plot.plot_decision_boundary(wide, X, y)


def test_plot_representations(tmp_path, spiral_model):
    model, _, X, y = spiral_model
    fig = fm.plot.plot_representations(model, X, y)
    assert len(fig.axes) == 5                       # input + 4 layers
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "input"
    assert "16 units, PCA to 2-D" in titles[1]      # 16 units: projected
    assert "PCA" in titles[2]                        # 5 units: projected
    assert "PCA" not in titles[3] and fig.axes[3].name == "3d"   # 3 units: drawn in 3-D
    check_png(fig, tmp_path / "repr.png")
    fig = fm.plot.plot_representations(model, X, layers=[0], include_input=False)
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="layer index"):
        fm.plot.plot_representations(model, X, layers=[9])


def test_plot_representations_one_unit(tmp_path):
    X, y = fm.datasets.square_regression(n_samples=50)
    model = fm.Sequential([fm.Dense(2, activation="tanh"), fm.Dense(1)], input_dim=1)
    model.compile(loss="mse")
    fig = fm.plot.plot_representations(model, X)
    assert [ax.get_xlabel() for ax in fig.axes] == ["sample", "", "sample"]
    check_png(fig, tmp_path / "one.png")


def test_pca_matches_the_principal_axes(rng):
    # data stretched along known orthogonal directions
    basis = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    scales = np.array([10.0, 3.0, 1.0, 0.1, 0.01])
    A = (rng.standard_normal((400, 5)) * scales) @ basis.T + 7.0
    P = fm.plot.pca(A, 2)
    assert P.shape == (400, 2)
    np.testing.assert_allclose(P.mean(axis=0), 0.0, atol=1e-10)
    variances = P.var(axis=0)
    assert variances[0] > variances[1] > 0
    # the projection keeps the variance of the two largest directions (not the others)
    total = ((A - A.mean(axis=0)) ** 2).sum(axis=1).mean()
    np.testing.assert_allclose(variances.sum() / total, (100 + 9) / (100 + 9 + 1.01 + 1e-4),
                               rtol=0.05)
    assert fm.plot.pca(A[:1], 2).shape == (1, 2)


def test_missing_matplotlib_gives_a_clear_error(monkeypatch, spiral_model):
    _, history, _, _ = spiral_model
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install fastmlp\[plot\]"):
        fm.plot.plot_history(history)
