"""Loss values computed by hand, names, reductions, and huge inputs staying finite.

The stability tests run under np.errstate(over="raise", invalid="raise",
divide="raise"): an overflow, an invalid operation or a division by zero anywhere
in forward or backward is an error. Underflow to zero is fine.
"""

import math

import numpy as np
import pytest

import glassnet as gn
from glassnet.nn.losses import (
    INPUT_KINDS,
    LOSSES,
    TARGET_KINDS,
    get_loss,
    loss_name,
    takes_labels,
)

STRICT = {"over": "raise", "invalid": "raise", "divide": "raise"}
LN2 = math.log(2.0)


# -- values by hand ------------------------------------------------------------


def test_mse_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 2.0], [5.0, 4.0]])
    loss = gn.MeanSquaredError()
    assert loss(pred, target) == pytest.approx((1 + 0 + 4 + 0) / 4, rel=1e-15)
    # d/dpred mean((pred - t)^2) = 2 (pred - t) / 4
    np.testing.assert_allclose(loss.backward(), [[0.5, 0.0], [-1.0, 0.0]], rtol=1e-15)


def test_softmax_cross_entropy_of_equal_logits_is_ln_k():
    loss = gn.SoftmaxCrossEntropy()
    assert loss(np.zeros((4, 5)), np.array([0, 1, 2, 3])) == pytest.approx(math.log(5))
    np.testing.assert_allclose(
        loss.backward(), (np.full((4, 5), 0.2) - np.eye(5)[:4]) / 4, rtol=1e-15
    )


def test_softmax_cross_entropy_by_hand():
    logits = np.array([[math.log(1.0), math.log(3.0)], [0.0, 0.0]])  # p = [1/4, 3/4]
    loss = gn.SoftmaxCrossEntropy(reduction="sum")
    expected = -math.log(0.75) - math.log(0.5)
    assert loss(logits, np.array([1, 0])) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(
        loss.backward(), [[0.25, -0.25], [-0.5, 0.5]], rtol=1e-15, atol=1e-16
    )


def test_labels_and_one_hot_give_the_same_loss_and_gradient(rng):
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    for loss_cls, pred in [
        (gn.SoftmaxCrossEntropy, logits),
        (gn.CrossEntropy, gn.Softmax().forward(logits)),
    ]:
        a, b = loss_cls(), loss_cls()
        np.testing.assert_allclose(
            a(pred, labels), b(pred, np.eye(4)[labels]), rtol=1e-14
        )
        np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14, atol=1e-16)


def test_cross_entropy_on_probabilities_by_hand():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    loss = gn.CrossEntropy()
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert loss(probs, np.array([1, 0])) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(
        loss.backward(), [[0.0, -1 / 0.8 / 2], [-1 / 0.6 / 2, 0.0]], rtol=1e-15
    )


def test_binary_cross_entropy_by_hand():
    p = np.array([[0.9], [0.2]])
    y = np.array([[1.0], [0.0]])
    loss = gn.BinaryCrossEntropy()
    expected = -(math.log(0.9) + math.log(0.8)) / 2
    assert loss(p, y) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(
        loss.backward(), [[-1 / 0.9 / 2], [1 / 0.8 / 2]], rtol=1e-14
    )


def test_binary_cross_entropy_with_logits_by_hand():
    z = np.array([0.0, math.log(3.0)])  # sigmoid: 1/2 and 3/4
    y = np.array([1.0, 0.0])
    loss = gn.BinaryCrossEntropyWithLogits(reduction="sum")
    assert loss(z, y) == pytest.approx(LN2 - math.log(0.25), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [-0.5, 0.75], rtol=1e-15)


def test_logits_and_probability_versions_agree(rng):
    z = rng.normal(0, 2, (5, 3))
    y = rng.integers(0, 2, (5, 3)).astype(float)
    fused, plain = gn.BinaryCrossEntropyWithLogits(), gn.BinaryCrossEntropy()
    p = gn.Sigmoid().forward(z)
    np.testing.assert_allclose(fused(z, y), plain(p, y), rtol=1e-13)
    dz_via_p = plain.backward() * p * (1 - p)  # chain rule through the sigmoid
    np.testing.assert_allclose(fused.backward(), dz_via_p, rtol=1e-12, atol=1e-15)


def test_single_output_mse_accepts_flat_targets():
    loss = gn.MeanSquaredError()
    assert loss(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])) == pytest.approx(2.5)
    assert loss.backward().shape == (2, 1)


# -- names, reductions, dtypes -------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_by_name(name):
    loss = get_loss(name)
    assert isinstance(loss, LOSSES[name])
    assert get_loss(name.upper()).__class__ is LOSSES[name]
    assert get_loss(LOSSES[name]).__class__ is LOSSES[name]
    assert get_loss(loss) is loss


DTYPE_CASES = [
    (
        gn.MeanSquaredError,
        lambda rng: (rng.normal(size=(3, 2)), rng.normal(size=(3, 2))),
    ),
    (
        gn.SoftmaxCrossEntropy,
        lambda rng: (rng.normal(size=(3, 4)), np.array([0, 3, 1])),
    ),
    (gn.CrossEntropy, lambda rng: (np.full((3, 4), 0.25), np.array([0, 3, 1]))),
    (gn.BinaryCrossEntropy, lambda rng: (np.full((3, 1), 0.3), np.array([0, 1, 1]))),
    (
        gn.BinaryCrossEntropyWithLogits,
        lambda rng: (rng.normal(size=(3, 1)), np.ones(3)),
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_cls, make", DTYPE_CASES)
def test_backward_has_the_shape_and_dtype_of_pred(loss_cls, make, dtype, rng):
    pred, target = make(rng)
    pred = pred.astype(dtype)
    loss = loss_cls()
    value = loss(pred, target)
    assert type(value) is float and math.isfinite(value)
    grad = loss.backward()
    assert grad.shape == pred.shape
    assert grad.dtype == dtype


# -- stability: huge logits, saturated sigmoids --------------------------------

EXTREME = np.array([[1e4, 0.0, -1e4]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_cross_entropy_of_huge_logits_is_exact(dtype):
    logits = EXTREME.astype(dtype)
    with np.errstate(**STRICT):
        for label, expected in [(0, 0.0), (1, 1e4), (2, 2e4)]:
            loss = gn.SoftmaxCrossEntropy()
            assert loss(logits, np.array([label])) == expected
            grad = loss.backward()
            expected_grad = np.array([[1.0, 0.0, 0.0]]) - np.eye(3)[label]
            np.testing.assert_array_equal(grad, expected_grad)
        assert gn.SoftmaxCrossEntropy()(logits, np.array([[0.0, 0.0, 1.0]])) == 2e4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_layer_of_huge_logits(dtype):
    softmax = gn.Softmax()
    with np.errstate(**STRICT):
        p = softmax.forward(np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype))
        np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
        np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)
        grad = softmax.backward(np.ones_like(p) * np.array([1.0, 2.0, 3.0], dtype))
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])  # saturated: flat


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_after_saturated_softmax_stays_finite(dtype):
    with np.errstate(**STRICT):
        softmax, loss = gn.Softmax(), gn.CrossEntropy()
        p = softmax.forward(EXTREME.astype(dtype))
        value = loss(p, np.array([2]))
        # p[2] underflowed to 0, so the probability path clips at the smallest
        # normal float (the fused SoftmaxCrossEntropy gives the exact 2e4)
        assert value == pytest.approx(-math.log(np.finfo(dtype).tiny), rel=1e-6)
        dx = softmax.backward(loss.backward())
        assert loss(p, np.array([0])) == 0.0
        dx0 = softmax.backward(loss.backward())
    assert np.isfinite(dx).all() and np.isfinite(dx0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_with_logits_of_huge_logits(dtype):
    z = np.array([1e4, 0.0, -1e4, 1e4], dtype)
    y = np.array([0.0, 1.0, 1.0, 1.0], dtype)
    loss = gn.BinaryCrossEntropyWithLogits(reduction="sum")
    with np.errstate(**STRICT):
        value = loss(z, y)
        grad = loss.backward()
    # terms: 1e4 (wrong side), ln 2, 1e4 (wrong side), 0 (right side)
    assert value == pytest.approx(2e4 + LN2, rel=1e-7 if dtype == np.float32 else 1e-15)
    np.testing.assert_array_equal(grad, np.array([1.0, -0.5, -1.0, 0.0], dtype))


def test_binary_cross_entropy_of_saturated_probabilities_is_clamped():
    """log is clamped at -100 as PyTorch does; a clamped term is flat (gradient 0),
    the others keep theirs: -y/p at p = 1 and (1 - y)/(1 - p) at p = 0."""
    loss = gn.BinaryCrossEntropy(reduction="sum")
    with np.errstate(**STRICT):
        value = loss(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0]))
        grad = loss.backward()
    assert value == 200.0
    np.testing.assert_array_equal(grad, [0.0, 0.0, -1.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_of_plus_minus_1000_is_exact(dtype):
    sigmoid = gn.Sigmoid()
    with np.errstate(**STRICT):
        out = sigmoid.forward(np.array([[1000.0, -1000.0, 0.0]], dtype))
        grad = sigmoid.backward(np.ones((1, 3), dtype))
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0 and out[0, 2] == 0.5
    np.testing.assert_array_equal(grad, np.array([[0.0, 0.0, 0.25]], dtype))


def test_tanh_and_relu_of_huge_inputs():
    x = np.array([[1e4, -1e4, 1e300, -1e300]])
    with np.errstate(**STRICT):
        for layer, expected, slope in [
            (gn.Tanh(), [1.0, -1.0, 1.0, -1.0], [0.0] * 4),
            (gn.ReLU(), [1e4, 0.0, 1e300, 0.0], [1.0, 0.0, 1.0, 0.0]),
        ]:
            np.testing.assert_array_equal(layer.forward(x), [expected])
            np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [slope])


def test_model_with_huge_logits_through_fit_step_stays_finite():
    """A whole forward/backward through a model whose logits are ~1e4."""
    model = gn.Sequential(gn.Dense(2, 3), seed=0, dtype=np.float64)
    model[0].weight.data = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    X = np.array([[1.0, 0.0]])
    with np.errstate(**STRICT):
        report = gn.gradcheck(model, X, np.array([2]), loss="softmax_cross_entropy")
    assert report.passed, str(report)


# -- the call checks its target ------------------------------------------------


@pytest.mark.parametrize(
    "loss, pred, target, error, message",
    [
        pytest.param(
            gn.SoftmaxCrossEntropy(),
            np.zeros((3, 3)),
            np.array([0, 1, 5]),
            gn.DataError,
            r"y: labels must lie in \[0, 3\) .* got values from 0 to 5",
            id="label-too-large",
        ),
        pytest.param(
            gn.CrossEntropy(),
            np.full((3, 3), 1 / 3),
            np.array([0, -1, 2]),
            gn.DataError,
            r"labels must lie in \[0, 3\) .* from -1 to 2",
            id="negative-label",
        ),
        pytest.param(
            gn.SoftmaxCrossEntropy(),
            np.zeros((3, 3)),
            np.eye(4)[:3],
            gn.ShapeError,
            r"SoftmaxCrossEntropy: .* one-hot rows of shape \(3, 3\), got \(3, 4\)",
            id="one-hot-width",
        ),
        pytest.param(
            gn.MeanSquaredError(),
            np.zeros((3, 3)),
            np.zeros((3, 2)),
            gn.ShapeError,
            r"MeanSquaredError: target must have .* \(3, 3\), got \(3, 2\)",
            id="mse-shape",
        ),
        pytest.param(
            gn.BinaryCrossEntropy(),
            np.full((2, 1), 0.5),
            np.array([[0.0], [2.0]]),
            gn.DataError,
            r"BinaryCrossEntropy: targets must lie in \[0, 1\], .* to 2.0",
            id="bce-target-range",
        ),
    ],
)
def test_calling_a_loss_checks_the_target(loss, pred, target, error, message):
    with pytest.raises(error, match=message):
        loss(pred, target)


@pytest.mark.parametrize("loss_cls", [gn.MeanSquaredError, gn.SoftmaxCrossEntropy])
def test_unknown_reduction(loss_cls):
    with pytest.raises(
        gn.ConfigError, match=r"reduction must be 'mean' or 'sum', got 'avg'"
    ):
        loss_cls(reduction="avg")


# -- what each loss takes --------------------------------------------------------

DECLARED = {
    gn.MeanSquaredError: ("values", "targets", None),
    gn.SoftmaxCrossEntropy: ("logits", "labels", "softmax"),
    gn.CrossEntropy: ("probabilities", "labels", "softmax"),
    gn.BinaryCrossEntropyWithLogits: ("logits", "targets", "sigmoid"),
    gn.BinaryCrossEntropy: ("probabilities", "targets", "sigmoid"),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_declares_what_it_takes(name):
    cls = LOSSES[name]
    for attribute in ("input_kind", "target_kind", "activation"):
        assert attribute in vars(cls), f"{cls.__name__} inherits {attribute}"
    assert cls.input_kind in INPUT_KINDS and cls.target_kind in TARGET_KINDS
    assert (cls.input_kind, cls.target_kind, cls.activation) == DECLARED[cls]
    assert (cls.activation is None) == (cls.input_kind == "values")
    assert LOSSES[loss_name(cls.input_kind, cls.activation)] is cls


@pytest.mark.parametrize(
    "loss, labels",
    [
        ("softmax_cross_entropy", True),
        (gn.CrossEntropy, True),
        (gn.BinaryCrossEntropy(), False),
        ("mse", False),
        ("no_such_loss", False),
    ],
)
def test_takes_labels_reads_the_declaration(loss, labels):
    assert takes_labels(loss) is labels


def test_a_custom_loss_takes_values_and_targets_unless_it_says_otherwise():
    class Huber(gn.Loss):
        pass

    class Focal(gn.Loss):
        input_kind, target_kind, activation = "logits", "labels", "softmax"

    assert (Huber.input_kind, Huber.target_kind, Huber.activation) == (
        "values",
        "targets",
        None,
    )
    assert Focal().input_kind == "logits"


# -- fit refuses a loss the model's output does not fit --------------------------

X4 = np.random.default_rng(0).normal(size=(12, 4))
LABELS = np.arange(12) % 3
BITS = (np.arange(12) % 2).astype(float)


def mlp(*last, k=3):
    return gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, k), *last, seed=0)


class Shift(gn.Layer):
    """A user's layer the library cannot classify: out = x + shift."""

    def __init__(self, shift):
        self.shift = shift

    def forward(self, x):
        return x + self.shift

    def backward(self, dout):
        return dout


def user_sigmoid():
    from user_layers import UserSigmoid

    return UserSigmoid()


REFUSED = [
    pytest.param(
        lambda: mlp(),
        "cross_entropy",
        LABELS,
        r"loss='cross_entropy' takes probabilities, but the model ends in Dense; "
        r"on logits use loss='softmax_cross_entropy', or add Softmax\(\)",
        id="cross_entropy-on-logits",
    ),
    pytest.param(
        lambda: mlp(k=1),
        "binary_cross_entropy",
        BITS,
        r"loss='binary_cross_entropy' takes probabilities, but the model ends in "
        r"Dense; on logits use loss='binary_cross_entropy_with_logits', or add "
        r"Sigmoid\(\)",
        id="binary_cross_entropy-on-logits",
    ),
    pytest.param(
        lambda: mlp(gn.Tanh()),
        "cross_entropy",
        LABELS,
        r"ends in Tanh; on logits use loss='softmax_cross_entropy'",
        id="cross_entropy-after-tanh",
    ),
    pytest.param(
        lambda: mlp(Shift(-0.5), k=1),
        "binary_cross_entropy",
        BITS,
        r"ends in Shift, whose outputs on the first rows lie in \[-\S+, \S+\], "
        r"not in \[0, 1\]; on logits use loss='binary_cross_entropy_with_logits'",
        id="custom-final-layer-out-of-range",
    ),
    pytest.param(
        lambda: gn.Sequential(mlp(), seed=0),
        gn.CrossEntropy(),
        LABELS,
        r"loss='cross_entropy' takes probabilities, but the model ends in Dense",
        id="nested-model-ending-in-dense",
    ),
    pytest.param(
        lambda: mlp(gn.Softmax()),
        "softmax_cross_entropy",
        LABELS,
        r"the model ends in Softmax and loss='softmax_cross_entropy' takes logits: "
        r"it would apply softmax to probabilities; use loss='cross_entropy'",
        id="softmax-twice",
    ),
    pytest.param(
        lambda: mlp(gn.Sigmoid(), k=1),
        "binary_cross_entropy_with_logits",
        BITS,
        r"ends in Sigmoid and loss='binary_cross_entropy_with_logits' takes "
        r"logits: it would apply sigmoid to probabilities; use "
        r"loss='binary_cross_entropy'",
        id="sigmoid-twice",
    ),
    pytest.param(
        lambda: gn.Sequential(gn.Sequential(gn.Dense(4, 3), gn.Softmax()), seed=0),
        "softmax_cross_entropy",
        LABELS,
        r"ends in Softmax and loss='softmax_cross_entropy' takes logits",
        id="nested-softmax-twice",
    ),
]


@pytest.mark.parametrize("make, loss, y, message", REFUSED)
@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_a_loss_the_output_does_not_fit_is_refused(make, loss, y, message, call):
    model = make()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(gn.ConfigError, match=rf"{call}: .*{message}"):
        if call == "fit":
            model.fit(X4, y, loss=loss, verbose=0)
        else:
            model.evaluate(X4, y, loss=loss)
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)  # refused before any step


ACCEPTED = [
    pytest.param(lambda: mlp(gn.Softmax()), "cross_entropy", LABELS, id="softmax"),
    pytest.param(
        lambda: mlp(gn.Sigmoid(), k=1), "binary_cross_entropy", BITS, id="sigmoid"
    ),
    pytest.param(lambda: mlp(), "softmax_cross_entropy", LABELS, id="logits"),
    pytest.param(
        lambda: mlp(k=1), "binary_cross_entropy_with_logits", BITS, id="bit-logits"
    ),
    pytest.param(lambda: mlp(gn.Softmax()), "mse", np.eye(3)[LABELS], id="mse-probs"),
    pytest.param(
        lambda: mlp(user_sigmoid(), k=1),
        "binary_cross_entropy",
        BITS,
        id="custom-layer-in-range",
    ),
    pytest.param(
        lambda: gn.Sequential(mlp(gn.Softmax()), seed=0),
        "cross_entropy",
        LABELS,
        id="nested-softmax",
    ),
]


@pytest.mark.parametrize("make, loss, y", ACCEPTED)
def test_a_loss_the_output_fits_trains(make, loss, y):
    model = make()
    history = model.fit(X4, y, loss=loss, epochs=2, verbose=0)
    assert np.isfinite(history["loss"]).all() and min(history["loss"]) >= 0.0
    assert model.evaluate(X4, y, loss=loss)["loss"] >= 0.0


@pytest.mark.parametrize(
    "loss, y, message",
    [
        pytest.param(
            "softmax_cross_entropy",
            np.array(["cat", "dog", "emu"] * 4),
            r"y: expected integer class labels, got dtype <U3; encode labels as "
            r"0\.\.K-1",
            id="label-loss",
        ),
        pytest.param(
            None,
            np.array(["cat", "dog", "emu"] * 4),
            r"y: mean_squared_error takes real-valued targets, got dtype <U3; for "
            r"classes, encode labels as 0\.\.K-1",
            id="inferred-loss",
        ),
        pytest.param(
            "softmax_cross_entropy",
            np.array(["cat", "dog", "emu"] * 4, dtype=object),
            r"got dtype object; encode labels as 0\.\.K-1",
            id="object-labels",
        ),
    ],
)
def test_class_names_as_labels_ask_to_encode_them(loss, y, message):
    with pytest.raises(gn.DataError, match=message):
        mlp().fit(X4, y, loss=loss, verbose=0)
    with pytest.raises(gn.DataError, match=r"encode labels as 0\.\.K-1"):
        gn.SoftmaxCrossEntropy()(np.zeros((12, 3)), y)
