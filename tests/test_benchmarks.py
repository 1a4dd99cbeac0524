"""The benchmark suite runs, and its hand-written references do glassnet's math.

Speed is never asserted here: benchmarks/run.py measures it, benchmarks/README.md
records it.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import references  # noqa: E402  (benchmarks/references.py)
import run  # noqa: E402  (benchmarks/run.py)


def test_quick_run_prints_every_case(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for case in run.CASES:
        assert f"\n{case}: " in done.stdout, f"case {case} not printed"
    assert "summary: glassnet against its targets" in done.stdout
    for fact in ("numpy", "blas", "blas_threads", "OPENBLAS_CORETYPE", "cpu"):
        assert f"  {fact}: " in done.stdout
    results = json.loads(out.read_text())
    assert set(results["cases"]) == set(run.CASES)
    for name in run.TIMED_CASES:
        rows = results["cases"][name]["rows"]
        skipped = results["cases"][name]["skipped"]
        assert "glassnet" in rows or "glassnet" in skipped, name
        if "glassnet" in rows:  # ratios divide by numpy, or torch where no numpy
            base = results["cases"][name]["ratio_to"]
            assert base == (run.REFERENCE if run.REFERENCE in rows else "torch")
            assert rows[base]["ratio"] == pytest.approx(1.0)
            assert rows["glassnet"]["median_s"] > 0


def test_cases_and_flags_are_validated():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--cases", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "invalid choice: 'nonsense'" in done.stderr


def _iris(dtype):
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip
    ref = references.IrisReference(run.dense_weights(model), lr=0.1)
    return model, "softmax_cross_entropy", gn.SGD(lr=0.1), ref, X, y


def _xor(dtype):
    X, y = gn.datasets.make_xor()
    model = gn.Sequential.from_sizes(
        [2, 2, 2], activations=["sigmoid", "softmax"], seed=0, dtype=dtype
    )
    ref = references.XorReference(run.dense_weights(model), lr=1.0)
    return model, "cross_entropy", gn.SGD(lr=1.0), ref, X, y


def _autoencoder(dtype):
    X = np.random.default_rng(1).normal(size=(32, 64))
    model = gn.Sequential(
        gn.Dense(64, 32), gn.Sigmoid(), gn.Dense(32, 64), gn.Sigmoid(),
        gn.Dense(64, 64), seed=0, dtype=dtype,
    )  # fmt: skip
    ref = references.AutoencoderReference(run.dense_weights(model), lr=0.1)
    return model, "mse", gn.SGD(lr=0.1), ref, X, X


def _mlp(dtype):
    X, y = run.mlp_data(64)
    model = gn.Sequential(
        gn.Dense(784, 256), gn.ReLU(), gn.Dense(256, 128), gn.ReLU(),
        gn.Dense(128, 10), seed=0, dtype=dtype,
    )  # fmt: skip
    ref = references.MLPReference(run.dense_weights(model))
    return model, "softmax_cross_entropy", gn.Adam(), ref, X, y


def _cnn(dtype):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(8, 1, 28, 28)), rng.integers(0, 10, 8)
    model = gn.Sequential(
        gn.Conv2D(1, 6, 5), gn.ReLU(), gn.MaxPool2D(2),
        gn.Conv2D(6, 16, 5), gn.ReLU(), gn.MaxPool2D(2), gn.Flatten(),
        gn.Dense(256, 120), gn.ReLU(), gn.Dense(120, 84), gn.ReLU(),
        gn.Dense(84, 10), seed=0, dtype=dtype,
    )  # fmt: skip
    ref = references.LeNetReference.from_model(model, lr=0.01)
    return model, "softmax_cross_entropy", gn.SGD(lr=0.01), ref, X, y


def _batchnorm(dtype):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(16, 64)), rng.integers(0, 10, 16)
    model = run.batchnorm_model(dtype)
    ref = references.BatchNormMLPReference.from_model(model, lr=0.1)
    return model, "softmax_cross_entropy", gn.SGD(lr=0.1), ref, X, y


def _layernorm(dtype):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(16, 64)), rng.integers(0, 10, 16)
    model = run.layernorm_model(dtype)
    ref = references.LayerNormMLPReference.from_model(model, lr=0.1)
    return model, "softmax_cross_entropy", gn.SGD(lr=0.1), ref, X, y


@pytest.mark.parametrize(
    "make", [_iris, _xor, _autoencoder, _mlp, _cnn, _batchnorm, _layernorm]
)
def test_reference_does_glassnets_math(make):
    """Same weights in both, three training steps: same losses, same weights."""
    model, loss, optimizer, ref, X, y = make(np.float64)
    with gn.Trainer(model, gn.losses.get_loss(loss), optimizer) as trainer:
        for _ in range(3):
            ours, theirs = trainer.step(X, y), ref.step(X, y)
            assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-12)
    params = model.parameters()
    assert len(params) == len(ref.params())
    for p, expected in zip(params, ref.params(), strict=True):
        np.testing.assert_allclose(p.data, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(params[0].data, make(np.float64)[0].parameters()[0].data)


def test_fit_epoch_is_the_reference_steps():
    """The mlp case times model.fit: an epoch of fit (in order) equals the
    reference's steps over the same batches."""
    model, loss, optimizer, ref, _, _ = _mlp(np.float64)
    X, y = run.mlp_data(96)
    model.fit(X, y, loss=loss, optimizer=optimizer, batch_size=40, shuffle=False,
              verbose=0)  # fmt: skip
    for start in range(0, 96, 40):  # batches of 40, 40 and 16
        ref.step(X[start : start + 40], y[start : start + 40])
    for p, expected in zip(model.parameters(), ref.params(), strict=True):
        np.testing.assert_allclose(p.data, expected, rtol=1e-9, atol=1e-12)


def _torch_case_data(name):
    rng = np.random.default_rng(5)
    if name == "conv1d":
        return rng.normal(size=(8, 1, 40)), rng.integers(0, 4, 8)
    if name == "gru":
        return run.sequence_data(8, T=7, seed=5)
    return rng.normal(size=(16, 64)), rng.integers(0, 10, 16)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(run.TORCH_PAIRS))
def test_torch_module_does_glassnets_math(name):
    """The PyTorch rows of the layer cases (the only comparison conv1d and gru
    have): same weights, three steps in float64, same losses and weights."""
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    try:
        model = run.TORCH_PAIRS[name][0](np.float64)
        net, opt = run.torch_pair(torch, name, model)
    finally:
        torch.set_default_dtype(torch.float32)
    X, y = _torch_case_data(name)
    step = run.torch_step(torch, net, torch.nn.CrossEntropyLoss(), opt,
                          torch.from_numpy(X), torch.from_numpy(y))  # fmt: skip
    loss = gn.losses.get_loss("softmax_cross_entropy")
    with gn.Trainer(model, loss, run.glassnet_optimizer(name)) as trainer:
        for _ in range(3):
            assert trainer.step(X, y) == pytest.approx(step(), rel=1e-10, abs=1e-12)
    for p, t in zip(model.parameters(), net.parameters(), strict=True):
        theirs = t.detach().numpy()
        theirs = theirs if theirs.shape == p.data.shape else theirs.T
        np.testing.assert_allclose(p.data, theirs, rtol=1e-9, atol=1e-12)
    assert not np.allclose(
        model.parameters()[0].data,
        run.TORCH_PAIRS[name][0](np.float64).parameters()[0].data,
    )
