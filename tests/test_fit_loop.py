"""fit as a loop with hooks: batch-level callbacks, the run shared with callbacks,
progress as callbacks, no training state left on the model, the real signature."""

import inspect
import io
import pydoc
import sys
import time

import numpy as np
import pytest

import glassnet as gn
from glassnet.train.callbacks import TrainingRun


def blobs(n=30):
    return gn.datasets.make_blobs(n, 3, 3, seed=0)


def classifier():
    return gn.Sequential(gn.Dense(3, 4), gn.Tanh(), gn.Dense(4, 3), seed=0)


# -- batch hooks -----------------------------------------------------------------


class BatchLogger(gn.Callback):
    """Records every batch hook with its logs, and the epoch hooks around them."""

    def __init__(self):
        self.calls = []

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs):
        self.calls.append(("begin", batch, dict(logs)))

    def on_batch_end(self, batch, logs):
        self.calls.append(("end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch))


@pytest.mark.parametrize(
    "rows, batch_size, sizes",
    [
        (30, 8, [8, 8, 8, 6]),
        (30, 10, [10, 10, 10]),
        (30, None, [30]),
        (30, 100, [30]),
    ],
)
def test_a_per_step_logger_sees_every_batch(rows, batch_size, sizes):
    X, y = blobs(rows)
    logger = BatchLogger()
    history = classifier().fit(
        X, y, epochs=2, batch_size=batch_size, verbose=0, callbacks=[logger]
    )
    for epoch in range(2):
        start = logger.calls.index(("epoch_begin", epoch))
        stop = logger.calls.index(("epoch_end", epoch))
        steps = logger.calls[start + 1 : stop]
        expected = []
        for i, n in enumerate(sizes):
            expected += [("begin", i, {"size": n}), ("end", i)]
        assert [c[:2] if c[0] == "end" else c for c in steps] == expected
        ends = [c[2] for c in steps if c[0] == "end"]
        assert [e["size"] for e in ends] == sizes
        # the epoch's loss is the size-weighted mean of its batch losses
        mean = sum(e["loss"] * e["size"] for e in ends) / rows
        assert history["loss"][epoch] == pytest.approx(mean, rel=1e-12)


class LinearWarmup(gn.Callback):
    """lr = peak * min(1, (step + 1) / warmup_steps), set before every step."""

    def __init__(self, peak, warmup_steps):
        self.peak, self.warmup_steps = peak, warmup_steps
        self.step, self.lrs = 0, []

    def on_batch_begin(self, batch, logs):
        self.optimizer.lr = self.peak * min(1.0, (self.step + 1) / self.warmup_steps)
        self.step += 1

    def on_batch_end(self, batch, logs):
        self.lrs.append(self.optimizer.lr)  # the lr that step used


@pytest.mark.parametrize(
    "peak, warmup, batch_size, epochs, expected",
    [
        (0.4, 4, 10, 2, [0.1, 0.2, 0.3, 0.4, 0.4, 0.4]),
        (1.0, 5, 15, 3, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]),
        (0.3, 3, None, 4, [0.1, 0.2, 0.3, 0.3]),
    ],
)
def test_linear_warmup_changes_the_lr_every_step(
    peak, warmup, batch_size, epochs, expected
):
    X, y = blobs()
    warm = LinearWarmup(peak, warmup)
    history = classifier().fit(
        X,
        y,
        optimizer=gn.SGD(lr=1e-3),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[warm],
    )
    np.testing.assert_allclose(warm.lrs, expected, rtol=1e-15)
    # the epoch log shows the lr in force at the epoch's end
    steps = len(expected) // epochs
    np.testing.assert_allclose(history["lr"], expected[steps - 1 :: steps])


def test_a_per_step_schedule_is_the_per_epoch_one_when_each_epoch_is_a_step():
    """With one step per epoch, the warm-up as a batch hook and the same rates as a
    per-epoch LearningRateScheduler train bitwise the same weights: the rate set
    in on_batch_begin is the one the step uses."""
    X, y = blobs()
    rates = [0.1, 0.2, 0.3, 0.3, 0.3]
    per_step, per_epoch = classifier(), classifier()
    per_step.fit(
        X,
        y,
        optimizer=gn.SGD(lr=1e-3),
        epochs=5,
        batch_size=None,
        verbose=0,
        callbacks=[LinearWarmup(0.3, 3)],
    )
    per_epoch.fit(
        X,
        y,
        optimizer=gn.SGD(lr=1e-3),
        epochs=5,
        batch_size=None,
        verbose=0,
        callbacks=[gn.LearningRateScheduler(lambda epoch, lr: rates[epoch])],
    )
    for a, b in zip(per_step.parameters(), per_epoch.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    untouched = classifier()
    untouched.fit(X, y, optimizer=gn.SGD(lr=1e-3), epochs=5, batch_size=None, verbose=0)
    assert not np.array_equal(per_step[0].weight.data, untouched[0].weight.data)


# -- what fit shares with callbacks, and what it leaves on the model -------------


class RunRecorder(gn.Callback):
    def on_train_begin(self, logs):
        self.seen = (self.run, self.model, self.optimizer, self.rng)


@pytest.mark.parametrize("seed", [None, 7])
def test_callbacks_get_the_run_explicitly(seed):
    X, y = blobs()
    model, optimizer, recorder = classifier(), gn.Adam(), RunRecorder()
    history = model.fit(
        X, y, optimizer=optimizer, seed=seed, verbose=0, callbacks=[recorder]
    )
    run, cb_model, cb_optimizer, rng = recorder.seen
    assert isinstance(run, TrainingRun)
    assert cb_model is model and run.model is model
    assert cb_optimizer is optimizer and run.optimizer is optimizer
    assert isinstance(run.loss, gn.SoftmaxCrossEntropy)
    assert run.history is history and rng is run.rng
    assert (rng is model.rng) == (seed is None)  # fit(seed=...) makes its own


def test_fit_leaves_only_the_history_on_the_model():
    X, y = blobs()
    model = classifier()
    before = dict(vars(model))
    history = model.fit(X, y, optimizer=gn.Adam(), epochs=2, verbose=0)
    after = vars(model)
    # besides history, only the Layer mode flag that set_training writes on every
    # layer (Dropout reads it), False again once fit returns
    allowed = {"history", "training", "_training"}
    assert set(after) - set(before) <= allowed
    changed = {k for k in before if after[k] is not before[k]}
    assert changed <= allowed and model.training is False
    assert model.history is history
    for removed in ("optimizer", "loss", "stop_training"):
        assert not hasattr(model, removed)


class StopAfter(gn.Callback):
    def __init__(self, epoch, old_way=False):
        self.epoch, self.old_way = epoch, old_way

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            if self.old_way:
                self.model.stop_training = True
            else:
                self.stop_training = True
                assert self.stop_training and self.run.stop_training


@pytest.mark.parametrize("stop_after", [0, 2])
def test_a_callback_stops_training_through_the_run(stop_after):
    X, y = blobs()
    history = classifier().fit(
        X, y, epochs=6, verbose=0, callbacks=[StopAfter(stop_after)]
    )
    assert len(history) == stop_after + 1


def test_setting_stop_training_on_the_model_is_refused_with_the_new_spelling():
    X, y = blobs()
    with pytest.raises(gn.ConfigError, match=r"self\.stop_training = True"):
        classifier().fit(
            X, y, epochs=3, verbose=0, callbacks=[StopAfter(0, old_way=True)]
        )


def test_stop_training_outside_fit_is_a_call_order_error():
    cb = gn.Callback()
    assert cb.stop_training is False
    with pytest.raises(gn.CallOrderError, match=r"Callback: stop_training .* fit"):
        cb.stop_training = True


# -- progress reporting as callbacks ---------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class SlowEpochs(gn.Callback):
    """Epochs longer than tqdm's 0.1 s between redraws, so every epoch is drawn."""

    def on_epoch_end(self, epoch, logs):
        time.sleep(0.12)


@pytest.mark.parametrize(
    "verbose, callbacks, terminal, shown",
    [
        pytest.param(2, [], False, "lines", id="verbose-2"),
        pytest.param(0, [gn.PrintLogger], False, "lines", id="printlogger-0"),
        pytest.param(1, [], True, "bar", id="verbose-1-terminal"),
        pytest.param(0, [gn.ProgressBar], True, "bar", id="progressbar-0-terminal"),
        pytest.param(0, [gn.ProgressBar], False, "", id="progressbar-no-terminal"),
        pytest.param(0, [], True, "", id="silent"),
    ],
)
def test_progress_is_reported_by_callbacks(
    verbose, callbacks, terminal, shown, monkeypatch
):
    stream = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    X, y = blobs()
    slow = [SlowEpochs()] if shown == "bar" else []
    classifier().fit(
        X, y, epochs=3, verbose=verbose, callbacks=[*slow, *(cb() for cb in callbacks)]
    )
    text = stream.getvalue()
    if shown == "lines":
        lines = text.splitlines()
        assert [line.split("  ")[0] for line in lines] == [
            "epoch 1/3",
            "epoch 2/3",
            "epoch 3/3",
        ]
        assert all("loss=" in line and "lr=" in line for line in lines)
    elif shown == "bar":
        assert "epoch 3/3" in text and "loss=" in text
    else:
        assert text == ""


def test_progress_callbacks_are_exported():
    for name in ("ProgressBar", "PrintLogger"):
        assert name in gn.__all__ and issubclass(getattr(gn, name), gn.Callback)


# -- help(model.fit) -------------------------------------------------------------


def test_model_fit_shows_the_real_signature():
    loop = inspect.signature(gn.fit)
    method = inspect.signature(gn.Sequential.fit)
    assert list(method.parameters)[1:] == list(loop.parameters)[1:]
    for name, param in loop.parameters.items():
        if name != "model":
            mine = method.parameters[name]
            assert (mine.kind, mine.default) == (param.kind, param.default), name
    text = pydoc.render_doc(classifier().fit, renderer=pydoc.plaintext)
    assert "epochs: int = 1" in text and "validation_split: float = 0.0" in text
    assert "model.history" in text and "help(gn.fit)" in text
    assert "model.history" in gn.fit.__doc__


# -- divergence ------------------------------------------------------------------


class WeightsAtEpochEnd(gn.Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append([p.data.copy() for p in self.model.parameters()])


@pytest.mark.parametrize(
    "blow_up_at, restored",
    [(0, "the weights fit started with"), (2, "the weights after epoch 2")],
)
def test_divergence_restores_the_weights_of_the_last_finished_epoch(
    blow_up_at, restored
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([[1.0], [2.0], [3.0]])
    model = gn.Sequential(gn.Dense(3, 8), gn.Tanh(), gn.Dense(8, 1), seed=0)
    start = [p.data.copy() for p in model.parameters()]
    recorder = WeightsAtEpochEnd()
    schedule = gn.LearningRateScheduler(
        lambda epoch, lr: 1e30 if epoch >= blow_up_at else 0.01
    )
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(gn.TrainingDivergedError) as info,
    ):
        model.fit(
            X,
            y,
            loss="mse",
            optimizer=gn.SGD(),
            epochs=6,
            batch_size=5,
            verbose=0,
            callbacks=[schedule, recorder],
        )
    message = str(info.value)
    assert f"epoch {blow_up_at + 1}" in message and f"restored {restored}" in message
    assert len(recorder.weights) == blow_up_at
    expected = recorder.weights[-1] if recorder.weights else start
    for p, w in zip(model.parameters(), expected, strict=True):
        np.testing.assert_array_equal(p.data, w)
