"""Tests for fastmlp.datasets."""

import hashlib
from importlib import resources

import numpy as np
import pytest

from fastmlp import datasets

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"

# name -> (function, default n_samples, n_features, n_classes or None)
CLASSIFIERS = {
    "spiral": (datasets.spiral, 300, 2, 3),
    "circles": (datasets.circles, 200, 2, 2),
    "moons": (datasets.moons, 200, 2, 2),
    "clusters": (datasets.clusters, 300, 2, 6),
}
REGRESSORS = {
    "square_regression": datasets.square_regression,
    "sine_regression": datasets.sine_regression,
}
NOISY = {
    "xor": lambda seed: datasets.xor(n_samples=40, noise=0.1, seed=seed),
    "spiral": lambda seed: datasets.spiral(seed=seed),
    "circles": lambda seed: datasets.circles(seed=seed),
    "moons": lambda seed: datasets.moons(seed=seed),
    "clusters": lambda seed: datasets.clusters(seed=seed),
    "square_regression": lambda seed: datasets.square_regression(seed=seed),
    "sine_regression": lambda seed: datasets.sine_regression(seed=seed),
}


# ----------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------


def test_digits_file_is_packaged_unchanged():
    path = resources.files("fastmlp").joinpath("data").joinpath("digits.csv.gz")
    data = path.read_bytes()
    assert len(data) < 200_000
    assert hashlib.sha256(data).hexdigest() == DIGITS_SHA256
    licence = resources.files("fastmlp").joinpath("data").joinpath("DIGITS_LICENSE.txt")
    text = licence.read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "Alpaydin" in text and "BSD 3-Clause" in text


def test_load_digits_shapes_and_values():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64)
    assert y.shape == (1797,)
    assert X.dtype == np.float64
    assert y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 16.0
    assert np.array_equal(X, np.round(X))
    assert np.bincount(y, minlength=10).tolist() == DIGIT_COUNTS
    # Fixed facts about the data: total ink, and the first sample is a 0.
    assert int(X.sum()) == 561718
    assert y[0] == 0 and y[1] == 1
    assert X[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    # The outer left and right columns of the image are almost always blank.
    assert (X[:, 0] == 0).all()


def test_load_digits_images():
    X, y = datasets.load_digits()
    images, y2 = datasets.load_digits(return_images=True)
    assert images.shape == (1797, 8, 8)
    assert images.dtype == np.float64
    assert np.array_equal(images.reshape(1797, 64), X)
    assert np.array_equal(y, y2)
    assert images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_load_digits_returns_independent_copies():
    X, y = datasets.load_digits()
    X[:] = -1.0
    y[:] = -1
    X2, y2 = datasets.load_digits()
    assert X2.min() == 0.0
    assert np.bincount(y2).tolist() == DIGIT_COUNTS


def test_digits_description():
    text = datasets.digits_description()
    assert "Optical recognition of handwritten digits" in text
    assert "1797" in text


# ----------------------------------------------------------------------------
# xor
# ----------------------------------------------------------------------------


def test_xor_exact():
    X, y = datasets.xor()
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.tolist() == [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    assert y.tolist() == [0, 1, 1, 0]


def test_xor_noisy_samples_stay_near_their_corner():
    X, y = datasets.xor(n_samples=400, noise=0.05, seed=3)
    assert X.shape == (400, 2) and y.shape == (400,)
    assert np.bincount(y).tolist() == [200, 200]
    corners = np.round(X)  # noise of 0.05 never moves a point 0.5 away
    assert np.array_equal(y, np.logical_xor(corners[:, 0], corners[:, 1]).astype(np.int64))
    assert 0.03 < np.std(X - corners) < 0.07


def test_xor_more_samples_without_noise_repeats_corners():
    X, y = datasets.xor(n_samples=10)
    assert X.shape == (10, 2)
    assert np.array_equal(X[:4], X[4:8])
    assert y.tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 0, 1]


# ----------------------------------------------------------------------------
# generic properties of the generators
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_shapes_dtypes_balance(name):
    fn, n, n_features, n_classes = CLASSIFIERS[name]
    X, y = fn()
    assert X.shape == (n, n_features)
    assert y.shape == (n,)
    assert X.dtype == np.float64
    assert y.dtype == np.int64
    assert np.isfinite(X).all()
    assert set(np.unique(y).tolist()) == set(range(n_classes))
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("n_samples", [7, 31])
def test_classifier_uneven_sizes(name, n_samples):
    fn, _, _, n_classes = CLASSIFIERS[name]
    X, y = fn(n_samples=n_samples)
    assert X.shape == (n_samples, 2)
    counts = np.bincount(y, minlength=n_classes)
    assert counts.sum() == n_samples
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressor_shapes_dtypes(name):
    X, y = REGRESSORS[name](n_samples=123)
    assert X.shape == (123, 1)
    assert y.shape == (123,)
    assert X.dtype == np.float64
    assert y.dtype == np.float64


@pytest.mark.parametrize("name", sorted(NOISY))
def test_same_seed_same_data_other_seed_other_data(name):
    X1, y1 = NOISY[name](0)
    X2, y2 = NOISY[name](0)
    X3, y3 = NOISY[name](1)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_default_seed_is_zero():
    X1, _ = datasets.moons()
    X2, _ = datasets.moons(seed=0)
    assert np.array_equal(X1, X2)


# ----------------------------------------------------------------------------
# geometry of each generator
# ----------------------------------------------------------------------------


def test_spiral_geometry():
    X, y = datasets.spiral(n_samples=300, n_classes=3, noise=0.0)
    r = np.hypot(X[:, 0], X[:, 1])
    for k in range(3):
        rk = r[y == k]
        assert np.allclose(rk, np.linspace(0.0, 1.0, 100))
    # Without noise the angle of class k runs from 4k to 4(k + 1).
    x1 = X[y == 1][-1]
    assert np.allclose(x1, [np.sin(8.0), np.cos(8.0)])
    Xn, _ = datasets.spiral(n_samples=300, n_classes=3, noise=0.2)
    assert np.allclose(np.hypot(Xn[:, 0], Xn[:, 1]), r)  # noise only turns points
    assert not np.allclose(Xn, X)


def test_spiral_many_classes():
    X, y = datasets.spiral(n_samples=100, n_classes=5)
    assert np.bincount(y).tolist() == [20] * 5


def test_circles_radii():
    X, y = datasets.circles(n_samples=100, noise=0.0, factor=0.3)
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(r[y == 0], 1.0)
    assert np.allclose(r[y == 1], 0.3)
    Xn, yn = datasets.circles(n_samples=2000, noise=0.05)
    rn = np.hypot(Xn[:, 0], Xn[:, 1])
    assert abs(rn[yn == 0].mean() - 1.0) < 0.02
    assert abs(rn[yn == 1].mean() - 0.5) < 0.02


def test_moons_geometry():
    X, y = datasets.moons(n_samples=100, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    assert np.allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    assert np.allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    assert upper[:, 1].min() >= -1e-12 and lower[:, 1].max() <= 0.5 + 1e-12


def test_clusters_centres_on_circle():
    X, y = datasets.clusters(n_samples=6000, n_clusters=6, std=0.5)
    centres = np.array([X[y == k].mean(axis=0) for k in range(6)])
    assert np.allclose(np.hypot(centres[:, 0], centres[:, 1]), 3.0, atol=0.05)
    angles = 2 * np.pi * np.arange(6) / 6
    expected = 3.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    assert np.allclose(centres, expected, atol=0.06)
    spread = np.concatenate([X[y == k] - centres[k] for k in range(6)])
    assert abs(spread.std() - 0.5) < 0.02
    # Each point is closest to its own centre almost always.
    d = np.linalg.norm(X[:, None, :] - centres[None], axis=2)
    assert (d.argmin(axis=1) == y).mean() > 0.99


def test_square_regression_values():
    X, y = datasets.square_regression(n_samples=500, noise=0.0)
    assert X.min() >= -1.0 and X.max() <= 1.0
    assert X.min() < -0.9 and X.max() > 0.9
    assert np.allclose(y, X[:, 0] ** 2)
    _, yn = datasets.square_regression(n_samples=5000, noise=0.05)
    Xn, _ = datasets.square_regression(n_samples=5000, noise=0.05)
    assert abs(np.std(yn - Xn[:, 0] ** 2) - 0.05) < 0.005


def test_sine_regression_values():
    X, y = datasets.sine_regression(n_samples=500, noise=0.0)
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert np.allclose(y, np.sin(2 * np.pi * X[:, 0]))
    Xn, yn = datasets.sine_regression(n_samples=5000, noise=0.1)
    assert abs(np.std(yn - np.sin(2 * np.pi * Xn[:, 0])) - 0.1) < 0.01


# ----------------------------------------------------------------------------
# train_test_split
# ----------------------------------------------------------------------------


def test_split_sizes_and_partition():
    X = np.arange(200, dtype=np.float64).reshape(100, 2)
    y = np.arange(100, dtype=np.int64)
    X_tr, X_te, y_tr, y_te = datasets.train_test_split(X, y, test_size=0.25)
    assert X_tr.shape == (75, 2) and X_te.shape == (25, 2)
    assert y_tr.shape == (75,) and y_te.shape == (25,)
    assert X_tr.dtype == np.float64 and y_tr.dtype == np.int64
    # Rows stay paired with their labels and every sample is used exactly once.
    assert np.array_equal(X_tr[:, 0], 2 * y_tr) and np.array_equal(X_te[:, 0], 2 * y_te)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(100))
    # It shuffles.
    assert not np.array_equal(y_tr, np.sort(y_tr))


def test_split_rounds_test_part_up():
    X, y = np.zeros((10, 3)), np.arange(10)
    _, X_te, _, y_te = datasets.train_test_split(X, y, test_size=0.33)
    assert len(X_te) == len(y_te) == 4


def test_split_deterministic():
    X, y = datasets.moons()
    a = datasets.train_test_split(X, y, seed=5)
    b = datasets.train_test_split(X, y, seed=5)
    c = datasets.train_test_split(X, y, seed=6)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[3], c[3]) or not np.array_equal(a[1], c[1])


def test_split_stratified_digits():
    X, y = datasets.load_digits()
    X_tr, X_te, y_tr, y_te = datasets.train_test_split(
        X, y, test_size=0.2, seed=1, stratify=True
    )
    assert len(y_te) == 360 and len(y_tr) == 1437
    expected = np.array(DIGIT_COUNTS) * 0.2
    assert np.all(np.abs(np.bincount(y_te, minlength=10) - expected) < 1.0)
    assert np.array_equal(
        np.bincount(y_tr, minlength=10) + np.bincount(y_te, minlength=10), DIGIT_COUNTS
    )


def test_split_stratified_exact_on_imbalanced_labels():
    y = np.array([0] * 80 + [1] * 20)
    X = np.arange(100.0).reshape(-1, 1)
    _, X_te, y_tr, y_te = datasets.train_test_split(X, y, test_size=0.25, stratify=True)
    assert np.bincount(y_te).tolist() == [20, 5]
    assert np.bincount(y_tr).tolist() == [60, 15]
    assert np.array_equal(y[X_te[:, 0].astype(int)], y_te)


def test_split_stratified_string_labels():
    y = np.array(["a", "b", "c"] * 10)
    X = np.zeros((30, 1))
    _, _, _, y_te = datasets.train_test_split(X, y, test_size=0.5, stratify=True)
    assert len(y_te) == 15
    assert sorted(set(y_te.tolist())) == ["a", "b", "c"]
    assert all((y_te == c).sum() == 5 for c in "abc")


def test_unstratified_split_is_not_forced_balanced():
    # Sanity check that stratify=True changes something: over several seeds the
    # plain split of an imbalanced set does not always give exact proportions.
    y = np.array([0] * 80 + [1] * 20)
    X = np.zeros((100, 1))
    fives = [
        np.bincount(datasets.train_test_split(X, y, seed=s)[3], minlength=2)[1] == 5
        for s in range(20)
    ]
    assert not all(fives)


# ----------------------------------------------------------------------------
# argument validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: datasets.xor(n_samples=0),
        lambda: datasets.xor(noise=-0.1),
        lambda: datasets.spiral(n_samples=0),
        lambda: datasets.spiral(n_classes=1),
        lambda: datasets.spiral(noise=-1.0),
        lambda: datasets.spiral(n_samples=2, n_classes=3),
        lambda: datasets.circles(n_samples=-5),
        lambda: datasets.circles(noise=-0.01),
        lambda: datasets.circles(factor=1.0),
        lambda: datasets.circles(factor=-0.5),
        lambda: datasets.moons(n_samples=0),
        lambda: datasets.moons(noise=float("nan")),
        lambda: datasets.clusters(n_samples=0),
        lambda: datasets.clusters(n_clusters=1),
        lambda: datasets.clusters(std=-0.5),
        lambda: datasets.square_regression(n_samples=0),
        lambda: datasets.square_regression(noise=-1.0),
        lambda: datasets.sine_regression(n_samples=0),
        lambda: datasets.sine_regression(noise=-1.0),
    ],
)
def test_bad_generator_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_error_messages_name_the_argument():
    with pytest.raises(ValueError, match="n_samples"):
        datasets.moons(n_samples=0)
    with pytest.raises(ValueError, match="n_classes"):
        datasets.spiral(n_classes=1)
    with pytest.raises(ValueError, match="noise"):
        datasets.xor(noise=-1)
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_split(np.zeros((4, 1)), np.zeros(4), test_size=1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: datasets.xor(n_samples=4.0),
        lambda: datasets.spiral(n_samples="300"),
        lambda: datasets.moons(noise="0.1"),
        lambda: datasets.clusters(n_clusters=True),
    ],
)
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


def test_numpy_integers_accepted():
    X, y = datasets.spiral(n_samples=np.int64(30), n_classes=np.int32(3))
    assert X.shape == (30, 2) and np.bincount(y).tolist() == [10, 10, 10]


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_split_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros(10), test_size=test_size)


def test_split_bad_inputs():
    with pytest.raises(ValueError):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros((10, 1)))
    with pytest.raises(ValueError):  # one sample cannot be split in two parts
        datasets.train_test_split(np.zeros((1, 2)), np.zeros(1), test_size=0.5)
