"""The math of MultiHeadAttention, TransformerBlock and the positional layers.

MultiHeadAttention's reference VJP works one example and one head at a time
and builds each query row's softmax Jacobian diag(p) - p p.T as an explicit
T x T matrix; the layer applies all of them at once with the broadcast
P * (dP - rowsum(dP * P)) over (N, heads, T, T). TransformerBlock, a composite,
gets a routing rule like Residual's: how g reaches each sub-layer and how the
two residual paths add, checked against what its sub-layers really received
(each sub-layer is explained and checked in its own section).
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step, matrix_text
from glassnet.reports._table import shape_str


def _s(a) -> str:
    return shape_str(np.shape(a))


# -- MultiHeadAttention -------------------------------------------------------------


def _allowed(t) -> np.ndarray:
    """(N, T, T) booleans, True where query t may attend to key s: the causal
    mask and the key padding mask forward was given (recorded by the trace)."""
    N, T, _ = t.x.shape
    allowed = np.ones((N, T, T), dtype=bool)
    if t.layer.causal:
        allowed &= np.tril(np.ones((T, T), dtype=bool))
    padding = t.options.get("key_padding_mask", t.options.get("arg1"))
    if padding is not None:
        allowed &= ~np.asarray(padding, dtype=bool)[:, None, :]
    return allowed


def _attention_reference(t) -> tuple[dict, np.ndarray]:
    """The gradients by name, one example and one head at a time with explicit
    softmax Jacobians; and P of example 0, head 0 (for the report)."""
    layer, x, g = t.layer, t.x, t.g
    N, T, E = x.shape
    h = layer.num_heads
    d = E // h
    W, b = layer.in_proj_weight.data, layer.in_proj_bias.data
    Wo = layer.out_proj_weight.data
    allowed = _allowed(t)
    grads = {
        "in_proj_weight": np.zeros_like(W),
        "in_proj_bias": np.zeros_like(b),
        "out_proj.weight": np.zeros_like(Wo),
        "out_proj.bias": np.zeros(E),
        "x": np.zeros_like(x),
    }
    first_p = None
    for n in range(N):
        qkv = x[n] @ W.T + b  # (T, 3E): q, k, v side by side
        heads, merged = [], np.zeros((T, E))
        for j in range(h):
            q, k, v = (qkv[:, i * E + j * d : i * E + (j + 1) * d] for i in range(3))
            scores = np.where(allowed[n], q @ k.T / np.sqrt(d), -np.inf)  # (T, T)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            merged[:, j * d : (j + 1) * d] = p @ v
            heads.append((q, k, v, p))
        first_p = heads[0][3] if first_p is None else first_p
        grads["out_proj.weight"] += g[n].T @ merged  # (E, T) @ (T, E)
        grads["out_proj.bias"] += g[n].sum(axis=0)
        dmerged = g[n] @ Wo  # (T, E)
        dqkv = np.zeros((T, 3 * E))
        for j, (q, k, v, p) in enumerate(heads):
            do = dmerged[:, j * d : (j + 1) * d]
            dv = p.T @ do
            dp = do @ v.T  # (T, T)
            # each query row's softmax Jacobian, diag(p_r) - p_r p_r.T, built
            jac = np.einsum("rs,st->rst", p, np.eye(T)) - np.einsum("rs,rt->rst", p, p)
            ds = np.einsum("rst,rt->rs", jac, dp)  # J_r @ dp_r (J is symmetric)
            dq, dk = ds @ k / np.sqrt(d), ds.T @ q / np.sqrt(d)
            for i, part in enumerate((dq, dk, dv)):
                dqkv[:, i * E + j * d : i * E + (j + 1) * d] = part
        grads["in_proj_weight"] += dqkv.T @ x[n]  # (3E, T) @ (T, E)
        grads["in_proj_bias"] += dqkv.sum(axis=0)
        grads["x"][n] = dqkv @ W  # (T, 3E) @ (3E, E): q, k and v's paths added
    return grads, first_p


def _attention(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    N, T, E = x.shape
    h = layer.num_heads
    d, NT = E // h, N * T
    heads = f"({N}, {h}, {T}, {d})"
    square = f"({N}, {h}, {T}, {T})"
    padding = t.options.get("key_padding_mask", t.options.get("arg1"))
    mask = " + mask" if layer.causal or padding is not None else ""
    steps = [
        Step(
            "dL/dout_proj.weight, .bias",
            "g.T @ concat(O), g summed over n and t",
            f"({E}, {NT}) @ ({NT}, {E}) -> ({E}, {E}); ({E},)",
        ),
        Step("dO", "g @ out_proj.weight, split into heads", f"{_s(t.g)} -> {heads}"),
        Step("dV", "P.T @ dO", f"{square} @ {heads} -> {heads}"),
        Step("dP", "dO @ V.T", f"{heads} @ ({N}, {h}, {d}, {T}) -> {square}"),
        Step(
            "dS",
            "P * (dP - rowsum(dP * P))",
            f"{square}: every row's softmax Jacobian diag(p) - p p.T applied",
        ),
        Step(
            "dQ, dK",
            "dS @ K / sqrt(d), dS.T @ Q / sqrt(d)",
            f"{square} @ {heads} -> {heads} each, d = {d}",
        ),
        Step(
            "dL/din_proj_weight, _bias",
            "[dQ, dK, dV] (heads merged).T @ x, summed over n and t",
            f"({3 * E}, {NT}) @ ({NT}, {E}) -> ({3 * E}, {E}); ({3 * E},)",
        ),
        Step(
            "dL/dx",
            "[dQ, dK, dV] @ in_proj_weight",
            f"({N}, {T}, {3 * E}) @ ({3 * E}, {E}) -> {_s(x)}: three paths add",
        ),
    ]
    block = T * E
    if layer.causal:
        structure = (
            f"block-diagonal over examples; inside each ({block}, {block}) block, "
            f"block lower-triangular over time: query t sees keys 0 .. t only"
        )
        nonzeros = N * E * E * T * (T + 1) // 2
    else:
        structure = (
            f"block-diagonal over examples: one dense ({block}, {block}) block "
            "per example, every position attends to every position"
        )
        nonzeros = N * block * block
    why = [
        f"per head and per query, the softmax couples the {T} scores of a row: "
        f"d P / d S is a dense {T} x {T} block diag(p) - p p.T for each of the "
        f"{N * h * T} rows, never built: dS = P * (dP - rowsum(dP * P)) applies "
        "them all at once",
        f"S = Q K.T / sqrt(d) with d = {d}: the scale keeps the scores' variance "
        "near 1, and backward applies it again to dQ and dK",
        f"the heads are a reshape: head j takes features j*{d} .. (j+1)*{d} - 1 of "
        "q, k and v; backward merges dQ, dK, dV with the inverse reshape",
        f"cached: Q, K, V {heads}, P {square} and the merged heads "
        f"({N}, {T}, {E}): P grows with the square of the length",
    ]
    if layer.causal:
        why.append(
            "causal: scores above the diagonal are -inf, so P = 0 there and no "
            "gradient flows from query t to a later key"
        )
    if padding is not None:
        why.append(
            "key padding mask: a padded key's P is 0 for every query, so its k and "
            "v get no gradient"
        )
    numbers = []
    if T <= 6:
        numbers = [
            Step("P, example 0, head 0", matrix_text(_attention_reference(t)[1]))
        ]
    return Derivation(
        Step(
            "forward",
            "q, k, v = x @ in_proj_weight.T + in_proj_bias; per head "
            f"S = q @ k.T / sqrt(d){mask}, P = softmax(S) per row, O = P @ v; "
            "out = concat(O) @ out_proj.weight.T + out_proj.bias",
            f"{_s(x)} -> {_s(out)}; {h} heads of d = {d}: Q, K, V {heads}, "
            f"S and P {square}",
        ),
        steps,
        Jacobian(out.size, x.size, structure, nonzeros),
        why,
        numbers,
    )


def _attention_vjp(t) -> dict:
    return _attention_reference(t)[0]


# -- TransformerBlock (composite) ---------------------------------------------------


def _parts(t) -> dict:
    return {c.local_name: c for c in t.children}


def _block(t) -> Derivation:
    x, out, c = t.x, t.out, _parts(t)
    N, T, E = x.shape
    rows = f"({N * T}, {E})"
    return Derivation(
        Step(
            "forward",
            "h = x + self_attn(norm1(x)); "
            "out = h + linear2(activation(linear1(norm2(h))))",
            f"{_s(x)} -> {_s(out)}; the MLP ({E} -> {c['linear1'].out.shape[1]} -> "
            f"{E}) runs on rows {rows}",
        ),
        [
            Step("g of linear2", "g.reshape(N*T, E)", f"{_s(t.g)} -> {rows}"),
            Step("g of activation", "linear2's dL/dx", _s(c["linear2"].dx)),
            Step("g of linear1", "activation's dL/dx", _s(c["activation"].dx)),
            Step(
                "g of norm2", "linear1's dL/dx, reshaped", f"{rows} -> ({N}, {T}, {E})"
            ),
            Step("dh", "g + norm2's dL/dx", f"{_s(t.g)}: the MLP residual adds"),
            Step("g of self_attn", "dh", _s(t.g)),
            Step("g of norm1", "self_attn's dL/dx", _s(c["self_attn"].dx)),
            Step("dL/dx", "dh + norm1's dL/dx", f"{_s(x)}: the attention residual"),
        ],
        None,
        [
            "two residuals: out depends on h along the identity and the MLP, h on "
            "x along the identity and the attention, so at each the two "
            "gradients add; the identity paths carry g to x untouched",
            "pre-norm: each LayerNorm sits inside its branch, never on the "
            "residual path",
            "each sub-layer is explained and checked in its own section below",
        ],
    )


def _block_vjp(t) -> dict:
    c = _parts(t)
    N, T, E = t.x.shape
    dh = t.g + c["norm2"].dx
    return {
        "g of linear2": t.g.reshape(N * T, E),
        "g of activation": c["linear2"].dx,
        "g of linear1": c["activation"].dx,
        "g of norm2": c["linear1"].dx.reshape(N, T, E),
        "g of self_attn": dh,
        "g of norm1": c["self_attn"].dx,
        "x": dh + c["norm1"].dx,
    }


# -- positional layers --------------------------------------------------------------


def _positional(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    N, T, E = x.shape
    identity = Jacobian(out.size, x.size, "the identity: a constant is added", x.size)
    if not hasattr(layer, "weight"):  # the sinusoidal encoding: nothing learned
        P = layer.encoding(T)
        numbers = [Step("P[:T]", matrix_text(P))] if T <= 6 and E <= 6 else []
        return Derivation(
            Step(
                "forward",
                "out = x + P[:T], P[t, 2i] = sin(t / base**(2i/E)), "
                "P[t, 2i+1] = cos(t / base**(2i/E))",
                f"{_s(x)} + ({T}, {E}) -> {_s(out)}, base = {layer.base:g}",
            ),
            [Step("dL/dx", "g", f"{_s(t.g)}: nothing is learned")],
            identity,
            ["P is fixed: the layer adds a constant, so g passes through as it is"],
            numbers,
        )
    L = layer.max_len
    return Derivation(
        Step("forward", "out = x + weight[:T]", f"{_s(x)} + ({T}, {E}) -> {_s(out)}"),
        [
            Step(
                "dL/dweight",
                "rows 0 .. T-1: g summed over n; rows T .. max_len-1: 0",
                f"{_s(t.g)} -> ({L}, {E})",
            ),
            Step("dL/dx", "g", f"{_s(t.g)}: x passes straight through"),
        ],
        identity,
        [
            f"position t's vector is added to all {N} examples: its gradient "
            "sums g[:, t] over the batch",
            f"positions {T} .. {L - 1} are not used by a sequence of {T}: their "
            "gradient is 0",
        ],
    )


def _positional_vjp(t) -> dict:
    reference = {"x": t.g.copy()}
    if hasattr(t.layer, "weight"):
        T = t.x.shape[1]
        select = np.eye(T, t.layer.max_len)  # (T, max_len): position t -> row t
        reference["weight"] = np.einsum("tm,nte->me", select, t.g)
    return reference


RULES = {
    "MultiHeadAttention": Rule(_attention, _attention_vjp),
    "TransformerBlock": Rule(_block, _block_vjp),
    "PositionalEmbedding": Rule(_positional, _positional_vjp),
    "SinusoidalPositionalEncoding": Rule(_positional, _positional_vjp),
}
