"""The math of each layer: formulas to print and the same formulas as NumPy.

A rule has two halves that must agree. `describe(t)` writes the forward
formula, the backward formula (the vector-Jacobian product backward really
computes), and the local Jacobian's shape and structure with this batch's
numbers. `vjp(t)` evaluates that backward formula from first principles (an
einsum per example, an explicit Jacobian block per row) so explain can check
it against the layer's actual backward. Rules are found by class name, walking
the class's bases, so a layer is never imported here and a user's subclass of
Dense is explained (and checked) as a Dense.

Notation: g = dL/d(out), the upstream gradient, with out's shape; N = batch.
"""

import numpy as np

from glassnet.reports import (
    _rules_attention,
    _rules_conv,
    _rules_conv1d,
    _rules_elementwise,
    _rules_embedding,
    _rules_global_pool,
    _rules_norm,
    _rules_recurrent,
    _rules_tree,
)
from glassnet.reports._derivation import (
    Derivation,
    Jacobian,
    Rule,
    Step,
    matrix_text,
    rule_name,
)
from glassnet.reports._table import shape_str
from glassnet.reports._trace import LayerTrace


def _s(a) -> str:
    return shape_str(np.shape(a))


# -- Dense --------------------------------------------------------------------------


def _dense(t: LayerTrace) -> Derivation:
    x, out, W = t.x, t.out, t.layer.weight.data
    N, D = x.shape
    M = out.shape[1]
    steps = [
        Step("dL/dW", "x.T @ g", f"({D}, {N}) @ ({N}, {M}) -> ({D}, {M}) = W's shape"),
        Step("dL/db", "g.sum(axis=0)", f"({N}, {M}) -> ({M},) = b's shape"),
        Step("dL/dx", "g @ W.T", f"({N}, {M}) @ ({M}, {D}) -> ({N}, {D}) = x's shape"),
    ]
    jac = Jacobian(
        N * M, N * D, f"block-diagonal: {N} blocks W.T of ({M}, {D})", N * M * D
    )
    why = [
        f"dL/dW = x.T @ g adds one outer product x[n].T g[n] per example, so it "
        f"has W's shape ({D}, {M}) for any batch size",
        f"b has one number per output unit: it is broadcast to all {N} rows, so "
        f"every row's gradient flows into it and dL/db sums g over the batch (axis 0); "
        f"a bias of shape ({N}, {M}) would give each example its own bias",
        f"example n's output depends only on example n's input, so d out/d x is "
        f"block-diagonal; g @ W.T applies all {N} blocks at once",
    ]
    numbers = [Step("block = W.T", matrix_text(W.T))] if M <= 6 and D <= 6 else []
    return Derivation(
        Step("forward", "out = x @ W + b", f"{_s(x)} @ {_s(W)} + ({M},) -> {_s(out)}"),
        steps,
        jac,
        why,
        numbers,
    )


def _dense_vjp(t: LayerTrace) -> dict:
    W = t.layer.weight.data
    return {
        "weight": np.einsum("nd,nm->dm", t.x, t.g),  # sum of per-example outer products
        "bias": np.einsum("nm->m", t.g),
        "x": np.einsum("nm,dm->nd", t.g, W),
    }


# -- Softmax ------------------------------------------------------------------------


def softmax_blocks(s: np.ndarray) -> np.ndarray:
    """The per-row Jacobians diag(s_n) - s_n s_n.T, built explicitly: (N, K, K)."""
    K = s.shape[1]
    return np.einsum("nk,kj->nkj", s, np.eye(K)) - np.einsum("nk,nj->nkj", s, s)


def _softmax(t: LayerTrace) -> Derivation:
    s = t.out
    N, K = s.shape
    why = [
        f"each row is normalised on its own, so rows do not interact: the "
        f"({N * K}, {N * K}) Jacobian is block-diagonal with one ({K}, {K}) block "
        "per example",
        "inside a row every output depends on every input: the block "
        "J = diag(s) - s s.T is full, not diagonal",
        "J @ g = s * g - s (s . g) = s * (g - sum(g * s)): one broadcast over "
        f"({N}, {K}), no block is ever built",
    ]
    numbers = []
    if K <= 6:
        numbers = [Step("block of example 0", matrix_text(softmax_blocks(s[:1])[0]))]
    return Derivation(
        Step(
            "forward",
            "s = exp(x) / exp(x).sum(axis=1)",
            f"{_s(t.x)} -> {_s(s)}, per row",
        ),
        [
            Step(
                "dL/dx",
                "s * (g - (g * s).sum(axis=1, keepdims=True))",
                f"({N}, {K}) - ({N}, 1) -> ({N}, {K})",
            )
        ],
        Jacobian(
            N * K,
            N * K,
            f"block-diagonal: {N} blocks diag(s) - s s.T of ({K}, {K})",
            N * K * K,
        ),
        why,
        numbers,
    )


def _softmax_vjp(t: LayerTrace) -> dict:
    return {"x": np.einsum("nkj,nj->nk", softmax_blocks(t.out), t.g)}  # J_n @ g_n


# -- Flatten ------------------------------------------------------------------------


def _flatten(t: LayerTrace) -> Derivation:
    x, out = t.x, t.out
    size = x.size
    return Derivation(
        Step("forward", "out = x.reshape(N, -1)", f"{_s(x)} -> {_s(out)}"),
        [Step("dL/dx", "g.reshape(x.shape)", f"{_s(t.g)} -> {_s(x)}")],
        Jacobian(size, size, "the identity: only the shape changes", size),
        ["no number changes, so backward only gives g the input's shape back"],
    )


def _flatten_vjp(t: LayerTrace) -> dict:
    return {"x": t.g.reshape(t.x.shape)}


RULES: dict[str, Rule] = {
    "Dense": Rule(_dense, _dense_vjp),
    "Softmax": Rule(_softmax, _softmax_vjp),
    "Flatten": Rule(_flatten, _flatten_vjp),
}


def find_rule(layer) -> Rule | None:
    """The rule of layer's class or of its nearest base class that has one."""
    rules = {
        **RULES,
        **_rules_elementwise.RULES,
        **_rules_conv.RULES,
        **_rules_conv1d.RULES,
        **_rules_tree.RULES,
        **_rules_norm.RULES,
        **_rules_embedding.RULES,
        **_rules_global_pool.RULES,
        **_rules_recurrent.RULES,
        **_rules_attention.RULES,
    }
    name = rule_name(layer, rules)
    return None if name is None else rules[name]
