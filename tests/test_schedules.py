"""Learning-rate schedules: their formulas, warm-up composition, reduce-on-plateau,
and that fit() / train_step() step each batch with the scheduled rate."""
import math

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import schedules as S

from conftest import BACKENDS, assert_close


# ---- formulas ----------------------------------------------------------------------

def test_constant():
    assert S.constant(0.3)(0) == 0.3
    np.testing.assert_array_equal(S.constant(0.3)(np.arange(5), 7), np.full(5, 0.3))


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_step_decay_halves_every_n(unit):
    sched = S.step_decay(0.8, every=3, factor=0.5, unit=unit)
    t = np.arange(10)
    expected = [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]
    got = sched(t, 0) if unit == "step" else sched(0, t)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    # the other clock does not move it
    assert (sched(0, 5) if unit == "step" else sched(5, 0)) == 0.8


def test_exponential():
    sched = S.exponential(0.5, gamma=0.9)
    np.testing.assert_allclose(sched(0, np.arange(4)), [0.5, 0.45, 0.405, 0.3645], rtol=1e-15)
    assert S.exponential(0.5, gamma=0.9, unit="step")(3) == pytest.approx(0.3645)


def test_inverse_scaling_is_sklearns_invscaling():
    sched = S.inverse_scaling(0.1, power_t=0.5, unit="step")
    t = np.arange(6)
    np.testing.assert_allclose(sched(t), 0.1 / np.sqrt(t + 1.0), rtol=1e-15)
    assert S.inverse_scaling(0.1, power_t=1.0)(0, 3) == pytest.approx(0.025)


def test_cosine_anneals_to_the_minimum_and_stays():
    sched = S.cosine(1.0, period=4, min_lr=0.2)
    got = sched(0, np.arange(7))
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(7)]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert got[0] == 1.0 and got[4] == pytest.approx(0.2) and got[6] == pytest.approx(0.2)
    assert got[2] == pytest.approx(0.6)


def test_cosine_with_warm_restarts():
    sched = S.cosine(1.0, period=4, restarts=True, unit="step")
    got = sched(np.arange(9))
    np.testing.assert_allclose(got[4:8], got[0:4], rtol=1e-15)
    assert got[8] == 1.0 and got[3] == pytest.approx((1 + math.cos(0.75 * math.pi)) / 2)


def test_linear_warmup_then_the_inner_schedule():
    inner = S.step_decay(1.0, every=2, factor=0.5)
    sched = S.warmup(inner, steps=4, kind="linear", start_factor=0.2)
    steps = np.arange(8)
    factors = [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1]
    np.testing.assert_allclose(sched(steps, 0), factors, rtol=1e-15)
    # the inner schedule keeps its own clock: epoch 2 already has the halved rate
    np.testing.assert_allclose(sched(steps, 2), 0.5 * np.array(factors), rtol=1e-15)


def test_constant_warmup():
    sched = S.warmup(0.1, steps=3, kind="constant", start_factor=0.1)
    np.testing.assert_allclose(sched(np.arange(5)), [0.01, 0.01, 0.01, 0.1, 0.1], rtol=1e-15)


def test_warmup_counted_in_epochs_around_a_per_step_cosine():
    inner = S.cosine(1.0, period=10, unit="step")
    sched = S.warmup(inner, epochs=2, kind="linear", start_factor=0.0)
    for step, epoch, factor in [(3, 0, 0.0), (3, 1, 0.5), (3, 2, 1.0), (7, 9, 1.0)]:
        assert sched(step, epoch) == pytest.approx(factor * inner(step))


def test_reduce_on_plateau_follows_pytorch():
    """patience=2, threshold 10% (relative), cooldown 1, factor 0.5, floor 0.2."""
    sched = S.reduce_on_plateau(1.0, factor=0.5, patience=2, threshold=0.1, cooldown=1,
                                min_lr=0.2)
    losses = [10, 9.5, 9.4, 9.3, 9.2, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    rates = []
    for loss in losses:
        rates.append(sched(0))
        sched._end_epoch({"loss": loss})
    # 9.5, 9.4, 9.3 are not 10% better than 10: the third bad epoch (> patience)
    # halves the rate; the cooldown epoch after it (9.2) does not count; 8.0
    # improves; three more bad epochs halve it again; after the next cooldown
    # epoch, three more reach the floor
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2]
    sched._reset()
    assert sched(0) == 1.0 and sched.best == math.inf


def test_reduce_on_plateau_needs_its_monitor():
    sched = S.reduce_on_plateau(0.1, monitor="val_loss")
    with pytest.raises(ValueError, match="val_loss"):
        sched._end_epoch({"loss": 1.0})


@pytest.mark.parametrize("make", [
    lambda: S.constant(0), lambda: S.constant(-1), lambda: S.constant(float("nan")),
    lambda: S.constant("a"), lambda: S.step_decay(0.1, every=0),
    lambda: S.step_decay(0.1, every=2.5), lambda: S.step_decay(0.1, every=2, factor=0),
    lambda: S.step_decay(0.1, every=2, factor=1.5), lambda: S.step_decay(0.1, 2, unit="batch"),
    lambda: S.exponential(0.1, gamma=0), lambda: S.exponential(0.1, gamma=1.1),
    lambda: S.inverse_scaling(0.1, power_t=0), lambda: S.inverse_scaling(0.1, power_t=-1),
    lambda: S.cosine(0.1, period=0), lambda: S.cosine(0.1, period=10, min_lr=0.2),
    lambda: S.cosine(0.1, period=10, min_lr=-0.1),
    lambda: S.reduce_on_plateau(0.1, factor=1.0), lambda: S.reduce_on_plateau(0.1, factor=0),
    lambda: S.reduce_on_plateau(0.1, patience=-1), lambda: S.reduce_on_plateau(0.1, cooldown=1.5),
    lambda: S.reduce_on_plateau(0.1, threshold=-0.1), lambda: S.reduce_on_plateau(0.1, min_lr=1),
    lambda: S.reduce_on_plateau(0.1, monitor="accuracy"),
    lambda: S.warmup(0.1), lambda: S.warmup(0.1, steps=3, epochs=1),
    lambda: S.warmup(0.1, steps=0), lambda: S.warmup(0.1, steps=3, kind="exponential"),
    lambda: S.warmup(0.1, steps=3, start_factor=1.5), lambda: S.warmup(-0.1, steps=3),
])
def test_bad_schedule_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


# ---- in training ------------------------------------------------------------------------

def _model(backend, dtype, optimizer, seed=3):
    model = fm.Sequential([fm.Dense(11, activation="tanh"), fm.Dense(3)], input_dim=4,
                          dtype=dtype, seed=seed, backend=backend)
    return model.compile(loss="softmax_cross_entropy", optimizer=optimizer)


OPTIMIZERS = {
    "sgd": lambda lr: fm.SGD(lr=lr, momentum=0.9),
    "adam": lambda lr: fm.Adam(lr=lr),
    "adamw": lambda lr: fm.AdamW(lr=lr, weight_decay=0.5),
    "adagrad": lambda lr: fm.Adagrad(lr=lr),
    "rmsprop": lambda lr: fm.RMSprop(lr=lr, momentum=0.5),
    "nadam": lambda lr: fm.Nadam(lr=lr),
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_fit_steps_each_batch_with_the_scheduled_rate(backend, dtype, opt, rng):
    """fit() with a per-step schedule == train_step on the same batches with the
    plan's rate set by hand from the formula, for every optimizer."""
    schedule = S.warmup(S.cosine(0.05, period=7, min_lr=0.005, unit="step"), steps=5,
                        kind="linear", start_factor=0.2)
    X = rng.standard_normal((100, 4))
    y = rng.integers(0, 3, size=100)
    fitted = _model(backend, dtype, OPTIMIZERS[opt](schedule))
    history = fitted.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    manual = _model(backend, dtype, OPTIMIZERS[opt](1.0))
    rates = []
    for epoch in range(3):
        for start in range(0, 100, 32):
            t = manual._plan.step
            w = min(t, 5) / 5
            rate = (0.2 + 0.8 * w) * (0.005 + 0.045 * (1 + math.cos(math.pi * min(t, 7) / 7)) / 2)
            manual._plan.lr = rate
            rates.append(rate)
            manual.train_step(X[start:start + 32], y[start:start + 32])
    assert fitted._plan.step == manual._plan.step == 12
    np.testing.assert_allclose(history.history["lr"], [rates[3], rates[7], rates[11]],
                               rtol=1e-12)
    for a, b in zip(fitted.get_weights(), manual.get_weights()):
        assert_close(a, b, dtype)


def test_epoch_schedule_changes_the_rate_between_epochs(backend, rng):
    X = rng.standard_normal((64, 4))
    y = rng.integers(0, 3, size=64)
    model = _model(backend, "float64", fm.SGD(lr=S.step_decay(0.1, every=2, factor=0.5)))
    history = model.fit(X, y, epochs=5, batch_size=16, verbose=0)
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])
    # a second fit continues the clock
    history = model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert history.history["lr"] == [0.025]


def test_train_step_follows_the_schedule(backend, rng):
    X = rng.standard_normal((20, 4))
    y = rng.integers(0, 3, size=20)
    model = _model(backend, "float64", fm.SGD(lr=S.exponential(0.1, gamma=0.5, unit="step")))
    for t in range(4):
        model.train_step(X, y)
        assert model._plan.lr == pytest.approx(0.1 * 0.5 ** t)


def test_reduce_on_plateau_in_fit(backend, rng):
    """threshold 0.99: only the first epoch counts as an improvement, so with
    patience 0 every later epoch divides the rate by 10."""
    X = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, size=40)
    model = _model(backend, "float64", fm.Adam(lr=S.reduce_on_plateau(
        0.01, factor=0.1, patience=0, threshold=0.99, monitor="val_loss")))
    history = model.fit(X, y, epochs=4, batch_size=8, verbose=0, validation_split=0.25)
    np.testing.assert_allclose(history.history["lr"], [0.01, 0.01, 1e-3, 1e-4])
    # compiling again starts the schedule afresh
    model.compile(optimizer=model.optimizer)
    assert model._plan.lr == 0.01


def test_schedule_in_both_backends_agrees(dtype, rng):
    X = rng.standard_normal((120, 4))
    y = rng.integers(0, 3, size=120)
    results = []
    for backend in BACKENDS:
        sched = S.warmup(S.inverse_scaling(0.05, unit="step"), steps=6, kind="constant")
        model = _model(backend, dtype, fm.Nadam(lr=sched))
        history = model.fit(X, y, epochs=3, batch_size=16, verbose=0)
        results.append((history.history, model.get_weights()))
    np.testing.assert_allclose(results[0][0]["loss"], results[1][0]["loss"], rtol=1e-4)
    np.testing.assert_allclose(results[0][0]["lr"], results[1][0]["lr"], rtol=1e-15)
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, dtype)


def test_a_schedule_giving_a_bad_rate_raises(backend, rng):
    class Broken(S.Schedule):
        def _rate(self, step, epoch):
            return np.where(step > 2, np.nan, 0.1)

    X = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, size=40)
    model = _model(backend, "float64", fm.SGD(lr=Broken()))
    with pytest.raises(ValueError, match="learning rate"):
        model.fit(X, y, epochs=1, batch_size=8, verbose=0)


def test_plan_lr_and_per_batch_rates_are_checked(backend, rng):
    model = _model(backend, "float64", fm.SGD(0.1))
    plan = model._plan
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate"):
            plan.lr = bad
    plan.lr = 0.25
    assert plan.lr == 0.25
    X = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, size=10)
    order = np.arange(10, dtype=np.int64)
    losses = np.empty(4)
    with pytest.raises(ValueError, match="lrs"):
        plan.train_epoch(X, y, order, 3, losses, lrs=np.full(3, 0.1))
    with pytest.raises(ValueError, match="learning rates"):
        plan.train_epoch(X, y, order, 3, losses, lrs=np.array([0.1, -0.1, 0.1, 0.1]))
    assert plan.train_epoch(X, y, order, 3, losses, lrs=np.array([0.1, 0.2, 0.3, 0.4])) == 4
    assert plan.lr == 0.4


def test_matches_torch_lr_schedulers():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    cases = [
        (S.step_decay(0.1, every=3, factor=0.5),
         lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
        (S.exponential(0.1, gamma=0.8),
         lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8)),
        (S.cosine(0.1, period=6, min_lr=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=0.01)),
    ]
    for ours, make in cases:
        opt = torch.optim.SGD([p], lr=0.1)
        theirs = make(opt)
        for epoch in range(7):
            assert ours(0, epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
            opt.step()
            theirs.step()
