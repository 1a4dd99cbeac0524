"""Does the checker catch real mistakes, and does it check people's own backprop?

Part 1 plants the classic backprop bugs, each as a user's custom Layer placed
inside a Sequential, and asks gn.gradcheck to fail and to name the layer and a
failing parameter row. Part 2 runs the seeds' own column-major code through
gn.gradcheck's function mode.
"""

import numpy as np
import pytest

import glassnet as gn
from user_layers import UserDense, UserSigmoid, UserSoftmax

# these tests read whole formulas and rows: a width where nothing wraps
pytestmark = pytest.mark.usefixtures("wide_terminal")

# -- part 1: planted bugs in custom layers -------------------------------------


class BiasSummedOverFeatures(UserDense):
    def backward(self, dout):
        x = self._cache
        self.weight.grad = x.T @ dout
        self.bias.grad = dout.sum(axis=1)  # BUG: over features, not over the batch
        return dout @ self.weight.data.T


class TransposedWeightGrad(UserDense):
    def backward(self, dout):
        x = self._cache
        self.weight.grad = (x.T @ dout).T  # BUG: fits only because weight is square
        self.bias.grad = dout.sum(axis=0)
        return dout @ self.weight.data.T


class BatchCentering(gn.Layer):
    """out = x - mean(x over the batch), as the first half of batch norm."""

    def forward(self, x):
        self._cache = x.shape[0]
        return x - x.mean(axis=0)

    def backward(self, dout):
        return dout - dout.mean(axis=0)


class CenteringWithout1OverN(BatchCentering):
    def backward(self, dout):
        return dout - dout.sum(axis=0)  # BUG: the mean's 1/N is missing


class SigmoidDerivativeOnZ(UserSigmoid):
    def backward(self, dout):
        z, a = self._cache
        return dout * z * (1.0 - z)  # BUG: s'(z) = s(z)(1 - s(z)), not z(1 - z)


class SoftmaxDiagonalOnly(UserSoftmax):
    def backward(self, dout):
        p = self._cache
        return dout * p * (1.0 - p)  # BUG: keeps only the Jacobian's diagonal


def _labels(n, k=3):
    return np.arange(n) % k


# (layers, faulty index, faulty class, a parameter row that must fail, batch, loss)
PLANTED = [
    pytest.param(
        # mid-network: rows of a softmax-CE gradient sum to 0, which would hide it
        lambda: [
            gn.Dense(4, 3),
            gn.Tanh(),
            BiasSummedOverFeatures(3, 3),
            gn.Tanh(),
            gn.Dense(3, 3),
        ],
        2,
        "BiasSummedOverFeatures",
        "2.bias",
        3,
        "softmax_cross_entropy",
        id="bias-wrong-axis",
    ),
    pytest.param(
        lambda: [gn.Dense(4, 5), gn.Tanh(), CenteringWithout1OverN(), gn.Dense(5, 3)],
        2,
        "CenteringWithout1OverN",
        "0.weight",
        6,
        "softmax_cross_entropy",
        id="missing-1-over-N",
    ),
    pytest.param(
        lambda: [gn.Dense(4, 3), gn.Tanh(), TransposedWeightGrad(3, 3)],
        2,
        "TransposedWeightGrad",
        "2.weight",
        5,
        "softmax_cross_entropy",
        id="transposed-weight-grad",
    ),
    pytest.param(
        lambda: [gn.Dense(4, 5), SigmoidDerivativeOnZ(), gn.Dense(5, 3)],
        1,
        "SigmoidDerivativeOnZ",
        "0.weight",
        5,
        "softmax_cross_entropy",
        id="sigmoid-derivative-on-z",
    ),
    pytest.param(
        lambda: [gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), SoftmaxDiagonalOnly()],
        3,
        "SoftmaxDiagonalOnly",
        "2.weight",
        5,
        "cross_entropy",
        id="softmax-derivative-elementwise",
    ),
]


@pytest.mark.parametrize("make_layers, index, cls, bad_row, batch, loss", PLANTED)
def test_planted_bug_is_caught_and_named(
    make_layers, index, cls, bad_row, batch, loss, rng
):
    model = gn.Sequential(*make_layers(), seed=0, dtype=np.float64)
    X = rng.normal(size=(batch, 4))
    report = gn.gradcheck(model, X, _labels(batch), loss=loss)
    assert not report.passed, str(report)
    assert bad_row in [row.name for row in report.failures()], str(report)
    named = [note for note in report.notes if note.startswith("faulty layer")]
    assert len(named) == 1, report.notes  # exactly the planted layer, nothing else
    assert named[0].startswith(f"faulty layer {index} ({cls})")
    assert f"faulty layer {index} ({cls})" in str(report)
    assert bad_row in str(report)


@pytest.mark.parametrize("make_layers, index, cls, bad_row, batch, loss", PLANTED)
def test_same_model_with_the_bug_fixed_passes(
    make_layers, index, cls, bad_row, batch, loss, rng
):
    """Control: the same architecture with the correct parent class passes, so the
    failure above comes from the planted line and nothing else."""
    layers = make_layers()
    buggy = layers[index]
    fixed = type(buggy).__mro__[1]  # the correct user layer the bug derives from
    layers[index] = fixed.__new__(fixed)
    layers[index].__dict__.update(buggy.__dict__)  # same weights, correct backward
    model = gn.Sequential(*layers, seed=0, dtype=np.float64)
    X = rng.normal(size=(batch, 4))
    report = gn.gradcheck(model, X, _labels(batch), loss=loss)
    assert report.passed, str(report)
    assert not report.notes


def test_transposed_weight_gradient_is_diagnosed(rng):
    model = gn.Sequential(gn.Dense(4, 3), gn.Tanh(), TransposedWeightGrad(3, 3), seed=0)
    report = gn.gradcheck(
        model, rng.normal(size=(5, 4)), _labels(5), loss="softmax_cross_entropy"
    )
    assert "transpose" in report["2.weight"].diagnosis


def test_missing_1_over_n_in_a_parameter_is_diagnosed(rng):
    """A Dense whose gradient forgets the mean's 1/N (a sum where the loss means)."""

    class SummingDense(UserDense):
        def backward(self, dout):
            n = len(dout)
            self.weight.grad = self._cache.T @ dout * n  # BUG: undoes the loss's 1/N
            self.bias.grad = dout.sum(axis=0) * n
            return dout @ self.weight.data.T

    model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), SummingDense(5, 3), seed=0)
    report = gn.gradcheck(
        model, rng.normal(size=(7, 4)), _labels(7), loss="softmax_cross_entropy"
    )
    assert not report["2.weight"].passed
    assert "missing 1/N" in report["2.weight"].diagnosis
    assert "7" in report["2.weight"].diagnosis
    assert any(
        note.startswith("faulty layer 2 (SummingDense)") for note in report.notes
    )


@pytest.mark.parametrize("scale", [1, 30, 60, 100, 200])
def test_confident_model_does_not_fail_on_rounding_noise(scale):
    """A well-trained classifier has a tiny loss computed as log(1 + tiny), whose
    rounding error is machine epsilon rather than machine epsilon * |loss|: the
    checker measures that noise instead of failing correct gradients on it."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0, dtype=np.float64
    )
    X = rng.normal(size=(10, 4))
    y = model.predict(X).argmax(axis=1)  # the labels it already predicts
    model[2].weight.data = model[2].weight.data * scale  # ever more confident
    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert report.passed, str(report)


def test_report_table_names_rows_and_verdicts(rng):
    model = gn.Sequential(
        gn.Dense(4, 3), gn.Tanh(), BiasSummedOverFeatures(3, 3), seed=0
    )
    report = gn.gradcheck(
        model, rng.normal(size=(3, 4)), _labels(3), loss="softmax_cross_entropy"
    )
    text = str(report)
    assert "gradcheck FAILED" in text
    assert "threshold 1e-07" in text
    for name in ["input", "0.weight", "0.bias", "2.weight", "2.bias"]:
        assert name in text
    worst = report.worst()
    assert not worst.passed
    assert worst.worst_index is not None and worst.analytic != worst.numeric
    assert report.to_dict()["passed"] is False


def test_large_tensor_is_sampled_and_still_caught(rng):
    """Above max_elements only a sample of entries is perturbed; a bug confined to
    one entry outside that sample is still caught by the whole-tensor projection."""

    class OneBadEntry(UserDense):
        def backward(self, dout):
            dx = super().backward(dout)
            g = self.weight.grad.copy()
            g[-1, -1] += 1e-3 * (abs(g[-1, -1]) + 1e-3)  # a small error in one entry
            self.weight.grad = g
            return dx

    model = gn.Sequential(OneBadEntry(40, 30), seed=0, dtype=np.float64)
    X = rng.normal(size=(4, 40))
    report = gn.gradcheck(
        model, X, rng.normal(size=(4, 30)), loss="mse", max_elements=50
    )
    row = report["0.weight"]
    assert row.checked < row.total == 1200
    assert not row.passed


# -- part 1b: layers that hold layers -------------------------------------------


class TwoDense(gn.Layer):
    """A user's composite layer: out = second(tanh(first(x))), two Dense inside."""

    def __init__(self, d: int = 4, hidden: int = 5, m: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.first = gn.Dense(d, hidden, rng=rng, dtype=np.float64)
        self.second = gn.Dense(hidden, m, rng=rng, dtype=np.float64)
        for dense in (self.first, self.second):  # nonzero biases: rows that test
            dense.bias.data = rng.normal(0, 0.5, dense.bias.shape)

    def forward(self, x):
        h = np.tanh(self.first.forward(x))
        self._cache = h
        return self.second.forward(h)

    def backward(self, dout):
        h = self._cache
        dh = self.second.backward(dout)
        return self.first.backward(dh * (1.0 - h**2))


class DoublesOneWeightGradient(TwoDense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.second.weight.grad = 2 * self.second.weight.grad  # BUG
        return dx


class UserResidual(gn.Layer):
    """A user's skip connection: out = x + block(x)."""

    def __init__(self, block: gn.Layer) -> None:
        self.block = block

    def forward(self, x):
        return x + self.block.forward(x)

    def backward(self, dout):
        return dout + self.block.backward(dout)


class ForgetsTheIdentityPath(UserResidual):
    def backward(self, dout):
        return self.block.backward(dout)  # BUG: dL/dx misses the identity's dout


def test_composite_layer_doubling_one_weight_gradient_fails_alone(rng):
    """The headline bug: four tensors, four uniquely named rows, the doubled one
    fails, and the composite itself is named (its Dense layers pass alone)."""
    layer = DoublesOneWeightGradient()
    report = gn.gradcheck(layer, rng.normal(size=(5, 4)))
    assert not report.passed
    names = [row.name for row in report.rows]
    assert names == [
        "input",
        "first.weight",
        "first.bias",
        "second.weight",
        "second.bias",
    ]
    assert [r.layer for r in report.rows[1:]] == ["first Dense"] * 2 + [
        "second Dense"
    ] * 2
    assert [r.name for r in report.failures()] == ["second.weight"]
    assert "analytic = 2 x numeric" in report["second.weight"].diagnosis
    (note,) = [n for n in report.notes if n.startswith("faulty layer")]
    assert note.startswith("faulty layer DoublesOneWeightGradient: ")
    assert "second.weight (analytic = 2 x numeric" in note
    assert "every layer inside it passes on its own" in note
    fixed = TwoDense()
    assert gn.gradcheck(fixed, rng.normal(size=(5, 4))).passed


def test_composite_layer_doubling_one_weight_gradient_fails_in_a_model(rng):
    model = gn.Sequential(
        gn.Dense(4, 4), gn.Tanh(), DoublesOneWeightGradient(), seed=0, dtype=float
    )
    report = gn.gradcheck(model, rng.normal(size=(6, 4)), _labels(6),
                          loss="softmax_cross_entropy")  # fmt: skip
    assert not report.passed, str(report)
    names = [row.name for row in report.rows]
    for name in ["2.first.weight", "2.first.bias", "2.second.weight", "2.second.bias"]:
        assert names.count(name) == 1, names
    assert len(names) == len(set(names)) == 1 + len(model.parameters())
    assert report["2.second.weight"].layer == "2.second Dense"
    assert not report["2.second.weight"].passed
    named = [n for n in report.notes if n.startswith("faulty layer")]
    assert len(named) == 1, report.notes
    assert named[0].startswith("faulty layer 2 (DoublesOneWeightGradient): ")
    assert "2.second.weight (analytic = 2 x numeric" in named[0]


def _residual_blocks(inner):
    return [gn.Dense(4, 3), gn.Tanh(), gn.Residual(gn.Sequential(*inner)),
            gn.Dense(3, 3)]  # fmt: skip


# (layers, faulty layer's path, its class, a failing row the note must name)
NESTED_PLANTED = [
    pytest.param(
        lambda: _residual_blocks([TransposedWeightGrad(3, 3), gn.Tanh()]),
        "2.block.0",
        "TransposedWeightGrad",
        "2.block.0.weight",
        id="residual-sequential-transposed-weight",
    ),
    pytest.param(
        lambda: [
            gn.Dense(4, 5),
            gn.Concat(
                gn.Dense(5, 2), gn.Sequential(gn.Tanh(), CenteringWithout1OverN())
            ),
            gn.Dense(7, 3),
        ],
        "1.1.1",
        "CenteringWithout1OverN",
        "input",
        id="concat-branch-missing-1-over-N",
    ),
    pytest.param(
        lambda: [
            gn.Dense(4, 3),
            gn.Residual(DoublesOneWeightGradient(3, 4, 3)),
            gn.Dense(3, 3),
        ],
        "1.block",
        "DoublesOneWeightGradient",
        "1.block.second.weight",
        id="composite-inside-residual",
    ),  # fmt: skip
    pytest.param(
        lambda: [
            gn.Dense(4, 3),
            ForgetsTheIdentityPath(gn.Sequential(gn.Dense(3, 3), gn.Tanh())),
            gn.Dense(3, 3),
        ],
        "1",
        "ForgetsTheIdentityPath",
        "input",
        id="residual-forgets-identity",
    ),
    pytest.param(
        lambda: [
            gn.Dense(4, 3),
            UserResidual(gn.Sequential(gn.Dense(3, 3), SigmoidDerivativeOnZ())),
            gn.Dense(3, 3),
        ],
        "1.block.1",
        "SigmoidDerivativeOnZ",
        "input",
        id="user-residual-sigmoid-derivative-on-z",
    ),
]


@pytest.mark.parametrize("make_layers, path, cls, bad_row", NESTED_PLANTED)
def test_planted_bug_at_any_depth_is_named_by_its_path(
    make_layers, path, cls, bad_row, rng
):
    model = gn.Sequential(*make_layers(), seed=0, dtype=np.float64)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data = rng.normal(0, 0.5, p.shape)
    X = rng.normal(size=(5, 4))
    report = gn.gradcheck(model, X, _labels(5), loss="softmax_cross_entropy")
    assert not report.passed, str(report)
    named = [note for note in report.notes if note.startswith("faulty layer")]
    assert len(named) == 1, report.notes  # the deepest faulty layer, nothing else
    assert named[0].startswith(f"faulty layer {path} ({cls}): "), named[0]
    assert bad_row in named[0].split(": ", 1)[1]

    for _, layer in model.named_layers():  # control: the same model, bug fixed
        if type(layer).__name__ == cls:
            layer.__class__ = type(layer).__mro__[1]
    fixed = gn.gradcheck(model, X, _labels(5), loss="softmax_cross_entropy")
    assert fixed.passed, str(fixed)
    assert not fixed.notes


# -- part 2: the seeds' own column-major backprop, checked in function mode ----


def _tanh_net_arrays(rng):
    """Seed 000's parameters (uniform in [0, 1) like np.random.rand), with bias
    columns (M, 1) instead of the seed's (M, 100) matrices."""
    return {
        "w1": rng.random((5, 4)),
        "b0": np.ones((5, 1)),
        "w2": rng.random((4, 5)),
        "b1": np.ones((4, 1)),
        "w3": rng.random((3, 4)),
        "b2": np.ones((3, 1)),
    }


def _seed000_data(rng, n=100, standardize=True):
    X, y = gn.datasets.load_iris()
    rows = rng.choice(len(X), n, replace=False)
    X = X[rows]
    if standardize:  # so that tanh is not flat and every gradient is sizeable
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.T, np.eye(3)[y[rows]].T  # the seed's layout: X (4, N), y (3, N)


def _seed_softmax(x):
    e_x = np.exp(x - np.max(x))  # the seed's own softmax: one global shift, which is
    return e_x / e_x.sum(axis=0)  # still exact per column


def seed000_loss(a, X, y):
    x1 = np.tanh(a["w1"] @ X + a["b0"])
    x2 = np.tanh(a["w2"] @ x1 + a["b1"])
    x3 = _seed_softmax(a["w3"] @ x2 + a["b2"])
    return -np.sum(y * np.log(x3)) / X.shape[1]


def seed000_grad(a, X, y):
    x1 = np.tanh(a["w1"] @ X + a["b0"])
    x2 = np.tanh(a["w2"] @ x1 + a["b1"])
    x3 = _seed_softmax(a["w3"] @ x2 + a["b2"])
    N = X.shape[1]
    delta_3 = (x3 - y) / N  # the seed's line, with N = 100 rows
    delta_2 = np.multiply(a["w3"].T @ delta_3, 1 - np.power(x2, 2))
    delta_1 = np.multiply(a["w2"].T @ delta_2, 1 - np.power(x1, 2))
    return {
        "w1": delta_1 @ X.T,
        "b0": delta_1.sum(axis=1, keepdims=True),  # one bias per unit: sum over N
        "w2": delta_2 @ x1.T,
        "b1": delta_2.sum(axis=1, keepdims=True),
        "w3": delta_3 @ x2.T,
        "b2": delta_3.sum(axis=1, keepdims=True),
    }


@pytest.mark.parametrize("standardize", [False, True], ids=["raw-cm", "standardized"])
def test_seed000_column_major_backprop_passes(standardize, rng):
    """raw-cm: the seed's own unscaled data, where the first tanh layer saturates
    and its gradients are ~1e-9; the check must not cry wolf there either."""
    X, y = _seed000_data(rng, standardize=standardize)
    assert X.shape == (4, 100)
    report = gn.gradcheck(
        lambda a: seed000_loss(a, X, y),
        _tanh_net_arrays(rng),
        grad=lambda a: seed000_grad(a, X, y),
    )
    assert report.passed, str(report)
    assert [row.name for row in report.rows] == ["w1", "b0", "w2", "b1", "w3", "b2"]
    assert report.worst().max_error <= 1e-7


def test_seed000_output_delta_without_1_over_n_fails(rng):
    """Control: dropping the seed's /100 is caught, on every array."""
    X, y = _seed000_data(rng)

    def grad(a):
        return {k: v * X.shape[1] for k, v in seed000_grad(a, X, y).items()}

    report = gn.gradcheck(
        lambda a: seed000_loss(a, X, y), _tanh_net_arrays(rng), grad=grad
    )
    assert not report.passed
    assert all(not row.passed for row in report.rows)
    assert "missing 1/N (N = 100" in report["w3"].diagnosis


# Seed 001: a list of weight matrices with the bias folded in as a last column,
# one column-vector sample at a time; backprop sums over the four XOR samples as
# its grad_descent does. Its cross_entropy derivative p - y is taken with respect
# to the softmax input, so the matching loss is the sum of -sum(y log p).


def _sigmoid(n, deriv=False):
    if deriv:
        return np.multiply(n, np.subtract(1, n))
    return 1 / (1 + np.exp(-n))


def _softmax(X):
    exps = np.exp(X - np.max(X))
    return exps / np.sum(exps)


XOR_X = [
    np.array([[0.0], [0.0]]),
    np.array([[0.0], [1.0]]),
    np.array([[1.0], [0.0]]),
    np.array([[1.0], [1.0]]),
]
XOR_Y = [
    np.array([[1.0], [0.0]]),
    np.array([[0.0], [1.0]]),
    np.array([[0.0], [1.0]]),
    np.array([[1.0], [0.0]]),
]


def seed001_ff(weights, X, activate_fns):
    activations, zs = [], []
    for activate, w in zip(activate_fns, weights, strict=True):
        X = np.vstack([X, np.ones((1, 1))])  # adding bias
        z = w.dot(X)
        X = activate(z)
        zs.append(z)
        activations.append(X)
    return activations, zs


def seed001_backprop(
    weights, X, y, activate_fns, *, deriv_on_z=False, wrong_index=False
):
    """The seed's NN.backprop; the two keyword flags put its two bugs back."""
    activations, zs = seed001_ff(weights, X, activate_fns)
    activations.insert(0, X)
    deltas = [0 for _ in range(len(weights))]
    grad_w = [0 for _ in range(len(weights))]
    deltas[-1] = activations[-1] - y  # cross_entropy(y, p, deriv=True)
    grad_w[-1] = np.dot(deltas[-1], np.vstack([activations[-2], np.ones((1, 1))]).T)
    for i in range(len(weights) - 2, -1, -1):
        # the seed: self.activate_fns[i](zs[i], True), i.e. sigmoid(z, deriv=True)
        local = activate_fns[i](zs[i] if deriv_on_z else activations[i + 1], True)
        deltas[i] = np.dot(weights[i + 1][:, :-1].T, deltas[i + 1]) * local
        # the seed: activations[max(0, i-1)]; the input to weights[i] is activations[i]
        a_in = activations[max(0, i - 1)] if wrong_index else activations[i]
        grad_w[i] = np.hstack((np.dot(deltas[i], a_in.T), deltas[i]))
    return grad_w


def _seed001_check(sizes, seed_loss=False, **bugs):
    rng = np.random.default_rng(1)
    # like the seed: rand() with random signs
    keys = [f"w{i}" for i in range(len(sizes) - 1)]
    arrays = {
        k: rng.random((m, d + 1)) * rng.choice([-1.0, 1.0], (m, d + 1))
        for k, d, m in zip(keys, sizes[:-1], sizes[1:], strict=True)
    }
    fns = [_sigmoid] * (len(sizes) - 2) + [_softmax]

    def loss(a):
        weights = [a[k] for k in keys]
        total = 0.0
        for x, t in zip(XOR_X, XOR_Y, strict=True):
            p = seed001_ff(weights, x, fns)[0][-1]
            # seed_loss: the seed's cross_entropy divides by N = p.shape[0], which
            # in its column layout is the number of classes, not of samples
            total -= float(np.sum(t * np.log(p))) / (p.shape[0] if seed_loss else 1)
        return total

    def grad(a):
        weights = [a[k] for k in keys]
        sums = [np.zeros_like(w) for w in weights]
        for x, t in zip(XOR_X, XOR_Y, strict=True):
            for s, g in zip(
                sums, seed001_backprop(weights, x, t, fns, **bugs), strict=True
            ):
                s += g
        return dict(zip(keys, sums, strict=True))

    return gn.gradcheck(loss, arrays, grad=grad)


@pytest.mark.parametrize("sizes", [[2, 2, 2], [2, 2, 2, 2]], ids=["2-2-2", "2-2-2-2"])
def test_seed001_fixed_backprop_passes(sizes):
    report = _seed001_check(sizes)
    assert report.passed, str(report)
    assert [row.name for row in report.rows] == [f"w{i}" for i in range(len(sizes) - 1)]


@pytest.mark.parametrize(
    "sizes, bug, failing, passing",
    [
        pytest.param([2, 2, 2], "deriv_on_z", ["w0"], ["w1"], id="deriv-on-z-2-2-2"),
        pytest.param(
            [2, 2, 2, 2], "deriv_on_z", ["w0", "w1"], ["w2"], id="deriv-on-z-3-layer"
        ),
        pytest.param(
            [2, 2, 2, 2], "wrong_index", ["w1"], ["w0", "w2"], id="wrong-index"
        ),
    ],
)
def test_seed001_bugs_fail_on_the_right_array(sizes, bug, failing, passing):
    report = _seed001_check(sizes, **{bug: True})
    assert not report.passed
    assert sorted(row.name for row in report.failures()) == failing, str(report)
    for name in passing:
        assert report[name].passed, str(report)
    for name in failing:
        assert f"{name} " in str(report)  # the table names the array


def test_seed001_wrong_index_is_harmless_in_the_seeds_own_2_2_2_net():
    """Why the 3-layer net above: with one hidden layer max(0, i - 1) is 0 for the
    only i the loop visits, so the wrong index picks the right activation."""
    report = _seed001_check([2, 2, 2], wrong_index=True)
    assert report.passed, str(report)


def test_seed001_loss_divided_by_class_count_is_diagnosed():
    """A third mismatch in the seed: its loss divides by p.shape[0] (2 classes in
    its column layout) while its derivative p - y does not."""
    report = _seed001_check([2, 2, 2], seed_loss=True)
    assert not report.passed
    assert all("twice too large" in row.diagnosis for row in report.rows), str(report)


def test_gradients_below_resolution_pass_with_a_note_not_a_failure():
    """A saturated model's gradients (~1e-23) are far below what central
    differences resolve (f is constant to the last bit there): the check must not
    fail a correct model, and must say that it could not confirm those rows."""
    X, y = gn.datasets.make_blobs(30, 2, 2, seed=0)
    model = gn.Sequential(gn.Dense(2, 2), seed=0)
    model.fit(X, y, optimizer=gn.Adam(lr=0.5), epochs=300, verbose=0)
    report = gn.gradcheck(model, X[:5], y[:5], loss="softmax_cross_entropy")
    assert report.passed, str(report)
    assert all(row.unresolved for row in report.rows)
    assert any("below what finite differences resolve" in n for n in report.notes)


def test_resolved_rows_carry_no_unresolved_note(rng):
    model = gn.Sequential(gn.Dense(3, 2), seed=0, dtype=np.float64)
    X, y = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert report.passed
    assert not any(row.unresolved for row in report.rows)
    assert not any("below what finite differences" in n for n in report.notes)


@pytest.mark.parametrize("epochs", range(1, 60, 4))
def test_confident_custom_model_passes_at_every_stage_of_training(epochs):
    """A correct model must pass however far training has gone (this failed at
    some epoch counts when the rounding-noise estimate was too optimistic)."""
    X, y = gn.datasets.make_blobs(30, 2, 2, seed=0)
    model = gn.Sequential(gn.Dense(2, 2), gn.Tanh(), gn.Dense(2, 2), seed=0)
    model.fit(X, y, optimizer=gn.Adam(lr=0.05), epochs=epochs, verbose=0)
    report = gn.gradcheck(model, X[:5], y[:5], loss="softmax_cross_entropy")
    assert report.passed, str(report)


def test_table_shows_raw_error_and_marks_rounding_only_passes():
    X, y = gn.datasets.make_blobs(30, 2, 2, seed=0)
    model = gn.Sequential(gn.Dense(2, 2), gn.Tanh(), gn.Dense(2, 2), seed=0)
    model.fit(X, y, optimizer=gn.Adam(lr=0.05), epochs=37, verbose=0)
    report = gn.gradcheck(model, X[:5], y[:5], loss="softmax_cross_entropy")
    assert report.passed
    marked = [r for r in report.rows if r.raw_error > report.threshold]
    assert marked, "this confident model has entries only rounding separates"
    text = str(report)
    assert "ok*" in text and "rounding error" in text
    for r in marked:
        assert f"{r.raw_error:.2e}" in text
