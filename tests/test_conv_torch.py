"""PyTorch as an oracle for the convolutions and poolings, float64, to 1e-10.

Same weights and input in both; the outputs and every gradient (input, weight,
bias) must agree. Layouts are already the same: channels-first (N, C, H, W),
weight (out, in, KH, KW), bias (out,). padding="same" with an odd total (an
even kernel, or stride 2) is given to torch as an explicit F.pad with the
extra pixel after, which is what glassnet documents.
"""

import itertools
import warnings

import numpy as np
import pytest

import glassnet as gn
from glassnet._im2col import same_padding
from reference_conv import pad_amounts, per_axis
from test_conv_axes import (
    CONV1D_GRID,
    CONV1D_X,
    CONV2D_GRID,
    CONV2D_X,
    POOL1D_GRID,
    POOL1D_X,
    POOL2D_GRID,
    POOL2D_X,
)

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

TOL = 1e-10


def close(actual, expected, what: str) -> None:
    expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=TOL, atol=TOL, err_msg=what)


def torch_conv(x, w, b, stride, padding):
    """F.conv2d with glassnet's padding rules (explicit F.pad for "same")."""
    if padding == "same":
        (KH, KW), (H, W) = w.shape[2:], x.shape[2:]
        top, bottom = same_padding(H, KH, stride)
        left, right = same_padding(W, KW, stride)
        x, padding = F.pad(x, (left, right, top, bottom)), 0
    return F.conv2d(x, w, b, stride=stride, padding=padding)


CONV_CASES = [
    *[
        pytest.param(n, c, 7, 5, k, s, p, id=f"n{n}-c{c}-k{k}-s{s}-p{p}")
        for s, p, k, n, c in itertools.product(
            [1, 2], [0, "same"], [1, 3], [1, 3], [1, 3]
        )
    ],
    pytest.param(2, 2, 6, 6, 4, 1, "same", id="even-kernel-same"),
    pytest.param(2, 3, 9, 8, (2, 3), 3, 2, id="2x3-stride3-pad2"),
    pytest.param(1, 4, 28, 28, 5, 1, 2, id="28x28-5x5"),
]


@pytest.mark.parametrize("N, C, H, W, kernel, stride, padding", CONV_CASES)
def test_conv2d_equals_torch(N, C, H, W, kernel, stride, padding, rng):
    layer = gn.Conv2D(C, 4, kernel, stride, padding, rng=rng, dtype=np.float64)
    layer.bias.data = rng.normal(size=4)
    x = rng.normal(size=(N, C, H, W))
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weight.data, requires_grad=True)
    bt = torch.tensor(layer.bias.data, requires_grad=True)
    out_t = torch_conv(xt, wt, bt, stride, padding)
    out_t.backward(torch.tensor(dout))
    close(out, out_t, "output")
    close(dx, xt.grad, "input gradient")
    close(layer.weight.grad, wt.grad, "weight gradient")
    close(layer.bias.grad, bt.grad, "bias gradient")


POOL_CASES = [
    pytest.param((2, 3, 8, 8), 2, None, id="2x2"),
    pytest.param((2, 3, 7, 5), 2, None, id="2x2-odd-size"),
    pytest.param((2, 3, 7, 5), 3, 1, id="3x3-overlap"),
    pytest.param((1, 2, 9, 7), 3, 2, id="3x3-stride2"),
    pytest.param((2, 2, 6, 7), 2, 3, id="stride-larger-than-window"),
    pytest.param((3, 4, 28, 28), 2, None, id="28x28"),
]


@pytest.mark.parametrize("x_shape, P, stride", POOL_CASES)
@pytest.mark.parametrize(
    "layer_class, torch_pool",
    [(gn.MaxPool2D, F.max_pool2d), (gn.AvgPool2D, F.avg_pool2d)],
    ids=["max", "avg"],
)
def test_pooling_equals_torch(layer_class, torch_pool, x_shape, P, stride, rng):
    layer = layer_class(P, stride)
    x = rng.normal(size=x_shape)
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_pool(xt, P, stride=stride)
    out_t.backward(torch.tensor(dout))
    close(out, out_t, "output")
    close(dx, xt.grad, "input gradient")


@pytest.mark.parametrize("P, stride", [(2, None), (3, 1), (3, 2)])
def test_maxpool_ties_go_where_torch_sends_them(P, stride, rng):
    x = rng.integers(0, 3, size=(2, 3, 8, 7)).astype(float)  # ties everywhere
    layer = gn.MaxPool2D(P, stride)
    out = layer.forward(x)
    dout = rng.integers(-8, 9, size=out.shape).astype(float)  # sums are exact
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, P, stride=stride).backward(torch.tensor(dout))
    np.testing.assert_array_equal(layer.backward(dout), xt.grad.numpy())


def test_a_lenet_step_matches_torch(rng):
    """Whole network, loss and gradients: glassnet's weights copied into torch."""
    model = gn.Sequential(
        gn.Conv2D(1, 4, 3),
        gn.ReLU(),
        gn.MaxPool2D(2),
        gn.Conv2D(4, 6, 3, padding="same"),
        gn.Tanh(),
        gn.AvgPool2D(2),
        gn.Flatten(),
        gn.Dense(6 * 3 * 3, 5),
        seed=0,
        dtype=np.float64,
    )
    x, y = rng.random((4, 1, 14, 14)), np.array([0, 4, 2, 1])
    loss = gn.SoftmaxCrossEntropy()
    value = loss.forward(model.forward(x), y)
    model.backward(loss.backward())

    params = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    w1, b1, w2, b2, w3, b3 = params
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), w1, b1)), 2)
    h = F.avg_pool2d(torch.tanh(F.conv2d(h, w2, b2, padding=1)), 2)
    logits = h.flatten(1) @ w3 + b3
    value_t = F.cross_entropy(logits, torch.tensor(y))
    value_t.backward()
    assert value == pytest.approx(value_t.item(), rel=1e-12)
    for (name, p), pt in zip(model.named_parameters(), params, strict=True):
        close(p.grad, pt.grad, name)


# -- per-axis arguments and the 1-D layers, over the tables of test_conv_axes.py ----


def torch_pad(x, pads, value=0.0):
    """F.pad with ((before, after), ...) per spatial axis (F.pad wants the last
    axis first)."""
    return F.pad(x, [v for pair in reversed(pads) for v in pair], value=value)


def torch_conv_any(x, w, b, stride, padding):
    """F.conv1d / F.conv2d with glassnet's padding forms: PyTorch's own "same" for
    stride 1 (the two conventions must agree there), its symmetric padding when
    the pads are symmetric, and an explicit F.pad otherwise (asymmetric, or "same"
    with a stride > 1, which PyTorch refuses)."""
    ndim = x.dim() - 2
    conv = F.conv1d if ndim == 1 else F.conv2d
    stride = per_axis(stride, ndim)
    if padding == "same" and set(stride) == {1}:
        with warnings.catch_warnings():  # even kernels: "may require a padded copy"
            warnings.simplefilter("ignore", UserWarning)
            return conv(x, w, b, stride=stride, padding="same")
    pads = pad_amounts(tuple(x.shape[2:]), tuple(w.shape[2:]), stride, padding)
    if all(before == after for before, after in pads):
        return conv(x, w, b, stride=stride, padding=[p for p, _ in pads])
    return conv(torch_pad(x, pads), w, b, stride=stride)


def torch_pool_any(is_max, x, kernel, stride, padding):
    """F.max_pool / F.avg_pool: PyTorch's own padding where it allows it
    (symmetric, at most half the window), else F.pad with -inf (max) or 0 (avg)."""
    ndim = x.dim() - 2
    name = ("max" if is_max else "avg") + f"_pool{ndim}d"
    pool = getattr(F, name)
    kernel = per_axis(kernel, ndim)
    stride = kernel if stride is None else per_axis(stride, ndim)
    pads = pad_amounts(tuple(x.shape[2:]), kernel, stride, padding)
    if all(a == b and a <= k // 2 for (a, b), k in zip(pads, kernel, strict=True)):
        return pool(x, kernel, stride, padding=[p for p, _ in pads])
    value = -float("inf") if is_max else 0.0
    return pool(torch_pad(x, pads, value), kernel, stride)


def check_conv_against_torch(layer, x, stride, padding, rng):
    layer.bias.data = rng.normal(size=layer.bias.shape)
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weight.data, requires_grad=True)
    bt = torch.tensor(layer.bias.data, requires_grad=True)
    out_t = torch_conv_any(xt, wt, bt, stride, padding)
    out_t.backward(torch.tensor(dout))
    close(out, out_t, "output")
    close(dx, xt.grad, "input gradient")
    close(layer.weight.grad, wt.grad, "weight gradient")
    close(layer.bias.grad, bt.grad, "bias gradient")


@pytest.mark.parametrize("kernel, stride, padding", CONV2D_GRID)
def test_conv2d_per_axis_equals_torch(kernel, stride, padding, rng):
    layer = gn.Conv2D(2, 3, kernel, stride, padding, rng=rng, dtype=np.float64)
    check_conv_against_torch(layer, rng.normal(size=CONV2D_X), stride, padding, rng)


@pytest.mark.parametrize("kernel, stride, padding", CONV1D_GRID)
def test_conv1d_equals_torch(kernel, stride, padding, rng):
    layer = gn.Conv1D(2, 3, kernel, stride, padding, rng=rng, dtype=np.float64)
    check_conv_against_torch(layer, rng.normal(size=CONV1D_X), stride, padding, rng)


def check_pool_against_torch(layer_class, kernel, stride, padding, x, rng):
    layer = layer_class(kernel, stride, padding)
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    is_max = layer_class in (gn.MaxPool1D, gn.MaxPool2D)
    out_t = torch_pool_any(is_max, xt, kernel, stride, padding)
    out_t.backward(torch.tensor(dout))
    close(out, out_t, "output")
    close(dx, xt.grad, "input gradient")


@pytest.mark.parametrize("kernel, stride, padding", POOL2D_GRID)
@pytest.mark.parametrize(
    "layer_class", [gn.MaxPool2D, gn.AvgPool2D], ids=["max", "avg"]
)
def test_pool2d_per_axis_equals_torch(layer_class, kernel, stride, padding, rng):
    x = rng.normal(size=POOL2D_X)
    check_pool_against_torch(layer_class, kernel, stride, padding, x, rng)


@pytest.mark.parametrize("kernel, stride, padding", POOL1D_GRID)
@pytest.mark.parametrize(
    "layer_class", [gn.MaxPool1D, gn.AvgPool1D], ids=["max", "avg"]
)
def test_pool1d_equals_torch(layer_class, kernel, stride, padding, rng):
    x = rng.normal(size=POOL1D_X)
    check_pool_against_torch(layer_class, kernel, stride, padding, x, rng)


@pytest.mark.parametrize("padding", [0, 1, (0, 1)])
def test_maxpool1d_ties_go_where_torch_sends_them(padding, rng):
    x = rng.integers(0, 3, size=(2, 3, 11)).astype(float)  # ties everywhere
    layer = gn.MaxPool1D(2, 1, padding)
    out = layer.forward(x)
    dout = rng.integers(-8, 9, size=out.shape).astype(float)  # sums are exact
    xt = torch.tensor(x, requires_grad=True)
    torch_pool_any(True, xt, 2, 1, padding).backward(torch.tensor(dout))
    np.testing.assert_array_equal(layer.backward(dout), xt.grad.numpy())


def test_a_signal_cnn_step_matches_torch(rng):
    """A 1-D network, loss and gradients: glassnet's weights copied into torch."""
    model = gn.Sequential(
        gn.Conv1D(1, 4, 5, stride=2, padding=2),
        gn.ReLU(),
        gn.MaxPool1D(2),
        gn.Conv1D(4, 6, 3, padding="same"),
        gn.Tanh(),
        gn.AvgPool1D(2, padding=1),
        gn.Flatten(),
        gn.Dense(6 * 6, 3),
        seed=0,
        dtype=np.float64,
    )
    x, y = rng.normal(size=(4, 1, 40)), np.array([0, 2, 2, 1])
    loss = gn.SoftmaxCrossEntropy()
    value = loss.forward(model.forward(x), y)
    model.backward(loss.backward())

    params = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    w1, b1, w2, b2, w3, b3 = params
    h = F.max_pool1d(F.relu(F.conv1d(torch.tensor(x), w1, b1, 2, 2)), 2)
    h = F.avg_pool1d(torch.tanh(F.conv1d(h, w2, b2, padding="same")), 2, padding=1)
    logits = h.flatten(1) @ w3 + b3
    value_t = F.cross_entropy(logits, torch.tensor(y))
    value_t.backward()
    assert value == pytest.approx(value_t.item(), rel=1e-12)
    for (name, p), pt in zip(model.named_parameters(), params, strict=True):
        close(p.grad, pt.grad, name)
