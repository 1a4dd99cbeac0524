"""Do the reports tell the truth? summary, explain and gradient_flow.

explain's formulas are checked against every layer's real backward on random
data, and each check is shown to fail when a backward is wrong. The Jacobian
structure explain states is compared with the Jacobian built column by column.
summary's shapes and bytes are compared with what a hand-run pass produces.
"""

import json
import re

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.reports import explain, gradient_flow, summary
from user_layers import UserBlock

# these tests read whole formulas and rows: a width where nothing wraps
pytestmark = pytest.mark.usefixtures("wide_terminal")


def iris_net(dtype=np.float32, last=()):
    return gn.Sequential(
        gn.Dense(4, 5),
        gn.Tanh(),
        gn.Dense(5, 4),
        gn.Tanh(),
        gn.Dense(4, 3),
        *last,
        seed=0,
        dtype=dtype,
    )


def residual_mlp(dtype=np.float32):
    return gn.Sequential(
        gn.Dense(4, 8), gn.Tanh(),
        gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
        gn.Dense(8, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def nested_net(dtype=np.float32):
    return gn.Sequential(
        gn.Dense(4, 6), gn.Tanh(),
        gn.Sequential(gn.Dense(6, 5), gn.Sigmoid()),
        gn.Concat(gn.Dense(5, 2), gn.Sequential(gn.Dense(5, 3), gn.Tanh())),
        gn.Dense(5, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


RESIDUAL_ROWS = ["0", "1", "2", "2.block", "2.block.0", "2.block.1", "2.block.2", "3"]
NESTED_ROWS = ["0", "1", "2", "2.0", "2.1", "3", "3.0", "3.1", "3.1.0", "3.1.1", "4"]


# -- explain: every formula against the layer's own backward --------------------

LAYERS = [
    pytest.param(lambda: gn.Dense(4, 3), (4,), id="dense"),
    pytest.param(lambda: gn.Sigmoid(), (5,), id="sigmoid"),
    pytest.param(lambda: gn.Tanh(), (5,), id="tanh"),
    pytest.param(lambda: gn.ReLU(), (5,), id="relu"),
    pytest.param(lambda: gn.LeakyReLU(0.1), (5,), id="leaky-relu"),
    pytest.param(lambda: gn.Identity(), (5,), id="identity"),
    pytest.param(lambda: gn.Softmax(), (4,), id="softmax"),
    pytest.param(lambda: gn.Flatten(), (2, 3, 3), id="flatten"),
    pytest.param(lambda: gn.Dropout(0.3), (6,), id="dropout"),
    pytest.param(lambda: gn.Conv2D(2, 3, 3), (2, 6, 5), id="conv"),
    pytest.param(
        lambda: gn.Conv2D(2, 3, 3, stride=2, padding=1), (2, 7, 6), id="conv-s2p1"
    ),
    pytest.param(
        lambda: gn.Conv2D(1, 2, (2, 3), padding="same"), (1, 5, 6), id="conv-same"
    ),
    pytest.param(lambda: gn.Conv2D(3, 2, 1), (3, 4, 4), id="conv-1x1"),
    pytest.param(lambda: gn.MaxPool2D(2), (2, 6, 6), id="maxpool"),
    pytest.param(lambda: gn.MaxPool2D(3, stride=1), (1, 5, 5), id="maxpool-overlap"),
    pytest.param(lambda: gn.AvgPool2D(2), (2, 4, 6), id="avgpool"),
    pytest.param(lambda: gn.AvgPool2D(3, stride=2), (1, 7, 7), id="avgpool-overlap"),
    pytest.param(
        lambda: gn.Conv2D(2, 3, (1, 3), (2, 1), ((1, 0), (2, 1))),
        (2, 6, 5),
        id="conv-per-axis",
    ),
    pytest.param(
        lambda: gn.MaxPool2D((2, 3), (1, 2), "same"), (2, 5, 6), id="maxpool-same"
    ),
    pytest.param(
        lambda: gn.AvgPool2D(3, (2, 1), ((1, 2), (0, 1))), (2, 6, 5), id="avgpool-pad"
    ),
    pytest.param(lambda: gn.Conv1D(2, 3, 3), (2, 9), id="conv1d"),
    pytest.param(lambda: gn.Conv1D(2, 3, 3, 2, 1), (2, 10), id="c1d-s2p1"),
    pytest.param(lambda: gn.Conv1D(1, 2, 4, 3, "same"), (1, 11), id="c1d-same"),
    pytest.param(lambda: gn.Conv1D(3, 2, 2, padding=(0, 1)), (3, 5), id="c1d-lr"),
    pytest.param(lambda: gn.Conv1D(3, 2, 1), (3, 4), id="conv1d-k1"),
    pytest.param(lambda: gn.MaxPool1D(2), (2, 8), id="maxpool1d"),
    pytest.param(lambda: gn.MaxPool1D(3, 1, 1), (2, 7), id="maxp1d-overlap"),
    pytest.param(lambda: gn.MaxPool1D(4, 3, "same"), (1, 10), id="maxpool1d-same"),
    pytest.param(lambda: gn.AvgPool1D(2), (3, 6), id="avgpool1d"),
    pytest.param(lambda: gn.AvgPool1D(3, 2, ((2, 1),)), (2, 7), id="avgpool1d-pad"),
]  # fmt: skip


@pytest.mark.parametrize("make, shape", LAYERS)
@pytest.mark.parametrize("batch", [1, 3])
def test_every_formula_matches_the_layer_backward(make, shape, batch):
    model = gn.Sequential(make(), seed=0)
    report = explain(model, shape, batch_size=batch)
    entry = report.layers[0]
    params = [p.name for p in model[0].parameters()]
    assert sorted(entry.check) == sorted(["x", *params])  # every gradient is checked
    assert entry.matches and report.matches, entry.check
    assert max(entry.check.values()) < 1e-9


class WrongDenseBias(gn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.bias.grad = dout.mean(axis=0)
        return dx


class WrongSoftmax(gn.Softmax):
    def backward(self, dout):
        s = self._cached()
        return dout * s * (1 - s)


class WrongTanh(gn.Tanh):
    def backward(self, dout):
        return dout * (1 - self._cached())


class WrongConv(gn.Conv2D):
    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = self.weight.grad[:, :, ::-1, ::-1].copy()  # flipped kernel
        return dx


class WrongMaxPool(gn.MaxPool2D):
    def backward(self, dout):
        return super().backward(dout) * 2.0


class WrongConv1D(gn.Conv1D):
    """dL/dx one sample off: the padding offset miscounted (a common slip)."""

    def backward(self, dout):
        dx = super().backward(dout)
        return np.roll(dx, 1, axis=2)


class WrongConv1DWeight(gn.Conv1D):
    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = self.weight.grad[:, :, ::-1].copy()  # flipped kernel
        return dx


class WrongAvgPool1D(gn.AvgPool1D):
    def backward(self, dout):
        return super().backward(dout) * self.kernel_size[0]  # forgets the 1/K


@pytest.mark.parametrize(
    "layer, shape, bad",
    [
        (WrongDenseBias(4, 3), (4,), "bias"),
        (WrongSoftmax(), (4,), "x"),
        (WrongTanh(), (4,), "x"),
        (WrongConv(1, 2, 3), (1, 5, 5), "weight"),
        (WrongMaxPool(2), (1, 4, 4), "x"),
        (WrongConv1D(2, 2, 3, stride=2), (2, 9), "x"),
        (WrongConv1DWeight(1, 2, 3, padding=1), (1, 6), "weight"),
        (WrongAvgPool1D(3, stride=2), (2, 7), "x"),
    ],
)
def test_a_wrong_backward_fails_the_formula_check(layer, shape, bad):
    """A subclass inherits the formula of its parent; its broken backward is caught."""
    report = explain(gn.Sequential(layer, seed=0), shape, batch_size=3)
    entry = report.layers[0]
    assert not entry.matches and not report.matches
    assert entry.check[bad] > 1e-3
    assert "DIFFERS from backward" in str(report)
    assert "WARNING: layer 0" in str(report)


def _jacobian(layer, x):
    """d out / d x, (out.size, x.size), built from backward with unit upstream
    gradients (row k of the Jacobian is the VJP with e_k)."""
    out = layer.forward(x)
    rows = []
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        layer.forward(x)
        rows.append(layer.backward(e.reshape(out.shape)).ravel())
    return np.array(rows)


@pytest.mark.parametrize(
    "make, shape, exact",
    [
        (lambda: gn.Dense(4, 3, dtype=np.float64), (4,), True),
        (lambda: gn.Softmax(), (3,), True),
        (lambda: gn.Tanh(), (4,), True),
        (lambda: gn.Conv2D(1, 2, 3, padding=1, dtype=np.float64), (1, 4, 4), True),
        (lambda: gn.MaxPool2D(2), (2, 4, 4), True),
        (lambda: gn.AvgPool2D(2), (1, 4, 4), True),
        (lambda: gn.Conv1D(2, 2, 3, 2, 1, dtype=np.float64), (2, 8), True),
        (lambda: gn.Conv1D(1, 2, 4, 3, "same", dtype=np.float64), (1, 10), True),
        (lambda: gn.MaxPool1D(3, 1, 1), (2, 6), True),
        (lambda: gn.AvgPool1D(3, 2, 2), (2, 7), True),
    ],
)
def test_stated_jacobian_shape_and_sparsity_are_the_real_ones(make, shape, exact, rng):
    layer = make()
    N = 3
    x = rng.uniform(0.1, 1.0, (N, *shape)) * rng.choice([-1.0, 1.0], (N, *shape))
    J = _jacobian(layer, x)
    report = explain(gn.Sequential(layer, seed=0, dtype=np.float64), X=x)
    stated = report.layers[0].derivation.jacobian
    assert (stated.rows, stated.cols) == J.shape
    nonzero = int(np.sum(np.abs(J) > 1e-14))
    assert nonzero == stated.nonzeros if exact else nonzero <= stated.nonzeros
    # block-diagonal over the batch: no entry links two different examples
    per_out, per_in = J.shape[0] // N, J.shape[1] // N
    for n in range(N):
        for m in range(N):
            block = J[n * per_out : (n + 1) * per_out, m * per_in : (m + 1) * per_in]
            assert n == m or not block.any()


def test_conv1d_explanation_states_the_users_numbers():
    model = gn.Sequential(gn.Conv1D(2, 3, 4, stride=3, padding="same"), seed=0)
    d = explain(model, (2, 10), batch_size=5).layers[0].derivation
    text = " ".join(
        [d.forward.formula, d.forward.shapes, *d.why, d.jacobian.text()]
        + [f"{s.name} {s.formula} {s.shapes}" for s in d.backward]
    )
    # "same" with stride 3 on 10 samples: L_out = 4, total (4-1)*3 + 4 - 10 = 3
    assert "(5, 2, 10) * (3, 2, 4) + (3,) -> (5, 3, 4)" in text
    assert "padding 'same' = (1, 2)" in text
    assert "L_out = (10 + 1 + 2 - 4) // 3 + 1 = 4" in text
    assert "transposed correlation" in text and "read with stride 3" in text
    assert "-> (3, 2, 4) = W's shape" in text and "-> (5, 2, 10) = x's shape" in text
    pool = explain(gn.Sequential(gn.MaxPool1D(2), seed=0), (1, 6), batch_size=1)
    assert "first maximum" in str(pool) and "offset k" in str(pool)


def test_softmax_block_shown_is_diag_s_minus_s_st_of_example_0(rng):
    X = rng.normal(size=(5, 3))
    report = explain(gn.Sequential(gn.Softmax()), X=X)
    s = np.exp(X[0]) / np.exp(X[0]).sum()
    block = np.diag(s) - np.outer(s, s)
    shown = [step for step in report.layers[0].derivation.numbers][0].formula
    numbers = np.array([float(v) for v in shown.split()]).reshape(3, 3)
    np.testing.assert_allclose(numbers, block, atol=5e-4)
    assert "s * (g - (g * s).sum(axis=1, keepdims=True))" in str(report)
    assert "5 blocks diag(s) - s s.T of (3, 3)" in str(report)


def test_dense_explanation_names_the_shapes_of_this_batch():
    report = explain(iris_net(), (4,), batch_size=100)
    text = str(report)
    assert "(4, 100) @ (100, 5) -> (4, 5) = W's shape" in text
    assert "(100, 5) -> (5,) = b's shape" in text
    assert "block-diagonal: 100 blocks W.T of (5, 4)" in text
    assert "g * (1 - out**2)" in text and "Hadamard" in text


@pytest.mark.parametrize(
    "loss, last, formula",
    [
        ("softmax_cross_entropy", (), "(p - y) / 7"),
        ("cross_entropy", (gn.Softmax(),), "-y / p / 7"),
        ("mse", (), "2 * (pred - y) / 21"),
        ("binary_cross_entropy", (gn.Sigmoid(),), "(p - y) / (p (1 - p)) / 21"),
        ("binary_cross_entropy_with_logits", (), "(sigmoid(z) - y) / 21"),
    ],
)
def test_loss_derivative_matches_loss_backward(loss, last, formula):
    report = explain(iris_net(last=last), (4,), batch_size=7, loss=loss)
    assert report.loss is not None and report.loss.matches, report.loss.check
    assert formula in str(report)


def test_fused_softmax_cross_entropy_equals_the_jacobian_route(rng):
    """(p - y)/N against the chain rule with every softmax block built by hand."""
    X, labels = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    model = iris_net(np.float64)
    report = explain(model, X=X, y=labels, loss="softmax_cross_entropy")
    z = model.predict(X)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.eye(3)[labels]
    by_blocks = np.stack(
        [(np.diag(p[n]) - np.outer(p[n], p[n])) @ (-y[n] / p[n] / 6) for n in range(6)]
    )
    np.testing.assert_allclose(by_blocks, (p - y) / 6, atol=1e-12)
    assert report.loss.check["pred"] < 1e-12


class Cube(gn.Layer):
    """out = x**3"""

    def forward(self, x):
        self._cache = x
        return x**3

    def backward(self, dout):
        return dout * 3 * self._cached() ** 2


class CubeWrong(Cube):
    def backward(self, dout):
        return dout * 3 * self._cached()


def test_custom_layer_is_explained_by_a_gradient_check():
    good = explain(gn.Sequential(gn.Dense(3, 3), Cube(), seed=0), (3,), batch_size=4)
    assert good.matches and "out = x**3" in str(good)
    bad = explain(
        gn.Sequential(gn.Dense(3, 3), CubeWrong(), seed=0), (3,), batch_size=4
    )
    assert not bad.matches
    assert "WARNING: layer 1 (CubeWrong)" in str(bad)


def test_explain_leaves_the_model_alone(rng):
    model = iris_net()
    before = [p.data.copy() for p in model.parameters()]
    explain(model, (4,), loss="softmax_cross_entropy")
    summary(model, (4,))
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)
        assert not p.grad.any()
    assert model[0]._cache is None


def test_explain_errors_name_the_problem():
    with pytest.raises(
        ShapeError, match=r"layer 0 \(Dense\).*expects input of shape \(N, 4\)"
    ):
        explain(iris_net(), (3,))
    with pytest.raises(ArgumentTypeError, match="input_shape is required"):
        explain(gn.Sequential(gn.Conv2D(1, 2, 3)))
    with pytest.raises(ConfigError, match="format must be 'text' or 'markdown'"):
        explain(iris_net(), (4,), format="html")
    with pytest.raises(ShapeError, match="batch_size must be"):
        explain(iris_net(), (4,), batch_size=0)


# -- summary ----------------------------------------------------------------------


def test_summary_shapes_params_and_cache_bytes_for_iris():
    report = iris_net().summary((4,), batch_size=150)
    rows = report.rows
    assert [r.output_shape for r in rows] == [
        (150, 5),
        (150, 5),
        (150, 4),
        (150, 4),
        (150, 3),
    ]
    assert [r.params for r in rows] == [4 * 5 + 5, 0, 5 * 4 + 4, 0, 4 * 3 + 3]
    assert rows[0].param_grads == {"weight": (4, 5), "bias": (5,)}
    assert [r.input_grad for r in rows] == [
        (150, 4),
        (150, 5),
        (150, 5),
        (150, 4),
        (150, 4),
    ]
    # the Tanh outputs are the only new memory: each Dense caches its input,
    # which is the batch itself or the Tanh output just above it
    assert report.totals["cache_bytes"] == 150 * (5 + 4) * 4
    assert rows[2].cache[0][4] == "layer 1's out"
    assert report.totals["params"] == sum(p.size for p in iris_net().parameters())


def test_summary_of_a_cnn_matches_output_shape_and_counts_float64_bytes():
    model = gn.Sequential(
        gn.Conv2D(1, 2, 3, padding="same"),
        gn.ReLU(),
        gn.MaxPool2D(3),
        gn.Flatten(),
        gn.Dense(8, 2),
        seed=0,
        dtype=np.float64,
    )
    report = model.summary((1, 6, 6), batch_size=4)
    assert report.rows[-1].output_shape == (4, *model.output_shape((1, 6, 6)))
    assert report.rows[0].param_grads == {"weight": (2, 1, 3, 3), "bias": (2,)}
    relu = report.rows[1]
    assert relu.cache[0][:4] == ("out", (4, 2, 6, 6), "float64", 4 * 2 * 36 * 8)


def test_summary_errors():
    with pytest.raises(ShapeError, match="layer 0"):
        iris_net().summary((5,))
    with pytest.raises(ShapeError, match="input_shape must be"):
        iris_net().summary((0,))


@pytest.mark.parametrize(
    "make, names",
    [(residual_mlp, RESIDUAL_ROWS), (nested_net, NESTED_ROWS)],
    ids=["residual-mlp", "nested"],
)
def test_summary_of_a_nested_model_has_a_row_per_layer_and_adding_counts(make, names):
    model = make()
    report = model.summary((4,), batch_size=10)
    rows = {r.index: r for r in report.rows}
    assert list(rows) == names == [n for n, _ in model.named_layers()]
    total = sum(p.size for p in model.parameters())
    assert report.totals["params"] == total
    assert sum(r.params for r in report.rows if r.depth == 0) == total
    for name, layer in model.named_layers():  # a container shows its total
        row = rows[name]
        assert row.depth == name.count(".")
        inside = [rows[f"{name}.{n}"].params for n, _ in layer.children()]
        own = sum(p.size for p in layer.own_parameters())
        assert (
            row.params == own + sum(inside) == sum(p.size for p in layer.parameters())
        )
    lines = str(report).splitlines()
    column = next(line for line in lines if line.startswith("#")).index("layer")
    shown = {line.split()[0]: line[column:] for line in lines[4:] if line[:1].strip()}
    for name, _ in model.named_layers():  # "2.block.0    Dense(8, 8)", indented
        cell = "  " * name.count(".") + rows[name].layer + " "
        assert shown[name].startswith(cell), (name, shown[name])


def test_summary_of_a_residual_mlp_names_its_rows():
    report = residual_mlp().summary((4,), batch_size=10)
    rows = {r.index: r for r in report.rows}
    assert rows["2"].layer == "Residual" and rows["2"].params == 2 * (64 + 8)
    assert rows["2.block"].layer == "Sequential"
    assert rows["2.block.0"].layer == "Dense(8, 8)"
    assert rows["2.block.0"].param_grads == {"weight": (8, 8), "bias": (8,)}
    assert rows["2"].param_grads == {} and rows["2"].input_grad == (10, 8)
    assert rows["2.block.0"].cache[0][4] == "layer 1's out"  # the Residual's input


def test_summary_of_a_custom_composite_layer_counts_its_own_parameter():
    model = gn.Sequential(gn.Dense(4, 3), UserBlock(), gn.Dense(3, 3), seed=0)
    report = model.summary((4,), batch_size=5)
    rows = {r.index: r for r in report.rows}
    assert list(rows) == ["0", "1", "1.first", "1.second", "2"]
    assert rows["1"].params == 1 + 16 + 15 and rows["1"].param_grads == {"scale": ()}
    assert report.totals["params"] == sum(p.size for p in model.parameters())


@pytest.mark.parametrize(
    "make, names",
    [(residual_mlp, RESIDUAL_ROWS), (nested_net, NESTED_ROWS)],
    ids=["residual-mlp", "nested"],
)
def test_explain_of_a_nested_model_derives_every_layer_at_every_depth(make, names):
    model = make()
    report = explain(model, (4,), batch_size=3, loss="softmax_cross_entropy")
    entries = {e.index: e for e in report.layers}
    assert list(entries) == names
    assert report.matches, str(report)
    for name, layer in model.named_layers():
        entry = entries[name]
        assert entry.check and max(entry.check.values()) < 1e-9, (name, entry.check)
        if isinstance(layer, gn.Dense):  # a leaf: its own derivation, every gradient
            assert sorted(entry.check) == ["bias", "weight", "x"]
            assert entry.derivation.backward[0].formula == "x.T @ g"
        else:  # a container: how g reaches each layer inside, and the sum
            routed = {f"g of {n}" for n, _ in layer.children()}
            assert routed <= set(entry.check), entry.check
    text = str(report)
    for name, _ in model.named_layers():
        assert f"[{name}] " in text


def test_explain_states_the_residual_and_concat_rules():
    text = str(explain(nested_net(), (4,), batch_size=3))
    assert "out = every branch(x), joined on axis 1" in text
    assert "sum of branch.backward(its slice of g)" in text
    assert "g[:, 0:2]" in text and "g[:, 2:5]" in text
    text = str(explain(residual_mlp(), (4,), batch_size=3))
    assert "out = x + block(x)" in text
    assert "g + block.backward(g)" in text and "I + J_block" in text


class ForgetsIdentity(gn.Residual):
    def backward(self, dout):
        self._cached()
        return self.block.backward(dout)  # the identity path is lost


class DoublesBlockGradient(gn.Residual):
    def backward(self, dout):
        self._cached()
        return dout + self.block.backward(2 * dout)  # the block gets the wrong g


@pytest.mark.parametrize(
    "cls, bad", [(ForgetsIdentity, "x"), (DoublesBlockGradient, "g of block")]
)
def test_a_wrong_container_backward_fails_its_rule_and_only_its_rule(cls, bad):
    model = gn.Sequential(
        gn.Dense(4, 5), cls(gn.Sequential(gn.Dense(5, 5), gn.Tanh())), seed=0
    )
    report = explain(model, (4,), batch_size=3)
    entries = {e.index: e for e in report.layers}
    assert not entries["1"].matches and entries["1"].check[bad] > 1e-3
    assert all(e.matches for name, e in entries.items() if name != "1"), str(report)
    assert f"WARNING: layer 1 ({cls.__name__})" in str(report)


def test_explain_checks_a_custom_composite_and_the_layers_inside_it():
    model = gn.Sequential(gn.Dense(4, 3), UserBlock(), seed=0)
    report = explain(model, (4,), batch_size=3)
    entries = {e.index: e for e in report.layers}
    assert list(entries) == ["0", "1", "1.first", "1.second"]
    assert report.matches
    assert "input" in entries["1"].check and "first.weight" in entries["1"].check
    assert entries["1.first"].derivation.forward.formula == "out = x @ W + b"


def test_gradient_flow_of_a_nested_model_has_a_row_per_layer(rng):
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model = residual_mlp(np.float64)
    report = gradient_flow(model, X, y, "softmax_cross_entropy")
    rows = {r.index: r for r in report.rows}
    assert list(rows) == RESIDUAL_ROWS
    # the Residual hands g to its block unchanged; the block's last layer gets it
    assert (
        rows["2"].grad_norm == rows["2.block"].grad_norm == rows["2.block.2"].grad_norm
    )
    assert rows["2"].dx_norm != rows["2.block"].dx_norm  # + the identity path
    assert set(rows["2.block.0"].param_grads) == {"weight", "bias"}
    assert rows["2"].param_grads == {}


# -- every report renders three ways ------------------------------------------


def _reports(make=iris_net):
    X, y = gn.datasets.load_iris()
    model = make()
    return [
        model.summary((4,), batch_size=8),
        explain(model, (4,), batch_size=8, loss="softmax_cross_entropy"),
        gradient_flow(model, X[:20], y[:20], "softmax_cross_entropy"),
        gn.gradcheck(model, X[:5], y[:5], loss="softmax_cross_entropy"),
    ]


def test_every_report_is_text_html_and_a_json_dict():
    for report in _reports():
        text = str(report)
        assert "Dense" in text
        html = report._repr_html_()
        assert html.count("<table>") >= 1 and "Dense" in html
        json.dumps(report.to_dict())  # plain data all the way down


@pytest.mark.parametrize("make", [iris_net, residual_mlp, nested_net])
def test_plain_text_columns_line_up(make):
    """Under the dashes, every line of a table keeps its text inside the columns:
    the two spaces between columns are blank in the header and in every row."""
    for report in _reports(make)[:3]:
        lines = str(report).splitlines()
        k = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
        spans = [m.span() for m in re.finditer(r"-+", lines[k])]
        gaps = [
            i
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False)
            for i in range(end, start)
        ]
        table = [lines[k - 1]]
        title = re.compile(r"(\[[\w.]+\]|loss \w+:) ")  # explain's sections
        for i in range(k + 1, len(lines)):
            line = lines[i]
            if not line and not title.match(lines[i + 1]):
                break  # the blank line before the report's closing notes
            note = line.startswith("  *") or re.match(r"    \S", line)
            if line and not title.match(line) and not note:
                table.append(line)
        assert len(table) > 2
        for line in table:
            assert all(i >= len(line) or line[i] == " " for i in gaps), line
        header = lines[k - 1]
        assert all(header[a:b].strip() for a, b in spans)  # each column is named


def test_markdown_is_a_table_with_code_formulas():
    report = explain(iris_net(), (4,), batch_size=2, format="markdown")
    text = str(report)
    assert "| step | formula | shapes and structure |" in text
    assert "`x.T @ g`" in text
    assert text == report.to_markdown()


# -- gradient flow ------------------------------------------------------------------


def test_gradient_flow_norms_are_the_real_upstream_gradients(rng):
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    model = iris_net(np.float64)
    report = gradient_flow(model, X, y, "softmax_cross_entropy")
    loss = gn.SoftmaxCrossEntropy()
    outs = [X]
    for layer in model.layers:
        outs.append(layer.forward(outs[-1]))
    loss.forward(outs[-1], y)
    g = loss.backward()
    for layer, row in zip(model.layers[::-1], report.rows[::-1], strict=True):
        assert row.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-12)
        g = layer.backward(g)
    assert report.loss == pytest.approx(loss.forward(outs[-1], y))
    tanh = report.rows[1]
    assert tanh.saturated == pytest.approx(np.mean(np.abs(outs[2]) > 0.99))


def test_gradient_flow_warns_about_vanishing_saturated_dead_and_exploding(rng):
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    deep = [gn.Dense(4, 8), gn.Sigmoid()]
    for _ in range(10):
        deep += [gn.Dense(8, 8), gn.Sigmoid()]
    report = gradient_flow(gn.Sequential(*deep, gn.Dense(8, 3), seed=0), X * 20, y)
    text = "\n".join(report.warnings)
    assert "vanishing gradient" in text and "saturated" in text

    dead = gn.Sequential(gn.Dense(4, 6), gn.ReLU(), gn.Dense(6, 3), seed=0)
    dead[0].bias.data[:] = -100.0
    report = gradient_flow(dead, X, y)
    assert report.rows[1].dead == 1.0
    assert any("100% of its units are dead" in w for w in report.warnings)

    loud = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), seed=0)
    loud[2].weight.data[:] *= 1e5
    assert any("exploding gradient" in w for w in gradient_flow(loud, X, y).warnings)


def test_healthy_network_gets_no_warning(rng):
    X, y = gn.datasets.load_iris()
    X = (X - X.mean(0)) / X.std(0)
    report = gradient_flow(iris_net(), X, y)
    assert report.warnings == [] and "WARNING" not in str(report)


# -- the public names --------------------------------------------------------------


def test_public_names_and_lazy_import():
    assert gn.explain is explain and gn.gradient_flow is gradient_flow
    assert "explain" in gn.__all__ and "gradient_flow" in gn.__all__


# -- the command line ---------------------------------------------------------------


def test_cli_summary_and_explain_print_the_reports(tmp_path, capsys):
    from glassnet.cli import main

    path = tmp_path / "iris.safetensors"
    iris_net().save(path)
    assert main(["summary", str(path), "--batch-size", "150"]) == 0
    out = capsys.readouterr().out
    assert str(gn.load(path).summary((4,), batch_size=150)) in out
    assert (
        main(["explain", str(path), "--loss", "softmax_cross_entropy", "--markdown"])
        == 0
    )
    out = capsys.readouterr().out
    assert "| dL/dz | `(p - y) / 32` |" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["explain", "missing.safetensors"], "missing.safetensors"),
        (["explain", "{model}", "--input-shape", "3"], "in_features should be 3"),
        (["explain", "{model}", "--loss", "hinge"], "unknown loss 'hinge'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    from glassnet.cli import main

    path = tmp_path / "iris.safetensors"
    iris_net().save(path)
    args = [a.replace("{model}", str(path)) for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_gradient_flow_plot_has_a_bar_per_layer():
    pytest.importorskip("matplotlib").use("Agg")
    X, y = gn.datasets.load_iris()
    report = gradient_flow(iris_net(), X, y)
    figure = report.plot()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert len(labels) == len(report.rows) and "Tanh" in labels[1]


def test_only_keeps_the_chosen_layers_and_the_loss():
    report = explain(iris_net(), (4,), batch_size=3, loss="mse")
    part = report.only(1, "loss")
    assert [e.index for e in part.layers] == ["1"] and part.loss is report.loss
    assert "[1] Tanh" in str(part) and "[0] Dense" not in str(part)
    assert report.only(0).loss is None


def test_cli_explains_a_training_config_with_its_loss(tmp_path, capsys):
    from glassnet import cli

    config = tmp_path / "iris.toml"
    config.write_text(
        'seed = 0\n[data]\nbuiltin = "iris"\n[model]\nlayers = [\n'
        '  { type = "Dense", in_features = 4, out_features = 8 }, "tanh",\n'
        '  { type = "Dense", in_features = 8, out_features = 3 },\n]\n'
        '[train]\nloss = "softmax_cross_entropy"\nepochs = 1\n'
    )
    assert cli.main(["explain", str(config), "--batch-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "[2] Dense(8, 3)" in out and "(p - y) / 10" in out


def test_input_shape_is_found_inside_nested_first_layers():
    model = gn.Sequential(gn.Residual(gn.Sequential(gn.Dense(4, 4), gn.Tanh())), seed=0)
    assert summary(model).rows[0].input_shape == (32, 4)
    assert explain(model, batch_size=2).layers[0].input_shape == (2, 4)


@pytest.mark.parametrize("report", [explain, summary], ids=["explain", "summary"])
def test_a_data_batch_given_as_input_shape_is_named_with_a_hint(report):
    """The common slip explain(model, X) gets the array's shape and the X= hint,
    never the whole array printed into the message."""
    batch = np.random.default_rng(0).normal(size=(7, 4))
    with pytest.raises(ArgumentTypeError, match=r"array of shape \(7, 4\)") as err:
        report(iris_net(), batch)
    assert "X=" in str(err.value) and "batch.shape[1:]" in str(err.value)
    assert len(str(err.value)) < 400
