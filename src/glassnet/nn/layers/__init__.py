"""Every layer glassnet ships, re-exported by name."""

from glassnet.nn.layers.activations import (
    ACTIVATIONS,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    make_activation,
)
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.concat import Concat
from glassnet.nn.layers.conv2d import Conv2D
from glassnet.nn.layers.dense import Dense
from glassnet.nn.layers.dropout import Dropout
from glassnet.nn.layers.flatten import Flatten
from glassnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from glassnet.nn.layers.residual import Residual

__all__ = [
    "ACTIVATIONS",
    "AvgPool2D",
    "Concat",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "make_activation",
]
