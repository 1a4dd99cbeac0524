"""Residual: a skip connection around any block of layers."""

import numpy as np

from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer


class Residual(Layer):
    """out = x + block(x): the block learns a correction to its input.

    Shapes: x (N, ...) -> out (N, ...), the same shape; the block must keep it.

    Backward: out depends on x along two paths, the identity and the block, so
    their gradients add:
        dL/dx = dout + block.backward(dout)
    The identity path passes dout through untouched, which is why gradients
    reach the early layers of a deep residual network undiminished.
    """

    def __init__(self, block: Layer) -> None:
        if not isinstance(block, Layer):
            raise ArgumentTypeError(
                f"Residual: block must be a glassnet Layer (a Sequential for several "
                f"layers), got {type(block).__name__}"
            )
        self.block = block

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self.block.forward(x)
        if out.shape != x.shape:
            raise ShapeError(
                f"Residual: the block maps {_batch(x.shape)} to {_batch(out.shape)}; "
                "out = x + block(x) needs the block to keep the shape"
            )
        self._cache = True
        return x + out  # (N, ...) + (N, ...)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self._cached()
        return dout + self.block.backward(dout)  # identity path + block path

    def children(self) -> list[tuple[str, Layer]]:
        return [("block", self.block)]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        try:
            shape = self.block.output_shape(tuple(input_shape))
        except ShapeError as exc:
            raise ShapeError(f"Residual block: {exc}") from None
        if shape is not None and tuple(shape) != tuple(input_shape):
            raise ShapeError(
                f"Residual: the block maps {_batch((None, *input_shape))} to "
                f"{_batch((None, *shape))}; out = x + block(x) needs the block to "
                "keep the shape"
            )
        return shape

    def __repr__(self) -> str:
        inner = repr(self.block).replace("\n", "\n  ")
        return f"Residual(\n  {inner}\n)"


def _batch(shape) -> str:
    """(4, 5) -> "(N, 5)" for a batch shape, (5,) -> "(N, 5)" for one sample's."""
    return "(N, " + ", ".join(str(s) for s in tuple(shape)[1:]) + ")"
