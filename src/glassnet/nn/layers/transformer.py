"""TransformerBlock: the pre-norm block of GPT-2 and most transformers since."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._validation import check_positive_float, check_positive_int
from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.nn.layers.activations import GELU
from glassnet.nn.layers.attention import MultiHeadAttention
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.dense import Dense
from glassnet.nn.layers.normalization import LayerNorm

_PARTS = ("norm1", "self_attn", "norm2", "linear1", "activation", "linear2")


class TransformerBlock(Layer):
    """Pre-norm transformer block: attention and an MLP, each around a residual.

    Built from public layers:

        h   = x + self_attn(norm1(x))                       attention, residual
        out = h + linear2(activation(linear1(norm2(h))))     MLP, residual

    norm1, norm2: LayerNorm(E, eps); self_attn: MultiHeadAttention(E, num_heads,
    causal=causal); linear1: Dense(E, mlp_dim); activation: GELU() (exact);
    linear2: Dense(mlp_dim, E). mlp_dim defaults to 4 E. No dropout. The same
    computation as torch.nn.TransformerEncoderLayer(E, num_heads, mlp_dim,
    dropout=0.0, activation="gelu", batch_first=True, norm_first=True), with the
    same sub-layer names ("self_attn.in_proj_weight", "linear1.weight", ...);
    Dense's weight is (in, out), the transpose of torch's Linear.

    Shapes: x (N, T, E) -> (N, T, E). forward(x, key_padding_mask=mask) passes
    an (N, T) padding mask (True at padding) to self_attn.

    Backward, in reverse, adding the two paths at each residual:
        dh = dout + norm2.backward(linear1.backward(activation.backward(
                 linear2.backward(dout))))
        dx = dh + norm1.backward(self_attn.backward(dh))

    The sizes are keywords: TransformerBlock(embed_dim=64, num_heads=4). Positional
    arguments are the six sub-layers in the order above, as load rebuilds a saved
    block; leave them out to have the block build its own.
    """

    def __init__(
        self,
        *layers: Layer,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        mlp_dim: int | None = None,
        causal: bool = False,
        eps: float = 1e-5,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        if any(not isinstance(layer, Layer) for layer in layers) or embed_dim is None:
            raise ConfigError(
                "TransformerBlock takes its sizes as keywords, e.g. "
                "TransformerBlock(embed_dim=64, num_heads=4); got "
                f"{len(layers)} positional argument(s) and embed_dim={embed_dim!r}"
            )
        mlp_dim = 4 * embed_dim if mlp_dim is None else mlp_dim
        check_positive_int(
            "TransformerBlock",
            embed_dim=embed_dim,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
        )
        check_positive_float("TransformerBlock", eps=eps)
        if not isinstance(causal, bool):
            raise ConfigError(
                f"TransformerBlock: causal must be True or False, got {causal!r}"
            )
        self.embed_dim, self.num_heads, self.mlp_dim = embed_dim, num_heads, mlp_dim
        self.causal, self.eps = causal, float(eps)
        if layers and len(layers) != len(_PARTS):
            raise ArgumentTypeError(
                f"TransformerBlock: expected the {len(_PARTS)} sub-layers "
                f"{', '.join(_PARTS)}, got {len(layers)} layers"
            )
        if not layers:
            E, kw = embed_dim, {"rng": rng, "dtype": dtype}
            layers = (
                LayerNorm(E, eps=eps, dtype=dtype),
                MultiHeadAttention(E, num_heads, causal=causal, **kw),
                LayerNorm(E, eps=eps, dtype=dtype),
                Dense(E, mlp_dim, **kw),
                GELU(),
                Dense(mlp_dim, E, **kw),
            )
        self.norm1, self.self_attn, self.norm2 = layers[:3]
        self.linear1, self.activation, self.linear2 = layers[3:]

    def forward(self, x: np.ndarray, key_padding_mask=None) -> np.ndarray:
        x, E = np.asarray(x), self.embed_dim
        if x.ndim != 3 or x.shape[2] != E:
            got = "(N, " + ", ".join(str(s) for s in x.shape[1:]) + ")"
            raise ShapeError(f"{self._me()} expects input (N, T, {E}), got {got}")
        N, T, _ = x.shape
        a = self.self_attn.forward(self.norm1.forward(x), key_padding_mask)
        h = x + a  # (N, T, E): the attention residual
        m = self.norm2.forward(h).reshape(N * T, E)  # Dense takes rows
        m = self.linear2.forward(self.activation.forward(self.linear1.forward(m)))
        self._cache = (N, T)
        return h + m.reshape(N, T, E)  # the MLP residual

    def backward(self, dout: np.ndarray) -> np.ndarray:
        N, T = self._cached()
        E = self.embed_dim
        dm = self.linear2.backward(dout.reshape(N * T, E))  # (N*T, mlp_dim)
        dm = self.linear1.backward(self.activation.backward(dm))  # (N*T, E)
        dh = dout + self.norm2.backward(dm.reshape(N, T, E))  # residual + MLP path
        return dh + self.norm1.backward(self.self_attn.backward(dh))

    def __call__(self, x: np.ndarray, key_padding_mask=None) -> np.ndarray:
        return self.forward(x, key_padding_mask=key_padding_mask)

    def children(self) -> list[tuple[str, Layer]]:
        return [(name, getattr(self, name)) for name in _PARTS]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[1] != self.embed_dim:
            got = "(N, " + ", ".join(str(s) for s in shape) + ")"
            raise ShapeError(
                f"{self._me()} expects input (N, T, {self.embed_dim}), got {got}"
            )
        return shape

    def get_config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "causal": self.causal,
            "eps": self.eps,
        }

    def _me(self) -> str:
        return (
            f"TransformerBlock(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        )
