"""Per-axis kernel_size/stride/padding, "same"/"valid", and the 1-D layers.

Conv2D, MaxPool2D, AvgPool2D, Conv1D, MaxPool1D and AvgPool1D over every
combination of the argument forms in the tables below: against the naive loops of
reference_conv.py (outputs and every gradient), and gn.gradcheck in float64
(max relative error <= 1e-7). PyTorch checks the same tables in
test_conv_torch.py. Then the argument and shape errors, and the 1-D layers
against the 2-D code they run on.
"""

import itertools
import json

import numpy as np
import pytest

import glassnet as gn
from reference_conv import (
    avgpool1d_naive,
    avgpool2d_naive,
    conv1d_naive,
    conv2d_naive,
    maxpool1d_naive,
    maxpool2d_naive,
    pad_amounts,
    per_axis,
)

THRESHOLD = 1e-7

# -- the option tables ------------------------------------------------------------

PADDINGS_2D = ["valid", "same", 1, (0, 2), ((1, 0), (2, 1))]
CONV2D_GRID = [
    pytest.param(k, s, p, id=f"k{k}-s{s}-p{p}".replace(" ", ""))
    for k, s, p in itertools.product(
        [3, (2, 3), (1, 4)], [1, 2, (1, 2), (2, 1)], PADDINGS_2D
    )
]
CONV2D_X = (2, 2, 5, 6)  # N, C, H, W: non-square

PADDINGS_1D = ["valid", "same", 2, (1,), (0, 3), ((2, 1),)]
CONV1D_GRID = [
    pytest.param(k, s, p, id=f"k{k}-s{s}-p{p}".replace(" ", ""))
    for k, s, p in itertools.product([1, 3, (4,)], [1, 2, (3,)], PADDINGS_1D)
]
CONV1D_X = (2, 2, 9)  # N, C, L


def _pool_cases(kernels, strides, paddings, ndim):
    """Every combination whose padding is less than the window on every side."""
    cases = []
    for k, s, p in itertools.product(kernels, strides, paddings):
        if p != "same":
            pads = pad_amounts((10,) * ndim, k, 1, p)
            if any(
                max(pair) >= w for pair, w in zip(pads, per_axis(k, ndim), strict=True)
            ):
                continue  # refused by the constructor: see test_bad_arguments
        cases.append(pytest.param(k, s, p, id=f"k{k}-s{s}-p{p}".replace(" ", "")))
    return cases


POOL2D_GRID = _pool_cases(
    [2, (2, 3), (3, 1)],
    [None, 1, (2, 1)],
    ["valid", "same", (1, 0), ((1, 0), (0, 0)), ((0, 1), (1, 1))],
    2,
)
POOL2D_X = (2, 2, 6, 7)
POOL1D_GRID = _pool_cases(
    [2, 3], [None, 1, (2,)], ["valid", "same", 1, (1,), (0, 2), ((2, 1),)], 1
)
POOL1D_X = (2, 3, 9)

POOLS = [
    pytest.param(gn.MaxPool2D, maxpool2d_naive, id="max"),
    pytest.param(gn.AvgPool2D, avgpool2d_naive, id="avg"),
]
POOLS_1D = [
    pytest.param(gn.MaxPool1D, maxpool1d_naive, id="max"),
    pytest.param(gn.AvgPool1D, avgpool1d_naive, id="avg"),
]


def make_conv(cls, rng, C, F, kernel, stride, padding):
    layer = cls(C, F, kernel, stride, padding, rng=rng, dtype=np.float64)
    layer.bias.data = rng.normal(size=F)  # a zero bias would hide bias mistakes
    return layer


def distinct_values(rng, shape) -> np.ndarray:
    """Values at least 1/size apart: no max-pool tie within a finite-difference step."""
    size = int(np.prod(shape))
    return (rng.permutation(size) / size - 0.5).reshape(shape)


def assert_matches_naive_conv(layer, naive, x, stride, padding, rng):
    out = layer.forward(x)
    expected, backward = naive(x, layer.weight.data, layer.bias.data, stride, padding)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx_ref, dw_ref, db_ref = backward(dout)
    np.testing.assert_allclose(layer.backward(dout), dx_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=0, atol=1e-12)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]


def assert_gradcheck_passes(layer, x) -> None:
    report = gn.gradcheck(layer, x, max_elements=10_000)
    assert report.passed, str(report)
    assert report.worst().max_error <= THRESHOLD, str(report)
    assert all(row.checked == row.total and row.kinks == 0 for row in report.rows)


# -- against the naive loops, and finite differences -------------------------------


@pytest.mark.parametrize("kernel, stride, padding", CONV2D_GRID)
def test_conv2d_per_axis_matches_naive_loops(kernel, stride, padding, rng):
    layer = make_conv(gn.Conv2D, rng, 2, 3, kernel, stride, padding)
    x = rng.normal(size=CONV2D_X)
    assert_matches_naive_conv(layer, conv2d_naive, x, stride, padding, rng)


@pytest.mark.parametrize("kernel, stride, padding", CONV2D_GRID)
def test_conv2d_per_axis_gradients(kernel, stride, padding, rng):
    layer = make_conv(gn.Conv2D, rng, 2, 2, kernel, stride, padding)
    assert_gradcheck_passes(layer, rng.normal(size=(1, *CONV2D_X[1:])))


@pytest.mark.parametrize("kernel, stride, padding", CONV1D_GRID)
def test_conv1d_matches_naive_loops(kernel, stride, padding, rng):
    layer = make_conv(gn.Conv1D, rng, 2, 3, kernel, stride, padding)
    x = rng.normal(size=CONV1D_X)
    assert_matches_naive_conv(layer, conv1d_naive, x, stride, padding, rng)


@pytest.mark.parametrize("kernel, stride, padding", CONV1D_GRID)
def test_conv1d_gradients(kernel, stride, padding, rng):
    layer = make_conv(gn.Conv1D, rng, 2, 3, kernel, stride, padding)
    assert_gradcheck_passes(layer, rng.normal(size=CONV1D_X))


def _check_pool(layer_class, naive, kernel, stride, padding, x, rng):
    layer = layer_class(kernel, stride, padding)
    out = layer.forward(x)
    expected, backward = naive(x, kernel, stride, padding)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    np.testing.assert_allclose(layer.backward(dout), backward(dout), rtol=0, atol=1e-12)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    assert_gradcheck_passes(layer_class(kernel, stride, padding), x)


@pytest.mark.parametrize("kernel, stride, padding", POOL2D_GRID)
@pytest.mark.parametrize("layer_class, naive", POOLS)
def test_pool2d_per_axis_matches_naive_loops_and_gradcheck(
    layer_class, naive, kernel, stride, padding, rng
):
    x = distinct_values(rng, POOL2D_X)
    _check_pool(layer_class, naive, kernel, stride, padding, x, rng)


@pytest.mark.parametrize("kernel, stride, padding", POOL1D_GRID)
@pytest.mark.parametrize("layer_class, naive", POOLS_1D)
def test_pool1d_matches_naive_loops_and_gradcheck(
    layer_class, naive, kernel, stride, padding, rng
):
    x = distinct_values(rng, POOL1D_X)
    _check_pool(layer_class, naive, kernel, stride, padding, x, rng)


@pytest.mark.parametrize("padding", [1, (1,), "same", ((0, 2),)])
@pytest.mark.parametrize("K, stride", [(2, None), (3, 1), (3, 2)])
def test_maxpool1d_ties_route_exactly_like_the_naive_loop(K, stride, padding, rng):
    if padding != "same" and max(pad_amounts((9,), K, 1, padding)[0]) >= K:
        padding = 0  # K = 2 allows one position of padding per side
    x = rng.integers(0, 3, size=(2, 2, 9)).astype(float)  # ties everywhere
    layer = gn.MaxPool1D(K, stride, padding)
    out = layer.forward(x)
    expected, backward = maxpool1d_naive(x, K, stride, padding)
    dout = rng.integers(-8, 9, size=out.shape).astype(float)  # sums are exact
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(layer.backward(dout), backward(dout))


def test_a_small_signal_network_passes_gradcheck_end_to_end(rng):
    model = gn.Sequential(
        gn.Conv1D(1, 3, 5, stride=2, padding="same"),
        gn.Tanh(),
        gn.MaxPool1D(2, padding=1),
        gn.Conv1D(3, 2, 3, padding=((2, 0),)),
        gn.Sigmoid(),
        gn.AvgPool1D(3, stride=2, padding="same"),
        gn.Flatten(),
        gn.Dense(4, 3),
        seed=0,
        dtype=np.float64,
    )
    assert model.output_shape((1, 13)) == (3,)
    X = distinct_values(rng, (3, 1, 13))
    report = gn.gradcheck(model, X, [0, 2, 1], loss="softmax_cross_entropy")
    assert report.passed, str(report)
    assert len(report.rows) == 1 + 6


# -- "same": TensorFlow's sizes and split -------------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, expected_pads",
    [
        (7, 3, 1, (1, 1)),
        (6, 4, 1, (1, 2)),  # even kernel: the odd pixel after
        (7, 3, 2, (1, 1)),  # out 4: (4 - 1) * 2 + 3 - 7 = 2
        (8, 3, 2, (0, 1)),  # out 4: (4 - 1) * 2 + 3 - 8 = 1, after
        (8, 1, 3, (0, 0)),  # out 3: (3 - 1) * 3 + 1 - 8 < 0: none
        (5, 5, 5, (0, 0)),
        (10, 4, 3, (1, 2)),  # out 4: (4 - 1) * 3 + 4 - 10 = 3, two after
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, expected_pads):
    layer = gn.Conv1D(1, 1, kernel, stride, padding="same")
    assert layer.padding_amounts((size,)) == (expected_pads,)
    assert layer.output_shape((1, size)) == (1, -(-size // stride))
    conv2d = gn.Conv2D(1, 1, (1, kernel), (1, stride), padding="same")
    assert conv2d.padding_amounts((3, size)) == ((0, 0), expected_pads)


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        (gn.Conv2D(2, 4, (3, 5), stride=(2, 3), padding="same"), (2, 7, 8), (4, 4, 3)),
        (gn.Conv2D(2, 4, 3, stride=(1, 2), padding="valid"), (2, 7, 8), (4, 5, 3)),
        (gn.Conv2D(2, 4, (1, 5), padding=(0, 2)), (2, 1, 40), (4, 1, 40)),
        (gn.Conv2D(2, 4, 2, padding=((0, 1), (1, 0))), (2, 4, 4), (4, 4, 4)),
        (gn.Conv1D(1, 25, 5, stride=2, padding=2), (1, 40), (25, 20)),
        (gn.Conv1D(1, 8, 4, stride=2, padding=(1, 2)), (1, 40), (8, 20)),
        (gn.MaxPool2D((2, 3), padding="same"), (3, 7, 8), (3, 4, 3)),
        (gn.AvgPool2D(3, stride=(1, 2), padding=1), (3, 5, 5), (3, 5, 3)),
        (gn.MaxPool1D(3, padding="same"), (2, 10), (2, 4)),
        (gn.AvgPool1D(4, stride=1, padding=((3, 0),)), (2, 10), (2, 10)),
    ],
    ids=repr,
)
def test_output_shapes(layer, input_shape, expected):
    assert layer.output_shape(input_shape) == expected
    x = np.random.default_rng(0).normal(size=(2, *input_shape))
    assert layer.forward(x).shape == (2, *expected)


# -- the 1-D layers are the 2-D code on (N, C, 1, L) --------------------------------


@pytest.mark.parametrize("stride, padding", [(1, "same"), (2, 2), (3, (0, 4))])
def test_conv1d_equals_conv2d_on_a_one_row_image(stride, padding, rng):
    conv1d = make_conv(gn.Conv1D, rng, 3, 4, 5, stride, padding)
    pads = pad_amounts((17,), 5, stride, padding)
    conv2d = gn.Conv2D(3, 4, (1, 5), (1, stride), ((0, 0), *pads), dtype=np.float64)
    conv2d.weight.data = conv1d.weight.data[:, :, None, :]  # (F, C, 1, K)
    conv2d.bias.data = conv1d.bias.data
    x = rng.normal(size=(2, 3, 17))
    out = conv1d.forward(x)
    np.testing.assert_array_equal(out, conv2d.forward(x[:, :, None, :])[:, :, 0])
    dout = rng.normal(size=out.shape)
    dx = conv1d.backward(dout)
    np.testing.assert_array_equal(dx, conv2d.backward(dout[:, :, None])[:, :, 0])
    np.testing.assert_array_equal(conv1d.weight.grad, conv2d.weight.grad[:, :, 0])
    np.testing.assert_array_equal(conv1d.bias.grad, conv2d.bias.grad)
    assert conv1d.weight.shape == (4, 3, 5) and dx.shape == x.shape


@pytest.mark.parametrize(
    "pool1d, pool2d",
    [(gn.MaxPool1D, gn.MaxPool2D), (gn.AvgPool1D, gn.AvgPool2D)],
    ids=["max", "avg"],
)
def test_pool1d_equals_pool2d_on_a_one_row_image(pool1d, pool2d, rng):
    x = rng.normal(size=(2, 3, 11))
    layer1, layer2 = pool1d(3, 2, 1), pool2d((1, 3), (1, 2), (0, 1))
    out = layer1.forward(x)
    np.testing.assert_array_equal(out, layer2.forward(x[:, :, None])[:, :, 0])
    dout = rng.normal(size=out.shape)
    np.testing.assert_array_equal(
        layer1.backward(dout), layer2.backward(dout[:, :, None])[:, :, 0]
    )


# -- config, repr ------------------------------------------------------------------

CONFIG_LAYERS = [
    pytest.param(lambda: gn.Conv2D(2, 3, (1, 5), (1, 2), (0, 2)), id="conv2d-pairs"),
    pytest.param(
        lambda: gn.Conv2D(2, 3, 3, padding=((1, 0), (2, 1))), id="conv2d-explicit"
    ),
    pytest.param(lambda: gn.Conv2D(2, 3, 3, padding="valid"), id="conv2d-valid"),
    pytest.param(lambda: gn.Conv1D(2, 3, 4, 2, "same", init="he_normal"), id="conv1d"),
    pytest.param(lambda: gn.Conv1D(2, 3, (4,), (2,), (1, 2)), id="conv1d-left-right"),
    pytest.param(lambda: gn.Conv1D(2, 3, 4, padding=((3, 0),)), id="conv1d-causal"),
    pytest.param(lambda: gn.Conv1D(2, 3, 4, padding=(1,)), id="conv1d-per-axis"),
    pytest.param(lambda: gn.MaxPool2D((2, 3), (1, 2), ((1, 0), (0, 2))), id="max2d"),
    pytest.param(lambda: gn.AvgPool2D(3, padding="same"), id="avg2d"),
    pytest.param(lambda: gn.MaxPool1D(3, 1, (2, 0)), id="max1d"),
    pytest.param(lambda: gn.AvgPool1D(2, padding="valid"), id="avg1d"),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS)
def test_config_survives_json_and_rebuilds_the_layer(make):
    layer = make()
    config = json.loads(json.dumps(layer.get_config()))  # what a model file holds
    rebuilt = type(layer)(**config)
    assert rebuilt.get_config() == layer.get_config() == config
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.kernel_size == layer.kernel_size
    assert rebuilt.stride == layer.stride
    ndim = len(layer.kernel_size)
    sizes = (9,) * ndim
    assert rebuilt.padding_amounts(sizes) == layer.padding_amounts(sizes)


@pytest.mark.parametrize(
    "layer, text",
    [
        (gn.Conv2D(1, 2, (1, 5), 2, 1), "Conv2D(1, 2, kernel_size=(1, 5), stride=2, "),
        (gn.Conv2D(1, 2, 3, (2, 1)), "stride=(2, 1), padding=0)"),
        (
            gn.Conv1D(1, 2, (5,), padding=(1, 2)),
            "Conv1D(1, 2, kernel_size=5, stride=1,",
        ),
        (gn.MaxPool2D(2), "MaxPool2D(kernel_size=2, stride=2)"),
        (gn.AvgPool1D(3, padding="same"), "AvgPool1D(kernel_size=3, stride=3, padding"),
    ],
)
def test_repr_shows_per_axis_values_only_when_they_differ(layer, text):
    assert text in repr(layer)


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_layer, message",
    [
        (lambda: gn.Conv2D(1, 2, 3, padding=-1), r"Conv2D: padding must be 'valid', "),
        (lambda: gn.Conv2D(1, 2, 3, padding=True), r"padding must be .* got True"),
        (lambda: gn.Conv2D(1, 2, 3, padding="full"), r"got 'full'"),
        (lambda: gn.Conv2D(1, 2, 3, padding=(1, 2, 3)), r"\(top, bottom\).* got \(1, "),
        (lambda: gn.Conv2D(1, 2, 3, padding=((1, 2), (3,))), r"padding must be"),
        (lambda: gn.Conv2D(1, 2, 3, padding=((1, -2), (0, 0))), r"padding must be"),
        (lambda: gn.Conv2D(1, 2, 3, stride=(1, 0)), r"stride must be .*got \(1, 0\)"),
        (lambda: gn.Conv2D(1, 2, 3, stride=0), r"Conv2D: stride must be .*got 0"),
        (lambda: gn.Conv2D(1, 2, 3, stride=(1, 2, 3)), r"a pair \(h, w\) of them"),
        (lambda: gn.Conv1D(1, 2, (3, 3)), r"Conv1D: kernel_size .* a 1-tuple \(k,\)"),
        (lambda: gn.Conv1D(0, 2, 3), r"Conv1D: .*in_channels=0"),
        (lambda: gn.Conv1D(1, 2, 3, padding=((1, 2), (3, 4))), r"\(left, right\)"),
        (lambda: gn.Conv1D(1, 2, 3, padding=(1, 2, 3)), r"Conv1D: padding must be"),
        (lambda: gn.Conv1D(1, 2, 3, init="nope"), r"unknown initializer 'nope'"),
        (lambda: gn.MaxPool2D(0), r"MaxPool2D: kernel_size must be .*got 0"),
        (lambda: gn.AvgPool2D((2, 0)), r"AvgPool2D: kernel_size .*got \(2, 0\)"),
        (lambda: gn.AvgPool2D(2, stride=0), r"AvgPool2D: stride must be .*got 0"),
        (
            lambda: gn.MaxPool2D(2, padding=2),
            r"MaxPool2D: padding 2 puts 2 zeros on one side of the height, as many as "
            r"the window \(2\).*at most 1 per side \(PyTorch allows at most 1\)",
        ),
        (
            lambda: gn.AvgPool2D((3, 1), padding=(1, 1)),
            r"one side of the width, as many as the window \(1\)",
        ),
        (lambda: gn.MaxPool1D(3, padding=(0, 3)), r"MaxPool1D: .*the length"),
        (lambda: gn.AvgPool1D(2, padding="full"), r"AvgPool1D: padding must be"),
    ],
)
def test_bad_arguments_raise_config_error(make_layer, message):
    with pytest.raises(gn.ConfigError, match=message):
        make_layer()


# layers, one sample's shape, the message ({N}: the batch axis, N or the size)
SHAPE_ERRORS = [
    pytest.param(
        lambda: [gn.Conv2D(1, 25, (1, 5), stride=2, padding=1)],
        (1, 1, 40),
        r"layer 0 \(Conv2D\): Conv2D\(1, 25, kernel_size=\(1, 5\), stride=2, "
        r"padding=1\): along the height every window reads only padding, so the output "
        r"would not depend on the input \(input \({N}, 1, 1, 40\): height 1 \+ padding "
        r"\(1, 1\) = 3, kernel 1, stride 2 -> 2 \(windows at rows 0, 2 of the 3 padded "
        r"rows: only padding; the input's 1 row is never read\); width 40 \+ padding "
        r"\(1, 1\) = 42, kernel 5, stride 2 -> 19\); pad only the axes that need it, "
        r"e.g. padding=\(0, p\).*use Conv1D",
        id="issue-height-reads-only-padding",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 2, (3, 1))],
        (1, 2, 8),
        r"the 3x1 kernel does not fit in the padded input 2x8 along the height "
        r"\(input \({N}, 1, 2, 8\): height 2, kernel 3, stride 1 -> the kernel "
        r"does not fit; width 8, kernel 1, stride 1 -> 8\)",
        id="conv2d-height-too-small",
    ),
    pytest.param(
        lambda: [gn.Conv1D(1, 2, 7, padding=(1, 0))],
        (1, 5),
        r"Conv1D\(.*\): the kernel of size 7 does not fit in the padded input of "
        r"length 6 \(input \({N}, 1, 5\): length 5 \+ padding \(1, 0\) = 6, kernel 7, "
        r"stride 1 -> the kernel does not fit\); use a smaller kernel",
        id="conv1d-kernel-too-long",
    ),
    pytest.param(
        lambda: [gn.Conv1D(1, 2, 1, stride=3, padding=2)],
        (1, 1),
        r"along the length every window reads only padding.*length 1 \+ padding "
        r"\(2, 2\) = 5, kernel 1, stride 3 -> 2 \(windows at positions 0, 3 of the 5 "
        r"padded positions: only padding; the input's 1 position is never read\)\); "
        r"use less padding",
        id="conv1d-reads-only-padding",
    ),
    pytest.param(
        lambda: [gn.Conv1D(1, 2, 3)],
        (40,),
        r"Conv1D\(1, 2, .*\) expects input of shape \(N, C, L\) = \(N, 1, L\), got "
        r"\({N}, 40\); add a channel axis: X.reshape\(N, 1, L\), i.e. X\[:, None\]",
        id="conv1d-no-channel-axis",
    ),
    pytest.param(
        lambda: [gn.Conv1D(1, 2, 3)],
        (1, 1, 40),
        r"got \({N}, 1, 1, 40\); images \(N, C, H, W\) go to the 2-D layers",
        id="conv1d-on-images",
    ),
    pytest.param(
        lambda: [gn.Conv1D(3, 2, 3)],
        (40, 3),
        r"\(N, 3, L\), got \({N}, 40, 3\); this looks channels-last \(N, L, C\).*"
        r"X.transpose\(0, 2, 1\)",
        id="conv1d-channels-last",
    ),
    pytest.param(
        lambda: [gn.Conv1D(2, 2, 3)],
        (3, 40),
        r"got \({N}, 3, 40\); in_channels should be 3",
        id="conv1d-wrong-channels",
    ),
    pytest.param(
        lambda: [gn.Conv2D(1, 2, 3)],
        (1, 40),
        r"got \({N}, 1, 40\); add a channel axis.*signals \(N, C, L\) go to the 1-D "
        r"layers: Conv1D",
        id="conv2d-on-signals",
    ),
    pytest.param(
        lambda: [gn.Conv1D(1, 2, 3), gn.MaxPool1D(3)],
        (1, 4),
        r"layer 1 \(MaxPool1D\): MaxPool1D\(kernel_size=3, stride=3\): the window of "
        r"size 3 does not fit in the padded input of length 2 \(input \({N}, 2, 2\): "
        r"length 2, window 3, stride 3 -> the window does not fit\); use a smaller "
        r"kernel_size",
        id="pool1d-window-too-long",
    ),
    pytest.param(
        lambda: [gn.AvgPool1D(2)],
        (2, 2, 8),
        r"layer 0 \(AvgPool1D\).*\(N, C, L\) = \(N, C, L\), got \({N}, 2, 2, 8\)",
        id="pool1d-on-images",
    ),
]


@pytest.mark.parametrize("make_layers, shape, message", SHAPE_ERRORS)
def test_shape_errors_before_and_with_data(make_layers, shape, message):
    model = gn.Sequential(*make_layers(), seed=0)
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "N")):
        model.output_shape(shape)
    X = np.zeros((2, *shape))
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "N")):
        model.predict(X)  # validated up front by output_shape
    with pytest.raises(gn.ShapeError, match=message.replace("{N}", "(?:N|2)")):
        model.forward(X)  # the layer's own check, with the batch size


def test_the_issue_network_is_written_with_conv1d(rng):
    """The strided 1-D CNN of the issue, without a hand-made padding layer."""
    model = gn.Sequential(
        gn.Conv1D(1, 25, 5, stride=2, padding=2),  # (1, 40) -> (25, 20)
        gn.ReLU(),
        gn.Flatten(),
        gn.Dense(25 * 20, 3),
        seed=0,
    )
    assert model.output_shape((1, 40)) == (3,)
    assert model.predict(rng.normal(size=(4, 1, 40))).shape == (4, 3)
    # the same with Conv2D on (N, 1, 1, 40) pads the width only
    image = gn.Sequential(gn.Conv2D(1, 25, (1, 5), 2, (0, 2)), gn.Flatten(), seed=0)
    assert image.output_shape((1, 1, 40)) == (25 * 20,)


# -- the signal generator ------------------------------------------------------------


def test_make_signals_shapes_labels_balance_and_seed():
    X, y = gn.datasets.make_signals(102, 48, seed=3)
    assert X.shape == (102, 1, 48) and X.dtype == np.float64
    assert y.shape == (102,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=4)
    assert set(y) == {0, 1, 2, 3} and counts.max() - counts.min() <= 1  # balanced
    X2, y2 = gn.datasets.make_signals(102, 48, seed=3)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert not np.array_equal(gn.datasets.make_signals(102, 48, seed=4)[0], X)
    assert gn.datasets.SIGNAL_CLASSES == ("sine", "square", "sawtooth", "bursts")


def test_make_signals_without_noise_draws_each_kind():
    X, y = gn.datasets.make_signals(400, 64, noise=0.0, seed=0)
    x = X[:, 0]
    amplitude = np.abs(x).max(axis=1)
    square = x[y == 1]
    # a square wave takes two values, +-amplitude; a sine passes through many
    assert all(len(np.unique(np.abs(row).round(12))) == 1 for row in square)
    assert all(len(np.unique(row.round(6))) > 10 for row in x[y == 0])
    # a sawtooth rises by the same step between its drops
    steps = np.diff(x[y == 2], axis=1)
    assert np.all(np.isclose(steps, np.median(steps, axis=1)[:, None]) | (steps < 0))
    # bursts: silence outside the one to three stretches of noise
    silent = (x[y == 3] == 0).mean(axis=1)
    assert silent.min() >= 0.25 and silent.max() < 1.0
    # a square wave shows its amplitude exactly; sampled sines and sawtooths less
    assert amplitude[y == 1].min() >= 0.5 and amplitude[y < 3].max() <= 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 0}, "n_samples=0"),
        ({"length": 4}, "length must be at least 8, got 4"),
        ({"noise": -0.1}, "noise must be in"),
    ],
)
def test_make_signals_rejects_bad_arguments(kwargs, message):
    with pytest.raises(gn.ConfigError, match=message):
        gn.datasets.make_signals(**kwargs)
