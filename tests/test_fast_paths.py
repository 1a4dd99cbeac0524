"""The shortcuts taken for speed compute exactly what they replace.

Each fast path (glassnet/_kernels.py, the fused Softmax + cross-entropy in
Trainer, the blockwise finiteness check) against the plain NumPy it stands for.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet import _kernels
from glassnet._validation import _all_finite


@pytest.mark.parametrize("shape", [(1, 1), (4, 2), (150, 3), (128, 10), (7, 300)])
def test_kernels_match_numpy_reductions(shape, rng):
    a = rng.normal(size=shape)
    np.testing.assert_allclose(_kernels.column_sums(a), a.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(_kernels.row_sums(a), a.sum(axis=1), rtol=1e-13)
    np.testing.assert_array_equal(_kernels.row_max(a), a.max(axis=1))
    out = np.empty(shape[1])
    assert _kernels.column_sums(a, out=out) is out


def test_one_hot_rows_and_the_shared_arrays_are_read_only():
    labels = np.array([2, 0, 1, 2])
    expected = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    got = _kernels.one_hot(labels, 3, np.dtype(np.float32))
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32 and got.flags.writeable  # a fresh array
    ones = _kernels.ones(5, np.dtype(np.float64))
    assert ones is _kernels.ones(5, np.dtype(np.float64))  # shared...
    with pytest.raises(ValueError):
        ones[0] = 2.0  # ...so nobody may write to it


@pytest.mark.parametrize("where", [0, 65535, 65536, 150_000 - 1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_blockwise_finite_check_finds_every_bad_value(where, bad):
    x = np.ones((1000, 150), np.float32)  # 150,000 values: three blocks of 64K
    assert _all_finite(x)
    x.flat[where] = bad
    assert not _all_finite(x) and not np.isfinite(x).all()


def _softmax_model(dtype=np.float64):
    return gn.Sequential.from_sizes(
        [3, 4, 3], activations=["tanh", "softmax"], seed=1, dtype=dtype
    )


@pytest.mark.parametrize("target", ["labels", "one-hot", "soft", "unnormalised"])
def test_fused_softmax_cross_entropy_equals_the_layer_by_layer_step(target, rng):
    """Trainer differentiates a final Softmax and CrossEntropy together; the
    weights after three steps are those of the unfused chain."""
    X = rng.normal(size=(6, 3))
    labels = rng.integers(0, 3, 6)
    y = {
        "labels": labels,
        "one-hot": np.eye(3)[labels],
        "soft": rng.dirichlet(np.ones(3), 6),
        "unnormalised": rng.uniform(0, 1, (6, 3)),  # rows need not sum to 1
    }[target]
    fused, plain = _softmax_model(), _softmax_model()
    loss = gn.CrossEntropy()
    with gn.Trainer(fused, loss, gn.SGD(lr=0.5)) as trainer:
        assert trainer._fused_softmax
        values = [trainer.step(X, y) for _ in range(3)]
    optimizer = gn.SGD(lr=0.5)
    for value in values:
        out = plain.forward(X, training=True)
        assert loss.forward(out, y) == pytest.approx(value, rel=1e-12)
        plain.backward(loss.backward())
        optimizer.step(plain.parameters())
    for p, q in zip(fused.parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14)


def test_fused_path_reports_probabilities_as_the_output(rng):
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    model = _softmax_model()
    with gn.Trainer(model, gn.CrossEntropy(), gn.SGD(lr=0.1)) as trainer:
        trainer.step(X, y)
        probs = trainer.last_output.copy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    assert probs.shape == (5, 3) and (probs > 0).all()


def test_softmax_cross_entropy_gradient_with_rows_not_summing_to_one(rng):
    """dL/dz = p * sum(y) - y, not p - y, when a target row does not sum to 1."""
    z, y = rng.normal(size=(4, 3)), rng.uniform(0, 2, (4, 3))
    loss = gn.SoftmaxCrossEntropy()

    def value(arrays):
        return loss.forward(arrays["z"], y)

    def grad(arrays):
        loss.forward(arrays["z"], y)
        return {"z": loss.backward()}

    report = gn.gradcheck(value, {"z": z}, grad=grad)
    assert report.passed, str(report)


# -- tiny networks: the shortcuts of the per-step and per-fit overhead work ------


@pytest.mark.parametrize(
    "dtype, x",
    [
        (np.float32, [[-1000.0, -3.5, 0.0], [0.25, 7.0, 1000.0]]),
        (np.float64, [[-1000.0, -3.5, 0.0], [0.25, 7.0, 1000.0]]),
        (np.int64, [[-3, 0, 2]]),  # integers: the float64 result, as before
    ],
)
def test_sigmoid_with_shared_constants_is_bitwise_the_formula(dtype, x):
    x = np.array(x, dtype)
    expected = 0.5 * (1.0 + np.tanh(x * 0.5))  # the documented formula
    got = _kernels.sigmoid(x)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_is_a_shared_read_only_0d_array_of_the_dtype(dtype):
    half = _kernels.constant(0.5, np.dtype(dtype))
    assert half.shape == () and half.dtype == dtype and float(half) == 0.5
    assert half is _kernels.constant(0.5, np.dtype(dtype))
    with pytest.raises(ValueError):
        half[()] = 1.0
    a = np.ones(3, dtype)
    assert (a * half).dtype == dtype  # keeps the operand's dtype, as 0.5 does


def test_tanh_backward_with_the_shared_one_keeps_float32(rng):
    layer = gn.Tanh()
    x = rng.normal(size=(4, 3)).astype(np.float32)
    out = layer.forward(x)
    dout = rng.normal(size=(4, 3)).astype(np.float32)
    dx = layer.backward(dout)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, (1.0 - out * out) * dout)


def _nested_model():
    inner = gn.Sequential(gn.Dense(3, 3), gn.Tanh())
    return gn.Sequential(
        gn.Dense(2, 3), gn.Residual(inner), gn.Dropout(0.5), gn.Dense(3, 2), seed=0
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: gn.Sequential(gn.Dense(2, 3), gn.Sigmoid(), gn.Dense(3, 2), seed=0),
        _nested_model,
        lambda: gn.Sequential(seed=0),
    ],
    ids=["flat", "nested", "empty"],
)
def test_one_walk_gives_named_parameters_and_every_layer(make):
    from glassnet.nn.layers.base import walk

    model = make()
    named, layers = walk(model)
    assert [(n, id(p)) for n, p in named] == [
        (n, id(p)) for n, p in model.named_parameters()
    ]
    assert [id(layer) for layer in layers] == [id(model)] + [
        id(layer) for _, layer in model.named_layers()
    ]


def test_set_training_reaches_every_depth_and_back():
    model = _nested_model()
    for training in (True, False):
        model.set_training(training)
        everything = [model] + [layer for _, layer in model.named_layers()]
        assert all(layer.training is training for layer in everything)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.ones((3, 2), np.float32), None, None),
        (np.array([[1.0, np.nan]], np.float32), gn.DataError, r"got nan at index"),
        (np.ones(2, np.float32), gn.ShapeError, r"expected a 2-D array"),
        (np.ones((3, 2), np.float64), None, None),  # converted, a new array
        (np.asfortranarray(np.ones((3, 2), np.float32)), None, None),
    ],
)
def test_as_float_array_shortcut_keeps_every_check(X, error, match):
    from glassnet._validation import as_float_array

    if error is not None:
        with pytest.raises(error, match=match):
            as_float_array(X, "X", np.float32, ndim=2)
        return
    out = as_float_array(X, "X", np.float32, ndim=2)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    ready = X.dtype == np.float32 and X.flags.c_contiguous
    assert (out is X) is ready  # returned as is only when nothing was to do
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("labels", ["checked", "padding"])
def test_fit_accuracy_with_labels_checked_once_equals_accuracy(labels, rng):
    from glassnet.train import loop
    from glassnet.train.metrics import accuracy

    out = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, 6)
    if labels == "padding":
        y[1] = -1  # skipped by accuracy: the shortcut must not be taken
    metrics = loop._metrics(["accuracy"], gn.SoftmaxCrossEntropy())
    loop._trust_checked_labels(metrics, y)
    assert (metrics["accuracy"] is accuracy) is (labels == "padding")
    assert metrics["accuracy"](out, y, 0.5) == accuracy(out, y, 0.5)


def test_validation_loss_in_fit_includes_the_penalty_as_evaluate_does(rng):
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    model = gn.Sequential(
        gn.Dense(4, 5, l2=0.1), gn.Tanh(), gn.Dense(5, 3, l2=0.05), seed=0
    )
    history = model.fit(
        X, y, epochs=1, batch_size=8, validation_data=(X[:10], y[:10]), verbose=0
    )
    expected = model.evaluate(X[:10], y[:10])["loss"]
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_stratified_split_does_not_import_numpy_ma():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, glassnet as gn\n"
        "before = 'numpy.ma' in sys.modules\n"
        "gn.datasets.train_test_split(np.zeros((9, 2)), np.arange(9) % 3, 0.3,"
        " seed=0)\n"
        "print(before, 'numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
