"""Training configurations in TOML, as `glassnet train CONFIG.toml` reads them.

    seed = 0                        # the model's seed (weights, shuffling, split)
    dtype = "float32"               # or "float64"

    [data]                          # one of builtin or path
    builtin = "iris"                # iris, xor, spirals, blobs
    # options = { n_samples = 300 } # passed to the data set's generator
    # path = "train.csv"            # CSV (numbers; optional header row) or NPZ;
                                    # the label column may hold class names
    # target = "species"            # CSV: the label column, a name or index (-1)
    # x_key = "X", y_key = "y"      # NPZ: the array names

    [model]
    layers = [
        { type = "Dense", in_features = 4, out_features = 8 },
        "tanh",                     # an activation by name
        { type = "Dense", in_features = 8, out_features = 3 },
    ]

    [train]
    loss = "softmax_cross_entropy"  # optional, inferred as fit does; name it for
                                    # labels read from a CSV file (read as floats)
    epochs = 100
    batch_size = 16                 # optional; 0 for full batch
    validation_split = 0.2          # optional
    shuffle = true                  # optional

    [optimizer]
    name = "sgd"                    # sgd, rmsprop, adam, adamw
    lr = 0.1                        # and any other hyperparameter of it

    [output]                        # optional; relative to the config file
    model = "iris.safetensors"      # default: the config's name + .safetensors
    history = "iris-history.csv"    # default: the config's name + -history.csv
    checkpoint = "iris.ckpt"        # default: the model's path + .ckpt

Paths in the file are relative to the file's directory. Every key is checked:
an unknown key or a value of the wrong kind is a ConfigError naming it.
"""

import os
from dataclasses import dataclass, field

import numpy as np

from glassnet.errors import ConfigError, DataError
from glassnet.nn.losses import takes_labels

BUILTIN_DATA = ("iris", "xor", "spirals", "blobs")
_SECTIONS = {"seed", "dtype", "data", "model", "train", "optimizer", "output"}
_DATA_KEYS = {"builtin", "options", "path", "target", "x_key", "y_key"}
_TRAIN_KEYS = {"loss", "epochs", "batch_size", "validation_split", "shuffle"}
_OUTPUT_KEYS = {"model", "history", "checkpoint"}


def _toml():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(
                "reading TOML on Python 3.10 needs the tomli package: pip install tomli"
            ) from None
    return tomllib


@dataclass
class TrainConfig:
    """A checked training configuration; paths are absolute or relative to the cwd."""

    source: str
    seed: int = 0
    dtype: str = "float32"
    data: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    loss: str | None = None
    epochs: int = 10
    batch_size: int | None = 32
    validation_split: float = 0.0
    shuffle: bool = True
    optimizer: dict = field(default_factory=lambda: {"name": "sgd"})
    model_path: str = ""
    history_path: str = ""
    checkpoint_path: str = ""
    classes: list | None = None  # class names of a CSV's label column (load_data)


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def _check_keys(path: str, where: str, table, allowed: set) -> dict:
    if not isinstance(table, dict):
        raise _fail(path, f"[{where}] must be a table, got {table!r}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(
            path, f"unknown key(s) {unknown} in [{where}]; allowed: {sorted(allowed)}"
        )
    return table


def _typed(path: str, name: str, value, kinds: tuple, what: str):
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(path, f"{name} must be {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise _fail(path, f"{name} must be {what}, got {value!r}")
    return value


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read and check a training configuration file."""
    path = os.fspath(path)
    tomllib = _toml()
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise _fail(path, "not a UTF-8 text file") from None
    _check_keys(path, "top level", raw, _SECTIONS)
    base = os.path.dirname(path)
    stem = os.path.splitext(path)[0]
    cfg = TrainConfig(source=path)
    cfg.seed = _typed(path, "seed", raw.get("seed", 0), (int,), "an integer >= 0")
    if cfg.seed < 0:
        raise _fail(path, f"seed must be an integer >= 0, got {cfg.seed}")
    cfg.dtype = raw.get("dtype", "float32")
    if cfg.dtype not in ("float32", "float64"):
        raise _fail(path, f"dtype must be 'float32' or 'float64', got {cfg.dtype!r}")

    data = _check_keys(path, "data", raw.get("data", {}), _DATA_KEYS)
    if ("builtin" in data) == ("path" in data):
        raise _fail(path, "[data] needs exactly one of builtin = NAME or path = FILE")
    if "builtin" in data and data["builtin"] not in BUILTIN_DATA:
        raise _fail(
            path, f"unknown builtin data set {data['builtin']!r}; known: {BUILTIN_DATA}"
        )
    if "path" in data:
        _typed(path, "data.path", data["path"], (str,), "a file path")
        data = {**data, "path": os.path.join(base, data["path"])}
    _typed(path, "data.options", data.get("options", {}), (dict,), "a table")
    cfg.data = data

    model = _check_keys(path, "model", raw.get("model", {}), {"layers"})
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise _fail(path, "[model] layers must be a non-empty list of layers")
    for i, spec in enumerate(layers):
        if isinstance(spec, dict):
            _typed(path, f"layer {i} type", spec.get("type"), (str,), "a layer name")
        elif not isinstance(spec, str):
            raise _fail(
                path, f"layer {i} must be an activation name or a table, got {spec!r}"
            )
    cfg.layers = layers

    train = _check_keys(path, "train", raw.get("train", {}), _TRAIN_KEYS)
    if "loss" in train:
        cfg.loss = _typed(path, "train.loss", train["loss"], (str,), "a loss name")
    cfg.epochs = _typed(path, "train.epochs", train.get("epochs", 10), (int,), "an int")
    batch = _typed(
        path, "train.batch_size", train.get("batch_size", 32), (int,), "an int"
    )
    cfg.batch_size = None if batch == 0 else batch
    split = train.get("validation_split", 0.0)
    cfg.validation_split = float(
        _typed(path, "validation_split", split, (int, float), "a number")
    )
    cfg.shuffle = _typed(
        path, "train.shuffle", train.get("shuffle", True), (bool,), "true/false"
    )

    optimizer = raw.get("optimizer", {})
    _typed(path, "[optimizer]", optimizer, (dict,), "a table")
    optimizer = {"name": "sgd", **optimizer}
    _typed(path, "optimizer.name", optimizer["name"], (str,), "an optimizer name")
    cfg.optimizer = optimizer

    output = _check_keys(path, "output", raw.get("output", {}), _OUTPUT_KEYS)
    for key in output:
        _typed(path, f"output.{key}", output[key], (str,), "a file path")
    # stem already holds the config's directory: join base only to given names
    cfg.model_path = (
        os.path.join(base, output["model"])
        if "model" in output
        else stem + ".safetensors"
    )
    cfg.history_path = (
        os.path.join(base, output["history"])
        if "history" in output
        else stem + "-history.csv"
    )
    if "checkpoint" in output:
        cfg.checkpoint_path = os.path.join(base, output["checkpoint"])
    return cfg


def build_model(cfg: TrainConfig, seed: int | None = None):
    """The untrained Sequential the configuration describes."""
    from glassnet.io.serialization import LAYERS
    from glassnet.nn.layers.activations import make_activation
    from glassnet.nn.layers.containers import Sequential

    layers = []
    for i, spec in enumerate(cfg.layers):
        if isinstance(spec, str):
            try:
                layers.append(make_activation(spec))
            except ConfigError as exc:
                raise _fail(cfg.source, f"layer {i}: {exc}") from None
            continue
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        cls = LAYERS.get(spec["type"])
        if cls is None:
            raise _fail(
                cfg.source,
                f"layer {i}: unknown layer type {spec['type']!r}; known: "
                f"{', '.join(LAYERS)}",
            )
        if {"rng", "dtype"} & set(kwargs):
            raise _fail(cfg.source, f"layer {i}: rng and dtype are set by the model")
        try:
            layers.append(cls(**kwargs))
        except TypeError as exc:
            raise _fail(cfg.source, f"layer {i} ({spec['type']}): {exc}") from None
        except ConfigError as exc:
            raise _fail(cfg.source, f"layer {i}: {exc}") from None
    return Sequential(*layers, seed=cfg.seed if seed is None else seed, dtype=cfg.dtype)


def load_data(
    cfg: TrainConfig, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as the [data] table says; built-in sets are drawn with the seed."""
    from glassnet.io import datasets
    from glassnet.io.datafiles import read_table

    data = cfg.data
    seed = cfg.seed if seed is None else seed
    options = dict(data.get("options", {}))
    if "builtin" in data:
        name = data["builtin"]
        try:
            if name == "iris":
                if options:
                    raise TypeError("load_iris() takes no options")
                X, y = datasets.load_iris()
            else:
                make = {
                    "xor": datasets.make_xor,
                    "spirals": datasets.make_spirals,
                    "blobs": datasets.make_blobs,
                }[name]
                X, y = make(**options, seed=seed)
        except TypeError as exc:
            raise _fail(cfg.source, f"[data] options for {name}: {exc}") from None
    else:
        X, y = read_table(
            data["path"],
            target=data.get("target", -1),
            x_key=data.get("x_key", "X"),
            y_key=data.get("y_key", "y"),
        )
        if y is None:
            raise DataError(
                f"{data['path']}: no target array {data.get('y_key', 'y')!r}"
            )
    if np.asarray(y).dtype.kind == "U":  # class names: sorted, saved with the model
        names, y = np.unique(y, return_inverse=True)
        cfg.classes = names.tolist()
        if cfg.loss is not None and not takes_labels(cfg.loss):
            raise DataError(
                f"{cfg.source}: the label column holds class names "
                f"({', '.join(cfg.classes[:5])}...), but loss {cfg.loss} does not "
                "take class labels; use softmax_cross_entropy"
            )
    if takes_labels(cfg.loss):  # a CSV reads labels as floats
        y = np.asarray(y)
        if y.ndim != 1 or not np.all(y == np.round(y)):
            raise DataError(
                f"{cfg.source}: loss {cfg.loss} needs one integer label per row"
            )
        y = y.astype(np.int64)
    return np.asarray(X, dtype=cfg.dtype), y


def build_optimizer(cfg: TrainConfig):
    """The optimizer named in [optimizer], with the other keys as hyperparameters."""
    from glassnet.train.optimizers import get_optimizer

    hyperparameters = {k: v for k, v in cfg.optimizer.items() if k != "name"}
    try:
        return get_optimizer(cfg.optimizer["name"], **hyperparameters)
    except TypeError as exc:
        raise _fail(cfg.source, f"[optimizer]: {exc}") from None
    except ConfigError as exc:
        raise _fail(cfg.source, f"[optimizer]: {exc}") from None


__all__ = [
    "BUILTIN_DATA",
    "TrainConfig",
    "build_model",
    "build_optimizer",
    "load_config",
    "load_data",
]
