"""Save and load models: weights in safetensors, the architecture as JSON beside them.

    model.save("iris.safetensors")
    model = gn.load("iris.safetensors")       # bitwise-equal predictions

A model file is a standard safetensors file (any safetensors tool can list it):

    8 bytes    n, the header's length (little-endian, unsigned)
    n bytes    JSON header: {"0.weight": {"dtype": "F32", "shape": [4, 5],
               "data_offsets": [0, 80]}, ..., "__metadata__": {"glassnet": "..."}}
    the rest   the tensors' bytes, back to back, nothing after the last one

The "glassnet" metadata entry is JSON too (format version 2):

    {"format_version": 2,
     "architecture": {"class": "Sequential", "config": {"seed": 0, "dtype": "float32"},
                      "layers": [entry, ...]},
     "training": {...}}          (checkpoints only, see glassnet.train.checkpoints)

where each entry is a layer, {"class": "Dense", "config": {...}}, or a layer that
holds others, with its children in the order its constructor takes them:

    {"class": "Residual", "config": {}, "layers": [entry]}
    {"class": "Concat", "config": {"axis": 1}, "layers": [entry, entry, ...]}
    {"class": "Sequential", "config": {"seed": null, "dtype": "float32"},
     "layers": [entry, ...]}

Format version 1 (still read) is the same with flat entries only. "architecture"
is null in a file written by save_weights (any model, custom layers included).

A layer whose dtype differs from its model's (Dense(4, 3, dtype=np.float64) in a
float32 Sequential) says so in its entry, {"class": "Dense", "config": {...},
"dtype": "float64"}; the entry has no "dtype" when the layer has the model's.

Every parameter of the model, at every depth, is stored under the name
model.named_parameters() gives it ("0.weight", "2.block.0.bias"), in its own
dtype. Every buffer (state that is saved but never trained: a BatchNorm's
running mean and variance) is stored under "buffers." + the name
model.named_buffers() gives it ("buffers.1.running_mean"), so the file tells
buffers from parameters and no optimizer ever sees them. A checkpoint adds the
optimizer's state as "optimizer.<name>". Loading refuses a file that leaves a
tensor of the model (parameter or buffer) unset or holds one the model does not
have, and lists their names. The
metadata lives in one key, written with sorted keys, because safetensors writes
its metadata map in a random order: one key keeps the same model's file
byte-identical.

Loading trusts nothing in the file. glassnet reads the header itself, bounded
in size, as strict JSON (no duplicate keys, no NaN), and checks its own rules:
each tensor's dtype (F32 or F64) and shape, the metadata schema, the format
version and the architecture. safetensors then checks the bytes (offsets that
tile the data exactly, shapes that match them) before any tensor is read; its
errors become ModelFileError too. Layer types are looked up by class name in
glassnet's own registry (LAYERS), never imported or evaluated, and no layer is
built before the parameter count of every layer has been checked against the
values the file really holds. Any problem raises ModelFileError naming the file.
There is no pickle anywhere: not in the format, not in the loader.
"""

import json
import math
import os
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from glassnet.errors import ArgumentTypeError, ConfigError, ModelFileError
from glassnet.io._architecture import Builder, architecture, check
from glassnet.io._architecture import is_int as _is_int
from glassnet.io._architecture import short as _short
from glassnet.io._architecture import to_json as _to_json
from glassnet.io._atomic import atomic_write
from glassnet.nn.layers.base import builtin_layers

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
METADATA_KEY = "glassnet"
MAX_HEADER_BYTES = 16 * 2**20  # an architecture of thousands of layers fits easily
_DTYPES = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
_DTYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}
_MAX_NDIM = 8


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


BUFFER_PREFIX = "buffers."  # a buffer "1.running_mean" is "buffers.1.running_mean"
_RESERVED_PREFIXES = (BUFFER_PREFIX, "optimizer.")


def _named_arrays(model) -> list[tuple[str, str, np.ndarray]]:
    """(file name, what, array) for every parameter and buffer at every depth."""
    found = [(name, "parameter", p.data) for name, p in model.named_parameters()]
    found += [(BUFFER_PREFIX + n, "buffer", a) for n, a in model.named_buffers()]
    return found


def _model_tensors(model) -> dict[str, np.ndarray]:
    """{file name: array} for every parameter and buffer at every depth."""
    tensors = {}
    for name, what, a in _named_arrays(model):
        shown = name.removeprefix(BUFFER_PREFIX) if what == "buffer" else name
        if what == "parameter" and name.startswith(_RESERVED_PREFIXES):
            raise ConfigError(
                f"save: parameter {name} starts with {name.split('.')[0]!r}, which "
                "model files keep for buffers and optimizer state; rename the "
                "layer attribute that holds it"
            )
        if a.dtype not in _DTYPE_CODES:
            raise ConfigError(
                f"save: {what} {shown} has dtype {a.dtype}; expected float32 or float64"
            )
        tensors[name] = _contiguous(a)
    return tensors


def _contiguous(a: np.ndarray) -> np.ndarray:
    """a in C order, 0-d kept 0-d (np.ascontiguousarray alone makes it (1,))."""
    return np.ascontiguousarray(a).reshape(a.shape)


def _write(path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    from safetensors.numpy import save as safetensors_save

    metadata = {METADATA_KEY: _to_json(meta, "metadata")}
    atomic_write(path, safetensors_save(tensors, metadata=metadata))


def save(model, path: str | os.PathLike, *, extra: dict | None = None) -> None:
    """Write `model`'s architecture and weights to `path` (safetensors), atomically.

    The same model (same weights) always gives the same bytes. extra: a JSON
    object stored beside the architecture (the CLI's class names, an estimator's
    classes_ and settings), read back with read_extra(path).
    """
    meta = {"format_version": FORMAT_VERSION, "architecture": architecture(model)}
    if extra is not None:
        if not isinstance(extra, dict):
            raise ArgumentTypeError(
                f"save: extra must be a dict of JSON values, got {type(extra).__name__}"
            )
        meta["extra"] = extra
    _check_folder(path)
    _write(path, _model_tensors(model), meta)


def _check_folder(path) -> None:
    """ModelFileError naming the folder when the file's folder does not exist."""
    folder = os.path.dirname(os.fspath(path))
    if folder and not os.path.isdir(folder):
        raise ModelFileError(
            path, f"the folder {folder} does not exist; create it first"
        )


def read_extra(path: str | os.PathLike) -> dict:
    """The `extra` JSON object saved with the model at `path` ({} if none)."""
    return dict(ModelFile(path).meta.get("extra") or {})


def save_weights(model, path: str | os.PathLike) -> None:
    """Write only the weights, every parameter and buffer at every depth (any
    model, custom layers included); read them back into a model of the same
    structure with load_weights."""
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


class _Tensor:
    __slots__ = ("name", "dtype", "shape")

    def __init__(self, name: str, dtype: np.dtype, shape: tuple) -> None:
        self.name, self.dtype, self.shape = name, dtype, shape

    @property
    def size(self) -> int:
        return math.prod(self.shape)


# safetensors' byte-level complaints, said for people (its own words follow)
_SAFETENSORS_REASONS = [
    (
        "incomplete metadata",
        "its tensors do not cover its data exactly: it is truncated, or has "
        "trailing bytes after the last tensor",
    ),
    ("invalid offset", "its tensors' byte ranges overlap or leave a gap"),
    ("overflow", "a tensor's shape needs more bytes than any file holds"),
    (
        "invalid shape, data type, or offset",
        "a tensor's shape and dtype need another number of bytes than its offsets span",
    ),
    ("invalid header length", "is truncated: its header runs past the end"),
    (
        "expected usize",
        "a tensor's data_offsets (or shape) are not integers from 0 to 2**64 - 1",
    ),
]


def _safetensors_reason(exc: Exception) -> str:
    text = str(exc)
    for key, reason in _SAFETENSORS_REASONS:
        if key in text:
            return f"is not a valid safetensors file: {reason} (safetensors: {text})"
    return f"is not a valid safetensors file (safetensors: {text})"


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
        self.version = self.meta["format_version"]
        self.architecture = self.meta["architecture"]
        self.training = self.meta.get("training")
        self._check_bytes()

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
        """glassnet's rules for the tensor table: float32 or float64 tensors of
        at most _MAX_NDIM dimensions, entries with nothing unexpected in them.
        (Their byte ranges are safetensors' to check: see _check_bytes.)"""
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
            shape = entry["shape"]
            if not (
                isinstance(shape, list)
                and len(shape) <= _MAX_NDIM
                and all(_is_int(s) and s >= 0 for s in shape)
            ):
                raise self._fail(
                    f"{where}: shape must be a list of at most {_MAX_NDIM} integers "
                    f">= 0, got {_short(shape)}"
                )
            tensors[name] = _Tensor(name, dtype, tuple(shape))
        return tensors

    def _check_bytes(self) -> None:
        """safetensors' own checks of the file's bytes: the header's length, every
        tensor's offsets against its shape and dtype, and offsets that tile the
        data exactly (no overlap, gap or trailing byte). Nothing is read yet."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(self.path, framework="np"):
                pass
        except SafetensorError as exc:
            raise self._fail(_safetensors_reason(exc)) from None
        except OSError as exc:
            raise self._fail(f"cannot be read ({exc.strerror})") from None

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
        if version not in _READABLE_VERSIONS:
            newer = (
                " by a newer glassnet; upgrade glassnet"
                if version > FORMAT_VERSION
                else ""
            )
            raise self._fail(
                f"was written in format version {version}{newer}; this glassnet "
                f"reads format versions {', '.join(map(str, _READABLE_VERSIONS))}"
            )
        unknown = set(meta) - {"format_version", "architecture", "training", "extra"}
        if unknown:
            raise self._fail(f"has unknown metadata entries {sorted(unknown)}")
        meta.setdefault("architecture", None)
        check(meta["architecture"], version, self._fail)
        if meta.get("training") is not None and not isinstance(meta["training"], dict):
            raise self._fail("has training metadata that is not a JSON object")
        if meta.get("extra") is not None and not isinstance(meta["extra"], dict):
            raise self._fail("has extra metadata that is not a JSON object")
        return meta

    # -- building and reading ------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        if self.architecture is None:
            raise self._fail("holds weights only (no architecture)")
        return np.dtype(self.architecture["config"].get("dtype", "float32"))

    def build_model(self):
        """A fresh model from the checked architecture (weights not yet loaded):
        every layer's class, config and parameter count is checked against the
        values the file stores before any layer is built (see
        glassnet.io._architecture.Builder)."""
        if self.architecture is None:
            raise self._fail(
                "holds weights only (written by save_weights); build the model in "
                "code and call load_weights(model, path)"
            )
        stored = {t.name: t.size for t in self.tensors.values()}
        return Builder(stored, self._fail).build(self.architecture, self.dtype)

    def expected_training_tensors(self, n_params: int, dtype) -> dict[str, tuple]:
        """{"optimizer.m": (dtype, (n_params,)), ...} as the training metadata says."""
        optimizer = self.training.get("optimizer") if self.training else None
        if optimizer is None:  # not a checkpoint, or one saved without optimizer
            return {}
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
        from safetensors import SafetensorError, safe_open

        arrays = {}
        try:
            with safe_open(self.path, framework="np") as fh:
                for name in names:
                    arrays[name] = fh.get_tensor(name)
        except SafetensorError as exc:  # the file changed since it was checked
            raise self._fail(_safetensors_reason(exc)) from None
        except OSError as exc:
            raise self._fail(f"cannot be read ({exc.strerror})") from None
        bad = []
        for name, arr in arrays.items():
            t = self.tensors[name]
            if arr.shape != t.shape or arr.dtype != t.dtype:
                raise self._fail(f"tensor {name!r} did not decode as declared")
            if not allow_nonfinite and not np.isfinite(arr).all():
                n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
                bad.append(f"{name!r} holds {n_nan} NaN and {n_inf} inf values")
        if bad:
            raise self._fail(
                "non-finite weights: "
                + "; ".join(bad)
                + "; pass allow_nonfinite=True to load them anyway"
            )
        return arrays


# -- loading -------------------------------------------------------------------


def _assign(model, arrays: dict[str, np.ndarray]) -> None:
    """Put every parameter and buffer of `arrays` (checked) into the model."""
    for name, p in model.named_parameters():
        np.copyto(p.data, arrays[name])  # into the parameter's own array
    for path, layer in [("", model), *model.named_layers()]:
        prefix = BUFFER_PREFIX + (f"{path}." if path else "")
        for name in layer.own_buffers():
            layer.load_buffer(name, arrays[prefix + name])


def _model_specs(model) -> dict[str, tuple]:
    """{file name: (dtype, shape)} of every parameter and buffer of the model."""
    return {name: (a.dtype, a.shape) for name, _, a in _named_arrays(model)}


def _state_dtype(model) -> np.dtype:
    """The dtype of the optimizer's state in a checkpoint: the parameters' own,
    or the widest of them when they mix float32 and float64 (see
    Optimizer.state_arrays)."""
    dtypes = {p.data.dtype for p in model.parameters()}
    return np.result_type(*dtypes) if dtypes else np.dtype(model.dtype)


def load(path: str | os.PathLike, *, allow_nonfinite: bool = False):
    """The Sequential model saved at `path` by model.save (or a checkpoint).

    Everything is checked before it is used; any problem with the file (missing,
    truncated, crafted, another format, a newer format version, tensors that do
    not match the architecture, missing or extra ones, NaN or inf weights unless
    allow_nonfinite=True) raises ModelFileError naming the file.
    """
    f = ModelFile(path)
    model = f.build_model()
    specs = _model_specs(model)
    n_params = sum(p.size for p in model.parameters())
    expected = {**specs, **f.expected_training_tensors(n_params, _state_dtype(model))}
    f.check_tensors(expected)
    _assign(model, f.read_tensors(specs, allow_nonfinite=allow_nonfinite))
    return model


def load_weights(model, path: str | os.PathLike, *, allow_nonfinite: bool = False):
    """Copy the weights saved at `path` into `model`: every parameter and buffer
    at every depth, with the same names, shapes and dtypes (an error lists every
    tensor missing from the file, extra in it or different). Returns the model."""
    f = ModelFile(path)
    specs = _model_specs(model)
    f.check_tensors(specs, ignore_prefix="optimizer.")
    _assign(model, f.read_tensors(specs, allow_nonfinite=allow_nonfinite))
    return model


__all__ = [
    "BUFFER_PREFIX",
    "FORMAT_VERSION",
    "LAYERS",
    "ModelFile",
    "ModelFileError",
    "architecture",
    "load",
    "load_weights",
    "read_extra",
    "save",
    "save_weights",
]
