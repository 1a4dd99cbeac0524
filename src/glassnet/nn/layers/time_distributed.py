"""TimeDistributed: one layer applied to every time step of a sequence."""

import numpy as np

from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer, backward_params_of


class TimeDistributed(Layer):
    """The same layer, with the same weights, at every step: a per-step head.

        TimeDistributed(Dense(16, 5))   # (N, T, 16) -> (N, T, 5): a tagger's head

    Shapes: x (N, T, *step) -> out (N, T, *step_out), where the layer maps
    (N * T, *step) -> (N * T, *step_out). The N * T steps are one batch for the
    layer: forward and backward are the layer's own, on x.reshape(N * T, *step).

    Backward: the steps share the weights, so each weight gradient is the sum
    over all N * T steps, which the layer's backward over that one batch
    already computes; dL/dx is its input gradient reshaped back to (N, T, ...).
    """

    def __init__(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ArgumentTypeError(
                f"TimeDistributed: layer must be a glassnet Layer, got "
                f"{type(layer).__name__}"
            )
        self.layer = layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 3:
            raise ShapeError(
                f"TimeDistributed expects a sequence batch (N, T, ...), got shape "
                f"{x.shape}; for (N, D) use the layer itself"
            )
        N, T = x.shape[:2]
        out = self.layer.forward(x.reshape(N * T, *x.shape[2:]))  # (N*T, ...)
        self._cache = (N, T)
        return out.reshape(N, T, *out.shape[1:])  # (N, T, ...)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        N, T = self._cached()
        dx = self.layer.backward(dout.reshape(N * T, *dout.shape[2:]))  # (N*T, ...)
        return dx.reshape(N, T, *dx.shape[1:])  # (N, T, ...)

    def backward_params(self, dout: np.ndarray) -> None:
        N, T = self._cached()
        backward_params_of(self.layer)(dout.reshape(N * T, *dout.shape[2:]))

    def children(self) -> list[tuple[str, Layer]]:
        return [("layer", self.layer)]

    def own_parameters(self) -> list:
        return []  # the weights are the layer's

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        if len(input_shape) < 2:
            raise ShapeError(
                f"TimeDistributed expects a sequence (T, ...) per example, got "
                f"{tuple(input_shape)}"
            )
        T, step = input_shape[0], tuple(input_shape[1:])
        try:
            out = self.layer.output_shape(step)
        except ShapeError as exc:
            raise ShapeError(f"TimeDistributed layer: {exc}") from None
        return None if out is None else (T, *out)

    def __repr__(self) -> str:
        return f"TimeDistributed({self.layer!r})"
