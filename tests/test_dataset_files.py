"""Data files: IDX (MNIST and Fashion-MNIST), CSV and NPZ, including damaged ones."""
import gzip
import struct

import numpy as np
import pytest

from fastmlp.datasets import Table, load_idx, load_mnist, load_table

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array, code=None):
    """The IDX encoding of `array`, written from the format's definition."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.type] if code is None else code
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, blob, compress=False):
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


# ---- IDX ---------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda t: np.dtype(t).name)
def test_idx_round_trip(tmp_path, dtype, compress, rng):
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    got = load_idx(write(tmp_path / "a.idx", idx_bytes(a), compress))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_idx_compression_is_recognised_by_content(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "plain.gz", idx_bytes(a))), a)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "packed", idx_bytes(a), True)), a)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_damaged_idx_files_are_refused(tmp_path, compress):
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    cases = {
        "truncated": good[:-1],
        "trailing": good + b"\0",
        "header only": good[:8],
        "magic": b"\1" + good[1:],
        "type code": good[:2] + b"\x07" + good[3:],
        "no dimensions": good[:3] + b"\0" + good[4:],
        "empty": b"",
    }
    for name, blob in cases.items():
        with pytest.raises(ValueError, match="truncated|trailing|not an IDX"):
            load_idx(write(tmp_path / f"{name}.idx", blob, compress))


def test_idx_header_announcing_too_much_is_refused_before_reading(tmp_path):
    blob = bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 20)
    for compress in (False, True):
        with pytest.raises(ValueError, match="max_bytes"):
            load_idx(write(tmp_path / "huge.idx", blob, compress))
    small = idx_bytes(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match="max_bytes"):
        load_idx(write(tmp_path / "s.idx", small), max_bytes=9999)


def test_corrupted_gzip_is_refused(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32))))
    packed[len(packed) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="corrupted|truncated|not an IDX"):
        load_idx(write(tmp_path / "bad.gz", bytes(packed)))
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    with pytest.raises(ValueError, match="corrupted"):
        load_idx(write(tmp_path / "cut.gz", packed[:-6]))


def test_idx_paths_that_are_not_files(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        load_idx(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "missing.idx")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_load_mnist(tmp_path, compress, rng):
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write(tmp_path / f"t10k-images-idx3-ubyte{suffix}", idx_bytes(images), compress)
    write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress)
    X, y = load_mnist(tmp_path, kind="test")
    assert X.shape == (7, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X, images.reshape(7, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    X, _ = load_mnist(tmp_path, kind="test", normalize=False)
    np.testing.assert_array_equal(X, images.reshape(7, -1))
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path, kind="train")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="validation")


def test_load_mnist_checks_the_files_agree(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="3 images but"):
        load_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros((3, 1), np.uint8)))
    with pytest.raises(ValueError, match="labels of shape"):
        load_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((3, 4), np.uint8)))
    with pytest.raises(ValueError, match="images of shape"):
        load_mnist(tmp_path)


# ---- CSV -----------------------------------------------------------------------------------

def test_csv_with_header_and_named_target(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label,b\n1,cat,2.5\n3,dog,-4e-1\n\n5,cat,6\n")
    t = load_table(path, target="label")
    assert isinstance(t, Table)
    np.testing.assert_array_equal(t.X, [[1, 2.5], [3, -0.4], [5, 6]])
    assert list(t.y) == ["cat", "dog", "cat"]
    assert t.feature_names == ["a", "b"] and t.target_name == "label"


def test_csv_without_header_numeric_target_by_index(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1;2;0\n3;4;1\n")
    for target in (2, -1, "2", "-1"):
        t = load_table(path, target=target)
        np.testing.assert_array_equal(t.X, [[1, 2], [3, 4]])
        assert t.y.dtype == np.float64
        np.testing.assert_array_equal(t.y, [0, 1])
        assert t.feature_names == ["x0", "x1"] and t.target_name == "x2"
    t = load_table(path)
    assert t.y is None and t.X.shape == (2, 3)


def test_csv_tab_separated_with_bom(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes("\ufeffx\ty\n1\t2\n".encode("utf-8"))
    t = load_table(path, target="y")
    assert t.feature_names == ["x"] and t.y.tolist() == [2.0]


def test_csv_target_optional(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    t = load_table(path, target="label", target_optional=True)
    assert t.y is None and t.X.shape == (1, 2)


@pytest.mark.parametrize("text, target, match", [
    ("a,b\n1,x\n", None, r"line 2: column 'b' has non-numeric value 'x'"),
    ("a,b,c\n1,,0\n", "c", r"line 2: column 'b' has an empty field"),
    ("a,b\n1,2\n3\n", None, r"line 3: 1 fields, the header has 2"),
    ("a,b\n1,2\n", "c", r"no column named 'c'; columns: a, b"),
    ("1,2\n", "c", r"no column named 'c' \(the file has no header\)"),
    ("a,b\n1,2\n", 5, r"target column 5 is out of range"),
    ("a,b\n1,2\n", "a,b", r"no column named"),
    ("a,b\n", None, "no data rows"),
    ("\n\n", None, "empty"),
    ("a\n1\n", "a", "no feature columns"),
    ("a,b\n1,\n", "b", "line 2: the target 'b' is empty"),
    ("a,b\nnan,1\n", None, "line 2: a feature is NaN"),
])
def test_bad_csv_files(tmp_path, text, target, match):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_table(path, target=target)


def test_binary_file_is_not_a_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match="not a text"):
        load_table(path)


# ---- NPZ -----------------------------------------------------------------------------------

def test_npz(tmp_path, rng):
    X = rng.standard_normal((5, 3))
    y = np.array([0, 1, 1, 0, 2])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    t = load_table(tmp_path / "d.npz")
    np.testing.assert_array_equal(t.X, X)
    np.testing.assert_array_equal(t.y, y)
    assert t.target_name == "y"
    np.savez(tmp_path / "s.npz", X=X, y=np.array(list("abcab")))
    assert list(load_table(tmp_path / "s.npz", target="y").y) == list("abcab")


def test_bad_npz_files(tmp_path):
    np.savez(tmp_path / "a.npz", data=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no array 'X'"):
        load_table(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid .npz"):   # pickles are never loaded
        load_table(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a valid .npz"):
        load_table(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", X=np.zeros(3))
    with pytest.raises(ValueError, match="2-D numeric"):
        load_table(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match="one value per row"):
        load_table(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", X=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="the target is the array 'y'"):
        load_table(tmp_path / "f.npz", target="label")
    blob = (tmp_path / "f.npz").read_bytes()
    (tmp_path / "g.npz").write_bytes(blob[:len(blob) // 2])
    with pytest.raises(ValueError, match="not a valid .npz"):
        load_table(tmp_path / "g.npz")
