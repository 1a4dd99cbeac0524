"""What fit keeps between calls on one model (train/_known_models.py) is never
stale: a change to the model, the loss, the optimizer or the data between two
fit calls is honoured exactly as by a fit that prepared everything anew."""

import gc

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import ConfigError, DataError
from glassnet.nn.parameter import Parameter
from glassnet.train import _known_models


def data(n=40):
    return gn.datasets.make_blobs(n, 3, 3, seed=0)


def model_of(*layers):
    return gn.Sequential(*layers, seed=0)


def classifier():
    return model_of(gn.Dense(3, 5), gn.Tanh(), gn.Dense(5, 3))


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def fit_twice(model, between, *, cache: bool, optimizer=None, **kw):
    """fit, apply between(model, optimizer), fit again; with cache=False the
    known models are forgotten before each fit (everything prepared anew)."""
    X, y = data()
    optimizer = optimizer or gn.Adam(lr=0.01)
    kw = {"loss": "softmax_cross_entropy", "batch_size": 8, "verbose": 0, **kw}
    for i in range(2):
        if not cache:
            _known_models._KNOWN.clear()
        if i == 1:
            X, y = between(model, optimizer, X, y)
        model.fit(X, y, optimizer=optimizer, epochs=2, **kw)
    return model


def zero_dense(model, d_in, d_out):
    """A Dense layer, initialized in the model's dtype, with weights 0."""
    layer = gn.Dense(d_in, d_out)
    layer.initialize(np.random.default_rng(0), model.dtype)
    layer.weight.data[...] = 0.0
    return layer


def replace_a_layer(model, opt, X, y):
    model.layers[2] = zero_dense(model, 5, 3)
    return X, y


def append_a_layer(model, opt, X, y):
    model.layers.append(zero_dense(model, 3, 3))
    return X, y


def replace_a_parameter(model, opt, X, y):
    layer = model.layers[0]
    layer.weight = Parameter(np.zeros_like(layer.weight.data), "weight")
    return X, y


def change_the_lr(model, opt, X, y):
    opt.lr = 0.2
    return X, y


def change_l2(model, opt, X, y):
    model.layers[0].l2 = 0.5
    return X, y


def new_data(model, opt, X, y):
    return X[::-1] * 2.0, y[::-1]


def data_changed_in_place(model, opt, X, y):
    X *= 3.0
    y[:] = y[::-1].copy()
    return X, y


@pytest.mark.parametrize(
    "between",
    [
        replace_a_layer,
        append_a_layer,
        replace_a_parameter,
        change_the_lr,
        change_l2,
        new_data,
        data_changed_in_place,
    ],
)
def test_a_change_between_two_fits_is_honoured_as_by_a_fresh_fit(between):
    kept = fit_twice(classifier(), between, cache=True)
    fresh = fit_twice(classifier(), between, cache=False)
    for a, b in zip(weights(kept), weights(fresh), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_replaced_layer_is_trained_not_the_one_it_replaced():
    model = classifier()
    old = model.layers[2]
    fit_twice(model, replace_a_layer, cache=True)
    assert np.abs(model.layers[2].weight.data).sum() > 0  # was zeros: trained
    assert model.layers[2] is not old


def test_a_change_inside_a_nested_model_is_seen():
    X, y = data()
    inner = gn.Sequential(gn.Dense(5, 5), gn.Tanh())
    model = model_of(gn.Dense(3, 5), inner, gn.Dense(5, 3))
    kw = {"loss": "softmax_cross_entropy", "verbose": 0, "optimizer": gn.SGD(lr=0.1)}
    model.fit(X, y, **kw)
    inner.layers.append(zero_dense(model, 5, 5))
    model.fit(X, y, **kw)
    assert np.abs(inner.layers[-1].weight.data).sum() > 0


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_changing_the_loss_between_fits_is_honoured(loss):
    X, y = data()
    kw = {"batch_size": 8, "verbose": 0, "epochs": 2}
    kept, fresh = classifier(), classifier()
    kept.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.SGD(lr=0.1), **kw)
    fresh.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.SGD(lr=0.1), **kw)
    _known_models._KNOWN.pop(id(fresh), None)  # fresh: prepared anew
    target = y if loss == "softmax_cross_entropy" else np.eye(3)[y]
    h1 = kept.fit(X, target, loss=loss, optimizer=gn.SGD(lr=0.1), **kw)
    h2 = fresh.fit(X, target, loss=loss, optimizer=gn.SGD(lr=0.1), **kw)
    assert h1.history["loss"] == h2.history["loss"]


def share_a_layer(model):
    model.layers.append(model.layers[1])


def rename_a_parameter(model):
    model.layers[0].bias.name = "weight"


@pytest.mark.parametrize(
    "change, message",
    [(share_a_layer, "same object"), (rename_a_parameter, "two parameters")],
)
def test_a_tree_made_invalid_between_fits_is_still_refused(change, message):
    X, y = data()
    model = classifier()
    model.fit(X, y, verbose=0)
    change(model)
    with pytest.raises(ConfigError, match=message):
        model.fit(X, y, verbose=0)


@pytest.mark.parametrize(
    "spoil, error",
    [
        (lambda X, y: X.__setitem__((0, 0), np.nan), "finite"),
        (lambda X, y: y.__setitem__(0, 7), r"\[0, 3\)"),
    ],
)
def test_data_spoiled_in_place_between_fits_is_refused(spoil, error):
    X, y = data()
    X = X.astype(np.float32)
    model = classifier()
    model.fit(X, y, verbose=0)
    spoil(X, y)
    with pytest.raises(DataError, match=error):
        model.fit(X, y, verbose=0)


class Flagged(gn.Layer):
    """A custom layer with its own set_training, and a child in an attribute."""

    def __init__(self):
        self.inner = gn.Dropout(0.5)
        self.switched = []

    def forward(self, x):
        return self.inner.forward(x)

    def backward(self, dout):
        return self.inner.backward(dout)

    def set_training(self, training):
        self.switched.append(training)
        self.training = training
        self.inner.set_training(training)


class Holder(gn.Layer):
    """A custom layer with the default set_training and children in a list."""

    def __init__(self):
        self.blocks = [gn.Dense(5, 5), gn.Dropout(0.1)]

    def forward(self, x):
        for block in self.blocks:
            x = block.forward(x)
        return x

    def backward(self, dout):
        for block in reversed(self.blocks):
            dout = block.backward(dout)
        return dout


class SeesTraining(gn.Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, epoch, logs):
        self.seen.append(modes(self.model))


def modes(model):
    every = [model, *(layer for _, layer in model.named_layers())]
    return [(vars(v).get("training"), vars(v).get("_training")) for v in every]


def test_the_training_switch_does_what_set_training_does():
    X, y = data()
    model = model_of(
        gn.Dense(3, 5),
        gn.Sequential(gn.Dense(5, 5), gn.Dropout(0.2)),
        Flagged(),
        Holder(),
        gn.Dense(5, 3),
    )
    reference = model_of(
        gn.Dense(3, 5),
        gn.Sequential(gn.Dense(5, 5), gn.Dropout(0.2)),
        Flagged(),
        Holder(),
        gn.Dense(5, 3),
    )
    seen = SeesTraining()
    for _ in range(2):  # the second fit uses the kept switch
        model.fit(X, y, verbose=0, callbacks=[seen])
    reference.set_training(True)
    assert seen.seen[-1] == modes(reference)
    reference.set_training(False)
    assert modes(model) == modes(reference)
    assert model.layers[2].switched == [True, False, True, False]


def test_nothing_is_kept_for_a_model_once_it_is_gone():
    X, y = data()
    model = classifier()
    model.fit(X, y, verbose=0)
    key = id(model)
    assert key in _known_models._KNOWN
    del model
    gc.collect()
    assert key not in _known_models._KNOWN


def test_fit_in_a_loop_equals_one_fit_prepared_anew_each_time():
    X, y = data()
    kw = {"loss": "softmax_cross_entropy", "batch_size": 8, "verbose": 0}
    kept, fresh = classifier(), classifier()
    kept_opt, fresh_opt = gn.Adam(lr=0.01), gn.Adam(lr=0.01)
    for _ in range(5):
        kept.fit(X, y, optimizer=kept_opt, epochs=1, **kw)
        _known_models._KNOWN.pop(id(fresh), None)  # fresh: prepared anew
        fresh.fit(X, y, optimizer=fresh_opt, epochs=1, **kw)
    assert id(kept) in _known_models._KNOWN
    for a, b in zip(weights(kept), weights(fresh), strict=True):
        np.testing.assert_array_equal(a, b)


# -- the weights kept for a restore (_FiniteWeights) -------------------------------


class WeightsAtEpochEnd(gn.Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append([p.data.copy() for p in self.model.parameters()])


class WidenAfterFirstEpoch(gn.Callback):
    """Casts every weight to float64 after epoch 1: the optimizer gathers them
    into new buffers, and the old buffer no longer holds the weights."""

    def on_epoch_end(self, epoch, logs):
        if epoch == 0:
            for p in self.model.parameters():
                p.data = p.data.astype(np.float64)


@pytest.mark.parametrize("fits_before", [0, 1, 2])
@pytest.mark.parametrize("widen", [False, True])
def test_divergence_restores_the_last_epochs_weights_wherever_they_lie(
    fits_before, widen
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([[1.0], [2.0], [3.0]])
    model = gn.Sequential(gn.Dense(3, 8), gn.Tanh(), gn.Dense(8, 1), seed=0)
    optimizer = gn.SGD(lr=0.01)
    kw = {"loss": "mse", "optimizer": optimizer, "batch_size": 5, "verbose": 0}
    for _ in range(fits_before):  # the weights' buffer known from earlier fits
        model.fit(X, y, epochs=2, **kw)
    recorder = WeightsAtEpochEnd()
    schedule = gn.LearningRateScheduler(lambda epoch, lr: 1e30 if epoch >= 3 else 0.01)
    callbacks = [schedule, recorder] + ([WidenAfterFirstEpoch()] if widen else [])
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(gn.TrainingDivergedError, match="restored the weights after"),
    ):
        model.fit(X, y, epochs=6, callbacks=callbacks, **kw)
    for p, w in zip(model.parameters(), recorder.weights[-1], strict=True):
        np.testing.assert_array_equal(p.data, w)
