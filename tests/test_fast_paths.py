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
