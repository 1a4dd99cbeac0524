"""The core contracts: a Parameter is an array and its gradient, read and assigned
as attributes; an optimizer keeps its speed trick to itself and survives pickle,
copies, dask, Ray and the user; backward always returns dL/dx; initialisation
belongs to the layer."""

import copy
import pickle

import numpy as np
import pytest

import glassnet as gn

# -- Parameter: assignment binds ---------------------------------------------------


def _p32():
    return gn.Parameter(np.zeros((2, 3), np.float32), "weight")


@pytest.mark.parametrize(
    "attr, value, dtype",
    [
        ("data", np.ones((2, 3), np.float32), np.float32),
        ("data", np.ones((2, 3), np.float64), np.float64),  # grad follows the dtype
        ("grad", np.ones((2, 3), np.float32), np.float32),
        ("grad", np.ones((2, 3), np.float64), np.float32),  # cast to data's dtype
        ("grad", [[1, 1, 1], [1, 1, 1]], np.float32),  # np.asarray first
    ],
    ids=["data", "data-float64", "grad", "grad-float64", "grad-list"],
)
def test_parameter_assignment_binds_the_new_array(attr, value, dtype):
    p = _p32()
    setattr(p, attr, value)
    got = getattr(p, attr)
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        assert got is value  # bound, not copied into the old array
    assert got.dtype == dtype and np.all(got == 1)
    assert p.data.dtype == p.grad.dtype == dtype
    assert p.data.shape == p.grad.shape == (2, 3)


@pytest.mark.parametrize(
    "attr, shape, match",
    [
        ("grad", (3, 2), r"'weight': grad must have shape \(2, 3\), got \(3, 2\).*"
         "transpose"),
        ("grad", (5, 2, 3), r"'weight': grad must have shape .*one row per example"),
        ("data", (6,), r"'weight': data must have shape \(2, 3\), got \(6,\)"),
    ],
)  # fmt: skip
def test_parameter_assignment_of_another_shape_names_the_parameter(attr, shape, match):
    p = _p32()
    before = getattr(p, attr)
    with pytest.raises(gn.ShapeError, match=match):
        setattr(p, attr, np.zeros(shape))
    assert getattr(p, attr) is before


# -- models and optimizers that travel ---------------------------------------------


def _data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _model():
    return gn.Sequential(
        gn.Dense(4, 8, init="he_normal"), gn.ReLU(), gn.Dense(8, 2), seed=0
    )


def _pickled(obj):
    return pickle.loads(pickle.dumps(obj))


def _out_of_band(obj, kind: str):
    """Pickle protocol 5 with out-of-band buffers, received the way dask (bytes),
    Ray (read-only memory) or a zero-copy transport (the sender's own memory) do."""
    buffers = []
    payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    if kind == "bytes":
        views = [bytes(v) for v in views]
    elif kind == "read-only":
        views = [v.toreadonly() for v in views]
    return pickle.loads(payload, buffers=views)


TRAVELS = {
    "pickle": _pickled,
    "deepcopy": copy.deepcopy,
    "dask (protocol 5, bytes)": lambda obj: _out_of_band(obj, "bytes"),
    "Ray (protocol 5, read-only)": lambda obj: _out_of_band(obj, "read-only"),
    "zero-copy (protocol 5, shared)": lambda obj: _out_of_band(obj, "shared"),
}


@pytest.mark.parametrize("travel", TRAVELS.values(), ids=TRAVELS.keys())
@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: gn.SGD(lr=0.1, momentum=0.9), lambda: gn.Adam(lr=0.01)],
    ids=["sgd-momentum", "adam"],
)
def test_model_and_optimizer_train_again_after_travel_like_a_control(
    travel, make_optimizer
):
    X, y = _data()
    kwargs = {"loss": "softmax_cross_entropy", "batch_size": 8, "verbose": 0}
    control, control_opt = _model(), make_optimizer()
    control.fit(X, y, optimizer=control_opt, epochs=4, **kwargs)

    model, optimizer = _model(), make_optimizer()
    model.fit(X, y, optimizer=optimizer, epochs=2, **kwargs)
    before = [p.data.copy() for p in model.parameters()]
    moved, moved_opt = travel((model, optimizer))
    for p in moved.parameters():
        assert p.data.flags.writeable and p.grad.flags.writeable
    for state in moved_opt.state_arrays().values():
        assert state.flags.writeable
    moved.fit(X, y, optimizer=moved_opt, epochs=2, **kwargs)

    for p, q in zip(moved.parameters(), control.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert moved_opt.t == control_opt.t
    for p, b in zip(model.parameters(), before, strict=True):  # the sender unchanged
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize("travel", TRAVELS.values(), ids=TRAVELS.keys())
def test_a_model_alone_trains_again_after_travel_and_leaves_the_sender_alone(travel):
    X, y = _data()
    kwargs = {"loss": "softmax_cross_entropy", "epochs": 2, "verbose": 0}
    sender, control = _model(), _model()
    for p in sender.parameters():
        assert p.data.flags.owndata  # so that its memory can be shared below
    before = [(p.data.copy(), p.grad.copy()) for p in sender.parameters()]
    moved = travel(sender)
    for p in moved.parameters():
        assert p.data.flags.writeable and p.grad.flags.writeable
    moved.fit(X, y, optimizer=gn.Adam(), **kwargs)
    control.fit(X, y, optimizer=gn.Adam(), **kwargs)
    for p, q in zip(moved.parameters(), control.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    for p, (data, grad) in zip(sender.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, data)
        np.testing.assert_array_equal(p.grad, grad)


@pytest.mark.parametrize("travel", TRAVELS.values(), ids=TRAVELS.keys())
def test_fitted_estimator_trains_again_after_travel(travel):
    sklearn = pytest.importorskip("glassnet.sklearn")
    X, y = _data()
    make = lambda: sklearn.GlassClassifier(  # noqa: E731
        hidden_layer_sizes=(8,), epochs=3, optimizer="adam", random_state=0
    )
    control, clf = make().fit(X, y), make().fit(X, y)
    moved = travel(clf)
    for est in (control, moved):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(moved.predict_proba(X), control.predict_proba(X))


# -- the optimizer and the user share the parameters ----------------------------


def _grad_of(p: gn.Parameter) -> np.ndarray:
    """A gradient that depends on the current values, as a real one does."""
    return 0.5 * p.data + 1.0


def _params():
    rng = np.random.default_rng(1)
    return [
        gn.Parameter(rng.normal(size=(3, 2)), "w"),
        gn.Parameter(rng.normal(size=3), "b"),
    ]


def test_two_optimizers_alternating_on_one_model_update_its_arrays():
    params = _params()
    momentum, plain = gn.SGD(lr=0.1, momentum=0.9), gn.SGD(lr=0.05)
    expected = [p.data.copy() for p in params]
    velocity = [np.zeros_like(e) for e in expected]
    for step in range(6):
        for p in params:
            p.grad = _grad_of(p)
        uses_momentum = step % 2 == 0
        (momentum if uses_momentum else plain).step(params)
        for e, v in zip(expected, velocity, strict=True):
            g = 0.5 * e + 1.0
            if uses_momentum:
                v *= 0.9
                v += g
                e -= 0.1 * v
            else:
                e -= 0.05 * g
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p.data, e, rtol=1e-14)
    assert (momentum.t, plain.t) == (3, 3)


@pytest.mark.parametrize("attr", ["data", "grad"])
def test_an_array_the_user_assigns_between_steps_is_the_one_stepped(attr):
    params = _params()
    optimizer = gn.SGD(lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape)
    optimizer.step(params)
    w = params[0]
    start = w.data.copy()
    setattr(w, attr, np.full(w.shape, 7.0))
    optimizer.step(params)
    if attr == "data":  # the new values, moved by the gradient of 1
        np.testing.assert_allclose(w.data, 7.0 - 0.1 * 1.0, rtol=1e-15)
    else:  # the old values, moved by the new gradient of 7
        np.testing.assert_allclose(w.data, start - 0.1 * 7.0, rtol=1e-15)
    assert optimizer.t == 2


def test_mixed_float32_and_float64_parameters_each_step_in_their_dtype():
    rng = np.random.default_rng(2)
    model = gn.Sequential(
        gn.Dense(3, 4, dtype=np.float64), gn.Tanh(), gn.Dense(4, 2), seed=0
    )
    assert [p.data.dtype for p in model.parameters()] == [np.float64] * 2 + [
        np.float32
    ] * 2
    alone = [gn.Parameter(p.data, p.name) for p in model.parameters()]
    optimizer, singles = gn.Adam(lr=0.01), [gn.Adam(lr=0.01) for _ in alone]
    for _ in range(3):
        for p, q in zip(model.parameters(), alone, strict=True):
            p.grad = q.grad = rng.normal(size=p.shape).astype(p.data.dtype)
        optimizer.step(model.parameters())
        for q, single in zip(alone, singles, strict=True):
            single.step([q])  # one optimizer per parameter: the plain update
    for p, q in zip(model.parameters(), alone, strict=True):
        assert p.data.dtype == p.grad.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)
    total = sum(p.size for p in model.parameters())
    assert {k: v.shape for k, v in optimizer.state_arrays().items()} == {
        "m": (total,),
        "v": (total,),
    }


class _OwnDense(gn.Layer):
    """out = x @ W + b, written by a user. rebind=True assigns new gradient arrays
    every step (p.grad = x.T @ dout); False writes into the existing ones."""

    def __init__(self, weight, bias, rebind: bool) -> None:
        self.weight = gn.Parameter(weight, "weight")
        self.bias = gn.Parameter(bias, "bias")
        self.rebind = rebind

    def forward(self, x):
        self._cache = x
        return x @ self.weight.data + self.bias.data

    def backward(self, dout):
        x = self._cache
        if self.rebind:
            self.weight.grad = x.T @ dout
            self.bias.grad = dout.sum(axis=0)
        else:
            self.weight.grad[...] = x.T @ dout
            self.bias.grad[...] = dout.sum(axis=0)
        return dout @ self.weight.data.T


def test_a_layer_rebinding_its_gradients_trains_like_one_writing_in_place():
    X, y = _data()
    rng = np.random.default_rng(4)
    w1, b1, w2, b2 = (rng.normal(0, 0.5, s) for s in [(4, 6), 6, (6, 2), 2])
    models = [
        gn.Sequential(
            _OwnDense(w1, b1, rebind),
            gn.Tanh(),
            _OwnDense(w2, b2, rebind),
            seed=0,
            dtype=np.float64,
        )  # fmt: skip
        for rebind in (True, False)
    ]
    for model in models:
        model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(lr=0.05),
                  epochs=5, batch_size=8, verbose=0)  # fmt: skip
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(models[0][0].weight.data, w1)  # it did train


# -- backward returns dL/dx; backward_params skips it ----------------------------


class _Scale(gn.Layer):
    """A custom layer with the default backward_params."""

    def __init__(self) -> None:
        self.scale = gn.Parameter(np.linspace(0.5, 2.0, 6), "scale")

    def forward(self, x):
        self._cache = x
        return x * self.scale.data

    def backward(self, dout):
        self.scale.grad = (dout * self._cache).sum(axis=0)
        return dout * self.scale.data


LAYERS = {
    "Dense": lambda: gn.Dense(6, 4, dtype=np.float64),
    "Conv2D": lambda: gn.Conv2D(1, 2, 3, padding=1, dtype=np.float64),
    "custom": _Scale,
    "Sequential": lambda: gn.Sequential(
        gn.Dense(6, 5), gn.Tanh(), gn.Dense(5, 3), seed=0, dtype=np.float64
    ),
    "nested": lambda: gn.Sequential(
        gn.Sequential(gn.Dense(6, 5), gn.Sigmoid()),
        gn.Dense(5, 2),
        seed=0,
        dtype=np.float64,
    ),  # fmt: skip
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_backward_params_stores_the_gradients_backward_stores(make, rng):
    layer = make()
    x = rng.normal(size=(5, 1, 4, 4) if isinstance(layer, gn.Conv2D) else (5, 6))
    dout = rng.normal(size=layer.forward(x).shape)
    assert layer.backward(dout).shape == x.shape
    expected = [p.grad.copy() for p in layer.parameters()]
    for p in layer.parameters():
        p.grad = np.full(p.shape, np.nan)
    assert layer.backward_params(dout) is None
    for p, g in zip(layer.parameters(), expected, strict=True):
        np.testing.assert_array_equal(p.grad, g)


class _BackwardDuringFit(gn.Callback):
    def __init__(self, X) -> None:
        self.X, self.shapes = X, []

    def on_epoch_end(self, epoch, logs) -> None:
        out = self.model.forward(self.X)
        dx = self.model.backward(np.ones_like(out))
        self.shapes.append(None if dx is None else dx.shape)


@pytest.mark.parametrize(
    "first",
    [lambda: gn.Dense(4, 6), lambda: _OwnDense(np.ones((4, 6)), np.zeros(6), True)],
    ids=["Dense", "custom"],
)
def test_backward_returns_the_input_gradient_inside_fit(first):
    X, y = _data()
    model = gn.Sequential(first(), gn.Tanh(), gn.Dense(6, 2), seed=0)
    spy = _BackwardDuringFit(X.astype(np.float32))
    model.fit(X, y, loss="softmax_cross_entropy", epochs=3, callbacks=[spy], verbose=0)
    assert spy.shapes == [X.shape] * 3


# -- initialisation belongs to the layer --------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: gn.Dense(4, 3, rng=np.random.default_rng(1), dtype=np.float64),
        lambda: gn.Conv2D(2, 3, 3, rng=np.random.default_rng(1), dtype=np.float64),
        lambda: gn.Dense(4, 3, init="uniform", rng=np.random.default_rng(1)),
    ],
    ids=["Dense", "Conv2D", "Dense-float32"],
)
def test_a_layers_own_rng_and_dtype_are_kept_in_a_model(make):
    alone, placed = make(), make()
    model = gn.Sequential(placed, gn.ReLU(), seed=0)  # float32, its own generator
    for p, q in zip(alone.parameters(), placed.parameters(), strict=True):
        assert q.data.dtype == p.data.dtype
        np.testing.assert_array_equal(q.data, p.data)
    assert model[0] is placed


@pytest.mark.parametrize("cls", [gn.Dense, gn.Conv2D])
def test_own_rng_in_a_float64_model_draws_what_it_would_draw_in_float64(cls):
    args = (4, 3) if cls is gn.Dense else (2, 3, 3)
    model = gn.Sequential(cls(*args, rng=np.random.default_rng(5)), dtype=np.float64)
    alone = cls(*args, rng=np.random.default_rng(5), dtype=np.float64)
    for p, q in zip(alone.parameters(), model.parameters(), strict=True):
        assert q.data.dtype == np.float64
        np.testing.assert_array_equal(q.data, p.data)


def test_own_dtype_takes_the_models_generator():
    mixed = gn.Sequential(gn.Dense(4, 3, dtype=np.float64), seed=0)
    plain = gn.Sequential(gn.Dense(4, 3), seed=0, dtype=np.float64)
    for p, q in zip(mixed.parameters(), plain.parameters(), strict=True):
        assert p.data.dtype == np.float64
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("init", [None, "he_normal", "uniform"])
def test_dropout_between_dense_and_relu_leaves_the_weights_alone(init):
    plain = gn.Sequential(gn.Dense(5, 4, init=init), gn.ReLU(), seed=0)
    dropped = gn.Sequential(
        gn.Dense(5, 4, init=init), gn.Dropout(0.5), gn.ReLU(), seed=0
    )
    for p, q in zip(plain.parameters(), dropped.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize(
    "init, following, std",
    [
        ("he_normal", gn.Tanh, np.sqrt(2 / 400)),  # He, though no ReLU follows
        ("glorot_uniform", gn.ReLU, np.sqrt(2 / (400 + 300))),  # Glorot before ReLU
        (None, gn.ReLU, np.sqrt(2 / (400 + 300))),  # the default is Glorot
    ],
)
def test_an_explicit_or_default_init_is_kept_whatever_follows(init, following, std):
    model = gn.Sequential(gn.Dense(400, 300, init=init), following(), seed=0)
    assert model[0].weight.data.std() == pytest.approx(std, rel=0.02)
    assert model[0].init == init


def test_a_custom_layers_float_parameters_join_the_models_dtype():
    model = gn.Sequential(_Scale(), seed=0)  # _Scale's array is float64
    assert model[0].scale.data.dtype == model[0].scale.grad.dtype == np.float32


@pytest.mark.parametrize(
    "arrays, error, match",
    [
        ({"m": np.zeros(9)}, gn.ConfigError, r"expected arrays \['m', 'v'\].*\['v'\]"),
        ({"m": np.zeros(9), "v": np.zeros(7)}, gn.ShapeError, r"'v'.*\(9,\).*\(7,\)"),
    ],
)
def test_loading_optimizer_state_checks_names_and_shapes(arrays, error, match):
    optimizer = gn.Adam().bind(_params())  # 6 + 3 entries
    with pytest.raises(error, match=match):
        optimizer.load_state_arrays(arrays)


def test_loaded_optimizer_state_lands_per_parameter_in_mixed_dtypes():
    def make():
        return [
            gn.Parameter(np.ones(3, np.float64), "a"),
            gn.Parameter(np.ones(2, np.float32), "b"),
            gn.Parameter(np.ones(1, np.float64), "c"),
        ]

    params, alone = make(), make()
    state = {"m": np.arange(6.0) / 8, "v": np.arange(6.0) + 1}  # exact in float32
    optimizer = gn.Adam(lr=0.1).bind(params)
    optimizer.load_state_arrays(state)
    for name, values in optimizer.state_arrays().items():
        np.testing.assert_array_equal(values, state[name])
    optimizer.step()  # zero gradients: the loaded moments alone move each entry
    for q, span in zip(alone, [slice(0, 3), slice(3, 5), slice(5, 6)], strict=True):
        single = gn.Adam(lr=0.1).bind([q])  # the state of this parameter alone
        single.load_state_arrays({k: v[span] for k, v in state.items()})
        single.step()
    for p, q in zip(params, alone, strict=True):
        assert p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)
