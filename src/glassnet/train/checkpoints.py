"""Checkpoints: the whole training state in one file, and callbacks that write it.

    model.fit(X, y, epochs=50, callbacks=[gn.BackupAndRestore("run.ckpt")])
    model.fit(X, y, epochs=50, validation_split=0.2,
              callbacks=[gn.ModelCheckpoint("best.safetensors", save_best_only=True)])

A checkpoint is a model file (see glassnet.io.serialization; gn.load reads it as a
model) whose metadata also holds "training":

    structure  [[qualified name, class name], ...] for every layer at every depth
               ([["0", "Dense"], ["1", "Residual"], ["1.block", "Sequential"], ...]),
               compared with the model before a checkpoint is restored into it
    epoch      the last finished epoch (0-based; Checkpoint.epoch, the number of
               epochs completed, is this + 1)
    optimizer  {"class": "Adam", "config": {...}, "t": 120, "state": ["m", "v"],
               "start_lr": 0.001}; config is get_config() when saved (every
               hyperparameter, lr as a schedule left it), start_lr the lr the
               optimizer had when fit started (absent in older files);
               each state array is a tensor "optimizer.<name>" of shape (P,),
               P = the model's parameter count, in the parameters' dtype (the
               wider one, float64, when the model mixes float32 and float64)
    rng        model.rng.bit_generator.state (JSON integers, exact)
    fit_rng    the same for fit's own generator when fit(seed=...) made one
    history    {"epoch": [0, 1, ...], "history": [["loss", [...]], ...]}
    position   (a mid-epoch backup only) {"epoch": the epoch in progress,
               "batch": batches done in it, "rows", "batch_size", "steps": the
               backup's step count, "total", "sums": [[metric, running sum]],
               "clipped_steps", "shuffled"}; the epoch's row order is the tensor
               "position.order" (rows,), float64 (exact integers) when shuffled;
               "epoch" above is then the epoch in progress too
    callbacks  (backups; absent in older files, whose callbacks' state is then
               left as it is) [{"class": "EarlyStopping", "state": {...},
               "arrays": [[key, dtype, shape], ...]}, ...]: the state of every
               callback with get_state(), in the run's order; its arrays are
               tensors "callbacks.<i>.<key>"

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
import copy
import glob
import math
import os
import string
import warnings
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
from glassnet.train.callbacks import Callback, EpochPosition, History, _json_float

_TRAINING_KEYS = {"structure", "epoch", "optimizer", "rng", "fit_rng", "history"}
_TRAINING_KEYS_V1 = _TRAINING_KEYS - {"structure"}
_OPTIONAL_KEYS = {"position", "callbacks"}  # mid-epoch backups; callbacks' state
_POSITION_KEYS = {
    "epoch", "batch", "rows", "batch_size", "steps", "total", "sums",
    "clipped_steps", "shuffled",
}  # fmt: skip


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
    start_lr: float | None = None,
    position: EpochPosition | None = None,
    callbacks: list | None = None,
) -> None:
    """Write the model (every parameter and buffer at every depth, each in its
    own dtype), the optimizer's state and hyperparameters, the random
    generators' state and the history after `epoch` (0-based) to `path`,
    atomically. A model with custom layers is saved without an architecture:
    restore it into a model built in code with restore_checkpoint.

    rng: the generator fit shuffles with, if it is not model.rng.
    start_lr: the optimizer's lr when training started (before any schedule),
    compared with the resuming optimizer's lr; its current lr by default.
    position: where training stands inside `epoch` (then the epoch in
    progress), for a backup that resumes mid-epoch.
    callbacks: the run's callbacks; the state of those with get_state() is saved.
    Temporary files left by an earlier save to `path` that was killed are
    removed. An OSError (disk full, permissions) is a ModelFileError naming path.
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
            "start_lr": float(optimizer.lr if start_lr is None else start_lr),
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
    if position is not None:
        training["position"] = _position_to_json(position, tensors)
    if callbacks is not None:  # [] too: a file without the key predates it
        training["callbacks"] = _callback_states(callbacks, tensors)
    meta = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture(model) if _describable(model) else None,
        "training": training,
    }
    _remove_stale_temporaries(path)
    try:
        _write(path, tensors, meta)
    except OSError as exc:
        raise ModelFileError(
            path, f"could not be written ({exc.strerror or exc})"
        ) from None


def _position_to_json(position: EpochPosition, tensors: dict) -> dict:
    """The position's numbers as JSON (floats exact: JSON keeps repr's digits);
    its row order joins the tensors."""
    if position.order is not None:
        # float64: the file format keeps floats only, exact for any row number
        tensors["position.order"] = np.ascontiguousarray(position.order, np.float64)
    return {
        "epoch": int(position.epoch),
        "batch": int(position.batch),
        "rows": int(position.rows),
        "batch_size": int(position.batch_size),
        "steps": int(position.steps),
        "total": _json_float(position.total),
        "sums": [[k, _json_float(v)] for k, v in position.sums.items()],
        "clipped_steps": int(position.clipped_steps),
        "shuffled": position.order is not None,
    }


def _callback_states(callbacks: list, tensors: dict) -> list[dict]:
    """[{"class", "state", "arrays"}] of the callbacks with state; their arrays
    join the tensors as "callbacks.<i>.<key>"."""
    states = []
    for cb in _stateful(callbacks):
        state, arrays = {}, []
        for key, value in (cb.get_state() or {}).items():
            if isinstance(value, np.ndarray):
                name = f"callbacks.{len(states)}.{key}"
                tensors[name] = _contiguous(value)
                arrays.append([key, value.dtype.name, list(value.shape)])
            else:
                state[key] = value
        states.append({"class": type(cb).__name__, "state": state, "arrays": arrays})
    return states


def _stateful(callbacks: list) -> list:
    """The callbacks whose state a backup saves (get_state() is not None)."""
    return [cb for cb in callbacks if cb.get_state() is not None]


def _remove_stale_temporaries(path) -> None:
    """Delete the temporary files a killed atomic write of `path` left behind
    (".<name>.*.tmp" beside it; see glassnet.io._atomic)."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    pattern = os.path.join(glob.escape(directory), f".{glob.escape(name)}.*.tmp")
    for stale in glob.glob(pattern):
        with contextlib.suppress(OSError):
            os.remove(stale)


# -- reading -------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What load_checkpoint returns: a model ready to predict or to train on.

    epoch: the number of epochs completed, so fit(..., initial_epoch=ckpt.epoch)
    continues with the next epoch (the file stores the last finished 0-based
    epoch, which is epoch - 1; files written by older versions read the same).
    """

    model: object
    optimizer: object | None
    epoch: int
    history: History
    rng_state: dict = field(repr=False)
    fit_rng_state: dict | None = field(default=None, repr=False)
    position: EpochPosition | None = field(default=None, repr=False)


def _check_training(f: ModelFile) -> dict:
    """The training metadata, its structure checked (values are checked on use)."""
    t = f.training
    if t is None:
        raise ModelFileError(
            f.path, "is a model file, not a checkpoint (no training state)"
        )
    keys = _TRAINING_KEYS if f.version > 1 else _TRAINING_KEYS_V1
    if set(t) - _OPTIONAL_KEYS != keys:
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
        and set(opt) - {"start_lr"} == {"class", "config", "t", "state"}
        and isinstance(opt.get("start_lr", 0.0), (int, float))
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
    if "position" in t:
        _check_position(t["position"], f.path)
    if "callbacks" in t:
        _check_callback_states(t["callbacks"], f.path)
    return t


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_number(v) -> bool:
    if isinstance(v, str):
        return v in ("nan", "inf", "-inf")
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_position(pos, path) -> None:
    if not (
        isinstance(pos, dict)
        and set(pos) == _POSITION_KEYS
        and all(
            _is_count(pos[k])
            for k in ("epoch", "batch", "rows", "batch_size", "steps", "clipped_steps")
        )
        and _is_number(pos["total"])
        and isinstance(pos["shuffled"], bool)
        and isinstance(pos["sums"], list)
        and all(
            isinstance(p, list)
            and len(p) == 2
            and isinstance(p[0], str)
            and _is_number(p[1])
            for p in pos["sums"]
        )  # fmt: skip
        and pos["batch"] * pos["batch_size"] < pos["rows"] + pos["batch_size"]
    ):
        raise ModelFileError(
            path, f"training position must be {sorted(_POSITION_KEYS)}, got "
            + _short(pos),
        )  # fmt: skip


def _check_callback_states(states, path) -> None:
    def array_ok(a) -> bool:
        return (
            isinstance(a, list)
            and len(a) == 3
            and isinstance(a[0], str)
            and a[1] in ("float32", "float64")
            and isinstance(a[2], list)
            and all(_is_count(d) for d in a[2])
        )

    if not (
        isinstance(states, list)
        and all(
            isinstance(s, dict)
            and set(s) == {"class", "state", "arrays"}
            and isinstance(s["class"], str)
            and isinstance(s["state"], dict)
            and isinstance(s["arrays"], list)
            and all(array_ok(a) for a in s["arrays"])
            for s in states
        )
    ):
        raise ModelFileError(
            path, "training callbacks must be a list of {class, state, arrays}, got "
            + _short(states),
        )  # fmt: skip


def _extra_tensors(training: dict) -> dict:
    """{name: (dtype, shape)} of the tensors a position and callbacks' states add."""
    extra = {}
    pos = training.get("position")
    if pos is not None and pos["shuffled"]:
        extra["position.order"] = (np.dtype(np.float64), (pos["rows"],))
    for i, state in enumerate(training.get("callbacks", [])):
        for key, dtype, shape in state["arrays"]:
            extra[f"callbacks.{i}.{key}"] = (np.dtype(dtype), tuple(shape))
    return extra


def _position_from(training: dict, arrays: dict, path) -> EpochPosition | None:
    """The saved EpochPosition (its row order checked to be a permutation)."""
    pos = training.get("position")
    if pos is None:
        return None
    order = arrays.get("position.order")
    if order is not None:
        if not np.array_equal(np.sort(order), np.arange(len(order))):
            raise ModelFileError(path, "training position order is not a permutation")
        order = order.astype(np.intp)
    position = EpochPosition(
        pos["epoch"],
        pos["batch"],
        order,
        float(pos["total"]),
        {k: float(v) for k, v in pos["sums"]},
        pos["clipped_steps"],
    )
    position.rows, position.batch_size = pos["rows"], pos["batch_size"]
    position.steps = pos["steps"]
    return position


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
    extra.update(_extra_tensors(training))
    f.check_tensors({**specs, **extra})
    arrays = f.read_tensors([*specs, *extra], allow_nonfinite=allow_nonfinite)
    return training, specs, arrays


def _same_parameters(a: list, b: list) -> bool:
    return len(a) == len(b) and all(p is q for p, q in zip(a, b, strict=True))


def _check_optimizer_state(optimizer, model, opt_meta: dict, path) -> None:
    """Check that the optimizer keeps the state arrays the file holds (its
    configuration names them); changes nothing, the optimizer included."""
    names = sorted(optimizer._state_names())
    if names != sorted(opt_meta["state"]):
        raise ModelFileError(
            path,
            f"optimizer state {sorted(opt_meta['state'])} does not match "
            f"{type(optimizer).__name__}'s {names} (other hyperparameters?)",
        )


def _check_hyperparameters(optimizer, opt_meta: dict, path) -> None:
    """Refuse an optimizer whose hyperparameters differ from the saved ones.

    Every get_config() value but lr must be equal. lr may be the saved one (as a
    schedule left it) or the one the saved run started with (a script run again
    builds its optimizer with the starting lr). Changes nothing."""
    saved, mine = opt_meta["config"], optimizer.get_config()
    differ = [  # a key one side leaves out (an unset clipnorm) is None there
        f"{key}={saved.get(key)} in the file, {mine.get(key)} here"
        for key in sorted(set(saved) | set(mine) - {"lr"})
        if key != "lr" and saved.get(key) != mine.get(key)
    ]
    allowed = {saved.get("lr"), opt_meta.get("start_lr", saved.get("lr"))}
    if "lr" in mine and mine["lr"] not in allowed:
        start = opt_meta.get("start_lr", saved.get("lr"))
        differ.insert(0, f"lr={start} in the file, {mine['lr']} here")
    if differ:
        raise ModelFileError(
            path,
            f"was saved with other {type(optimizer).__name__} hyperparameters: "
            + "; ".join(differ)
            + " (build the optimizer as the saved run did, or start a new run)",
        )


def _set_optimizer_state(optimizer, model, opt_meta: dict, arrays: dict, path) -> None:
    _check_optimizer_state(optimizer, model, opt_meta, path)
    params = model.parameters()
    if not _same_parameters(optimizer.params, params):
        optimizer.bind(params)
    optimizer.load_state_arrays(
        {name: arrays[f"optimizer.{name}"] for name in opt_meta["state"]}
    )
    optimizer.t = opt_meta["t"]
    for key, value in opt_meta["config"].items():  # lr as the schedule left it
        if key in optimizer.get_config():
            setattr(optimizer, key, value)


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
    position = _position_from(training, arrays, f.path)
    return Checkpoint(
        model=model,
        optimizer=optimizer,
        # epochs completed (a mid-epoch backup's epoch is the one in progress)
        epoch=training["epoch"] + (position is None),
        history=_history_from_json(training["history"], f.path),
        rng_state=rng_state,
        fit_rng_state=training["fit_rng"],
        position=position,
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
    last finished epoch (for a backup written mid-epoch, the one before the
    epoch in progress: -1 during the first). The model must have the saved
    structure (the same layers at the same places, at every depth, custom
    layers included) and the same tensors."""
    epoch, _ = _restore(path, model, optimizer, rng=rng, history=history)
    return epoch


def _restore(path, model, optimizer=None, *, rng=None, history=None, run=None):
    """restore_checkpoint, also putting back the state of the run's callbacks
    (run: a TrainingRun, whose rows and batch size a mid-epoch backup must
    match); returns (last finished epoch, EpochPosition or None)."""
    f = ModelFile(path)
    _check_structure(f, model, _check_training(f))
    training, specs, arrays = _read(f, model, allow_nonfinite=False)
    position = _position_from(training, arrays, f.path)
    stateful = _stateful(run.callbacks) if run is not None else []
    if run is not None:
        _check_run(f.path, training, position, stateful, run)
    opt_meta = training["optimizer"]
    if optimizer is not None:
        saved = opt_meta["class"] if opt_meta else None
        if saved != type(optimizer).__name__:
            raise ModelFileError(
                f.path,
                f"was saved with optimizer {saved}, not {type(optimizer).__name__}",
            )
        _check_hyperparameters(optimizer, opt_meta, f.path)
        _check_optimizer_state(optimizer, model, opt_meta, f.path)
    rng_state = _rng_state_checked(training["rng"], model.rng, f.path, "rng")
    fit_state = training["fit_rng"]
    if rng is not None and rng is not model.rng and fit_state is not None:
        fit_state = _rng_state_checked(fit_state, rng, f.path, "fit_rng")
    restored_history = _history_from_json(training["history"], f.path)
    states = training.get("callbacks", [])  # none in files older than the key
    callback_states = []
    for i, (cb, state) in enumerate(zip(stateful, states, strict=False)):
        arrays_of = {key: arrays[f"callbacks.{i}.{key}"] for key, *_ in state["arrays"]}
        callback_states.append((cb, {**state["state"], **arrays_of}))
        _check_takes_state(cb, callback_states[-1][1], f.path)
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
    for cb, state in callback_states:
        cb.set_state(state)
    if position is None:
        return training["epoch"], None
    return training["epoch"] - 1, position


def _check_takes_state(cb, state: dict, path) -> None:
    """Refuse a callback state that cb.set_state cannot take, before anything is
    changed: set_state is tried on a shallow copy of cb (set_state assigns
    attributes; a damaged or crafted file fails here with its path named)."""
    try:
        copy.copy(cb).set_state(state)
    except Exception as exc:  # noqa: BLE001  (whatever the callback raises)
        raise ModelFileError(
            path,
            f"holds a state for {type(cb).__name__} that it cannot take back "
            f"({type(exc).__name__}: {exc})",
        ) from None


def _check_run(path, training: dict, position, stateful: list, run) -> None:
    """Refuse a backup whose callbacks (or, mid-epoch, rows and batch size)
    differ from this run's; changes nothing."""
    saved = [state["class"] for state in training.get("callbacks", [])]
    mine = [type(cb).__name__ for cb in stateful]
    if "callbacks" in training and saved != mine:  # older files: not checked
        raise ModelFileError(
            path,
            f"was saved with callbacks that keep state {saved}, this fit has "
            f"{mine}; pass the same callbacks (in the same order)",
        )
    if position is not None and (position.rows, position.batch_size) != (
        run.rows,
        run.batch_size,
    ):
        raise ModelFileError(
            path,
            f"was saved mid-epoch with {position.rows} training rows in batches "
            f"of {position.batch_size}, this fit has {run.rows} in batches of "
            f"{run.batch_size}; resume with the same data and batch_size",
        )
    if position is not None and set(position.sums) != set(run.metrics):
        raise ModelFileError(
            path,
            f"was saved mid-epoch while logging metrics {sorted(position.sums)}, "
            f"this fit logs {sorted(run.metrics)}; pass the same metrics",
        )


# -- callbacks -----------------------------------------------------------------


def _check_target(owner: str, path) -> str:
    """path as a str, refused at construction when it cannot be written to:
    empty, or in a folder that does not exist (ConfigError naming the path)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{owner}: path must be a file path, got {path!r}")
    path = os.fspath(path)
    if not path or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ConfigError(f"{owner}: path must name a file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if "{" not in path and not os.path.isdir(folder):
        raise ConfigError(
            f"{owner}: the folder {folder!r} of {path!r} does not exist; create it "
            "first (os.makedirs(folder, exist_ok=True))"
        )
    return path


class BackupAndRestore(Callback):
    """Back up the whole training state after every epoch (or every k steps);
    resume from it.

        model.fit(X, y, epochs=50, callbacks=[gn.BackupAndRestore("run.ckpt")])
        model.fit(X, y, epochs=5, callbacks=[gn.BackupAndRestore("run.ckpt",
                                                                 save_every_steps=100)])

    When fit starts and the backup exists, the training state is restored from
    it and training continues where the backup was written. Run the same script
    again after a crash, a kill or Ctrl-C (a new process, the model built the same
    way, the same data, fit arguments and callbacks) and the result is bitwise
    equal to a run that was never interrupted. Every write is atomic, so an
    interruption during a write leaves the previous backup intact. The backup is
    deleted when training ends normally, unless delete_on_end=False.

    What resume restores, exactly: every parameter and buffer, the optimizer's
    state arrays, step count and hyperparameters (lr as a schedule left it), the
    model's and fit's random generators, the history, and the state of every
    callback that has one (get_state / set_state: EarlyStopping's counters and
    best weights, ModelCheckpoint's step count and best value). fit calls
    BackupAndRestore after every callback with state, wherever it stands in the
    list (glassnet.train.callbacks.call_order), so a backup holds their state as
    of the same step, and restores it after their on_train_begin.
    The optimizer you pass must be of the saved class with the same
    hyperparameters (lr: the one the saved run started with), and the callbacks
    with state the same classes in the same order: anything else raises
    ModelFileError before any weight changes.

    save_every_epochs: back up after every n-th epoch (and after the last one);
    an interrupted run then repeats at most n - 1 epochs, exactly as before.
    save_every_steps: back up every k optimizer steps instead (counted across
    epochs, Keras's save_freq=k), in the middle of an epoch too: the backup also
    holds the epoch's row order (its shuffle permutation), how many of its
    batches are done and the epoch's running loss and metric sums, so fit
    continues that epoch with the next batch (on_epoch_begin is not called again
    for it: its effects, the lr, are in the backup). Give one of the two (both,
    0, a negative number or a non-integer: ConfigError naming the argument); a
    step backup needs the same rows and batch_size to resume (checked).
    The previous backup is kept as `path + ".prev"`: when the latest backup
    cannot be read (corrupt, truncated), training resumes from the previous one
    with a warning saying so.
    """

    runs_last = True  # after the callbacks whose state it saves (call_order)

    def __init__(
        self,
        path: str | os.PathLike,
        delete_on_end: bool = True,
        save_every_epochs: int | None = None,
        save_every_steps: int | None = None,
    ) -> None:
        from glassnet._validation import check_positive_int

        self.path = _check_target("BackupAndRestore", path)
        if save_every_epochs is not None and save_every_steps is not None:
            raise ConfigError(
                "BackupAndRestore: give save_every_epochs or save_every_steps, not "
                f"both (got save_every_epochs={save_every_epochs!r}, "
                f"save_every_steps={save_every_steps!r}): a step backup already "
                "covers the epochs"
            )
        if save_every_epochs is not None:
            check_positive_int("BackupAndRestore", save_every_epochs=save_every_epochs)
        if save_every_steps is not None:
            check_positive_int("BackupAndRestore", save_every_steps=save_every_steps)
            self.on_batch_end = self._backup_step  # only then: batch hooks cost
        self.save_every_epochs = save_every_epochs or 1
        self.save_every_steps = save_every_steps
        self.delete_on_end = bool(delete_on_end)
        self.restored_epoch: int | None = None  # the last epoch the backup held
        self.restored_position: EpochPosition | None = None  # mid-epoch: where

    @property
    def previous_path(self) -> str:
        """Where the backup before the latest one is kept."""
        return self.path + ".prev"

    def on_train_begin(self, logs: dict) -> None:
        self.restored_epoch = self.restored_position = None
        self._start_lr = self.run.start_lr
        self._steps = 0
        candidates = [p for p in (self.path, self.previous_path) if os.path.exists(p)]
        for i, path in enumerate(candidates):
            try:
                epoch, position = self._restore(path)
            except ModelFileError as exc:
                if i + 1 == len(candidates) or not _unreadable(exc):
                    raise
                warnings.warn(
                    f"BackupAndRestore: the latest backup cannot be read ({exc}); "
                    f"resuming from the previous one, {candidates[i + 1]}",
                    stacklevel=2,
                )
                continue
            self.restored_epoch = epoch
            self.run.initial_epoch = epoch + 1  # fit continues after it
            if position is not None:  # ... inside the epoch in progress
                self.restored_position = position
                self.run.resume_position = position
                self._steps = position.steps
            return

    def _restore(self, path: str) -> tuple[int, EpochPosition | None]:
        return _restore(
            path,
            self.model,
            self.optimizer,
            rng=self.rng,
            history=self.run.history,
            run=self.run,
        )

    def _backup_step(self, batch: int, logs: dict) -> None:
        """on_batch_end with save_every_steps: a backup every k-th step."""
        self._steps += 1
        if self._steps % self.save_every_steps == 0:
            position = self.run.position
            self._save(
                position.epoch,
                EpochPosition(
                    position.epoch,
                    position.batch,
                    position.order,
                    position.total,
                    dict(position.sums),  # fit goes on adding to its own
                    position.clipped_steps,
                    self.run.rows,
                    self.run.batch_size,
                    self._steps,
                ),
            )

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.save_every_steps is not None:
            return
        last = epoch + 1 == self.run.epochs
        if (epoch + 1) % self.save_every_epochs and not last:
            return
        self._save(epoch, None)

    def _save(self, epoch: int, position: EpochPosition | None) -> None:
        if os.path.exists(self.path):
            _keep_previous(self.path, self.previous_path)
        save_checkpoint(
            self.path,
            self.model,
            self.optimizer,
            epoch=epoch,
            history=self.run.history,
            rng=self.rng,
            start_lr=self._start_lr,
            position=position,
            callbacks=self.run.callbacks,
        )

    def on_train_end(self, logs: dict) -> None:
        if self.delete_on_end:
            for path in (self.path, self.previous_path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


def _keep_previous(path: str, previous: str) -> None:
    """Make `previous` the file `path` is now, leaving `path` in place (so an
    interruption never leaves no backup): a hard link, a copy where links fail."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(previous)
    try:
        os.link(path, previous)  # the atomic replace of path gives it a new inode
    except OSError:
        import shutil

        shutil.copyfile(path, previous)


def _unreadable(error: ModelFileError) -> bool:
    """True for a file that is damaged (not for one saved from another model or
    with another optimizer: those are the user's to fix, not to fall back from)."""
    reason = error.reason
    return not (
        "different model architecture" in reason
        or "was saved " in reason
        or "does not match" in reason
    )


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

    save_every_steps: also write the model every n optimizer steps (counted
    across epochs), mid-epoch; filepath may then name {step} (1-based). These
    snapshots hold the weights only (and the architecture when the model has
    one), never the training state: no optimizer state, generators or position
    in the epoch, so they are for inspection and inference, not for resuming. To
    resume exactly from the middle of an epoch, use
    BackupAndRestore(path, save_every_steps=n). The epoch-end files are as above.
    A backup (BackupAndRestore) saves and restores the step count, the best
    value and the last file written (get_state / set_state).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        include_training_state: bool = True,
        save_every_steps: int | None = None,
    ) -> None:
        filepath = _check_target("ModelCheckpoint", filepath)
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                f"ModelCheckpoint: mode must be auto, min or max, got {mode!r}"
            )
        self.filepath = os.fspath(filepath)
        self.monitor, self.save_best_only = monitor, bool(save_best_only)
        maximise = mode == "max" or (mode == "auto" and "loss" not in monitor)
        self.sign = -1.0 if maximise else 1.0
        self.include_training_state = bool(include_training_state)
        if save_every_steps is not None:
            from glassnet._validation import check_positive_int

            check_positive_int("ModelCheckpoint", save_every_steps=save_every_steps)
        self.save_every_steps = save_every_steps
        self.best: float | None = None
        self.last_path: str | None = None

    def on_train_begin(self, logs: dict) -> None:
        self._best_key = math.inf
        self._steps, self._epoch = 0, self.run.initial_epoch

    def get_state(self) -> dict:
        """The step count, the epoch in progress and the best value so far."""
        return {
            "steps": self._steps,
            "epoch": self._epoch,
            "best_key": _json_float(self._best_key),
            "best": self.best,
            "last_path": self.last_path,
        }

    def set_state(self, state: dict) -> None:
        self._steps, self._epoch = state["steps"], state["epoch"]
        self._best_key, self.best = float(state["best_key"]), state["best"]
        self.last_path = state["last_path"]

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self._steps += 1
        if self.save_every_steps is None or self._steps % self.save_every_steps:
            return
        fields = {"epoch": self._epoch + 1, "step": self._steps, **logs}
        path = _FieldChecker().format(self.filepath, **fields)
        if _describable(self.model):
            save(self.model, path)
        else:
            save_weights(self.model, path)
        self.last_path = path

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
        step = self._steps
        path = _FieldChecker().format(self.filepath, epoch=epoch + 1, step=step, **logs)
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
