"""The sequence layers to and from torch: RNN, LSTM, GRU, MultiHeadAttention,
TransformerBlock, PositionalEmbedding and SinusoidalPositionalEncoding.

TO_TORCH and FROM_TORCH here hold their converters, written as in
torch_export.py and torch_import.py (which merge them into theirs). The torch
modules are those of _torch_sequence: torch.nn's own classes, the recurrent
ones with glassnet's parameter names and output.

This module imports torch: glassnet.export loads it on first use.
"""

from collections.abc import Callable

from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from glassnet.export import _torch_sequence as ts
from glassnet.export._common import register_in
from glassnet.export._torch_weights import empty, fill
from glassnet.nn.layers import (
    GRU,
    LSTM,
    RNN,
    Dense,
    MultiHeadAttention,
    PositionalEmbedding,
    SinusoidalPositionalEncoding,
    TransformerBlock,
)
from glassnet.nn.layers.base import Layer

TO_TORCH: dict[type, Callable] = {}
FROM_TORCH: dict[type, Callable] = {}


# -- glassnet -> torch ----------------------------------------------------------------

_RECURRENT = {RNN: ts.RNN, LSTM: ts.LSTM, GRU: ts.GRU}


@register_in(TO_TORCH, *_RECURRENT)
def _recurrent(layer, convert) -> nn.Module:
    extra = (layer.nonlinearity,) if isinstance(layer, RNN) else ()
    module = empty(
        _RECURRENT[type(layer)],
        layer.input_size,
        layer.hidden_size,
        *extra,
        return_sequences=layer.return_sequences,
        bidirectional=layer.bidirectional,
        like=layer.weight_ih.data,
    )
    return fill(module, **{p.name: p.data for p in layer.parameters()})  # same names


def _attention_arrays(layer: MultiHeadAttention, prefix: str = "") -> dict:
    return {prefix + p.name: p.data for p in layer.parameters()}  # torch's layout


@register_in(TO_TORCH, MultiHeadAttention)
def _attention(layer: MultiHeadAttention, convert) -> nn.Module:
    module = empty(
        ts.MultiHeadAttention,
        layer.embed_dim,
        layer.num_heads,
        causal=layer.causal,
        like=layer.in_proj_weight.data,
    )
    return fill(module, **_attention_arrays(layer))


@register_in(TO_TORCH, TransformerBlock)
def _block(layer: TransformerBlock, convert) -> nn.Module:
    module = empty(
        ts.TransformerBlock,
        layer.embed_dim,
        layer.num_heads,
        layer.mlp_dim,
        causal=layer.causal,
        eps=layer.eps,
        like=layer.linear1.weight.data,
    )
    arrays = _attention_arrays(layer.self_attn, "self_attn.")
    for name in ("norm1", "norm2"):
        norm = getattr(layer, name)
        arrays |= {f"{name}.weight": norm.weight.data, f"{name}.bias": norm.bias.data}
    for name in ("linear1", "linear2"):
        dense = getattr(layer, name)  # Dense's (in, out) is Linear's (out, in).T
        arrays[f"{name}.weight"] = dense.weight.data.T
        arrays[f"{name}.bias"] = dense.bias.data
    return fill(module, **arrays)


@register_in(TO_TORCH, PositionalEmbedding)
def _positional(layer: PositionalEmbedding, convert) -> nn.Module:
    w = layer.weight.data
    return fill(empty(ts.PositionalEmbedding, *w.shape, like=w), weight=w)


@register_in(TO_TORCH, SinusoidalPositionalEncoding)
def _sinusoidal(layer: SinusoidalPositionalEncoding, convert) -> nn.Module:
    return ts.SinusoidalPositionalEncoding(layer.embed_dim, layer.base)


# -- torch -> glassnet ----------------------------------------------------------------

_FROM_RECURRENT = {ts.RNN: RNN, ts.LSTM: LSTM, ts.GRU: GRU}


@register_in(FROM_TORCH, *_FROM_RECURRENT)
def _from_recurrent(module, site) -> Layer:
    cls = _FROM_RECURRENT[type(module)]
    site.check(
        cls.__name__,
        num_layers=(module.num_layers, 1),
        batch_first=(module.batch_first, True),
        bias=(module.bias, True),
        dropout=(module.dropout, 0.0),
        proj_size=(module.proj_size, 0),
    )
    extra = ()
    if cls is RNN:
        extra = ("relu" if module.mode == "RNN_RELU" else "tanh",)
    layer = cls(
        module.input_size,
        module.hidden_size,
        *extra,
        return_sequences=module.return_sequences,
        bidirectional=module.bidirectional,
    )
    site.load(layer, **dict(module.named_parameters()))  # glassnet's names
    return layer


@register_in(FROM_TORCH, nn.RNN, nn.LSTM, nn.GRU)
def _from_torch_recurrent(module, site) -> Layer:
    name = type(module).__name__
    raise site.refuse(
        f"torch.nn.{name} returns a pair (output, final state), not the one tensor a "
        f"glassnet layer returns; use glassnet.export._torch_sequence.{name} (what "
        f"to_torch makes of a glassnet {name}: batch_first, glassnet's parameter "
        "names, return_sequences=True for every step's output or False for h_n), "
        "with the same weights"
    )


def _check_attention(site, module: nn.MultiheadAttention) -> None:
    site.check(
        "MultiHeadAttention",
        batch_first=(module.batch_first, True),
        dropout=(module.dropout, 0.0),
        bias=(module.in_proj_bias is not None, True),
        add_bias_kv=(module.bias_k is not None, False),
        add_zero_attn=(module.add_zero_attn, False),
        kdim=(module.kdim, module.embed_dim),
        vdim=(module.vdim, module.embed_dim),
    )


@register_in(FROM_TORCH, nn.MultiheadAttention, ts.MultiHeadAttention)
def _from_attention(module: nn.MultiheadAttention, site) -> Layer:
    """torch's plain class as self-attention, module(x, x, x)[0], no mask."""
    _check_attention(site, module)
    causal = getattr(module, "causal", False)
    layer = MultiHeadAttention(module.embed_dim, module.num_heads, causal=causal)
    site.load(layer, **dict(module.named_parameters()))  # the same names
    return layer


@register_in(FROM_TORCH, NonDynamicallyQuantizableLinear)
def _from_out_proj(module: nn.Linear, site) -> Layer:
    """MultiheadAttention's out_proj: an nn.Linear by another name."""
    site.check("Dense", bias=(module.bias is not None, True))
    layer = Dense(module.in_features, module.out_features)
    site.load(layer, weight=module.weight.T, bias=module.bias)
    return layer


def _name(activation) -> str:
    """F.relu -> "relu", nn.GELU("tanh") -> "GELU(approximate='tanh')"."""
    return getattr(activation, "__name__", None) or repr(activation)


@register_in(FROM_TORCH, nn.TransformerEncoderLayer, ts.TransformerBlock)
def _from_block(module: nn.TransformerEncoderLayer, site) -> Layer:
    gelu = module.activation_relu_or_gelu == 2  # "gelu", F.gelu or nn.GELU()
    if isinstance(module.activation, nn.GELU) and module.activation.approximate != (
        "none"
    ):
        gelu = False  # the tanh approximation: glassnet's block uses the exact GELU
    site.check(
        "TransformerBlock",
        norm_first=(module.norm_first, True),
        activation=("gelu" if gelu else _name(module.activation), "gelu"),
        dropout=(max(module.dropout.p, module.dropout1.p, module.dropout2.p), 0.0),
        bias=(module.linear1.bias is not None, True),
        norm2_eps=(module.norm2.eps, module.norm1.eps),
    )
    attention = module.self_attn
    _check_attention(site, attention)
    layer = TransformerBlock(
        embed_dim=attention.embed_dim,
        num_heads=attention.num_heads,
        mlp_dim=module.linear1.out_features,
        causal=getattr(module, "causal", False),
        eps=module.norm1.eps,
    )
    site.load(layer.self_attn, **dict(attention.named_parameters()))
    for name in ("norm1", "norm2"):
        norm = getattr(module, name)
        site.load(getattr(layer, name), weight=norm.weight, bias=norm.bias)
    for name in ("linear1", "linear2"):
        linear = getattr(module, name)
        site.load(getattr(layer, name), weight=linear.weight.T, bias=linear.bias)
    return layer


@register_in(FROM_TORCH, ts.PositionalEmbedding)
def _from_positional(module: ts.PositionalEmbedding, site) -> Layer:
    layer = PositionalEmbedding(*module.weight.shape)
    site.load(layer, weight=module.weight)
    return layer


@register_in(FROM_TORCH, ts.SinusoidalPositionalEncoding)
def _from_sinusoidal(module: ts.SinusoidalPositionalEncoding, site) -> Layer:
    return SinusoidalPositionalEncoding(module.embed_dim, module.base)
