"""Bad input raises a documented glassnet error, never a raw NumPy one.

Each row: what the user did, the error class (from glassnet.errors, a subclass
of ValueError or TypeError), and a pattern the message must match: it names the
argument or layer, what was expected and what was received.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import GlassnetError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(10, 4))
Y = np.arange(10) % 3


def model():
    return gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)


def with_value(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def fit(X=X, y=Y, **kwargs):
    kwargs.setdefault("verbose", 0)
    return model().fit(X, y, **kwargs)


CASES = [
    # -- wrong feature count ---------------------------------------------------
    pytest.param(
        lambda: fit(X[:, :3]),
        gn.ShapeError,
        r"layer 0 \(Dense\): Dense\(4, 5\) expects input of shape \(N, 4\), "
        r"got \(N, 3\)",
        id="fit-feature-count",
    ),
    pytest.param(
        lambda: model().predict(np.ones((2, 6))),
        gn.ShapeError,
        r"layer 0 \(Dense\): .*expects input of shape \(N, 4\), got \(N, 6\)",
        id="predict-feature-count",
    ),
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(4, 3)).predict(X),
        gn.ShapeError,
        r"layer 2 \(Dense\): Dense\(4, 3\) expects input of shape \(N, 4\), "
        r"got \(N, 5\)",
        id="mismatched-layers",
    ),
    pytest.param(
        lambda: fit(validation_data=(X[:, :2], Y)),
        gn.ShapeError,
        r"layer 0 \(Dense\): .*got \(N, 2\)",
        id="validation-feature-count",
    ),
    pytest.param(
        lambda: gn.gradcheck(model(), X[:, :3], Y, loss="softmax_cross_entropy"),
        gn.ShapeError,
        r"expects input of shape \(N, 4\), got \(N, 3\)",
        id="gradcheck-feature-count",
    ),
    pytest.param(
        lambda: gn.Dense(4, 3).forward(np.ones((2, 5))),
        gn.ShapeError,
        r"Dense\(4, 3\) expects input of shape \(N, 4\), got \(N, 5\)",
        id="dense-forward-feature-count",
    ),
    # -- 1-D input -------------------------------------------------------------
    pytest.param(
        lambda: model().predict(X[0]),
        gn.ShapeError,
        r"X: expected a batch of shape \(N, 4\), got \(4,\); "
        r"reshape .*reshape\(1, -1\)",
        id="predict-1d",
    ),
    pytest.param(
        lambda: fit(X[:, 0]),
        gn.ShapeError,
        r"X: expected a batch of shape \(N, 4\), got \(10,\)",
        id="fit-1d",
    ),
    pytest.param(
        lambda: gn.Dense(4, 3).forward(np.ones(4)),
        gn.ShapeError,
        r"Dense\(4, 3\) expects input of shape \(N, 4\), got \(4,\)",
        id="dense-forward-1d",
    ),
    pytest.param(
        lambda: gn.Softmax().forward(np.ones(4)),
        gn.ShapeError,
        r"Softmax expects input of shape \(N, K\), got \(4,\)",
        id="softmax-forward-1d",
    ),
    # -- NaN and inf -----------------------------------------------------------
    pytest.param(
        lambda: fit(with_value(X, (2, 1), np.nan)),
        gn.DataError,
        r"X: expected finite values, got nan at index \(2, 1\)",
        id="fit-nan",
    ),
    pytest.param(
        lambda: model().predict(with_value(X, (3, 0), np.inf)),
        gn.DataError,
        r"X: expected finite values, got inf at index \(3, 0\)",
        id="predict-inf",
    ),
    pytest.param(
        lambda: model().evaluate(with_value(X, (0, 3), -np.inf), Y),
        gn.DataError,
        r"X: expected finite values, got -inf at index \(0, 3\)",
        id="evaluate-minus-inf",
    ),
    pytest.param(
        lambda: fit(validation_data=(with_value(X, (1, 1), np.nan), Y)),
        gn.DataError,
        r"validation_data X: expected finite values, got nan at index \(1, 1\)",
        id="validation-nan",
    ),
    pytest.param(
        lambda: fit(y=with_value(np.eye(3)[Y], (4, 0), np.nan), loss="mse"),
        gn.DataError,
        r"y: expected finite values, got NaN or inf",
        id="fit-y-nan",
    ),
    pytest.param(
        lambda: gn.gradcheck(model(), with_value(X, (0, 0), np.nan)),
        gn.DataError,
        r"gradcheck: X contains NaN or inf",
        id="gradcheck-nan",
    ),
    # -- labels ----------------------------------------------------------------
    pytest.param(
        lambda: fit(y=with_value(Y, 5, 3)),
        gn.DataError,
        r"y: labels must lie in \[0, 3\) for 3 outputs, got values from 0 to 3",
        id="label-too-large",
    ),
    pytest.param(
        lambda: fit(y=with_value(Y, 0, -1)),
        gn.DataError,
        r"y: labels must lie in \[0, 3\) for 3 outputs, got values from -1 to 2",
        id="label-negative",
    ),
    pytest.param(
        lambda: fit(y=Y + 0.5, loss="softmax_cross_entropy"),
        gn.DataError,
        r"y: expected integer class labels, got dtype float64",
        id="label-not-integer",
    ),
    pytest.param(
        lambda: fit(y=np.array(["a"] * 10), loss="softmax_cross_entropy"),
        gn.DataError,
        r"y: expected integer class labels, got dtype <U1",
        id="label-string",
    ),
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 1), seed=0).fit(
            X, Y + 5, loss="binary_cross_entropy_with_logits", verbose=0
        ),
        gn.DataError,
        r"targets must lie in \[0, 1\], got values from 5.0 to 7.0",
        id="binary-target-range",
    ),
    # -- lengths and widths ----------------------------------------------------
    pytest.param(
        lambda: fit(y=Y[:7]),
        gn.ShapeError,
        r"y: expected 10 rows \(one per row of X\), got 7 rows",
        id="y-length",
    ),
    pytest.param(
        lambda: model().evaluate(X, Y[:3]),
        gn.ShapeError,
        r"y: expected 10 rows \(one per row of X\), got 3 rows",
        id="evaluate-y-length",
    ),
    pytest.param(
        lambda: fit(y=np.eye(4)[Y], loss="softmax_cross_entropy"),
        gn.ShapeError,
        r"SoftmaxCrossEntropy: target must be integer labels of shape \(10,\) or "
        r"one-hot rows of shape \(10, 3\), got \(10, 4\)",
        id="one-hot-width",
    ),
    pytest.param(
        lambda: fit(y=np.eye(3)[Y][:, :2], loss="cross_entropy"),
        gn.ShapeError,
        r"CrossEntropy: .*one-hot rows of shape \(10, 3\), got \(10, 2\)",
        id="one-hot-width-cross_entropy",
    ),
    pytest.param(
        lambda: fit(y=np.zeros((10, 2)), loss="mse"),
        gn.ShapeError,
        r"MeanSquaredError: target must have the network output's shape \(10, 3\), "
        r"got \(10, 2\)",
        id="regression-width",
    ),
    # -- unknown names ---------------------------------------------------------
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 5), "tanhh"),
        gn.ConfigError,
        r"unknown activation 'tanhh'; known activations: .*sigmoid.*tanh",
        id="unknown-activation",
    ),
    pytest.param(
        lambda: gn.Sequential.from_sizes(
            [2, 2, 2], activations=["sigmoid", "softmaxx"]
        ),
        gn.ConfigError,
        r"unknown activation 'softmaxx'",
        id="unknown-activation-from_sizes",
    ),
    pytest.param(
        lambda: fit(loss="crossentropy"),
        gn.ConfigError,
        r"unknown loss 'crossentropy'; known losses: .*softmax_cross_entropy",
        id="unknown-loss",
    ),
    pytest.param(
        lambda: fit(optimizer="adamm"),
        gn.ConfigError,
        r"unknown optimizer 'adamm'; known optimizers: adam, adamw, rmsprop, sgd",
        id="unknown-optimizer",
    ),
    pytest.param(
        lambda: gn.Dense(4, 3, init="xavier"),
        gn.ConfigError,
        r"unknown initializer 'xavier'; known initializers: .*glorot_uniform",
        id="unknown-initializer",
    ),
    pytest.param(
        lambda: fit(metrics=["acc"]),
        gn.ConfigError,
        r"unknown metric 'acc'; known metrics: accuracy",
        id="unknown-metric",
    ),
    # -- sizes and learning rates ----------------------------------------------
    pytest.param(
        lambda: gn.Dense(0, 3),
        gn.ConfigError,
        r"Dense: expected integers >= 1, got in_features=0",
        id="dense-zero-in",
    ),
    pytest.param(
        lambda: gn.Dense(4, -2),
        gn.ConfigError,
        r"Dense: expected integers >= 1, got out_features=-2",
        id="dense-negative-out",
    ),
    pytest.param(
        lambda: gn.Dense(4.5, 3),
        gn.ConfigError,
        r"Dense: expected integers >= 1, got in_features=4.5",
        id="dense-float-size",
    ),
    pytest.param(
        lambda: gn.Sequential.from_sizes([2, 0, 2], activations=["sigmoid", "softmax"]),
        gn.ConfigError,
        r"got out_features=0",
        id="from_sizes-zero",
    ),
    pytest.param(
        lambda: fit(epochs=0),
        gn.ConfigError,
        r"fit: expected integers >= 1, got epochs=0",
        id="epochs-zero",
    ),
    pytest.param(
        lambda: fit(batch_size=-4),
        gn.ConfigError,
        r"fit: expected integers >= 1, got batch_size=-4",
        id="batch-negative",
    ),
    pytest.param(
        lambda: gn.SGD(lr=0),
        gn.ConfigError,
        r"SGD: lr must be a finite number > 0, got 0",
        id="sgd-lr-zero",
    ),
    pytest.param(
        lambda: gn.Adam(lr=-0.001),
        gn.ConfigError,
        r"Adam: lr must be a finite number > 0, got -0.001",
        id="adam-lr-negative",
    ),
    pytest.param(
        lambda: gn.RMSprop(lr=float("nan")),
        gn.ConfigError,
        r"RMSprop: lr must be a finite number > 0, got nan",
        id="rmsprop-lr-nan",
    ),
    pytest.param(
        lambda: gn.AdamW(lr="0.1"),
        gn.ConfigError,
        r"AdamW: lr must be a number > 0, got '0.1'",
        id="adamw-lr-string",
    ),
    pytest.param(
        lambda: gn.datasets.make_blobs(n_samples=0),
        gn.ConfigError,
        r"make_blobs: expected integers >= 1, got n_samples=0",
        id="dataset-size",
    ),
    # -- non-numeric X ---------------------------------------------------------
    pytest.param(
        lambda: fit(np.array([["a"] * 4] * 10)),
        gn.ArgumentTypeError,
        r"X: expected a numeric array, got dtype <U1",
        id="strings",
    ),
    pytest.param(
        lambda: model().predict([[1.0, 2.0, None, 4.0]]),
        gn.ArgumentTypeError,
        r"X: expected a numeric array, got dtype object",
        id="none-inside",
    ),
    pytest.param(
        lambda: model().predict(X.astype(complex)),
        gn.ArgumentTypeError,
        r"X: expected real numbers, got complex values",
        id="complex",
    ),
    pytest.param(
        lambda: model().predict([[1.0, 2.0], [3.0]]),
        gn.ArgumentTypeError,
        r"X: could not convert to an array",
        id="ragged",
    ),
    # -- other arguments -------------------------------------------------------
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 5), 3),
        gn.ArgumentTypeError,
        r"Sequential: layer 1 must be a glassnet Layer .*got 3 of type int",
        id="not-a-layer",
    ),
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 5), dtype=np.int32),
        gn.ConfigError,
        r"Sequential: dtype must be float32 or float64, got int32",
        id="int-dtype",
    ),
    pytest.param(
        lambda: fit(validation_split=1.5),
        gn.ConfigError,
        r"fit: validation_split must be in \[0.0, 1.0\), got 1.5",
        id="validation-split",
    ),
    pytest.param(
        lambda: fit(validation_data=X),
        gn.ArgumentTypeError,
        r"fit: validation_data must be a pair \(X_val, y_val\)",
        id="validation-data",
    ),
    pytest.param(
        lambda: fit(callbacks=[print]),
        gn.ArgumentTypeError,
        r"fit: callbacks must be Callback instances, got <built-in function print>",
        id="callback-type",
    ),
    pytest.param(
        lambda: fit(y=None),
        gn.ArgumentTypeError,
        r"X: targets y are required",
        id="missing-y",
    ),
    pytest.param(
        lambda: gn.Sequential(gn.Dense(4, 3), gn.Softmax()).fit(
            X, Y, loss="softmax_cross_entropy", verbose=0
        ),
        gn.ConfigError,
        r"model ends in Softmax and loss='softmax_cross_entropy'",
        id="double-softmax",
    ),
    pytest.param(
        lambda: gn.LeakyReLU(negative_slope=-0.1),
        gn.ConfigError,
        r"LeakyReLU: negative_slope must be in \[0.0, 1.0\), got -0.1",
        id="leaky-slope",
    ),
    pytest.param(
        lambda: gn.StepDecay(step_size=0),
        gn.ConfigError,
        r"StepDecay: expected integers >= 1, got step_size=0",
        id="schedule-step",
    ),
    pytest.param(
        lambda: gn.gradcheck(42),
        gn.ArgumentTypeError,
        r"gradcheck: expected a Layer, a Sequential model or a loss function, got int",
        id="gradcheck-target",
    ),
    pytest.param(
        lambda: gn.gradcheck(lambda a: 0.0, np.ones(3), grad=lambda a: {}),
        gn.ArgumentTypeError,
        r"arrays must be a dict of NumPy arrays",
        id="gradcheck-arrays",
    ),
]


@pytest.mark.parametrize("action, error, message", CASES)
def test_bad_input_raises_a_named_glassnet_error(action, error, message):
    with pytest.raises(error, match=message) as info:
        action()
    assert isinstance(info.value, GlassnetError)
    assert isinstance(info.value, (ValueError, TypeError))
    # raised by glassnet itself, not passed through from NumPy
    assert info.value.__cause__ is None or isinstance(
        info.value.__cause__, GlassnetError
    )


def test_every_error_class_is_documented_and_catchable_by_builtin_type():
    for cls, builtin in [
        (gn.ShapeError, ValueError),
        (gn.DataError, ValueError),
        (gn.ConfigError, ValueError),
        (gn.ArgumentTypeError, TypeError),
        (gn.CallOrderError, RuntimeError),
        (gn.TrainingDivergedError, RuntimeError),
    ]:
        assert issubclass(cls, GlassnetError) and issubclass(cls, builtin)
        assert cls.__doc__


MISSING_NAMES = [
    pytest.param(lambda gn: gn.BatchNorm, AttributeError, "BatchNorm1D", id="attr"),
    pytest.param(
        lambda gn: gn.Sequential(gn.Dense(2, 2), "batchnorm"),
        gn.ConfigError,
        "gn.BatchNorm1D\\(...\\)",
        id="by-name",
    ),
    pytest.param(
        lambda gn: gn.MixtureOfExperts,
        AttributeError,
        "docs/custom_layers.md",
        id="attr-unknown",
    ),
    pytest.param(
        lambda gn: gn.Sequential(gn.Dense(2, 2), "mish"),
        gn.ConfigError,
        "docs/custom_layers.md",
        id="by-name-unknown",
    ),
]


@pytest.mark.parametrize("use, error, hint", MISSING_NAMES)
def test_a_missing_layer_points_to_what_exists_or_the_guide(use, error, hint):
    with pytest.raises(error, match=hint):
        use(gn)
