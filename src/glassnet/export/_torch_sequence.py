"""PyTorch modules for glassnet's sequence layers: what to_torch makes of them.

Each is a torch.nn class (or a small subclass of one) that computes what its
glassnet layer computes, with glassnet's parameter names:

    RNN, LSTM, GRU        torch.nn.RNN/LSTM/GRU(batch_first=True, num_layers=1),
                          parameters renamed weight_ih_l0 -> weight_ih (and
                          _reverse), returning one tensor: every step's output
                          (N, T, dirs*H), or the final states h_n as (N, dirs*H)
    MultiHeadAttention    torch.nn.MultiheadAttention(batch_first=True) as
                          self-attention: forward(x) = module(x, x, x)[0],
                          with the causal mask when the layer has one
    TransformerBlock      torch.nn.TransformerEncoderLayer(norm_first=True,
                          activation="gelu", dropout=0.0, batch_first=True),
                          with the causal mask when the block has one
    PositionalEmbedding, SinusoidalPositionalEncoding: out = x + P[:T]

This module imports torch: glassnet.export loads it only when asked.
"""

import torch
from torch import nn


class _GlassnetNames:
    """Renames an nn.RNN/LSTM/GRU's parameters to glassnet's: weight_ih_l0 ->
    weight_ih, weight_hh_l0_reverse -> weight_hh_reverse, ...

    torch's recurrent modules find their weights through the attribute names
    listed in _flat_weights_names (and _all_weights), so the rename changes
    those lists with the parameters; forward, .to(), .double(), pickling and
    torch.export work as for the parent class."""

    def _use_glassnet_names(self) -> None:
        renamed = [n.replace("_l0", "") for n in self._flat_weights_names]
        params = dict(self._parameters)
        self._parameters.clear()
        for old, new in zip(self._flat_weights_names, renamed, strict=True):
            self._parameters[new] = params[old]
        self._flat_weights_names = renamed
        self._all_weights = [renamed[i : i + 4] for i in range(0, len(renamed), 4)]
        self._init_flat_weights()

    def _glassnet_output(self, out: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
        """glassnet's output: every step (N, T, dirs*H), or the final states."""
        if self.return_sequences:
            return out
        return h_n.transpose(0, 1).reshape(h_n.shape[1], -1)  # (dirs, N, H) -> (N, .)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", return_sequences={self.return_sequences}"


class RNN(_GlassnetNames, nn.RNN):
    """nn.RNN(batch_first=True) with glassnet's names and output (glassnet.RNN)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        *,
        return_sequences: bool = False,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            nonlinearity=nonlinearity,
            batch_first=True,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.return_sequences = return_sequences
        self._use_glassnet_names()

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        return self._glassnet_output(*super().forward(x, hx))


class LSTM(_GlassnetNames, nn.LSTM):
    """nn.LSTM(batch_first=True) with glassnet's names and output (glassnet.LSTM)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        return_sequences: bool = False,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            batch_first=True,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.return_sequences = return_sequences
        self._use_glassnet_names()

    def forward(self, x: torch.Tensor, hx=None) -> torch.Tensor:
        out, (h_n, _) = super().forward(x, hx)
        return self._glassnet_output(out, h_n)


class GRU(_GlassnetNames, nn.GRU):
    """nn.GRU(batch_first=True) with glassnet's names and output (glassnet.GRU)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        return_sequences: bool = False,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            batch_first=True,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.return_sequences = return_sequences
        self._use_glassnet_names()

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        return self._glassnet_output(*super().forward(x, hx))


def causal_mask(T: int, S: int, device) -> torch.Tensor:
    """(T, S) booleans, True where torch must NOT attend: key s > query t
    (glassnet's mask np.tril(ones) is the complement)."""
    return torch.ones(T, S, dtype=torch.bool, device=device).triu(1)


class MultiHeadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(batch_first=True) as glassnet.MultiHeadAttention:
    forward(x) is self-attention, forward((query, context)) cross-attention;
    key_padding_mask (N, S), True at padding; returns the output alone."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        causal: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            embed_dim, num_heads, batch_first=True, device=device, dtype=dtype
        )
        self.causal = causal

    def forward(self, x, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        query, context = x if isinstance(x, tuple) else (x, x)
        mask = None
        if self.causal:
            mask = causal_mask(query.shape[1], context.shape[1], query.device)
        out, _ = super().forward(
            query,
            context,
            context,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=mask,
        )
        return out

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, num_heads={self.num_heads}, causal={self.causal}"


class TransformerBlock(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer(norm_first=True, activation="gelu",
    dropout=0.0, batch_first=True) as glassnet.TransformerBlock, causal or not."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        mlp_dim: int,
        *,
        causal: bool = False,
        eps: float = 1e-5,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            mlp_dim,
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=eps,
            batch_first=True,
            norm_first=True,
            device=device,
            dtype=dtype,
        )
        self.causal = causal

    def forward(self, x: torch.Tensor, key_padding_mask=None) -> torch.Tensor:
        mask = causal_mask(x.shape[1], x.shape[1], x.device) if self.causal else None
        return super().forward(
            x, src_mask=mask, src_key_padding_mask=key_padding_mask, is_causal=False
        )


class PositionalEmbedding(nn.Module):
    """out = x + weight[:T], weight (max_len, E) (glassnet.PositionalEmbedding)."""

    def __init__(self, max_len: int, embed_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.empty(max_len, embed_dim, device=device, dtype=dtype)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]  # (N, T, E) + (T, E)


class SinusoidalPositionalEncoding(nn.Module):
    """out = x + P[:T], P[t, 2i] = sin(t / base^(2i/E)), P[t, 2i+1] =
    cos(t / base^(2i/E)), computed in float64 and cast to x's dtype, as
    glassnet.SinusoidalPositionalEncoding. Nothing is learned."""

    def __init__(self, embed_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.embed_dim, self.base = embed_dim, float(base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E = self.embed_dim
        f64 = {"dtype": torch.float64, "device": x.device}
        t = torch.arange(x.shape[1], **f64)[:, None]  # (T, 1)
        base = torch.full((), self.base, **f64)
        rates = base ** (-torch.arange(0, E, 2, **f64) / E)  # (ceil(E/2),)
        P = torch.empty(x.shape[1], E, **f64)
        P[:, 0::2] = torch.sin(t * rates)
        P[:, 1::2] = torch.cos(t * rates[: E // 2])
        return x + P.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, base={self.base:g}"
