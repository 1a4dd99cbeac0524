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
        if "glassnet" in rows:  # ratios divide by numpy, else the case's own base
            base = results["cases"][name]["ratio_to"]
            expected = "fit" if name in ("cli_train", "fit_loop") else "torch"
            assert base == (run.REFERENCE if run.REFERENCE in rows else expected)
            assert rows[base]["ratio"] == pytest.approx(1.0)
            assert rows["glassnet"]["median_s"] > 0
        for row in JAX_ROWS.get(name, ()):  # a JAX row, or why there is none
            assert row in rows or row in skipped, (name, row)
    long = results["cases"]["mlp_long"]["rows"]
    for name in ("glassnet", run.REFERENCE):
        assert len(long[name]["epochs_s"]) == 2
        assert long[name]["ratio"] == long[name]["last_s"] / long[name]["first_s"]


JAX_ROWS = {
    **{name: ("jax jit",) for name in ("iris", "xor", "autoencoder", "cnn")},
    "cnn_small": ("jax jit",),
    "mlp": ("jax jit", "jax scan"),
    "mlp_large_batch": ("jax jit", "jax scan"),
}


def _rows(**medians):
    return {
        name: {"median_s": m, "min_s": m, "max_s": m, "ratio": m} for name, m in
        medians.items()
    }  # fmt: skip


@pytest.mark.parametrize(
    "fields, rows, words, met",
    [
        ({"target": 0.8}, _rows(glassnet=0.7, numpy=1.0), "<= 0.8x numpy", True),
        ({"target": 0.8}, _rows(glassnet=0.9, numpy=1.0), "<= 0.8x numpy", False),
        (
            {"beat": run.PEERS},
            _rows(glassnet=0.5, numpy=1.0, torch=0.6, **{"jax jit": 0.4}),
            "no slower than torch, jax jit",
            False,
        ),
        (
            {"beat": ("torch",)},
            _rows(glassnet=0.5, torch=0.6),
            "no slower than torch",
            True,
        ),  # fmt: skip
        ({"beat": ("torch",)}, _rows(glassnet=0.5), "none", None),
        (
            {"floor": ("GEMMs alone", 1.7)},
            _rows(glassnet=1.8, **{"GEMMs alone": 1.0}),
            "<= 1.7x GEMMs alone",
            False,
        ),  # fmt: skip
        ({"target": 0.8}, _rows(numpy=1.0), "<= 0.8x numpy", None),
    ],
)
def test_targets_are_judged_as_stated(fields, rows, words, met):
    case = run.Case("c", "what", "step", fields.pop("target", None), **fields)
    assert run.judge(case, rows, "numpy") == (words, met)


def test_steadiness_compares_glassnets_slowest_and_fastest_rounds():
    case = run.Case("c", "what", "step", None, steady=1.2)
    rows = {"glassnet": {"median_s": 1.0, "min_s": 1.0, "max_s": 1.3, "ratio": 1.0}}
    assert run.judge(case, rows, "numpy") == ("max/min <= 1.2", False)
    rows["glassnet"]["max_s"] = 1.1
    assert run.judge(case, rows, "numpy")[1] is True


@pytest.mark.parametrize(
    "threads, flags, expected",
    [
        (1, "", run.XLA_ONE_THREAD),
        (1, "--xla_dump_to=/tmp/x", "--xla_dump_to=/tmp/x " + run.XLA_ONE_THREAD),
        (2, "--xla_dump_to=/tmp/x", "--xla_dump_to=/tmp/x"),  # XLA's default pool
        (None, "", ""),
    ],
)
def test_one_thread_adds_xlas_one_thread_flags(threads, flags, expected):
    assert run.xla_flags(threads, flags) == expected


@pytest.mark.parametrize(
    "threads, expected",
    [(1, {2}), (2, {2, 5}), (3, {2, 5, 7}), (8, {2, 5, 7}), (None, {2, 5, 7})],
)
def test_threads_pin_the_process_to_that_many_cpus(threads, expected):
    assert run.pinned_cpus(threads, {7, 2, 5}) == expected


def test_xla_is_limited_before_jax_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", object())
    with pytest.raises(RuntimeError, match="before jax is imported"):
        run.limit_xla_threads(1)


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


def _cnn_small(dtype):
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(8, 1, 28, 28)), rng.integers(0, 10, 8)
    model = run.small_cnn_model(dtype)
    ref = references.SmallCNNReference.from_model(model, lr=0.01)
    return model, "softmax_cross_entropy", gn.SGD(lr=0.01), ref, X, y


@pytest.mark.parametrize(
    "make", [_iris, _xor, _autoencoder, _mlp, _cnn, _cnn_small, _batchnorm, _layernorm]
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
    if name == "cnn_small":
        return rng.normal(size=(4, 1, 28, 28)), rng.integers(0, 10, 4)
    if name in ("lstm", "gru"):
        X, y = run.sequence_data(8, T=7, seed=5)
        return X.astype(np.float64), y
    if name == "transformer":
        return tuple(a.astype(np.float64) for a in run.transformer_data(4, T=6))
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
    step = run.torch_step(torch, net, run.torch_loss(torch, name), opt,
                          torch.from_numpy(X), torch.from_numpy(y))  # fmt: skip
    loss = gn.losses.get_loss(run.TORCH_PAIRS[name][4])
    with gn.Trainer(model, loss, run.glassnet_optimizer(name)) as trainer:
        for _ in range(3):
            assert trainer.step(X, y) == pytest.approx(step(), rel=1e-10, abs=1e-12)
    twins = run.torch_twins(model, net)
    for p, (t, transposed) in zip(model.parameters(), twins, strict=True):
        theirs = t.detach().numpy()
        theirs = theirs.T if transposed else theirs
        np.testing.assert_allclose(p.data, theirs, rtol=1e-9, atol=1e-12)
    assert not np.allclose(
        model.parameters()[0].data,
        run.TORCH_PAIRS[name][0](np.float64).parameters()[0].data,
    )


# -- JAX: the compiled peers do the references' math ------------------------------
#
# float64 (jax.enable_x64), the same weights in both, three steps: losses to
# rel 1e-10 and weights to rtol 1e-9, atol 1e-12, as the glassnet checks above.
# The JAX step is autodiff of the forward pass and the reference hand-derived
# backward, so the two differ only by float64 rounding in a different order
# (log_softmax against log(softmax), fused XLA loops): about 1e-15 relative per
# operation, far below 1e-9 after three steps.


JAX_STEP_CASES = [  # network, the references' table entry, optimizer, lr
    pytest.param("iris", _iris, "sgd", 0.1, id="iris"),
    pytest.param("xor", _xor, "sgd", 1.0, id="xor"),
    pytest.param("autoencoder", _autoencoder, "sgd", 0.1, id="autoencoder"),
    pytest.param("mlp", _mlp, "adam", 1e-3, id="mlp-adam"),
    pytest.param("cnn", _cnn, "sgd", 0.01, id="cnn"),
    pytest.param("cnn_small", _cnn_small, "sgd", 0.01, id="cnn_small"),
]


@pytest.mark.jax
@pytest.mark.parametrize("network, make, optimizer, lr", JAX_STEP_CASES)
def test_jax_step_does_the_references_math(network, make, optimizer, lr):
    jax = pytest.importorskip("jax")
    import jax_references  # noqa: E402  (benchmarks/jax_references.py)

    model, _, _, ref, X, y = make(np.float64)
    params = run.initial_params(model)
    with jax.enable_x64(True):
        stepper = jax_references.JaxStepper(network, params, optimizer, lr, X, y)
        for _ in range(3):
            ours, theirs = stepper.step(), ref.step(X, y)
            assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-12)
        trained = stepper.params()
    assert len(trained) == len(ref.params())
    for got, expected in zip(trained, ref.params(), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(trained[0], params[0])  # the steps moved the weights


@pytest.mark.jax
@pytest.mark.parametrize("epoch", ["epoch_jit", "epoch_scan"])
def test_jax_epochs_are_the_references_steps(epoch):
    """An epoch (a jitted step per batch, or one lax.scan) equals the reference's
    Adam steps over the same batches in the same order, the last one partial."""
    jax = pytest.importorskip("jax")
    import jax_references  # noqa: E402

    model, _, _, ref, _, _ = _mlp(np.float64)
    X, y = run.mlp_data(96)
    X = X.astype(np.float64)
    order = np.random.default_rng(7).permutation(96)
    with jax.enable_x64(True):
        epochs = jax_references.JaxEpochs(
            run.initial_params(model), X, y, 40, np.random.default_rng(7)
        )
        getattr(epochs, epoch)()
        trained = epochs.params()
    for start in range(0, 96, 40):  # batches of 40, 40 and 16
        rows = order[start : start + 40]
        ref.step(X[rows], y[rows])
    for got, expected in zip(trained, ref.params(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
