"""Are all gradients right? Every layer and every loss against finite differences.

Everything here runs in float64 and asks for a max relative error <= 1e-7.
Layers are checked with gn.gradcheck (input and every parameter); losses with
gn.gradcheck in function mode, comparing loss.backward() with central
differences of the number loss.forward() reports.
"""

import numpy as np
import pytest

import glassnet as gn

THRESHOLD = 1e-7
BATCH_SIZES = [1, 3, 17]


def away_from_zero(rng, shape, low=0.1, high=1.5):
    """Values with |x| in [low, high): a step of eps never crosses ReLU's kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


# -- layers --------------------------------------------------------------------

LAYER_CASES = [
    pytest.param(lambda rng: gn.Dense(4, 3, rng=rng, dtype=np.float64), 4, id="dense"),
    pytest.param(
        lambda rng: gn.Dense(1, 5, rng=rng, dtype=np.float64), 1, id="dense-1in"
    ),
    pytest.param(lambda rng: gn.Sigmoid(), 6, id="sigmoid"),
    pytest.param(lambda rng: gn.Tanh(), 6, id="tanh"),
    pytest.param(lambda rng: gn.ReLU(), 6, id="relu"),
    pytest.param(lambda rng: gn.LeakyReLU(0.1), 6, id="leaky_relu"),
    pytest.param(lambda rng: gn.Identity(), 6, id="identity"),
    pytest.param(lambda rng: gn.Softmax(), 5, id="softmax"),
    pytest.param(lambda rng: gn.Softmax(), 1, id="softmax-1class"),
    # layers that hold layers: every tensor at every depth gets a row
    pytest.param(
        lambda rng: gn.Residual(
            gn.Sequential(
                gn.Dense(4, 6, rng=rng, dtype=np.float64),
                gn.Tanh(),
                gn.Dense(6, 4, rng=rng, dtype=np.float64),
            )
        ),
        4,
        id="residual",
    ),
    pytest.param(
        lambda rng: gn.Concat(
            gn.Dense(4, 2, rng=rng, dtype=np.float64),
            gn.Sequential(gn.Dense(4, 3, rng=rng, dtype=np.float64), gn.Tanh()),
        ),
        4,
        id="concat",
    ),
    pytest.param(
        lambda rng: gn.Sequential(
            gn.Dense(4, 5),
            gn.Tanh(),
            gn.Sequential(gn.Dense(5, 3), gn.Sigmoid(), gn.Sequential(gn.Dense(3, 2))),
            seed=int(rng.integers(1000)),
            dtype=np.float64,
        ),
        4,
        id="nested-sequential",
    ),
]


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("make_layer, features", LAYER_CASES)
def test_layer_backward_matches_finite_differences(make_layer, features, batch, rng):
    layer = make_layer(rng)
    for name, p in layer.named_parameters():  # a bias gradient of 0 proves nothing
        if name.endswith("bias"):
            p.data = rng.normal(size=p.shape)
    x = away_from_zero(rng, (batch, features))
    report = gn.gradcheck(layer, x)
    names = ["input"] + [name for name, _ in layer.named_parameters()]
    assert [row.name for row in report.rows] == names
    assert len(set(names)) == len(names) == 1 + len(layer.parameters())
    assert report.passed, str(report)
    assert report.worst().max_error <= THRESHOLD
    assert all(row.kinks == 0 for row in report.rows), str(report)
    assert all(row.checked == row.total for row in report.rows)


def test_gradcheck_reports_float32_upcast(rng):
    layer = gn.Dense(3, 2, rng=rng)  # float32 by default
    report = gn.gradcheck(layer, rng.normal(size=(4, 3)))
    assert report.passed, str(report)
    assert any("float64" in note for note in report.notes)
    assert layer.weight.data.dtype == np.float32  # the check ran on a copy


# -- losses --------------------------------------------------------------------


def _probs(rng, n, k):
    p = rng.uniform(0.05, 1.0, (n, k))
    return p / p.sum(axis=1, keepdims=True)


# Each case: (loss class, make (pred, target) for a batch of n).
LOSS_CASES = [
    pytest.param(
        gn.MeanSquaredError,
        lambda rng, n: (rng.normal(size=(n, 3)), rng.normal(size=(n, 3))),
        id="mse",
    ),
    pytest.param(
        gn.MeanSquaredError,
        lambda rng, n: (rng.normal(size=(n, 1)), rng.normal(size=(n, 1))),
        id="mse-1out",
    ),
    pytest.param(
        gn.CrossEntropy,
        lambda rng, n: (_probs(rng, n, 4), rng.integers(0, 4, n)),
        id="cross_entropy-labels",
    ),
    pytest.param(
        gn.CrossEntropy,
        lambda rng, n: (_probs(rng, n, 4), np.eye(4)[rng.integers(0, 4, n)]),
        id="cross_entropy-onehot",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 2, (n, 4)), rng.integers(0, 4, n)),
        id="softmax_ce-labels",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 2, (n, 4)), np.eye(4)[rng.integers(0, 4, n)]),
        id="softmax_ce-onehot",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 2, (n, 4)), _probs(rng, n, 4)),
        id="softmax_ce-soft",
    ),
    pytest.param(
        gn.BinaryCrossEntropy,
        lambda rng, n: (rng.uniform(0.05, 0.95, (n, 1)), rng.integers(0, 2, (n, 1))),
        id="bce",
    ),
    pytest.param(
        gn.BinaryCrossEntropy,
        lambda rng, n: (rng.uniform(0.05, 0.95, (n, 3)), rng.uniform(0, 1, (n, 3))),
        id="bce-soft-3out",
    ),
    pytest.param(
        gn.BinaryCrossEntropyWithLogits,
        lambda rng, n: (rng.normal(0, 2, (n, 1)), rng.integers(0, 2, (n, 1))),
        id="bce_logits",
    ),
    pytest.param(
        gn.BinaryCrossEntropyWithLogits,
        lambda rng, n: (rng.normal(0, 2, (n, 3)), rng.uniform(0, 1, (n, 3))),
        id="bce_logits-soft-3out",
    ),
]


def check_loss(loss: gn.Loss, pred: np.ndarray, target: np.ndarray):
    """gradcheck of loss.backward() against central differences of loss.forward()."""
    target = loss.prepare_target(target, pred.shape, np.float64)

    def value(arrays):
        return loss.forward(arrays["pred"], target)

    def gradient(arrays):
        loss.forward(arrays["pred"], target)
        return {"pred": loss.backward()}

    return gn.gradcheck(value, {"pred": pred}, grad=gradient)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("loss_cls, make_data", LOSS_CASES)
def test_loss_backward_is_derivative_of_forward(
    loss_cls, make_data, batch, reduction, rng
):
    pred, target = make_data(rng, batch)
    report = check_loss(loss_cls(reduction=reduction), pred, target)
    assert report.passed, str(report)
    row = report["pred"]
    assert row.max_error <= THRESHOLD
    assert row.checked == row.total == pred.size
    assert row.kinks == 0


@pytest.mark.parametrize("loss_cls, make_data", LOSS_CASES)
def test_mean_is_sum_divided_by_count(loss_cls, make_data, rng):
    """The two reductions differ by exactly the documented count."""
    pred, target = make_data(rng, 5)
    mean_loss, sum_loss = loss_cls(), loss_cls(reduction="sum")
    target = mean_loss.prepare_target(target, pred.shape, np.float64)
    per_batch = loss_cls in (gn.CrossEntropy, gn.SoftmaxCrossEntropy)
    count = pred.shape[0] if per_batch else pred.size
    m, s = mean_loss.forward(pred, target), sum_loss.forward(pred, target)
    np.testing.assert_allclose(m * count, s, rtol=1e-13)
    np.testing.assert_allclose(
        mean_loss.backward() * count, sum_loss.backward(), rtol=1e-13, atol=1e-15
    )


def test_broken_loss_gradient_is_caught(rng):
    """The loss check above can fail: a loss that forgets its 1/N is reported."""

    class ForgetfulMSE(gn.MeanSquaredError):
        def backward(self):
            diff, _ = self._cache
            return 2.0 * diff  # the mean's 1/n is missing

    report = check_loss(
        ForgetfulMSE(), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    )
    assert not report.passed
    assert "12" in report["pred"].diagnosis  # analytic = 12 x numeric (n = 4 * 3)


# -- whole models, end to end --------------------------------------------------

MODEL_CASES = [
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 5),
            gn.Tanh(),
            gn.Dense(5, 4),
            gn.Tanh(),
            gn.Dense(4, 3),
            seed=0,
            dtype=np.float64,
        ),
        "softmax_cross_entropy",
        lambda rng, n: rng.integers(0, 3, n),
        id="iris-tanh-softmax_ce",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 6),
            gn.Sigmoid(),
            gn.Dense(6, 3),
            gn.Softmax(),
            seed=1,
            dtype=np.float64,
        ),
        "cross_entropy",
        lambda rng, n: np.eye(3)[rng.integers(0, 3, n)],
        id="sigmoid-softmax-cross_entropy",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 6),
            gn.LeakyReLU(0.2),
            gn.Dense(6, 2),
            gn.Identity(),
            seed=2,
            dtype=np.float64,
        ),
        "mse",
        lambda rng, n: rng.normal(size=(n, 2)),
        id="leaky_relu-mse",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 5),
            gn.Tanh(),
            gn.Dense(5, 1),
            gn.Sigmoid(),
            seed=3,
            dtype=np.float64,
        ),
        "binary_cross_entropy",
        lambda rng, n: rng.integers(0, 2, (n, 1)),
        id="sigmoid-bce",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 1), seed=4, dtype=np.float64
        ),
        "binary_cross_entropy_with_logits",
        lambda rng, n: rng.integers(0, 2, (n, 1)),
        id="bce_logits",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 8),
            gn.Tanh(),
            gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
            gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
            gn.Dense(8, 3),
            seed=5,
            dtype=np.float64,
        ),  # fmt: skip
        "softmax_cross_entropy",
        lambda rng, n: rng.integers(0, 3, n),
        id="residual-mlp-softmax_ce",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(4, 6),
            gn.Sigmoid(),
            gn.Sequential(gn.Dense(6, 5), gn.Tanh()),
            gn.Concat(gn.Dense(5, 2), gn.Sequential(gn.Dense(5, 3), gn.Tanh())),
            gn.Dense(5, 2),
            seed=6,
            dtype=np.float64,
        ),  # fmt: skip
        "mse",
        lambda rng, n: rng.normal(size=(n, 2)),
        id="nested-concat-mse",
    ),
]


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("make_model, loss, make_y", MODEL_CASES)
def test_model_and_loss_end_to_end(make_model, loss, make_y, batch, rng):
    model = make_model()
    for p in model.parameters():  # nonzero biases, so their rows test something
        if p.name == "bias":
            p.data = rng.normal(0, 0.5, p.shape)
    X = rng.normal(size=(batch, 4))
    report = gn.gradcheck(model, X, make_y(rng, batch), loss=loss)
    expected = ["input", *dict(model.named_parameters())]
    assert [row.name for row in report.rows] == expected
    assert report.passed, str(report)
    assert report.worst().max_error <= THRESHOLD


def test_relu_model_with_kinks_passes_and_counts_them():
    """A ReLU model whose pre-activations sit exactly on 0 for some entries: those
    entries are counted as kinks and excluded, the rest pass."""
    model = gn.Sequential(
        gn.Dense(2, 3), gn.ReLU(), gn.Dense(3, 2), seed=0, dtype=np.float64
    )
    first = model[0]
    first.weight.data = np.array([[1.0, -1.0, 0.5], [1.0, 1.0, 0.5]])
    first.bias.data = np.zeros(3)
    X = np.array(
        [[1.0, -1.0], [0.3, 0.7], [-0.4, 0.9]]
    )  # row 0 puts unit 0 on the kink
    report = gn.gradcheck(model, X, np.array([0, 1, 1]), loss="softmax_cross_entropy")
    assert report.passed, str(report)
    assert sum(row.kinks for row in report.rows) > 0


# -- Softmax + CrossEntropy against the fused SoftmaxCrossEntropy --------------


@pytest.mark.parametrize("onehot", [False, True], ids=["labels", "onehot"])
@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_softmax_layer_plus_cross_entropy_equals_fused(batch, onehot, rng):
    fused = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0, dtype=np.float64
    )
    split = gn.Sequential(
        gn.Dense(4, 5),
        gn.Tanh(),
        gn.Dense(5, 3),
        gn.Softmax(),
        seed=0,
        dtype=np.float64,
    )
    for p, q in zip(fused.parameters(), split.parameters(), strict=True):
        q.data = (
            p.data
        )  # same weights (the seeds already agree; this makes it explicit)
    X = rng.normal(size=(batch, 4))
    y = rng.integers(0, 3, batch)
    if onehot:
        y = np.eye(3)[y]

    loss_a = gn.SoftmaxCrossEntropy()
    value_a = loss_a.forward(fused.forward(X), y)
    dx_a = fused.backward(loss_a.backward())
    loss_b = gn.CrossEntropy()
    value_b = loss_b.forward(split.forward(X), y)
    dx_b = split.backward(loss_b.backward())

    np.testing.assert_allclose(value_b, value_a, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx_b, dx_a, rtol=1e-12, atol=1e-15)
    for (name, p), q in zip(fused.named_parameters(), split.parameters(), strict=True):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-12, atol=1e-15, err_msg=name)
