"""The fit loop: callbacks, progress, chunked epochs, initial_epoch, Ctrl-C, divergence."""
import _thread
import io
import signal
import threading

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import callbacks as cb


def make_model(backend="native", dtype="float32", optimizer=None, seed=0, metrics=None,
               hidden=16, n_in=2, n_out=3):
    model = fm.Sequential([fm.Dense(hidden, activation="relu"), fm.Dense(n_out)],
                          input_dim=n_in, dtype=dtype, seed=seed, backend=backend)
    model.compile(optimizer=optimizer if optimizer is not None else fm.Adam(lr=1e-2),
                  metrics=metrics)
    return model


@pytest.fixture
def data():
    return fm.datasets.spiral(n_samples=150, seed=1)


class Recorder(cb.Callback):
    """Records every hook call (and asks for batch hooks when `batches`)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))


class BatchRecorder(Recorder):
    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch, logs["size"]))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, logs["size"], logs["loss"]))


def weights_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


# ---- the fast path and the chunked paths give the same numbers -------------------------

@pytest.mark.parametrize("how", ["batch_hooks", "progress"])
def test_chunked_epochs_are_bit_identical_to_the_native_epoch(backend, dtype, how, data):
    X, y = data
    plain, chunked = make_model(backend, dtype), make_model(backend, dtype)
    h1 = plain.fit(X, y, epochs=3, batch_size=16, verbose=0)
    extra = ([BatchRecorder()] if how == "batch_hooks"
             else [cb.ProgressLogger(live=True, stream=io.StringIO(), use_tqdm=False)])
    h2 = chunked.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=extra)
    assert weights_equal(plain, chunked)
    assert h1.history["loss"] == h2.history["loss"]
    assert plain._plan.step == chunked._plan.step == 3 * 10


class CountingPlan:
    """Delegates to a plan, recording the rows of each train_epoch call."""

    def __init__(self, plan):
        self._inner = plan
        self.rows = []

    def train_epoch(self, X, y, order, *args, **kwargs):
        self.rows.append(len(order))
        return self._inner.train_epoch(X, y, order, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_callbacks_without_batch_hooks_keep_the_native_epoch(data):
    X, y = data
    model = make_model()
    model._plan = counting = CountingPlan(model._plan)
    model.fit(X, y, epochs=2, batch_size=16, verbose=2,
              callbacks=[Recorder(), cb.EarlyStopping(monitor="loss", patience=5),
                         cb.TerminateOnNaN(), cb.LambdaCallback(on_epoch_end=print)])
    assert counting.rows == [150, 150]  # one native call per epoch, over every row
    counting.rows.clear()
    model.fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[BatchRecorder()])
    assert counting.rows == [16] * 9 + [6]  # one per batch when a callback asks for batches


def test_hook_order_and_batch_logs(data):
    X, y = data
    rec = BatchRecorder()
    model = make_model()
    model.fit(X[:40], y[:40], epochs=2, batch_size=16, verbose=0, callbacks=[rec])
    names = [c[0] for c in rec.calls]
    assert names == (["train_begin"]
                     + (["epoch_begin"] + ["batch_begin", "batch_end"] * 3 + ["epoch_end"]) * 2
                     + ["train_end"])
    sizes = [c[2] for c in rec.calls if c[0] == "batch_end"]
    assert sizes == [16, 16, 8] * 2
    batch_losses = [c[3] for c in rec.calls if c[0] == "batch_end"][:3]
    epoch_loss = [c[2]["loss"] for c in rec.calls if c[0] == "epoch_end"][0]
    np.testing.assert_allclose(epoch_loss, np.dot(batch_losses, [16, 16, 8]) / 40, rtol=1e-12)


def test_stop_training_from_a_batch_hook_stops_after_that_batch(data):
    X, y = data

    class StopAt(cb.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    model = make_model()
    history = model.fit(X, y, epochs=5, batch_size=16, verbose=0, callbacks=[StopAt()])
    assert model._plan.step == 3
    assert history.epoch == [0]  # the partial epoch is reported, over its 3 batches


def test_params_given_to_callbacks(data):
    X, y = data
    rec = Recorder()
    make_model(metrics=["accuracy"]).fit(X, y, epochs=2, batch_size=50, verbose=0,
                                         validation_split=0.2, callbacks=[rec])
    assert rec.params["epochs"] == 2 and rec.params["batch_size"] == 50
    assert rec.params["samples"] == 120 and rec.params["steps"] == 3
    assert rec.params["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy"]


def test_bad_callbacks_raise(data):
    X, y = data
    with pytest.raises(ValueError, match="Callback"):
        make_model().fit(X, y, verbose=0, callbacks=[lambda: None])
    with pytest.raises(ValueError, match="verbose"):
        make_model().fit(X, y, verbose=3)


# ---- initial_epoch ------------------------------------------------------------------------

def test_initial_epoch_runs_the_remaining_epochs(data):
    X, y = data
    whole, parts = make_model(), make_model()
    whole.fit(X, y, epochs=4, verbose=0)
    parts.fit(X, y, epochs=2, verbose=0)
    history = parts.fit(X, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3]
    assert weights_equal(whole, parts)
    assert parts.fit(X, y, epochs=2, initial_epoch=2, verbose=0).epoch == []
    with pytest.raises(ValueError, match="initial_epoch"):
        parts.fit(X, y, initial_epoch=-1, verbose=0)


# ---- progress --------------------------------------------------------------------------

def test_verbose_2_prints_one_line_per_epoch_with_speed(data, capsys):
    X, y = data
    make_model(metrics=["accuracy"]).fit(X, y, epochs=3, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"epoch {i + 1}/3 - ")
        assert "samples/s" in line and "loss: " in line and "val_accuracy: " in line


def test_verbose_0_is_silent(data, capsys):
    X, y = data
    make_model().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_plain_live_bar_draws_in_place_and_ends_with_the_epoch_line(data, monkeypatch):
    import fastmlp.model as model_module

    monkeypatch.setattr(model_module, "_PROGRESS_INTERVAL", 0.0)  # redraw after every chunk
    X, y = data
    out = io.StringIO()
    bar = cb.ProgressLogger(live=True, stream=out, use_tqdm=False)
    make_model().fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[bar])
    text = out.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == ""          # two epochs, each ends its line
    for i, line in enumerate(lines[:2]):
        frames = line.split("\r")[1:]
        assert len(frames) >= 2                          # redrawn in place at least once
        assert frames[0].startswith(f"epoch {i + 1}/2 [") and "samples/s - loss: " in frames[0]
        assert frames[-1].startswith(f"epoch {i + 1}/2 - ") and "samples/s" in frames[-1]


def test_tqdm_bar(data):
    pytest.importorskip("tqdm")
    X, y = data
    out = io.StringIO()
    bar = cb.ProgressLogger(live=True, stream=out, use_tqdm=True)
    make_model(metrics=["accuracy"]).fit(X, y, epochs=2, batch_size=8, verbose=0,
                                         callbacks=[bar])
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "loss: " in text and "accuracy: " in text and "sample/s" in text


def test_plain_bar_without_tqdm(data, monkeypatch):
    import sys

    from fastmlp import _progress

    monkeypatch.setitem(sys.modules, "tqdm", None)   # as if tqdm were not installed
    assert not _progress.tqdm_available()
    X, y = data
    out = io.StringIO()
    make_model().fit(X, y, epochs=1, verbose=0,
                     callbacks=[cb.ProgressLogger(live=True, stream=out)])
    assert out.getvalue().count("\n") == 1 and "epoch 1/1 - " in out.getvalue()


def test_verbose_1_is_live_only_on_a_terminal(data, monkeypatch, capsys):
    import sys

    X, y = data
    make_model().fit(X, y, epochs=1, verbose=1)
    assert "\r" not in capsys.readouterr().out         # captured: not a terminal
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    make_model().fit(X, y, epochs=1, verbose=1)
    assert "\repoch 1/1" in capsys.readouterr().out


# ---- Ctrl-C and divergence ---------------------------------------------------------------

def test_ctrl_c_in_a_callback_returns_the_history_so_far(data, capsys):
    X, y = data

    class Interrupt(cb.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    rec = Recorder()
    model = make_model()
    history = model.fit(X, y, epochs=5, verbose=1, callbacks=[Interrupt(), rec])
    assert history.epoch == [0, 1]
    assert rec.calls[-1] == ("train_end",)
    assert "interrupted in epoch 3" in capsys.readouterr().out
    assert np.isfinite(model.predict(X)).all()
    model.fit(X, y, epochs=1, verbose=0)               # still usable


def test_ctrl_c_during_a_native_epoch_stops_after_a_batch(backend):
    # a SIGINT while the native loop runs is raised after the batch it arrived in
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 8))
    y = rng.integers(0, 3, 40_000)
    model = make_model(backend, n_in=8, hidden=32, optimizer=fm.SGD(lr=0.01))
    training, done = threading.Event(), threading.Event()

    # a handler of its own: a shell's background job starts with SIGINT ignored,
    # and interrupt_main then does nothing.  It raises only once a batch has run;
    # an interrupt before that, or after fit, is ignored, and the sender goes on
    def on_sigint(signum, frame):
        if training.is_set() and model._plan.step > 0:
            raise KeyboardInterrupt

    def interrupt_every_20_ms():
        while not done.wait(0.02):
            if training.is_set():
                _thread.interrupt_main()

    class Training(cb.Callback):
        def on_train_begin(self, logs=None):
            training.set()

        def on_train_end(self, logs=None):
            training.clear()

    previous = signal.signal(signal.SIGINT, on_sigint)
    sender = threading.Thread(target=interrupt_every_20_ms)
    sender.start()
    try:
        history = model.fit(X, y, epochs=50, batch_size=32, verbose=0, callbacks=[Training()])
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGINT, previous)
    assert len(history.epoch) < 50
    assert 0 < model._plan.step < 50 * 1250
    assert model._plan.status == 0
    assert all(np.isfinite(w).all() for w in model.get_weights())
    before = model._plan.step
    model.fit(X[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    assert model._plan.step == before + 2


def diverging_model(backend):
    model = fm.Sequential([fm.Dense(16, activation="relu"), fm.Dense(3)], input_dim=2,
                          backend=backend)
    model.compile(loss="mse", optimizer=fm.SGD(lr=1e6))
    X, labels = fm.datasets.spiral(seed=0)
    return model, X, np.eye(3)[labels] * 100


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_epoch_and_batch(backend):
    model, X, Y = diverging_model(backend)
    with pytest.raises(FloatingPointError, match=r"at epoch \d+, batch \d+"):
        model.fit(X, Y, epochs=50, batch_size=300, verbose=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_terminate_on_nan_stops_quietly_with_finite_weights(backend, capsys):
    model, X, Y = diverging_model(backend)
    rec = Recorder()
    history = model.fit(X, Y, epochs=50, batch_size=300, verbose=0,
                        callbacks=[cb.TerminateOnNaN(), rec])
    assert len(history.epoch) < 50
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert rec.calls[-1] == ("train_end",)
    assert "stopping: training diverged at epoch" in capsys.readouterr().out


def test_terminate_on_nan_checks_the_epoch_logs():
    t = cb.TerminateOnNaN()
    t.set_model(type("M", (), {"stop_training": False})())
    t.on_epoch_end(0, {"loss": 1.0, "val_loss": float("inf")})
    assert t.model.stop_training


# ---- EarlyStopping -----------------------------------------------------------------------

def feed(callback, values, key="val_loss", params=None):
    """Run a callback over a sequence of epoch values on a dummy model."""
    model = make_model()
    callback.set_model(model)
    callback.set_params(params or {"metrics": ["loss", key]})
    model.stop_training = False
    callback.on_train_begin()
    stopped = None
    for epoch, v in enumerate(values):
        model.params[0] = epoch                       # marks "the weights of epoch e"
        callback.on_epoch_end(epoch, {"loss": 0.0, key: v})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return model, stopped


def test_early_stopping_patience_and_min_delta():
    _, stopped = feed(cb.EarlyStopping(patience=2), [3, 2, 2.5, 2.1, 2.2, 1.0])
    assert stopped == 3                                # no improvement in epochs 2 and 3
    _, stopped = feed(cb.EarlyStopping(patience=2, min_delta=0.5), [3, 2.8, 2.6, 2.4])
    assert stopped == 2                                # 0.2 steps are not improvements
    _, stopped = feed(cb.EarlyStopping(patience=0), [3, 2, 1])
    assert stopped is None
    _, stopped = feed(cb.EarlyStopping(patience=0), [3, 2, 2])
    assert stopped == 2


def test_early_stopping_mode_and_baseline():
    es = cb.EarlyStopping(monitor="val_accuracy", patience=1)
    assert es.mode == "max"
    _, stopped = feed(es, [0.5, 0.6, 0.55, 0.58], key="val_accuracy")
    assert stopped == 2 and es.best == 0.6 and es.best_epoch == 1
    _, stopped = feed(cb.EarlyStopping(patience=2, baseline=1.0), [2, 1.5, 0.9])
    assert stopped == 1


def test_early_stopping_restores_the_best_weights():
    es = cb.EarlyStopping(patience=1, restore_best_weights=True)
    model, stopped = feed(es, [3, 1, 2, 2])
    assert stopped == 2 and model.params[0] == 1       # epoch 1's weights are back


def test_early_stopping_in_fit(data):
    X, y = data
    es = cb.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # nothing improves by 10
    history = make_model().fit(X, y, epochs=10, verbose=0, callbacks=[es])
    assert history.epoch == [0, 1] and es.stopped_epoch == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"patience": -1}, "patience"), ({"min_delta": -0.1}, "min_delta"),
    ({"mode": "up"}, "mode"), ({"patience": 1.5}, "patience")])
def test_bad_early_stopping_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cb.EarlyStopping(**kwargs)


def test_monitoring_an_unreported_quantity_raises_before_training(data):
    X, y = data
    model = make_model()
    for callback in (cb.EarlyStopping(), cb.ReduceLROnPlateau(),
                     cb.ModelCheckpoint("x.fm", save_best_only=True)):
        with pytest.raises(ValueError, match="val_loss.*reports loss"):
            model.fit(X, y, epochs=1, verbose=0, callbacks=[callback])
    assert model._plan.step == 0


# ---- learning rate -----------------------------------------------------------------------

def test_learning_rate_scheduler_sets_the_rate_of_each_epoch(backend, data):
    X, y = data
    scheduled = make_model(backend, "float64", optimizer=fm.SGD(lr=0.1))
    history = scheduled.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0,
                            callbacks=[cb.LearningRateScheduler(lambda e: 0.1 / (e + 1))])
    assert history.history["lr"] == [0.1, 0.05, 0.1 / 3]
    manual = make_model(backend, "float64", optimizer=fm.SGD(lr=0.1))
    for epoch in range(3):
        cb.set_learning_rate(manual, 0.1 / (epoch + 1))
        manual.fit(X, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert weights_equal(scheduled, manual)
    assert scheduled.optimizer.lr == pytest.approx(0.1 / 3)


def test_learning_rate_scheduler_two_argument_form_and_errors(data):
    X, y = data
    model = make_model(optimizer=fm.Adam(lr=0.01))
    model.fit(X, y, epochs=3, verbose=0,
              callbacks=[cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert model.optimizer.lr == pytest.approx(0.01 / 8)
    assert model._plan.lr == pytest.approx(0.01 / 8)
    with pytest.raises(ValueError, match="learning rate"):
        model.fit(X, y, epochs=1, verbose=0,
                  callbacks=[cb.LearningRateScheduler(lambda e: -1.0)])
    with pytest.raises(ValueError, match="callable"):
        cb.LearningRateScheduler(0.1)


def test_reduce_lr_on_plateau():
    r = cb.ReduceLROnPlateau(patience=1, factor=0.5, min_lr=0.0026, cooldown=1)
    model, _ = feed(r, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # Adam(lr=0.01): halves at epoch 1, cools down in epoch 2, then down to the floor
    assert model.optimizer.lr == pytest.approx(0.0026)
    assert model._plan.lr == pytest.approx(0.0026)
    r = cb.ReduceLROnPlateau(patience=0, factor=0.1)
    model, _ = feed(r, [3.0, 2.0, 1.0])
    assert model.optimizer.lr == pytest.approx(0.01)    # always improving: unchanged
    with pytest.raises(ValueError, match="factor"):
        cb.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_logs_the_rate(data):
    X, y = data
    history = make_model().fit(X, y, epochs=3, verbose=0, callbacks=[
        cb.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0, factor=0.5)])
    # each epoch logs the rate it trained with; the first has nothing to compare with
    assert history.history["lr"] == pytest.approx([0.01, 0.01, 0.005])


# ---- files ------------------------------------------------------------------------------

def test_csv_logger(tmp_path, data):
    X, y = data
    path = tmp_path / "log.csv"
    model = make_model(metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, verbose=0, callbacks=[cb.CSVLogger(path)])
    rows = path.read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy"
    assert len(rows) == 4
    assert [float(v) for v in rows[3].split(",")[1:]] == [history.history["loss"][2],
                                                         history.history["accuracy"][2]]
    model.fit(X, y, epochs=5, initial_epoch=3, verbose=0,
              callbacks=[cb.CSVLogger(path, append=True)])
    rows = path.read_text().splitlines()
    assert len(rows) == 6 and rows[0] == "epoch,loss,accuracy" and rows[5].startswith("4,")


def test_model_checkpoint(tmp_path, data):
    X, y = data
    model = make_model()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.fm")
    history = model.fit(X, y, epochs=3, verbose=0, callbacks=[cb.ModelCheckpoint(pattern)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"ckpt-{e + 1:02d}-{history.history['loss'][e]:.3f}.fm" for e in range(3)]
    last = fm.load_model(tmp_path / files[-1])
    assert weights_equal(last, model)


def test_model_checkpoint_save_best_only(tmp_path, data):
    X, y = data
    path = tmp_path / "best.fm"
    ckpt = cb.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model, _ = feed(ckpt, [3.0, 1.0, 2.0])
    assert ckpt.best == 1.0
    assert fm.load_model(path).params[0] == 1          # saved at epoch 1, not 2
    with pytest.raises(ValueError, match="cannot be filled"):
        feed(cb.ModelCheckpoint(str(tmp_path / "{nope}.fm")), [1.0])


def test_lambda_callback(data):
    X, y = data
    seen = []
    lam = cb.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(("end", e)),
                            on_train_begin=lambda logs: seen.append("begin"))
    assert not lam.wants_batch_hooks
    make_model().fit(X, y, epochs=2, verbose=0, callbacks=[lam])
    assert seen == ["begin", ("end", 0), ("end", 1)]
    batches = []
    lam = cb.LambdaCallback(on_batch_end=lambda b, logs: batches.append(b))
    assert lam.wants_batch_hooks
    make_model().fit(X, y, epochs=1, batch_size=50, verbose=0, callbacks=[lam])
    assert batches == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown hook"):
        cb.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(ValueError, match="callable"):
        cb.LambdaCallback(on_epoch_end=3)
