"""Conv2D, MaxPool2D, AvgPool2D, Flatten and Dropout.

Are they right? The vectorised layers against the naive loops of
reference_conv.py, every gradient against finite differences (gn.gradcheck,
float64, max relative error <= 1e-7), max-pool ties routed exactly. Do they fail
well? Bad shapes and arguments raise glassnet errors that name the layer, what
it expected and what it got, before any data is seen.
"""

import itertools
import sys

import numpy as np
import pytest

import glassnet as gn
from reference_conv import avgpool2d_naive, conv2d_naive, maxpool2d_naive

THRESHOLD = 1e-7

# (N, C, H, W), F, kernel_size, stride, padding
CONV_CASES = [
    pytest.param((2, 3, 7, 5), 4, 3, 1, 0, id="3x3"),
    pytest.param((2, 3, 7, 5), 4, 3, 2, 0, id="3x3-stride2"),
    pytest.param((2, 3, 7, 5), 4, 3, 1, "same", id="3x3-same"),
    pytest.param((2, 3, 7, 5), 4, 3, 2, "same", id="3x3-stride2-same"),
    pytest.param((2, 2, 6, 6), 3, 4, 1, "same", id="4x4-same-odd-padding-after"),
    pytest.param((1, 1, 6, 6), 2, 1, 1, 0, id="1x1"),
    pytest.param((3, 2, 8, 9), 3, (2, 4), 2, 1, id="2x4-stride2-pad1"),
    pytest.param((2, 2, 9, 7), 3, 3, 3, 2, id="stride3-pad2"),
    pytest.param((1, 2, 3, 3), 2, 3, 1, 0, id="kernel-fills-input"),
    pytest.param((2, 1, 5, 8), 2, 5, 1, 2, id="5x5-pad2"),
    pytest.param((1, 2, 4, 4), 2, 2, 2, 0, id="stride-equals-kernel"),
    pytest.param((2, 1, 2, 2), 1, 3, 1, 1, id="padding-larger-than-input-needs"),
]

# (N, C, H, W), P, stride
POOL_CASES = [
    pytest.param((2, 3, 8, 8), 2, None, id="2x2"),
    pytest.param((2, 3, 7, 5), 2, None, id="2x2-odd-size"),
    pytest.param((2, 3, 7, 5), 3, 1, id="3x3-overlap"),
    pytest.param((1, 2, 9, 7), 3, 2, id="3x3-stride2"),
    pytest.param((2, 2, 6, 7), 2, 3, id="stride-larger-than-window"),
    pytest.param((1, 1, 5, 5), 5, None, id="window-fills-input"),
]


def make_conv(rng, C, F, kernel, stride, padding) -> gn.Conv2D:
    layer = gn.Conv2D(C, F, kernel, stride, padding, rng=rng, dtype=np.float64)
    layer.bias.data = rng.normal(size=F)  # a zero bias would hide bias mistakes
    return layer


def distinct_values(rng, shape) -> np.ndarray:
    """Values at least 1/size apart: no max-pool tie within a finite-difference step."""
    size = int(np.prod(shape))
    return (rng.permutation(size) / size - 0.5).reshape(shape)


# -- against the naive loops ------------------------------------------------------


@pytest.mark.parametrize("x_shape, F, kernel, stride, padding", CONV_CASES)
def test_conv2d_matches_naive_loops(x_shape, F, kernel, stride, padding, rng):
    layer = make_conv(rng, x_shape[1], F, kernel, stride, padding)
    x = rng.normal(size=x_shape)
    out = layer.forward(x)
    expected, backward = conv2d_naive(
        x, layer.weight.data, layer.bias.data, stride, padding
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    dx_ref, dw_ref, db_ref = backward(dout)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=0, atol=1e-12)
    assert layer.output_shape(x_shape[1:]) == out.shape[1:]


# CHUNK_BYTES (and WHOLE_BATCH_BYTES) that cut a batch of 5 into chunks of 1, 2
# (2 + 2 + 1) and 5 examples (the columns of one example: C*KH*KW*H_out*W_grid
# values of 8 bytes); the whole batch in one chunk keeps its columns for backward
CHUNKINGS = [("one-per-chunk", 1), ("uneven", 2), ("whole-batch", 5)]


@pytest.mark.parametrize("x_shape, F, kernel, stride, padding", CONV_CASES)
@pytest.mark.parametrize(
    "chunking, per_chunk", CHUNKINGS, ids=[c[0] for c in CHUNKINGS]
)
def test_conv2d_in_chunks_of_examples_matches_naive_loops(
    x_shape, F, kernel, stride, padding, chunking, per_chunk, rng, monkeypatch
):
    conv2d = sys.modules["glassnet.nn.layers.conv2d"]
    layer = make_conv(rng, x_shape[1], F, kernel, stride, padding)
    x = rng.normal(size=(5, *x_shape[1:]))
    grid = layer._grid(x.shape)
    per_example = x.shape[1] * grid.KH * grid.KW * grid.H_out * grid.W_grid * 8
    monkeypatch.setattr(conv2d, "CHUNK_BYTES", per_example * per_chunk)
    monkeypatch.setattr(conv2d, "WHOLE_BATCH_BYTES", per_example * per_chunk)
    assert len(layer._chunks(grid, grid.pad(x))) == -(-5 // per_chunk)
    out = layer.forward(x)
    expected, backward = conv2d_naive(
        x, layer.weight.data, layer.bias.data, stride, padding
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx_ref, dw_ref, db_ref = backward(dout)
    np.testing.assert_allclose(layer.backward(dout), dx_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("x_shape, P, stride", POOL_CASES)
@pytest.mark.parametrize(
    "layer_class, naive",
    [(gn.MaxPool2D, maxpool2d_naive), (gn.AvgPool2D, avgpool2d_naive)],
    ids=["max", "avg"],
)
def test_pooling_matches_naive_loops(layer_class, naive, x_shape, P, stride, rng):
    layer = layer_class(P, stride)
    x = rng.normal(size=x_shape)
    out = layer.forward(x)
    expected, backward = naive(x, P, stride)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    np.testing.assert_allclose(layer.backward(dout), backward(dout), rtol=0, atol=1e-12)
    assert layer.output_shape(x_shape[1:]) == out.shape[1:]


# -- gradients: the grid of the issue ----------------------------------------------

GRID = list(itertools.product([1, 2], [0, "same"], [1, 3], [1, 3], [1, 3]))


@pytest.mark.parametrize(
    "stride, padding, kernel, batch, channels",
    GRID,
    ids=[f"s{s}-p{p}-k{k}-n{n}-c{c}" for s, p, k, n, c in GRID],
)
def test_conv2d_gradients_over_the_grid(stride, padding, kernel, batch, channels, rng):
    layer = make_conv(rng, channels, 2, kernel, stride, padding)
    x = rng.normal(size=(batch, channels, 7, 5))  # non-square
    report = gn.gradcheck(layer, x, max_elements=10_000)
    assert [row.name for row in report.rows] == ["input", "weight", "bias"]
    assert report.passed, str(report)
    assert report.worst().max_error <= THRESHOLD, str(report)
    assert all(row.checked == row.total and row.kinks == 0 for row in report.rows)


@pytest.mark.parametrize("x_shape, P, stride", POOL_CASES)
@pytest.mark.parametrize(
    "layer_class", [gn.MaxPool2D, gn.AvgPool2D], ids=["max", "avg"]
)
def test_pooling_gradients_away_from_ties(layer_class, x_shape, P, stride, rng):
    x = distinct_values(rng, x_shape)
    report = gn.gradcheck(layer_class(P, stride), x, max_elements=10_000)
    assert report.passed, str(report)
    assert report.worst().max_error <= THRESHOLD
    assert report["input"].kinks == 0 and report["input"].checked == np.prod(x_shape)


def test_a_small_conv_network_passes_gradcheck_end_to_end(rng):
    model = gn.Sequential(
        gn.Conv2D(1, 2, 3, padding="same"),
        gn.Tanh(),
        gn.MaxPool2D(2),
        gn.Conv2D(2, 3, 3, stride=2, padding=1),
        gn.Sigmoid(),
        gn.AvgPool2D(2),
        gn.Flatten(),
        gn.Dense(3, 4),
        seed=0,
        dtype=np.float64,
    )
    X = distinct_values(rng, (3, 1, 8, 8))
    report = gn.gradcheck(model, X, [0, 3, 1], loss="softmax_cross_entropy")
    assert report.passed, str(report)
    assert len(report.rows) == 1 + 6  # input, two conv and one dense weight + bias


# -- max-pool ties -------------------------------------------------------------


def test_maxpool_tie_goes_to_the_first_maximum_in_row_major_order():
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])  # 3 at (0, 1) and at (1, 0)
    layer = gn.MaxPool2D(2)
    assert layer.forward(x).item() == 3.0
    dx = layer.backward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_maxpool_all_equal_windows_send_everything_to_the_top_left(rng):
    x = np.full((2, 3, 6, 4), 0.25)
    dout = rng.normal(size=(2, 3, 3, 2))
    layer = gn.MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(dout)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = dout
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("P, stride", [(2, None), (3, 1), (2, 1), (3, 2)])
def test_maxpool_ties_route_exactly_like_the_naive_loop(P, stride, rng):
    x = rng.integers(0, 3, size=(2, 2, 7, 6)).astype(float)  # ties everywhere
    layer = gn.MaxPool2D(P, stride)
    out = layer.forward(x)
    expected, backward = maxpool2d_naive(x, P, stride)
    dout = rng.integers(-8, 9, size=out.shape).astype(float)  # sums are exact
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(layer.backward(dout), backward(dout))


def test_maxpool_gradient_sum_is_preserved_and_each_window_has_one_winner(rng):
    x = rng.integers(0, 2, size=(3, 2, 6, 6)).astype(float)
    layer = gn.MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.ones((3, 2, 3, 3)))
    windows = dx.reshape(3, 2, 3, 2, 3, 2).sum(axis=(3, 5))
    np.testing.assert_array_equal(windows, np.ones((3, 2, 3, 3)))


# -- shape errors, before and with data --------------------------------------------

# layers, one sample's shape, the message ({N} is the batch axis: N or the size)
SHAPE_ERRORS = [
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 3)],
        (6, 6),
        r"layer 0 \(Conv2D\): Conv2D\(1, 4, kernel_size=3.*\) expects input of shape "
        r"\(N, C, H, W\) = \(N, 1, H, W\), got \({N}, 6, 6\); add a channel axis",
        id="3-D-array",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 3)],
        (3, 6, 6),
        r"layer 0 \(Conv2D\).*\(N, C, H, W\) = \(N, 1, H, W\), got \({N}, 3, 6, 6\); "
        r"in_channels should be 3",
        id="wrong-channel-count",
    ),
    pytest.param(
        lambda: [gn.Conv2D(3, 4, 3)],
        (6, 6, 3),
        r"\(N, 3, H, W\), got \({N}, 6, 6, 3\); this looks channels-last \(N, H, W, C\)"
        r".*X.transpose\(0, 3, 1, 2\)",
        id="channels-last",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 5)],
        (1, 3, 3),
        r"layer 0 \(Conv2D\).*the 5x5 kernel does not fit in the padded input 3x3 "
        r"along the height and width \(input \({N}, 1, 3, 3\): height 3, kernel 5, "
        r"stride 1 -> the kernel does not fit; width 3, kernel 5",
        id="kernel-larger-than-input",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 5, padding=1)],
        (1, 2, 2),
        r"the 5x5 kernel does not fit in the padded input 4x4",
        id="kernel-larger-than-padded-input",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 2, 3), gn.MaxPool2D(3)],
        (1, 4, 4),
        r"layer 1 \(MaxPool2D\): MaxPool2D\(kernel_size=3, stride=3\): the 3x3 window "
        r"does not fit in the padded input 2x2 along the height and width \(input "
        r"\({N}, 2, 2, 2\): height 2, window 3",
        id="pool-window-larger-than-input",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 3), gn.Flatten(), gn.Dense(10, 2)],
        (1, 4, 4),
        r"layer 2 \(Dense\): .*expects input of shape \(N, 10\), got \(N, 16\); "
        r"in_features should be 16",
        id="dense-after-flatten-wrong-size",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 4, 3), gn.Dense(16, 2)],
        (1, 4, 4),
        r"layer 1 \(Dense\).*add Flatten\(\)",
        id="dense-without-flatten",
    ),
    pytest.param(
        lambda: [gn.Flatten(), gn.Conv2D(1, 2, 3)],
        (1, 4, 4),
        r"layer 1 \(Conv2D\).*got \({N}, 16\); the input is already flat",
        id="conv-after-flatten",
    ),
    pytest.param(
        lambda: [gn.MaxPool2D(2)],
        (4, 4),
        r"layer 0 \(MaxPool2D\).*\(N, C, H, W\) = \(N, C, H, W\), got \({N}, 4, 4\)",
        id="pool-3-D-array",
    ),
]


@pytest.mark.parametrize("make_layers, shape, message", SHAPE_ERRORS)
def test_sequential_output_shape_finds_the_bad_layer_before_any_data(
    make_layers, shape, message
):
    model = gn.Sequential(*make_layers(), seed=0)
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "N")):
        model.output_shape(shape)


@pytest.mark.parametrize("make_layers, shape, message", SHAPE_ERRORS)
def test_predict_and_forward_raise_the_same_shape_error(make_layers, shape, message):
    model = gn.Sequential(*make_layers(), seed=0)
    X = np.zeros((2, *shape))
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "N")):
        model.predict(X)  # validated up front by output_shape
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "(?:N|2)")):
        model.forward(X)  # the layer's own check, with the batch size


def test_fit_rejects_a_bad_stack_before_training(rng):
    model = gn.Sequential(gn.Conv2D(1, 4, 3), gn.Flatten(), gn.Dense(10, 2), seed=0)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(gn.ShapeError, match="in_features should be 16"):
        model.fit(rng.normal(size=(8, 1, 4, 4)), np.zeros(8, dtype=int), verbose=0)
    for p, old in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, old)


def test_output_shape_of_a_lenet_stack_matches_its_forward_pass(rng):
    model = gn.Sequential(
        gn.Conv2D(1, 8, 3),
        gn.ReLU(),
        gn.MaxPool2D(2),
        gn.Conv2D(8, 16, 3, padding="same"),
        gn.ReLU(),
        gn.MaxPool2D(2),
        gn.Flatten(),
        gn.Dense(16 * 6 * 6, 32),
        gn.ReLU(),
        gn.Dropout(0.5),
        gn.Dense(32, 10),
        seed=0,
    )
    assert model.output_shape((1, 28, 28)) == (10,)
    assert model.predict(rng.random((3, 1, 28, 28))).shape == (3, 10)


@pytest.mark.parametrize(
    "make_layer, message",
    [
        (lambda: gn.Conv2D(0, 2, 3), r"Conv2D: .*in_channels=0"),
        (lambda: gn.Conv2D(1, 2.5, 3), r"Conv2D: .*out_channels=2.5"),
        (
            lambda: gn.Conv2D(1, 2, 0),
            r"Conv2D: kernel_size must be an int >= 1 .*got 0",
        ),
        (lambda: gn.Conv2D(1, 2, (3, 0)), r"kernel_size must be .* got \(3, 0\)"),
        (lambda: gn.Conv2D(1, 2, (3, 3, 3)), r"pair \(h, w\) of them, got \(3, 3, 3\)"),
        (lambda: gn.Conv2D(1, 2, 3, padding=np.int64(-2)), r"padding must be"),
        (lambda: gn.Conv2D(1, 2, 3, padding=np.zeros(2)), r"padding must be"),
        (lambda: gn.Conv2D(1, 2, 3, stride=0), r"Conv2D: stride must be .*got 0"),
        (lambda: gn.Conv2D(1, 2, 3, padding=-1), r"padding must be .*got -1"),
        (lambda: gn.Conv2D(1, 2, 3, padding="vallid"), r"padding .* got 'vallid'"),
        (lambda: gn.Conv2D(1, 2, 3, init="nope"), r"unknown initializer 'nope'"),
        (lambda: gn.MaxPool2D(0), r"MaxPool2D: kernel_size must be .*got 0"),
        (lambda: gn.AvgPool2D(2, stride=0), r"AvgPool2D: stride must be .*got 0"),
        (lambda: gn.Dropout(1.0), r"Dropout: rate must be in \[0.0, 1.0\), got 1.0"),
        (lambda: gn.Dropout(-0.1), r"Dropout: rate"),
    ],
)
def test_bad_arguments_raise_config_error(make_layer, message):
    with pytest.raises(gn.ConfigError, match=message):
        make_layer()


# -- the Layer contract ------------------------------------------------------------

ALL_LAYERS = [
    pytest.param(lambda: gn.Conv2D(2, 3, 3, padding="same"), (2, 2, 5, 4), id="conv"),
    pytest.param(lambda: gn.MaxPool2D(2), (2, 2, 5, 4), id="maxpool"),
    pytest.param(lambda: gn.AvgPool2D(2, stride=1), (2, 2, 5, 4), id="avgpool"),
    pytest.param(
        lambda: gn.MaxPool2D((2, 3), padding="same"), (2, 2, 5, 4), id="maxpool-same"
    ),
    pytest.param(
        lambda: gn.AvgPool2D(3, (1, 2), padding=((2, 0), (1, 1))),
        (2, 2, 5, 4),
        id="avgpool-explicit",
    ),
    pytest.param(
        lambda: gn.Conv2D(2, 3, (1, 3), (2, 1), (0, 1)), (2, 2, 5, 4), id="conv-pairs"
    ),
    pytest.param(lambda: gn.Conv1D(2, 3, 3, padding="same"), (2, 2, 7), id="conv1d"),
    pytest.param(lambda: gn.Conv1D(2, 3, 2, 2, (1, 0)), (2, 2, 7), id="conv1d-s2"),
    pytest.param(lambda: gn.MaxPool1D(2), (2, 2, 7), id="maxpool1d"),
    pytest.param(lambda: gn.AvgPool1D(3, 1, 1), (2, 2, 7), id="avgpool1d"),
    pytest.param(lambda: gn.Flatten(), (2, 2, 5, 4), id="flatten"),
    pytest.param(lambda: gn.Dropout(0.5), (2, 2, 5, 4), id="dropout"),
]


@pytest.mark.parametrize("make_layer, x_shape", ALL_LAYERS)
def test_backward_twice_gives_the_same_gradients(make_layer, x_shape, rng):
    layer = make_layer()
    layer.training = True
    out = layer.forward(rng.normal(size=x_shape).astype(np.float32))
    dout = rng.normal(size=out.shape).astype(np.float32)
    first = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    second = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape == x_shape and first[0].dtype == np.float32
    assert out.dtype == np.float32


@pytest.mark.parametrize("make_layer, x_shape", ALL_LAYERS)
def test_backward_before_forward_is_a_call_order_error(make_layer, x_shape):
    with pytest.raises(gn.CallOrderError, match="backward\\(\\) was called before"):
        make_layer().backward(np.zeros(x_shape))


@pytest.mark.parametrize("make_layer, x_shape", ALL_LAYERS)
def test_get_config_rebuilds_the_layer(make_layer, x_shape):
    layer = make_layer()
    rebuilt = type(layer)(**layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert rebuilt.output_shape(x_shape[1:]) == layer.output_shape(x_shape[1:])


@pytest.mark.parametrize("make_layer, x_shape", ALL_LAYERS)
def test_parameters_lists_every_parameter_attribute(make_layer, x_shape):
    layer = make_layer()
    attributes = [v for v in vars(layer).values() if isinstance(v, gn.Parameter)]
    assert [id(p) for p in layer.parameters()] == [id(p) for p in attributes]


def test_conv_weight_and_bias_shapes_follow_pytorch():
    layer = gn.Conv2D(3, 8, (2, 5))
    assert layer.weight.shape == (8, 3, 2, 5) and layer.bias.shape == (8,)
    assert [p.name for p in layer.parameters()] == ["weight", "bias"]


@pytest.mark.parametrize(
    "make_layer, x_shape",
    [
        (lambda rng: make_conv(rng, 2, 3, 3, 1, 1), (2, 2, 5, 5)),
        (lambda rng: gn.Conv2D(2, 3, (1, 3), (2, 1), dtype=np.float64), (2, 2, 5, 5)),
        (lambda rng: gn.Conv1D(2, 3, 3, 2, "same", dtype=np.float64), (2, 2, 9)),
    ],
    ids=["conv2d", "conv2d-pairs", "conv1d"],
)
def test_conv_backward_params_skips_the_input_gradient_and_keeps_the_others(
    make_layer, x_shape, rng
):
    x = rng.normal(size=x_shape)
    layer = make_layer(rng)
    dout = rng.normal(size=layer.forward(x).shape)
    assert layer.backward(dout).shape == x.shape
    expected = [p.grad.copy() for p in layer.parameters()]
    for p in layer.parameters():
        p.grad = np.zeros(p.shape)
    assert layer.backward_params(dout) is None
    for p, g in zip(layer.parameters(), expected, strict=True):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize(
    "init, following, std",
    [
        (None, gn.ReLU, np.sqrt(2.0 / (16 * 9 + 64 * 9))),  # Glorot: the default
        (None, gn.Tanh, np.sqrt(2.0 / (16 * 9 + 64 * 9))),
        ("he_normal", gn.ReLU, np.sqrt(2.0 / (16 * 9))),  # He, as asked
        ("he_normal", gn.Tanh, np.sqrt(2.0 / (16 * 9))),
    ],
)
def test_conv_init_is_its_own_whatever_follows(init, following, std):
    model = gn.Sequential(gn.Conv2D(16, 64, 3, init=init), following(), seed=0)
    w = model[0].weight.data
    assert w.std() == pytest.approx(std, rel=0.05)
    if init is None:  # Glorot uniform stays inside its limit
        assert np.abs(w).max() <= np.sqrt(6.0 / (16 * 9 + 64 * 9))
    assert not model[0].bias.data.any()


def test_flatten_orders_channel_then_row_then_column(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    layer = gn.Flatten()
    out = layer.forward(x)
    np.testing.assert_array_equal(out[1, 2 * 20 + 3 * 5 + 4], x[1, 2, 3, 4])
    np.testing.assert_array_equal(layer.backward(out), x)
    with pytest.raises(gn.ShapeError, match="Flatten expects a batch"):
        layer.forward(np.zeros(3))


# -- Dropout -------------------------------------------------------------------------


def test_dropout_in_training_zeroes_about_rate_and_scales_the_rest(rng):
    layer = gn.Dropout(0.25, rng=np.random.default_rng(1))
    layer.training = True
    x = rng.uniform(1.0, 2.0, size=(400, 50))
    out = layer.forward(x)
    kept = out != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_allclose(out[kept], x[kept] / 0.75)  # inverted dropout
    dout = rng.normal(size=x.shape)
    np.testing.assert_allclose(layer.backward(dout), np.where(kept, dout / 0.75, 0.0))


def test_dropout_is_the_identity_outside_training(rng):
    x = rng.normal(size=(5, 4))
    layer = gn.Dropout(0.9)
    assert layer.forward(x) is x
    assert layer.backward(x) is x


def test_predict_never_drops_and_fit_does(rng):
    model = gn.Sequential(gn.Dense(6, 6), gn.Dropout(0.5), seed=0)
    X = rng.normal(size=(20, 6)).astype(np.float32)
    without = model[0].forward(X)
    np.testing.assert_array_equal(model.predict(X), without)
    np.testing.assert_array_equal(model.predict(X), model.predict(X))
    dropped = model.forward(X, training=True)
    assert (dropped == 0).mean() == pytest.approx(0.5, abs=0.15)
    np.testing.assert_array_equal(model.predict(X), without)  # back to inference


def test_dropout_draws_from_the_model_generator_so_fit_is_repeatable(rng):
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 3, size=64)

    def trained(seed):
        model = gn.Sequential(
            gn.Dense(8, 16), gn.ReLU(), gn.Dropout(0.5), gn.Dense(16, 3), seed=seed
        )
        assert model[2].rng is model.rng
        model.fit(X, y, epochs=3, batch_size=16, verbose=0)
        return np.concatenate([p.data.ravel() for p in model.parameters()])

    np.testing.assert_array_equal(trained(7), trained(7))
    assert not np.array_equal(trained(7), trained(8))


def test_dropout_rate_zero_never_drops(rng):
    layer = gn.Dropout(0.0)
    layer.training = True
    x = rng.normal(size=(4, 4))
    np.testing.assert_array_equal(layer.forward(x), x)


# -- data sets -------------------------------------------------------------------------


def test_make_letters_shapes_labels_and_seed():
    X, y = gn.datasets.make_letters(51, noise=0.1, seed=3)
    assert X.shape == (51, 1, 6, 6) and X.dtype == np.float64
    assert y.shape == (51,) and y.dtype == np.int64 and set(y) == {0, 1}
    assert abs(int((y == 0).sum()) - int((y == 1).sum())) <= 1  # balanced
    assert X.min() >= 0.0 and X.max() <= 1.0
    X2, onehot = gn.datasets.make_letters(51, noise=0.1, one_hot=True, seed=3)
    np.testing.assert_array_equal(X2, X)  # same seed, same images
    assert onehot.shape == (51, 2)
    np.testing.assert_array_equal(onehot.argmax(axis=1), y)
    np.testing.assert_array_equal(onehot.sum(axis=1), np.ones(51))
    X3, _ = gn.datasets.make_letters(51, noise=0.1, seed=4)
    assert not np.array_equal(X3, X)
    assert gn.datasets.LETTER_CLASSES == ("O", "X")


def test_make_letters_without_noise_draws_o_hollow_and_x_crossed():
    X, y = gn.datasets.make_letters(200, noise=0.0, seed=0)
    strokes = X[:, 0] > 0
    assert X[X > 0].min() >= 0.6  # stroke brightness in [0.6, 1]
    # the pixels around the centre: an O is hollow there, an X crosses there
    centre = strokes[:, 2:4, 2:4].sum(axis=(1, 2))
    assert (centre[y == 0] == 0).all()
    assert (centre[y == 1] >= 1).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_samples": 0}, "n_samples=0"), ({"noise": -0.1}, "noise must be in")],
)
def test_make_letters_rejects_bad_arguments(kwargs, message):
    with pytest.raises(gn.ConfigError, match=message):
        gn.datasets.make_letters(**kwargs)


def test_load_digits_gives_channels_first_images_in_unit_range():
    pytest.importorskip("sklearn")
    X, y = gn.datasets.load_digits()
    assert X.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(y) == set(range(10))
    flat, _ = gn.datasets.load_digits(images=False)
    np.testing.assert_array_equal(flat, X.reshape(1797, 64))


def test_load_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(
        gn.MissingDependencyError, match=r"pip install 'glassnet\[sklearn\]'"
    ):
        gn.datasets.load_digits()
    assert issubclass(gn.MissingDependencyError, ImportError)
