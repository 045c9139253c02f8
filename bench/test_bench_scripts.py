"""The stand-alone measurement scripts of bench/ (blas_routes.py, scaling.py,
gemm_engines.py), run end to end at the tiny size with the shortest settings:
each must exit cleanly and print one table row of positive numbers.  Nothing
here is a timing; it keeps the scripts from rotting between the runs that
produce README's numbers."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

_NUMBER = re.compile(r"^[\d,]+(\.\d+)?×?$")


def _run(script, *args):
    out = subprocess.run([sys.executable, os.path.join(HERE, script), *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _rows(stdout, size):
    """The table rows for `size`, each as its list of cells after the size."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith(f"| {size} |")]
    assert rows, stdout
    return [row[1:] for row in rows]


def _positive(cell):
    assert _NUMBER.match(cell), cell
    assert float(cell.rstrip("×").replace(",", "")) > 0, cell


def test_blas_routes():
    pytest.importorskip("scipy_openblas32")
    for row in _rows(_run("blas_routes.py", "--sizes", "tiny", "--threads", "1", "--rounds", "1",
                          "--seconds", "0.05"), "tiny"):
        assert row[0] == "1"
        for cell in row[1:]:
            _positive(cell)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="scaling.py needs 2 CPUs")
def test_scaling():
    (row,) = _rows(_run("scaling.py", "--sizes", "tiny", "--rounds", "1", "--seconds", "0.05"),
                   "tiny")
    assert len(row) == 9  # five samples/s, four ratios
    for cell in row:
        _positive(cell)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_gemm_engines():
    rows = _rows(_run("gemm_engines.py", "--sizes", "tiny", "--repeats", "1"), "tiny")
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        for cell in row[1:]:
            _positive(cell)
