"""Importing fastmlp from a source checkout whose compiled modules are not built
(a clone after a plain `pip install .`, run from its root) fails with a message
that says what to do, not with a bare "cannot import name '_runtime'"."""
import os
import shutil
import subprocess
import sys

import fastmlp


def test_a_checkout_without_compiled_modules_says_how_to_build_them(tmp_path):
    source = os.path.dirname(fastmlp.__file__)
    shutil.copytree(source, tmp_path / "fastmlp",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    out = subprocess.run([sys.executable, "-c", "import fastmlp"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "compiled kernels are not built" in out.stderr
    assert "pip install -e ." in out.stderr


def test_the_built_package_imports():
    out = subprocess.run([sys.executable, "-c", "import fastmlp; print(fastmlp.__version__)"],
                         cwd=os.path.dirname(os.path.dirname(fastmlp.__file__)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == fastmlp.__version__
