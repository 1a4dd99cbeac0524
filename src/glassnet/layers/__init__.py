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
from glassnet.layers.dense import Dense

__all__ = [
    "ACTIVATIONS",
    "Dense",
    "Identity",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "make_activation",
]
