"""Layers part 1: GELU, SiLU, ELU, Softplus, BatchNorm1D/2D, LayerNorm, Embedding,
global pooling. Gradcheck tables, shapes, configs, errors, running statistics by
hand, and the layers trained inside Sequential and Residual with fit.
(The PyTorch oracle for the same layers is test_layers_part1_torch.py.)"""

import json
import math

import numpy as np
import pytest

import glassnet as gn
from glassnet._special import erf, erfc


def away_from(x: np.ndarray, points=(0.0,), gap: float = 0.05) -> np.ndarray:
    """x with every entry within gap of a kink moved gap away from it."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + np.where(x[near] >= p, gap, -gap)
    return x


def f64_bn(cls, C, rng, training=True, **kw):
    """A float64 BatchNorm with random scale, shift and running statistics."""
    layer = cls(C, dtype=np.float64, **kw)
    layer.weight.data = rng.normal(1.0, 0.5, C)
    layer.bias.data = rng.normal(0.0, 0.5, C)
    layer.running_mean = rng.normal(0.0, 0.5, C)
    layer.running_var = rng.uniform(0.5, 2.0, C)
    layer.training = training
    return layer


def f64_ln(shape, rng, **kw):
    layer = gn.LayerNorm(shape, dtype=np.float64, **kw)
    if layer.elementwise_affine:
        layer.weight.data = rng.normal(1.0, 0.5, layer.weight.shape)
        layer.bias.data = rng.normal(0.0, 0.5, layer.bias.shape)
    return layer


# (id, make the layer from rng, input shape for batch B, kinks to stay away from,
#  the smallest batch the layer is defined for)
GRADCHECK = [
    ("gelu", lambda r: gn.GELU(), lambda B: (B, 5), (), 1),
    ("gelu-3d", lambda r: gn.GELU(), lambda B: (B, 2, 3), (), 1),
    ("gelu-tanh", lambda r: gn.GELU("tanh"), lambda B: (B, 5), (), 1),
    ("silu", lambda r: gn.SiLU(), lambda B: (B, 5), (), 1),
    ("elu", lambda r: gn.ELU(), lambda B: (B, 5), (0.0,), 1),
    ("elu-alpha", lambda r: gn.ELU(0.5), lambda B: (B, 2, 3), (0.0,), 1),
    ("softplus", lambda r: gn.Softplus(), lambda B: (B, 5), (), 1),
    ("softplus-beta", lambda r: gn.Softplus(2.0, 3.0), lambda B: (B, 5), (1.5,), 1),
    (
        "batchnorm1d-train",
        lambda r: f64_bn(gn.BatchNorm1D, 4, r),
        lambda B: (B, 4),
        (),
        2,
    ),
    (
        "batchnorm1d-seq-train",
        lambda r: f64_bn(gn.BatchNorm1D, 3, r, eps=1e-3, momentum=0.3),
        lambda B: (B, 3, 5),
        (),
        1,
    ),
    (
        "batchnorm2d-train",
        lambda r: f64_bn(gn.BatchNorm2D, 2, r),
        lambda B: (B, 2, 3, 3),
        (),
        1,
    ),
    (
        "batchnorm1d-eval",
        lambda r: f64_bn(gn.BatchNorm1D, 4, r, training=False),
        lambda B: (B, 4),
        (),
        1,
    ),
    (
        "batchnorm1d-seq-eval",
        lambda r: f64_bn(gn.BatchNorm1D, 3, r, training=False),
        lambda B: (B, 3, 5),
        (),
        1,
    ),
    (
        "batchnorm2d-eval",
        lambda r: f64_bn(gn.BatchNorm2D, 2, r, training=False),
        lambda B: (B, 2, 3, 3),
        (),
        1,
    ),
    ("layernorm-1axis", lambda r: f64_ln(6, r), lambda B: (B, 6), (), 1),
    ("layernorm-1axis-seq", lambda r: f64_ln(6, r), lambda B: (B, 4, 6), (), 1),
    ("layernorm-2axes", lambda r: f64_ln((3, 4), r), lambda B: (B, 3, 4), (), 1),
    ("layernorm-3axes", lambda r: f64_ln((2, 3, 2), r), lambda B: (B, 2, 3, 2), (), 1),
    (
        "layernorm-no-affine",
        lambda r: f64_ln(6, r, elementwise_affine=False, eps=1e-3),
        lambda B: (B, 2, 6),
        (),
        1,
    ),
    ("global-avg-1d", lambda r: gn.GlobalAvgPool1D(), lambda B: (B, 3, 7), (), 1),
    ("global-avg-2d", lambda r: gn.GlobalAvgPool2D(), lambda B: (B, 3, 4, 5), (), 1),
    ("global-max-1d", lambda r: gn.GlobalMaxPool1D(), lambda B: (B, 3, 7), (), 1),
    ("global-max-2d", lambda r: gn.GlobalMaxPool2D(), lambda B: (B, 3, 4, 5), (), 1),
    ("flatten-3d", lambda r: gn.Flatten(), lambda B: (B, 3, 4), (), 1),
    ("flatten-5d", lambda r: gn.Flatten(), lambda B: (B, 2, 3, 2, 2), (), 1),
]


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize(
    "make, shape, kinks, min_batch",
    [pytest.param(*case[1:], id=case[0]) for case in GRADCHECK],
)
def test_gradcheck_float64(make, shape, kinks, min_batch, batch, rng):
    if batch < min_batch:
        batch = min_batch  # a BatchNorm of (N, D) needs 2 rows for a variance
    layer = make(rng)
    x = away_from(rng.normal(0.0, 2.0, shape(batch)), kinks)
    report = gn.gradcheck(layer, x)
    assert report.passed, str(report)
    expected = ["input"] + [name for name, _ in layer.named_parameters()]
    assert [row.name for row in report.rows] == expected
    for row in report.rows:
        assert row.max_error <= 1e-7, str(report)
        assert row.kinks == 0, str(report)


def test_gradcheck_sees_a_wrong_batchnorm_backward(rng):
    """The table above can fail: the evaluation-mode backward (statistics taken as
    constants) used in training mode is the classic wrong answer."""

    class ConstantStatistics(gn.BatchNorm1D):
        def backward(self, dout):
            _, *rest = self._cached()
            self._cache = (False, *rest)  # backward as if in evaluation mode
            return super().backward(dout)

    wrong = ConstantStatistics(4, dtype=np.float64)
    wrong.training = True
    report = gn.gradcheck(wrong, rng.normal(size=(6, 4)))
    assert not report["input"].passed
    assert report["weight"].passed and report["bias"].passed


def test_embedding_weight_gradient_by_gradcheck_function_form(rng):
    """gradcheck perturbs its input, and ids cannot be perturbed, so the weight is
    checked with the function form: f(weight) = <Embedding(ids), w>."""
    layer = gn.Embedding(6, 3, rng=rng, dtype=np.float64)
    ids = np.array([[1, 2, 1, 5], [1, 0, 2, 2]])
    w = rng.normal(size=(2, 4, 3))

    def f(arrays):
        layer.weight.data = arrays["weight"]
        return float(np.sum(layer.forward(ids) * w))

    def grad(arrays):
        layer.weight.data = arrays["weight"]
        layer.forward(ids)
        layer.backward(w)
        return {"weight": layer.weight.grad.copy()}

    report = gn.gradcheck(f, {"weight": layer.weight.data.copy()}, grad=grad)
    assert report.passed and report["weight"].max_error <= 1e-7, str(report)


# -- shapes ------------------------------------------------------------------------

SHAPES = [
    (gn.GELU(), (2, 3), (2, 3)),
    (gn.SiLU(), (5,), (5,)),
    (gn.ELU(), (4, 4, 4), (4, 4, 4)),
    (gn.Softplus(), (7,), (7,)),
    (gn.BatchNorm1D(4), (4,), (4,)),
    (gn.BatchNorm1D(3), (3, 10), (3, 10)),
    (gn.BatchNorm2D(3), (3, 5, 6), (3, 5, 6)),
    (gn.LayerNorm(8), (8,), (8,)),
    (gn.LayerNorm(8), (5, 8), (5, 8)),
    (gn.LayerNorm((5, 8)), (5, 8), (5, 8)),
    (gn.Embedding(10, 4), (7,), (7, 4)),
    (gn.Embedding(10, 4), (), (4,)),
    (gn.GlobalAvgPool1D(), (3, 9), (3,)),
    (gn.GlobalMaxPool1D(), (3, 9), (3,)),
    (gn.GlobalAvgPool2D(), (3, 4, 5), (3,)),
    (gn.GlobalMaxPool2D(), (3, 4, 5), (3,)),
    (gn.Flatten(), (6,), (6,)),
    (gn.Flatten(), (2, 3), (6,)),
    (gn.Flatten(), (2, 3, 4), (24,)),
    (gn.Flatten(), (2, 3, 4, 5), (120,)),
]


@pytest.mark.parametrize(
    "layer, sample, expected",
    SHAPES,
    ids=[f"{type(c[0]).__name__}-{c[1]}" for c in SHAPES],
)
def test_output_shape_matches_forward_and_backward(layer, sample, expected, rng):
    assert layer.output_shape(sample) == expected
    if isinstance(layer, gn.Embedding):
        x = rng.integers(0, 10, (3, *sample))
    else:
        x = rng.normal(size=(3, *sample)).astype(np.float32)
    layer.training = True
    out = layer.forward(x)
    assert out.shape == (3, *expected)
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    for p in layer.parameters():
        assert p.grad.shape == p.data.shape


# -- get_config --------------------------------------------------------------------

CONFIGS = [
    gn.GELU(),
    gn.GELU(approximate="tanh"),
    gn.SiLU(),
    gn.ELU(),
    gn.ELU(alpha=0.3),
    gn.Softplus(),
    gn.Softplus(beta=2.0, threshold=10.0),
    gn.BatchNorm1D(4),
    gn.BatchNorm1D(4, eps=1e-3, momentum=0.2, dtype=np.float64),
    gn.BatchNorm2D(3, momentum=0.0),
    gn.LayerNorm(8),
    gn.LayerNorm((3, 4), eps=1e-6, elementwise_affine=False, dtype="float64"),
    gn.Embedding(7, 3),
    gn.Embedding(7, 3, dtype=np.float64),
    gn.GlobalAvgPool1D(),
    gn.GlobalAvgPool2D(),
    gn.GlobalMaxPool1D(),
    gn.GlobalMaxPool2D(),
]


@pytest.mark.parametrize("layer", CONFIGS, ids=repr)
def test_get_config_rebuilds_the_layer(layer):
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config  # a model file can hold it
    clone = type(layer)(**config)
    assert clone.get_config() == config
    assert repr(clone) == repr(layer)
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [
        (n, p.shape) for n, p in layer.named_parameters()
    ]


@pytest.mark.parametrize(
    "layer, expected",
    [
        (gn.GELU("tanh"), {"approximate": "tanh"}),
        (gn.ELU(0.3), {"alpha": 0.3}),
        (gn.Softplus(2, 10), {"beta": 2.0, "threshold": 10.0}),
        (gn.BatchNorm2D(3), {"num_features": 3, "eps": 1e-5, "momentum": 0.1}),
        (
            gn.LayerNorm(8, dtype=np.float64),  # dtype is the model file's, not here
            {"normalized_shape": [8], "eps": 1e-5, "elementwise_affine": True},
        ),
        (gn.Embedding(7, 3), {"num_embeddings": 7, "embedding_dim": 3}),
    ],
    ids=repr,
)
def test_get_config_values(layer, expected):
    assert layer.get_config() == expected


# -- errors ------------------------------------------------------------------------


def _forward(layer, shape, training=False):
    layer.training = training
    return layer.forward(np.zeros(shape))


ERRORS = [
    (lambda: gn.GELU("exact"), gn.ConfigError, r'GELU: approximate must be "none"'),
    (lambda: gn.ELU(alpha=-1.0), gn.ConfigError, r"ELU: alpha must be a finite"),
    (lambda: gn.Softplus(beta=0), gn.ConfigError, r"Softplus: beta must be"),
    (lambda: gn.Softplus(threshold="x"), gn.ConfigError, r"threshold must be"),
    (
        lambda: gn.layers.make_activation("gelus"),
        gn.ConfigError,
        r"known activations:.*gelu",
    ),
    (lambda: gn.BatchNorm1D(0), gn.ConfigError, r"BatchNorm1D: .*num_features=0"),
    (lambda: gn.BatchNorm1D(4, eps=0), gn.ConfigError, r"BatchNorm1D: eps must be"),
    (
        lambda: gn.BatchNorm1D(4, momentum=1.5),
        gn.ConfigError,
        r"momentum must be in \[0, 1\], got 1.5 .*Keras",
    ),
    (
        lambda: gn.BatchNorm2D(4, dtype="int32"),
        gn.ConfigError,
        r"BatchNorm2D: dtype must be float32 or float64, got 'int32'",
    ),
    (
        lambda: _forward(gn.BatchNorm1D(4), (2, 5)),
        gn.ShapeError,
        r"BatchNorm1D\(4\) expects input of shape \(N, 4\) or \(N, 4, L\), got "
        r"\(N, 5\); num_features should be 5",
    ),
    (
        lambda: _forward(gn.BatchNorm1D(4), (2, 4, 3, 3)),
        gn.ShapeError,
        r"got \(N, 4, 3, 3\); use BatchNorm2D for images",
    ),
    (
        lambda: _forward(gn.BatchNorm2D(3), (2, 3)),
        gn.ShapeError,
        r"BatchNorm2D\(3\) expects input of shape \(N, 3, H, W\), got \(N, 3\); "
        r"use BatchNorm1D",
    ),
    (
        lambda: _forward(gn.BatchNorm1D(4), (1, 4), training=True),
        gn.ShapeError,
        r"BatchNorm1D\(4\): a training batch needs more than 1 value per channel",
    ),
    (
        lambda: gn.BatchNorm1D(4).output_shape((5,)),
        gn.ShapeError,
        r"num_features should be 5",
    ),
    (lambda: gn.LayerNorm(0), gn.ConfigError, r"normalized_shape\[0\]=0"),
    (lambda: gn.LayerNorm(()), gn.ConfigError, r"at least one axis"),
    (
        lambda: gn.LayerNorm(4, elementwise_affine="yes"),
        gn.ConfigError,
        r"elementwise_affine must be True or False",
    ),
    (
        lambda: _forward(gn.LayerNorm(5), (2, 4)),
        gn.ShapeError,
        r"LayerNorm\(5\) expects input of shape \(N, \.\.\., 5\), got \(N, 4\); "
        r"normalized_shape should be 4",
    ),
    (
        lambda: _forward(gn.LayerNorm((2, 3)), (2, 3, 2)),
        gn.ShapeError,
        r"LayerNorm\(\[2, 3\]\) .*should be the last 2 axes, \(3, 2\)",
    ),
    (
        lambda: _forward(gn.LayerNorm(5), (5,)),
        gn.ShapeError,
        r"LayerNorm\(5\) expects input of shape \(N, \.\.\., 5\)",
    ),
    (lambda: gn.Embedding(0, 3), gn.ConfigError, r"num_embeddings=0"),
    (
        lambda: gn.Embedding(10, 3).forward(np.array([[1, 10]])),
        gn.DataError,
        r"Embedding\(10, 3\): ids must lie in \[0, 10\) \(num_embeddings = 10\), "
        r"got 10 at index \(0, 1\); ids count from 0",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array([[1, 2], [-1, 3]])),
        gn.DataError,
        r"ids must lie in \[0, 10\) .*got -1 at index \(1, 0\)",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array([[1.0, 12.0]])),
        gn.DataError,
        r"got 12 at index \(0, 1\); num_embeddings must exceed the largest id",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array([[1.0, 1.5]])),
        gn.DataError,
        r"ids must be whole numbers in \[0, 10\), got 1.5 at index \(0, 1\).*Dense",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array([np.nan])),
        gn.DataError,
        r"whole numbers .*got nan at index \(0,\)",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array(3)),
        gn.ShapeError,
        r"Embedding\(10, 3\) expects a batch of ids .*scalar",
    ),
    (
        lambda: gn.Embedding(10, 3).forward(np.array(["a"])),
        gn.ArgumentTypeError,
        r"expects integer ids, got an array of dtype <U1",
    ),
    (
        lambda: gn.GlobalAvgPool2D().forward(np.zeros((2, 3, 4))),
        gn.ShapeError,
        r"GlobalAvgPool2D expects input of shape \(N, C, H, W\), got \(N, 3, 4\); "
        r"use GlobalAvgPool1D",
    ),
    (
        lambda: gn.GlobalMaxPool1D().forward(np.zeros((2, 3, 4, 5))),
        gn.ShapeError,
        r"got \(N, 3, 4, 5\); use GlobalMaxPool2D for images",
    ),
    (
        lambda: gn.GlobalAvgPool1D().output_shape((3,)),
        gn.ShapeError,
        r"already one vector per example",
    ),
    (
        lambda: gn.Sequential(gn.Dense(4, 5), gn.BatchNorm1D(4)).predict(
            np.zeros((2, 4))
        ),
        gn.ShapeError,
        r"layer 1 \(BatchNorm1D\): .*num_features should be 5",
    ),
    (
        lambda: gn.GELU().backward(np.ones((2, 3))),
        gn.CallOrderError,
        r"GELU\.backward\(\) was called before forward\(\)",
    ),
    (
        lambda: gn.BatchNorm2D(3).backward(np.ones((2, 3, 2, 2))),
        gn.CallOrderError,
        r"BatchNorm2D\.backward\(\) was called before forward\(\)",
    ),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_errors_name_the_layer_expected_and_received(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- activations by hand -----------------------------------------------------------


def test_erf_and_erfc_match_the_math_module_to_a_few_ulps():
    x = np.concatenate(
        [np.linspace(-30, 30, 60001), np.random.default_rng(1).normal(0, 3, 20000)]
    )
    x = np.append(x, [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 1e-300, -1e-20])
    for ours, reference in [(erf, math.erf), (erfc, math.erfc)]:
        got = ours(x)
        want = np.array([reference(v) for v in x])
        normal = np.abs(want) > np.finfo(np.float64).tiny  # subnormals aside
        ulps = np.abs(got - want)[normal] / np.spacing(np.abs(want[normal]))
        assert ulps.max() <= 8, ours.__name__
        assert np.abs(got - want).max() <= 5e-16
    assert erfc(np.array([10.0]))[0] == pytest.approx(2.088487583762545e-45, rel=1e-14)
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf])), [0.0, 2.0])
    assert np.isnan(erf(np.array([np.nan]))[0])


def PHI(x: float) -> float:  # the standard normal CDF, from the math module
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def DENSITY(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@pytest.mark.parametrize(
    "layer, x, out, slope",
    [
        (gn.GELU(), 0.0, 0.0, 0.5),
        (gn.GELU(), 1.0, 0.8413447460685429, 1.0833154705876864),
        (gn.GELU(), -3.0, -3.0 * PHI(-3.0), PHI(-3.0) - 3.0 * DENSITY(-3.0)),
        (gn.GELU(), -12.0, -12.0 * PHI(-12.0), PHI(-12.0) - 12.0 * DENSITY(-12.0)),
        (gn.GELU("tanh"), 0.0, 0.0, 0.5),
        (gn.SiLU(), 0.0, 0.0, 0.5),
        (gn.SiLU(), -30.0, -30.0 / (1.0 + math.exp(30.0)), None),
        (gn.ELU(), -1.0, math.exp(-1.0) - 1.0, math.exp(-1.0)),
        (gn.ELU(2.0), 0.0, 0.0, 2.0),  # PyTorch's slope at the kink: alpha
        (gn.ELU(2.0), 3.0, 3.0, 1.0),
        (gn.ELU(), -800.0, -1.0, 0.0),
        (gn.Softplus(), 0.0, math.log(2.0), 0.5),
        (gn.Softplus(), 25.0, 25.0, 1.0),  # linear above the threshold, exactly
        (gn.Softplus(), -800.0, 0.0, 0.0),  # no overflow
        (gn.Softplus(beta=2.0), 1.0, math.log1p(math.exp(2.0)) / 2.0, None),
    ],
    ids=lambda v: repr(v) if isinstance(v, gn.Layer) else None,
)
def test_activation_values_and_slopes_by_hand(layer, x, out, slope):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = layer.forward(np.array([[x]]))
        dx = layer.backward(np.ones((1, 1)))
    # 1e-13: Phi(x) far in the tail is ill-conditioned (a relative change d of x
    # changes it by about x^2 d), and x / sqrt(2) is itself rounded
    assert got[0, 0] == pytest.approx(out, rel=1e-13, abs=1e-300)
    if slope is not None:
        assert dx[0, 0] == pytest.approx(slope, rel=1e-13, abs=1e-300)


def test_gelu_tanh_is_within_5e4_of_the_exact_gelu():
    x = np.linspace(-8, 8, 160001)
    gap = np.abs(gn.GELU().forward(x) - gn.GELU("tanh").forward(x))
    assert 4.7e-4 < gap.max() < 4.8e-4
    assert abs(x[np.argmax(gap)]) == pytest.approx(2.699, abs=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["gelu", "silu", "swish", "elu", "softplus"])
def test_activations_keep_the_input_dtype(name, dtype, rng):
    layer = gn.layers.make_activation(name)
    x = rng.normal(size=(4, 3)).astype(dtype)
    out = layer.forward(x)
    assert out.dtype == dtype
    assert layer.backward(np.ones_like(out)).dtype == dtype


def test_activations_by_name_in_sequential_and_from_sizes():
    model = gn.Sequential(
        gn.Dense(3, 4), "gelu", "swish", "silu", "elu", "softplus", seed=0
    )
    assert [type(layer) for layer in model.layers[1:]] == [
        gn.GELU,
        gn.SiLU,
        gn.SiLU,
        gn.ELU,
        gn.Softplus,
    ]
    mlp = gn.Sequential.from_sizes([3, 5, 4, 2], activations=["gelu", "elu", "swish"])
    assert [type(layer).__name__ for layer in mlp.layers] == [
        "Dense",
        "GELU",
        "Dense",
        "ELU",
        "Dense",
        "SiLU",
    ]


# -- BatchNorm ---------------------------------------------------------------------


def test_batchnorm_running_statistics_by_hand():
    bn = gn.BatchNorm1D(2, momentum=0.1, dtype=np.float64)
    bn.training = True
    x1 = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 13.0]])
    out = bn.forward(x1)
    # feature 0: mean 3, biased var 8/3, unbiased var 4; feature 1: 11, 2, 3
    np.testing.assert_allclose(bn.running_mean, [0.3, 1.1])
    np.testing.assert_allclose(bn.running_var, [0.9 + 0.4, 0.9 + 0.3])
    np.testing.assert_allclose(
        out[:, 0], np.array([-2.0, 0.0, 2.0]) / np.sqrt(8 / 3 + 1e-5)
    )
    x2 = np.array([[0.0, 0.0], [2.0, 4.0]])  # mean 1, 2; unbiased var 2, 8
    bn.forward(x2)
    np.testing.assert_allclose(bn.running_mean, [0.9 * 0.3 + 0.1, 0.9 * 1.1 + 0.2])
    np.testing.assert_allclose(bn.running_var, [0.9 * 1.3 + 0.2, 0.9 * 1.2 + 0.8])
    # evaluation: the running statistics, which stay as they are
    bn.training = False
    bn.weight.data = np.array([2.0, 1.0])
    bn.bias.data = np.array([0.5, -1.0])
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    x = np.array([[1.0, 2.0]])
    expected = (x - rm) / np.sqrt(rv + 1e-5) * [2.0, 1.0] + [0.5, -1.0]
    np.testing.assert_allclose(bn.forward(x), expected, rtol=1e-15)
    np.testing.assert_array_equal(bn.running_mean, rm)
    np.testing.assert_array_equal(bn.running_var, rv)
    dx = bn.backward(np.ones((1, 2)))
    np.testing.assert_allclose(dx, [[2.0, 1.0]] / np.sqrt(rv + 1e-5), rtol=1e-15)


def test_batchnorm_statistics_are_per_channel_over_batch_and_positions(rng):
    bn = gn.BatchNorm2D(3, momentum=1.0, dtype=np.float64)  # running = last batch
    bn.training = True
    x = rng.normal(2.0, 3.0, (4, 3, 5, 6))
    out = bn.forward(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-14)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    np.testing.assert_allclose(bn.running_mean, x.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(
        bn.running_var, x.var(axis=(0, 2, 3), ddof=1), rtol=1e-13
    )
    seq = gn.BatchNorm1D(3, momentum=1.0, dtype=np.float64)
    seq.training = True
    x = rng.normal(2.0, 3.0, (4, 3, 7))
    seq.forward(x)
    np.testing.assert_allclose(seq.running_var, x.var(axis=(0, 2), ddof=1), rtol=1e-13)


def test_batchnorm_buffers_are_named_and_loaded():
    model = gn.Sequential(
        gn.Dense(4, 6),
        gn.Residual(gn.Sequential(gn.BatchNorm1D(6), gn.Dense(6, 6))),
        gn.BatchNorm1D(6),
        seed=0,
    )
    names = [name for name, _ in model.named_buffers()]
    assert names == [
        "1.block.0.running_mean",
        "1.block.0.running_var",
        "2.running_mean",
        "2.running_var",
    ]
    assert all(a.dtype == np.float32 for _, a in model.named_buffers())
    assert not any("running" in name for name, _ in model.named_parameters())
    bn = model.layers[2]
    bn.load_buffer("running_var", np.full(6, 4.0))
    np.testing.assert_array_equal(bn.running_var, np.full(6, 4.0, np.float32))
    with pytest.raises(gn.ConfigError, match="expected shape"):
        bn.load_buffer("running_mean", np.zeros(5))


@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
def test_new_layers_take_the_model_dtype_unless_given_their_own(model_dtype):
    model = gn.Sequential(
        gn.Dense(4, 6),
        gn.BatchNorm1D(6),
        gn.LayerNorm(6),
        gn.BatchNorm1D(6, dtype=np.float32),
        seed=0,
        dtype=model_dtype,
    )
    for layer in model.layers[1:3]:
        assert {p.data.dtype for p in layer.parameters()} == {np.dtype(model_dtype)}
    assert model.layers[1].running_mean.dtype == model_dtype
    assert model.layers[3].running_var.dtype == np.float32  # its own, kept
    emb = gn.Sequential(gn.Embedding(5, 2), seed=0, dtype=model_dtype)
    assert emb.layers[0].weight.data.dtype == model_dtype


# -- Embedding ---------------------------------------------------------------------


def test_embedding_gradient_accumulates_repeated_ids(rng):
    layer = gn.Embedding(5, 3, rng=rng, dtype=np.float64)
    ids = np.array([[1, 2, 1], [1, 0, 2]])  # id 1 three times, 2 twice, 3 and 4 never
    out = layer.forward(ids)
    np.testing.assert_array_equal(out, layer.weight.data[ids])
    dout = rng.normal(size=(2, 3, 3))
    dx = layer.backward(dout)
    expected = np.zeros((5, 3))
    for n in range(2):
        for t in range(3):
            expected[ids[n, t]] += dout[n, t]
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-15)
    np.testing.assert_allclose(
        layer.weight.grad[1], dout[0, 0] + dout[0, 2] + dout[1, 0], rtol=1e-15
    )
    np.testing.assert_array_equal(layer.weight.grad[[3, 4]], 0.0)
    assert dx.shape == ids.shape and dx.dtype == np.float64 and not dx.any()
    layer.backward(dout)  # replaces, does not accumulate across calls
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-15)


def test_embedding_accepts_whole_floats_and_one_id_per_example(rng):
    layer = gn.Embedding(4, 2, rng=rng)
    np.testing.assert_array_equal(
        layer.forward(np.array([3.0, 0.0], np.float32)), layer.weight.data[[3, 0]]
    )
    assert layer.forward(np.array([1, 2, 3])).shape == (3, 2)
    dx = layer.backward(np.ones((3, 2)))
    assert dx.shape == (3,) and not dx.any()  # ids have no gradient: zeros
    grad = layer.weight.grad.copy()
    layer.weight.grad = np.zeros_like(grad)
    assert layer.backward_params(np.ones((3, 2))) is None  # fit's first layer
    np.testing.assert_array_equal(layer.weight.grad, grad)


def test_embedding_weights_come_from_the_model_seed_unless_it_has_an_rng():
    def weights(**kw):
        model = gn.Sequential(gn.Embedding(6, 3, **kw), gn.Flatten(), seed=7)
        return model.layers[0].weight.data.copy()

    np.testing.assert_array_equal(weights(), weights())
    own = weights(rng=np.random.default_rng(1))
    np.testing.assert_array_equal(
        own, np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    )
    assert abs(weights().std() - 1.0) < 0.6  # N(0, 1)


# -- global pooling ----------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, x, out, dx",
    [
        (gn.GlobalAvgPool1D(), [[[1.0, 2.0, 6.0]]], [[3.0]], [[[1 / 3] * 3]]),
        (gn.GlobalMaxPool1D(), [[[1.0, 6.0, 6.0]]], [[6.0]], [[[0.0, 1.0, 0.0]]]),
        (
            gn.GlobalMaxPool2D(),
            [[[[1.0, 3.0], [3.0, 0.0]]]],
            [[3.0]],
            [[[[0.0, 1.0], [0.0, 0.0]]]],  # ties: the first in row-major order
        ),
        (
            gn.GlobalAvgPool2D(),
            [[[[1.0, 3.0], [3.0, 1.0]]]],
            [[2.0]],
            [[[[0.25, 0.25], [0.25, 0.25]]]],
        ),
    ],
    ids=repr,
)
def test_global_pooling_by_hand(layer, x, out, dx):
    np.testing.assert_array_equal(layer.forward(np.array(x)), out)
    np.testing.assert_allclose(layer.backward(np.ones((1, 1))), dx, rtol=1e-15)


# -- in models, with fit -----------------------------------------------------------


def blobs(rng, n=240):
    centers = np.array(
        [[2.0, 0.0, -1.0, 1.0], [-2.0, 1.0, 1.0, 0.0], [0.0, -2.0, 0.0, -1.0]]
    )
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(0.0, 0.7, (n, 4)), y


def test_layers_train_inside_sequential_and_residual(rng):
    X, y = blobs(rng)
    model = gn.Sequential(
        gn.Dense(4, 8),
        gn.Residual(gn.Sequential(gn.LayerNorm(8), gn.Dense(8, 8), gn.GELU())),
        gn.BatchNorm1D(8),
        gn.SiLU(),
        gn.Dense(8, 8),
        gn.ELU(),
        gn.Softplus(),
        gn.Dense(8, 3),
        seed=0,
    )
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    history = model.fit(
        X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(0.01), epochs=20,
        batch_size=32, verbose=0,
    )  # fmt: skip
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(X, y)["accuracy"] >= 0.95
    for name, p in model.named_parameters():
        assert not np.array_equal(p.data, before[name]), f"{name} did not train"
    assert "1.block.0.weight" in before and "2.weight" in before


def test_embedding_and_global_pooling_train_in_a_model(rng):
    """Which of two marker tokens a sequence holds: Embedding -> LayerNorm ->
    Flatten -> Dense learns it; a global max pool ends a convolution."""
    ids = rng.integers(2, 8, (200, 6))
    y = rng.integers(0, 2, 200)
    ids[np.arange(200), rng.integers(0, 6, 200)] = y  # token 0 or 1 marks the class
    model = gn.Sequential(
        gn.Embedding(8, 4), gn.LayerNorm(4), gn.Flatten(), gn.Dense(24, 2), seed=0
    )
    model.fit(ids, y, loss="softmax_cross_entropy", optimizer=gn.Adam(0.02),
              epochs=30, batch_size=32, verbose=0)  # fmt: skip
    assert model.evaluate(ids, y)["accuracy"] >= 0.9
    pooled = gn.Sequential(
        gn.Conv2D(1, 4, 3, padding=1), gn.GlobalMaxPool2D(), gn.Dense(4, 2), seed=0
    )
    assert pooled.output_shape((1, 5, 5)) == (2,)
    assert pooled.predict(rng.normal(size=(3, 1, 5, 5))).shape == (3, 2)


def test_fit_trains_batchnorm_in_training_mode_and_predict_uses_running_stats(rng):
    X, y = blobs(rng)
    model = gn.Sequential(gn.Dense(4, 8), gn.BatchNorm1D(8), gn.ReLU(), gn.Dense(8, 3),
                          seed=0, dtype=np.float64)  # fmt: skip
    bn = model.layers[1]
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(0.01), epochs=5,
              batch_size=32, verbose=0)  # fmt: skip
    assert bn.training is False  # fit leaves the model in evaluation mode
    assert not np.allclose(bn.running_mean, 0.0) and not np.allclose(bn.running_var, 1)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    h = X[:5] @ model.layers[0].weight.data + model.layers[0].bias.data
    expected = (h - rm) / np.sqrt(rv + bn.eps) * bn.weight.data + bn.bias.data
    expected = np.maximum(expected, 0) @ model.layers[3].weight.data
    expected += model.layers[3].bias.data
    np.testing.assert_allclose(model.predict(X[:5]), expected, rtol=1e-12)
    # one example's prediction does not depend on its batch (a batch of 1 works)
    np.testing.assert_allclose(model.predict(X[:1]), model.predict(X[:5])[:1])
    model.evaluate(X, y)
    np.testing.assert_array_equal(bn.running_mean, rm)  # inference never updates
    np.testing.assert_array_equal(bn.running_var, rv)


def test_validation_does_not_touch_the_running_statistics(rng):
    X, y = blobs(rng)
    Xv, yv = blobs(rng, 60)

    def running_after(**kw):
        model = gn.Sequential(gn.Dense(4, 8), gn.BatchNorm1D(8), gn.Dense(8, 3),
                              seed=0, dtype=np.float64)  # fmt: skip
        model.fit(X, y, loss="softmax_cross_entropy", epochs=3, batch_size=32,
                  verbose=0, **kw)  # fmt: skip
        return model.layers[1].running_mean, model.layers[1].running_var

    plain = running_after()
    validated = running_after(validation_data=(Xv, yv))
    np.testing.assert_array_equal(plain[0], validated[0])
    np.testing.assert_array_equal(plain[1], validated[1])


def test_gradients_of_new_layers_replace_and_do_not_accumulate(rng):
    layers = [f64_bn(gn.BatchNorm1D, 4, rng), f64_ln(4, rng), gn.GELU(), gn.SiLU()]
    x = rng.normal(size=(5, 4))
    for layer in layers:
        out = layer.forward(x)
        dout = rng.normal(size=out.shape)
        dx1 = layer.backward(dout).copy()
        grads = [p.grad.copy() for p in layer.parameters()]
        np.testing.assert_array_equal(layer.backward(dout), dx1)
        for p, g in zip(layer.parameters(), grads, strict=True):
            np.testing.assert_array_equal(p.grad, g)
