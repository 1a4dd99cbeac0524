"""Training state that survives interruptions, inputs that never escape as raw
errors, the habits users bring from other libraries, and sample weights
(issues 11 and 12). Every test here failed on the code before these fixes."""

import os
import warnings

import numpy as np
import pytest
import scipy.sparse

import glassnet as gn
from glassnet.errors import (
    ArgumentTypeError,
    ConfigError,
    DataError,
    ModelFileError,
    ShapeError,
)
from glassnet.train.checkpoints import (
    BackupAndRestore,
    ModelCheckpoint,
    load_checkpoint,
    save_checkpoint,
)


def _iris():
    X, y = gn.datasets.load_iris()
    return X[:60], y[:60]


def _model(seed=0):
    return gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), seed=seed)


class _Crash(gn.Callback):
    """Stops the process's training with KeyboardInterrupt after an epoch."""

    def __init__(self, after: int) -> None:
        self.after = after

    def on_epoch_end(self, epoch, logs):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt


OPTIMIZERS = [
    lambda: gn.SGD(lr=0.05, momentum=0.9),
    lambda: gn.RMSprop(lr=0.01),
    lambda: gn.Adam(lr=0.01),
    lambda: gn.AdamW(lr=0.01, weight_decay=0.05),
]
SCHEDULES = [
    lambda: gn.LearningRateScheduler(lambda epoch, lr: lr * 0.7),  # lr-dependent
    lambda: gn.StepDecay(step_size=2, gamma=0.5),
    lambda: gn.CosineDecay(t_max=6),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
@pytest.mark.parametrize("make_schedule", SCHEDULES)
def test_resume_after_a_crash_is_bitwise_with_every_schedule(
    tmp_path, make_optimizer, make_schedule
):
    X, y = _iris()
    plain = _model()
    plain.fit(
        X,
        y,
        optimizer=make_optimizer(),
        epochs=6,
        batch_size=16,
        callbacks=[make_schedule()],
        verbose=0,
    )
    path = tmp_path / "b.ckpt"
    crashed = _model()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(
            X,
            y,
            optimizer=make_optimizer(),
            epochs=6,
            batch_size=16,
            callbacks=[BackupAndRestore(path), make_schedule(), _Crash(3)],
            verbose=0,
        )
    resumed = _model()
    optimizer = make_optimizer()
    history = resumed.fit(
        X,
        y,
        optimizer=optimizer,
        epochs=6,
        batch_size=16,
        callbacks=[BackupAndRestore(path), make_schedule()],
        verbose=0,
    )
    for p, q in zip(plain.parameters(), resumed.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)
    assert history.history == plain.history.history


MISMATCHES = [  # saved with Adam(lr=0.01); resumed with:
    (lambda: gn.Adam(lr=0.02), "lr=0.01 in the file, 0.02 here"),
    (lambda: gn.Adam(lr=0.01, beta1=0.8), "beta1=0.9 in the file, 0.8 here"),
    (lambda: gn.Adam(lr=0.01, weight_decay=0.1), "weight_decay"),
    (lambda: gn.Adam(lr=0.01, clipnorm=1.0), "clipnorm=None in the file, 1.0 here"),
    (lambda: gn.SGD(lr=0.01, momentum=0.9), "optimizer Adam, not SGD"),
    (lambda: gn.AdamW(lr=0.01), "optimizer Adam, not AdamW"),
]


@pytest.mark.parametrize(("make_optimizer", "message"), MISMATCHES)
def test_resume_with_another_optimizer_raises_before_anything_changes(
    tmp_path, make_optimizer, message
):
    X, y = _iris()
    path = tmp_path / "b.ckpt"
    _model().fit(
        X,
        y,
        optimizer=gn.Adam(lr=0.01),
        epochs=2,
        verbose=0,
        callbacks=[BackupAndRestore(path, delete_on_end=False)],
    )
    model = _model(seed=5)
    before = [p.data.copy() for p in model.parameters()]
    rng_before = model.rng.bit_generator.state
    optimizer = make_optimizer()
    with pytest.raises(ModelFileError, match=message):
        model.fit(
            X,
            y,
            optimizer=optimizer,
            epochs=4,
            verbose=0,
            callbacks=[BackupAndRestore(path)],
        )
    for b, p in zip(before, model.parameters(), strict=True):
        assert np.array_equal(b, p.data)
    assert model.rng.bit_generator.state == rng_before
    assert optimizer.t == 0


def test_a_corrupt_latest_backup_falls_back_to_the_previous_one(tmp_path):
    X, y = _iris()
    path = tmp_path / "b.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(
            X,
            y,
            optimizer=gn.Adam(),
            epochs=6,
            verbose=0,
            callbacks=[BackupAndRestore(path), _Crash(3)],
        )
    assert os.path.exists(f"{path}.prev")
    path.write_bytes(path.read_bytes()[:100])  # a damaged latest backup
    callback = BackupAndRestore(path)
    with pytest.warns(UserWarning, match="resuming from the previous one"):
        _model().fit(
            X, y, optimizer=gn.Adam(), epochs=6, verbose=0, callbacks=[callback]
        )
    assert callback.restored_epoch == 1  # the backup before the last one
    assert not os.path.exists(path) and not os.path.exists(f"{path}.prev")


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    model = _model()
    path = tmp_path / "c.ckpt"
    stale = tmp_path / ".c.ckpt.k1ll3d.tmp"  # what atomic_open leaves when killed
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / ".other.ckpt.abc.tmp"  # another file's: kept
    other.write_bytes(b"x")
    save_checkpoint(path, model, epoch=0)
    assert not stale.exists() and other.exists() and path.exists()


@pytest.mark.parametrize("make", [BackupAndRestore, ModelCheckpoint])
@pytest.mark.parametrize("where", ["", "missing/b.ckpt", "."])
def test_unwritable_paths_are_refused_at_construction(tmp_path, make, where):
    target = "" if where == "" else str(tmp_path / where)
    with pytest.raises(ConfigError, match="path|folder") as info:
        make(target)
    assert repr(target) in str(info.value) or target in str(info.value)


def test_a_failed_write_names_the_path(tmp_path, monkeypatch):
    import glassnet.io.serialization as serialization

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialization, "atomic_write", disk_full)
    path = tmp_path / "full.ckpt"
    with pytest.raises(ModelFileError, match="No space left on device") as info:
        save_checkpoint(path, _model(), epoch=0)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("every", "epochs", "saved"), [(2, 5, [1, 3, 4]), (3, 3, [2])])
def test_backup_every_n_epochs(tmp_path, monkeypatch, every, epochs, saved):
    import glassnet.train.checkpoints as checkpoints

    written = []
    real = checkpoints.save_checkpoint

    def spy(path, model, optimizer=None, **kw):
        written.append(kw["epoch"])
        real(path, model, optimizer, **kw)

    monkeypatch.setattr(checkpoints, "save_checkpoint", spy)
    X, y = _iris()
    _model().fit(
        X,
        y,
        epochs=epochs,
        verbose=0,
        callbacks=[BackupAndRestore(tmp_path / "b", save_every_epochs=every)],
    )
    assert written == saved


def test_model_checkpoint_every_n_steps(tmp_path):
    X, y = _iris()  # 60 rows, batches of 16: 4 steps an epoch
    cb = ModelCheckpoint(tmp_path / "s{step:03d}.safetensors", save_every_steps=3)
    _model().fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s0"))
    assert names == [
        "s003.safetensors",
        "s004.safetensors",
        "s006.safetensors",
        "s008.safetensors",
    ]  # every 3 steps, plus each epoch's end
    gn.load(tmp_path / "s003.safetensors")


def test_checkpoint_epoch_counts_epochs_completed(tmp_path):
    X, y = _iris()
    path = tmp_path / "m.ckpt"
    model = _model()
    model.fit(X, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(path)])
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 3
    history = ckpt.model.fit(
        X, y, optimizer=ckpt.optimizer, epochs=5, initial_epoch=ckpt.epoch, verbose=0
    )
    assert history.epoch == [3, 4]  # no epoch repeated


# -- inputs that escaped -----------------------------------------------------------

X4 = np.ones((6, 4))
Y3 = np.array([0, 1, 2, 0, 1, 2])
BAD_INPUTS = [
    ({"X": np.ones((0, 4)), "y": np.zeros(0, int)}, DataError, "0 rows"),
    ({"y": Y3 + 0j}, DataError, "complex"),
    ({"X": scipy.sparse.csr_matrix(X4)}, ArgumentTypeError, r"sparse.*toarray\(\)"),
    ({"X": np.full((6, 4), 1e300)}, DataError, "overflow float32"),
    ({"seed": "abc"}, ConfigError, "seed"),
    ({"seed": 1.5}, ConfigError, "seed"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"seed": True}, ConfigError, "seed"),
    ({"y": np.array(list("abcabc"))}, DataError, "encode labels as 0..K-1"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_INPUTS)
@pytest.mark.parametrize("errstate", ["default", "raise"])
def test_bad_input_to_fit_is_a_documented_error(change, error, message, errstate):
    model = gn.Sequential(gn.Dense(4, 3), seed=0, dtype=np.float32)
    args = {"X": X4, "y": Y3, **change}
    X, y = args.pop("X"), args.pop("y")
    with np.errstate(all="raise" if errstate == "raise" else "warn"):
        with pytest.raises(error, match=message):
            model.fit(X, y, epochs=1, verbose=0, **args)


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, True])
def test_sequential_seed_is_checked(seed):
    with pytest.raises(ConfigError, match="seed"):
        gn.Sequential(gn.Dense(2, 2), seed=seed)


def test_masked_logits_give_the_finite_loss_and_gradient():
    logits = np.array([[1.0, -np.inf, 2.0], [0.5, 1.0, -np.inf]])
    for target in (np.array([0, 1]), np.array([[1.0, 0, 0], [0, 1.0, 0]])):
        loss = gn.SoftmaxCrossEntropy()
        value = loss(logits, target)
        grad = loss.backward()
        finite = np.where(np.isinf(logits), -1e4, logits)  # the same softmax
        reference = gn.SoftmaxCrossEntropy()
        assert np.isclose(value, reference(finite, target))
        assert np.allclose(grad, reference.backward())
        assert np.isfinite(value) and np.isfinite(grad).all()


def test_mse_forward_refuses_targets_that_would_broadcast():
    pred, y = np.ones((5, 1)), np.arange(5.0)
    with pytest.raises(ShapeError, match=r"\(5, 1\).*\(5,\).*reshape"):
        gn.MeanSquaredError().forward(pred, y)
    model = gn.Sequential(gn.Dense(2, 1), seed=0)
    model.fit(np.ones((5, 2)), y, loss="mse", epochs=1, verbose=0)  # fit reshapes


# -- habits ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [gn.SGD, gn.Adam, gn.RMSprop, gn.AdamW])
def test_optimizer_given_parameters_says_how(cls):
    model = _model()
    for call in (
        lambda: cls(model.parameters(), lr=0.1),
        lambda: cls(model.parameters()),
        lambda: cls(iter(model.parameters())),
    ):
        with pytest.raises(ArgumentTypeError, match="built without parameters"):
            call()


def test_a_single_callback_is_accepted():
    X, y = _iris()
    history = _model().fit(
        X,
        y,
        epochs=3,
        verbose=0,
        callbacks=gn.EarlyStopping(monitor="loss", patience=5),
    )
    assert len(history) == 3


def _dense():
    layer = gn.Dense(3, 4)
    layer.initialize(np.random.default_rng(0), np.float64)
    return layer, np.ones((5, 3)), (5, 4)


def _conv():
    layer = gn.Conv2D(1, 2, 3)
    layer.initialize(np.random.default_rng(0), np.float64)
    return layer, np.ones((2, 1, 5, 5)), (2, 2, 3, 3)


@pytest.mark.parametrize("make", [_dense, _conv])
@pytest.mark.parametrize("method", ["backward", "backward_params"])
def test_a_wrong_dout_names_layer_and_shapes(make, method):
    layer, x, out_shape = make()
    assert layer.forward(x).shape == out_shape
    wrong = np.ones((out_shape[0], *(n + 1 for n in out_shape[1:])))
    with pytest.raises(ShapeError) as info:
        getattr(layer, method)(wrong)
    text = str(info.value)
    assert type(layer).__name__ in text and str(out_shape) in text
    assert str(wrong.shape) in text


class _NoneBackward(gn.Layer):
    def forward(self, x):
        return x * 2.0

    def backward(self, dout):
        dout * 2.0  # forgot the return


@pytest.mark.parametrize("position", [1, 2])
def test_a_backward_returning_none_is_named(position):
    layers = [gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3)]
    layers.insert(position, _NoneBackward())
    model = gn.Sequential(*layers, seed=0)
    X, y = _iris()
    with pytest.raises(ArgumentTypeError) as info:
        model.fit(X, y, epochs=1, verbose=0)
    text = str(info.value)
    assert f"layer {position} (_NoneBackward)" in text
    assert "backward must return dL/dx" in text


def test_messages_print_plain_numbers():
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    with pytest.raises(DataError) as info:
        model.fit(X4, np.array([0, 1, 5, 0, 1, 2], dtype=np.int64), verbose=0)
    assert "np." not in str(info.value) and "from 0 to 5" in str(info.value)
    with pytest.raises(ConfigError) as info:
        model.fit(X4, Y3, class_weight={0: np.float64(-1.0)}, verbose=0)
    assert "np." not in str(info.value)


# -- sample and class weights ----------------------------------------------------------

LOSSES = [
    (gn.MeanSquaredError, (6, 2), lambda r: r.normal(size=(6, 2))),
    (gn.SoftmaxCrossEntropy, (6, 3), lambda r: r.integers(0, 3, 6)),
    (gn.CrossEntropy, (6, 3), lambda r: r.integers(0, 3, 6)),
    (gn.BinaryCrossEntropy, (6, 2), lambda r: r.integers(0, 2, (6, 2)).astype(float)),
    (gn.BinaryCrossEntropyWithLogits, (6, 2), lambda r: r.random((6, 2))),
]


def _pred(cls, shape, rng):
    z = rng.normal(size=shape)
    if cls is gn.CrossEntropy:
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    if cls is gn.BinaryCrossEntropy:
        return 1 / (1 + np.exp(-z))
    return z


@pytest.mark.parametrize(("cls", "shape", "make_target"), LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weighted_losses_are_the_weighted_mean_with_exact_gradients(
    cls, shape, make_target, reduction
):
    rng = np.random.default_rng(0)
    pred, target = _pred(cls, shape, rng), make_target(rng)
    w = np.array([0.5, 2.0, 0.0, 1.0, 3.0, 1.5])
    loss = cls(reduction)
    rows = np.array([cls("sum")(pred[i : i + 1], target[i : i + 1]) for i in range(6)])
    per_row = 1 if cls in (gn.SoftmaxCrossEntropy, gn.CrossEntropy) else shape[1]
    expected = (w @ rows / (w.sum() * per_row)) if reduction == "mean" else w @ rows
    assert np.isclose(loss(pred, target, sample_weight=w), expected)
    assert np.isclose(loss(pred, target, np.ones(6)), loss(pred, target))

    def f(arrays):
        return cls(reduction)(arrays["pred"], target, sample_weight=w)

    def grad(arrays):
        scratch = cls(reduction)
        scratch(arrays["pred"], target, sample_weight=w)
        return {"pred": scratch.backward()}

    report = gn.gradcheck(f, {"pred": pred}, grad=grad)
    assert report.passed, report


def test_class_weight_balanced_is_scikit_learns_formula():
    from sklearn.utils.class_weight import compute_class_weight

    X, y = gn.datasets.load_iris()
    X, y = X[:70], y[:70]  # 50, 20, 0: unbalanced
    balanced = compute_class_weight("balanced", classes=np.unique(y), y=y)
    a, b = _model(), _model()
    a.fit(X, y, epochs=3, verbose=0, class_weight="balanced", seed=1)
    b.fit(X, y, epochs=3, verbose=0, sample_weight=balanced[y], seed=1)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)
    assert a.history.history == b.history.history
    c = _model()  # a dict of the same weights, times sample weights of 1
    c.fit(
        X,
        y,
        epochs=3,
        verbose=0,
        seed=1,
        sample_weight=np.ones(70),
        class_weight=dict(enumerate(balanced)),
    )
    assert np.array_equal(c.parameters()[0].data, a.parameters()[0].data)


def test_unit_weights_train_as_no_weights():
    X, y = _iris()
    a, b = _model(), _model()
    a.fit(X, y, epochs=3, verbose=0, seed=1, validation_split=0.2)
    b.fit(
        X,
        y,
        epochs=3,
        verbose=0,
        seed=1,
        validation_split=0.2,
        sample_weight=np.ones(len(X)),
    )
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert np.allclose(p.data, q.data, rtol=1e-12, atol=1e-14)


def test_evaluate_with_sample_weight():
    X, y = _iris()
    model = _model()
    w = np.linspace(0.0, 2.0, len(X))
    weighted = model.evaluate(X, y, sample_weight=w)["loss"]
    out = model.predict(X)
    expected = gn.SoftmaxCrossEntropy()(out, y, sample_weight=w)
    assert np.isclose(weighted, expected)
    assert not np.isclose(weighted, model.evaluate(X, y)["loss"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sample_weight": np.ones(5)}, ShapeError, r"shape \(60,\)"),
        ({"sample_weight": -np.ones(60)}, DataError, ">= 0"),
        ({"class_weight": "even"}, ConfigError, "balanced"),
    ],
)
def test_bad_weights_are_named(kwargs, error, message):
    X, y = _iris()
    with pytest.raises(error, match=message):
        _model().fit(X, y, verbose=0, **kwargs)


def test_no_warning_from_a_clean_resume(tmp_path):
    X, y = _iris()
    path = tmp_path / "b.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(
            X, y, epochs=4, verbose=0, callbacks=[BackupAndRestore(path), _Crash(2)]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(X, y, epochs=4, verbose=0, callbacks=[BackupAndRestore(path)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": np.int64(0)},
        {"batch_size": np.int64(-1)},
        {"validation_split": np.float64(1.5)},
        {"verbose": np.int64(7)},
        {"seed": np.int64(-3)},
    ],
)
def test_numpy_scalars_print_as_plain_numbers(kwargs):
    X, y = _iris()
    with pytest.raises(ConfigError) as info:
        _model().fit(X, y, **kwargs)
    assert "np." not in str(info.value)


class _OldLoss(gn.MeanSquaredError):
    def forward(self, pred, target):  # written before sample weights existed
        return super().forward(pred, target)


def test_weights_with_a_loss_that_takes_none_are_refused():
    X = np.ones((6, 4))
    model = gn.Sequential(gn.Dense(4, 1), seed=0)
    with pytest.raises(ConfigError, match="forward takes"):
        model.fit(X, np.ones(6), loss=_OldLoss(), sample_weight=np.ones(6), verbose=0)
    with pytest.raises(ConfigError, match="forward takes"):
        model.evaluate(X, np.ones(6), loss=_OldLoss(), sample_weight=np.ones(6))


def test_a_refused_resume_leaves_the_optimizer_as_it_was(tmp_path):
    X, y = _iris()
    path = tmp_path / "b.ckpt"
    _model().fit(
        X,
        y,
        optimizer=gn.SGD(lr=0.1, momentum=0.9),
        epochs=2,
        verbose=0,
        callbacks=[BackupAndRestore(path, delete_on_end=False)],
    )
    model, optimizer = _model(), gn.SGD(lr=0.1)  # no momentum: no velocity state
    optimizer.step(model.parameters())  # bound, one step taken
    with pytest.raises(ModelFileError, match="momentum"):
        model.fit(
            X,
            y,
            optimizer=optimizer,
            epochs=4,
            verbose=0,
            callbacks=[BackupAndRestore(path)],
        )
    assert optimizer.t == 1 and optimizer.params == model.parameters()


def test_dataframes_with_nullable_or_text_columns():
    pd = pytest.importorskip("pandas")
    y = np.array([0, 1, 2, 0])
    model = gn.Sequential(gn.Dense(2, 3), seed=0)
    ints = pd.array([1, 2, 3, 4], dtype="Int64")
    frame = pd.DataFrame({"a": ints, "b": pd.array([0.5, 1, 2, 3], dtype="Float64")})
    model.fit(frame, y, verbose=0)  # nullable numbers are numbers
    text = pd.DataFrame({"a": ints, "colour": ["r", "g", "b", "r"]})
    with pytest.raises(ArgumentTypeError, match=r"numeric columns, got colour \("):
        model.fit(text, y, verbose=0)
    missing = pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"), "b": ints})
    with pytest.raises(DataError, match="finite"):
        model.fit(missing, y, verbose=0)
