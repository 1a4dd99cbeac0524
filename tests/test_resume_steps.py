"""BackupAndRestore(save_every_steps=k): a backup every k steps that resumes
exactly in the middle of an epoch (issue 11's leftover).

A run is killed at some step (an exception from a callback's batch or epoch hook,
or SIGKILL of a process), the same fit runs again with the same callbacks, and the
result is compared with a run that was never interrupted: weights, optimizer
state, history and the state of the callbacks that keep one, all bitwise."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import ConfigError, ModelFileError
from glassnet.train.checkpoints import (
    BackupAndRestore,
    ModelCheckpoint,
    load_checkpoint,
)

EPOCHS, BATCH = 3, 16  # 48 training rows (60 less 20 %): 3 steps an epoch


def _data():
    X, y = gn.datasets.load_iris()
    return X[::2][:60].astype(np.float64), y[::2][:60]


def _model():
    layers = [gn.Dense(4, 8), gn.Tanh(), gn.Dropout(0.3), gn.Dense(8, 3)]
    return gn.Sequential(*layers, seed=3)  # Dropout draws from model.rng mid-epoch


class _Kill(gn.Callback):
    """Raises KeyboardInterrupt in hook `where` at global step `step` (1-based:
    on_batch_begin before that step runs, on_batch_end after it) or at the end
    of epoch `step` (1-based) for where="epoch_end"."""

    def __init__(self, where: str, step: int) -> None:
        self.where, self.step, self.steps = where, step, 0

    def on_batch_begin(self, batch, logs):
        if self.where == "batch_begin" and self.steps + 1 == self.step:
            raise KeyboardInterrupt

    def on_batch_end(self, batch, logs):
        self.steps += 1
        if self.where == "batch_end" and self.steps == self.step:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs):
        if self.where == "epoch_end" and epoch + 1 == self.step:
            raise KeyboardInterrupt


def _fit(model, callbacks, *, seed=None, batch_size=BATCH, metrics="auto"):
    stopper = gn.EarlyStopping("val_loss", patience=50, restore_best_weights=True)
    schedule = gn.LearningRateScheduler(lambda epoch, lr: lr * 0.8)  # lr-dependent
    keeper = ModelCheckpoint(_fit.tmp / "m{step:02d}.safetensors", save_every_steps=5)
    history = model.fit(
        *_data(),
        optimizer=gn.Adam(lr=0.02),
        epochs=EPOCHS,
        batch_size=batch_size,
        validation_split=0.2,
        metrics=metrics,
        verbose=0,
        seed=seed,
        callbacks=[*callbacks[:1], stopper, schedule, keeper, *callbacks[1:]],
    )
    return history, stopper, keeper


def _same_run(a, b) -> None:
    (model_a, history_a, stop_a, keep_a), (model_b, history_b, stop_b, keep_b) = a, b
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert np.array_equal(p.data, q.data), p.name
    assert history_a.history == history_b.history
    assert history_a.epoch == history_b.epoch
    assert model_a.rng.bit_generator.state == model_b.rng.bit_generator.state
    assert (stop_a.best, stop_a.best_epoch, stop_a.wait) == (
        stop_b.best,
        stop_b.best_epoch,
        stop_b.wait,
    )
    for u, v in zip(stop_a.best_weights, stop_b.best_weights, strict=True):
        assert np.array_equal(u, v)
    assert (keep_a._steps, keep_a.best, keep_a.last_path) == (
        keep_b._steps,
        keep_b.best,
        keep_b.last_path,
    )


def _plain(tmp_path, seed):
    _fit.tmp = tmp_path / "plain"
    _fit.tmp.mkdir(exist_ok=True)
    model = _model()
    history, stopper, keeper = _fit(model, [], seed=seed)
    return model, history, stopper, keeper


KILLS = [  # (hook, step), with 3 steps an epoch and 9 in all
    pytest.param("batch_begin", 2, id="inside-epoch1"),
    pytest.param("batch_begin", 5, id="inside-epoch2"),
    pytest.param("batch_end", 4, id="after-step4"),
    pytest.param("batch_end", 6, id="last-step-of-epoch2"),
    pytest.param("batch_begin", 7, id="first-step-of-epoch3"),
    pytest.param("epoch_end", 2, id="at-epoch-boundary"),
    pytest.param("batch_end", 9, id="after-the-last-step"),
]


@pytest.mark.parametrize("every", [1, 3, 4])
@pytest.mark.parametrize("where, step", KILLS)
@pytest.mark.parametrize("seed", [None, 5], ids=["model-rng", "fit-seed"])
def test_a_run_killed_at_any_step_resumes_bitwise(tmp_path, every, where, step, seed):
    plain = _plain(tmp_path, seed)
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path / "crashed"
    _fit.tmp.mkdir()
    backup = BackupAndRestore(path, save_every_steps=every)
    with pytest.raises(KeyboardInterrupt):  # the kill runs after the backup
        _fit(_model(), [backup, _Kill(where, step)], seed=seed)
    steps_done = step - 1 if where == "batch_begin" else step
    if where == "epoch_end":
        steps_done = 3 * step
    saved_steps = steps_done - steps_done % every
    if saved_steps == 0:  # killed before the first backup: fit starts afresh
        assert not path.exists()
    else:
        saved = load_checkpoint(path)
        assert saved.position.steps == saved_steps
        assert saved.optimizer.t == saved_steps

    model = _model()
    _fit.tmp = tmp_path / "plain"  # the same file names as the plain run
    backup = BackupAndRestore(path, save_every_steps=every)
    history, stopper, keeper = _fit(model, [backup], seed=seed)
    if saved_steps:
        assert backup.restored_position.steps == saved_steps
    _same_run(plain, (model, history, stopper, keeper))
    assert not path.exists()  # deleted after a normal end


def test_a_step_backup_holds_the_epochs_order_and_running_sums(tmp_path):
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path
    backup = BackupAndRestore(path, save_every_steps=2)
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), [backup, _Kill("batch_begin", 8)])
    saved = load_checkpoint(path)
    position = saved.position
    assert (position.epoch, position.batch, position.steps) == (1, 3, 6)
    assert sorted(position.order) == list(range(48))  # 80 % of 60 rows, shuffled
    assert position.total > 0 and set(position.sums) == {"accuracy"}
    assert position.rows == 48 and position.batch_size == 16
    assert saved.epoch == 1  # epochs completed: the one in progress is not


def test_sigkill_in_the_middle_of_an_epoch_resumes_bitwise(tmp_path):
    script = """
import os, signal, sys
import numpy as np
import glassnet as gn
backup, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
X, y = gn.datasets.make_spirals(120, classes=3, seed=4)
model = gn.Sequential(gn.Dense(2, 16), gn.ReLU(), gn.Dropout(0.2), gn.Dense(16, 3),
                      seed=7)
class Kill(gn.Callback):
    steps = 0
    def on_batch_end(self, batch, logs):
        self.steps += 1
        if self.steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind
model.fit(X, y, optimizer=gn.Adam(lr=0.01), epochs=4, batch_size=16, verbose=0,
          callbacks=[gn.BackupAndRestore(backup, save_every_steps=3), Kill()])
np.save(out, np.concatenate([p.data.ravel() for p in model.parameters()]))
"""

    def run(kill_at, out):
        args = [str(tmp_path / "b.ckpt"), str(tmp_path / out), str(kill_at)]
        return subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True
        )

    plain = run(0, "plain.npy")
    assert plain.returncode == 0, plain.stderr
    killed = run(13, "unused.npy")  # 8 steps an epoch: inside the second epoch
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "b.ckpt").position.batch == 4  # step 12
    resumed = run(0, "resumed.npy")
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "plain.npy"), np.load(tmp_path / "resumed.npy")
    assert np.array_equal(a, b)


def test_a_corrupt_step_backup_falls_back_to_the_previous_one(tmp_path):
    plain = _plain(tmp_path, None)
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path / "crashed"
    _fit.tmp.mkdir()
    with pytest.raises(KeyboardInterrupt):
        _fit(
            _model(),
            [BackupAndRestore(path, save_every_steps=1), _Kill("batch_end", 6)],
        )
    path.write_bytes(path.read_bytes()[:200])  # the step-6 backup is damaged
    model = _model()
    _fit.tmp = tmp_path / "plain"
    backup = BackupAndRestore(path, save_every_steps=1)
    with pytest.warns(UserWarning, match="resuming from the previous one"):
        history, stopper, keeper = _fit(model, [backup])
    assert backup.restored_position.steps == 5
    _same_run(plain, (model, history, stopper, keeper))


def _crashed_backup(tmp_path):
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path
    with pytest.raises(KeyboardInterrupt):
        _fit(
            _model(),
            [BackupAndRestore(path, save_every_steps=1), _Kill("batch_end", 6)],
        )
    return path


MISMATCHES = [  # what the resuming fit changes -> what the error says
    (dict(batch_size=8), "in batches of 16, this fit has 48 in batches of 8"),
    (dict(metrics=None), r"metrics \['accuracy'\], this fit logs \[\]"),
]


@pytest.mark.parametrize(("change", "message"), MISMATCHES)
def test_a_step_backup_refuses_another_run_before_any_change(tmp_path, change, message):
    path = _crashed_backup(tmp_path)
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ModelFileError, match=message):
        _fit(model, [BackupAndRestore(path, save_every_steps=1)], **change)
    for p, q in zip(model.parameters(), before, strict=True):
        assert np.array_equal(p.data, q)


def test_a_backup_refuses_other_callbacks_with_state_before_any_change(tmp_path):
    path = _crashed_backup(tmp_path)
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ModelFileError, match="callbacks that keep state"):
        model.fit(
            *_data(),
            optimizer=gn.Adam(lr=0.02),
            epochs=EPOCHS,
            batch_size=BATCH,
            validation_split=0.2,
            verbose=0,
            callbacks=[BackupAndRestore(path, save_every_steps=1)],
        )
    for p, q in zip(model.parameters(), before, strict=True):
        assert np.array_equal(p.data, q)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(save_every_steps=0), "save_every_steps=0"),
        (dict(save_every_steps=-2), "save_every_steps=-2"),
        (dict(save_every_steps=2.5), "save_every_steps=2.5"),
        (dict(save_every_steps=True), "save_every_steps=True"),
        (dict(save_every_steps="3"), "save_every_steps='3'"),
        (dict(save_every_epochs=0), "save_every_epochs=0"),
        (dict(save_every_epochs=2, save_every_steps=3), "not both"),
        (dict(save_every_epochs=1, save_every_steps=3), "not both"),
    ],
)
def test_bad_backup_frequencies_are_config_errors_naming_the_argument(
    tmp_path, kwargs, match
):
    with pytest.raises(ConfigError, match=match):
        BackupAndRestore(tmp_path / "b.ckpt", **kwargs)


def test_backup_and_restore_runs_after_the_callbacks_whose_state_it_saves():
    backup, stopper, plain = (
        BackupAndRestore("b.ckpt"),
        gn.EarlyStopping(),
        _Kill("", 0),
    )
    order = gn.train.callbacks.call_order([backup, plain, stopper])
    assert order == [plain, stopper, backup]
    order = gn.train.callbacks.call_order([stopper, backup, plain])
    assert order == [stopper, backup, plain]  # nothing to move


def test_model_checkpoint_step_files_hold_weights_only(tmp_path):
    cb = ModelCheckpoint(tmp_path / "s{step}.safetensors", save_every_steps=3)
    _fit.tmp = tmp_path
    gn.Sequential(gn.Dense(4, 3), seed=0).fit(
        *_data(), epochs=1, batch_size=16, verbose=0, callbacks=[cb]
    )
    gn.load(tmp_path / "s3.safetensors")  # a model to predict with
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "s3.safetensors")


def test_an_epoch_backup_also_keeps_the_callbacks_state(tmp_path):
    plain = _plain(tmp_path, None)
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path / "crashed"
    _fit.tmp.mkdir()
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), [BackupAndRestore(path), _Kill("batch_begin", 7)])
    assert load_checkpoint(path).position is None  # an epoch backup
    model = _model()
    _fit.tmp = tmp_path / "plain"
    history, stopper, keeper = _fit(model, [BackupAndRestore(path)])
    _same_run(plain, (model, history, stopper, keeper))


def test_resume_needs_no_batch_hooks_without_save_every_steps():
    from glassnet.train.loop import _BatchHooks

    assert not _BatchHooks([BackupAndRestore("b.ckpt")]).active
    assert _BatchHooks([BackupAndRestore("b.ckpt", save_every_steps=2)]).active
    assert os.path.basename(BackupAndRestore("b.ckpt").previous_path) == "b.ckpt.prev"


@pytest.mark.parametrize("every_steps", [None, 2])
def test_the_callbacks_state_comes_back_as_it_was_saved(tmp_path, every_steps):
    path = tmp_path / "b.ckpt"
    _fit.tmp = tmp_path
    kwargs = dict(delete_on_end=False, save_every_steps=every_steps)
    _, stopper, keeper = _fit(_model(), [BackupAndRestore(path, **kwargs)])
    # the same fit again: everything is restored and no step is left to run
    _, stopper2, keeper2 = _fit(_model(), [BackupAndRestore(path, **kwargs)])
    assert stopper.best_epoch is not None and stopper.best < 5.0
    for name in ("best", "best_epoch", "wait", "stopped_epoch"):
        assert getattr(stopper2, name) == getattr(stopper, name), name
    for u, v in zip(stopper.best_weights, stopper2.best_weights, strict=True):
        assert np.array_equal(u, v) and u.dtype == v.dtype
    assert (keeper2._steps, keeper2._epoch, keeper2.best, keeper2.last_path) == (
        keeper._steps,
        keeper._epoch,
        keeper.best,
        keeper.last_path,
    )


def test_a_backup_without_callbacks_state_resumes_leaving_theirs_as_they_are(
    tmp_path, monkeypatch
):
    from glassnet.train import checkpoints

    write = checkpoints.save_checkpoint

    def older_writer(*args, callbacks=None, **kwargs):  # before callbacks' state
        write(*args, **kwargs)

    path = tmp_path / "old.ckpt"
    _fit.tmp = tmp_path
    monkeypatch.setattr(checkpoints, "save_checkpoint", older_writer)
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), [BackupAndRestore(path), _Kill("epoch_end", 2)])
    monkeypatch.undo()
    backup = BackupAndRestore(path)
    _, stopper, _ = _fit(_model(), [backup])  # EarlyStopping is not refused
    assert backup.restored_epoch == 1  # the kill came after epoch 2's backup
    assert stopper.best_epoch is not None


BAD_STATES = [  # what a damaged backup holds for EarlyStopping -> the error names it
    ({"best_weights": np.zeros(3)}, "best_weights of shape"),
    ({"wait": None, "best": "x"}, "could not convert"),
]


@pytest.mark.parametrize(("change", "message"), BAD_STATES)
def test_a_callback_state_that_cannot_be_taken_is_refused_before_any_change(
    tmp_path, monkeypatch, change, message
):
    path = _crashed_backup(tmp_path)
    taken = gn.EarlyStopping.set_state

    def damaged(self, state):  # as if the file held this state
        taken(self, {**state, **change})

    monkeypatch.setattr(gn.EarlyStopping, "set_state", damaged)
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    # the latest backup, then the previous one: both hold the damaged state
    with (
        pytest.warns(UserWarning, match="resuming from the previous one"),
        pytest.raises(ModelFileError, match=f"for EarlyStopping that .*{message}"),
    ):
        _fit(model, [BackupAndRestore(path, save_every_steps=1)])
    for p, q in zip(model.parameters(), before, strict=True):
        assert np.array_equal(p.data, q)
