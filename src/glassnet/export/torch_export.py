"""glassnet layers to torch.nn modules: one small converter per layer class.

TO_TORCH maps a glassnet layer class to a function (layer, convert) -> nn.Module
that builds the module and copies the weights; convert(child, name) converts a
layer held inside (containers). Lookups use the exact class: a subclass may
change forward, so it is not taken for its parent. A layer added to glassnet
adds its row here, one in torch_import.FROM_TORCH and one in
onnx_layers (TO_ONNX); tests/test_export_torch.py fails for a layer class
without them.

This module imports torch: glassnet.export loads it on first use.
"""

from collections.abc import Callable

import torch
from torch import nn

from glassnet.errors import ConfigError
from glassnet.export import _torch_modules as tm
from glassnet.export import torch_sequence
from glassnet.export._common import (
    check_model,
    input_shape_for,
    model_dtype,
    not_exported_reason,
    register_in,
    takes_ids,
)
from glassnet.export._torch_weights import empty as _empty
from glassnet.export._torch_weights import fill as _fill
from glassnet.export._torch_weights import module_dtype
from glassnet.io._atomic import atomic_open
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
from glassnet.nn.layers._windows import parse_padding
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.containers import Sequential

# the sequence layers' converters live in torch_sequence.py
TO_TORCH: dict[type, Callable] = dict(torch_sequence.TO_TORCH)


def exports(*classes: type):
    """Register the decorated function as the torch converter of glassnet classes."""
    return register_in(TO_TORCH, *classes)


# -- glassnet -> torch ----------------------------------------------------------------


@exports(Dense)
def _dense(layer: Dense, convert) -> nn.Module:
    w = layer.weight.data
    linear = _empty(nn.Linear, layer.in_features, layer.out_features, like=w)
    return _fill(linear, weight=w.T, bias=layer.bias.data)  # (in, out) -> (out, in)


def explicit_padding(layer) -> str | tuple[tuple[int, int], ...]:
    """A windowed layer's padding as "same" or ((before, after), ...) per axis."""
    ndim = len(layer.kernel_size)
    return parse_padding(type(layer).__name__, layer.padding, ndim)[1]


def _symmetric(pads) -> tuple[int, ...] | None:
    """(p, ...) when every axis has as much padding before as after, else None."""
    if pads == "same" or any(before != after for before, after in pads):
        return None
    return tuple(before for before, _ in pads)


# glassnet class -> (torch.nn class, the explicitly padded variant)
_CONVOLUTIONS = {
    Conv1D: (nn.Conv1d, tm.PaddedConv1d),
    Conv2D: (nn.Conv2d, tm.PaddedConv2d),
}


@exports(*_CONVOLUTIONS)
def _convolution(layer, convert) -> nn.Module:
    native, padded = _CONVOLUTIONS[type(layer)]
    w = layer.weight.data  # (F, C, *kernel) on both sides
    sizes = (layer.in_channels, layer.out_channels, layer.kernel_size)
    pads = explicit_padding(layer)
    if layer.padding == "valid":
        padding = "valid"
    elif pads == "same" and set(layer.stride) == {1}:
        padding = "same"  # torch's rule for stride 1 is glassnet's
    else:
        padding = _symmetric(pads)
    if padding is None:  # strided "same", or more on one side than the other
        conv = _empty(padded, *sizes, stride=layer.stride, pads=layer.padding, like=w)
    else:
        conv = _empty(native, *sizes, stride=layer.stride, padding=padding, like=w)
    return _fill(conv, weight=w, bias=layer.bias.data)


# glassnet class -> (torch.nn class, the explicitly padded variant)
_POOLS = {
    MaxPool1D: (nn.MaxPool1d, tm.PaddedMaxPool1d),
    MaxPool2D: (nn.MaxPool2d, tm.PaddedMaxPool2d),
    AvgPool1D: (nn.AvgPool1d, tm.PaddedAvgPool1d),
    AvgPool2D: (nn.AvgPool2d, tm.PaddedAvgPool2d),
}


@exports(*_POOLS)
def _pool(layer, convert) -> nn.Module:
    native, padded = _POOLS[type(layer)]
    pads = explicit_padding(layer)
    padding = _symmetric(pads)
    if padding is None or any(
        p > k // 2 for p, k in zip(padding, layer.kernel_size, strict=True)
    ):  # torch pads at most half a window, the same amount on both sides
        return padded(layer.kernel_size, layer.stride, pads=layer.padding)
    # AvgPool: the zeros count in the mean (count_include_pad=True), as in glassnet
    return native(layer.kernel_size, layer.stride, padding)


_SIMPLE = {
    Identity: nn.Identity,
    Flatten: nn.Flatten,  # start_dim=1, end_dim=-1: glassnet's (N, ...) -> (N, -1)
    Sigmoid: nn.Sigmoid,
    Tanh: nn.Tanh,
    ReLU: nn.ReLU,
    SiLU: nn.SiLU,
    GlobalAvgPool1D: tm.GlobalAvgPool1d,
    GlobalAvgPool2D: tm.GlobalAvgPool2d,
    GlobalMaxPool1D: tm.GlobalMaxPool1d,
    GlobalMaxPool2D: tm.GlobalMaxPool2d,
}


@exports(*_SIMPLE)
def _simple(layer: Layer, convert) -> nn.Module:
    return _SIMPLE[type(layer)]()


@exports(Dropout)
def _dropout(layer: Dropout, convert) -> nn.Module:
    return nn.Dropout(layer.rate)


@exports(LeakyReLU)
def _leaky_relu(layer: LeakyReLU, convert) -> nn.Module:
    return nn.LeakyReLU(layer.negative_slope)


@exports(Softmax)
def _softmax(layer: Softmax, convert) -> nn.Module:
    return nn.Softmax(dim=1)  # glassnet's Softmax takes (N, K)


@exports(GELU)
def _gelu(layer: GELU, convert) -> nn.Module:
    return nn.GELU(approximate=layer.approximate)


@exports(ELU)
def _elu(layer: ELU, convert) -> nn.Module:
    return nn.ELU(layer.alpha)


@exports(Softplus)
def _softplus(layer: Softplus, convert) -> nn.Module:
    return nn.Softplus(layer.beta, layer.threshold)


@exports(BatchNorm1D, BatchNorm2D)
def _batchnorm(layer, convert) -> nn.Module:
    cls = nn.BatchNorm1d if isinstance(layer, BatchNorm1D) else nn.BatchNorm2d
    w = layer.weight.data
    bn = _empty(cls, layer.num_features, eps=layer.eps, momentum=layer.momentum, like=w)
    # glassnet keeps no step count (its momentum is never None): no such buffer
    bn.num_batches_tracked = None
    return _fill(
        bn,
        weight=w,
        bias=layer.bias.data,
        running_mean=layer.running_mean,
        running_var=layer.running_var,
    )


@exports(LayerNorm)
def _layernorm(layer: LayerNorm, convert) -> nn.Module:
    if not layer.elementwise_affine:
        return nn.LayerNorm(layer.normalized_shape, layer.eps, False)
    w = layer.weight.data
    norm = _empty(nn.LayerNorm, layer.normalized_shape, layer.eps, like=w)
    return _fill(norm, weight=w, bias=layer.bias.data)


@exports(Embedding)
def _embedding(layer: Embedding, convert) -> nn.Module:
    w = layer.weight.data
    table = _empty(nn.Embedding, layer.num_embeddings, layer.embedding_dim, like=w)
    return _fill(table, weight=w)


@exports(Sequential)
def _sequential(layer: Sequential, convert) -> nn.Module:
    return nn.Sequential(*(convert(child, name) for name, child in layer.children()))


@exports(Residual)
def _residual(layer: Residual, convert) -> nn.Module:
    return tm.Residual(convert(layer.block, "block"))


@exports(TimeDistributed)
def _time_distributed(layer: TimeDistributed, convert) -> nn.Module:
    return tm.TimeDistributed(convert(layer.layer, "layer"))


@exports(Concat)
def _concat(layer: Concat, convert) -> nn.Module:
    branches = [convert(child, name) for name, child in layer.children()]
    return tm.Concat(*branches, axis=layer.axis)


def to_torch(model: Layer) -> nn.Module:
    """glassnet.export.to_torch: the model as an nn.Module, same weights and names."""
    check_model(model, "to_torch")

    def convert(layer: Layer, path: str) -> nn.Module:
        fn = TO_TORCH.get(type(layer))
        if fn is not None:
            return fn(layer, lambda child, name: convert(child, _join(path, name)))
        where = _where(path, type(layer).__name__)
        hook = getattr(layer, "to_torch_module", None)
        reason = not_exported_reason(layer)
        if hook is None and reason is not None:
            raise ConfigError(f"to_torch: {where} does not export yet: {reason}")
        if hook is None:
            raise ConfigError(
                f"to_torch: {where} has no PyTorch converter; give the class a "
                "to_torch_module(self) method that returns a torch.nn.Module whose "
                "state_dict names are the layer's own parameter names (see "
                "docs/export_and_scale.md, custom layers)"
            )
        module = hook()
        if not isinstance(module, nn.Module):
            raise ConfigError(
                f"to_torch: {where}: to_torch_module() must return a torch.nn.Module, "
                f"got {type(module).__name__}"
            )
        return module

    module = convert(model, "")
    expected = {n for n, _ in model.named_parameters()}
    expected |= {n for n, _ in model.named_buffers()}
    got = set(module.state_dict())
    if got != expected:
        raise ConfigError(
            "to_torch: the torch module's state_dict names differ from the model's "
            f"parameter and buffer names: only in torch {sorted(got - expected)}, "
            f"only in glassnet {sorted(expected - got)} (a custom to_torch_module() "
            "must name its parameters as the layer does)"
        )
    return module.train(bool(model.training))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str, type_name: str) -> str:
    return f"layer {path!r} ({type_name})" if path else f"the model ({type_name})"


# -- a file PyTorch loads without glassnet ------------------------------------------


def save_torch(model: Layer, path, *, input_shape=None, dtype=None):
    """glassnet.export.save_torch: a torch.export program of the model, atomically."""
    check_model(model, "save_torch")
    shape = input_shape_for(model, input_shape, "save_torch")
    dt = model_dtype(model, dtype, "save_torch")
    module = to_torch(model).eval().to(module_dtype(dt))
    if takes_ids(model):
        example = torch.zeros((2, *shape), dtype=torch.long)
    else:
        example = torch.zeros((2, *shape), dtype=module_dtype(dt))
    batch = torch.export.Dim("N", min=1)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    with atomic_open(path, "wb") as fh:
        torch.export.save(program, fh)
    return program
