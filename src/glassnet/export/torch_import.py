"""torch.nn modules to glassnet layers: one small importer per module class.

FROM_TORCH maps a torch.nn module class to a function (module, site) -> Layer;
site.check refuses the options glassnet does not have, site.load copies the
weights once the model is built, site.convert converts a child module. Lookups
use the exact class: a subclass may change forward, so it is refused rather
than taken for its parent.

This module imports torch: glassnet.export loads it on first use.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.export import _torch_modules as tm
from glassnet.export import torch_sequence
from glassnet.export._common import float_dtype, register_in
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
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.containers import Sequential

# the sequence layers' importers live in torch_sequence.py
FROM_TORCH: dict[type, Callable] = dict(torch_sequence.FROM_TORCH)


def imports(*classes: type):
    """Register the decorated function as the importer of torch module classes."""
    return register_in(FROM_TORCH, *classes)


def torch_name(cls: type) -> str:
    """torch.nn.Conv2d rather than torch.nn.modules.conv.Conv2d."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _square(value):
    """An int for (k, k) or k; a pair that differs stays a pair (glassnet's
    constructors then accept it or say why not)."""
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else tuple(value)
    return value


# -- torch -> glassnet ----------------------------------------------------------------


class _Site:
    """What an importer needs: its module's place, refusals, deferred weights."""

    def __init__(self, importer: "_Importer", module: nn.Module, path: str) -> None:
        self.importer, self.module, self.path = importer, module, path

    def check(self, layer: str, **options) -> None:
        """Refuse every option whose (value, glassnet's only value) differ."""
        bad = [(k, v, ok) for k, (v, ok) in options.items() if v != ok]
        if bad:
            shown = ", ".join(f"{k}={v!r}" for k, v, _ in bad)
            only = ", ".join(f"{k}={ok!r}" for k, _, ok in bad)
            verb = "is" if len(bad) == 1 else "are"
            raise self.refuse(
                f"{shown} {verb} not supported (glassnet's {layer} supports only "
                f"{only})"
            )

    def refuse(self, reason: str) -> ConfigError:
        """The error to raise for this module: its path, its type, the reason."""
        return self.importer.refuse(self.module, self.path, reason)

    def load(self, layer: Layer, buffers: dict | None = None, **params) -> None:
        """Copy these tensors into layer's parameters (and buffers) once the
        model is built (building it draws fresh weights)."""
        self.importer.loads.append((layer, params, buffers or {}))

    def convert(self, child: nn.Module, name: str) -> Layer:
        path = f"{self.path}.{name}" if self.path else name
        return self.importer.convert(child, path)


class _Importer:
    def __init__(self) -> None:
        self.loads: list = []
        self._raised: ConfigError | None = None

    def refuse(self, module: nn.Module, path: str, reason: str) -> ConfigError:
        where = f"module {path!r}" if path else "the module"
        exc = ConfigError(f"from_torch: {where} ({torch_name(type(module))}): {reason}")
        self._raised = exc
        return exc

    def convert(self, module: nn.Module, path: str) -> Layer:
        fn = FROM_TORCH.get(type(module))
        if fn is None:
            known = sorted({torch_name(c).split(".")[-1] for c in FROM_TORCH})
            parent = next((c for c in FROM_TORCH if isinstance(module, c)), None)
            hint = (
                f"; it subclasses {torch_name(parent)}, but a subclass may change "
                "forward, so only the exact class is imported"
                if parent is not None
                else ""
            )
            raise self.refuse(
                module,
                path,
                f"no glassnet layer computes this module{hint} (glassnet imports "
                f"{', '.join(known)})",
            )
        try:
            return fn(module, _Site(self, module, path))
        except ConfigError as exc:
            if exc is self._raised:
                raise
            raise self.refuse(module, path, str(exc)) from None

    def apply_loads(self) -> None:
        for layer, params, buffers in self.loads:
            own = {p.name: p for p in layer.own_parameters()}
            for name, tensor in params.items():
                p = own[name]
                np.copyto(p.data, _array(tensor), casting="same_kind")
            for name, tensor in buffers.items():
                layer.load_buffer(name, _array(tensor))


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


@imports(nn.Linear)
def _from_linear(module: nn.Linear, site: _Site) -> Layer:
    site.check("Dense", bias=(module.bias is not None, True))
    layer = Dense(module.in_features, module.out_features)
    site.load(layer, weight=module.weight.T, bias=module.bias)
    return layer


_CONVOLUTIONS = {
    nn.Conv1d: Conv1D,
    nn.Conv2d: Conv2D,
    tm.PaddedConv1d: Conv1D,
    tm.PaddedConv2d: Conv2D,
}


def _padding(module: nn.Module):
    """The padding argument of the glassnet layer: "same", "valid", pairs
    (before, after) per axis from to_torch's explicit padding, or p per axis."""
    if isinstance(module, tm.ExplicitPadding):
        return module.pads
    if module.padding in ("same", "valid"):
        return module.padding
    return _square(module.padding)


@imports(*_CONVOLUTIONS)
def _from_convolution(module, site: _Site) -> Layer:
    cls = _CONVOLUTIONS[type(module)]
    ones = (1,) * len(module.kernel_size)
    site.check(
        cls.__name__,
        dilation=(module.dilation, ones),
        groups=(module.groups, 1),
        padding_mode=(module.padding_mode, "zeros"),
        bias=(module.bias is not None, True),
    )
    layer = cls(
        module.in_channels,
        module.out_channels,
        _square(module.kernel_size),
        stride=_square(module.stride),
        padding=_padding(module),
    )
    site.load(layer, weight=module.weight, bias=module.bias)
    return layer


_POOLS = {
    nn.MaxPool1d: MaxPool1D,
    nn.MaxPool2d: MaxPool2D,
    nn.AvgPool1d: AvgPool1D,
    nn.AvgPool2d: AvgPool2D,
    tm.PaddedMaxPool1d: MaxPool1D,
    tm.PaddedMaxPool2d: MaxPool2D,
    tm.PaddedAvgPool1d: AvgPool1D,
    tm.PaddedAvgPool2d: AvgPool2D,
}


@imports(*_POOLS)
def _from_pool(module, site: _Site) -> Layer:
    cls = _POOLS[type(module)]
    padding = _padding(module)
    options = {"ceil_mode": (module.ceil_mode, False)}
    if cls in (MaxPool1D, MaxPool2D):
        options["dilation"] = (_square(module.dilation), 1)
        options["return_indices"] = (module.return_indices, False)
    else:
        # AvgPool1d has no divisor_override
        divisor = getattr(module, "divisor_override", None)
        options["divisor_override"] = (divisor, None)
        if padding not in (0, "valid"):  # glassnet counts the padded zeros
            options["count_include_pad"] = (module.count_include_pad, True)
    site.check(cls.__name__, **options)
    return cls(_square(module.kernel_size), _square(module.stride), padding)


@imports(nn.Flatten)
def _from_flatten(module: nn.Flatten, site: _Site) -> Layer:
    site.check("Flatten", start_dim=(module.start_dim, 1), end_dim=(module.end_dim, -1))
    return Flatten()


@imports(nn.Softmax)
def _from_softmax(module: nn.Softmax, site: _Site) -> Layer:
    dim = 1 if module.dim == -1 else module.dim  # the same axis of (N, K)
    site.check("Softmax", dim=(dim, 1))
    return Softmax()


_SIMPLE_IMPORTS = {
    nn.Identity: Identity,
    nn.Sigmoid: Sigmoid,
    nn.Tanh: Tanh,
    nn.ReLU: ReLU,  # inplace or not: the same values and gradients
    nn.SiLU: SiLU,
    tm.GlobalAvgPool1d: GlobalAvgPool1D,
    tm.GlobalAvgPool2d: GlobalAvgPool2D,
    tm.GlobalMaxPool1d: GlobalMaxPool1D,
    tm.GlobalMaxPool2d: GlobalMaxPool2D,
}


@imports(*_SIMPLE_IMPORTS)
def _from_simple(module: nn.Module, site: _Site) -> Layer:
    return _SIMPLE_IMPORTS[type(module)]()


@imports(nn.Dropout)
def _from_dropout(module: nn.Dropout, site: _Site) -> Layer:
    return Dropout(module.p)


@imports(nn.LeakyReLU)
def _from_leaky_relu(module: nn.LeakyReLU, site: _Site) -> Layer:
    return LeakyReLU(module.negative_slope)


@imports(nn.GELU)
def _from_gelu(module: nn.GELU, site: _Site) -> Layer:
    return GELU(module.approximate)


@imports(nn.ELU)
def _from_elu(module: nn.ELU, site: _Site) -> Layer:
    return ELU(module.alpha)


@imports(nn.Softplus)
def _from_softplus(module: nn.Softplus, site: _Site) -> Layer:
    return Softplus(module.beta, module.threshold)


@imports(nn.BatchNorm1d, nn.BatchNorm2d)
def _from_batchnorm(module, site: _Site) -> Layer:
    cls = BatchNorm1D if isinstance(module, nn.BatchNorm1d) else BatchNorm2D
    site.check(
        cls.__name__,
        affine=(module.affine, True),
        track_running_stats=(module.track_running_stats, True),
    )
    if module.momentum is None:
        raise site.refuse(
            "momentum=None (a cumulative average of every batch) is not supported "
            "(glassnet's BatchNorm keeps an exponential average, momentum in [0, 1])"
        )
    layer = cls(module.num_features, eps=module.eps, momentum=module.momentum)
    running = {"running_mean": module.running_mean, "running_var": module.running_var}
    site.load(layer, running, weight=module.weight, bias=module.bias)
    return layer


@imports(nn.LayerNorm)
def _from_layernorm(module: nn.LayerNorm, site: _Site) -> Layer:
    affine = module.elementwise_affine
    site.check("LayerNorm", bias=(module.bias is not None, affine))
    layer = LayerNorm(tuple(module.normalized_shape), module.eps, affine)
    if affine:
        site.load(layer, weight=module.weight, bias=module.bias)
    return layer


@imports(nn.Embedding)
def _from_embedding(module: nn.Embedding, site: _Site) -> Layer:
    site.check(
        "Embedding",
        padding_idx=(module.padding_idx, None),
        max_norm=(module.max_norm, None),
        scale_grad_by_freq=(module.scale_grad_by_freq, False),
        sparse=(module.sparse, False),
    )
    layer = Embedding(module.num_embeddings, module.embedding_dim)
    site.load(layer, weight=module.weight)
    return layer


@imports(nn.Sequential)
def _from_sequential(module: nn.Sequential, site: _Site) -> Layer:
    return Sequential(*(site.convert(m, name) for name, m in module.named_children()))


@imports(tm.Residual)
def _from_residual(module: tm.Residual, site: _Site) -> Layer:
    return Residual(site.convert(module.block, "block"))


@imports(tm.Concat)
def _from_concat(module: tm.Concat, site: _Site) -> Layer:
    branches = [site.convert(m, name) for name, m in module.named_children()]
    return Concat(*branches, axis=module.axis)


@imports(tm.TimeDistributed)
def _from_time_distributed(module: tm.TimeDistributed, site: _Site) -> Layer:
    return TimeDistributed(site.convert(module.layer, "layer"))


# -- nn.Linear over a sequence -------------------------------------------------------


def _probe_shape(first: Layer) -> tuple[int, ...] | None:
    """A made-up example shape for a model whose first layer fixes the input's
    rank (ids (T,), or steps (T, D)), with T = 2; None when it does not."""
    if isinstance(first, Embedding):
        return (2,)
    size = getattr(first, "input_size", None) or getattr(first, "embed_dim", None)
    return (2, size) if isinstance(size, int) else None


def _shape_after(layer: Layer, shape):
    try:
        return layer.output_shape(shape)
    except ShapeError:
        return None


def _per_step(layer: Layer, shape) -> Layer:
    """layer with every Dense that sees a sequence, one example (T, D), wrapped
    in TimeDistributed (containers are changed in place)."""
    if shape is None:
        return layer
    if type(layer) is Dense and len(shape) == 2 and shape[1] == layer.in_features:
        return TimeDistributed(layer)
    if type(layer) is Sequential:
        for i, child in enumerate(layer.layers):
            layer.layers[i] = child = _per_step(child, shape)
            shape = _shape_after(child, shape)
    elif type(layer) is Residual:
        layer.block = _per_step(layer.block, shape)
    elif type(layer) is Concat:
        layer.branches = [_per_step(b, shape) for b in layer.branches]
    return layer


def _linears_over_steps(layers: list[Layer]) -> list[Layer]:
    """torch applies nn.Linear to the last axis of any input, glassnet's Dense
    takes (N, D): an nn.Linear that sees a sequence (N, T, D), after an
    Embedding, a recurrent layer that returns every step or attention, becomes
    TimeDistributed(Dense), glassnet's layer for that. The sequences are found
    by following one example's shape from a first layer that fixes it; a model
    that starts with nn.Linear keeps Dense (its input is taken to be (N, D))."""
    if not layers:
        return layers
    first = layers[0]
    while isinstance(first, (Sequential, Residual)):  # the leaf that sees x
        inner = first.layers if isinstance(first, Sequential) else [first.block]
        if not inner:
            return layers
        first = inner[0]
    shape = _probe_shape(first)
    out = []
    for layer in layers:
        out.append(layer := _per_step(layer, shape))
        shape = _shape_after(layer, shape) if shape is not None else None
    return out


def _float_dtype(module: nn.Module) -> np.dtype:
    """The one float dtype of the module's parameters and buffers."""
    dtypes = {t.dtype for t in module.state_dict().values() if t.is_floating_point()}
    if not dtypes:
        return np.dtype(np.float32)
    if len(dtypes) > 1 or dtypes - {torch.float32, torch.float64}:
        shown = ", ".join(sorted(str(d) for d in dtypes))
        raise ConfigError(
            f"from_torch: the module's tensors have dtypes {shown}; glassnet takes "
            "one dtype, float32 or float64: call module.float() or module.double()"
        )
    return np.dtype(np.float64 if torch.float64 in dtypes else np.float32)


def from_torch(module: nn.Module, *, dtype=None) -> Sequential:
    """glassnet.export.from_torch: a Sequential computing what module computes."""
    if not isinstance(module, nn.Module):
        raise ArgumentTypeError(
            f"from_torch: expected a torch.nn.Module, got {type(module).__name__}"
        )
    if dtype is None:
        dtype = _float_dtype(module)
    else:
        dtype = float_dtype(dtype, "from_torch")
    importer = _Importer()
    if type(module) is nn.Sequential:
        layers = [importer.convert(m, name) for name, m in module.named_children()]
    else:
        layers = [importer.convert(module, "")]
    model = Sequential(*_linears_over_steps(layers), dtype=dtype)
    importer.apply_loads()
    model.set_training(module.training)
    return model
