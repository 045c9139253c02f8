"""Build the Cython extensions of fastmlp.

OpenMP is probed by compiling and running a tiny program; its flags are added
only when that works, otherwise the kernels build serial and the build says so.
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0);
    return n > 0 ? 0 : 1;
}
"""

KERNELS = ["_runtime", "activations", "checks", "dense", "layers", "losses", "optim", "plan"]


def openmp_flags(compiler):
    """(compile_args, link_args) for OpenMP, or ([], []) when the probe fails."""
    if os.environ.get("FASTMLP_DISABLE_OPENMP"):
        return [], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.insert(0, (["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    cc = compiler.compiler_so[0] if hasattr(compiler, "compiler_so") else "cc"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OMP_PROBE)
        for cflags, lflags in candidates:
            try:
                subprocess.run([cc, *cflags, src, "-o", exe, *lflags], check=True,
                               capture_output=True, timeout=120)
                subprocess.run([exe], check=True, capture_output=True, timeout=60)
                return cflags, lflags
            except (OSError, subprocess.SubprocessError):
                continue
    return [], []


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, lflags = openmp_flags(self.compiler)
        if cflags:
            print("fastmlp: building with OpenMP", " ".join(cflags))
        else:
            print("fastmlp: WARNING: OpenMP is not available; the kernels will run on one thread")
        for ext in self.extensions:
            ext.extra_compile_args += cflags
            ext.extra_link_args += lflags
        super().build_extensions()


compile_args = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math",
                                                   "-fopenmp-simd",
                                                   "-Wno-unused-function",
                                                   "-Wno-maybe-uninitialized"]
extensions = [
    Extension(
        f"fastmlp._kernels.{name}",
        [f"fastmlp/_kernels/{name}.pyx"],
        include_dirs=["csrc", np.get_include()],
        depends=sorted(glob.glob("csrc/*.h")),  # a header change rebuilds the modules
        extra_compile_args=list(compile_args),
        extra_link_args=[],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3},
                          include_path=["fastmlp/_kernels"]),
    cmdclass={"build_ext": BuildExt},
)
