"""Layer: the contract every glassnet layer follows.

Vocabulary used in every docstring and shape comment:

    N  examples in the batch          K  classes
    D  input features                 M  output features
    C  input channels                 F  convolution filters (output channels)
    H, W  input height and width      H_out, W_out  output height and width

Data is batch-first: a batch of vectors is (N, D), a batch of images (N, C, H, W).
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet.errors import CallOrderError
from glassnet.nn.parameter import Parameter

# glassnet's own layer classes by name, filled in as each class is defined: the only
# classes a model file may name (see glassnet.io.serialization).
_BUILTIN_LAYERS: dict[str, type] = {}


def builtin_layers() -> dict[str, type]:
    """{"Dense": Dense, ...}: every public layer class glassnet defines."""
    return dict(sorted(_BUILTIN_LAYERS.items()))


class Layer:
    """One differentiable step of a network.

    A subclass defines `forward` and `backward`, plus `parameters` if it has any;
    nothing else is required.

    forward(x) returns the output and keeps what backward needs in self._cache.
    backward(dout) receives dL/d(output), stores dL/d(parameter) in each
    parameter's .grad (replacing the previous value) and returns dL/d(input),
    which has the shape of x.

    `training` is set by Sequential before forward: True while fitting, False in
    predict and evaluate (only layers such as Dropout care).
    """

    _cache = None  # written by forward, read by backward
    training = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("glassnet.") and not cls.__name__.startswith("_"):
            _BUILTIN_LAYERS[cls.__name__] = cls

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define backward(dout)")

    def parameters(self) -> list[Parameter]:
        return []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _cached(self):
        if self._cache is None:
            raise CallOrderError(
                f"{type(self).__name__}.backward() was called before forward()"
            )
        return self._cache

    # Hooks Sequential uses; a custom layer may ignore them.
    def initialize(self, rng: np.random.Generator, dtype, init: str | None) -> None:
        """(Re)create parameters with `rng` in `dtype`; `init` is a suggested scheme."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shape of one sample's output given one sample's input shape (no batch
        axis), or None if unknown. Layers that can, raise ShapeError on a mismatch."""
        return None

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer (used by save)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
