"""Shared settings of the robustness tests (issue: bad input never crashes,
numerics never blow up, nothing is lost).

Every fuzzer runs under the "fastmlp" hypothesis profile: at least 500
examples each (FASTMLP_FUZZ_EXAMPLES raises it for long runs, e.g.
FASTMLP_FUZZ_EXAMPLES=20000), no deadline (the first call of a kernel may
pay for thread start-up), no example database (runs are reproducible from
the seed hypothesis prints on failure, and CI has no state to keep).  The
shapes are tiny so that 500 examples take a second or two each.

"A clean exception" means one of CLEAN_ERRORS with a message; anything else
(a crash, another exception type, a non-finite result without an error) is
a bug.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastmlp as fm

FUZZ_EXAMPLES = max(500, int(os.environ.get("FASTMLP_FUZZ_EXAMPLES", "500")))

settings.register_profile(
    "fastmlp", max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture])
settings.load_profile("fastmlp")

# the exceptions a public entry may raise on bad input (documented in README, "Robustness")
CLEAN_ERRORS = (ValueError, TypeError)


def assert_clean(error):
    """`error` is an expected exception type with a message a person can act on."""
    assert isinstance(error, CLEAN_ERRORS), f"unexpected {type(error).__name__}: {error}"
    assert len(str(error)) >= 10, f"{type(error).__name__} without a useful message: {error!r}"


def overflow_possible(X):
    """Whether finite inputs X are large enough (|x| >= 1e30) that float32 arithmetic
    on them may overflow: then predict and training report it with a
    FloatingPointError (or a non-finite evaluate loss) instead of a result."""
    return X is not None and X.size > 0 and float(np.abs(X.astype(np.float64)).max()) >= 1e30


def tiny_model(backend="native", dtype="float32", n_in=3, n_out=3, hidden=4, loss=None,
               activation="tanh", optimizer=None, seed=0, dropout=0.0):
    """A small compiled model: n_in -> hidden -> n_out."""
    layers = [fm.Dense(hidden, activation=activation)]
    if dropout:
        layers.append(fm.Dropout(dropout))
    layers.append(fm.Dense(n_out))
    model = fm.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed, backend=backend)
    model.compile(loss=loss or ("softmax_cross_entropy" if n_out > 1 else "mse"),
                  optimizer=optimizer or fm.Adam(lr=1e-2))
    return model


def weights_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)


@pytest.fixture
def big_tests():
    """Skip unless FASTMLP_BIG_TESTS=1 (tests that need > 8 GB of memory)."""
    if os.environ.get("FASTMLP_BIG_TESTS") != "1":
        pytest.skip("needs > 8 GB of memory: set FASTMLP_BIG_TESTS=1 to run")
