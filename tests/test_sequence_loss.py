"""SoftmaxCrossEntropy over sequences: logits (N, T, K), labels (N, T), ignore_index.

PyTorch's cross_entropy(logits.reshape(-1, K), labels.reshape(-1), ignore_index=...)
is the oracle (float64, 1e-12); gradcheck in function form checks backward against
forward; accuracy skips ignored positions; fit trains a GRU tagger on padded
sequences.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import ConfigError, DataError, ShapeError
from glassnet.train.metrics import accuracy


def padded_labels(rng, shape, K, ignore):
    """Integer labels of `shape` with the tail of every other row set to ignore."""
    y = rng.integers(0, K, shape)
    if len(shape) == 2:
        y[::2, shape[1] // 2 :] = ignore  # padding at the end of even rows
    else:
        y[::3] = ignore
    return y


CASES = [  # logits shape, ignore_index, reduction
    ((4, 6, 3), -1, "mean"),
    ((4, 6, 3), -100, "sum"),
    ((3, 5, 70), -1, "mean"),  # K above the one-hot shortcut
    ((2, 3, 4, 5), -1, "mean"),  # two axes between N and K
    ((7, 4), -1, "mean"),  # (N, K) with ignored rows
    ((4, 6, 3), None, "mean"),  # a sequence with nothing ignored
    ((4, 6, 3), 2, "mean"),  # an ignore_index that is a class
]


@pytest.mark.torch
@pytest.mark.parametrize("shape, ignore, reduction", CASES)
def test_forward_and_backward_match_torch(shape, ignore, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape) + shape[-1])
    K = shape[-1]
    z = rng.normal(size=shape) * 3
    y = padded_labels(rng, shape[:-1], K, -1 if ignore is None else ignore)
    if ignore is None:
        y = np.where(y < 0, 0, y)
    loss = gn.SoftmaxCrossEntropy(reduction=reduction, ignore_index=ignore)
    value = loss(z, y)
    grad = loss.backward()

    zt = torch.tensor(z, requires_grad=True)
    kwargs = {} if ignore is None else {"ignore_index": ignore}
    ref = torch.nn.functional.cross_entropy(
        zt.reshape(-1, K), torch.tensor(y).reshape(-1), reduction=reduction, **kwargs
    )
    ref.backward()
    assert grad.shape == z.shape
    assert abs(value - ref.item()) <= 1e-12 * max(1.0, abs(ref.item()))
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=0, atol=1e-12)


def _function_form(loss, y, weights=None):
    def f(arrays):
        return loss(arrays["logits"], y, weights)

    def g(arrays):
        loss(arrays["logits"], y, weights)
        return {"logits": loss.backward()}

    return f, g


@pytest.mark.parametrize("shape, ignore, reduction", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_function_form(shape, ignore, reduction, weighted):
    rng = np.random.default_rng(7)
    K = shape[-1]
    y = padded_labels(rng, shape[:-1], K, -1 if ignore is None else ignore)
    if ignore is None:
        y = np.where(y < 0, 0, y)
    weights = rng.uniform(0.2, 2.0, shape[0]) if weighted else None
    loss = gn.SoftmaxCrossEntropy(reduction=reduction, ignore_index=ignore)
    f, g = _function_form(loss, y, weights)
    report = gn.gradcheck(f, {"logits": rng.normal(size=shape)}, grad=g)
    assert report.passed
    assert report.worst().max_error <= 1e-7


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sample_weight_weighs_every_position_of_its_row(reduction):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 4, 5))
    y = padded_labels(rng, (3, 4), 5, -1)
    w = np.array([0.5, 2.0, 1.0])
    loss = gn.SoftmaxCrossEntropy(reduction=reduction, ignore_index=-1)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    kept = y >= 0
    terms = -np.take_along_axis(log_p, np.where(kept, y, 0)[..., None], -1)[..., 0]
    c = w[:, None] * kept  # (N, T): each position weighs its row's weight
    expected = (c * terms).sum() / (c.sum() if reduction == "mean" else 1.0)
    assert loss(z, y, w) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "shape, weighted", [((3, 4, 5), False), ((3, 4, 5), True), ((6, 2), False)]
)
def test_every_position_ignored_gives_zero_loss_and_gradient(shape, weighted):
    z = np.random.default_rng(0).normal(size=shape)
    y = np.full(shape[:-1], -1)
    w = np.ones(shape[0]) if weighted else None
    loss = gn.SoftmaxCrossEntropy(ignore_index=-1)
    assert loss(z, y, w) == 0.0
    grad = loss.backward()
    assert grad.shape == shape and not grad.any()


@pytest.mark.parametrize(
    "labels, ignore, message",
    [
        ([[0, 1, 3], [2, -1, -1]], -1, "got label 3 at position (0, 2)"),
        ([[0, 1, 2], [2, -5, -1]], -1, "got label -5 at position (1, 1)"),
        ([[0, 1, 2], [2, -1, 0]], None, "got label -1 at position (1, 1)"),
        ([[0, 1, 2], [2, 2, 1]], 2, None),  # 2 is ignored, not an error
        ([0, 4, -1], -1, "got label 4 at position 1"),  # (N, K) logits
    ],
)
def test_labels_out_of_range_name_the_label(labels, ignore, message):
    labels = np.array(labels)
    K = 3
    z = np.zeros((*labels.shape, K))
    loss = gn.SoftmaxCrossEntropy(ignore_index=ignore)
    if message is None:
        assert np.isfinite(loss(z, labels))
        return
    with pytest.raises(DataError) as info:
        loss(z, labels)
    assert message in str(info.value)
    assert "[0, 3)" in str(info.value)


@pytest.mark.parametrize(
    "logits, labels, hint",
    [
        ((2, 3, 4), (2, 4), "must have shape (2, 3)"),
        ((2, 3, 4), (2,), "one label per position"),
        ((2, 3, 4), (2, 3, 4), "labels = y.argmax(axis=-1)"),
        ((2, 3, 4), (3, 3), "got (3, 3)"),
    ],
)
def test_shape_mismatch_is_a_shape_error(logits, labels, hint):
    loss = gn.SoftmaxCrossEntropy(ignore_index=-1)
    with pytest.raises(ShapeError) as info:
        loss(np.zeros(logits), np.zeros(labels, dtype=int))
    assert hint in str(info.value)
    with pytest.raises(ShapeError):  # forward on unprepared targets says it too
        loss.forward(np.zeros(logits), np.zeros(labels, dtype=int))


@pytest.mark.parametrize("ignore", [1.5, "pad", True, [0]])
def test_ignore_index_must_be_an_integer(ignore):
    with pytest.raises(ConfigError, match="ignore_index"):
        gn.SoftmaxCrossEntropy(ignore_index=ignore)


def test_default_and_config():
    loss = gn.nn.losses.get_loss("softmax_cross_entropy")
    assert loss.ignore_index is None
    assert loss.get_config() == {"reduction": "mean", "ignore_index": None}
    assert "ignore_index=-1" in repr(gn.SoftmaxCrossEntropy(ignore_index=-1))


def test_one_hot_rows_still_work_with_an_ignore_index():
    z = np.random.default_rng(1).normal(size=(4, 3))
    y = np.eye(3)[[0, 2, 1, 1]]
    with_ignore = gn.SoftmaxCrossEntropy(ignore_index=-1)
    assert with_ignore(z, y) == pytest.approx(gn.SoftmaxCrossEntropy()(z, y))


@pytest.mark.parametrize(
    "out, labels, ignore, expected",
    [
        # (N, T, K): argmax per position; -1 skipped
        ([[[1, 0], [0, 1], [1, 0]]], [[0, 0, -1]], None, 0.5),
        ([[[1, 0], [0, 1], [1, 0]]], [[0, 1, -1]], None, 1.0),
        ([[[1, 0], [0, 1], [1, 0]]], [[0, 1, 1]], 1, 1.0),  # a class as ignore_index
        ([[[1, 0], [0, 1]]], [[-1, -1]], None, 0.0),  # nothing left to count
        ([[1, 0], [0, 1], [1, 0]], [0, 0, -1], None, 0.5),  # (N, K) with padding
        ([[1, 0], [0, 1], [1, 0]], [0, 0, 1], None, 1 / 3),  # today's path
    ],
)
def test_accuracy_skips_ignored_positions(out, labels, ignore, expected):
    value = accuracy(np.array(out, float), np.array(labels), ignore_index=ignore)
    assert value == pytest.approx(expected)
    assert type(value) is float


def test_accuracy_shape_mismatch():
    with pytest.raises(ShapeError, match="accuracy"):
        accuracy(np.zeros((2, 3, 4)), np.zeros((2, 4), int))


def test_fit_trains_a_tagger_on_padded_sequences():
    """Tag each token with its id mod 3; padded positions (label -1) are skipped.

    No per-step Dense exists, so the GRU's hidden state is the logits (H = K)."""
    rng = np.random.default_rng(0)
    X = rng.integers(1, 6, (60, 7))
    y = X % 3
    X[:30, 4:] = 0  # padding token
    y[:30, 4:] = -1
    model = gn.Sequential(
        gn.Embedding(6, 8), gn.GRU(8, 3, return_sequences=True), seed=0
    )
    loss = gn.SoftmaxCrossEntropy(ignore_index=-1)
    history = model.fit(
        X,
        y,
        loss=loss,
        optimizer=gn.Adam(lr=0.05),
        epochs=30,
        batch_size=20,
        verbose=0,
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    logs = model.evaluate(X, y, loss=loss)
    assert logs["accuracy"] > 0.9
    # the metric counts the real tokens only: padding predicted wrong changes nothing
    out = model.predict(X)
    kept = y >= 0
    right = (out.argmax(axis=-1) == y) & kept
    assert logs["accuracy"] == pytest.approx(right.sum() / kept.sum())
    assert logs["loss"] == pytest.approx(loss(out, y), rel=1e-5)
