"""Accuracy of the vectorizable float32 functions of csrc/fm_math.h.

Each is measured in ULP of the float32 result against float64 NumPy/SciPy on a
dense grid of the range its header comment states, and checked at the special
values (NaN, +-inf, the ends of the range).
"""
import numpy as np
import pytest
from scipy import special

from fastmlp._kernels.activations import FLOAT32_MATH, _float32_math

N = 200_001  # grid points per range


def _grid(lo, hi):
    return np.linspace(lo, hi, N)


def _both_signs(lo, hi):
    g = np.geomspace(lo, hi, N // 2)
    return np.concatenate([-g[::-1], g])


# name: (float64 reference, stated bound in ULP, ranges)
CASES = {
    "exp": (np.exp, 2, [_grid(-87, 88.7)]),
    "expm1": (np.expm1, 2, [_grid(-20, 88.7), _both_signs(1e-30, 1.0)]),
    "log": (np.log, 1, [np.geomspace(1.2e-38, 3.4e38, N), _grid(0.5, 2.0)]),
    "log1p": (np.log1p, 2, [_grid(-0.999999, 10.0), np.geomspace(1e-30, 3e38, N),
                            -np.geomspace(1e-30, 0.999, N)]),
    "tanh": (np.tanh, 3, [_grid(-20, 20), _both_signs(1e-30, 20.0)]),
    "atan": (np.arctan, 3, [_grid(-50, 50), _both_signs(1e-30, 1e30)]),
    "asinh": (np.arcsinh, 2, [_grid(-50, 50), _both_signs(1e-30, 1e30)]),
    "erfc": (special.erfc, 6, [_grid(-9, 9), _grid(-1, 1)]),
}


def _evaluate(name, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _float32_math(name, x, out)
    return out


def test_every_function_is_measured():
    assert set(CASES) == set(FLOAT32_MATH)


@pytest.mark.parametrize("name", list(CASES))
def test_accuracy_in_ulp(name):
    reference, bound, ranges = CASES[name]
    for x in ranges:
        x32 = x.astype(np.float32)
        got = _evaluate(name, x32).astype(np.float64)
        want = reference(x32.astype(np.float64))
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        err = np.abs(got - want) / ulp
        worst = int(np.argmax(err))
        assert err[worst] <= bound, (f"{name}({x32[worst]!r}) = {got[worst]!r}, "
                                     f"expected {want[worst]!r}: {err[worst]:.2f} ULP")


SPECIAL = {
    "exp": [(np.inf, np.inf), (-np.inf, 0.0), (0.0, 1.0), (89.0, np.inf), (-104.0, 0.0)],
    "expm1": [(np.inf, np.inf), (-np.inf, -1.0), (0.0, 0.0), (89.0, np.inf), (-30.0, -1.0),
              (1e-30, 1e-30)],
    "log": [(np.inf, np.inf), (0.0, -np.inf), (-1.0, np.nan), (1.0, 0.0), (-np.inf, np.nan)],
    "log1p": [(np.inf, np.inf), (-1.0, -np.inf), (-2.0, np.nan), (0.0, 0.0), (1e-30, 1e-30)],
    "tanh": [(np.inf, 1.0), (-np.inf, -1.0), (0.0, 0.0), (100.0, 1.0)],
    "atan": [(np.inf, np.pi / 2), (-np.inf, -np.pi / 2), (0.0, 0.0)],
    "asinh": [(np.inf, np.inf), (-np.inf, -np.inf), (0.0, 0.0), (3e38, np.log(6e38))],
    "erfc": [(np.inf, 0.0), (-np.inf, 2.0), (0.0, 1.0), (20.0, 0.0), (-20.0, 2.0)],
}


@pytest.mark.parametrize("name", list(CASES))
def test_special_values(name):
    x, expected = np.array(SPECIAL[name] + [(np.nan, np.nan)], dtype=np.float64).T
    got = _evaluate(name, x)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=0)


def test_bad_name_raises():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="name must be one of"):
        _float32_math("sin", x, np.empty_like(x))
