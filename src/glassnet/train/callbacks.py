"""Callbacks for fit: History, EarlyStopping, learning-rate schedules, progress
reporting, and the base.

A callback overrides any of the on_* hooks. Before training, fit hands every
callback the TrainingRun it shares with them (Callback.set_run): then
`self.model`, `self.optimizer` and `self.rng` (the generator that shuffles) are
set, and `self.stop_training = True` ends training after the current epoch.
Epoch `logs` are a dict such as
{"loss": 0.31, "accuracy": 0.9, "val_loss": 0.35, "val_accuracy": 0.87, "lr": 0.1};
batch logs are {"size": rows in the batch} at the start of a step and
{"size": ..., "loss": the batch's loss} at its end.

A callback with state that a backup must carry (EarlyStopping's counters)
defines get_state() -> dict (JSON values and NumPy arrays) and set_state(state):
BackupAndRestore saves the state of every such callback and puts it back on
resume (see glassnet.train.checkpoints). set_state should only assign attributes
and raise on a state it cannot take: a resume first tries it on a shallow copy
of the callback, so that a bad state is refused before anything is changed.
"""

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from glassnet import _notebook
from glassnet._terminal import terminal_width
from glassnet._validation import (
    check_in_range,
    check_positive_float,
    check_positive_int,
)
from glassnet.errors import CallOrderError, ConfigError, ShapeError


@dataclass(eq=False)
class TrainingRun:
    """What one fit call shares with its callbacks.

    model, optimizer, loss: what is being trained, and how.
    rng: the generator fit shuffles and splits with (checkpoints save its state).
    history: the History fit returns (also model.history).
    epochs: the epoch count fit was given; initial_epoch: the first epoch to run
    (a callback that restores a checkpoint in on_train_begin moves it on).
    stop_training: set to True to end training after the current epoch.
    callbacks: every callback of the run, in the order fit calls them.
    rows, batch_size: training rows and rows per step (a backup checks them).
    metrics: the names of the metrics fit logs (a mid-epoch backup checks them).
    position / resume_position: see EpochPosition.
    start_lr: the optimizer's lr when fit started, before any callback ran (the
    schedules' initial_lr; a restored backup may have moved optimizer.lr on).
    """

    model: object
    optimizer: object
    loss: object
    rng: object
    history: "History"
    epochs: int
    initial_epoch: int = 0
    stop_training: bool = False
    start_lr: float | None = None
    callbacks: list = field(default_factory=list, repr=False)
    rows: int = 0
    batch_size: int = 0
    metrics: tuple = ()
    position: "EpochPosition | None" = None
    resume_position: "EpochPosition | None" = None


@dataclass(eq=False)
class EpochPosition:
    """Where training stands inside an epoch: what a mid-epoch backup saves.

    fit keeps TrainingRun.position current after every step while some callback
    has batch hooks. A callback that restores a mid-epoch backup in
    on_train_begin sets run.resume_position (and run.initial_epoch = epoch):
    fit then continues that epoch after its first `batch` batches, in `order`,
    with the running sums as they were, and does not call on_epoch_begin for it
    again (it ran before the backup; its effects, the lr, are in the backup).

    epoch: the epoch in progress (0-based); batch: batches done in it.
    order: (N,) the epoch's row permutation, or None when rows are not shuffled.
    total: the epoch's running loss sum, sums: {metric: running sum},
    clipped_steps: the epoch's clipped steps so far (as fit keeps them).
    """

    epoch: int
    batch: int = 0
    order: np.ndarray | None = None
    total: float = 0.0
    sums: dict = field(default_factory=dict)
    clipped_steps: int = 0
    rows: int = 0  # the run's training rows and batch size (a backup saves them)
    batch_size: int = 0
    steps: int = 0  # the backup's own step count (BackupAndRestore)


class Callback:
    """Base class: every hook does nothing.

    fit calls set_run(run) before on_train_begin; a callback then reads
    self.model, self.optimizer, self.rng and self.run, and may set
    self.stop_training = True. on_batch_begin / on_batch_end are called around
    every step (batch: its index in the epoch) and cost nothing when not
    overridden.
    """

    run: TrainingRun | None = None
    runs_last = False  # True: fit calls it after the callbacks with state
    model = None
    optimizer = None
    rng = None

    def set_run(self, run: TrainingRun) -> None:
        """Called by fit before training: the run this callback takes part in."""
        self.run = run
        self.model, self.optimizer, self.rng = run.model, run.optimizer, run.rng

    @property
    def stop_training(self) -> bool:
        """True once some callback asked fit to stop after the current epoch."""
        return self.run is not None and self.run.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        if self.run is None:
            raise CallOrderError(
                f"{type(self).__name__}: stop_training can only be set while fit "
                "runs (fit hands each callback its run before on_train_begin)"
            )
        self.run.stop_training = bool(value)

    def get_state(self) -> dict | None:
        """What a backup must save of this callback (JSON values and NumPy
        arrays), or None for a callback without state (the default)."""
        return None

    def set_state(self, state: dict) -> None:
        """Put back what get_state returned (BackupAndRestore calls it on resume,
        after this callback's on_train_begin)."""

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


def _has_state(cb: Callback) -> bool:
    return type(cb).get_state is not Callback.get_state


def call_order(callbacks: list[Callback]) -> list[Callback]:
    """The callbacks in the order fit calls them: as given, except that one that
    backs up the others' state (runs_last: BackupAndRestore) moves after the last
    callback with state (one that defines get_state), so that its backup holds
    their state as of the same step and it restores that state after their
    on_train_begin."""
    last = max((i for i, cb in enumerate(callbacks) if _has_state(cb)), default=-1)
    head = callbacks[: last + 1]
    return (
        [cb for cb in head if not cb.runs_last]
        + [cb for cb in head if cb.runs_last]
        + callbacks[last + 1 :]
    )


class History(Callback):
    """Per-epoch logs: history.history["loss"][i] is epoch i's mean training loss.

    Indexing works too: history["val_loss"]. `epoch` lists the epoch numbers.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def set_run(self, run: TrainingRun) -> None:
        """Keeps only the model: the run holds this history, and a history that
        held the run back would make every fit leave a reference cycle for the
        garbage collector (whose full passes cost milliseconds per fit once
        large libraries are loaded)."""
        self.model = run.model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience`
    epochs, as Keras's EarlyStopping. With restore_best_weights the model ends with
    the weights of its best epoch. mode "auto" minimises losses, maximises others.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience != 0:
            check_positive_int("EarlyStopping", patience=patience)
        check_in_range("EarlyStopping", "min_delta", min_delta, 0.0, math.inf)
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                f"EarlyStopping: mode must be auto, min or max, got {mode!r}"
            )
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        maximise = mode == "max" or (mode == "auto" and "loss" not in monitor)
        self.sign = -1.0 if maximise else 1.0
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = None

    def on_train_begin(self, logs: dict) -> None:
        self.best, self.best_epoch, self.wait = math.inf, None, 0
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            known = ", ".join(sorted(logs))
            raise ConfigError(
                f"EarlyStopping: monitor={self.monitor!r} is not logged; "
                f"logged: {known}"
                + (
                    " (pass validation_split or validation_data)"
                    if "val" in self.monitor
                    else ""
                )
            )
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = [p.data.copy() for p in self.model.parameters()]
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_training = True

    def get_state(self) -> dict:
        """The counters and the best weights (joined into one (P,) array)."""
        state = {
            "best": _json_float(self.best),
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }
        if self.best_weights is not None:
            state["best_weights"] = np.concatenate(
                [w.ravel() for w in self.best_weights]
            )
        return state

    def set_state(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        flat, self.best_weights = state.get("best_weights"), None
        sizes = [p.data.size for p in self.model.parameters()]
        if flat is not None and flat.shape != (sum(sizes),):
            raise ShapeError(
                f"EarlyStopping: best_weights of shape {flat.shape}, expected "
                f"({sum(sizes)},) for this model's parameters"
            )
        if flat is not None:  # (P,) back into the parameters' shapes
            self.best_weights, start = [], 0
            for p in self.model.parameters():
                chunk = flat[start : start + p.data.size]
                self.best_weights.append(
                    chunk.reshape(p.data.shape).astype(p.data.dtype)
                )
                start += p.data.size

    def on_train_end(self, logs: dict) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            for p, best in zip(self.model.parameters(), self.best_weights, strict=True):
                p.data = best


def _json_float(value: float) -> float | str:
    """value for strict JSON, which has no inf or NaN: those become strings that
    float() reads back ("inf")."""
    value = float(value)
    return value if math.isfinite(value) else repr(value)


class LearningRateSchedule(Callback):
    """Base of the schedules: sets optimizer.lr = initial_lr * factor(epoch) at the
    start of every epoch. Subclasses define factor(epoch)."""

    def on_train_begin(self, logs: dict) -> None:
        if getattr(self, "initial_lr", None) is None:
            start = self.run.start_lr
            self.initial_lr = self.optimizer.lr if start is None else start

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.optimizer.lr = self.initial_lr * self.factor(epoch)

    def factor(self, epoch: int) -> float:
        raise NotImplementedError


class StepDecay(LearningRateSchedule):
    """lr = initial_lr * gamma ** (epoch // step_size), as torch's StepLR."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        check_positive_int("StepDecay", step_size=step_size)
        check_positive_float("StepDecay", gamma=gamma)
        self.step_size, self.gamma, self.initial_lr = step_size, gamma, None

    def factor(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_lr * gamma ** epoch, as torch's ExponentialLR."""

    def __init__(self, gamma: float) -> None:
        check_positive_float("ExponentialDecay", gamma=gamma)
        self.gamma, self.initial_lr = gamma, None

    def factor(self, epoch: int) -> float:
        return self.gamma**epoch


class CosineDecay(LearningRateSchedule):
    """Cosine annealing from initial_lr to min_lr over t_max epochs, then min_lr.

    Matches torch's CosineAnnealingLR for epochs up to t_max; after t_max torch's
    rate rises again along the cosine, while this one stays at min_lr."""

    def __init__(self, t_max: int, min_lr: float = 0.0) -> None:
        check_positive_int("CosineDecay", t_max=t_max)
        check_in_range("CosineDecay", "min_lr", min_lr, 0.0, math.inf)
        self.t_max, self.min_lr, self.initial_lr = t_max, min_lr, None

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        t = min(epoch, self.t_max)
        cos = (1 + math.cos(math.pi * t / self.t_max)) / 2
        self.optimizer.lr = self.min_lr + (self.initial_lr - self.min_lr) * cos


class LearningRateScheduler(LearningRateSchedule):
    """lr = schedule(epoch, current_lr), any function you write (as Keras)."""

    def __init__(self, schedule) -> None:
        if not callable(schedule):
            raise ConfigError(
                f"LearningRateScheduler: schedule must be callable, got {schedule!r}"
            )
        self.schedule, self.initial_lr = schedule, None

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        lr = float(self.schedule(epoch, self.optimizer.lr))
        check_positive_float("LearningRateScheduler", lr=lr)
        self.optimizer.lr = lr


def _metrics_text(logs: dict, room: int, sep: str = " ", digits: int = 4) -> str:
    """ "loss=0.312 accuracy=0.91 ..." in at most `room` characters: lr first to
    go, then metrics from the end (an ellipsis says some were left out)."""
    items = [f"{k}={v:.{digits}g}" for k, v in logs.items() if k != "lr"]
    if "lr" in logs:
        items.append(f"lr={logs['lr']:.{digits}g}")
    text = sep.join(items)
    while items and len(text) > room:
        items.pop()
        text = sep.join(items) + sep + "..."
    return text if len(text) <= room else ""


# the progress line, from the most to the least complete; the number is the
# width of the fixed part (less the digits of n/N), for times below an hour
_LAYOUTS = [
    ("epoch {n_fmt}/{total_fmt}  {desc}  {bar:10}  {elapsed}<{remaining}", 34),
    ("epoch {n_fmt}/{total_fmt}  {desc}  {elapsed}<{remaining}", 22),
    ("epoch {n_fmt}/{total_fmt}  {desc}  {elapsed}", 16),
    ("epoch {n_fmt}/{total_fmt}  {desc}", 9),
]
_OPTIONS = [(layout, fixed, d) for layout, fixed in _LAYOUTS for d in (4, 3)]


def _progress_line(logs: dict, width: int, epochs: int, hours: bool, start=0):
    """(option index, tqdm bar_format, description) for a line of at most
    `width` characters: every metric with 4 significant digits if it fits with
    the bar, else with 3, else without the bar, then without the time left,
    then without the time taken, then with fewer metrics. Options before
    `start` are not tried, so the line never grows back from epoch to epoch."""
    digits = 2 * len(str(epochs)) + (6 if hours else 0)
    for i in range(start, len(_OPTIONS)):
        layout, fixed, d = _OPTIONS[i]
        full = _metrics_text(logs, 10**6, digits=d)
        if len(full) <= width - fixed - digits:
            return i, layout, full
    layout, fixed, d = _OPTIONS[-1]
    return (
        len(_OPTIONS) - 1,
        layout,
        _metrics_text(logs, width - fixed - digits, digits=3),
    )


class ProgressBar(Callback):
    """Progress of fit, one display that updates in place; fit adds one for
    verbose=1 or "auto".

    In a terminal (stderr is a TTY) a tqdm bar on stderr, one tick per epoch,
    with the epoch's metrics, in one line that fits the width (COLUMNS, else
    the terminal's width, else 80): numbers shorten to 3 digits, then the bar
    and then the times go, before any metric is left out. In a Jupyter kernel
    (checked first), tqdm's notebook widget when ipywidgets can be imported,
    else one text line rewritten at most twice a second; either way one
    output, whose text is the last epoch's line at the end (glassnet/_notebook.py).
    Anywhere else (a pipe, a log file) nothing, so logs stay clean.
    """

    bar = None
    notebook = None

    def on_train_begin(self, logs: dict) -> None:
        self.bar = self.notebook = None
        self.level = 0  # the progress line's layout: only ever less complete
        self.started = time.monotonic()
        self.width = terminal_width()
        if _notebook.in_notebook():  # a widget, else a line (glassnet/_notebook.py)
            self.notebook = _notebook.notebook_progress(
                self.run.epochs, self.run.initial_epoch
            )
            self.last_line = f"epoch {self.run.initial_epoch}/{self.run.epochs}"
            return
        if not sys.stderr.isatty():
            return
        from tqdm import tqdm  # imported only when a bar is shown

        # the metrics (the description) are cut to the width left by the fixed
        # part, so that the bar and the time always show
        layout = "epoch {n_fmt}/{total_fmt}  {desc}  {bar:10}  {elapsed}<{remaining}"
        self.bar = tqdm(
            total=self.run.epochs,
            initial=self.run.initial_epoch,
            unit="epoch",
            file=sys.stderr,
            leave=False,
            bar_format=layout,
            ncols=self.width,
        )

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            hours = time.monotonic() - self.started > 3000
            shown = {k: v for k, v in logs.items() if k != "lr"}  # lr: verbose=2
            self.level, layout, shown = _progress_line(
                shown, self.width, self.run.epochs, hours, self.level
            )
            self.bar.bar_format = layout
            self.bar.set_description_str(shown, refresh=False)
            self.bar.update(1)
        elif self.notebook is not None:
            head, metrics = self._line(epoch, logs)
            self.last_line = head + metrics
            self.notebook.show(epoch + 1, self.last_line, metrics)

    def _line(self, epoch: int, logs: dict) -> tuple[str, str]:
        """("epoch 3/10 (0.4 s)  ", "loss=0.41  accuracy=0.88"): a notebook's
        line, in two parts (the widget draws its own epoch and times)."""
        seconds = time.monotonic() - self.started
        head = f"epoch {epoch + 1}/{self.run.epochs} ({seconds:.1f} s)  "
        room = max(self.width, 120) - len(head)  # a notebook has no fixed width
        shown = {k: v for k, v in logs.items() if k != "lr"}
        return head, _metrics_text(shown, room, "  ")

    def on_train_end(self, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.notebook is not None:
            self.notebook.close(self.last_line)
            self.notebook = None


class PrintLogger(Callback):
    """Lines on stderr: "epoch 3/10  loss=0.41  accuracy=0.88  lr=0.1"; fit adds
    one for verbose=2.

    every: print every k-th epoch; None (the default) picks k so that a run
    prints about 25 lines, whatever its length (every epoch up to 25 epochs).
    The first epoch and the last one run (early stopping included) are always
    printed. Each line fits the terminal's width (metrics that do not fit are
    left out, lr first).
    """

    def __init__(self, every: int | None = None) -> None:
        if every is not None:
            check_positive_int("PrintLogger", every=every)
        self.every = every

    def on_train_begin(self, logs: dict) -> None:
        epochs = self.run.epochs - self.run.initial_epoch
        self.k = self.every or max(1, math.ceil(epochs / 25))
        self.pending = None  # the last epoch's line, if it was not printed

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        head = f"epoch {epoch + 1}/{self.run.epochs}  "
        line = head + _metrics_text(logs, terminal_width() - len(head) - 1, "  ")
        ran = epoch + 1 - self.run.initial_epoch
        if ran == 1 or ran % self.k == 0 or epoch + 1 == self.run.epochs:
            print(line, file=sys.stderr)
            self.pending = None
        else:
            self.pending = line

    def on_train_end(self, logs: dict) -> None:
        if self.pending is not None:  # stopped early between two printed epochs
            print(self.pending, file=sys.stderr)
            self.pending = None


__all__ = [
    "Callback",
    "CosineDecay",
    "EarlyStopping",
    "EpochPosition",
    "ExponentialDecay",
    "History",
    "LearningRateSchedule",
    "LearningRateScheduler",
    "PrintLogger",
    "ProgressBar",
    "StepDecay",
    "TrainingRun",
    "call_order",
]
