"""One recorded forward/backward pass, shared by summary, explain and gradient_flow.

`run_trace` works on a deep copy of the model, so the caller's weights, caches
and gradients are never touched. It records, for every layer at every depth
(the layers inside a Residual, a Concat, a nested Sequential or a user's own
composite layer too), the arrays that really flowed: its input x, output out,
the upstream gradient g = dL/d(out), the returned dL/dx, its own parameters'
gradients, and the arrays it cached for backward. Each layer's forward and
backward are wrapped for that one pass, so a layer is seen from inside
whatever holds it.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer


@dataclass
class LayerTrace:
    """What one layer saw and produced in the recorded pass.

    index is the layer's qualified name in the model ("2", "2.block.0"); depth
    0 for the model's own layers; children, the traces of the layers it holds.
    """

    index: str
    layer: Layer
    x: np.ndarray | None = None  # input, (N, ...)
    out: np.ndarray | None = None  # output, (N, ...)
    cache: list[tuple[str, np.ndarray]] = field(default_factory=list)
    g: np.ndarray | None = None  # dL/d(out), out's shape
    dx: np.ndarray | None = None  # dL/dx, x's shape
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # own parameters
    depth: int = 0
    children: list["LayerTrace"] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # forward's other arguments, by
    # name ({"key_padding_mask": ...}); positional ones as "arg1", "arg2", ...

    @property
    def name(self) -> str:
        return type(self.layer).__name__

    @property
    def local_name(self) -> str:
        """The name its parent gives it: "block" for "2.block"."""
        return self.index.rsplit(".", 1)[-1] if self.depth else self.index


def layers_of(model) -> list[Layer]:
    """The layers of a Sequential, or [layer] for a single layer."""
    if hasattr(model, "layers"):
        return list(model.layers)
    if isinstance(model, Layer):
        return [model]
    raise ArgumentTypeError(
        f"expected a glassnet Sequential model or Layer, got {type(model).__name__}"
    )


_CONTAINERS = ("Sequential", "Residual", "Concat")  # by name: containers.py imports
# the reports (model.summary), so importing it here would close a cycle


def first_layer(model) -> Layer | None:
    """The layer that sees the input first: inside glassnet's containers, the
    first layer inside; None for an empty model."""
    layers = layers_of(model)
    first = layers[0] if layers else None
    while type(first).__name__ in _CONTAINERS and first.children():
        first = first.children()[0][1]
    return first


def random_batch(model, shape: tuple, rng: np.random.Generator, dtype) -> np.ndarray:
    """Random input of `shape` for the model: standard-normal numbers, or, when
    the first layer is an Embedding, whole-number ids in [0, num_embeddings)."""
    first = first_layer(model)
    if any(c.__name__ == "Embedding" for c in type(first).__mro__):
        return rng.integers(0, first.num_embeddings, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def batch_shape(model, input_shape, batch_size: int) -> tuple[int, ...]:
    """(batch_size, *input_shape), checked against the model before any data.

    input_shape is one example's shape without the batch axis: (4,) or 4 for
    vectors, (1, 28, 28) for images. None means "what the first Dense expects".
    """
    layers_of(model)  # a model or a layer, else ArgumentTypeError
    if input_shape is None:
        first = first_layer(model)
        if first is None or not hasattr(first, "in_features"):
            raise ArgumentTypeError(
                "input_shape is required: one example's shape without the batch axis, "
                "e.g. (4,) for 4 features or (1, 6, 6) for one-channel 6x6 images"
            )
        input_shape = (first.in_features,)
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    if isinstance(input_shape, np.ndarray) and (
        input_shape.ndim != 1 or input_shape.dtype.kind not in "iu"
    ):
        raise ArgumentTypeError(
            "input_shape must be one example's shape, a tuple of positive integers, "
            f"got an array of shape {input_shape.shape} and dtype {input_shape.dtype}"
            "; hint: pass one example's shape, batch.shape[1:] (explain also "
            "takes the batch itself: explain(model, X=batch))"
        )
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
    # Conv1D and Conv2D; cols is None when backward builds them again
    "_Convolution": ("grid", "cols", "x padded"),
    "_MaxPool": ("grid", "x", "out"),  # 1-D and 2-D: x padded, as (N, C, H, W)
    "Dropout": ("mask",),
    "_BatchNorm": ("training", "xhat", "inv_std"),
    "LayerNorm": ("xhat", "inv_std"),
    "Embedding": ("ids",),
    "_GlobalMaxPool": ("shape", "winner"),
    "GELU": ("x", "Phi(x) or tanh(u)"),
    "SiLU": ("x", "s(x)"),
    "ELU": ("x > 0", "a(exp(x) - 1)"),
    "Softplus": ("beta x", "linear"),
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

    cache = getattr(layer, "_cache", None)
    visit(cache, names[0] if isinstance(cache, np.ndarray) and names else "array")
    return found


def _as_dtype(model, dtype) -> None:
    """Cast every parameter and buffer of the (copied) model to dtype, in place."""
    for p in model.parameters():
        p.data = np.array(p.data, dtype=dtype)
        p.grad = np.zeros(p.shape, dtype)
    for layer in [model, *(layer for _, layer in model.named_layers())]:
        for name, value in layer.own_buffers().items():
            setattr(layer, name, np.array(value, dtype=dtype))  # as load_buffer
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

    traces: one per layer at every depth, parents before the layers they hold
    (a flat model's are its layers in order). The upstream gradient at the top
    is loss.backward() when a loss is given (with targets y), else `dout`, else
    a seeded standard-normal array. dtype: cast the copy's parameters (float64
    for exact formula checks).
    """
    clone = copy.deepcopy(model)
    if dtype is not None:
        _as_dtype(clone, dtype)
        x = np.asarray(x, dtype=dtype)
    layers_of(clone)  # a model or a layer, else ArgumentTypeError
    traces: list[LayerTrace] = []

    def add(path: str, layer: Layer, depth: int) -> LayerTrace:
        t = LayerTrace(path, layer, depth=depth)
        traces.append(t)
        t.children = [add(f"{path}.{n}", c, depth + 1) for n, c in layer.children()]
        return t

    if hasattr(clone, "layers"):
        for name, layer in clone.children():
            add(name, layer, 0)
    else:  # one layer: traced as the only layer of a model
        add("0", clone, 0)
    saved = [_watch(t) for t in traces]
    try:
        clone.set_training(training)
        try:
            a = clone.forward(x)
        except ShapeError as exc:
            if hasattr(clone, "layers"):
                raise  # Sequential names the layer
            raise ShapeError(f"layer 0 ({type(clone).__name__}): {exc}") from None
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
        clone.backward(g)
    finally:
        for t, before in zip(traces, saved, strict=True):
            _unwatch(t.layer, before)
    return traces, clone, value


_NOTHING = object()


def _watch(t: LayerTrace) -> tuple:
    """Wrap t.layer's forward and backward (instance attributes shadowing the
    methods) to record into t what the first call of each sees."""
    layer = t.layer
    saved = tuple(vars(layer).get(k, _NOTHING) for k in ("forward", "backward"))
    forward, backward = layer.forward, layer.backward

    def recorded_forward(a, *args, **kwargs):
        out = forward(a, *args, **kwargs)
        if t.x is None:
            t.x, t.out = a, out
            t.options = {f"arg{i + 1}": v for i, v in enumerate(args)} | kwargs
            t.cache = _cache_arrays(layer, a, out)
        return out

    def recorded_backward(g):
        dx = backward(g)
        if t.g is None:  # own gradients now: a parent may change them later
            t.g, t.dx = g, None if dx is None else np.asarray(dx)
            t.grads = {p.name: p.grad.copy() for p in layer.own_parameters()}
        return dx

    layer.forward, layer.backward = recorded_forward, recorded_backward
    return saved


def _unwatch(layer: Layer, saved: tuple) -> None:
    for key, before in zip(("forward", "backward"), saved, strict=True):
        if before is _NOTHING:
            vars(layer).pop(key, None)
        else:
            setattr(layer, key, before)


def output_trace(traces: list[LayerTrace]) -> LayerTrace | None:
    """The trace of the layer that produced the model's output (the last of
    the model's own layers), None for an empty model."""
    top = [t for t in traces if t.depth == 0]
    return top[-1] if top else None


def owner(a: np.ndarray) -> np.ndarray:
    """The array that owns a view's memory (a sliding-window view reports a far
    larger nbytes than the memory it really spans)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a
