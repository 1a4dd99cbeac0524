"""Progress output: fit and gradcheck show a bar on a terminal only, with the
loss and metrics per epoch; pipes and logs stay clean."""

import fcntl
import importlib
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

import glassnet as gn

gradcheck_module = importlib.import_module("glassnet.check.gradcheck")


class Terminal(io.StringIO):
    """An in-memory stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def fake_terminal(monkeypatch) -> Terminal:
    """Make sys.stderr a Terminal for the rest of the test. Called in the test body:
    pytest's output capture resets sys.stderr between fixture setup and the call."""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def iris_model():
    X, y = gn.datasets.load_iris()
    return gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0), X, y


class SlowEpochs(gn.Callback):
    """Epochs longer than tqdm's 0.1 s between redraws, so every epoch is drawn."""

    def on_epoch_end(self, epoch, logs):
        time.sleep(0.12)


FRAME = re.compile(
    r"epoch (\d+)/3  loss=(\S+) accuracy=(\S+) val_loss=(\S+) val_accuracy=(\S+)  "
)


@pytest.mark.parametrize("verbose", ["auto", 1])
def test_fit_bar_on_a_terminal_shows_loss_and_metrics(verbose, monkeypatch):
    terminal = fake_terminal(monkeypatch)
    model, X, y = iris_model()
    model.fit(
        X, y, epochs=3, validation_split=0.2, verbose=verbose, callbacks=[SlowEpochs()]
    )
    frames = FRAME.findall(terminal.getvalue())
    assert [int(f[0]) for f in frames] == [1, 2, 3]
    history = model.history
    for k, *values in frames:  # each frame shows its own epoch's numbers
        i = int(k) - 1
        names = ("loss", "accuracy", "val_loss", "val_accuracy")
        assert values == [f"{history[name][i]:.4g}" for name in names]


@pytest.mark.parametrize("verbose", ["auto", 1, 0])
def test_fit_is_silent_when_stderr_is_not_a_terminal(verbose, capsys):
    model, X, y = iris_model()
    model.fit(X, y, epochs=3, verbose=verbose)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_fit_verbose_0_is_silent_even_on_a_terminal(monkeypatch):
    terminal = fake_terminal(monkeypatch)
    model, X, y = iris_model()
    model.fit(X, y, epochs=3, verbose=0)
    assert terminal.getvalue() == ""


def test_fit_verbose_2_logs_one_line_per_epoch(capsys):
    model, X, y = iris_model()
    model.fit(X, y, epochs=4, verbose=2)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("epoch 1/4") and "loss=" in lines[0]
    assert "accuracy=" in lines[-1]


def test_estimator_verbose_reaches_fit(capsys):
    pytest.importorskip("sklearn")
    from glassnet.sklearn import GlassClassifier

    _, X, y = iris_model()
    GlassClassifier(hidden_layer_sizes=(4,), epochs=3, verbose=2).fit(X, y)
    assert len(capsys.readouterr().err.splitlines()) == 3
    GlassClassifier(hidden_layer_sizes=(4,), epochs=3).fit(X, y)
    assert capsys.readouterr().err == ""


def large_model():
    """Enough tensor entries for well over a thousand evaluations of the loss."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.Dense(20, 30), gn.Tanh(), gn.Dense(30, 10), dtype=np.float64
    )
    return model, rng.normal(size=(8, 20)), rng.integers(0, 10, 8)


@pytest.fixture
def no_delay(monkeypatch):
    monkeypatch.setattr(gradcheck_module, "_PROGRESS_DELAY_S", 0.0)


def test_gradcheck_on_a_large_model_shows_a_bar_on_a_terminal(monkeypatch, no_delay):
    calls = []
    evaluate = gradcheck_module._Objective.__call__

    def counted(objective):
        calls.append(1)
        return evaluate(objective)

    monkeypatch.setattr(gradcheck_module._Objective, "__call__", counted)
    terminal = fake_terminal(monkeypatch)
    model, X, y = large_model()
    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert report.passed
    shown = terminal.getvalue()
    totals = {int(t) for t in re.findall(r"gradcheck:.*?\d+/(\d+)", shown)}
    # one bar, whose total is the number of evaluations the check makes (a sampled
    # tensor may check one entry less: its largest entry can be among the sample)
    assert len(totals) == 1 and len(calls) >= 1000
    assert 0 <= totals.pop() - len(calls) <= 2 * len(report.rows)


def test_gradcheck_of_a_small_model_shows_no_bar(monkeypatch, no_delay):
    terminal = fake_terminal(monkeypatch)
    model, X, y = iris_model()
    gn.gradcheck(model, X[:10], y[:10], loss="softmax_cross_entropy")
    assert terminal.getvalue() == ""


def test_gradcheck_is_silent_when_stderr_is_not_a_terminal(capsys, no_delay):
    model, X, y = large_model()
    gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert capsys.readouterr().err == ""


SCRIPT = """
import time
import glassnet as gn
X, y = gn.datasets.load_iris()
model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
class Slow(gn.Callback):
    def on_epoch_end(self, epoch, logs):
        time.sleep(0.12)  # longer than tqdm's time between redraws
model.fit(X, y, epochs=5, validation_split=0.2, callbacks=[Slow()])
print("done")
"""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_real_terminal_gets_the_bar_and_a_pipe_does_not():
    piped = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "done\n" and piped.stderr == ""

    leader, follower = os.openpty()
    rows_cols = struct.pack("HHHH", 24, 80, 0, 0)  # a new pty has no size: give one
    fcntl.ioctl(follower, termios.TIOCSWINSZ, rows_cols)
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=follower
    )
    shown = b""
    try:  # read as it comes (a full terminal buffer would block the child) and keep
        # our end open until the child exits, so that nothing written is lost
        while child.poll() is None or select.select([leader], [], [], 0)[0]:
            if select.select([leader], [], [], 0.05)[0]:
                shown += os.read(leader, 65536)
    finally:
        os.close(follower)
        os.close(leader)
    stdout = child.communicate(timeout=120)[0]
    assert child.returncode == 0
    assert stdout == b"done\n"  # results stay on stdout, progress on stderr
    frames = [f for f in shown.decode().split("\r") if f.startswith("epoch 5/5")]
    assert frames, shown  # the last epoch was drawn ...
    assert "loss=" in frames[-1]
    assert (
        "val_loss=" in frames[-1] and "val_accuracy=" in frames[-1]
    )  # ... in 80 columns
    assert all(len(f.rstrip("\n")) <= 80 for f in shown.decode().split("\r"))
