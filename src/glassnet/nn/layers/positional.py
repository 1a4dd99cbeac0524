"""Positional embeddings: tell an attention layer where each token sits.

Attention treats its input as a set: permute the tokens and the outputs are
permuted the same way. Adding a vector that depends on the position t to each
token's embedding breaks that symmetry. Both layers here add one:

    out[n, t] = x[n, t] + P[t]          x (N, T, E) -> out (N, T, E)

PositionalEmbedding learns P; SinusoidalPositionalEncoding fixes it.
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numbers

import numpy as np

from glassnet._validation import check_float_dtype, check_positive_int
from glassnet.errors import ConfigError, ShapeError
from glassnet.nn.initializers import generator_from_state
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter


def _check_sequence(me: str, shape: tuple, E: int, max_len: int | None) -> None:
    """ShapeError unless shape is (N, T, E) with 1 <= T (<= max_len)."""
    if len(shape) != 3 or shape[2] != E or shape[1] < 1:
        got = "(N, " + ", ".join(str(s) for s in shape[1:]) + ")"
        hint = "; embed token ids (N, T) first" if len(shape) == 2 else ""
        raise ShapeError(f"{me} expects input of shape (N, T, {E}), got {got}{hint}")
    if max_len is not None and shape[1] > max_len:
        raise ShapeError(
            f"{me}: sequences of up to {max_len} positions, got T = {shape[1]}; "
            f"build it with max_len >= {shape[1]}"
        )


class PositionalEmbedding(Layer):
    """A learned vector per position, added to the input: out = x + weight[:T].

    Shapes: x (N, T, E) -> (N, T, E), T <= max_len; weight (max_len, E), drawn
    from N(0, 1) as torch.nn.Embedding(max_len, E), the usual PyTorch way to
    write it (GPT-2's wpe).

    Backward: x passes straight through (dx = dout), and position t's vector
    was added to every example, so its gradient sums over the batch:
        dweight[t] = sum over n of dout[n, t]   for t < T, 0 for later positions
    """

    def __init__(
        self,
        max_len: int,
        embed_dim: int,
        *,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        check_positive_int("PositionalEmbedding", max_len=max_len, embed_dim=embed_dim)
        self.max_len, self.embed_dim = max_len, embed_dim
        self._own_dtype = dtype is not None
        self._own_rng = None if rng is None else rng.bit_generator.state
        dt = check_float_dtype(
            "PositionalEmbedding", np.float32 if dtype is None else dtype
        )
        self.weight = Parameter(np.zeros((max_len, embed_dim), dt), "weight")
        self._draw(rng if rng is not None else np.random.default_rng(), dt)

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """A model's generator and dtype, for what the layer was not given."""
        dtype = self.weight.data.dtype if self._own_dtype else np.dtype(dtype)
        if self._own_rng is None:
            self._draw(rng, dtype)
        elif dtype != self.weight.data.dtype:
            self._draw(generator_from_state(self._own_rng), dtype)

    def _draw(self, rng: np.random.Generator, dtype) -> None:
        w = rng.standard_normal(self.weight.shape).astype(dtype)
        self.weight.data, self.weight.grad = w, np.zeros_like(w)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_sequence(self._me(), x.shape, self.embed_dim, self.max_len)
        T = x.shape[1]
        self._cache = T
        return x + self.weight.data[:T]  # (N, T, E) + (T, E), broadcast over N

    def backward(self, dout: np.ndarray) -> np.ndarray:
        T = self._cached()
        grad = np.zeros_like(self.weight.data)  # positions beyond T: unused, 0
        grad[:T] = dout.sum(axis=0)  # (N, T, E) -> (T, E)
        self.weight.grad = grad
        return dout

    def parameters(self) -> list[Parameter]:
        return [self.weight]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_sequence(self._me(), (None, *input_shape), self.embed_dim, self.max_len)
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"max_len": self.max_len, "embed_dim": self.embed_dim}

    def _me(self) -> str:
        return f"PositionalEmbedding({self.max_len}, {self.embed_dim})"


class SinusoidalPositionalEncoding(Layer):
    """The fixed encoding of "Attention is all you need", added to the input.

        P[t, 2i]   = sin(t / base^(2i / E))
        P[t, 2i+1] = cos(t / base^(2i / E))      base = 10000, i = 0, 1, ...

    Shapes: x (N, T, E) -> x + P[:T], (N, T, E), any T. Nothing is learned: each
    pair of features is a rotation at its own frequency, so P[t + k] is a fixed
    linear function of P[t] and relative positions are easy to read off.
    Backward: dx = dout.
    """

    def __init__(self, embed_dim: int, base: float = 10000.0) -> None:
        check_positive_int("SinusoidalPositionalEncoding", embed_dim=embed_dim)
        if (
            isinstance(base, bool)
            or not isinstance(base, numbers.Real)
            or not (np.isfinite(base) and base > 1)
        ):
            raise ConfigError(
                f"SinusoidalPositionalEncoding: base must be a number > 1, got {base!r}"
            )
        self.embed_dim, self.base = embed_dim, float(base)

    def encoding(self, T: int) -> np.ndarray:
        """P[:T], (T, E), in float64."""
        E = self.embed_dim
        t = np.arange(T, dtype=np.float64)[:, None]  # (T, 1)
        rates = self.base ** (-np.arange(0, E, 2, dtype=np.float64) / E)  # (ceil(E/2),)
        P = np.empty((T, E))
        P[:, 0::2] = np.sin(t * rates)  # (T, ceil(E/2))
        P[:, 1::2] = np.cos(t * rates[: E // 2])  # (T, floor(E/2))
        return P

    def forward(self, x: np.ndarray) -> np.ndarray:
        me = f"SinusoidalPositionalEncoding({self.embed_dim})"
        _check_sequence(me, x.shape, self.embed_dim, None)
        self._cache = True
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return x + self.encoding(x.shape[1]).astype(dtype)  # (N, T, E) + (T, E)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self._cached()
        return dout  # a constant was added

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        me = f"SinusoidalPositionalEncoding({self.embed_dim})"
        _check_sequence(me, (None, *input_shape), self.embed_dim, None)
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"embed_dim": self.embed_dim, "base": self.base}
