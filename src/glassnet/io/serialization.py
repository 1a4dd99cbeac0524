"""Save and load models: weights in safetensors, the architecture as JSON beside them.

    model.save("iris.safetensors")
    model = gn.load("iris.safetensors")       # bitwise-equal predictions

A model file is a standard safetensors file (any safetensors tool can list it):

    8 bytes    n, the header's length (little-endian, unsigned)
    n bytes    JSON header: {"0.weight": {"dtype": "F32", "shape": [4, 5],
               "data_offsets": [0, 80]}, ..., "__metadata__": {"glassnet": "..."}}
    the rest   the tensors' bytes, back to back, nothing after the last one

The "glassnet" metadata entry is JSON too:

    {"format_version": 1,
     "architecture": {"class": "Sequential", "config": {"seed": 0, "dtype": "float32"},
                      "layers": [{"class": "Dense", "config": {...}}, ...]},
     "training": {...}}          (checkpoints only, see glassnet.train.checkpoints)

Tensors are named as model.named_parameters() names them ("0.weight", "2.bias");
a checkpoint adds the optimizer's state as "optimizer.<name>". All of it lives in
one metadata key, written with sorted keys, because safetensors writes its
metadata map in a random order: one key keeps the same model's file byte-identical.

Loading trusts nothing in the file. The header is parsed and checked here, in
Python, before any byte of tensor data is read or handed to safetensors: its
length against a limit and the file's size, each tensor's dtype, shape and
offsets (they must tile the data exactly: no overlap, gap or trailing byte), the
format version, and the architecture. Layer types are looked up by class name in
glassnet's own registry (LAYERS), never imported or evaluated, and a layer is
built only after its parameter count has been checked against the bytes the file
really holds. Any problem raises ModelFileError naming the file. There is no
pickle anywhere: not in the format, not in the loader.
"""

import inspect
import json
import math
import os
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from glassnet.errors import ConfigError, GlassnetError, ModelFileError
from glassnet.io._atomic import atomic_write
from glassnet.nn.layers.base import builtin_layers

FORMAT_VERSION = 1
METADATA_KEY = "glassnet"
MAX_HEADER_BYTES = 16 * 2**20  # an architecture of thousands of layers fits easily
_DTYPES = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
_DTYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}
_MAX_NDIM = 8
# A layer may be built with this many parameters beyond the ones the file stores
# for it (so a small mismatch is reported tensor by tensor, not refused outright).
_SLACK_ELEMENTS = 2**20


# -- the layer registry --------------------------------------------------------


class _LayerRegistry(Mapping):
    """LAYERS["Dense"] -> Dense: every public layer class glassnet defines.

    Read at each access from the classes defined so far (all of them once
    `glassnet` is imported), so a new layer joins without being listed here. Only
    glassnet's own classes are in it: a class name read from a file is a key into
    this mapping, nothing more.
    """

    def _scan(self) -> dict[str, type]:
        return builtin_layers()

    def __getitem__(self, name: str) -> type:
        return self._scan()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._scan()))

    def __len__(self) -> int:
        return len(self._scan())

    def __repr__(self) -> str:
        return f"LAYERS({', '.join(self)})"


LAYERS = _LayerRegistry()


# -- writing -------------------------------------------------------------------


def _to_json(value, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save: {what} is not plain JSON data ({exc})") from None


def architecture(model) -> dict:
    """The JSON-ready description of `model` that load() rebuilds it from.

    Raises ConfigError for a layer that is not in LAYERS (a custom layer); such a
    model's weights can still be saved with save_weights.
    """
    if type(model).__name__ != "Sequential" or LAYERS.get("Sequential") is not type(
        model
    ):
        raise ConfigError(
            f"save: expected a glassnet Sequential model, got {type(model).__name__}"
        )
    layers = []
    for i, layer in enumerate(model.layers):
        name = type(layer).__name__
        if LAYERS.get(name) is not type(layer):
            known = ", ".join(LAYERS)
            raise ConfigError(
                f"save: layer {i} ({name}) is not a glassnet layer, so load could not "
                f"rebuild it; known layers: {known}. save_weights(model, path) and "
                "load_weights(model, path) work for any model"
            )
        if layer.children():
            raise ConfigError(
                f"save: layer {i} ({name}) holds other layers, which this file "
                "format cannot describe yet; save_weights(model, path) and "
                "load_weights(model, path) work for any model"
            )
        config = layer.get_config()
        _to_json(config, f"layer {i} ({name}) config {config!r}")
        layers.append({"class": name, "config": config})
    return {"class": "Sequential", "config": model.get_config(), "layers": layers}


def _model_tensors(model) -> dict[str, np.ndarray]:
    tensors = {}
    for name, p in model.named_parameters():
        if p.data.dtype not in _DTYPE_CODES:
            raise ConfigError(
                f"save: parameter {name} has dtype {p.data.dtype}; expected float32 "
                "or float64"
            )
        tensors[name] = np.ascontiguousarray(p.data)
    return tensors


def _write(path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    from safetensors.numpy import save as safetensors_save

    metadata = {METADATA_KEY: _to_json(meta, "metadata")}
    atomic_write(path, safetensors_save(tensors, metadata=metadata))


def save(model, path: str | os.PathLike) -> None:
    """Write `model`'s architecture and weights to `path` (safetensors), atomically.

    The same model (same weights) always gives the same bytes.
    """
    meta = {"format_version": FORMAT_VERSION, "architecture": architecture(model)}
    _write(path, _model_tensors(model), meta)


def save_weights(model, path: str | os.PathLike) -> None:
    """Write only the weights (any model, custom layers included); read them back
    into a model of the same structure with load_weights."""
    meta = {"format_version": FORMAT_VERSION, "architecture": None}
    _write(path, _model_tensors(model), meta)


# -- reading and checking the header -------------------------------------------


def _strict_json(text: str, path, what: str):
    def no_duplicates(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(f"duplicate key {key!r}")
            obj[key] = value
        return obj

    def no_constants(name):
        raise ValueError(f"{name} is not a number in strict JSON")

    try:
        return json.loads(
            text, object_pairs_hook=no_duplicates, parse_constant=no_constants
        )
    except RecursionError:
        raise ModelFileError(path, f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, duplicates, over-long integers
        raise ModelFileError(path, f"{what} is not valid JSON ({exc})") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Tensor:
    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end) -> None:
        self.name, self.dtype, self.shape = name, dtype, shape
        self.begin, self.end = begin, end

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class ModelFile:
    """A model file whose header, tensor table and metadata have been checked.

    Holds no tensor data: read_tensors reads it, after the caller has said which
    names, dtypes and shapes it expects.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as fh:
                self.file_size = os.fstat(fh.fileno()).st_size
                header = self._read_header(fh)
        except IsADirectoryError:
            raise ModelFileError(
                self.path, "is a directory, not a model file"
            ) from None
        except FileNotFoundError:
            raise ModelFileError(self.path, "no such file") from None
        except OSError as exc:
            raise ModelFileError(
                self.path, f"cannot be read ({exc.strerror})"
            ) from None
        self.tensors = self._check_tensors(header)
        self.meta = self._check_metadata(header.get("__metadata__"))
        self.architecture = self.meta["architecture"]
        self.training = self.meta.get("training")

    def _fail(self, reason: str) -> ModelFileError:
        return ModelFileError(self.path, reason)

    def _read_header(self, fh) -> dict:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise self._fail(
                f"is {self.file_size} bytes long, too short to be a model file "
                "(a safetensors file starts with an 8-byte header length)"
            )
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER_BYTES:
            raise self._fail(
                f"declares a header of {n} bytes, over the limit of "
                f"{MAX_HEADER_BYTES}; {self._guess_format(prefix)}"
            )
        if 8 + n > self.file_size:
            raise self._fail(
                f"is truncated: its header needs {n} bytes but only "
                f"{self.file_size - 8} follow"
            )
        self.header_size = n
        raw = fh.read(n)
        if len(raw) != n:
            raise self._fail("is truncated (the file shrank while being read)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("has a header that is not UTF-8 text") from None
        if not text.startswith("{"):
            raise self._fail("has a header that is not a JSON object")
        header = _strict_json(text, self.path, "the header")
        if not isinstance(header, dict):
            raise self._fail("has a header that is not a JSON object")
        return header

    @staticmethod
    def _guess_format(prefix: bytes) -> str:
        if prefix[:1] == b"\x80" and 2 <= prefix[1] <= 5:
            return (
                "it looks like a pickle file (e.g. from torch.save or joblib), which "
                "glassnet never opens because unpickling can run arbitrary code"
            )
        if prefix[:4] == b"PK\x03\x04":
            return "it looks like a zip archive (.npz, .pt, .keras), not safetensors"
        if prefix[:6] == b"\x93NUMPY":
            return "it looks like a .npy array file, not safetensors"
        if all(32 <= b < 127 or b in b"\t\r\n" for b in prefix):
            return "it looks like a text file (CSV, TOML?), not a model file"
        return "it is not a safetensors file, or it is corrupt"

    def _check_tensors(self, header: dict) -> dict[str, _Tensor]:
        data_size = self.file_size - 8 - self.header_size
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            where = f"tensor {name!r}"
            if not isinstance(entry, dict) or set(entry) != {
                "dtype",
                "shape",
                "data_offsets",
            }:
                raise self._fail(
                    f"{where}: expected an entry with exactly dtype, shape and "
                    f"data_offsets, got {_short(entry)}"
                )
            dtype = (
                _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
            )
            if dtype is None:
                raise self._fail(
                    f"{where}: dtype must be F32 or F64, got {_short(entry['dtype'])}"
                )
            shape, offsets = entry["shape"], entry["data_offsets"]
            if not (
                isinstance(shape, list)
                and len(shape) <= _MAX_NDIM
                and all(_is_int(s) and s >= 0 for s in shape)
            ):
                raise self._fail(
                    f"{where}: shape must be a list of at most {_MAX_NDIM} integers "
                    f">= 0, got {_short(shape)}"
                )
            if not (
                isinstance(offsets, list)
                and len(offsets) == 2
                and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]
            ):
                raise self._fail(
                    f"{where}: data_offsets must be [begin, end] with "
                    f"0 <= begin <= end, got {_short(offsets)}"
                )
            tensor = _Tensor(name, dtype, tuple(shape), offsets[0], offsets[1])
            nbytes = tensor.size * dtype.itemsize  # Python ints: no overflow
            if nbytes != tensor.end - tensor.begin:
                raise self._fail(
                    f"{where}: shape {list(shape)} of {entry['dtype']} needs {nbytes} "
                    f"bytes but its offsets span {tensor.end - tensor.begin}"
                )
            if tensor.end > data_size:
                raise self._fail(
                    f"{where}: ends at byte {tensor.end} of the data, but the file "
                    f"holds only {data_size} bytes of data (truncated or crafted)"
                )
            tensors[name] = tensor
        self._check_tiling(sorted(tensors.values(), key=lambda t: (t.begin, t.end)))
        return tensors

    def _check_tiling(self, ordered: list[_Tensor]) -> None:
        """The tensors must cover the data exactly once, in some order."""
        data_size = self.file_size - 8 - self.header_size
        position, previous = 0, None
        for t in ordered:
            if t.begin < position:
                raise self._fail(
                    f"tensors {previous.name!r} and {t.name!r} overlap (bytes "
                    f"{previous.begin}-{previous.end} and {t.begin}-{t.end})"
                )
            if t.begin > position:
                raise self._fail(
                    f"has {t.begin - position} unused bytes before tensor {t.name!r}"
                )
            position, previous = t.end, t
        if position != data_size:
            raise self._fail(
                f"has {data_size - position} trailing bytes after the last tensor"
            )

    def _check_metadata(self, metadata) -> dict:
        if metadata is None or (
            isinstance(metadata, dict) and METADATA_KEY not in metadata
        ):
            raise self._fail(
                "is a safetensors file without glassnet metadata; it was not written "
                "by glassnet's save"
            )
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()
        ):
            raise self._fail("has __metadata__ that is not a map of strings")
        meta = _strict_json(metadata[METADATA_KEY], self.path, "the glassnet metadata")
        if not isinstance(meta, dict):
            raise self._fail("has glassnet metadata that is not a JSON object")
        version = meta.get("format_version")
        if not _is_int(version):
            raise self._fail(f"has no valid format_version (got {_short(version)})")
        if version != FORMAT_VERSION:
            newer = " by a newer glassnet; upgrade glassnet" if version > 1 else ""
            raise self._fail(
                f"was written in format version {version}{newer}; this glassnet "
                f"reads format version {FORMAT_VERSION}"
            )
        unknown = set(meta) - {"format_version", "architecture", "training"}
        if unknown:
            raise self._fail(f"has unknown metadata entries {sorted(unknown)}")
        meta.setdefault("architecture", None)
        self._check_architecture(meta["architecture"])
        if meta.get("training") is not None and not isinstance(meta["training"], dict):
            raise self._fail("has training metadata that is not a JSON object")
        return meta

    def _check_architecture(self, arch) -> None:
        if arch is None:
            return
        if not isinstance(arch, dict) or set(arch) != {"class", "config", "layers"}:
            raise self._fail(
                "architecture must be {class, config, layers}, got " + _short(arch)
            )
        if arch["class"] != "Sequential":
            raise self._fail(
                f"architecture class must be Sequential, got {_short(arch['class'])}"
            )
        config = arch["config"]
        if not isinstance(config, dict) or not set(config) <= {"seed", "dtype"}:
            raise self._fail(
                f"Sequential config must be {{seed, dtype}}, got {_short(config)}"
            )
        seed = config.get("seed")
        if seed is not None and not (_is_int(seed) and seed >= 0):
            raise self._fail(
                f"seed must be null or an integer >= 0, got {_short(seed)}"
            )
        if config.get("dtype", "float32") not in ("float32", "float64"):
            raise self._fail(
                f"dtype must be float32 or float64, got {_short(config.get('dtype'))}"
            )
        if not isinstance(arch["layers"], list):
            raise self._fail("architecture layers must be a list")
        for i, entry in enumerate(arch["layers"]):
            if (
                not isinstance(entry, dict)
                or set(entry) != {"class", "config"}
                or not isinstance(entry["class"], str)
                or not isinstance(entry["config"], dict)
            ):
                raise self._fail(
                    f"layer {i} must be {{class: name, config: {{...}}}}, got "
                    f"{_short(entry)}"
                )

    # -- building and reading ------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        if self.architecture is None:
            raise self._fail("holds weights only (no architecture)")
        return np.dtype(self.architecture["config"].get("dtype", "float32"))

    def build_model(self):
        """A fresh model from the checked architecture (weights not yet loaded)."""
        if self.architecture is None:
            raise self._fail(
                "holds weights only (written by save_weights); build the model in "
                "code and call load_weights(model, path)"
            )
        registry = LAYERS._scan()
        Sequential = registry["Sequential"]
        layers = []
        for i, entry in enumerate(self.architecture["layers"]):
            name, config = entry["class"], entry["config"]
            cls = registry.get(name)
            if cls is None:
                raise self._fail(
                    f"layer {i} has unknown type {_short(name)}; known layer types: "
                    f"{', '.join(sorted(registry))}"
                )
            self._check_config_keys(i, cls, config)
            self._check_layer_size(i, name, config)
            try:
                layer = cls(**config)
            except (GlassnetError, TypeError, ValueError) as exc:
                raise self._fail(
                    f"layer {i} ({name}): config {_short(config)} is invalid: {exc}"
                ) from None
            layers.append(layer)
        config = self.architecture["config"]
        return Sequential(*layers, seed=config.get("seed"), dtype=self.dtype)

    def _check_config_keys(self, i: int, cls: type, config: dict) -> None:
        """Only the constructor's own data arguments; never rng or dtype."""
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            allowed = None
        else:
            allowed = set(params) - {"self", "rng", "dtype"}
        bad = [
            k
            for k in config
            if k in ("rng", "dtype") or (allowed is not None and k not in allowed)
        ]
        if bad:
            raise self._fail(
                f"layer {i} ({cls.__name__}): unknown config keys {sorted(bad)}; "
                f"expected some of {sorted(allowed or ())}"
            )

    def _check_layer_size(self, i: int, name: str, config: dict) -> None:
        """Refuse to build a layer larger than what the file stores for it."""
        stored = sum(
            t.size for t in self.tensors.values() if t.name.startswith(f"{i}.")
        )
        exact = _parameter_count(name, config)
        if exact is not None:
            if exact > stored + _SLACK_ELEMENTS:
                raise self._fail(
                    f"layer {i} ({name}) would have {exact} parameters but the file "
                    f"stores {stored} values for it (crafted or corrupt architecture)"
                )
            return
        # A layer this module knows nothing about: bound the product of the sizes
        # in its config by what is stored for it.
        bound = math.prod(v for v in _config_ints(config) if v > 0)
        if bound > 64 * stored + _SLACK_ELEMENTS:
            raise self._fail(
                f"layer {i} ({name}): config {_short(config)} asks for far more "
                f"memory than the {stored} values the file stores for it"
            )

    def expected_training_tensors(self, n_params: int, dtype) -> dict[str, tuple]:
        """{"optimizer.m": (dtype, (n_params,)), ...} as the training metadata says."""
        if not self.training:
            return {}
        optimizer = self.training.get("optimizer")
        names = optimizer.get("state") if isinstance(optimizer, dict) else None
        if not (
            isinstance(names, list)
            and len(names) <= 16
            and all(isinstance(n, str) and n.isidentifier() for n in names)
        ):
            raise self._fail(
                f"training optimizer state must be a list of names, got {_short(names)}"
            )
        return {f"optimizer.{n}": (np.dtype(dtype), (n_params,)) for n in names}

    def check_tensors(
        self, expected: dict[str, tuple], ignore_prefix: str = ""
    ) -> None:
        """Compare the file's tensor table with {name: (dtype, shape)}; one error
        listing every missing, unexpected or mismatched tensor."""
        problems = []
        for name, (dtype, shape) in expected.items():
            t = self.tensors.get(name)
            if t is None:
                problems.append(f"{name}: missing from the file (model shape {shape})")
            elif t.shape != tuple(shape) or t.dtype != dtype:
                problems.append(
                    f"{name}: file shape {t.shape} {t.dtype}, model shape "
                    f"{tuple(shape)} {np.dtype(dtype)}"
                )
        for name, t in self.tensors.items():
            if name not in expected and not (
                ignore_prefix and name.startswith(ignore_prefix)
            ):
                problems.append(
                    f"{name}: in the file (shape {t.shape}) but not in the model"
                )
        if problems:
            raise self._fail(
                "tensors do not match the model:\n  " + "\n  ".join(sorted(problems))
            )

    def read_tensors(
        self, names, *, allow_nonfinite: bool = False
    ) -> dict[str, np.ndarray]:
        """The arrays named, after check_tensors. Reads the file's bytes only now,
        and refuses NaN or inf unless allow_nonfinite."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as safetensors_load

        try:
            with open(self.path, "rb") as fh:
                blob = fh.read(self.file_size + 1)
        except OSError as exc:
            raise self._fail(f"cannot be read ({exc.strerror})") from None
        if len(blob) != self.file_size:
            raise self._fail("changed while it was being read")
        try:
            arrays = safetensors_load(blob)
        except (SafetensorError, ValueError) as exc:
            raise self._fail(f"is not a valid safetensors file ({exc})") from None
        out, bad = {}, []
        for name in names:
            t, arr = self.tensors[name], arrays.get(name)
            if arr is None or arr.shape != t.shape or arr.dtype != t.dtype:
                raise self._fail(f"tensor {name!r} did not decode as declared")
            if not allow_nonfinite and not np.isfinite(arr).all():
                n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
                bad.append(f"{name!r} holds {n_nan} NaN and {n_inf} inf values")
            out[name] = arr
        if bad:
            raise self._fail(
                "non-finite weights: "
                + "; ".join(bad)
                + "; pass allow_nonfinite=True to load them anyway"
            )
        return out


def _parameter_count(name: str, config: dict) -> int | None:
    """The exact parameter count of the layers whose shapes we know, from the
    config alone (None if unknown or if the config is malformed: the layer's
    constructor then reports it before allocating anything)."""
    try:
        if name == "Dense":
            D, M = config["in_features"], config["out_features"]
            if _is_int(D) and _is_int(M):
                return D * M + M
        elif name == "Conv2D":
            C, F, k = (
                config["in_channels"],
                config["out_channels"],
                config["kernel_size"],
            )
            KH, KW = (k, k) if _is_int(k) else k
            if all(_is_int(v) for v in (C, F, KH, KW)):
                return F * C * KH * KW + F
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _config_ints(value) -> Iterator[int]:
    if _is_int(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _config_ints(v)
    elif isinstance(value, list):
        for v in value:
            yield from _config_ints(v)


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- loading -------------------------------------------------------------------


def _assign(model, arrays: dict[str, np.ndarray]) -> None:
    for name, p in model.named_parameters():
        p.data = arrays[name]  # copies into the parameter's own array


def _model_specs(model) -> dict[str, tuple]:
    return {n: (p.data.dtype, p.shape) for n, p in model.named_parameters()}


def load(path: str | os.PathLike, *, allow_nonfinite: bool = False):
    """The Sequential model saved at `path` by model.save (or a checkpoint).

    Everything is checked before it is used; any problem with the file (missing,
    truncated, crafted, another format, a newer format version, tensors that do
    not match the architecture, NaN or inf weights unless allow_nonfinite=True)
    raises ModelFileError naming the file.
    """
    f = ModelFile(path)
    model = f.build_model()
    specs = _model_specs(model)
    n_params = sum(p.size for p in model.parameters())
    expected = {**specs, **f.expected_training_tensors(n_params, model.dtype)}
    f.check_tensors(expected)
    _assign(model, f.read_tensors(specs, allow_nonfinite=allow_nonfinite))
    return model


def load_weights(model, path: str | os.PathLike, *, allow_nonfinite: bool = False):
    """Copy the weights saved at `path` into `model`, which must have the same
    parameter names, shapes and dtype (an error lists every difference).
    Returns the model."""
    f = ModelFile(path)
    specs = _model_specs(model)
    f.check_tensors(specs, ignore_prefix="optimizer.")
    _assign(model, f.read_tensors(specs, allow_nonfinite=allow_nonfinite))
    return model


__all__ = [
    "FORMAT_VERSION",
    "LAYERS",
    "ModelFile",
    "ModelFileError",
    "architecture",
    "load",
    "load_weights",
    "save",
    "save_weights",
]
