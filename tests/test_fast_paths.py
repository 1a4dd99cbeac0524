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


# -- the per-step shortcuts of the tiny networks (xor, autoencoder) ----------------


def _neg_log_softmax(z: np.ndarray) -> np.ndarray:
    """-log softmax(z) for two columns in float64, from the difference d of the
    other logit and this one: log(1 + e^d), as d + log1p(e^-d) where d > 0."""
    z = np.asarray(z, np.float64)
    d = z[:, ::-1] - z  # exact for float32 logits
    with np.errstate(over="ignore"):
        return np.where(d > 0, d + np.log1p(np.exp(-d)), np.log1p(np.exp(d)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "logits, expected",
    [
        ([[0.0, 0.0]], [[np.log(2.0), np.log(2.0)]]),
        ([[np.log(1.0), np.log(3.0)]], [[np.log(4.0), np.log(4.0 / 3.0)]]),
        ([[1e4, -1e4], [-1e4, 1e4]], [[0.0, 2e4], [2e4, 0.0]]),  # exact tails
        ([[-np.inf, 3.0]], [[np.inf, 0.0]]),  # a masked logit
        ([[0.3, -1.2], [5.0, 4.5], [-7.0, 2.0]], None),  # against the textbook
    ],
)
def test_binary_log_loss_is_minus_log_softmax(logits, expected, dtype):
    z = np.array(logits, dtype)
    got = _kernels.binary_log_loss(z)
    want = _neg_log_softmax(z) if expected is None else np.array(expected)
    assert got.dtype == dtype and got.shape == z.shape
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "target", ["labels", "one-hot", "soft", "unnormalised", "weights"]
)
def test_two_class_softmax_cross_entropy_equals_the_textbook(target, dtype, rng):
    """Two classes take binary_log_loss; loss and gradient are those of the
    general formula -sum(c * y * log softmax(z)), dL/dz = c * (p * sum(y) - y)."""
    z = rng.normal(scale=3.0, size=(7, 2)).astype(dtype)
    labels = rng.integers(0, 2, 7)
    y = {
        "labels": np.eye(2)[labels],
        "one-hot": np.eye(2)[labels],
        "soft": rng.dirichlet(np.ones(2), 7),
        "unnormalised": rng.uniform(0, 1, (7, 2)),
        "weights": np.eye(2)[labels],
    }[target]
    weights = rng.uniform(0.5, 2.0, 7) if target == "weights" else None
    c = (
        np.full((7, 1), 1 / 7)
        if weights is None
        else (weights / weights.sum())[:, None]
    )
    nll = _neg_log_softmax(z)
    p = np.exp(-nll)
    loss = gn.SoftmaxCrossEntropy()
    given = labels if target == "labels" else y.astype(dtype)
    value = loss.forward(z, given, weights)
    grad = loss.backward()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(float(np.sum(c * y * nll)), rel=rtol)
    expected = c * (p * y.sum(axis=1, keepdims=True) - y)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, expected, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize(
    "make_out",
    [
        lambda shape: np.empty(shape),  # float64: the C function's own dtype
        lambda shape: np.empty(shape, np.float32),  # another dtype: matmul casts
        lambda shape: np.empty(shape[::-1]).T,  # not C-contiguous
    ],
    ids=["same", "cast", "strided"],
)
def test_matmul_kernel_writes_any_out_np_matmul_takes(make_out, rng):
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    out = make_out((5, 4))
    assert _kernels.matmul(a, b, out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
    np.testing.assert_allclose(_kernels.matmul(a, b), a @ b, rtol=1e-14)


def test_dense_backward_fills_a_strided_gradient_the_user_bound(rng):
    """A weight gradient bound to a transposed view is filled through np.matmul
    (np.dot writes only C-contiguous arrays); the values are the same."""
    layer = gn.Dense(3, 4, rng=rng, dtype=np.float64)
    x, dout = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    layer.forward(x)
    layer.weight.grad = np.zeros((4, 3)).T  # (3, 4), Fortran order
    dx = layer.backward(dout)
    np.testing.assert_allclose(layer.weight.grad, x.T @ dout, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, dout.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(dx, dout @ layer.weight.data.T, rtol=1e-13)


@pytest.mark.parametrize(
    "pred, target, expected_dtype",
    [
        (
            np.array([[1.0, 2.0]], np.float32),
            np.array([[0.0, 0.0]], np.float32),
            np.float32,
        ),
        (np.array([[1, 2]]), np.array([[0, 0]]), np.float64),  # integers: floats out
    ],
)
def test_mse_gradient_keeps_the_dtype_and_is_2_diff_over_n(
    pred, target, expected_dtype
):
    loss = gn.MeanSquaredError()
    assert loss.forward(pred, target) == pytest.approx(2.5)
    grad = loss.backward()
    assert grad.dtype == expected_dtype
    np.testing.assert_array_equal(grad, [[1.0, 2.0]])  # 2 * diff / 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lr", [1.0, 0.1, 0.003])
def test_sgd_update_is_data_minus_lr_times_grad_bitwise(lr, dtype, rng):
    """SGD multiplies by lr as a 0-d array of the dtype: the same rounding as the
    Python float NumPy converts to that dtype."""
    p = gn.Parameter(rng.normal(size=(3, 2)).astype(dtype), "w")
    p.grad = rng.normal(size=(3, 2)).astype(dtype)
    expected = p.data - p.grad * lr
    gn.SGD(lr=lr).step([p])
    assert p.data.dtype == dtype
    np.testing.assert_array_equal(p.data, expected)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_two_class_loss_of_a_masked_logit_raises_no_floating_point_error(n):
    """A -inf logit (a masked class) that is never the label: the loss and the
    gradient are those of the other class alone, with no NumPy error flag on
    the way (a BLAS product of the logits raised one for n < 4)."""
    z = np.ones((n, 2), np.float32)
    z[0, 0] = -np.inf
    loss = gn.SoftmaxCrossEntropy()
    with np.errstate(all="raise"):
        value = loss(z, np.ones(n, int))
        grad = loss.backward()
    assert value == pytest.approx((n - 1) * np.log(2.0) / n, rel=1e-6)
    np.testing.assert_array_equal(grad[0], [0.0, 0.0])
    np.testing.assert_allclose(grad[1:], np.tile([0.5, -0.5], (n - 1, 1)) / n)


def test_two_class_loss_of_integer_logits_is_float64():
    """Integer logits give the float64 result, as the general softmax path does."""
    z = np.array([[0, 3], [-2, 2]])
    got = _kernels.binary_log_loss(z)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _neg_log_softmax(z), rtol=1e-14)
    loss = gn.SoftmaxCrossEntropy()
    expected = (got[0, 1] + got[1, 0]) / 2  # labels 1 and 0
    assert loss(z, np.array([1, 0])) == pytest.approx(expected, rel=1e-14)
    assert loss.backward().dtype == np.float64
