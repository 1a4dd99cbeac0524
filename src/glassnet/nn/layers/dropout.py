"""Dropout: zero a random fraction of activations while training."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._validation import check_in_range
from glassnet.nn.layers.base import Layer


class Dropout(Layer):
    """While training, zero each activation with probability `rate` and scale the
    others by 1 / (1 - rate); outside training, pass the input through unchanged.

    Shapes: any -> same. The scaling ("inverted dropout") keeps the expected value
    of every activation equal in training and inference, so predict needs no
    correction and never drops anything.
    Backward multiplies dout by the same mask: dx = dout * mask / (1 - rate).

    `training` is set by Sequential (True inside fit, False in predict and
    evaluate); a Dropout used on its own is in inference mode until you set
    `layer.training = True`. The masks are drawn from the model's generator
    (Sequential hands it over in initialize) unless the layer was given its own
    `rng`, so a seeded fit is repeatable.
    """

    def __init__(
        self, rate: float = 0.5, *, rng: np.random.Generator | None = None
    ) -> None:
        check_in_range("Dropout", "rate", rate, 0.0, 1.0)
        self.rate = float(rate)
        self._own_rng = rng is not None
        self.rng = rng if rng is not None else np.random.default_rng()

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        if not self._own_rng:  # a generator given to the layer is never replaced
            self.rng = rng  # the model's: one seed reproduces the whole run

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.rate == 0.0:
            self._cache = (None,)  # identity: backward passes dout through
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        keep = self.rng.random(x.shape, dtype=dtype) >= self.rate  # P(keep) = 1 - rate
        mask = keep.astype(dtype)
        mask *= 1.0 / (1.0 - self.rate)  # inverted dropout: E[out] = x
        self._cache = (mask,)
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        (mask,) = self._cached()
        return dout if mask is None else dout * mask

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"rate": self.rate}
