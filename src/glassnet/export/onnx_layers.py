"""to_onnx: glassnet layers as ONNX nodes, one small converter per layer class.

Each converter (layer, graph, x) -> output name adds the layer's inference
computation (Dropout is the identity, BatchNorm uses its running statistics).
Where ONNX Runtime's CPU provider lacks an operator in float64
(onnx_graph.ORT_CPU_NO_FLOAT64), the float64 graph computes the same thing from
operators it has: Conv and AveragePool as im2col windows and a MatMul or a
mean, GELU's erf from Cody's rational approximations, ELU and Softplus from
Exp and Log with accurate expm1 and log1p. Float32 graphs use the native
operators where they exist. The sequence layers' converters (RNN, LSTM, GRU,
attention, positions) are in onnx_sequence.py, registered in the same TO_ONNX.

This module imports onnx: glassnet.export loads it on first use.
"""

import numpy as np
import onnx

from glassnet.errors import ConfigError, ShapeError
from glassnet.export import onnx_sequence  # noqa: F401 (the sequence layers' rows)
from glassnet.export._common import (
    check_model,
    input_shape_for,
    model_dtype,
    takes_ids,
)
from glassnet.export.onnx_graph import (
    TO_ONNX,
    OnnxGraph,
    erfc,
    expm1,
    exports,
    log1p,
    windows,
)
from glassnet.io._atomic import atomic_write
from glassnet.nn.layers import (
    ELU,
    GELU,
    AvgPool1D,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Concat,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    Identity,
    LayerNorm,
    LeakyReLU,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    TimeDistributed,
)
from glassnet.nn.layers.base import Layer, output_layer
from glassnet.nn.layers.containers import Sequential

MIN_OPSET = 17  # LayerNormalization; the opset every converter here is written for

__all__ = ["MIN_OPSET", "TO_ONNX", "to_onnx"]


# -- layers with parameters ----------------------------------------------------------


@exports(Dense)
def _dense(layer: Dense, graph: OnnxGraph, x: str) -> str:
    # Gemm computes x @ B + C with transB=0: glassnet's (in, out) weight as it is
    return graph.node("Gemm", [x, graph.param(layer.weight), graph.param(layer.bias)])


def _window_attributes(layer, sizes) -> dict:
    """kernel_shape, strides and pads (every begin, then every end) of a
    Conv1D/Conv2D or pooling layer on an input of these spatial sizes."""
    pads = layer.padding_amounts(tuple(sizes))  # ((before, after), ...)
    return {
        "kernel_shape": list(layer.kernel_size),
        "strides": list(layer.stride),
        "pads": [b for b, _ in pads] + [a for _, a in pads],
    }


@exports(Conv1D, Conv2D)
def _convolution(layer, graph: OnnxGraph, x: str) -> str:
    C, *sizes = graph.shape(x, needed_by=type(layer).__name__)
    weight, bias = graph.param(layer.weight), graph.param(layer.bias)
    if graph.native("Conv"):
        return graph.node("Conv", [x, weight, bias], **_window_attributes(layer, sizes))
    # float64: out = weight.reshape(F, C*K) @ cols + bias, as Conv2D computes it
    F, K = layer.out_channels, int(np.prod(layer.kernel_size))
    pads = layer.padding_amounts(tuple(sizes))
    cols, out = windows(graph, x, tuple(sizes), layer.kernel_size, layer.stride, pads)
    L = int(np.prod(out))  # output positions
    cols = graph.node("Reshape", [cols, graph.ints([0, C * K, L], "cols_shape")])
    w_rows = graph.node("Reshape", [weight, graph.ints([F, C * K], "w_shape")])
    y = graph.node("MatMul", [w_rows, cols])  # (F, C*K) @ (N, C*K, L) -> (N, F, L)
    y = graph.node("Add", [y, graph.node("Unsqueeze", [bias, graph.ints([1], "f")])])
    return graph.node("Reshape", [y, graph.ints([0, F, *out], "out_shape")])


@exports(BatchNorm1D, BatchNorm2D)
def _batchnorm(layer, graph: OnnxGraph, x: str) -> str:
    # Inference: the running statistics, as glassnet's evaluation mode. eps is
    # added to the variance by a node, not given as the epsilon attribute: ONNX
    # float attributes are 32-bit, and float32(1e-5) would move a float64 output
    # by up to 1e-9 (the sum is folded into a constant when the model loads).
    running_var = graph.constant(layer.running_var, "running_var")
    inputs = [
        x,
        graph.param(layer.weight),
        graph.param(layer.bias),
        graph.constant(layer.running_mean, "running_mean"),
        graph.node("Add", [running_var, graph.scalar(layer.eps)]),
    ]
    return graph.node("BatchNormalization", inputs, epsilon=0.0)


@exports(LayerNorm)
def _layernorm(layer: LayerNorm, graph: OnnxGraph, x: str) -> str:
    k = len(layer.normalized_shape)  # normalise over the last k axes
    if graph.exact_attribute(layer.eps):
        if layer.elementwise_affine:
            inputs = [x, graph.param(layer.weight), graph.param(layer.bias)]
        else:
            inputs = [x, graph.constant(np.ones(layer.normalized_shape), "unit_scale")]
        return graph.node("LayerNormalization", inputs, axis=-k, epsilon=layer.eps)
    # eps would round to float32 in the attribute: the same steps as LayerNorm,
    # mean, centre, biased variance, with eps added in the graph's dtype
    axes = list(range(-k, 0))
    xc = graph.node("Sub", [x, graph.reduce("ReduceMean", x, axes, keepdims=1)])
    var = graph.reduce("ReduceMean", graph.node("Mul", [xc, xc]), axes, keepdims=1)
    std = graph.node("Sqrt", [graph.node("Add", [var, graph.scalar(layer.eps)])])
    xhat = graph.node("Mul", [xc, graph.node("Reciprocal", [std])])
    if not layer.elementwise_affine:
        return xhat
    out = graph.node("Mul", [xhat, graph.param(layer.weight)])
    return graph.node("Add", [out, graph.param(layer.bias)])


@exports(Embedding)
def _embedding(layer: Embedding, graph: OnnxGraph, x: str) -> str:
    ids = (
        x if graph.is_integer(x) else graph.node("Cast", [x], to=onnx.TensorProto.INT64)
    )
    return graph.node("Gather", [graph.param(layer.weight), ids], axis=0)


# -- pooling and reshaping ------------------------------------------------------------


@exports(MaxPool1D, MaxPool2D)
def _maxpool(layer, graph: OnnxGraph, x: str) -> str:
    # ONNX's padding never wins a max, as glassnet's -inf
    _, *sizes = graph.shape(x, needed_by=type(layer).__name__)
    return graph.node("MaxPool", [x], **_window_attributes(layer, sizes))


@exports(AvgPool1D, AvgPool2D)
def _avgpool(layer, graph: OnnxGraph, x: str) -> str:
    _, *sizes = graph.shape(x, needed_by=type(layer).__name__)
    if graph.native("AveragePool"):  # the zeros count: every window divides by K
        attributes = _window_attributes(layer, sizes)
        return graph.node("AveragePool", [x], count_include_pad=1, **attributes)
    pads = layer.padding_amounts(tuple(sizes))
    stacked, _ = windows(graph, x, tuple(sizes), layer.kernel_size, layer.stride, pads)
    return graph.reduce("ReduceMean", stacked, [2])  # (N, C, *out)


@exports(GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D)
def _global_pool(layer, graph: OnnxGraph, x: str) -> str:
    op = "ReduceMean" if "Avg" in type(layer).__name__ else "ReduceMax"
    axes = [2] if type(layer).__name__.endswith("1D") else [2, 3]
    return graph.reduce(op, x, axes)  # (N, C, ...) -> (N, C)


@exports(Flatten)
def _flatten(layer: Flatten, graph: OnnxGraph, x: str) -> str:
    return graph.node("Flatten", [x], axis=1)


@exports(Identity, Dropout)
def _identity(layer: Layer, graph: OnnxGraph, x: str) -> str:
    return x  # Dropout outside training is the identity


# -- activations -------------------------------------------------------------------


_NATIVE = {Sigmoid: "Sigmoid", Tanh: "Tanh", ReLU: "Relu"}


@exports(*_NATIVE)
def _native(layer: Layer, graph: OnnxGraph, x: str) -> str:
    return graph.node(_NATIVE[type(layer)], [x])


@exports(LeakyReLU)
def _leaky_relu(layer: LeakyReLU, graph: OnnxGraph, x: str) -> str:
    if graph.exact_attribute(layer.negative_slope):
        return graph.node("LeakyRelu", [x], alpha=layer.negative_slope)
    # the slope would round to float32 in the attribute: x or slope * x by hand
    scaled = graph.node("Mul", [x, graph.scalar(layer.negative_slope)])
    positive = graph.node("Greater", [x, graph.scalar(0.0)])
    return graph.node("Where", [positive, x, scaled])


@exports(Softmax)
def _softmax(layer: Softmax, graph: OnnxGraph, x: str) -> str:
    return graph.node("Softmax", [x], axis=1)


@exports(SiLU)
def _silu(layer: SiLU, graph: OnnxGraph, x: str) -> str:
    return graph.node("Mul", [x, graph.node("Sigmoid", [x])])


@exports(GELU)
def _gelu(layer: GELU, graph: OnnxGraph, x: str) -> str:
    if layer.approximate == "tanh":  # x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
        cube = graph.node("Mul", [graph.node("Mul", [x, x]), x])
        inner = graph.node(
            "Add", [x, graph.node("Mul", [cube, graph.scalar(GELU._KAPPA)])]
        )
        u = graph.node("Mul", [inner, graph.scalar(float(GELU._SQRT_2_OVER_PI))])
        one_plus = graph.node("Add", [graph.node("Tanh", [u]), graph.scalar(1.0)])
        half = graph.node("Mul", [x, graph.scalar(0.5)])
        return graph.node("Mul", [half, one_plus])
    if graph.native("Erf"):  # Phi(x) = (1 + erf(x / sqrt 2)) / 2
        scaled = graph.node("Mul", [x, graph.scalar(float(np.sqrt(0.5)))])
        cdf = graph.node("Add", [graph.node("Erf", [scaled]), graph.scalar(1.0)])
        cdf = graph.node("Mul", [cdf, graph.scalar(0.5)])
    else:  # Phi(x) = erfc(-x / sqrt 2) / 2, as glassnet computes it
        scaled = graph.node("Mul", [x, graph.scalar(float(-np.sqrt(0.5)))])
        cdf = graph.node("Mul", [erfc(graph, scaled), graph.scalar(0.5)])
    return graph.node("Mul", [x, cdf])


@exports(ELU)
def _elu(layer: ELU, graph: OnnxGraph, x: str) -> str:
    # x if x > 0 else alpha (e^x - 1), with e^x - 1 accurate near 0 (as np.expm1)
    negative = expm1(graph, graph.node("Min", [x, graph.scalar(0.0)]))
    negative = graph.node("Mul", [negative, graph.scalar(layer.alpha)])
    positive = graph.node("Greater", [x, graph.scalar(0.0)])
    return graph.node("Where", [positive, x, negative])


@exports(Softplus)
def _softplus(layer: Softplus, graph: OnnxGraph, x: str) -> str:
    # log(1 + e^z) / beta with z = beta x, as max(z, 0) + log1p(e^-|z|) (no
    # overflow); x itself where z > threshold, as glassnet and PyTorch
    z = graph.node("Mul", [x, graph.scalar(layer.beta)])
    tail = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [z])])])
    soft = graph.node("Add", [graph.node("Relu", [z]), log1p(graph, tail)])
    soft = graph.node("Div", [soft, graph.scalar(layer.beta)])
    linear = graph.node("Greater", [z, graph.scalar(layer.threshold)])
    return graph.node("Where", [linear, x, soft])


# -- containers -----------------------------------------------------------------------


@exports(Sequential)
def _sequential(layer: Sequential, graph: OnnxGraph, x: str) -> str:
    for name, child in layer.children():
        x = graph.convert(child, name, x)
    return x


@exports(Residual)
def _residual(layer: Residual, graph: OnnxGraph, x: str) -> str:
    return graph.node("Add", [x, graph.convert(layer.block, "block", x)])


@exports(TimeDistributed)
def _time_distributed(layer: TimeDistributed, graph: OnnxGraph, x: str) -> str:
    # the wrapped layer's own nodes on one batch of N*T steps, as in glassnet
    T, *step = graph.shape(x, needed_by="TimeDistributed")
    steps = graph.node("Reshape", [x, graph.ints([-1, *step], "steps_shape")])
    graph.set_shape(steps, tuple(step))  # (N*T, *step)
    y = graph.convert(layer.layer, "layer", steps)  # (N*T, *step_out)
    step_out = graph.shape(y, needed_by="TimeDistributed")
    return graph.node("Reshape", [y, graph.ints([-1, T, *step_out], "out_shape")])


@exports(Concat)
def _concat(layer: Concat, graph: OnnxGraph, x: str) -> str:
    outs = [graph.convert(child, name, x) for name, child in layer.children()]
    return graph.node("Concat", outs, axis=layer.axis)


# -- the model -----------------------------------------------------------------------


def _probabilities(model: Layer, graph: OnnxGraph, y: str) -> str:
    """Sequential.predict_proba's rule on the output y: (N, K) probabilities."""
    shape = graph.shape(y)
    if shape is None or len(shape) != 1:
        got = "unknown" if shape is None else f"(N, {', '.join(map(str, shape))})"
        raise ShapeError(
            f"to_onnx: output='proba' needs outputs of shape (N, K), got {got}; "
            "use output='predict'"
        )
    last = output_layer(model) or model
    if shape[0] == 1:  # one unit: [1 - p, p]
        p = y if isinstance(last, Sigmoid) else graph.node("Sigmoid", [y])
        q = graph.node("Sub", [graph.scalar(1.0), p])
        out = graph.node("Concat", [q, p], axis=1)
        graph.set_shape(out, (2,))
        return out
    if isinstance(last, Softmax):
        return y
    out = graph.node("Softmax", [y], axis=1)
    graph.set_shape(out, shape)
    return out


def _check_opset(opset) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ConfigError(f"to_onnx: opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ConfigError(
            f"to_onnx: opset must be in [{MIN_OPSET}, {newest}] (the onnx package's "
            f"newest), got {opset}"
        )
    return opset


def to_onnx(
    model: Layer,
    path,
    *,
    input_shape=None,
    opset: int = 17,
    dtype=None,
    output: str = "predict",
) -> onnx.ModelProto:
    """Write the model's inference graph to `path` as ONNX; see glassnet.export."""
    check_model(model, "to_onnx")
    if output not in ("predict", "proba"):
        raise ConfigError(
            f"to_onnx: output must be 'predict' or 'proba', got {output!r}"
        )
    opset = _check_opset(opset)
    shape = input_shape_for(model, input_shape, "to_onnx")
    graph = OnnxGraph(model_dtype(model, dtype, "to_onnx"), opset)
    x = graph.add_input("input", shape, integer=takes_ids(model))
    y = graph.convert(model, "", x)
    if output == "proba":
        y = _probabilities(model, graph, y)
    graph.add_output(y, "proba" if output == "proba" else "output")
    proto = graph.to_model(
        f"glassnet {type(model).__name__}, output={output!r}, dtype {graph.dtype}"
    )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConfigError(
            f"to_onnx: the graph fails onnx.checker ({exc}); a custom layer's "
            "to_onnx_nodes is the likely cause"
        ) from None
    atomic_write(path, proto.SerializeToString())
    return proto
