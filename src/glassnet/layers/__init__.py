"""Every layer glassnet ships, re-exported by name."""

from glassnet.layers.activations import (
    ACTIVATIONS,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    make_activation,
)
from glassnet.layers.base import Layer
from glassnet.layers.conv2d import Conv2D
from glassnet.layers.dense import Dense
from glassnet.layers.dropout import Dropout
from glassnet.layers.flatten import Flatten
from glassnet.layers.pooling import AvgPool2D, MaxPool2D

__all__ = [
    "ACTIVATIONS",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "make_activation",
]
