"""examples/letters_cnn.py and examples/digits_cnn.py run and say what they claim."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_letters_example_tiny(capsys):
    result = load("letters_cnn").main(["--tiny"])
    printed = capsys.readouterr().out
    assert "MaxPool2D(kernel_size=3, stride=3)" in printed and "-> (1, 2, 2)" in printed
    assert 0.0 <= result["accuracy"] <= 1.0
    d_ce, d_mse = result["wrong_prediction_gradients"]
    # a confidently wrong softmax: cross-entropy pushes with p - y, MSE barely moves
    np.testing.assert_allclose(d_ce, [0.9997, -0.9997], atol=1e-4)
    assert np.abs(d_mse).max() < 1e-3
    assert set(result["curves"]) == {
        "cross-entropy on logits",
        "MSE on softmax outputs",
    }


def test_letters_example_plot_flag_writes_the_figure(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    load("letters_cnn").main(["--tiny", "--plot"])
    assert (tmp_path / "letters_losses.png").stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == [
        "letters_losses.png"
    ]  # no temp left


def test_digits_example_tiny(capsys):
    pytest.importorskip("sklearn")
    result = load("digits_cnn").main(["--tiny"])
    assert "-> (32, 2, 2)" in capsys.readouterr().out
    assert np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0


@pytest.mark.slow
def test_letters_example_reaches_100_percent_and_cross_entropy_learns_sooner():
    result = load("letters_cnn").main([])
    assert result["accuracy"] == 1.0
    ce = result["curves"]["cross-entropy on logits"]["val_accuracy"].mean(axis=0)
    mse = result["curves"]["MSE on softmax outputs"]["val_accuracy"].mean(axis=0)
    assert ce[9] > mse[9]  # after 10 epochs of the same plain SGD
    assert ce[-1] == 1.0


@pytest.mark.slow
def test_digits_example_reaches_97_percent():
    pytest.importorskip("sklearn")
    result = load("digits_cnn").main([])
    assert result["accuracy"] >= 0.97
