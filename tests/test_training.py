"""Training sanity: initial loss ln K, overfitting a few samples, validation,
early stopping, divergence, call order, and exact reproducibility."""

import hashlib
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import glassnet as gn


def small_classifier(seed=0, dtype=np.float64, hidden=16):
    return gn.Sequential(
        gn.Dense(4, hidden), gn.Tanh(), gn.Dense(hidden, 3), seed=seed, dtype=dtype
    )


def blobs(n=60, seed=0):
    return gn.datasets.make_blobs(n, centers=3, n_features=4, std=2.0, seed=seed)


# -- sanity before long runs ---------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10])
def test_initial_loss_with_zero_logits_is_ln_k(k, rng):
    model = gn.Sequential(gn.Dense(4, 8), gn.Tanh(), gn.Dense(8, k), seed=0)
    model[2].weight.data = np.zeros((8, k))
    X, y = rng.normal(size=(50, 4)), rng.integers(0, k, 50)
    logs = model.evaluate(X, y, loss="softmax_cross_entropy")
    assert logs["loss"] == pytest.approx(math.log(k), rel=1e-6)


def test_small_random_init_loss_is_near_ln_k(rng):
    model = small_classifier()
    X, y = rng.normal(size=(200, 4)), rng.integers(0, 3, 200)
    assert model.evaluate(X, y)["loss"] == pytest.approx(math.log(3), rel=0.3)


def test_overfits_twenty_samples(rng):
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)  # random labels
    model = small_classifier(hidden=32)
    history = model.fit(
        X, y, optimizer=gn.Adam(lr=0.03), epochs=300, batch_size=None, verbose=0
    )
    assert history["loss"][-1] < 0.01
    assert history["accuracy"][-1] == 1.0
    assert model.evaluate(X, y)["loss"] < 0.01
    np.testing.assert_array_equal(model.predict_classes(X), y)


def test_history_records_every_epoch(rng):
    X, y = blobs()
    history = small_classifier().fit(
        X, y, optimizer=gn.SGD(lr=0.1), epochs=5, verbose=0
    )
    assert history.epoch == [0, 1, 2, 3, 4] and len(history) == 5
    assert set(history.history) == {"loss", "accuracy", "lr"}
    assert history["lr"] == [0.1] * 5
    assert history["loss"][-1] < history["loss"][0]


def test_full_batch_epoch_loss_is_the_loss_before_the_update(rng):
    X, y = blobs()
    model = small_classifier()
    before = model.evaluate(X, y)["loss"]
    history = model.fit(X, y, epochs=1, batch_size=None, verbose=0)
    assert history["loss"][0] == pytest.approx(before, rel=1e-12)


# -- validation ----------------------------------------------------------------


def test_validation_split_gives_val_metrics(rng):
    X, y = blobs(n=50)
    model = small_classifier()
    history = model.fit(X, y, epochs=4, validation_split=0.2, verbose=0)
    for key in ["loss", "accuracy", "val_loss", "val_accuracy"]:
        assert len(history[key]) == 4, key
        assert all(math.isfinite(v) for v in history[key])


def test_validation_split_holds_out_rows_stratified():
    X, y = blobs(n=60)
    X_train, X_val, y_train, y_val = gn.datasets.train_test_split(X, y, 0.2, seed=0)
    assert len(X_val) == 12 and len(X_train) == 48
    assert np.bincount(y_val).tolist() == [4, 4, 4]
    rows = {tuple(r) for r in X_train} | {tuple(r) for r in X_val}
    assert len(rows) == 60  # a partition: every row once


def test_validation_data_matches_evaluate(rng):
    X, y = blobs(n=40)
    X_val, y_val = blobs(n=20, seed=1)
    model = small_classifier()
    history = model.fit(X, y, epochs=3, validation_data=(X_val, y_val), verbose=0)
    logs = model.evaluate(X_val, y_val)
    assert history["val_loss"][-1] == pytest.approx(logs["loss"], rel=1e-12)
    assert history["val_accuracy"][-1] == logs["accuracy"]


# -- callbacks -----------------------------------------------------------------


def overfitting_setup(rng):
    """Random labels: training loss falls, validation loss soon rises."""
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    X_val, y_val = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    return X, y, X_val, y_val


def test_early_stopping_stops_and_restores_best_weights(rng):
    X, y, X_val, y_val = overfitting_setup(rng)
    model = small_classifier(hidden=32)
    stop = gn.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    history = model.fit(
        X,
        y,
        optimizer=gn.Adam(lr=0.05),
        epochs=200,
        batch_size=None,
        verbose=0,
        validation_data=(X_val, y_val),
        callbacks=[stop],
    )
    assert stop.stopped_epoch is not None and len(history) < 200
    assert len(history) == stop.best_epoch + 1 + 3  # patience epochs after the best
    best = min(history["val_loss"])
    assert history["val_loss"].index(best) == stop.best_epoch
    assert history["val_loss"][-1] > best
    # the model ends with the best epoch's weights
    assert model.evaluate(X_val, y_val)["loss"] == pytest.approx(best, rel=1e-12)


def test_early_stopping_without_restore_keeps_last_weights(rng):
    X, y, X_val, y_val = overfitting_setup(rng)
    model = small_classifier(hidden=32)
    stop = gn.EarlyStopping(monitor="val_loss", patience=3)
    history = model.fit(
        X,
        y,
        optimizer=gn.Adam(lr=0.05),
        epochs=200,
        batch_size=None,
        verbose=0,
        validation_data=(X_val, y_val),
        callbacks=[stop],
    )
    last = history["val_loss"][-1]
    assert model.evaluate(X_val, y_val)["loss"] == pytest.approx(last, rel=1e-12)


def test_early_stopping_on_a_missing_metric_says_what_is_logged(rng):
    X, y = blobs()
    with pytest.raises(gn.ConfigError, match=r"monitor='val_loss' is not logged; .*"):
        small_classifier().fit(
            X, y, epochs=2, verbose=0, callbacks=[gn.EarlyStopping()]
        )


class Recorder(gn.Callback):
    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(f"begin {epoch}")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"end {epoch}")
        if epoch == self.stop_after:
            self.stop_training = True

    def on_train_end(self, logs):
        self.calls.append("train_end")


def test_callback_hooks_in_order_and_stop_training():
    X, y = blobs()
    recorder = Recorder(stop_after=1)
    model = small_classifier()
    history = model.fit(X, y, epochs=5, verbose=0, callbacks=[recorder])
    assert recorder.calls == [
        "train_begin",
        "begin 0",
        "end 0",
        "begin 1",
        "end 1",
        "train_end",
    ]
    assert len(history) == 2 and recorder.model is model


def test_verbose_2_prints_one_line_per_epoch(capsys):
    X, y = blobs()
    small_classifier().fit(X, y, epochs=3, verbose=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[0].startswith("epoch 1/3") and "loss=" in err[0]


def test_silent_fit_prints_nothing(capsys):
    X, y = blobs()
    small_classifier().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


# -- divergence ----------------------------------------------------------------


def _regression(rng):
    X = rng.normal(size=(20, 3))
    return X, X @ np.array([[1.0], [2.0], [3.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_diverging_run_raises_and_leaves_finite_weights(dtype, rng):
    X, y = _regression(rng)
    model = gn.Sequential(
        gn.Dense(3, 8), gn.Tanh(), gn.Dense(8, 1), seed=0, dtype=dtype
    )
    with (
        np.errstate(over="ignore", invalid="ignore"),  # overflow on the way is expected
        pytest.raises(
            gn.TrainingDivergedError, match=r"at epoch \d+, step \d+"
        ) as info,
    ):
        model.fit(
            X,
            y,
            loss="mse",
            optimizer=gn.SGD(lr=1e3),
            epochs=50,
            batch_size=5,
            verbose=0,
        )
    assert isinstance(info.value, RuntimeError)
    assert "lower the learning rate" in str(info.value)
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    assert np.isfinite(model.predict(X)).all()


def test_overflow_in_the_very_last_update_is_caught():
    """The loss before the update is finite, the update itself overflows: fit must
    not return inf weights just because no further epoch looks at them."""
    X = np.array([[1.0], [2.0]])
    y = np.array([[1e150], [2e150]])  # squared error ~1e300: finite
    model = gn.Sequential(gn.Dense(1, 1), seed=0, dtype=np.float64)
    start = [p.data.copy() for p in model.parameters()]
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(gn.TrainingDivergedError, match="during epoch 1"),
    ):
        model.fit(
            X,
            y,
            loss="mse",
            optimizer=gn.SGD(lr=1e160),
            epochs=1,
            batch_size=None,
            verbose=0,
        )
    for p, w in zip(model.parameters(), start, strict=True):
        np.testing.assert_array_equal(p.data, w)  # restored to the epoch's start


# -- call order and repeated backward ------------------------------------------


def test_backward_twice_on_one_forward_gives_the_same_gradients(rng):
    model = small_classifier()
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, 7)
    loss = gn.SoftmaxCrossEntropy()
    loss(model.forward(X), y)
    dout = loss.backward()
    dx1 = model.backward(dout).copy()
    grads1 = [p.grad.copy() for p in model.parameters()]
    dx2 = model.backward(dout)
    np.testing.assert_array_equal(dx1, dx2)
    for p, g in zip(model.parameters(), grads1, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_model_backward_before_forward_raises_call_order_error():
    model = small_classifier()
    with pytest.raises(
        gn.CallOrderError, match=r"Dense\.backward\(\) was called before forward"
    ):
        model.backward(np.ones((2, 3)))


def test_optimizer_state_carries_over_between_fit_calls(rng):
    X, y = blobs()
    optimizer = gn.Adam(lr=0.01)
    model = small_classifier()
    model.fit(X, y, optimizer=optimizer, epochs=2, batch_size=None, verbose=0)
    model.fit(X, y, optimizer=optimizer, epochs=3, batch_size=None, verbose=0)
    assert optimizer.t == 5


# -- determinism ---------------------------------------------------------------

TRAIN_SCRIPT = """
import hashlib
import numpy as np
import glassnet as gn

X, y = gn.datasets.make_blobs(60, centers=3, n_features=4, std=2.0, seed=0)
model = gn.Sequential(gn.Dense(4, 8), gn.Tanh(), gn.Dense(8, 3), seed=7)
model.fit(X, y, optimizer=gn.Adam(lr=0.01), epochs=5, batch_size=8,
          validation_split=0.2, verbose=0)
digest = hashlib.sha256()
for p in model.parameters():
    digest.update(p.data.tobytes())
print(digest.hexdigest())
"""


def _digest(model) -> str:
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.data.tobytes())
    return digest.hexdigest()


def _train_like_the_script():
    namespace = {}
    exec(TRAIN_SCRIPT.replace("print(digest.hexdigest())", ""), namespace)
    return namespace["model"]


def test_same_seed_twice_gives_bitwise_equal_parameters():
    a, b = _train_like_the_script(), _train_like_the_script()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.data.tobytes() == q.data.tobytes()
    assert a.history["val_loss"] == b.history["val_loss"]


def test_same_seed_in_a_fresh_process_gives_the_same_bytes():
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAIN_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == _digest(_train_like_the_script())


def test_different_seeds_give_different_parameters():
    a = small_classifier(seed=1)
    b = small_classifier(seed=2)
    assert _digest(a) != _digest(b)


def test_fit_seed_reseeds_only_the_shuffling():
    X, y = blobs()
    runs = []
    for fit_seed in [3, 3, 4]:
        model = small_classifier(seed=0)
        model.fit(X, y, epochs=2, batch_size=8, seed=fit_seed, verbose=0)
        runs.append(_digest(model))
    assert runs[0] == runs[1] != runs[2]


def test_global_numpy_random_state_is_untouched(rng):
    before = np.random.get_state()  # the user's global state: glassnet must not use it
    gn.Sequential(gn.Dense(4, 6), gn.ReLU(), gn.Dense(6, 3))  # seed=None: fresh entropy
    gn.Dense(3, 2)
    model = small_classifier(seed=None)
    X, y = blobs()
    model.fit(X, y, epochs=2, validation_split=0.2, verbose=0)
    model.predict(X)
    model.predict_proba(X)
    model.evaluate(X, y)
    gn.gradcheck(model, X[:3], y[:3], loss="softmax_cross_entropy")
    gn.datasets.make_spirals(30, seed=None)
    gn.datasets.make_xor(8, noise=0.1)
    gn.datasets.train_test_split(X, y, 0.3)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
