"""The promise, for every layer glassnet ships: a planted backward bug fails
gradcheck and the report names the layer that holds it; the same model without
the bug passes.

Each case is a small model with the layer under test at a known path, after a
layer with parameters (so a wrong dL/dx shows in someone's gradient). Bugs are
planted by swapping the instance's class for a subclass whose backward runs the
real one and then spoils one result: every entry of one parameter gradient
(scaled by 1.05), a single entry of it (the last, which the sampled elements
may miss: only the whole-tensor projection can catch it), or dL/dx the same two
ways. The checker must fail and name that layer's path in each case.
"""

import numpy as np
import pytest

import glassnet as gn

N = 6  # batch


def _ids(rng):
    return rng.integers(0, 7, size=(N, 5))  # (N, T) token ids


def _vec(rng):
    return rng.normal(size=(N, 4))


def _img(rng):
    return rng.normal(size=(N, 1, 6, 6))


def _sig(rng):
    return rng.normal(size=(N, 2, 8))


# (name, layers, path of the layer under test, input)
CASES = [
    ("dense", lambda: [gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3)], "2", _vec),
    (
        "conv2d",
        lambda: [
            gn.Conv2D(1, 2, 3, padding=1),
            gn.Tanh(),
            gn.Conv2D(2, 2, 3, stride=2),
            gn.Flatten(),
            gn.Dense(8, 3),
        ],
        "2",
        _img,
    ),
    (
        "conv1d",
        lambda: [
            gn.Conv1D(2, 3, 3, padding="same"),
            gn.Tanh(),
            gn.Conv1D(3, 2, 3),
            gn.Flatten(),
            gn.Dense(12, 3),
        ],
        "2",
        _sig,
    ),
    (
        "maxpool2d",
        lambda: [
            gn.Conv2D(1, 2, 3, padding=1),
            gn.Tanh(),
            gn.MaxPool2D(2),
            gn.Flatten(),
            gn.Dense(18, 3),
        ],
        "2",
        _img,
    ),
    (
        "avgpool1d",
        lambda: [
            gn.Conv1D(2, 3, 3, padding="same"),
            gn.Tanh(),
            gn.AvgPool1D(2),
            gn.Flatten(),
            gn.Dense(12, 3),
        ],
        "2",
        _sig,
    ),
    (
        "global-avg-pool2d",
        lambda: [
            gn.Conv2D(1, 3, 3, padding=1),
            gn.Tanh(),
            gn.GlobalAvgPool2D(),
            gn.Dense(3, 3),
        ],
        "2",
        _img,
    ),
    (
        "batchnorm1d",
        lambda: [gn.Dense(4, 5), gn.BatchNorm1D(5), gn.Tanh(), gn.Dense(5, 3)],
        "1",
        _vec,
    ),
    (
        "batchnorm2d",
        lambda: [
            gn.Conv2D(1, 2, 3, padding=1),
            gn.BatchNorm2D(2),
            gn.Tanh(),
            gn.Flatten(),
            gn.Dense(72, 3),
        ],
        "1",
        _img,
    ),
    (
        "layernorm",
        lambda: [gn.Dense(4, 5), gn.LayerNorm(5), gn.Tanh(), gn.Dense(5, 3)],
        "1",
        _vec,
    ),
    ("gelu", lambda: [gn.Dense(4, 5), gn.GELU(), gn.Dense(5, 3)], "1", _vec),
    ("silu", lambda: [gn.Dense(4, 5), gn.SiLU(), gn.Dense(5, 3)], "1", _vec),
    ("elu", lambda: [gn.Dense(4, 5), gn.ELU(), gn.Dense(5, 3)], "1", _vec),
    ("softplus", lambda: [gn.Dense(4, 5), gn.Softplus(), gn.Dense(5, 3)], "1", _vec),
    ("sigmoid", lambda: [gn.Dense(4, 5), gn.Sigmoid(), gn.Dense(5, 3)], "1", _vec),
    (
        "embedding",
        lambda: [gn.Embedding(7, 4), gn.Flatten(), gn.Dense(20, 3)],
        "0",
        _ids,
    ),
    (
        "positional-embedding",
        lambda: [
            gn.Embedding(7, 4),
            gn.PositionalEmbedding(5, 4),
            gn.Flatten(),
            gn.Dense(20, 3),
        ],
        "1",
        _ids,
    ),
    ("rnn", lambda: [gn.Embedding(7, 4), gn.RNN(4, 5), gn.Dense(5, 3)], "1", _ids),
    ("lstm", lambda: [gn.Embedding(7, 4), gn.LSTM(4, 5), gn.Dense(5, 3)], "1", _ids),
    (
        "gru-bidirectional",
        lambda: [gn.Embedding(7, 4), gn.GRU(4, 5, bidirectional=True), gn.Dense(10, 3)],
        "1",
        _ids,
    ),
    (
        "multi-head-attention",
        lambda: [
            gn.Embedding(7, 4),
            gn.MultiHeadAttention(4, 2, causal=True),
            gn.Flatten(),
            gn.Dense(20, 3),
        ],
        "1",
        _ids,
    ),
    (
        "attention-inside-transformer-block",
        lambda: [
            gn.Embedding(7, 4),
            gn.TransformerBlock(embed_dim=4, num_heads=2, mlp_dim=6),
            gn.Flatten(),
            gn.Dense(20, 3),
        ],
        "1.self_attn",
        _ids,
    ),
    (
        "dense-inside-time-distributed",
        lambda: [gn.Embedding(7, 4), gn.TimeDistributed(gn.Dense(4, 2)), gn.Flatten()],
        "1.layer",
        _ids,
    ),
    (
        "dense-inside-residual",
        lambda: [
            gn.Dense(4, 3),
            gn.Residual(gn.Sequential(gn.Dense(3, 3), gn.Tanh())),
            gn.Dense(3, 3),
        ],
        "1.block.0",
        _vec,
    ),
]


def _model(make_layers):
    return gn.Sequential(*make_layers(), seed=0, dtype=np.float64)


def _layer_at(model, path):
    found = dict(model.named_layers())
    assert path in found, sorted(found)  # the case names a real path
    return found[path]


def _spoil(array, how):
    if how == "scale":
        return array * 1.05
    spoiled = np.array(array, copy=True)
    spoiled.flat[-1] += 0.1 * (np.abs(array).max() + 0.01)
    return spoiled


def plant(layer, target, how):
    """Swap layer's class for one whose backward spoils `target` ("input" for
    dL/dx, else a parameter's own name) after the real backward ran."""
    cls = type(layer)

    def backward(self, dout):
        dx = cls.backward(self, dout)
        if target == "input":
            return _spoil(dx, how)
        p = next(p for p in cls.parameters(self) if p.name == target)
        p.grad = _spoil(p.grad, how)
        return dx

    # backward_params belongs to the real class: fit would bypass the bug; the
    # checker reads backward, which is what is planted here
    layer.__class__ = type(f"Planted{cls.__name__}", (cls,), {"backward": backward})


def _plants():
    for name, make_layers, path, make_x in CASES:
        layer = _layer_at(_model(make_layers), path)
        own = [p.name for p in layer.parameters() if "." not in p.name]
        takes_ids = make_x is _ids and path == "0"  # ids have no gradient
        targets = own + ([] if takes_ids else ["input"])
        for target in targets:
            for how in ("scale", "one-entry"):
                yield pytest.param(
                    make_layers, path, make_x, target, how, id=f"{name}-{target}-{how}"
                )


def _check(model, make_x):
    rng = np.random.default_rng(1)
    X = make_x(rng)
    y = np.arange(N) % 3
    return gn.gradcheck(
        model, X, y, loss="softmax_cross_entropy", training=True, max_elements=50
    )


@pytest.mark.parametrize("make_layers, path, make_x, target, how", list(_plants()))
def test_a_planted_bug_fails_and_names_its_layer(
    make_layers, path, make_x, target, how
):
    model = _model(make_layers)
    plant(_layer_at(model, path), target, how)
    report = _check(model, make_x)
    assert not report.passed, str(report)
    named = [note for note in report.notes if note.startswith("faulty layer")]
    assert named, report.notes
    assert named[0].startswith(f"faulty layer {path} (Planted"), named


@pytest.mark.parametrize(
    "make_layers, make_x",
    [pytest.param(case[1], case[3], id=case[0]) for case in CASES],
)
def test_the_same_models_without_a_bug_pass(make_layers, make_x):
    report = _check(_model(make_layers), make_x)
    assert report.passed, str(report)
    assert not any(note.startswith("faulty layer") for note in report.notes)
    ids = make_x is _ids  # integer ids: no input row, and the report says why
    assert ("input" in [row.name for row in report.rows]) is not ids
    assert any("ids" in note for note in report.notes) is ids


@pytest.mark.parametrize("checked", ["layer", "model"])
def test_integer_features_are_differentiated_unless_an_embedding_takes_them(checked):
    """Only an Embedding's ids lose the input row: integer features given to any
    other layer are checked as floats, so a wrong dL/dx still fails."""
    X = np.arange(N * 4).reshape(N, 4) % 5  # integer features, not ids
    dense = gn.Dense(4, 3, dtype=np.float64, rng=np.random.default_rng(0))
    plant(dense, "input", "scale")
    if checked == "layer":
        report = gn.gradcheck(dense, X)
    else:
        model = gn.Sequential(gn.Dense(4, 4), dense, seed=0, dtype=np.float64)
        plant(model.layers[0], "input", "scale")
        report = gn.gradcheck(model, X, np.arange(N) % 3, loss="softmax_cross_entropy")
    assert "input" in [row.name for row in report.rows]
    assert not report.passed, str(report)
    assert not report["input"].passed
