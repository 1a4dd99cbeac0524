"""Attention: scaled dot-product attention (a function pair) and MultiHeadAttention.

    scores  = q @ k.T / sqrt(d)          (..., T, S)   one score per (query, key)
    weights = softmax(scores) per row    (..., T, S)   each query's mix of keys
    out     = weights @ v                (..., T, dv)

Backward, with dout (..., T, dv), one matrix product per line:

    dv       = weights.T @ dout                        (..., S, dv)
    dweights = dout @ v.T                              (..., T, S)
    dscores  = weights * (dweights - rowsum(dweights * weights))    softmax, per row
    dq       = dscores @ k / sqrt(d)                   (..., T, d)
    dk       = dscores.T @ q / sqrt(d)                 (..., S, d)

The softmax line is the Jacobian diag(w) - w w.T of each row applied to that
row's dweights, without building the T x S x S Jacobians. docs/
attention_backward.md derives it and checks it with gn.gradcheck.
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._validation import check_float_dtype, check_positive_int
from glassnet.errors import ArgumentTypeError, ConfigError, DataError, ShapeError
from glassnet.nn.initializers import generator_from_state, glorot_uniform, uniform
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter


def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q @ k.T / sqrt(d)) @ v over the last two axes; returns (out, weights).

    Shapes: q (..., T, d), k (..., S, d), v (..., S, dv) with the same leading
    axes (batch, heads) -> out (..., T, dv), weights (..., T, S), each row a
    probability distribution over the S keys. mask: booleans broadcastable to
    (..., T, S), True where a query may attend to a key (PyTorch's
    scaled_dot_product_attention convention), e.g. np.tril(np.ones((T, T), bool))
    for causal attention; a masked score is -inf, so its weight is exactly 0.
    Every query must keep at least one key (a fully masked row raises DataError).

    The weights are what the backward needs:
        dq, dk, dv = scaled_dot_product_attention_backward(dout, q, k, v, weights)
    """
    q, k, v = (np.asarray(a) for a in (q, k, v))
    _check_qkv(q, k, v)
    d = q.shape[-1]
    q = q * float(1.0 / np.sqrt(d))  # scores of variance near 1 for any d
    # speed: the scores are built transposed, keys along the rows, (..., S, T):
    # the softmax's max and sum then combine whole rows (SIMD down the columns),
    # 2.5x faster than reducing T separate 64-wide rows; the weights are handed
    # back as a (..., T, S) view of that buffer
    scores_t = k @ q.swapaxes(-1, -2)  # (..., S, d) @ (..., d, T) -> (..., S, T)
    if mask is not None:
        mask = _checked_mask(mask, scores_t.swapaxes(-1, -2).shape)
        scores_t = np.where(np.swapaxes(mask, -1, -2), scores_t, -np.inf)
    _shift_for_exp(scores_t)  # exp() can neither overflow nor underflow to 0
    np.exp(scores_t, out=scores_t)
    scores_t /= scores_t.sum(axis=-2, keepdims=True)  # each query's column sums to 1
    weights = scores_t.swapaxes(-1, -2)  # (..., T, S), rows sum to 1
    return weights @ v, weights  # (..., T, S) @ (..., S, dv) -> (..., T, dv)


def scaled_dot_product_attention_backward(
    dout: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dL/dq, dL/dk, dL/dv of scaled_dot_product_attention, given dout = dL/dout
    (..., T, dv) and the weights forward returned. Shapes as q, k and v. A masked
    key has weight 0, so it gets no gradient through that query."""
    if dout.shape != (*weights.shape[:-1], v.shape[-1]):
        raise ShapeError(
            "scaled_dot_product_attention_backward: dout must have out's shape "
            f"{(*weights.shape[:-1], v.shape[-1])}, got {dout.shape}"
        )
    scale = 1.0 / np.sqrt(q.shape[-1])
    # in forward's transposed layout (..., S, T), one column per query: the
    # weights forward returned are a view of a buffer laid out so
    weights_t = weights.swapaxes(-1, -2)  # (..., S, T)
    dv = weights_t @ dout  # (..., S, T) @ (..., T, dv) -> (..., S, dv)
    dscores_t = v @ dout.swapaxes(-1, -2)  # (..., S, dv) @ (..., dv, T): dweights.T
    # each query's softmax Jacobian, diag(w) - w w.T, applied to its dweights
    along = np.einsum("...st,...st->...t", dscores_t, weights_t)  # (..., T)
    dscores_t -= along[..., None, :]
    dscores_t *= weights_t
    dq = dscores_t.swapaxes(-1, -2) @ k  # (..., T, S) @ (..., S, d) -> (..., T, d)
    dk = dscores_t @ q  # (..., S, T) @ (..., T, d) -> (..., S, d)
    dq *= scale  # scores = q @ k.T * scale: applied to dq and dk, which are
    dk *= scale  # smaller than the (..., S, T) scores when d < T
    return dq, dk, dv


def _shift_for_exp(scores_t: np.ndarray) -> None:
    """Subtract from each query's scores (a column of (..., S, T)) a constant
    that makes its largest one <= 0 and keeps it above -80, in place.

    Speed trick: softmax does not change when a column is shifted, so when all
    scores lie within 80 of each other one scalar, the overall maximum, serves
    every column (two whole-array reductions and a scalar subtraction: 0.1 ms
    where the per-column maximum and its broadcast cost 0.3 ms at (32, 4, 64,
    64)); exp(-80) is still a normal float32, so no column's sum can vanish.
    Otherwise (masked -inf scores, or a wider spread), the per-column maximum.
    """
    top, bottom = scores_t.max(), scores_t.min()
    if top - bottom < 80.0:
        scores_t -= top
    else:
        scores_t -= scores_t.max(axis=-2, keepdims=True)


def _check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    me = "scaled_dot_product_attention"
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim < 2 or a.dtype.kind != "f":
            raise ShapeError(
                f"{me}: {name} must be a float array (..., length, features), got "
                f"shape {a.shape} dtype {a.dtype}"
            )
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ShapeError(
            f"{me}: q, k and v must share their leading axes, got q {q.shape}, "
            f"k {k.shape}, v {v.shape}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(
            f"{me}: expected q (..., T, d), k (..., S, d), v (..., S, dv), got "
            f"q {q.shape}, k {k.shape}, v {v.shape}"
        )


def _checked_mask(mask, scores_shape: tuple[int, ...]) -> np.ndarray:
    me = "scaled_dot_product_attention"
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ArgumentTypeError(
            f"{me}: mask must be boolean (True where a query may attend to a key), "
            f"got dtype {mask.dtype}"
        )
    try:
        full = np.broadcast_to(mask, scores_shape)
    except ValueError:
        raise ShapeError(
            f"{me}: mask of shape {mask.shape} does not broadcast to the scores' "
            f"shape {scores_shape} (..., T, S)"
        ) from None
    empty = ~full.any(axis=-1)
    if empty.any():
        where = tuple(int(i) for i in np.argwhere(empty)[0])
        raise DataError(
            f"{me}: query {where} may attend to no key (its mask row is all False), "
            "so its softmax is undefined; with a key padding mask and causal "
            "attention, pad sequences on the right"
        )
    return mask


class MultiHeadAttention(Layer):
    """Multi-head attention, as torch.nn.MultiheadAttention(batch_first=True).

        q = query @ Wq.T + bq,  k = context @ Wk.T + bk,  v = context @ Wv.T + bv
        split q, k, v into h heads of d = E / h features: (N, h, T or S, d)
        each head: softmax(q k.T / sqrt(d) + mask) v     (scaled_dot_product_attention)
        out = concat(heads) @ Wo.T + bo

    Shapes: self-attention forward(x): x (N, T, E) -> (N, T, E), context = x.
    Cross-attention forward((query, context)): query (N, T, E), context (N, S, E)
    -> (N, T, E); backward then returns the pair (dquery, dcontext), the input's
    structure (backward always returns the gradient of what forward took).

    Parameters, PyTorch's names and layout, so a state dict copies both ways:
    in_proj_weight (3E, E) = [Wq; Wk; Wv] stacked by rows, in_proj_bias (3E,),
    "out_proj.weight" (E, E) = Wo, (out, in) like torch's Linear, "out_proj.bias"
    (E,). Init as PyTorch: in_proj_weight Glorot uniform, out_proj.weight
    U(-1/sqrt(E), 1/sqrt(E)), biases zero.

    Masks: causal=True lets query t attend to keys 0..t only (np.tril); the
    key_padding_mask argument of forward, (N, S) booleans, True where a key is
    padding to ignore (PyTorch's MultiheadAttention convention). Both may be
    combined; every query must keep at least one key.

    Backward: Wo's product, then each head's scaled_dot_product_attention_backward,
    then the in-projection: d in_proj_weight = [dq; dk; dv].T @ inputs, and the
    input gradient sums what flows back through q, k and v.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        causal: bool = False,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        check_positive_int(
            "MultiHeadAttention", embed_dim=embed_dim, num_heads=num_heads
        )
        if embed_dim % num_heads:
            raise ConfigError(
                f"MultiHeadAttention: embed_dim ({embed_dim}) must be divisible by "
                f"num_heads ({num_heads}): each head gets embed_dim / num_heads "
                "features"
            )
        if not isinstance(causal, bool):
            raise ConfigError(
                f"MultiHeadAttention: causal must be True or False, got {causal!r}"
            )
        self.embed_dim, self.num_heads, self.causal = embed_dim, num_heads, causal
        self._own_dtype = dtype is not None
        self._own_rng = None if rng is None else rng.bit_generator.state
        dt = check_float_dtype(
            "MultiHeadAttention", np.float32 if dtype is None else dtype
        )
        E = embed_dim
        self.in_proj_weight = Parameter(np.zeros((3 * E, E), dt), "in_proj_weight")
        self.in_proj_bias = Parameter(np.zeros(3 * E, dt), "in_proj_bias")
        self.out_proj_weight = Parameter(np.zeros((E, E), dt), "out_proj.weight")
        self.out_proj_bias = Parameter(np.zeros(E, dt), "out_proj.bias")
        self._draw(rng if rng is not None else np.random.default_rng(), dt)

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """A model's generator and dtype, for what the layer was not given."""
        dtype = self.in_proj_weight.data.dtype if self._own_dtype else np.dtype(dtype)
        if self._own_rng is None:
            self._draw(rng, dtype)
        elif dtype != self.in_proj_weight.data.dtype:
            self._draw(generator_from_state(self._own_rng), dtype)

    def _draw(self, rng: np.random.Generator, dtype) -> None:
        E = self.embed_dim
        self.in_proj_weight.data = glorot_uniform(rng, (3 * E, E), E, 3 * E, dtype)
        self.out_proj_weight.data = uniform(rng, (E, E), E, E, dtype)
        for p in self.parameters():
            p.grad = np.zeros(p.shape, dtype)
        for p in (self.in_proj_bias, self.out_proj_bias):
            p.data = np.zeros(p.shape, dtype)

    def forward(self, x, key_padding_mask: np.ndarray | None = None) -> np.ndarray:
        """x (N, T, E), or (query (N, T, E), context (N, S, E)) -> (N, T, E)."""
        query, context, cross = self._checked_inputs(x)
        N, T, E = query.shape
        S, h = context.shape[1], self.num_heads
        W, b = self.in_proj_weight.data, self.in_proj_bias.data
        # the projections on rows (N*T, E): one matrix product each (see _Recurrent)
        if cross:
            q = (query.reshape(N * T, E) @ W[:E].T + b[:E]).reshape(N, T, E)
            kv = (context.reshape(N * S, E) @ W[E:].T + b[E:]).reshape(N, S, 2 * E)
            k, v = kv[..., :E], kv[..., E:]
        else:
            qkv = query.reshape(N * T, E) @ W.T + b  # (N*T, E) @ (E, 3E)
            qkv = qkv.reshape(N, T, 3 * E)
            q, k, v = qkv[..., :E], qkv[..., E : 2 * E], qkv[..., 2 * E :]
        q, k, v = (_split_heads(a, h) for a in (q, k, v))  # (N, h, T or S, d)
        mask = self._mask(N, T, S, key_padding_mask)  # (N or 1, 1, T, S) or None
        heads, weights = scaled_dot_product_attention(q, k, v, mask)  # (N, h, T, d)
        merged = _merge_heads(heads)  # (N, T, E): the heads side by side
        self._cache = (query, context, cross, q, k, v, weights, merged)
        out = merged.reshape(N * T, E) @ self.out_proj_weight.data.T  # (N*T, E)
        out += self.out_proj_bias.data
        return out.reshape(N, T, E)

    def backward(self, dout: np.ndarray):
        """dout (N, T, E) -> dx (N, T, E), or (dquery, dcontext) for cross-attention."""
        query, context, cross, q, k, v, weights, merged = self._cached()
        N, T, E = query.shape
        if dout.shape != (N, T, E):
            raise ShapeError(
                f"{self._me()}.backward: dout must have the output's shape "
                f"{(N, T, E)}, got {dout.shape}"
            )
        rows = dout.reshape(N * T, E)
        self.out_proj_weight.grad = rows.T @ merged.reshape(N * T, E)  # (E, E)
        self.out_proj_bias.grad = rows.sum(axis=0)
        dmerged = (rows @ self.out_proj_weight.data).reshape(N, T, E)
        dheads = _split_heads(dmerged, self.num_heads)  # (N, h, T, d)
        dq, dk, dv = scaled_dot_product_attention_backward(dheads, q, k, v, weights)
        W = self.in_proj_weight.data
        if not cross:
            # the heads merged straight into [dq, dk, dv] side by side, one copy
            dqkv = np.empty((N, T, 3, self.num_heads, E // self.num_heads), dq.dtype)
            for j, a in enumerate((dq, dk, dv)):
                dqkv[:, :, j] = a.transpose(0, 2, 1, 3)  # (N, h, T, d) -> (N, T, h, d)
            dqkv = dqkv.reshape(N * T, 3 * E)  # (N*T, 3E)
            self.in_proj_weight.grad = dqkv.T @ query.reshape(N * T, E)  # (3E, E)
            self.in_proj_bias.grad = dqkv.sum(axis=0)
            return (dqkv @ W).reshape(N, T, E)  # x fed q, k and v: the sum of three
        S = context.shape[1]
        dq, dk, dv = (_merge_heads(a) for a in (dq, dk, dv))  # (N, T or S, E)
        dq_rows = dq.reshape(N * T, E)
        dkv = np.concatenate([dk, dv], axis=2).reshape(N * S, 2 * E)
        self.in_proj_weight.grad = np.concatenate(
            [dq_rows.T @ query.reshape(N * T, E), dkv.T @ context.reshape(N * S, E)]
        )  # (3E, E): Wq's rows from the query, Wk's and Wv's from the context
        self.in_proj_bias.grad = np.concatenate([dq_rows.sum(axis=0), dkv.sum(axis=0)])
        dquery = (dq_rows @ W[:E]).reshape(N, T, E)
        dcontext = (dkv @ W[E:]).reshape(N, S, E)
        return dquery, dcontext

    def parameters(self) -> list[Parameter]:
        return [
            self.in_proj_weight,
            self.in_proj_bias,
            self.out_proj_weight,
            self.out_proj_bias,
        ]

    def __call__(self, x, key_padding_mask: np.ndarray | None = None) -> np.ndarray:
        return self.forward(x, key_padding_mask=key_padding_mask)

    def _me(self) -> str:
        return f"MultiHeadAttention({self.embed_dim}, {self.num_heads})"

    def _checked_inputs(self, x):
        """(query, context, is cross-attention) as float arrays, shapes checked."""
        cross = isinstance(x, tuple)
        if cross and len(x) != 2:
            raise ArgumentTypeError(
                f"{self._me()}: cross-attention takes the pair (query, context), "
                f"got a tuple of {len(x)}"
            )
        query, context = (np.asarray(a) for a in (x if cross else (x, x)))
        E = self.embed_dim
        for name, a in (("query", query), ("context", context)):
            what = name if cross else "x"
            if a.ndim != 3 or a.shape[2] != E or a.shape[1] < 1:
                got = "(N, " + ", ".join(str(s) for s in a.shape[1:]) + ")"
                hint = ""
                if a.ndim == 2:
                    hint = "; a sequence is (N, T, E): embed token ids first"
                raise ShapeError(
                    f"{self._me()}: {what} must have shape (N, length, {E}), got "
                    f"{got}{hint}"
                )
            if a.dtype.kind != "f":
                raise ArgumentTypeError(
                    f"{self._me()}: {what} must be a float array, got {a.dtype}"
                )
        if context.shape[0] != query.shape[0]:
            raise ShapeError(
                f"{self._me()}: query and context must have the same batch size, got "
                f"{query.shape[0]} and {context.shape[0]}"
            )
        return query, context, cross

    def _mask(self, N: int, T: int, S: int, key_padding_mask) -> np.ndarray | None:
        """True where a query may attend to a key: (N or 1, 1, T, S), or None."""
        mask = None
        if self.causal:
            mask = np.tril(np.ones((T, S), dtype=bool))[None, None]  # (1, 1, T, S)
        if key_padding_mask is not None:
            pad = np.asarray(key_padding_mask)
            if pad.dtype != bool:
                raise ArgumentTypeError(
                    f"{self._me()}: key_padding_mask must be booleans, True at "
                    f"padding, got dtype {pad.dtype} (use mask.astype(bool))"
                )
            if pad.shape != (N, S):
                raise ShapeError(
                    f"{self._me()}: key_padding_mask must have shape (N, S) = "
                    f"{(N, S)}, one flag per key, got {pad.shape}"
                )
            keep = ~pad[:, None, None, :]  # (N, 1, 1, S)
            mask = keep if mask is None else mask & keep
        return mask

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[1] != self.embed_dim:
            got = "(N, " + ", ".join(str(s) for s in shape) + ")"
            raise ShapeError(
                f"{self._me()}: x must have shape (N, T, {self.embed_dim}), got {got}"
            )
        return shape

    def get_config(self) -> dict:
        """Constructor arguments, rng and dtype aside (a model file has one dtype)."""
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "causal": self.causal,
        }


def _split_heads(a: np.ndarray, h: int) -> np.ndarray:
    """(N, L, E) -> (N, h, L, E / h): head j gets features j*d .. (j+1)*d - 1."""
    N, L, E = a.shape
    return a.reshape(N, L, h, E // h).transpose(0, 2, 1, 3)


def _merge_heads(a: np.ndarray) -> np.ndarray:
    """(N, h, L, d) -> (N, L, h*d), the inverse of _split_heads."""
    N, h, L, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(N, L, h * d)
