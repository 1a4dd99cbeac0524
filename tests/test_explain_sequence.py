"""explain for the sequence layers: RNN, LSTM, GRU, MultiHeadAttention,
TransformerBlock and the positional layers.

Each rule's reference VJP (backprop through time from explicit per-step
Jacobians; attention one example and one head at a time with explicit softmax
Jacobians) is checked against the layer's real backward, a planted wrong
backward is caught and named, and the Jacobian structure explain states is
compared with the Jacobian built from backward.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.reports import explain
from glassnet.reports._trace import run_trace

LAYERS = [
    pytest.param(lambda: gn.RNN(3, 4), (5, 3), id="rnn-last"),
    pytest.param(lambda: gn.RNN(3, 4, return_sequences=True), (5, 3), id="rnn-seq"),
    pytest.param(
        lambda: gn.RNN(3, 4, "relu", return_sequences=True), (5, 3), id="rnn-relu"
    ),
    pytest.param(lambda: gn.RNN(3, 2, bidirectional=True), (4, 3), id="rnn-bi"),
    pytest.param(lambda: gn.LSTM(3, 4), (6, 3), id="lstm-last"),
    pytest.param(
        lambda: gn.LSTM(3, 2, return_sequences=True, bidirectional=True),
        (5, 3),
        id="lstm-bi-seq",
    ),
    pytest.param(lambda: gn.GRU(3, 4, return_sequences=True), (5, 3), id="gru-seq"),
    pytest.param(lambda: gn.GRU(3, 2, bidirectional=True), (4, 3), id="gru-bi"),
    pytest.param(lambda: gn.MultiHeadAttention(6, 2), (4, 6), id="attention"),
    pytest.param(
        lambda: gn.MultiHeadAttention(6, 3, causal=True), (5, 6), id="attention-causal"
    ),
    pytest.param(lambda: gn.PositionalEmbedding(7, 4), (5, 4), id="positional"),
    pytest.param(lambda: gn.SinusoidalPositionalEncoding(5), (4, 5), id="sinusoidal"),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("make, shape", LAYERS)
def test_every_sequence_formula_matches_the_layer_backward(make, shape, batch):
    layer = make()
    report = explain(gn.Sequential(layer, seed=0), shape, batch_size=batch)
    entry = report.layers[0]
    params = [p.name for p in layer.parameters()]
    # a recurrent layer's per-step dL/dh_t (what gradient_flow reports) too
    steps = ["dL/dh_t"] if isinstance(layer, (gn.RNN, gn.LSTM, gn.GRU)) else []
    assert sorted(entry.check) == sorted(["x", *params, *steps])  # every gradient
    assert entry.matches and report.matches, entry.check
    assert max(entry.check.values()) < 1e-12
    assert entry.derivation.jacobian is not None


def _text(report) -> str:
    """Every formula, structure and note of the report, unwrapped."""
    parts = []
    for e in report.layers:
        d = e.derivation
        parts += [d.forward.formula, d.forward.shapes, *d.why]
        parts += [f"{s.name} {s.formula} {s.shapes}" for s in d.backward]
        parts += [d.jacobian.text()] if d.jacobian else []
    return "\n".join([str(report), *parts])


def _lstm_model():
    return gn.Sequential(gn.Embedding(12, 5), gn.LSTM(5, 6), gn.Dense(6, 3), seed=0)


def _gru_model():
    return gn.Sequential(
        gn.Embedding(12, 4), gn.GRU(4, 3, bidirectional=True), gn.Dense(6, 2), seed=0
    )


def _transformer_model():
    return gn.Sequential(
        gn.Embedding(12, 8), gn.PositionalEmbedding(10, 8),
        gn.TransformerBlock(embed_dim=8, num_heads=2, causal=True),
        gn.GlobalAvgPool1D(), gn.Dense(7, 3),
        seed=0,
    )  # fmt: skip


MODELS = [
    pytest.param(
        _lstm_model,
        [
            "backprop through time",
            "dc from step t+1 + dh_t * o * (1 - tanh(c_t)**2)",
            "the cell path dc_{t-1} = dc_t * f multiplies by the forget gate only",
            "g at t = 6 only",
            "sum over t of da_t.T @ x_t",
            "cached per step: c_prev, i, f, g, o, tanh_c, each (4, 6)",
            "dense over time: the last state depends on all 7 inputs",
        ],
        id="embedding-lstm-dense",
    ),
    pytest.param(
        _gru_model,
        [
            "backprop through time",
            "[da_r, da_z, da_n], [da_r, da_z, da_n * r]",
            "dh_t * z + dhw_t @ weight_hh",
            "the same over t = 6 .. 0 reversed, g[..., 3:6], weights *_reverse",
            "weight_ih_reverse",
        ],
        id="embedding-bigru-dense",
    ),
    pytest.param(
        _transformer_model,
        [
            "dS P * (dP - rowsum(dP * P))",
            "dQ, dK dS @ K / sqrt(d), dS.T @ Q / sqrt(d)",
            "block lower-triangular over time: query t sees keys 0 .. t only",
            "d P / d S is a dense 7 x 7 block diag(p) - p p.T",
            "g of self_attn dh",
            "dL/dx dh + norm1's dL/dx",
            "position t's vector is added to all 4 examples",
        ],
        id="embedding-transformer",
    ),
]


@pytest.mark.parametrize("make, phrases", MODELS)
def test_sequence_models_are_explained_and_match(make, phrases):
    model = make()
    report = explain(model, (7,), batch_size=4, loss="softmax_cross_entropy")
    assert report.matches, str(report)
    assert [e.index for e in report.layers] == [n for n, _ in model.named_layers()]
    text = _text(report)
    assert "glassnet has no formula" not in text  # a rule for every layer
    for phrase in phrases:
        assert phrase in text, phrase


def test_explain_draws_token_ids_for_a_model_starting_with_an_embedding():
    traces, _, _ = run_trace(_lstm_model(), np.zeros((2, 3)), dtype=np.float64)
    report = explain(_lstm_model(), (7,), batch_size=4)
    assert report.input_shape == (4, 7)
    assert report.layers[0].layer == "Embedding(12, 5)" and report.matches
    assert traces[1].x.shape == (2, 3, 5)  # the LSTM saw embedded ids


def test_the_vanishing_picture_is_in_the_report():
    model = gn.Sequential(gn.RNN(2, 3, return_sequences=True), seed=0)
    numbers = explain(model, (4, 2), batch_size=2).layers[0].derivation.numbers
    assert numbers[0].name.startswith("|dL/dh_t|")
    assert len(numbers[0].formula.split()) == 4  # one norm per step


# -- a wrong backward is caught ---------------------------------------------------


class NoRecurrenceRNN(gn.RNN):
    """Truncated to one step: nothing flows back to h_{t-1}."""

    def _step_backward(self, dstate, step_cache, w_hh):
        da, _, (dh_prev,) = super()._step_backward(dstate, step_cache, w_hh)
        return da, da, (np.zeros_like(dh_prev),)


class NoCellPathLSTM(gn.LSTM):
    """Forgets that c_{t-1} reaches c_t: dc_{t-1} = 0."""

    def _step_backward(self, dstate, step_cache, w_hh):
        dxw, dhw, (dh_prev, dc_prev) = super()._step_backward(dstate, step_cache, w_hh)
        return dxw, dhw, (dh_prev, np.zeros_like(dc_prev))


class SharedGradientGRU(gn.GRU):
    """Uses the input product's gradient for the recurrent one (forgets r)."""

    def _step_backward(self, dstate, step_cache, w_hh):
        dxw, _, _ = super()._step_backward(dstate, step_cache, w_hh)
        (dh,) = dstate
        h_prev, r, z, n, hw_n = step_cache
        return dxw, dxw, (dxw @ w_hh + dh * z,)


class NoRowsumAttention(gn.MultiHeadAttention):
    """The softmax gradient as P * dP: the rowsum term of the Jacobian forgotten."""

    def backward(self, dout):
        from glassnet.nn.layers import attention

        def wrong(dout, q, k, v, weights):
            scale = 1.0 / np.sqrt(q.shape[-1])
            dv = weights.swapaxes(-1, -2) @ dout
            dscores = weights * (dout @ v.swapaxes(-1, -2)) * scale
            return dscores @ k, dscores.swapaxes(-1, -2) @ q, dv

        right = attention.scaled_dot_product_attention_backward
        attention.scaled_dot_product_attention_backward = wrong
        try:
            return super().backward(dout)
        finally:
            attention.scaled_dot_product_attention_backward = right


class NoResidualBlock(gn.TransformerBlock):
    """Forgets the attention residual's identity path."""

    def backward(self, dout):
        N, T = self._cached()
        E = self.embed_dim
        dm = self.linear2.backward(dout.reshape(N * T, E))
        dm = self.linear1.backward(self.activation.backward(dm))
        dh = dout + self.norm2.backward(dm.reshape(N, T, E))
        return self.norm1.backward(self.self_attn.backward(dh))


class MeanPositional(gn.PositionalEmbedding):
    """Averages the positions' gradient over the batch instead of summing."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad = self.weight.grad / len(dout)
        return dx


@pytest.mark.parametrize(
    "make, shape, bad",
    [
        (lambda: NoRecurrenceRNN(3, 4, return_sequences=True), (5, 3), "weight_hh"),
        (lambda: NoCellPathLSTM(3, 4), (5, 3), "x"),
        (lambda: SharedGradientGRU(3, 4), (5, 3), "weight_hh"),
        (lambda: NoRowsumAttention(4, 2), (5, 4), "x"),
        (lambda: NoResidualBlock(embed_dim=4, num_heads=2), (5, 4), "x"),
        (lambda: MeanPositional(6, 4), (5, 4), "weight"),
    ],
    ids=["rnn", "lstm", "gru", "attention", "transformer", "positional"],
)
def test_a_wrong_sequence_backward_fails_the_formula_check(make, shape, bad):
    report = explain(gn.Sequential(make(), seed=0), shape, batch_size=3)
    entry = report.layers[0]
    assert not entry.matches and not report.matches
    assert entry.check[bad] > 1e-3
    assert "DIFFERS from backward" in str(report)


def test_a_wrong_backward_inside_the_block_is_named_there():
    block = gn.TransformerBlock(embed_dim=4, num_heads=2)
    wrong = NoRowsumAttention(4, 2)
    wrong.in_proj_weight.data[...] = block.self_attn.in_proj_weight.data
    block.self_attn = wrong
    report = explain(gn.Sequential(block, seed=0), (5, 4), batch_size=2)
    verdict = {e.index: e.matches for e in report.layers}
    assert verdict["0.self_attn"] is False
    assert verdict["0"] and verdict["0.norm1"] and verdict["0.linear1"]


# -- masks the trace records ----------------------------------------------------------


class PaddedAttention(gn.Layer):
    """A user's composite: self-attention with a fixed key padding mask."""

    def __init__(self) -> None:
        self.attn = gn.MultiHeadAttention(4, 2, causal=True, dtype=np.float64)

    def forward(self, x):
        pad = np.zeros((x.shape[0], x.shape[1]), dtype=bool)
        pad[:, -2:] = True  # the last two positions are padding
        return self.attn.forward(x, key_padding_mask=pad)

    def backward(self, dout):
        return self.attn.backward(dout)

    def output_shape(self, input_shape):
        return tuple(input_shape)


def test_the_key_padding_mask_forward_got_is_used_by_the_reference():
    report = explain(gn.Sequential(PaddedAttention(), seed=0), (5, 4), batch_size=3)
    entry = next(e for e in report.layers if e.index == "0.attn")
    assert entry.matches and max(entry.check.values()) < 1e-12, entry.check
    assert "key padding mask: a padded key's P is 0" in " ".join(entry.derivation.why)


# -- the stated Jacobian is the real one -----------------------------------------


def _jacobian(layer, x):
    """d out / d x, (out.size, x.size), one backward per unit upstream gradient."""
    out = layer.forward(x)
    rows = []
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        layer.forward(x)
        rows.append(layer.backward(e.reshape(out.shape)).ravel())
    return np.array(rows)


f64 = {"dtype": np.float64}


@pytest.mark.parametrize(
    "make, shape, lower",
    [
        (lambda: gn.RNN(2, 3, return_sequences=True, **f64), (4, 2), True),
        (lambda: gn.GRU(2, 3, return_sequences=True, **f64), (4, 2), True),
        (lambda: gn.LSTM(2, 2, return_sequences=True, **f64), (5, 2), True),
        (lambda: gn.LSTM(2, 3, **f64), (4, 2), False),
        (lambda: gn.GRU(2, 2, bidirectional=True, **f64), (3, 2), False),
        (lambda: gn.MultiHeadAttention(4, 2, causal=True, **f64), (4, 4), True),
        (lambda: gn.MultiHeadAttention(4, 2, **f64), (3, 4), False),
    ],
    ids=["rnn", "gru", "lstm", "lstm-last", "gru-bi-last", "causal", "attention"],
)
def test_stated_jacobian_of_sequence_layers_is_the_real_one(make, shape, lower, rng):
    layer = make()
    N, (T, D) = 2, shape
    x = rng.standard_normal((N, *shape))
    J = _jacobian(layer, x)
    report = explain(gn.Sequential(layer, seed=0, dtype=np.float64), X=x)
    stated = report.layers[0].derivation.jacobian
    assert (stated.rows, stated.cols) == J.shape
    assert int(np.sum(np.abs(J) > 1e-14)) == stated.nonzeros
    per_example = J.reshape(N, J.shape[0] // N, N, T, D)
    for n in range(N):
        for m in range(N):
            assert n == m or not per_example[n, :, m].any()  # examples independent
    if lower:  # out[t] depends on x[0 .. t] only
        W = J.shape[0] // (N * T)
        blocks = J.reshape(N, T, W, N, T, D)
        for t in range(T):
            assert not blocks[:, t, :, :, t + 1 :].any()
            assert blocks[:, t, :, :, : t + 1].any()
