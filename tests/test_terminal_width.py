"""Every report, the gradcheck table, the progress line and `glassnet demo` fit
the terminal: COLUMNS, else the terminal's size, else 80; to_dict() and
Markdown keep every value."""

import io
import sys
import time

import numpy as np
import pytest

import glassnet as gn
from glassnet._terminal import fit_table, terminal_width
from glassnet.train.callbacks import PrintLogger


def mlp():
    model = gn.Sequential(gn.Dense(4, 16), gn.Tanh(), gn.Dense(16, 3), seed=0)
    return model, np.random.default_rng(0).normal(size=(8, 4))


def cnn():
    model = gn.Sequential(
        gn.Conv2D(1, 4, 3),
        gn.BatchNorm2D(4) if hasattr(gn, "BatchNorm2D") else gn.ReLU(),
        gn.ReLU(),
        gn.MaxPool2D(2),
        gn.Flatten(),
        gn.Dense(4 * 3 * 3, 3),
        seed=0,
    )
    return model, np.random.default_rng(0).normal(size=(4, 1, 8, 8))


def nested():
    block = gn.Sequential(gn.Dense(8, 8), gn.Tanh(), seed=1)
    model = gn.Sequential(gn.Dense(4, 8), gn.Residual(block), gn.Dense(8, 3), seed=0)
    return model, np.random.default_rng(0).normal(size=(6, 4))


def recurrent():
    model = gn.Sequential(
        gn.LSTM(3, 4, return_sequences=True), gn.Flatten(), gn.Dense(24, 3), seed=0
    )
    return model, np.random.default_rng(0).normal(size=(5, 6, 3))


LOSS = "softmax_cross_entropy"
REPORTS = {
    "summary": lambda m, X, y: m.summary(X.shape[1:], batch_size=len(X)),
    "explain": lambda m, X, y: gn.explain(m, X=X, loss=LOSS),
    "gradient_flow": lambda m, X, y: gn.gradient_flow(m, X, y, loss=LOSS),
    "gradcheck": lambda m, X, y: gn.gradcheck(m, X, y, loss=LOSS),
}


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("build", [mlp, cnn, nested, recurrent])
@pytest.mark.parametrize("kind", sorted(REPORTS))
def test_every_report_line_fits_columns(kind, build, columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    model, X = build()
    report = REPORTS[kind](model, X, np.arange(len(X)) % 3)
    lines = str(report).split("\n")
    too_long = [line for line in lines if len(line) > columns]
    assert not too_long, "\n".join(too_long)
    assert len(lines) > 3  # a table was printed


@pytest.mark.parametrize("kind", sorted(REPORTS))
def test_a_narrow_table_keeps_full_precision_in_to_dict(kind, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model, X = cnn()
    report = REPORTS[kind](model, X, np.arange(len(X)) % 3)
    wide = report.to_text(400)
    assert max(len(line) for line in wide.split("\n")) > 80  # 80 had to give way
    assert report.to_dict()  # numbers, not text: untouched by the width
    if hasattr(report, "to_markdown"):
        assert max(len(x) for x in report.to_markdown().split("\n")) > 80


def test_gradcheck_names_the_columns_it_left_out(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model, X = mlp()
    text = str(gn.gradcheck(model, X, np.arange(8) % 3, loss=LOSS))
    left_out = text[text.index("(not shown at this width:") :]
    assert "max rel err" in left_out.split(")")[0]
    # the verdict and how close the gradients are (raw err) stay
    header = next(line for line in text.splitlines() if line.startswith("tensor"))
    assert "raw err" in header and "verdict" in header
    monkeypatch.setenv("COLUMNS", "250")
    assert "not shown" not in str(gn.gradcheck(model, X, np.arange(8) % 3, loss=LOSS))


@pytest.mark.parametrize(
    "env, expected", [("80", 80), ("120", 120), ("abc", None), ("", None)]
)
def test_terminal_width_reads_columns_else_the_terminal_else_80(
    env, expected, monkeypatch
):
    monkeypatch.setenv("COLUMNS", env)
    width = terminal_width()
    if expected is not None:
        assert width == expected
    else:
        assert width > 0  # the terminal running the tests, or 80 without one
        monkeypatch.setattr(sys, "__stdout__", io.StringIO())  # no terminal
        assert terminal_width() == 80


@pytest.mark.parametrize("width", [20, 40, 60])
def test_fit_table_falls_back_to_records_and_still_fits(width):
    header = ["name", "a long column header", "value"]
    rows = [["first", "x" * 70, "1.234567e-05"], ["second", "y y y " * 20, "2"]]
    lines = fit_table(header, rows, width, flex={1}, drop=[])
    assert all(len(line) <= width for line in lines), lines
    assert any("1.234567e-05" in line for line in lines)  # nothing silently lost


def test_glassnet_demo_fits_in_80_columns(monkeypatch, capsys):
    from glassnet.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["demo", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "gradcheck PASSED" in out
    assert all(len(line) <= 80 for line in out.split("\n")), out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class SlowEpochs(gn.Callback):
    def on_epoch_end(self, epoch, logs):
        time.sleep(0.11)  # longer than tqdm's time between redraws


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
def test_progress_line_fits_and_keeps_the_loss(columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
    model.fit(X, y, epochs=3, validation_split=0.2, callbacks=[SlowEpochs()])
    frames = [f.rstrip("\n") for f in terminal.getvalue().split("\r")]
    assert all(len(f) <= columns for f in frames), frames
    assert any(f.startswith("epoch 3/3  loss=") for f in frames), frames


@pytest.mark.parametrize(
    "epochs, every, expected",
    [
        (300, None, 26),  # every 12th, plus the first
        (10, None, 10),
        (25, None, 25),
        (100, 10, 11),
        (7, 3, 4),  # 1, 3, 6 and the last
    ],
)
def test_verbose_2_prints_a_bounded_number_of_lines(
    epochs, every, expected, monkeypatch, capsys
):
    monkeypatch.setenv("COLUMNS", "80")
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    logger = [PrintLogger(every)] if every else []
    verbose = 0 if every else 2
    model.fit(X, y, epochs=epochs, callbacks=logger, verbose=verbose)
    lines = capsys.readouterr().err.strip().split("\n")
    assert len(lines) == expected, lines
    assert lines[0].startswith(f"epoch 1/{epochs}")
    assert lines[-1].startswith(f"epoch {epochs}/{epochs}")
    assert all(len(line) <= 80 for line in lines)


def test_verbose_2_prints_the_epoch_early_stopping_ended_on(capsys):
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    stop = gn.EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
    history = model.fit(X, y, epochs=300, callbacks=[stop], verbose=2)
    lines = capsys.readouterr().err.strip().split("\n")
    assert lines[-1].startswith(f"epoch {len(history)}/300"), lines
