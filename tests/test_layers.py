"""Layers and Sequential: shapes, parameter inventory, call order, edge sizes,
and the vectorised backward passes against naive per-row references."""

import numpy as np
import pytest

import glassnet as gn

ALL_LAYERS = [
    pytest.param(lambda: gn.Dense(4, 3), id="dense"),
    pytest.param(gn.Sigmoid, id="sigmoid"),
    pytest.param(gn.Tanh, id="tanh"),
    pytest.param(gn.ReLU, id="relu"),
    pytest.param(gn.LeakyReLU, id="leaky_relu"),
    pytest.param(gn.Identity, id="identity"),
    pytest.param(gn.Softmax, id="softmax"),
]


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("make", ALL_LAYERS)
def test_shapes_forward_and_backward(make, batch, rng):
    layer = make()
    x = rng.normal(size=(batch, 4)).astype(np.float32)
    out = layer.forward(x)
    expected = (batch, 3) if isinstance(layer, gn.Dense) else (batch, 4)
    assert out.shape == expected
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    for p in layer.parameters():
        assert p.grad.shape == p.data.shape


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_parameters_lists_every_parameter_attribute(make):
    layer = make()
    attributes = [v for v in vars(layer).values() if isinstance(v, gn.Parameter)]
    assert [id(p) for p in layer.parameters()] == [id(p) for p in attributes]


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_backward_before_forward_raises_call_order_error(make):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(
        gn.CallOrderError, match=rf"{name}\.backward\(\) was called before"
    ):
        layer.backward(np.ones((2, 4)))


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_backward_twice_gives_the_same_gradients(make, rng):
    """Gradients replace, they do not accumulate."""
    layer = make()
    x = rng.normal(size=(5, 4))
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx1 = layer.backward(dout).copy()
    grads1 = [p.grad.copy() for p in layer.parameters()]
    dx2 = layer.backward(dout)
    np.testing.assert_array_equal(dx1, dx2)
    for p, g in zip(layer.parameters(), grads1, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_dense_parameters_and_backward_by_hand():
    dense = gn.Dense(2, 3, dtype=np.float64)
    assert dense.weight.shape == (2, 3) and dense.bias.shape == (3,)
    dense.weight.data = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    dense.bias.data = np.array([0.5, -0.5, 1.0])
    x = np.array([[1.0, 1.0], [2.0, -1.0]])
    out = dense.forward(x)
    np.testing.assert_array_equal(out, [[5.5, 6.5, 10.0], [-1.5, -1.5, 1.0]])
    dout = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    dx = dense.backward(dout)
    np.testing.assert_array_equal(
        dense.weight.grad, [[1.0, 2.0, 2.0], [1.0, -1.0, -1.0]]
    )
    np.testing.assert_array_equal(dense.bias.grad, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dx, [[1.0, 4.0], [5.0, 11.0]])


def test_softmax_backward_equals_the_explicit_jacobian(rng):
    """The naive reference: build diag(s) - s s^T for every row, multiply."""
    softmax = gn.Softmax()
    x, dout = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    s = softmax.forward(x)
    dx = softmax.backward(dout)
    for n in range(len(x)):
        jacobian = np.diag(s[n]) - np.outer(s[n], s[n])
        np.testing.assert_allclose(dx[n], jacobian @ dout[n], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-15)


@pytest.mark.parametrize(
    "layer, x, out, slope",
    [
        (gn.ReLU(), [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]),
        (gn.LeakyReLU(0.1), [-2.0, 0.0, 3.0], [-0.2, 0.0, 3.0], [0.1, 0.1, 1.0]),
        (gn.Identity(), [-2.0, 0.0, 3.0], [-2.0, 0.0, 3.0], [1.0, 1.0, 1.0]),
        (gn.Tanh(), [0.0], [0.0], [1.0]),
        (gn.Sigmoid(), [0.0], [0.5], [0.25]),
    ],
)
def test_elementwise_values_and_slopes_by_hand(layer, x, out, slope):
    x = np.array([x])
    np.testing.assert_allclose(layer.forward(x), [out], rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), [slope], rtol=1e-15)


def test_identity_and_leaky_relu_defaults():
    assert gn.LeakyReLU().negative_slope == 0.01
    assert repr(gn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(gn.Dense(4, 3)) == "Dense(in_features=4, out_features=3)"


# -- Sequential ----------------------------------------------------------------


def iris_model(**kwargs):
    return gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3), **kwargs
    )


def test_named_parameters_and_order():
    model = iris_model(seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [p.shape for p in model.parameters()] == [
        (4, 5),
        (5,),
        (5, 4),
        (4,),
        (4, 3),
        (3,),
    ]
    assert len(model) == 5 and isinstance(model[1], gn.Tanh)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_dtype_reaches_every_parameter_and_output(dtype, rng):
    model = iris_model(seed=0, dtype=dtype)
    assert all(
        p.data.dtype == dtype and p.grad.dtype == dtype for p in model.parameters()
    )
    out = model.predict(rng.normal(size=(3, 4)))  # float64 input is cast to the model's
    assert out.dtype == dtype


def test_from_sizes_picks_the_init_from_the_next_activation():
    model = gn.Sequential.from_sizes(
        [400, 300, 200, 10], ["relu", "tanh", "linear"], seed=0, dtype=np.float64
    )
    he = model[0].weight.data
    glorot = model[2].weight.data
    assert (model[0].init, model[2].init, model[4].init) == (
        "he_normal",
        "glorot_uniform",
        "glorot_uniform",
    )
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)  # He normal
    limit = np.sqrt(6 / (300 + 200))  # Glorot uniform
    assert np.abs(glorot).max() <= limit
    assert glorot.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert all(np.all(p.data == 0) for p in model.parameters() if p.name == "bias")


def test_from_sizes_builds_the_layers():
    model = gn.Sequential.from_sizes(
        [2, 3, 2], activations=["sigmoid", "softmax"], seed=0
    )
    kinds = [type(layer) for layer in model]
    assert kinds == [gn.Dense, gn.Sigmoid, gn.Dense, gn.Softmax]
    assert (model[0].in_features, model[0].out_features) == (2, 3)
    linear = gn.Sequential.from_sizes([2, 3, 1], activations=["tanh", "linear"])
    assert [type(layer) for layer in linear] == [gn.Dense, gn.Tanh, gn.Dense]


def test_activation_names_among_layers():
    model = gn.Sequential(gn.Dense(2, 3), "relu", gn.Dense(3, 2), "Softmax", seed=0)
    assert isinstance(model[1], gn.ReLU) and isinstance(model[3], gn.Softmax)


def test_predict_proba_rows_sum_to_one(rng):
    model = iris_model(seed=0)
    X = rng.normal(size=(6, 4))
    proba = model.predict_proba(X)
    assert proba.shape == (6, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(X), proba.argmax(axis=1))
    batched = model.predict(X, batch_size=4)
    np.testing.assert_allclose(batched, model.predict(X), rtol=1e-6)


def test_predict_proba_single_output_gives_two_columns(rng):
    model = gn.Sequential(gn.Dense(3, 1), seed=0, dtype=np.float64)
    X = rng.normal(size=(4, 3))
    proba = model.predict_proba(X)
    p = 1 / (1 + np.exp(-model.predict(X)[:, 0]))
    np.testing.assert_allclose(proba, np.column_stack([1 - p, p]), rtol=1e-12)


def test_batch_of_one_and_one_feature(rng):
    model = gn.Sequential(gn.Dense(1, 2), gn.Sigmoid(), gn.Dense(2, 1), seed=0)
    assert model.predict(np.array([[0.5]])).shape == (1, 1)
    report = gn.gradcheck(model, np.array([[0.5]]), np.array([[1.0]]), loss="mse")
    assert report.passed, str(report)


def test_model_backward_returns_input_gradient(rng):
    model = iris_model(seed=0, dtype=np.float64)
    X = rng.normal(size=(3, 4))
    out = model.forward(X)
    dx = model.backward(np.ones_like(out))
    assert dx.shape == X.shape


def test_backward_returns_the_input_gradient_after_fit():
    """fit skips the first layer's dL/dx through backward_params, without changing
    the layer: afterwards a user's own backward gets the input gradient."""
    X, y = gn.datasets.make_blobs(12, 3, 4, seed=0)
    model = iris_model(seed=0)
    model.fit(X, y, epochs=2, verbose=0)
    out = model.forward(X.astype(np.float32))
    assert model.backward(np.ones_like(out)).shape == X.shape


class Scale(gn.Layer):
    """A custom layer with one parameter, defining only the three methods."""

    def __init__(self, n):
        self.scale = gn.Parameter(np.ones(n), "scale")

    def forward(self, x):
        self._cache = x
        return x * self.scale.data

    def backward(self, dout):
        self.scale.grad = np.sum(dout * self._cache, axis=0)
        return dout * self.scale.data

    def parameters(self):
        return [self.scale]


def test_custom_layer_joins_a_model_and_trains():
    X, y = gn.datasets.make_blobs(30, 2, 2, seed=0)
    model = gn.Sequential(Scale(2), gn.Dense(2, 2), seed=0)
    assert [name for name, _ in model.named_parameters()] == [
        "0.scale",
        "1.weight",
        "1.bias",
    ]
    assert model[0].scale.data.dtype == np.float32  # joined the model's dtype
    history = model.fit(X, y, optimizer=gn.Adam(lr=0.05), epochs=20, verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    assert not np.all(model[0].scale.data == 1.0)  # its parameter was trained
    report = gn.gradcheck(model, X[:5], y[:5], loss="softmax_cross_entropy")
    assert report.passed, str(report)


def test_parameter_assignment_binds_and_checks_the_shape():
    p = gn.Parameter(np.zeros((2, 3)), "weight")
    with pytest.raises(
        gn.ShapeError,
        match=r"parameter 'weight': grad must have shape \(2, 3\), got \(3, 2\)",
    ):
        p.grad = np.zeros((3, 2))
    new = np.ones((2, 3))
    p.data = new
    assert p.data is new  # bound, as any attribute
