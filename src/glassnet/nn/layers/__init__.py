"""Every layer glassnet ships, re-exported by name."""

from glassnet.nn.layers.activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    make_activation,
)
from glassnet.nn.layers.attention import (
    MultiHeadAttention,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
)
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.concat import Concat
from glassnet.nn.layers.conv1d import Conv1D
from glassnet.nn.layers.conv2d import Conv2D
from glassnet.nn.layers.dense import Dense
from glassnet.nn.layers.dropout import Dropout
from glassnet.nn.layers.embedding import Embedding
from glassnet.nn.layers.flatten import Flatten
from glassnet.nn.layers.global_pooling import (
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
)
from glassnet.nn.layers.gru import GRU
from glassnet.nn.layers.lstm import LSTM
from glassnet.nn.layers.normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from glassnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from glassnet.nn.layers.pooling1d import AvgPool1D, MaxPool1D
from glassnet.nn.layers.positional import (
    PositionalEmbedding,
    SinusoidalPositionalEncoding,
)
from glassnet.nn.layers.residual import Residual
from glassnet.nn.layers.rnn import RNN
from glassnet.nn.layers.time_distributed import TimeDistributed
from glassnet.nn.layers.transformer import TransformerBlock

__all__ = [
    "ACTIVATIONS",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Concat",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GELU",
    "GRU",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "Identity",
    "LSTM",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool1D",
    "MaxPool2D",
    "MultiHeadAttention",
    "PositionalEmbedding",
    "RNN",
    "ReLU",
    "Residual",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "SinusoidalPositionalEncoding",
    "Softplus",
    "Tanh",
    "TimeDistributed",
    "TransformerBlock",
    "make_activation",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
]
