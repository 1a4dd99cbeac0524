"""The architecture in a model file: a tree of layer entries.

    {"class": "Sequential", "config": {"seed": 0, "dtype": "float32"},
     "layers": [{"class": "Dense", "config": {...}},
                {"class": "Residual", "config": {}, "layers": [entry]},
                {"class": "Dense", "config": {...}, "dtype": "float64"}, ...]}

An entry has "dtype" ("float32" or "float64") only when its layer's tensors have
another dtype than the Sequential around it (a layer given its own dtype); the
layer is then rebuilt with that dtype, the others take the model's.

`architecture(model)` writes it; `check` and `Builder` read it back from a file
that nothing vouches for (see glassnet.io.serialization): every entry's shape
is checked, class names are keys into glassnet's own registry (never imported),
and no layer is built before every layer's parameter count has been checked
against the values the file stores.
"""

import inspect
import json
import math
from collections.abc import Callable, Iterator

import numpy as np

from glassnet.errors import ConfigError, GlassnetError, ModelFileError
from glassnet.nn.layers.base import Layer, builtin_layers

MAX_DEPTH = 32  # containers inside containers
# A layer may be built with this many parameters beyond the ones the file stores
# for it (so a small mismatch is reported tensor by tensor, not refused outright);
# the whole model gets the same allowance once, not once per layer.
SLACK_ELEMENTS = 2**20

Fail = Callable[[str], ModelFileError]  # the reason -> the error naming the file


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- writing -------------------------------------------------------------------


def to_json(value, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save: {what} is not plain JSON data ({exc})") from None


def architecture(model) -> dict:
    """The JSON-ready description of `model` that load() rebuilds it from: a
    tree of {"class", "config"} entries, with "layers" on those that hold others
    (in the order their constructor takes them).

    Raises ConfigError naming the first layer, at any depth, that is not one of
    glassnet's (a custom layer); such a model's weights can still be saved with
    save_weights.
    """
    registry = builtin_layers()
    if registry.get("Sequential") is not type(model):
        raise ConfigError(
            f"save: expected a glassnet Sequential model, got {type(model).__name__}"
        )
    return _describe(model, "", registry, model.dtype)


def _describe(layer: Layer, path: str, registry: dict, model_dtype) -> dict:
    """The entry of `layer`; model_dtype is the dtype of the Sequential around it."""
    name = type(layer).__name__
    where = f"layer {path} ({name})" if path else f"the model ({name})"
    if registry.get(name) is not type(layer):
        raise ConfigError(
            f"save: {where} is not a glassnet layer, so load could not rebuild it; "
            f"known layers: {', '.join(registry)}. save_weights(model, path) and "
            "load_weights(model, path) work for any model"
        )
    config = layer.get_config()
    to_json(config, f"{where} config {config!r}")
    entry = {"class": name, "config": config}
    if name == "Sequential":  # its dtype is in its config; its layers follow it
        model_dtype = layer.dtype
    else:
        own = _own_dtype(layer, where)
        if own is not None and own != model_dtype:
            if not takes_dtype(type(layer)):
                raise ConfigError(
                    f"save: {where} holds {own} tensors in a {model_dtype} model, "
                    "and its class takes no dtype to rebuild it with"
                )
            entry["dtype"] = own.name
    children = layer.children()
    if children or name == "Sequential":
        prefix = f"{path}." if path else ""
        entry["layers"] = [
            _describe(child, prefix + n, registry, model_dtype) for n, child in children
        ]
    return entry


def _own_dtype(layer: Layer, where: str):
    """The one float dtype of the layer's own parameters and buffers (not its
    children's), or None if it holds none."""
    arrays = [p.data for p in layer.own_parameters()]
    arrays += list(layer.own_buffers().values())
    dtypes = sorted({a.dtype.name for a in arrays if a.dtype.kind == "f"})
    if len(dtypes) > 1:
        raise ConfigError(
            f"save: {where} holds tensors of several dtypes ({', '.join(dtypes)}); "
            "a layer's parameters and buffers must share one dtype"
        )
    return np.dtype(dtypes[0]) if dtypes else None


def takes_dtype(cls: type) -> bool:
    """True when cls(..., dtype=...) sets the layer's dtype (Sequential keeps
    its own in its config instead)."""
    if cls.__name__ == "Sequential":
        return False
    return "dtype" in inspect.signature(cls.__init__).parameters


# -- checking the tree's shape ---------------------------------------------------


def check(arch, version: int, fail: Fail) -> None:
    """The entries' shapes: a Sequential at the top, {class, config} entries, and
    from format version 2 on {class, config, layers} ones, at most MAX_DEPTH deep.
    (Classes and configs are checked when the tree is built.)"""
    if arch is None:
        return
    if not isinstance(arch, dict) or set(arch) != {"class", "config", "layers"}:
        raise fail("architecture must be {class, config, layers}, got " + short(arch))
    if arch["class"] != "Sequential":
        raise fail(f"architecture class must be Sequential, got {short(arch['class'])}")
    check_sequential_config(arch["config"], "the model", fail)
    if not isinstance(arch["layers"], list):
        raise fail("architecture layers must be a list")
    for i, entry in enumerate(arch["layers"]):
        _check_entry(entry, str(i), version, 1, fail)


def _check_entry(entry, where: str, version: int, depth: int, fail: Fail) -> None:
    optional = {"layers", "dtype"} if version > 1 else set()
    if (
        not isinstance(entry, dict)
        or not {"class", "config"} <= set(entry) <= {"class", "config"} | optional
        or not isinstance(entry["class"], str)
        or not isinstance(entry["config"], dict)
        or not isinstance(entry.get("layers", []), list)
    ):
        shape = "{class: name, config: {...}" + (
            "[, layers: [...]][, dtype: name]}" if version > 1 else "}"
        )
        raise fail(f"layer {where} must be {shape}, got {short(entry)}")
    if entry.get("dtype", "float32") not in ("float32", "float64"):
        raise fail(
            f"layer {where}: dtype must be float32 or float64, got "
            f"{short(entry['dtype'])}"
        )
    if "layers" not in entry:
        return
    if depth >= MAX_DEPTH:
        raise fail(f"layer {where}: layers nested more than {MAX_DEPTH} deep")
    for i, child in enumerate(entry["layers"]):
        _check_entry(child, f"{where}/{i}", version, depth + 1, fail)


def check_sequential_config(config, where: str, fail: Fail) -> None:
    if not isinstance(config, dict) or not set(config) <= {"seed", "dtype"}:
        raise fail(
            f"{where}: Sequential config must be {{seed, dtype}}, got {short(config)}"
        )
    seed = config.get("seed")
    if seed is not None and not (is_int(seed) and seed >= 0):
        raise fail(f"{where}: seed must be null or an integer >= 0, got {short(seed)}")
    if config.get("dtype", "float32") not in ("float32", "float64"):
        raise fail(
            f"{where}: dtype must be float32 or float64, got "
            f"{short(config.get('dtype'))}"
        )


# -- building ------------------------------------------------------------------


class _Slot(Layer):
    """A stand-in child while the tree is planned: it shows which name a
    container gives each child, before any real layer is built."""

    def forward(self, x):  # pragma: no cover - never run
        return x

    def backward(self, dout):  # pragma: no cover - never run
        return dout


class _Plan:
    """One checked entry of the architecture: what to build, under which name."""

    __slots__ = ("entry", "path", "cls", "children")

    def __init__(self, entry: dict, path: str, cls: type, children) -> None:
        self.entry, self.path, self.cls, self.children = entry, path, cls, children


class Builder:
    """Builds the model an architecture describes, in two passes.

    The first walks the tree top-down, names every layer by its qualified path
    and checks every layer's class, config and parameter count against the
    values the file stores ({tensor name: element count}), building only
    containers around stand-ins; the second builds the layers, bottom-up.
    """

    def __init__(self, stored: dict[str, int], fail: Fail) -> None:
        self.stored, self.fail = stored, fail
        self.registry = builtin_layers()
        self.budget = sum(stored.values()) + SLACK_ELEMENTS

    def build(self, arch: dict, dtype):
        Sequential = self.registry["Sequential"]
        top = self._plan_container(Sequential, arch, "")
        layers = [self._build(child) for child in top.children]
        return Sequential(*layers, seed=arch["config"].get("seed"), dtype=dtype)

    def _plan(self, entry: dict, path: str) -> _Plan:
        name = entry["class"]
        cls = self.registry.get(name)
        if cls is None:
            raise self.fail(
                f"layer {path} has unknown type {short(name)}; known layer types: "
                f"{', '.join(sorted(self.registry))}"
            )
        if "dtype" in entry and not takes_dtype(cls):
            reason = "its config holds its dtype"
            if name != "Sequential":
                reason = "it takes no dtype"
            raise self.fail(
                f"layer {path} ({name}) has dtype {short(entry['dtype'])} beside its "
                f"config, but {reason}"
            )
        if "layers" in entry:
            return self._plan_container(cls, entry, path)
        self._check_config_keys(path, cls, entry["config"], container=False)
        self._check_layer_size(path, name, entry["config"])
        return _Plan(entry, path, cls, None)

    def _plan_container(self, cls: type, entry: dict, path: str) -> _Plan:
        """Build the container around stand-ins to learn the name it gives each
        child (Sequential "0", "1"...; Residual "block"), then plan the children."""
        where = f"layer {path} ({cls.__name__})" if path else "the model"
        config = entry["config"]
        if cls.children is Layer.children:  # glassnet's containers name their layers
            raise self.fail(
                f"{where} does not hold other layers, but the file lists "
                f"{len(entry['layers'])} inside it"
            )
        if cls.__name__ == "Sequential":
            check_sequential_config(config, where, self.fail)
        else:
            self._check_config_keys(path, cls, config, container=True)
        slots = [_Slot() for _ in entry["layers"]]
        try:
            container = cls(*slots, **config)
        except (GlassnetError, TypeError, ValueError) as exc:
            raise self.fail(
                f"{where}: config {short(config)} with {len(slots)} layers inside "
                f"is invalid: {exc}"
            ) from None
        names = {id(child): n for n, child in container.children()}
        if sorted(names) != sorted(map(id, slots)):
            raise self.fail(
                f"{where} does not hold the {len(slots)} layers the file puts in it"
            )
        prefix = f"{path}." if path else ""
        children = [
            self._plan(child, prefix + names[id(slot)])
            for child, slot in zip(entry["layers"], slots, strict=True)
        ]
        return _Plan(entry, path, cls, children)

    def _build(self, plan: _Plan) -> Layer:
        entry, config = plan.entry, plan.entry["config"]
        children = [self._build(child) for child in plan.children or ()]
        # its own dtype, when it differs from the model's (checked by _plan)
        own = {"dtype": np.dtype(entry["dtype"])} if "dtype" in entry else {}
        try:
            return plan.cls(*children, **config, **own)
        except (GlassnetError, TypeError, ValueError) as exc:
            raise self.fail(
                f"layer {plan.path} ({entry['class']}): config {short(config)} is "
                f"invalid: {exc}"
            ) from None

    def _check_config_keys(
        self, path: str, cls: type, config: dict, container: bool
    ) -> None:
        """Only the constructor's own data arguments; never rng or dtype. A
        container takes its layers positionally, so only keyword-only ones."""
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            allowed = None
        elif container:
            allowed = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
        else:
            allowed = set(params) - {"self"}
        if allowed is not None:
            allowed -= {"rng", "dtype"}
        bad = [
            k
            for k in config
            if k in ("rng", "dtype") or (allowed is not None and k not in allowed)
        ]
        if bad:
            raise self.fail(
                f"layer {path} ({cls.__name__}): unknown config keys {sorted(bad)}; "
                f"expected some of {sorted(allowed or ())}"
            )

    def _check_layer_size(self, path: str, name: str, config: dict) -> None:
        """Refuse to build a layer larger than what the file stores for it, or
        layers that together outgrow everything the file stores."""
        stored = sum(n for k, n in self.stored.items() if k.startswith(f"{path}."))
        exact = _parameter_count(name, config)
        if exact is not None:
            if exact > stored + SLACK_ELEMENTS:
                raise self.fail(
                    f"layer {path} ({name}) would have {exact} parameters but the "
                    f"file stores {stored} values for it (crafted or corrupt "
                    "architecture)"
                )
            self.budget -= exact
            if self.budget < 0:
                raise self.fail(
                    f"the layers up to {path} ({name}) would have more parameters "
                    f"than the {sum(self.stored.values())} values the file stores "
                    "(crafted or corrupt architecture)"
                )
            return
        # A layer this module knows nothing about: bound the product of the sizes
        # in its config by what is stored for it.
        bound = math.prod(v for v in _config_ints(config) if v > 0)
        if bound > 64 * stored + SLACK_ELEMENTS:
            raise self.fail(
                f"layer {path} ({name}): config {short(config)} asks for far more "
                f"memory than the {stored} values the file stores for it"
            )


def _parameter_count(name: str, config: dict) -> int | None:
    """The exact parameter count of the layers whose shapes we know, from the
    config alone (None if unknown or if the config is malformed: the layer's
    constructor then reports it before allocating anything)."""
    try:
        if name == "Dense":
            D, M = config["in_features"], config["out_features"]
            if is_int(D) and is_int(M):
                return D * M + M
        elif name == "Conv2D":
            C, F, k = (
                config["in_channels"],
                config["out_channels"],
                config["kernel_size"],
            )
            KH, KW = (k, k) if is_int(k) else k
            if all(is_int(v) for v in (C, F, KH, KW)):
                return F * C * KH * KW + F
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _config_ints(value) -> Iterator[int]:
    if is_int(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _config_ints(v)
    elif isinstance(value, list):
        for v in value:
            yield from _config_ints(v)
