"""Flatten: images (or any tensors) to vectors, so Dense can follow a convolution."""

import numpy as np

from glassnet.errors import ShapeError
from glassnet.nn.layers.base import Layer


class Flatten(Layer):
    """Keep the batch axis, join all the others: (N, C, H, W) -> (N, C*H*W).

    The order is NumPy's (and PyTorch's): channel, then row, then column, so
    feature c*H*W + h*W + w is pixel (h, w) of channel c. Backward reshapes the
    gradient back to the input's shape; nothing is learned.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ShapeError(
                f"Flatten expects a batch (N, ...) with at least 2 axes, got {x.shape}"
            )
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)  # (N, C, H, W) -> (N, C*H*W)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        return dout.reshape(x_shape)  # (N, C*H*W) -> (N, C, H, W)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) == 0:
            raise ShapeError(
                "Flatten expects a batch (N, ...) with at least 2 axes, got (N,)"
            )
        return (int(np.prod(input_shape)),)
