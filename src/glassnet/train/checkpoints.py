"""Checkpoints: the whole training state in one file, and callbacks that write it.

    model.fit(X, y, epochs=50, callbacks=[gn.BackupAndRestore("run.ckpt")])
    model.fit(X, y, epochs=50, validation_split=0.2,
              callbacks=[gn.ModelCheckpoint("best.safetensors", save_best_only=True)])

A checkpoint is a model file (see glassnet.io.serialization; gn.load reads it as a
model) whose metadata also holds "training":

    structure  [[qualified name, class name], ...] for every layer at every depth
               ([["0", "Dense"], ["1", "Residual"], ["1.block", "Sequential"], ...]),
               compared with the model before a checkpoint is restored into it
    epoch      the last finished epoch (0-based)
    optimizer  {"class": "Adam", "config": {...}, "t": 120, "state": ["m", "v"]};
               each state array is a tensor "optimizer.<name>" of shape (P,),
               P = the model's parameter count, in the parameters' dtype (the
               wider one, float64, when the model mixes float32 and float64)
    rng        model.rng.bit_generator.state (JSON integers, exact)
    fit_rng    the same for fit's own generator when fit(seed=...) made one
    history    {"epoch": [0, 1, ...], "history": [["loss", [...]], ...]}

With all of it restored, training resumed after epoch k (in a new process)
ends bitwise equal to a run that was never interrupted. Every tensor of the
model is saved, parameters and buffers (a BatchNorm's running statistics, as
"buffers.<name>"), found by the same walks as model.named_parameters() and
model.named_buffers(), so a model with custom layers (even layers that hold
layers) is checkpointed too: its file has no architecture (load_checkpoint
cannot rebuild it), and restore_checkpoint
puts the state back into the model built in code, after checking that model's
structure and tensors against the file. (Format version 1 checkpoints, which
have no "structure", are still read.)
"""

import contextlib
import math
import os
import string
from dataclasses import dataclass, field

import numpy as np

from glassnet.errors import ConfigError, GlassnetError, ModelFileError
from glassnet.io.serialization import (
    FORMAT_VERSION,
    LAYERS,
    ModelFile,
    _assign,
    _contiguous,
    _model_specs,
    _model_tensors,
    _short,
    _state_dtype,
    _write,
    architecture,
    save,
    save_weights,
)
from glassnet.train.callbacks import Callback, History

_TRAINING_KEYS = {"structure", "epoch", "optimizer", "rng", "fit_rng", "history"}
_TRAINING_KEYS_V1 = _TRAINING_KEYS - {"structure"}


# -- writing -------------------------------------------------------------------


def _structure(model) -> list[list[str]]:
    """[[qualified name, class name], ...] of every layer below the model."""
    return [[path, type(layer).__name__] for path, layer in model.named_layers()]


def _describable(model) -> bool:
    """True when load() could rebuild the model: glassnet's layers only."""
    return all(
        LAYERS.get(type(layer).__name__) is type(layer)
        for layer in (model, *(layer for _, layer in model.named_layers()))
    )


def _history_to_json(history: History | None) -> dict:
    if history is None:
        return {"epoch": [], "history": []}

    def number(v):  # strict JSON has no NaN or inf: write those as strings
        v = float(v)
        return v if math.isfinite(v) else repr(v)

    return {
        "epoch": [int(e) for e in history.epoch],
        # pairs, not a map: the JSON is written with sorted keys, and the order
        # of the logged quantities (the history CSV's columns) must survive
        "history": [[k, [number(v) for v in vs]] for k, vs in history.history.items()],
    }


def save_checkpoint(
    path: str | os.PathLike,
    model,
    optimizer=None,
    *,
    epoch: int,
    history: History | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Write the model (every parameter and buffer at every depth, each in its
    own dtype), the optimizer's state, the random generators' state and the
    history after `epoch` (0-based) to `path`, atomically. A model with custom
    layers is saved without an architecture: restore it into a model built in
    code with restore_checkpoint.

    rng: the generator fit shuffles with, if it is not model.rng.
    """
    tensors = _model_tensors(model)
    opt_meta = None
    if optimizer is not None:
        bound = optimizer.params
        if bound and not _same_parameters(bound, model.parameters()):
            raise ConfigError(
                "save_checkpoint: the optimizer is bound to other parameters than "
                "this model's"
            )
        state = optimizer.state_arrays()
        for name, arr in state.items():
            tensors[f"optimizer.{name}"] = _contiguous(arr)
        opt_meta = {
            "class": type(optimizer).__name__,
            "config": optimizer.get_config(),
            "t": int(optimizer.t),
            "state": sorted(state),
        }
    fit_rng = rng if rng is not None and rng is not model.rng else None
    training = {
        "structure": _structure(model),
        "epoch": int(epoch),
        "optimizer": opt_meta,
        "rng": model.rng.bit_generator.state,
        "fit_rng": fit_rng.bit_generator.state if fit_rng is not None else None,
        "history": _history_to_json(history),
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture(model) if _describable(model) else None,
        "training": training,
    }
    _write(path, tensors, meta)


# -- reading -------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What load_checkpoint returns: a model ready to predict or to train on."""

    model: object
    optimizer: object | None
    epoch: int
    history: History
    rng_state: dict = field(repr=False)
    fit_rng_state: dict | None = field(default=None, repr=False)


def _check_training(f: ModelFile) -> dict:
    """The training metadata, its structure checked (values are checked on use)."""
    t = f.training
    if t is None:
        raise ModelFileError(
            f.path, "is a model file, not a checkpoint (no training state)"
        )
    keys = _TRAINING_KEYS if f.version > 1 else _TRAINING_KEYS_V1
    if set(t) != keys:
        raise ModelFileError(
            f.path,
            f"training state must have keys {sorted(keys)}, got {sorted(t)}",
        )
    structure = t.get("structure", [])
    if not (
        isinstance(structure, list)
        and all(
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(s, str) for s in pair)
            for pair in structure
        )
    ):
        raise ModelFileError(
            f.path,
            "training structure must be a list of [layer name, class name], got "
            + _short(structure),
        )
    epoch = t["epoch"]
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0):
        raise ModelFileError(
            f.path, f"training epoch must be an integer >= 0, got {_short(epoch)}"
        )
    opt = t["optimizer"]
    if opt is not None and not (
        isinstance(opt, dict)
        and set(opt) == {"class", "config", "t", "state"}
        and isinstance(opt["class"], str)
        and isinstance(opt["config"], dict)
        and isinstance(opt["t"], int)
        and not isinstance(opt["t"], bool)
        and opt["t"] >= 0
    ):
        raise ModelFileError(
            f.path,
            "training optimizer must be {class, config, t, state}, got " + _short(opt),
        )
    for key in ("rng", "fit_rng"):
        if t[key] is not None and not isinstance(t[key], dict):
            raise ModelFileError(f.path, f"training {key} must be a JSON object")
    if t["rng"] is None:
        raise ModelFileError(f.path, "training rng state is missing")
    _history_from_json(t["history"], f.path)  # checked now, built on use
    return t


def _history_from_json(data, path) -> History:
    def number(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if v in ("nan", "inf", "-inf"):
            return float(v)
        raise ModelFileError(path, f"training history holds a non-number {_short(v)}")

    if not (
        isinstance(data, dict)
        and set(data) == {"epoch", "history"}
        and isinstance(data["epoch"], list)
        and isinstance(data["history"], list)
        and all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            for pair in data["history"]
        )
    ):
        raise ModelFileError(
            path, f"training history must be {{epoch, history}}, got {_short(data)}"
        )
    n = len(data["epoch"])
    if not all(isinstance(e, int) and not isinstance(e, bool) for e in data["epoch"]):
        raise ModelFileError(path, "training history epochs must be integers")
    history = History()
    history.epoch = list(data["epoch"])
    for key, values in data["history"]:
        if not isinstance(values, list) or len(values) != n:
            raise ModelFileError(
                path, f"training history {key!r} must be a list of {n} numbers"
            )
        history.history[key] = [number(v) for v in values]
    return history


def _rng_state_checked(state: dict, like: np.random.Generator, path, what: str) -> dict:
    """Try the state on a scratch generator of the same kind, so a bad state is
    reported before the real generator is touched."""
    scratch = type(like.bit_generator)()
    try:
        scratch.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ModelFileError(
            path, f"training {what} state is invalid ({exc})"
        ) from None
    return state


def _optimizer_class(name: str, path):
    from glassnet.train.optimizers import OPTIMIZERS

    classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
    if name not in classes:
        raise ModelFileError(
            path,
            f"unknown optimizer {_short(name)}; known: {', '.join(sorted(classes))}",
        )
    return classes[name]


def _read(f: ModelFile, model, allow_nonfinite: bool):
    """Check and read every tensor of a checkpoint for `model`."""
    training = _check_training(f)
    specs = _model_specs(model)
    n_params = sum(p.size for p in model.parameters())
    extra = (
        f.expected_training_tensors(n_params, _state_dtype(model))
        if training["optimizer"]
        else {}
    )
    f.check_tensors({**specs, **extra})
    arrays = f.read_tensors([*specs, *extra], allow_nonfinite=allow_nonfinite)
    return training, specs, arrays


def _same_parameters(a: list, b: list) -> bool:
    return len(a) == len(b) and all(p is q for p, q in zip(a, b, strict=True))


def _check_optimizer_state(optimizer, model, opt_meta: dict, path) -> None:
    """Bind the optimizer to the model and check that its state buffers are the
    ones the file holds (weights are not touched)."""
    params = model.parameters()
    if not _same_parameters(optimizer.params, params):
        optimizer.bind(params)
    state = optimizer.state_arrays()
    if sorted(state) != sorted(opt_meta["state"]):
        raise ModelFileError(
            path,
            f"optimizer state {sorted(opt_meta['state'])} does not match "
            f"{type(optimizer).__name__}'s {sorted(state)} (other hyperparameters?)",
        )


def _set_optimizer_state(optimizer, model, opt_meta: dict, arrays: dict, path) -> None:
    _check_optimizer_state(optimizer, model, opt_meta, path)
    optimizer.load_state_arrays(
        {name: arrays[f"optimizer.{name}"] for name in opt_meta["state"]}
    )
    optimizer.t = opt_meta["t"]


def _check_structure(f: ModelFile, model, training: dict) -> None:
    """Refuse a model other than the one the checkpoint was saved from: other
    layers at some place (at any depth), or other layer configs where the file
    has an architecture. Changes nothing."""
    theirs, mine = training.get("structure"), _structure(model)
    problem = None
    if theirs is not None and theirs != mine:
        problem = _first_difference(theirs, mine)
    elif f.architecture is not None:
        if not _describable(model):
            problem = "the model has custom layers, the file has none"
        else:
            arch = architecture(model)
            if arch["layers"] != f.architecture["layers"]:
                problem = "the layers' configurations differ"
            elif arch["config"]["dtype"] != f.dtype.name:
                problem = f"the file is {f.dtype.name}, the model {model.dtype.name}"
    elif theirs is None:
        problem = "the file has no architecture to compare the model with"
    if problem is not None:
        raise ModelFileError(
            f.path,
            "was saved from a different model architecture than the one training: "
            + problem,
        )


def _first_difference(theirs: list, mine: list) -> str:
    for (path, cls), (my_path, my_cls) in zip(theirs, mine, strict=False):
        if (path, cls) != (my_path, my_cls):
            return (
                f"the file has layer {path} ({cls}) where the model has layer "
                f"{my_path} ({my_cls})"
            )
    if len(theirs) > len(mine):
        path, cls = theirs[len(mine)]
        return f"the file has layer {path} ({cls}), the model does not"
    path, cls = mine[len(theirs)]
    return f"the model has layer {path} ({cls}), the file does not"


def load_checkpoint(
    path: str | os.PathLike, *, allow_nonfinite: bool = False
) -> Checkpoint:
    """The model, a bound optimizer with its state, the epoch and the history
    saved at `path`; model.rng continues where it was. Raises ModelFileError."""
    f = ModelFile(path)
    if f.architecture is None:
        raise ModelFileError(
            f.path,
            "holds a model with custom layers, which load_checkpoint cannot rebuild; "
            "build the model in code and call restore_checkpoint(path, model, "
            "optimizer)",
        )
    model = f.build_model()
    training, specs, arrays = _read(f, model, allow_nonfinite)
    rng_state = _rng_state_checked(training["rng"], model.rng, f.path, "rng")
    optimizer = None
    if training["optimizer"] is not None:
        opt_meta = training["optimizer"]
        cls = _optimizer_class(opt_meta["class"], f.path)
        try:
            optimizer = cls(**opt_meta["config"])
        except (GlassnetError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f.path, f"optimizer config is invalid: {exc}"
            ) from None
    _assign(model, arrays)
    if optimizer is not None:
        _set_optimizer_state(optimizer, model, training["optimizer"], arrays, f.path)
    model.rng.bit_generator.state = rng_state
    return Checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=training["epoch"],
        history=_history_from_json(training["history"], f.path),
        rng_state=rng_state,
        fit_rng_state=training["fit_rng"],
    )


def restore_checkpoint(
    path: str | os.PathLike,
    model,
    optimizer=None,
    *,
    rng: np.random.Generator | None = None,
    history: History | None = None,
) -> int:
    """Put the training state saved at `path` back into model, optimizer, the
    generators and history (each checked before any is changed); returns the
    last finished epoch. The model must have the saved structure (the same
    layers at the same places, at every depth, custom layers included) and the
    same tensors."""
    f = ModelFile(path)
    _check_structure(f, model, _check_training(f))
    training, specs, arrays = _read(f, model, allow_nonfinite=False)
    opt_meta = training["optimizer"]
    if optimizer is not None:
        saved = opt_meta["class"] if opt_meta else None
        if saved != type(optimizer).__name__:
            raise ModelFileError(
                f.path,
                f"was saved with optimizer {saved}, not {type(optimizer).__name__}",
            )
        _check_optimizer_state(optimizer, model, opt_meta, f.path)
    rng_state = _rng_state_checked(training["rng"], model.rng, f.path, "rng")
    fit_state = training["fit_rng"]
    if rng is not None and rng is not model.rng and fit_state is not None:
        fit_state = _rng_state_checked(fit_state, rng, f.path, "fit_rng")
    restored_history = _history_from_json(training["history"], f.path)
    # everything is checked: now change things
    _assign(model, arrays)
    if optimizer is not None:
        _set_optimizer_state(optimizer, model, opt_meta, arrays, f.path)
    model.rng.bit_generator.state = rng_state
    if rng is not None and rng is not model.rng and fit_state is not None:
        rng.bit_generator.state = fit_state
    if history is not None:
        history.epoch = restored_history.epoch
        history.history = restored_history.history
    return training["epoch"]


# -- callbacks -----------------------------------------------------------------


class BackupAndRestore(Callback):
    """Back up the whole training state after every epoch; resume from it.

        model.fit(X, y, epochs=50, callbacks=[gn.BackupAndRestore("run.ckpt")])

    When fit starts and the backup exists, the weights, the optimizer (state and
    step count), the random generators and the history are restored from it and
    training continues after the last finished epoch. Run the same script again
    after a crash, a kill or Ctrl-C (a new process, the model built the same way,
    the same data and fit arguments) and the result is bitwise equal to a run that
    was never interrupted. Every write is atomic, so an interruption during a
    write leaves the previous backup intact. The backup is deleted when training
    ends normally, unless delete_on_end=False.

    The state of other callbacks (EarlyStopping's counters, for instance) is not
    part of the backup.
    """

    def __init__(self, path: str | os.PathLike, delete_on_end: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(
                f"BackupAndRestore: path must be a file path, got {path!r}"
            )
        self.path = os.fspath(path)
        self.delete_on_end = bool(delete_on_end)
        self.restored_epoch: int | None = None  # the last epoch the backup held

    def on_train_begin(self, logs: dict) -> None:
        self.restored_epoch = None
        if not os.path.exists(self.path):
            return
        epoch = restore_checkpoint(
            self.path,
            self.model,
            self.optimizer,
            rng=self.rng,
            history=self.run.history,
        )
        self.restored_epoch = epoch
        self.run.initial_epoch = epoch + 1  # fit continues after the restored epoch

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        save_checkpoint(
            self.path,
            self.model,
            self.optimizer,
            epoch=epoch,
            history=self.run.history,
            rng=self.rng,
        )

    def on_train_end(self, logs: dict) -> None:
        if self.delete_on_end:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


class _FieldChecker(string.Formatter):
    """str.format limited to plain names: "{epoch:03d}-{val_loss:.3f}"."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            raise ConfigError(
                f"ModelCheckpoint: {{{field_name}}} in the file name is not a plain "
                "name; use {epoch} or a logged value such as {val_loss:.4f}"
            )
        if field_name not in kwargs:
            known = ", ".join(sorted(kwargs))
            raise ConfigError(
                f"ModelCheckpoint: {{{field_name}}} in the file name is not logged; "
                f"known: {known}"
            )
        return kwargs[field_name], field_name


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when `monitor` improves.

        ModelCheckpoint("model-{epoch:03d}.safetensors")            # every epoch
        ModelCheckpoint("best.safetensors", monitor="val_loss", save_best_only=True)

    filepath may name {epoch} (1-based, as Keras) and any logged value. With
    include_training_state (the default) the file is a full checkpoint that
    load_checkpoint can resume from; gn.load reads it as a model either way.
    A model with custom layers has no architecture to save: restore_checkpoint
    (or load_weights, without the training state) puts the file back into the
    model built in code.
    mode "auto" minimises losses and maximises anything else. `last_path` is the
    latest file written; `best` the best monitored value.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        include_training_state: bool = True,
    ) -> None:
        if not isinstance(filepath, (str, os.PathLike)):
            raise ConfigError(
                f"ModelCheckpoint: filepath must be a path, got {filepath!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                f"ModelCheckpoint: mode must be auto, min or max, got {mode!r}"
            )
        self.filepath = os.fspath(filepath)
        self.monitor, self.save_best_only = monitor, bool(save_best_only)
        maximise = mode == "max" or (mode == "auto" and "loss" not in monitor)
        self.sign = -1.0 if maximise else 1.0
        self.include_training_state = bool(include_training_state)
        self.best: float | None = None
        self.last_path: str | None = None

    def on_train_begin(self, logs: dict) -> None:
        self._best_key = math.inf

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            if self.monitor not in logs:
                known = ", ".join(sorted(logs))
                raise ConfigError(
                    f"ModelCheckpoint: monitor={self.monitor!r} is not logged; "
                    f"logged: {known}"
                )
            key = self.sign * logs[self.monitor]
            if not key < self._best_key:
                return
            self._best_key, self.best = key, logs[self.monitor]
        path = _FieldChecker().format(self.filepath, epoch=epoch + 1, **logs)
        if self.include_training_state:
            save_checkpoint(
                path,
                self.model,
                self.optimizer,
                epoch=epoch,
                history=self.run.history,
                rng=self.rng,
            )
        elif _describable(self.model):
            save(self.model, path)
        else:  # custom layers: no architecture to write
            save_weights(self.model, path)
        self.last_path = path


__all__ = [
    "BackupAndRestore",
    "Checkpoint",
    "ModelCheckpoint",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]
