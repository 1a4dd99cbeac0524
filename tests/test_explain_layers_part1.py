"""explain and summary for the layers of issue 13: BatchNorm1D/2D, LayerNorm,
Embedding, GELU, SiLU, ELU, Softplus and the global pools.

Each rule's formula is checked against the layer's real backward (training and
inference), each check is shown to fail for a broken backward, and the Jacobian
structure explain states is compared with the Jacobian built column by column.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.reports import explain

NEW_LAYERS = [
    pytest.param(lambda: gn.BatchNorm1D(4), (4,), id="batchnorm1d"),
    pytest.param(lambda: gn.BatchNorm1D(3, momentum=0.3), (3, 5), id="batchnorm1d-ncl"),
    pytest.param(lambda: gn.BatchNorm2D(2, eps=1e-3), (2, 3, 4), id="batchnorm2d"),
    pytest.param(lambda: gn.LayerNorm(5), (5,), id="layernorm"),
    pytest.param(lambda: gn.LayerNorm(4), (3, 4), id="layernorm-sequence"),
    pytest.param(lambda: gn.LayerNorm((2, 3, 3)), (2, 3, 3), id="layernorm-image"),
    pytest.param(
        lambda: gn.LayerNorm(4, elementwise_affine=False), (4,), id="layernorm-plain"
    ),
    pytest.param(lambda: gn.Embedding(6, 3), (4,), id="embedding"),
    pytest.param(lambda: gn.Embedding(5, 2), (), id="embedding-ids-n"),
    pytest.param(lambda: gn.GELU(), (6,), id="gelu"),
    pytest.param(lambda: gn.GELU("tanh"), (6,), id="gelu-tanh"),
    pytest.param(lambda: gn.SiLU(), (2, 3), id="silu"),
    pytest.param(lambda: gn.ELU(), (6,), id="elu"),
    pytest.param(lambda: gn.ELU(0.3), (6,), id="elu-alpha"),
    pytest.param(lambda: gn.Softplus(), (6,), id="softplus"),
    pytest.param(lambda: gn.Softplus(2.0, threshold=1.0), (6,), id="softplus-linear"),
    pytest.param(lambda: gn.GlobalAvgPool1D(), (3, 5), id="global-avg-1d"),
    pytest.param(lambda: gn.GlobalMaxPool1D(), (3, 5), id="global-max-1d"),
    pytest.param(lambda: gn.GlobalAvgPool2D(), (2, 3, 4), id="global-avg-2d"),
    pytest.param(lambda: gn.GlobalMaxPool2D(), (2, 3, 4), id="global-max-2d"),
]


def _explain_one(layer, shape, batch, training=True):
    if shape == ():  # Embedding on ids (N,): explain draws ids of that shape
        shape = (1,)
        model = gn.Sequential(layer, gn.Flatten(), seed=0)
        return explain(model, shape, batch_size=batch, training=training)
    return explain(
        gn.Sequential(layer, seed=0), shape, batch_size=batch, training=training
    )


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("batch", [2, 5])
@pytest.mark.parametrize("make, shape", NEW_LAYERS)
def test_every_new_formula_matches_the_layer_backward(make, shape, batch, training):
    layer = make()
    report = _explain_one(layer, shape, batch, training)
    entry = report.layers[0]
    params = [p.name for p in layer.parameters()]
    assert sorted(entry.check) == sorted(["x", *params])  # every gradient is checked
    assert entry.matches and report.matches, entry.check
    assert max(entry.check.values()) < 1e-12
    assert entry.derivation.jacobian is not None


def test_a_model_with_every_new_layer_is_explained_and_matches():
    block = gn.Sequential(gn.BatchNorm1D(6), gn.Dense(6, 6), gn.GELU("tanh"))
    model = gn.Sequential(
        gn.Dense(5, 6), gn.BatchNorm1D(6), gn.GELU(), gn.Residual(block),
        gn.LayerNorm(6), gn.SiLU(), gn.ELU(0.5), gn.Softplus(2.0), gn.Dense(6, 3),
        seed=0,
    )  # fmt: skip
    images = gn.Sequential(
        gn.Conv2D(2, 4, 3, padding=1), gn.BatchNorm2D(4), gn.ReLU(),
        gn.LayerNorm((4, 5, 5)), gn.GlobalMaxPool2D(), gn.Dense(4, 3),
        seed=0,
    )  # fmt: skip
    sequences = gn.Sequential(
        gn.Embedding(9, 4), gn.LayerNorm(4), gn.GlobalAvgPool1D(), gn.Dense(6, 3),
        seed=0,
    )  # fmt: skip
    signals = gn.Sequential(
        gn.Conv1D(2, 4, 3, stride=2, padding=1), gn.BatchNorm1D(4), gn.ReLU(),
        gn.MaxPool1D(2), gn.AvgPool1D(2, stride=1), gn.GlobalMaxPool1D(),
        gn.Dense(4, 3), seed=0,
    )  # fmt: skip
    cases = [(model, (5,)), (images, (2, 5, 5)), (sequences, (6,)), (signals, (2, 17))]
    for net, shape in cases:
        for training in (True, False):
            report = explain(
                net, shape, batch_size=16, loss="softmax_cross_entropy",
                training=training,
            )  # fmt: skip
            assert [e.index for e in report.layers] == [
                n for n, _ in net.named_layers()
            ]
            assert report.matches, str(report)
            assert "glassnet has no formula" not in str(report)  # a rule each


def test_a_dense_bias_before_batchnorm_is_not_a_false_alarm():
    """BatchNorm's dL/dx sums to 0 over the batch for every feature, so the
    Dense bias below it gets a gradient that is float64 roundoff, computed two
    ways: explain must not call that a mismatch, at any batch size."""
    for batch in (2, 16, 256):
        model = gn.Sequential(gn.Dense(4, 6), gn.BatchNorm1D(6), seed=0)
        report = explain(model, (4,), batch_size=batch)
        bias = report.layers[0].check["bias"]
        assert report.matches and bias < 1e-9, (batch, bias)
    conv = gn.Sequential(
        gn.Conv2D(2, 3, 3, padding=1), gn.BatchNorm2D(3), gn.GlobalAvgPool2D(), seed=0
    )
    assert explain(conv, (2, 16, 16), batch_size=64).matches


def _text(report) -> str:
    """Every formula, structure and note of the report, unwrapped."""
    parts = []
    for e in report.layers:
        d = e.derivation
        parts += [d.forward.formula, d.forward.shapes, *d.why]
        parts += [f"{s.formula} {s.shapes}" for s in d.backward]
        parts += [d.jacobian.text()] if d.jacobian else []
    return "\n".join([str(report), *parts])


def test_batchnorm_text_states_the_per_feature_block():
    bn1 = _text(explain(gn.Sequential(gn.BatchNorm1D(3), seed=0), (3,), batch_size=7))
    assert "one dense N x N block per feature (3 blocks of 7 x 7)" in bn1
    assert "147 of 441 entries can be nonzero; never built" in bn1  # 3 * 7 * 7
    assert "m * g - dL/dbias - xhat * dL/dweight" in bn1
    assert "docs/batchnorm_backward.md" in bn1
    bn2 = explain(gn.Sequential(gn.BatchNorm2D(2), seed=0), (2, 3, 3), batch_size=4)
    assert "one dense N*H*W x N*H*W block per feature (2 blocks of 36 x 36)" in _text(
        bn2
    )
    inference = explain(
        gn.Sequential(gn.BatchNorm1D(3), seed=0), (3,), batch_size=7, training=False
    )
    text = _text(inference)
    assert "inference mode" in text and "diagonal: an affine map per feature" in text
    assert "g * weight / sqrt(running_var + eps)" in text


def test_other_new_texts_state_their_structure():
    ln = _text(explain(gn.Sequential(gn.LayerNorm(4), seed=0), (3, 4), batch_size=2))
    assert "one dense D x D block per row (6 blocks of 4 x 4)" in ln
    emb = _text(explain(gn.Sequential(gn.Embedding(5, 2), seed=0), (3,), batch_size=2))
    assert "a gather of rows of weight (5, 2)" in emb
    assert "np.add.at" in emb and "ids are not differentiable" in emb
    gelu = _text(explain(gn.Sequential(gn.GELU(), seed=0), (3,), batch_size=2))
    assert "Phi(x) + x * phi(x)" in gelu and "diagonal" in gelu
    pool = _text(
        explain(gn.Sequential(gn.GlobalMaxPool1D(), seed=0), (2, 5), batch_size=2)
    )
    assert "first maximum" in pool and "a selection: one 1 per row" in pool


# -- a wrong backward is caught --------------------------------------------------


class EvalFormulaBatchNorm(gn.BatchNorm1D):
    """The classic mistake: the statistics treated as constants in training."""

    def backward(self, dout):
        super().backward(dout)
        training, xhat, inv_std, axes, shape = self._cached()
        return dout * (self.weight.data * inv_std).reshape(shape)


class WrongLayerNorm(gn.LayerNorm):
    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = self.weight.grad * 2.0
        return dx


class OverwritingEmbedding(gn.Embedding):
    """dW[ids] = g: repeated ids keep one row instead of the sum."""

    def backward_params(self, dout):
        ids = self._cached()
        grad = np.zeros_like(self.weight.data)
        grad[ids.reshape(-1)] = dout.reshape(-1, self.embedding_dim)
        self.weight.grad = grad


class ApproximateGELU(gn.GELU):
    """The exact forward with the tanh approximation's derivative."""

    def backward(self, dout):
        x, _ = self._cached()
        t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
        return dout * 0.5 * (1 + t)  # forgets the second term


class SplittingMaxPool(gn.GlobalMaxPool1D):
    """Sends every channel's gradient to its last position."""

    def backward(self, dout):
        x_shape, _ = self._cached()
        dx = np.zeros(x_shape, dtype=dout.dtype)
        dx[:, :, -1] = dout
        return dx


class WrongSoftplus(gn.Softplus):
    def backward(self, dout):
        z, _ = self._cached()
        return dout / (1.0 + np.exp(z))  # sigmoid(-z): the wrong sign


@pytest.mark.parametrize(
    "layer, shape, bad",
    [
        (EvalFormulaBatchNorm(4), (4,), "x"),
        (WrongLayerNorm(4), (4,), "weight"),
        (OverwritingEmbedding(3, 2), (6,), "weight"),
        (ApproximateGELU(), (5,), "x"),
        (SplittingMaxPool(), (2, 5), "x"),
        (WrongSoftplus(), (5,), "x"),
    ],
)
def test_a_wrong_new_backward_fails_the_formula_check(layer, shape, bad):
    report = explain(gn.Sequential(layer, seed=0), shape, batch_size=4)
    entry = report.layers[0]
    assert not entry.matches and not report.matches
    assert entry.check[bad] > 1e-3
    assert "DIFFERS from backward" in str(report)


# -- the stated Jacobian is the real one -----------------------------------------


def _jacobian(layer, x):
    """d out / d x, (out.size, x.size), built from backward with unit upstream
    gradients (row k of the Jacobian is the VJP with e_k)."""
    out = layer.forward(x)
    rows = []
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        layer.forward(x)
        rows.append(layer.backward(e.reshape(out.shape)).ravel())
    return np.array(rows)


f64 = {"dtype": np.float64}


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "make, shape, group_axis",
    [
        (lambda: gn.BatchNorm1D(3, **f64), (3,), 1),
        (lambda: gn.BatchNorm1D(2, **f64), (2, 3), 1),
        (lambda: gn.BatchNorm2D(2, **f64), (2, 2, 2), 1),
        (lambda: gn.LayerNorm(4, **f64), (4,), None),
        (lambda: gn.LayerNorm((2, 3), **f64), (2, 3), None),
        (lambda: gn.GELU(), (4,), None),
        (lambda: gn.SiLU(), (4,), None),
        (lambda: gn.ELU(), (4,), None),
        (lambda: gn.Softplus(), (4,), None),
        (lambda: gn.GlobalAvgPool1D(), (2, 3), None),
        (lambda: gn.GlobalMaxPool2D(), (2, 2, 3), None),
        (lambda: gn.Embedding(4, 2, **f64), (3,), None),
    ],
)
def test_stated_jacobian_of_new_layers_is_the_real_one(
    make, shape, group_axis, training, rng
):
    layer = make()
    N = 4
    if isinstance(layer, gn.Embedding):
        x = rng.integers(0, 4, (N, *shape)).astype(np.float64)
    else:
        x = rng.uniform(0.1, 1.0, (N, *shape)) * rng.choice([-1.0, 1.0], (N, *shape))
    layer.training = training
    J = _jacobian(layer, x)
    layer.training = False
    report = explain(
        gn.Sequential(layer, seed=0, dtype=np.float64), X=x, training=training
    )
    stated = report.layers[0].derivation.jacobian
    assert (stated.rows, stated.cols) == J.shape
    assert int(np.sum(np.abs(J) > 1e-14)) == stated.nonzeros
    if group_axis is None or not training:  # examples do not mix
        per_out, per_in = J.shape[0] // N, J.shape[1] // N
        for n in range(N):
            for m in range(N):
                block = J[
                    n * per_out : (n + 1) * per_out, m * per_in : (m + 1) * per_in
                ]
                assert n == m or not block.any()
    else:  # BatchNorm in training: examples mix, features (channels) do not
        channel = np.broadcast_to(
            np.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2)), x.shape
        ).ravel()
        links = np.abs(J) > 1e-14
        assert not (links & (channel[:, None] != channel[None, :])).any()


# -- summary ---------------------------------------------------------------------


def test_summary_counts_buffers_apart_from_parameters():
    block = gn.Sequential(gn.BatchNorm1D(6), gn.Dense(6, 6))
    model = gn.Sequential(
        gn.Dense(4, 6), gn.Residual(block), gn.BatchNorm1D(6, dtype=np.float64),
        gn.Dense(6, 3),
        seed=0,
    )  # fmt: skip
    report = model.summary((4,), batch_size=8)
    rows = {r.index: r for r in report.rows}
    assert rows["1.block.0"].buffers == {"running_mean": (6,), "running_var": (6,)}
    assert rows["2"].buffers == {"running_mean": (6,), "running_var": (6,)}
    assert rows["0"].buffers == {} and rows["1"].buffers == {}
    assert report.totals["buffers"] == 24
    assert report.totals["buffer_bytes"] == 12 * 4 + 12 * 8  # each in its own dtype
    assert report.totals["params"] == sum(p.size for p in model.parameters())
    assert report.totals["param_bytes"] == sum(
        p.data.nbytes for p in model.parameters()
    )
    text = str(report)
    assert "plus 24 buffer values (144 B" in text and "in layers 1.block.0, 2" in text
    assert "xhat (8, 6)" in text  # BatchNorm's cache, named
    as_dict = report.to_dict()
    assert as_dict["totals"]["buffers"] == 24
    assert as_dict["layers"][3]["buffers"] == {"running_mean": [6], "running_var": [6]}
    assert "buffer" not in str(gn.Sequential(gn.Dense(4, 3)).summary((4,)))


def test_summary_and_explain_of_an_embedding_model_draw_ids():
    model = gn.Sequential(gn.Embedding(7, 3), gn.Flatten(), gn.Dense(12, 2), seed=0)
    report = model.summary((4,), batch_size=5)
    assert report.rows[0].output_shape == (5, 4, 3)
    assert report.rows[0].cache[0][0] == "ids"
    assert explain(model, (4,), batch_size=5).matches
