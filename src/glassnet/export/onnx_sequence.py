"""to_onnx for the sequence layers: RNN, LSTM, GRU, MultiHeadAttention,
TransformerBlock, PositionalEmbedding and SinusoidalPositionalEncoding.

Recurrent layers: float32 graphs use ONNX's own RNN, LSTM and GRU operators,
with the gate blocks reordered from PyTorch's layout (glassnet's) to ONNX's
(LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h, with
linear_before_reset=1, PyTorch's r * (h @ W_hn.T + b_hn)) by a Gather on the
weights' rows. ONNX Runtime's CPU provider has no float64 kernel for them, so
float64 graphs unroll the T steps into MatMul, Add, Sigmoid and Tanh, each step
as glassnet computes it (T is fixed by input_shape; the batch stays dynamic).
An RNN with nonlinearity="relu" is unrolled in float32 too: onnx's reference
evaluator knows only Tanh for the RNN operator.

Attention is written out: the in-projection as one MatMul, the heads by
Reshape and Transpose, MatMul, the causal mask by Where, Softmax, MatMul.

This module imports onnx: glassnet.export loads it on first use.
"""

import numpy as np
from onnx import helper

from glassnet.export.onnx_graph import OnnxGraph, exports
from glassnet.nn.layers import (
    GRU,
    LSTM,
    RNN,
    MultiHeadAttention,
    PositionalEmbedding,
    SinusoidalPositionalEncoding,
    TransformerBlock,
)

# PyTorch's gate blocks (glassnet's layout) in the order ONNX's operator wants
_ONNX_GATE_ORDER = {RNN: [0], LSTM: [0, 3, 1, 2], GRU: [1, 0, 2]}


def _gate(graph: OnnxGraph, a: str, k: int, H: int) -> str:
    """Gate block k of a (N, G*H): columns k*H .. (k+1)*H - 1."""
    return graph.node(
        "Slice",
        [a, graph.ints([k * H], "start"), graph.ints([(k + 1) * H], "end"),
         graph.ints([1], "axis")],
    )  # fmt: skip


# -- one time step, as glassnet's cells compute it (float64 graphs) -----------------


def _rnn_step(layer, graph, xw, hw, state, H):
    a = graph.node("Add", [xw, hw])
    return (graph.node("Tanh" if layer.nonlinearity == "tanh" else "Relu", [a]),)


def _lstm_step(layer, graph, xw, hw, state, H):
    _, c_prev = state
    a = graph.node("Add", [xw, hw])  # (N, 4H): i, f, g, o
    i, f, g, o = (_gate(graph, a, k, H) for k in range(4))
    i, f, o = (graph.node("Sigmoid", [v]) for v in (i, f, o))
    g = graph.node("Tanh", [g])
    c = graph.node("Add", [graph.node("Mul", [f, c_prev]), graph.node("Mul", [i, g])])
    return graph.node("Mul", [o, graph.node("Tanh", [c])]), c


def _gru_step(layer, graph, xw, hw, state, H):
    (h_prev,) = state
    xr, xz, xn = (_gate(graph, xw, k, H) for k in range(3))
    hr, hz, hn = (_gate(graph, hw, k, H) for k in range(3))
    r = graph.node("Sigmoid", [graph.node("Add", [xr, hr])])
    z = graph.node("Sigmoid", [graph.node("Add", [xz, hz])])
    n = graph.node("Tanh", [graph.node("Add", [xn, graph.node("Mul", [r, hn])])])
    delta = graph.node("Mul", [z, graph.node("Sub", [h_prev, n])])
    return (graph.node("Add", [n, delta]),)  # (1 - z) n + z h_prev


_STEPS = {RNN: _rnn_step, LSTM: _lstm_step, GRU: _gru_step}


def _unrolled(layer, graph: OnnxGraph, x: str, T: int) -> str:
    """The recurrence over T steps, one MatMul for every step's input term and
    one per step for the recurrent term; the state starts at zeros (N, H)."""
    H = layer.hidden_size
    step = _STEPS[type(layer)]
    batch = graph.node("Shape", [x], start=0, end=1)  # (1,): N, dynamic
    shape = graph.node("Concat", [batch, graph.ints([H], "hidden")], axis=0)
    zero = helper.make_tensor("zero", _elem(graph), [1], [0.0])
    zeros = graph.node("ConstantOfShape", [shape], value=zero)  # (N, H)
    directions = []
    for d, suffix in enumerate(layer._suffixes()):
        w_ih, w_hh, b_ih, b_hh = (graph.param(p) for p in layer._params(suffix))
        xw = graph.node("MatMul", [x, graph.node("Transpose", [w_ih])])
        xw = graph.node("Add", [xw, b_ih])  # (N, T, G*H): every step at once
        w_hh_t = graph.node("Transpose", [w_hh])  # (H, G*H)
        state = (zeros,) * len(layer._STATE)
        hs = {}
        for t in range(T) if d == 0 else reversed(range(T)):
            xw_t = graph.node("Gather", [xw, graph.constant(np.int64(t), "t")], axis=1)
            hw_t = graph.node("Add", [graph.node("MatMul", [state[0], w_hh_t]), b_hh])
            state = step(layer, graph, xw_t, hw_t, state, H)
            hs[t] = state[0]  # (N, H), by time step
        directions.append(hs)
    if not layer.return_sequences:  # the forward h_{T-1}, the reverse h at t = 0
        last = [directions[0][T - 1]] + [hs[0] for hs in directions[1:]]
        return last[0] if len(last) == 1 else graph.node("Concat", last, axis=1)
    axis = graph.ints([1], "time_axis")
    per_direction = [
        graph.node(
            "Concat",
            [graph.node("Unsqueeze", [hs[t], axis]) for t in range(T)],
            axis=1,
        )
        for hs in directions
    ]  # each (N, T, H)
    if len(per_direction) == 1:
        return per_direction[0]
    return graph.node("Concat", per_direction, axis=2)


def _elem(graph: OnnxGraph) -> int:
    return helper.np_dtype_to_tensor_dtype(graph.dtype)


def _native(layer, graph: OnnxGraph, x: str, T: int) -> str:
    """ONNX's RNN, LSTM or GRU operator on (T, N, D), weights reordered."""
    H = layer.hidden_size
    order = _ONNX_GATE_ORDER[type(layer)]
    blocks = [np.arange(k * H, (k + 1) * H) for k in order]
    rows = graph.ints(np.concatenate(blocks), "gate_order")
    first = graph.ints([0], "direction_axis")
    W, R, B = [], [], []
    for suffix in layer._suffixes():
        w_ih, w_hh, b_ih, b_hh = (
            graph.node("Gather", [graph.param(p), rows], axis=0)
            for p in layer._params(suffix)
        )  # each in ONNX's gate order
        W.append(graph.node("Unsqueeze", [w_ih, first]))  # (1, G*H, D)
        R.append(graph.node("Unsqueeze", [w_hh, first]))  # (1, G*H, H)
        bias = graph.node("Concat", [b_ih, b_hh], axis=0)  # (2 G*H,)
        B.append(graph.node("Unsqueeze", [bias, first]))
    W, R, B = (
        v[0] if len(v) == 1 else graph.node("Concat", v, axis=0) for v in (W, R, B)
    )  # (directions, ...)
    dirs = len(layer._suffixes())
    attributes = {
        "hidden_size": H,
        "direction": "bidirectional" if dirs == 2 else "forward",
    }
    if isinstance(layer, RNN):
        attributes["activations"] = ["Tanh"] * dirs
    if isinstance(layer, GRU):
        attributes["linear_before_reset"] = 1  # PyTorch's formulation, glassnet's
    xt = graph.node("Transpose", [x], perm=[1, 0, 2])  # (T, N, D)
    op = type(layer).__name__
    y, y_h = graph.node_outputs(op, [xt, W, R, B], 2, **attributes)
    if layer.return_sequences:  # Y (T, dirs, N, H) -> (N, T, dirs*H)
        y = graph.node("Transpose", [y], perm=[2, 0, 1, 3])
        return graph.node("Reshape", [y, graph.ints([0, T, dirs * H], "shape")])
    y_h = graph.node("Transpose", [y_h], perm=[1, 0, 2])  # (dirs, N, H) -> (N, dirs, H)
    return graph.node("Reshape", [y_h, graph.ints([0, dirs * H], "shape")])


@exports(RNN, LSTM, GRU)
def _recurrent(layer, graph: OnnxGraph, x: str) -> str:
    T, _ = graph.shape(x, needed_by=type(layer).__name__)
    relu = isinstance(layer, RNN) and layer.nonlinearity == "relu"
    if graph.native(type(layer).__name__) and not relu:
        return _native(layer, graph, x, T)
    return _unrolled(layer, graph, x, T)


# -- attention --------------------------------------------------------------------


@exports(MultiHeadAttention)
def _attention(layer: MultiHeadAttention, graph: OnnxGraph, x: str) -> str:
    T, E = graph.shape(x, needed_by="MultiHeadAttention")
    h = layer.num_heads
    d = E // h
    w_in = graph.node("Transpose", [graph.param(layer.in_proj_weight)])  # (E, 3E)
    qkv = graph.node("MatMul", [x, w_in])
    qkv = graph.node("Add", [qkv, graph.param(layer.in_proj_bias)])  # (N, T, 3E)
    split = graph.ints([0, T, h, d], "heads_shape")

    def heads(i: int, perm: list[int]) -> str:
        part = graph.node(
            "Slice",
            [qkv, graph.ints([i * E], "start"), graph.ints([(i + 1) * E], "end"),
             graph.ints([2], "axis")],
        )  # fmt: skip
        return graph.node(
            "Transpose", [graph.node("Reshape", [part, split])], perm=perm
        )

    q = heads(0, [0, 2, 1, 3])  # (N, h, T, d)
    k_t = heads(1, [0, 2, 3, 1])  # (N, h, d, T)
    v = heads(2, [0, 2, 1, 3])
    scores = graph.node("MatMul", [q, k_t])  # (N, h, T, T)
    scores = graph.node("Mul", [scores, graph.scalar(float(1.0 / np.sqrt(d)))])
    if layer.causal:
        allowed = graph.constant(np.tril(np.ones((T, T), dtype=bool)), "causal")
        scores = graph.node("Where", [allowed, scores, graph.scalar(float("-inf"))])
    weights = graph.node("Softmax", [scores], axis=-1)
    out = graph.node("MatMul", [weights, v])  # (N, h, T, d)
    out = graph.node("Transpose", [out], perm=[0, 2, 1, 3])
    out = graph.node("Reshape", [out, graph.ints([0, T, E], "merged_shape")])
    w_out = graph.node("Transpose", [graph.param(layer.out_proj_weight)])
    out = graph.node("MatMul", [out, w_out])
    return graph.node("Add", [out, graph.param(layer.out_proj_bias)])


@exports(TransformerBlock)
def _block(layer: TransformerBlock, graph: OnnxGraph, x: str) -> str:
    T, E = graph.shape(x, needed_by="TransformerBlock")
    a = graph.convert(layer.norm1, "norm1", x)
    h = graph.node("Add", [x, graph.convert(layer.self_attn, "self_attn", a)])
    graph.set_shape(h, (T, E))
    m = graph.convert(layer.norm2, "norm2", h)
    m = graph.node("Reshape", [m, graph.ints([-1, E], "rows")])  # Dense takes rows
    graph.set_shape(m, (E,))
    for name in ("linear1", "activation", "linear2"):
        m = graph.convert(getattr(layer, name), name, m)
    m = graph.node("Reshape", [m, graph.ints([-1, T, E], "sequence")])
    return graph.node("Add", [h, m])


# -- positions -----------------------------------------------------------------------


@exports(PositionalEmbedding)
def _positional(layer: PositionalEmbedding, graph: OnnxGraph, x: str) -> str:
    T, _ = graph.shape(x, needed_by="PositionalEmbedding")
    # weight[:T], (T, E): the first T positions
    rows = graph.node(
        "Slice",
        [graph.param(layer.weight), graph.ints([0], "start"), graph.ints([T], "end"),
         graph.ints([0], "axis")],
    )  # fmt: skip
    return graph.node("Add", [x, rows])


@exports(SinusoidalPositionalEncoding)
def _sinusoidal(layer: SinusoidalPositionalEncoding, graph: OnnxGraph, x: str) -> str:
    T, _ = graph.shape(x, needed_by="SinusoidalPositionalEncoding")
    return graph.node("Add", [x, graph.constant(layer.encoding(T), "encoding")])
