"""Layer: the contract every glassnet layer follows.

Vocabulary used in every docstring and shape comment:

    N  examples in the batch          K  classes
    D  input features                 M  output features
    C  input channels                 F  convolution filters (output channels)
    H, W  input height and width      H_out, W_out  output height and width

Data is batch-first: a batch of vectors is (N, D), a batch of images (N, C, H, W).
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet.errors import CallOrderError, ConfigError, ShapeError
from glassnet.nn.parameter import Parameter

# glassnet's own layer classes by name, filled in as each class is defined: the only
# classes a model file may name (see glassnet.io.serialization).
_BUILTIN_LAYERS: dict[str, type] = {}


def builtin_layers() -> dict[str, type]:
    """{"Dense": Dense, ...}: every public layer class glassnet defines."""
    return dict(sorted(_BUILTIN_LAYERS.items()))


class Layer:
    """One differentiable step of a network.

    A subclass defines `forward` and `backward`, plus `parameters` if it has any;
    nothing else is required.

    forward(x) returns the output and keeps what backward needs in self._cache.
    backward(dout) receives dL/d(output), stores dL/d(parameter) in each
    parameter's .grad (replacing the previous value) and returns dL/d(input),
    which has the shape of x.

    A layer may hold other layers, as attributes or in lists: they are its
    children(), and parameters(), named_parameters(), set_training() and every
    consumer (optimizers, gradcheck, summary, explain, save and load) walk that
    tree. A model is just the outermost layer.

    `training` is set by set_training before forward: True while fitting, False in
    predict and evaluate (only layers such as Dropout care).
    """

    _cache = None  # written by forward, read by backward
    training = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("glassnet.") and not cls.__name__.startswith("_"):
            _BUILTIN_LAYERS[cls.__name__] = cls

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define backward(dout)")

    def backward_params(self, dout: np.ndarray) -> None:
        """backward without dL/dx: stores dL/d(parameter) in every parameter's .grad
        and returns nothing. Training calls it for the model's first layer, whose
        input is the data, which needs no gradient. The default calls backward and
        drops the result; a layer whose dL/dx is costly (Dense, Conv2D) overrides it
        to skip that product."""
        self.backward(dout)

    def parameters(self) -> list[Parameter]:
        """Every Parameter of this layer and of the layers inside it, in a stable
        order (the order of named_parameters()). A leaf layer may override this
        to list its own parameters explicitly."""
        return [p for _, p in self.named_parameters()]

    # -- composition: the one walk every consumer uses ----------------------------

    def children(self) -> list[tuple[str, Layer]]:
        """The layers held directly by this one, with the names that qualify their
        parameters: attributes holding a Layer ("block"), or a list or tuple of
        them ("blocks.0", "blocks.1"), in attribute order. Containers override it
        (Sequential names its layers "0", "1", ...)."""
        return _held(self)[1]

    def own_parameters(self) -> list[Parameter]:
        """The Parameters this layer holds itself, not those of its children.

        A class that overrides parameters() lists them there (the children's own
        are dropped from that list); otherwise they are found in the attributes,
        directly or in a list or tuple, in attribute order.
        """
        if type(self).parameters is Layer.parameters:
            return _held(self)[0]
        kids = self.children()
        if not kids:  # a leaf that lists its parameters: the common case
            return list(self.parameters())
        inside = {id(p) for _, child in kids for p in child.parameters()}
        return [p for p in self.parameters() if id(p) not in inside]

    def named_layers(self, prefix: str = "") -> list[tuple[str, Layer]]:
        """(qualified name, layer) for every layer below this one, at every depth,
        parents before their children: [("0", ...), ("1", ...), ("1.block", ...)]."""
        out = []
        for name, child in self.children():
            out.append((prefix + name, child))
            out.extend(child.named_layers(f"{prefix}{name}."))
        return out

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """(qualified name, Parameter) for every parameter of this layer and the
        layers below it, PyTorch-style: "0.weight", "3.block.1.bias".

        Names are paths through the tree, so they are unique by construction. A
        layer or Parameter reached twice (weight sharing, which the gradient
        contract does not support) or two parameters of one layer with the same
        name raise ConfigError naming the place.
        """
        return walk(self)[0]

    def penalty(self) -> float:
        """The regularization term this layer adds to the loss (an l2 option's
        l2 * sum(weight**2)); 0 by default. Its gradient is part of what backward
        stores in the parameters' .grad, so fit adds it to the reported loss and
        gradcheck to the function it differentiates."""
        return 0.0

    def own_buffers(self) -> dict[str, np.ndarray]:
        """State that is not trained by gradients but belongs to the model (a
        BatchNorm's running mean and variance): {attribute name: array}. Saved and
        loaded with the parameters; none by default."""
        return {}

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        """(qualified name, array) for every buffer at every depth, named like
        parameters: "1.running_mean", "2.block.0.running_var"."""
        pairs = [(name, a) for name, a in self.own_buffers().items()]
        for path, layer in self.named_layers():
            pairs.extend((f"{path}.{n}", a) for n, a in layer.own_buffers().items())
        return pairs

    def load_buffer(self, name: str, value: np.ndarray) -> None:
        """Replace the buffer `name` (a key of own_buffers) with a copy of value,
        which must have its shape; used by load and checkpoints."""
        current = self.own_buffers().get(name)
        if current is None:
            raise ConfigError(f"{type(self).__name__} has no buffer named {name!r}")
        value = np.asarray(value)
        if value.shape != current.shape:
            raise ConfigError(
                f"{type(self).__name__} buffer {name!r}: expected shape "
                f"{current.shape}, got {value.shape}"
            )
        setattr(self, name, value.astype(current.dtype, copy=True))

    def set_training(self, training: bool) -> None:
        """Set `training` on this layer and every layer below it: True while
        fitting, False for inference (only layers such as Dropout care)."""
        self.training = bool(training)
        for _, child in self.children():
            child.set_training(training)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _cached(self):
        if self._cache is None:
            raise CallOrderError(
                f"{type(self).__name__}.backward() was called before forward()"
            )
        return self._cache

    def _dout_error(self, expected: tuple, got: tuple) -> ShapeError:
        """The error for a dout that is not shaped like the last forward's output."""
        return ShapeError(
            f"{type(self).__name__}.backward: dout must have the shape of the last "
            f"forward's output {tuple(int(n) for n in expected)}, got "
            f"{tuple(int(n) for n in got)} (dout is dL/d(output), one value per "
            "output element)"
        )

    # Hooks Sequential uses; a custom layer may ignore them.
    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """Fill in what the layer left unset: draw weights from `rng` and take
        `dtype`, unless the layer was given its own. The default moves the
        layer's own float parameters to `dtype` (a custom layer's NumPy arrays
        join the model's) and passes the call on to the children."""
        for p in self.own_parameters():
            if p.data.dtype != dtype and p.data.dtype.kind == "f":
                p.data = p.data.astype(dtype)  # its grad follows the dtype
        for _, child in self.children():
            child.initialize(rng, dtype)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shape of one sample's output given one sample's input shape (no batch
        axis), or None if unknown. Layers that can, raise ShapeError on a mismatch."""
        return None

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer (used by save)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _held(layer: Layer) -> tuple[list[Parameter], list[tuple[str, Layer]]]:
    """(Parameters, (name, Layer) pairs) kept in layer's attributes, directly or
    in lists and tuples, in attribute order: one pass over them."""
    params, kids = [], []
    for name, value in vars(layer).items():
        if type(value) in _PLAIN:  # most attributes: skipped with one set lookup
            continue
        if isinstance(value, Parameter):
            params.append(value)
        elif isinstance(value, Layer):
            if name != "_cache":
                kids.append((name, value))
        elif isinstance(value, (list, tuple)) and name != "_cache":
            for i, v in enumerate(value):
                if isinstance(v, Parameter):
                    params.append(v)
                elif isinstance(v, Layer):
                    kids.append((f"{name}.{i}", v))
    return params, kids


# Attribute types that can hold neither a Parameter nor a Layer.
_PLAIN = frozenset({int, float, bool, str, bytes, type(None), dict, np.ndarray})


def _own_and_children(layer: Layer) -> tuple[list[Parameter], list]:
    """layer.own_parameters() and layer.children() from one attribute scan when
    the layer keeps the default children() and own_parameters() (the walk ran a
    scan for each, and fit walks the model before its first step)."""
    cls = type(layer)
    if cls.children is not Layer.children or cls.own_parameters is not (
        Layer.own_parameters
    ):
        return layer.own_parameters(), layer.children()
    params, kids = _held(layer)
    if cls.parameters is not Layer.parameters:  # it lists its parameters by hand
        if not kids:  # a leaf (Dense, Conv2D): they are all its own
            return list(layer.parameters()), kids
        inside = {id(p) for _, child in kids for p in child.parameters()}
        params = [p for p in layer.parameters() if id(p) not in inside]
    return params, kids


def walk(model: Layer) -> tuple[list[tuple[str, Parameter]], list[Layer]]:
    """(model.named_parameters(), [model, every layer below it, parents before
    their children]) from one walk of the tree: fit needs both and walks once.
    Raises ConfigError as named_parameters does."""
    layers: list[Layer] = []
    pairs: list[tuple[str, Parameter]] = []
    seen_params: dict[int, str] = {}
    seen_layers: dict[int, str] = {id(model): "the model"}
    todo = [(model, "")]  # depth first, children in order: a stack, reversed
    while todo:
        layer, prefix = todo.pop()
        layers.append(layer)
        own, kids = _own_and_children(layer)
        names = set()
        for p in own:
            name = prefix + p.name
            if id(p) in seen_params or name in names:
                where = f"{prefix[:-1] or type(model).__name__}"
                raise ConfigError(
                    f"{where} ({type(layer).__name__}): "
                    + (
                        f"parameter {name!r} is the same Parameter as "
                        f"{seen_params[id(p)]!r}; a Parameter must belong to "
                        "one layer (weight sharing is not supported)"
                        if id(p) in seen_params
                        else f"two parameters are named {p.name!r}; give each "
                        "Parameter of a layer its own name"
                    )
                )
            names.add(name)
            seen_params[id(p)] = name
            pairs.append((name, p))
        for child_name, child in reversed(kids):
            path = prefix + child_name
            if id(child) in seen_layers:
                raise ConfigError(
                    f"layer {path!r} ({type(child).__name__}) is the same object "
                    f"as {seen_layers[id(child)]!r}; a layer instance can appear "
                    "once in a model (build a new one for each place)"
                )
            seen_layers[id(child)] = path
            todo.append((child, path + "."))
    return pairs, layers


def _defined_in(cls: type, name: str) -> type:
    """The class of cls's method resolution order whose body defines name."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def backward_params_of(layer: Layer):
    """What training calls for a layer whose input needs no gradient (the model's
    first): layer.backward_params when it belongs with the layer's own backward,
    else layer.backward, whose dL/dx is then dropped.

    A subclass that overrides backward (a user's variant of Dense, say) but
    inherits its parent's faster backward_params would otherwise train with the
    parent's gradients while gradcheck and explain read its own backward.
    """
    cls = type(layer)
    if issubclass(_defined_in(cls, "backward_params"), _defined_in(cls, "backward")):
        return layer.backward_params
    return layer.backward


def total_penalty(model: Layer) -> float:
    """The sum of penalty() over model and every layer below it."""
    return model.penalty() + sum(layer.penalty() for _, layer in model.named_layers())


def check_l2(owner: str, l2) -> float:
    """l2 as a float >= 0, or ConfigError naming owner."""
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
        raise ConfigError(f"{owner}: l2 must be a number >= 0, got {l2!r}")
    return float(l2)


def output_layer(model: Layer) -> Layer | None:
    """The layer that produces model's output: its last layer, descending while
    that is itself a container of layers in order (a nested Sequential, so a
    nested model ending in Softmax still ends in Softmax); None for an empty
    model."""
    layer = model
    while isinstance(getattr(layer, "layers", None), list) and layer.layers:
        layer = layer.layers[-1]
    return None if layer is model else layer
