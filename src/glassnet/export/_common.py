"""What the PyTorch and ONNX exporters share, free of both: the input shape and
dtype of an exported model, and the layer that first sees its input."""

from collections.abc import Callable

import numpy as np

from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.nn.layers.base import Layer, builtin_layers
from glassnet.nn.layers.concat import Concat
from glassnet.nn.layers.containers import Sequential
from glassnet.nn.layers.dense import Dense
from glassnet.nn.layers.embedding import Embedding
from glassnet.nn.layers.residual import Residual

# glassnet's layers without converters, and why: {class name: reason}. to_torch
# and to_onnx refuse them with this reason, the README's export table lists them,
# and the tests check that every other layer class glassnet ships has its
# converters. Empty since TimeDistributed got its converters; a layer that lands
# before its converters is listed here until it has them.
NOT_EXPORTED: dict[str, str] = {}


def not_exported_reason(layer: Layer) -> str | None:
    """Why glassnet's own layer class cannot be exported yet, or None."""
    name = type(layer).__name__
    if builtin_layers().get(name) is type(layer):
        return NOT_EXPORTED.get(name)
    return None


def check_model(model, who: str) -> Layer:
    if not isinstance(model, Layer):
        raise ArgumentTypeError(
            f"{who}: expected a glassnet model or layer, got {type(model).__name__}"
        )
    return model


def first_layer(model: Layer) -> Layer:
    """The leaf layer that sees the model's input first (inside containers)."""
    while True:
        if isinstance(model, Sequential) and model.layers:
            model = model.layers[0]
        elif isinstance(model, Residual):
            model = model.block
        elif isinstance(model, Concat):
            model = model.branches[0]
        else:
            return model


def takes_ids(model: Layer) -> bool:
    """True when the model starts with an Embedding: its input is integer ids."""
    return isinstance(first_layer(model), Embedding)


def input_shape_for(model: Layer, input_shape, who: str) -> tuple[int, ...]:
    """One example's input shape (no batch axis), checked against the model.

    Given, it must suit every layer (the model's output_shape names the first
    misfit); left None, it is read from a first Dense, (in_features,), and any
    other first layer needs it spelled out.
    """
    if input_shape is None:
        first = first_layer(model)
        if not isinstance(first, Dense):
            raise ConfigError(
                f"{who}: input_shape is needed for a model whose first layer is "
                f"{type(first).__name__} (only a first Dense tells its input size); "
                "pass one example's shape without the batch axis, e.g. "
                "input_shape=(1, 28, 28) for images or (T,) for sequences of ids"
            )
        return (first.in_features,)
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or min(shape) < 1:
        raise ConfigError(
            f"{who}: input_shape must be one example's shape, positive sizes without "
            f"the batch axis such as (4,) or (1, 28, 28), got {input_shape!r}"
        )
    try:
        model.output_shape(shape)
    except ShapeError as exc:
        raise ShapeError(f"{who}: input_shape {shape} does not fit: {exc}") from None
    return shape


def model_dtype(model: Layer, dtype, who: str) -> np.dtype:
    """The float dtype to export in: dtype if given, else the model's own."""
    if dtype is None:
        if isinstance(model, Sequential):
            return model.dtype
        kinds = [p.data.dtype for p in model.parameters() if p.data.dtype.kind == "f"]
        return kinds[0] if kinds else np.dtype(np.float32)
    return float_dtype(dtype, who)


def float_dtype(dtype, who: str) -> np.dtype:
    """dtype as np.float32 or np.float64; ConfigError for anything else."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ConfigError(f"{who}: dtype must be float32 or float64, got {dtype!r}")
    return dt


def register_in(table: dict, *classes: type) -> Callable[[Callable], Callable]:
    """A decorator that registers the decorated converter as table[cls] for each
    of classes (the converter tables of the torch and ONNX exporters)."""

    def register(fn: Callable) -> Callable:
        for cls in classes:
            table[cls] = fn
        return fn

    return register
