"""Layers that hold layers: the one tree walk, Residual, Concat, nested models.

Gradients of the containers are in test_gradients.py; file round trips in
test_serialization.py; the PyTorch comparison in test_composition_torch.py.
"""

import numpy as np
import pytest

import glassnet as gn


def f64(layer):
    """A layer with float64 weights, drawn from a fixed generator."""
    rng = np.random.default_rng(3)
    return gn.Dense(layer[0], layer[1], rng=rng, dtype=np.float64)


class TwoDense(gn.Layer):
    """A user's composite: out = b(tanh(a(x))), holding two Dense as attributes."""

    def __init__(self, rng) -> None:
        self.a = gn.Dense(3, 4, rng=rng, dtype=np.float64)
        self.act = gn.Tanh()
        self.b = gn.Dense(4, 2, rng=rng, dtype=np.float64)

    def forward(self, x):
        return self.b.forward(self.act.forward(self.a.forward(x)))

    def backward(self, dout):
        return self.a.backward(self.act.backward(self.b.backward(dout)))


class ListedComposite(TwoDense):
    """The same, listing its parameters by hand the way the old contract asked."""

    def parameters(self):
        return self.a.parameters() + self.b.parameters()


class Blocks(gn.Layer):
    """Sub-layers kept in a list."""

    def __init__(self, rng) -> None:
        self.blocks = [gn.Dense(2, 2, rng=rng), gn.Dense(2, 2, rng=rng)]


NAMING_CASES = [
    pytest.param(
        lambda rng: gn.Sequential(gn.Dense(2, 3), gn.Tanh(), gn.Dense(3, 1)),
        ["0.weight", "0.bias", "2.weight", "2.bias"],
        id="flat",
    ),
    pytest.param(
        lambda rng: gn.Sequential(
            gn.Dense(2, 2),
            gn.Residual(gn.Sequential(gn.Dense(2, 2), gn.Tanh(), gn.Dense(2, 2))),
        ),
        [
            "0.weight",
            "0.bias",
            "1.block.0.weight",
            "1.block.0.bias",
            "1.block.2.weight",
            "1.block.2.bias",
        ],
        id="residual",
    ),
    pytest.param(
        lambda rng: gn.Concat(gn.Dense(2, 1), gn.Sequential(gn.Dense(2, 3))),
        ["0.weight", "0.bias", "1.0.weight", "1.0.bias"],
        id="concat",
    ),
    pytest.param(
        lambda rng: gn.Sequential(TwoDense(rng)),
        ["0.a.weight", "0.a.bias", "0.b.weight", "0.b.bias"],
        id="custom-attributes",
    ),
    pytest.param(
        lambda rng: gn.Sequential(ListedComposite(rng)),
        ["0.a.weight", "0.a.bias", "0.b.weight", "0.b.bias"],
        id="custom-lists-parameters",
    ),
    pytest.param(
        lambda rng: Blocks(rng),
        ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"],
        id="custom-list-of-layers",
    ),
]


@pytest.mark.parametrize("make, names", NAMING_CASES)
def test_named_parameters_are_qualified_paths(make, names, rng):
    model = make(rng)
    pairs = model.named_parameters()
    assert [name for name, _ in pairs] == names
    assert [id(p) for _, p in pairs] == [id(p) for p in model.parameters()]
    # every tensor is a distinct array: nothing is listed twice
    assert len({id(p) for _, p in pairs}) == len(names)


def test_named_layers_lists_every_depth_parents_first():
    inner = gn.Sequential(gn.Dense(2, 2), gn.Tanh())
    model = gn.Sequential(gn.Dense(2, 2), gn.Residual(inner))
    assert [(n, type(layer).__name__) for n, layer in model.named_layers()] == [
        ("0", "Dense"),
        ("1", "Residual"),
        ("1.block", "Sequential"),
        ("1.block.0", "Dense"),
        ("1.block.1", "Tanh"),
    ]


class SameNames(gn.Layer):
    def __init__(self) -> None:
        self.w1 = gn.Parameter(np.zeros(2), "w")
        self.w2 = gn.Parameter(np.zeros(2), "w")


BAD_TREES = [
    pytest.param(
        lambda: (lambda d: gn.Sequential(d, gn.Tanh(), d))(gn.Dense(2, 2)),
        "same object",
        id="layer-used-twice",
    ),
    pytest.param(SameNames, "two parameters are named 'w'", id="duplicate-names"),
]


@pytest.mark.parametrize("make, message", BAD_TREES)
def test_trees_that_would_confuse_the_names_are_refused(make, message):
    with pytest.raises(gn.ConfigError, match=message):
        make().named_parameters()


# -- Residual and Concat: values, shapes, errors -------------------------------


def test_residual_adds_the_block_output_and_both_gradient_paths(rng):
    block = gn.Dense(3, 3, rng=rng, dtype=np.float64)
    layer = gn.Residual(block)
    x = rng.normal(size=(5, 3))
    W, b = block.weight.data, block.bias.data
    np.testing.assert_allclose(layer.forward(x), x + x @ W + b, rtol=1e-14)
    dout = rng.normal(size=(5, 3))
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, dout + dout @ W.T, rtol=1e-14)
    np.testing.assert_allclose(block.weight.grad, x.T @ dout, rtol=1e-14)


@pytest.mark.parametrize("axis", [1, -1])
def test_concat_joins_branches_and_sums_their_input_gradients(axis, rng):
    a = gn.Dense(3, 2, rng=rng, dtype=np.float64)
    b = gn.Dense(3, 4, rng=rng, dtype=np.float64)
    layer = gn.Concat(a, b, axis=axis)
    x = rng.normal(size=(5, 3))
    out = layer.forward(x)
    np.testing.assert_array_equal(out[:, :2], a.forward(x))
    np.testing.assert_array_equal(out[:, 2:], b.forward(x))
    dout = rng.normal(size=(5, 6))
    dx = layer.backward(dout)
    expected = dout[:, :2] @ a.weight.data.T + dout[:, 2:] @ b.weight.data.T
    np.testing.assert_allclose(dx, expected, rtol=1e-13)


def test_concat_joins_image_channels(rng):
    layer = gn.Concat(
        gn.Conv2D(1, 2, 3, padding=1, rng=rng), gn.Conv2D(1, 3, 1, rng=rng)
    )
    assert layer.forward(rng.normal(size=(2, 1, 5, 5))).shape == (2, 5, 5, 5)
    assert layer.output_shape((1, 5, 5)) == (5, 5, 5)


SHAPE_ERRORS = [
    pytest.param(
        lambda: gn.Residual(gn.Dense(3, 2)),
        (4, 3),
        "Residual: the block maps \\(N, 3\\) to \\(N, 2\\)",
        id="residual-changes-width",
    ),
    pytest.param(
        lambda: gn.Concat(gn.Flatten(), gn.Identity()),
        (4, 2, 3),
        "Concat: cannot join the branch outputs \\(N, 6\\), \\(N, 2, 3\\)",
        id="concat-ranks-differ",
    ),
    pytest.param(
        lambda: gn.Concat(gn.Identity(), gn.Identity(), axis=2),
        (4, 3),
        "along axis 2",
        id="concat-axis-out-of-range",
    ),
]


@pytest.mark.parametrize("make, x_shape, message", SHAPE_ERRORS)
def test_container_shape_errors_name_the_container(make, x_shape, message, rng):
    layer = make()
    with pytest.raises(gn.ShapeError, match=message):
        layer.forward(rng.normal(size=x_shape).astype(np.float32))
    with pytest.raises(gn.ShapeError, match=message):
        layer.output_shape(x_shape[1:])


CONSTRUCTOR_ERRORS = [
    pytest.param(lambda: gn.Residual("relu"), gn.ArgumentTypeError, id="residual"),
    pytest.param(lambda: gn.Concat(), gn.ConfigError, id="concat-empty"),
    pytest.param(lambda: gn.Concat(gn.Tanh(), 3), gn.ArgumentTypeError, id="concat"),
    pytest.param(lambda: gn.Concat(gn.Tanh(), axis=0), gn.ConfigError, id="axis-0"),
]


@pytest.mark.parametrize("make, error", CONSTRUCTOR_ERRORS)
def test_container_arguments_are_checked(make, error):
    with pytest.raises(error):
        make()


# -- nested models: modes, initialisation, training ------------------------------


def test_training_mode_reaches_dropout_at_every_depth(rng):
    drop = gn.Dropout(0.5)
    model = gn.Sequential(
        gn.Dense(4, 4), gn.Residual(gn.Sequential(drop, gn.Dense(4, 4))), seed=0
    )
    model.set_training(True)
    assert drop.training
    x = np.ones((8, 4), np.float32)
    model.forward(x)  # training=None keeps the mode set above
    assert drop.training
    model.predict(x)
    assert not drop.training


def test_nested_model_takes_the_outer_seed_unless_it_has_its_own():
    def build(inner_seed):
        inner = gn.Sequential(gn.Dense(3, 3), seed=inner_seed)
        return gn.Sequential(gn.Dense(3, 3), inner, seed=7)

    a, b = build(None), build(None)
    np.testing.assert_array_equal(a[1][0].weight.data, b[1][0].weight.data)
    own = build(11)
    alone = gn.Sequential(gn.Dense(3, 3), seed=11)
    np.testing.assert_array_equal(own[1][0].weight.data, alone[0].weight.data)


def test_nested_model_keeps_its_own_dtype():
    inner = gn.Sequential(gn.Dense(3, 3), dtype=np.float64)
    model = gn.Sequential(gn.Dense(3, 3), inner)
    assert model[0].weight.data.dtype == np.float32
    assert inner[0].weight.data.dtype == np.float64


RESIDUAL_MODELS = [
    pytest.param(
        lambda: gn.Sequential(
            gn.Dense(2, 16),
            gn.Tanh(),
            gn.Residual(gn.Sequential(gn.Dense(16, 16), gn.Tanh(), gn.Dense(16, 16))),
            gn.Dense(16, 3),
            seed=0,
        ),
        id="residual-mlp",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Concat(
                gn.Sequential(gn.Dense(2, 8), gn.Tanh()),
                gn.Sequential(gn.Dense(2, 8), gn.ReLU()),
            ),
            gn.Dense(16, 3),
            seed=0,
        ),
        id="concat-branches",
    ),
    pytest.param(
        lambda: gn.Sequential(
            gn.Sequential(gn.Dense(2, 16), gn.Tanh()), gn.Dense(16, 3), seed=0
        ),
        id="nested",
    ),
]


@pytest.mark.parametrize("make", RESIDUAL_MODELS)
def test_composed_models_train_every_parameter(make):
    X, y = gn.datasets.make_blobs(120, centers=3, n_features=2, seed=0)
    model = make()
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    history = model.fit(
        X,
        y,
        loss="softmax_cross_entropy",
        optimizer=gn.Adam(lr=0.02),
        epochs=60,
        batch_size=32,
        verbose=0,
    )
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert model.evaluate(X, y, loss="softmax_cross_entropy")["accuracy"] > 0.9
    for name, p in model.named_parameters():
        assert not np.array_equal(p.data, before[name]), f"{name} never changed"


def test_predict_proba_sees_a_softmax_at_the_end_of_a_nested_model(rng):
    inner = gn.Sequential(gn.Dense(3, 4), gn.Softmax())
    model = gn.Sequential(gn.Dense(2, 3), gn.Tanh(), inner, seed=0)
    X = rng.normal(size=(5, 2)).astype(np.float32)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, model.predict(X), rtol=1e-6)  # not twice
    assert abs(proba.sum(axis=1) - 1).max() < 1e-5
