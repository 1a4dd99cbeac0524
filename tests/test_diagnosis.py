"""Does gradcheck name the mistake, not just find it?

Each planted bug is one of the seeds' own mistakes, written as a user's custom
layer (or, for the loss-level constant factors, as a hand-written gradient in
gn.gradcheck's function mode). Every one must fail the check and its diagnosis
must name the cause; the same layer with the line fixed must pass.
"""

import numpy as np
import pytest

import glassnet as gn
from user_layers import UserDense, UserSigmoid, UserSoftmax, UserTanh

# these tests read whole formulas and rows: a width where nothing wraps
pytestmark = pytest.mark.usefixtures("wide_terminal")


class BiasMean(UserDense):
    """Seed 002's answer: dSdb = dSdz.mean(axis=0)."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.bias.grad = dout.mean(axis=0)
        return dx


class BiasWrongAxis(UserDense):
    """Seed 000's column layout (X is 4 x 150) ported to rows: sum(axis=1) kept."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.bias.grad = dout.sum(axis=1)
        return dx


class WeightTransposed(UserDense):
    """Seeds 000/001 write delta @ x.T for W @ x; with out = x @ W it is transposed."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = dout.T @ self._cache
        return dx


class WeightScaled(UserDense):
    """dL/dW off by a constant: seed 003's -2 * (y - p) where the loss has no 2,
    the sign of p - y flipped, or a 1/N missing or applied twice."""

    factor = 1.0

    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = self.weight.grad * self.factor
        return dx


def scaled(factor):
    return type(f"WeightTimes{factor:g}", (WeightScaled,), {"factor": factor})(3, 2)


class InputUsesW(UserDense):
    def backward(self, dout):
        super().backward(dout)
        return dout @ self.weight.data  # W where W.T belongs


class Accumulates(UserDense):
    """Seed 001 adds into grad_w and never resets it."""

    def backward(self, dout):
        x = self._cache
        self.weight.grad += x.T @ dout
        self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.data.T


class SigmoidOnZ(UserSigmoid):
    """Seed 001: sigmoid(z, deriv=True) returns z * (1 - z)."""

    def backward(self, dout):
        z, a = self._cache
        return dout * z * (1.0 - z)


class SigmoidTwice(UserSigmoid):
    """Seed 003: deriv_sigmoid(o1) with o1 already a sigmoid output."""

    def backward(self, dout):
        z, a = self._cache
        s = 1.0 / (1.0 + np.exp(-a))
        return dout * s * (1.0 - s)


class SigmoidMatrix(UserSigmoid):
    """Seed 002's first answer: gGradient(x) = g(x).T @ (1 - g(x)), matrix product."""

    def backward(self, dout):
        z, a = self._cache
        return dout @ (a.T @ (1.0 - a))


class TanhOnZ(UserTanh):
    """Seed 000 wrote 1 - x2**2 with the activation; the mistake is using z."""

    def backward(self, dout):
        z, a = self._cache
        return dout * (1.0 - z**2)


class SoftmaxDiagonal(UserSoftmax):
    """Seed 000's question: the 3 x 3 Jacobian replaced by its diagonal."""

    def backward(self, dout):
        p = self._cache
        return dout * p * (1.0 - p)


class SoftmaxSkipped(UserSoftmax):
    """Seed 001: cross_entropy(deriv=True) = p - y is passed through as dL/dz
    although the loss in front of it is not the fused one."""

    def backward(self, dout):
        return dout


PLANTED = [
    pytest.param(
        BiasMean(3, 4), 6, "bias", "mean(axis=0): a mean where a sum", id="bias-mean"
    ),
    pytest.param(
        BiasWrongAxis(6, 6),
        6,
        "bias",
        "sum(axis=1) sums over the wrong axis",
        id="bias-axis",
    ),
    pytest.param(WeightTransposed(3, 3), 5, "weight", "is transposed", id="transposed"),
    pytest.param(InputUsesW(3, 3), 5, "input", "uses W where it needs W.T", id="dx-W"),
    pytest.param(scaled(2.0), 5, "weight", "analytic = 2 x numeric", id="factor-2"),
    pytest.param(scaled(-1.0), 5, "weight", "the sign is flipped", id="factor-minus-1"),
    pytest.param(
        scaled(5.0),
        5,
        "weight",
        "= 5 x numeric: a missing 1/N (N = 5 is this batch",
        id="factor-N",
    ),
    pytest.param(
        scaled(0.2), 5, "weight", "= numeric / 5: an extra 1/N", id="factor-1/N"
    ),
    pytest.param(
        Accumulates(3, 2),
        5,
        "weight",
        "adds to .grad instead of replacing",
        id="accumulates",
    ),
    pytest.param(
        SigmoidOnZ(), 5, "input", "applied to the pre-activation", id="sigmoid-z"
    ),
    pytest.param(TanhOnZ(), 5, "input", "applied to the pre-activation", id="tanh-z"),
    pytest.param(
        SigmoidTwice(),
        5,
        "input",
        "applied to the activation instead",
        id="sigmoid-twice",
    ),
    pytest.param(
        SigmoidMatrix(), 6, "input", "(a matrix product)", id="matrix-not-hadamard"
    ),
    pytest.param(
        SoftmaxDiagonal(),
        5,
        "input",
        "only the diagonal of the softmax Jacobian",
        id="softmax-diagonal",
    ),
    pytest.param(
        SoftmaxSkipped(), 5, "input", "returns dout unchanged", id="softmax-skipped"
    ),
]


@pytest.mark.parametrize("layer, batch, row, named", PLANTED)
def test_planted_mistake_is_caught_and_named(layer, batch, row, named):
    d = layer.weight.shape[0] if hasattr(layer, "weight") else 3
    x = np.random.default_rng(7).normal(size=(batch, d))
    report = gn.gradcheck(layer, x)
    assert not report.passed
    assert not report[row].passed
    assert named in report[row].diagnosis, report[row].diagnosis
    assert named in str(report)


@pytest.mark.parametrize("layer, batch, row, named", PLANTED)
def test_the_same_layer_fixed_passes(layer, batch, row, named):
    fixed_class = next(
        c for c in type(layer).__mro__[1:] if c.__name__.startswith("User")
    )
    fixed = fixed_class.__new__(fixed_class)
    fixed.__dict__.update(layer.__dict__)
    d = layer.weight.shape[0] if hasattr(layer, "weight") else 3
    x = np.random.default_rng(7).normal(size=(batch, d))
    report = gn.gradcheck(fixed, x)
    assert report.passed, str(report)
    assert report.notes == [] and all(r.diagnosis == "" for r in report.rows)


def test_only_a_bias_wrong_is_said_once_for_the_model():
    model = gn.Sequential(
        gn.Dense(4, 3),
        gn.Tanh(),
        BiasMean(3, 3),
        gn.Tanh(),
        gn.Dense(3, 3),
        seed=0,
        dtype=np.float64,
    )
    X = np.random.default_rng(3).normal(size=(5, 4))
    report = gn.gradcheck(model, X, np.arange(5) % 3, loss="softmax_cross_entropy")
    assert [r.name for r in report.failures()] == ["2.bias"]
    assert any(
        n.startswith("only the bias gradients are wrong (2.bias)") for n in report.notes
    )
    assert any(
        "faulty layer 2 (BiasMean)" in n and "mean(axis=0)" in n for n in report.notes
    )


# -- constant factors in hand-written backprop (function mode) ----------------------

RNG = np.random.default_rng(11)
X, W, B, T = (
    RNG.normal(size=(5, 4)),
    RNG.normal(size=(4, 3)),
    RNG.normal(size=3),
    RNG.normal(size=(5, 3)),
)


def half_sse(a):
    """Seed 002's cost: 1/(2m) sum of squares, m = 5."""
    out = a["x"] @ a["W"] + a["b"]
    return 0.5 * np.sum((out - T) ** 2) / 5


def grads(scale_W=1.0, scale_b=1.0, transpose=False, per_example_b=False):
    def grad(a):
        d = (a["x"] @ a["W"] + a["b"] - T) / 5  # dS/dxhat
        dW = a["x"].T @ d
        return {
            "x": d @ a["W"].T,
            "W": (dW.T if transpose else dW) * scale_W,
            "b": d if per_example_b else d.sum(axis=0) * scale_b,
        }

    return grad


@pytest.mark.parametrize(
    "grad, row, named",
    [
        (grads(scale_W=5.0), "W", "analytic = 5 x numeric: a missing 1/N"),
        (grads(scale_W=1 / 5), "W", "analytic = numeric / 5: an extra 1/N"),
        (grads(scale_W=2.0), "W", "analytic = 2 x numeric"),
        (grads(scale_b=-1.0), "b", "the sign is flipped"),
        (grads(transpose=True), "W", "it is the transpose"),
        (grads(per_example_b=True), "b", "one row per example was kept"),
    ],
)
def test_constant_factors_and_shapes_in_hand_written_backprop(grad, row, named):
    report = gn.gradcheck(half_sse, {"x": X, "W": W, "b": B}, grad=grad)
    assert not report[row].passed
    assert named in report[row].diagnosis, report[row].diagnosis
    assert gn.gradcheck(half_sse, {"x": X, "W": W, "b": B}, grad=grads()).passed


def test_assigning_a_gradient_of_the_wrong_shape_explains_why():
    p = gn.Parameter(np.zeros((4, 3)), "weight")
    with pytest.raises(gn.ShapeError, match=r"got \(3, 4\); it is the transpose"):
        p.grad = np.zeros((3, 4))
    b = gn.Parameter(np.zeros(3), "bias")
    with pytest.raises(gn.ShapeError, match=r"one row per example was kept"):
        b.grad = np.zeros((5, 3))
    with pytest.raises(gn.ShapeError, match=r"sum over axis 1, the batch"):
        b.grad = np.zeros((3, 100))
