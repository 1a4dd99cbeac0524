"""One recorded forward/backward pass, shared by summary, explain and gradient_flow.

`run_trace` works on a deep copy of the model, so the caller's weights, caches
and gradients are never touched. It records, for every layer, the arrays that
really flowed: its input x, output out, the upstream gradient g = dL/d(out), the
returned dL/dx, every parameter's gradient, and the arrays it cached for
backward.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer


@dataclass
class LayerTrace:
    """What one layer saw and produced in the recorded pass."""

    index: int
    layer: Layer
    x: np.ndarray  # input, (N, ...)
    out: np.ndarray  # output, (N, ...)
    cache: list[tuple[str, np.ndarray]] = field(default_factory=list)
    g: np.ndarray | None = None  # dL/d(out), out's shape
    dx: np.ndarray | None = None  # dL/dx, x's shape
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # by parameter name

    @property
    def name(self) -> str:
        return type(self.layer).__name__


def layers_of(model) -> list[Layer]:
    """The layers of a Sequential, or [layer] for a single layer."""
    if hasattr(model, "layers"):
        return list(model.layers)
    if isinstance(model, Layer):
        return [model]
    raise ArgumentTypeError(
        f"expected a glassnet Sequential model or Layer, got {type(model).__name__}"
    )


def batch_shape(model, input_shape, batch_size: int) -> tuple[int, ...]:
    """(batch_size, *input_shape), checked against the model before any data.

    input_shape is one example's shape without the batch axis: (4,) or 4 for
    vectors, (1, 28, 28) for images. None means "what the first Dense expects".
    """
    layers = layers_of(model)
    if input_shape is None:
        first = layers[0] if layers else None
        if first is None or not hasattr(first, "in_features"):
            raise ArgumentTypeError(
                "input_shape is required: one example's shape without the batch axis, "
                "e.g. (4,) for 4 features or (1, 6, 6) for one-channel 6x6 images"
            )
        input_shape = (first.in_features,)
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"input_shape must be a tuple of positive integers, got {input_shape!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise ShapeError(
            f"input_shape must be one example's shape, positive sizes without the "
            f"batch axis (e.g. (4,)), got {input_shape!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ArgumentTypeError(
            f"batch_size must be an integer >= 1, got {batch_size!r}"
        )
    if batch_size < 1:
        raise ShapeError(f"batch_size must be an integer >= 1, got {batch_size}")
    if hasattr(model, "output_shape"):
        model.output_shape(shape)  # names the first layer that does not fit
    return (int(batch_size), *shape)


# what the entries of a layer's tuple cache are, by class name (for the tables)
CACHE_NAMES = {
    "Conv2D": ("grid", "cols"),
    "MaxPool2D": ("x", "out"),
    "Dropout": ("mask",),
}


def _cache_arrays(
    layer, x: np.ndarray, out: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """Every array inside a layer's _cache (arrays, tuples, lists, dicts), named
    "x" or "out" when it is the layer's own input or output."""
    found: list[tuple[str, np.ndarray]] = []
    names = next(
        (
            CACHE_NAMES[c.__name__]
            for c in type(layer).__mro__
            if c.__name__ in CACHE_NAMES
        ),
        (),
    )

    def visit(item, label: str) -> None:
        if isinstance(item, np.ndarray):
            if item is x:
                label = "x"
            elif item is out:
                label = "out"
            elif item.dtype == bool and label == "array":
                label = "mask"
            found.append((label, item))
        elif isinstance(item, dict):
            for key, value in item.items():
                visit(value, str(key))
        elif isinstance(item, (tuple, list)):
            for k, value in enumerate(item):
                visit(value, names[k] if k < len(names) else "array")

    visit(getattr(layer, "_cache", None), "array")
    return found


def _as_dtype(model, dtype) -> None:
    """Cast every parameter of the (copied) model to dtype, in place."""
    for p in model.parameters():
        p.data = np.array(p.data, dtype=dtype)
        p.grad = np.zeros(p.shape, dtype)
    if hasattr(model, "dtype"):
        model.dtype = np.dtype(dtype)


def run_trace(
    model,
    x: np.ndarray,
    *,
    y=None,
    loss=None,
    dout: np.ndarray | None = None,
    dtype=None,
    training: bool = True,
    seed: int = 0,
) -> tuple[list[LayerTrace], object, float | None]:
    """Forward x through a copy of model, then backward; returns (traces, copy, loss).

    The upstream gradient at the top is loss.backward() when a loss is given
    (with targets y), else `dout`, else a seeded standard-normal array.
    dtype: cast the copy's parameters (float64 for exact formula checks).
    """
    clone = copy.deepcopy(model)
    if dtype is not None:
        _as_dtype(clone, dtype)
        x = np.asarray(x, dtype=dtype)
    layers = layers_of(clone)
    traces = []
    a = x
    for i, layer in enumerate(layers):
        layer.training = training
        try:
            out = layer.forward(a)
        except ShapeError as exc:
            raise ShapeError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        t = LayerTrace(i, layer, a, out)
        t.cache = _cache_arrays(layer, a, out)
        traces.append(t)
        a = out
    value = None
    if loss is not None:
        from glassnet.nn.losses import get_loss

        loss = get_loss(loss)
        target = loss.prepare_target(y, a.shape, a.dtype)
        value = loss.forward(a, target)
        g = loss.backward()
    elif dout is not None:
        g = np.asarray(dout, dtype=a.dtype)
    else:
        g = np.random.default_rng(seed).standard_normal(a.shape).astype(a.dtype)
    for t in reversed(traces):
        t.g = g
        dx = t.layer.backward(g)
        t.dx = None if dx is None else np.asarray(dx)
        t.grads = {p.name: p.grad.copy() for p in t.layer.parameters()}
        g = dx
        if g is None:
            break
    return traces, clone, value


def owner(a: np.ndarray) -> np.ndarray:
    """The array that owns a view's memory (a sliding-window view reports a far
    larger nbytes than the memory it really spans)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a
