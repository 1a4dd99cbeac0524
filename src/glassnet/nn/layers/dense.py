"""Dense: the fully connected layer."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._kernels import dense_grads, dot
from glassnet._validation import check_positive_int
from glassnet.errors import ShapeError
from glassnet.nn.initializers import generator_from_state, get_initializer
from glassnet.nn.layers.base import Layer, check_l2
from glassnet.nn.parameter import Parameter


class Dense(Layer):
    """Fully connected layer: out = x @ weight + bias.

    Shapes: x (N, D) -> out (N, M); weight (D, M); bias (M,), one number per output
    unit, broadcast over the batch. (Column-major code such as `w1 @ X + b0` with X
    of shape (D, N) computes the transpose of the same thing; its bias must still be
    one column (M, 1), never an (M, N) matrix, or every example gets its own bias.)

    Backward, with dout = dL/dout of shape (N, M):
        dL/dweight = x.T @ dout        (D, N) @ (N, M) -> (D, M), weight's shape
        dL/dbias   = dout.sum(axis=0)  the bias was broadcast over N rows
        dL/dx      = dout @ weight.T   (N, M) @ (M, D) -> (N, D)

    init: name of an initializer (see glassnet.nn.initializers), default
    "glorot_uniform"; he_normal suits a ReLU that follows. The bias starts at zero,
    except with "uniform", PyTorch's default, which draws it like the weight from
    U(-1/sqrt(in_features), 1/sqrt(in_features)).
    rng, dtype: the generator the weights are drawn from and their dtype. Given,
    they are the layer's own: a Sequential never replaces them. Left None, a model
    supplies its own (Sequential(seed=..., dtype=...)); alone, the layer draws
    from a fresh np.random.default_rng() in float32.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str | None = None,
        rng: np.random.Generator | None = None,
        dtype=None,
        l2: float = 0.0,
    ) -> None:
        check_positive_int("Dense", in_features=in_features, out_features=out_features)
        self.l2 = check_l2("Dense", l2)
        if init is not None:
            get_initializer(init)  # fail now on an unknown name
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self._own_dtype = dtype is not None
        # with its own rng, the layer keeps the generator's state to draw the same
        # numbers again if a model changes only the dtype
        self._own_rng = None if rng is None else rng.bit_generator.state
        dtype = np.float32 if dtype is None else dtype
        self.weight = Parameter(np.zeros((in_features, out_features), dtype), "weight")
        self.bias = Parameter(np.zeros(out_features, dtype), "bias")
        self._draw(rng if rng is not None else np.random.default_rng(), dtype)

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """Redraw from a model's `rng` unless this layer got its own generator;
        take the model's `dtype` unless it got its own."""
        dtype = self.weight.data.dtype if self._own_dtype else np.dtype(dtype)
        if self._own_rng is None:
            self._draw(rng, dtype)
        elif dtype != self.weight.data.dtype:
            self._draw(generator_from_state(self._own_rng), dtype)

    def _draw(self, rng: np.random.Generator, dtype) -> None:
        name = self.init or "glorot_uniform"
        scheme = get_initializer(name)
        D, M = self.in_features, self.out_features
        self.weight.data = scheme(rng, (D, M), D, M, dtype)
        self.weight.grad = np.zeros((D, M), dtype)
        # "uniform" is PyTorch's Linear default, which draws the bias from the same
        # U(-1/sqrt(D), 1/sqrt(D)); every other scheme starts the bias at zero.
        b = scheme(rng, (M,), D, M, dtype) if name == "uniform" else np.zeros(M, dtype)
        self.bias.data, self.bias.grad = b, np.zeros(M, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ShapeError(self._shape_message(x.shape))
        self._cache = x
        out = dot(x, self.weight.data)  # (N, D) @ (D, M) -> (N, M); see matmul
        np.add(out, self.bias.data, out)  # in place: saves an (N, M) temporary
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x = self._cache
        if x is None:
            self._cached()  # raises CallOrderError: backward before forward
        if dout.shape != (len(x), self.out_features):  # one tuple compare: ~0.1 us
            raise self._dout_error((len(x), self.out_features), dout.shape)
        # dL/dW = x.T @ dout (D, M) and dL/db = ones(N) @ dout (M,), in place; the
        # column sums as a product: 2-4x faster than dout.sum(axis=0)
        dense_grads(x, dout, self.weight.grad, self.bias.grad)
        if self.l2:
            self.weight.grad += 2.0 * self.l2 * self.weight.data  # d(l2 * sum W^2)
        return dot(dout, self.weight.data.T)  # (N, M) @ (M, D) -> (N, D)

    def backward_params(self, dout: np.ndarray) -> None:
        # backward without dL/dx (for the first layer): a third of the work saved
        x = self._cache
        if x is None:
            self._cached()  # raises CallOrderError: backward before forward
        if dout.shape != (len(x), self.out_features):
            raise self._dout_error((len(x), self.out_features), dout.shape)
        dense_grads(x, dout, self.weight.grad, self.bias.grad)  # (D, M) and (M,)
        if self.l2:
            self.weight.grad += 2.0 * self.l2 * self.weight.data

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != (self.in_features,):
            raise ShapeError(self._shape_message((None, *input_shape)))
        return (self.out_features,)

    def penalty(self) -> float:
        if not self.l2:  # checked first: fit asks every step
            return 0.0
        W = self.weight.data
        return self.l2 * float(np.vdot(W, W))

    def get_config(self) -> dict:
        config = {"in_features": self.in_features, "out_features": self.out_features}
        if self.init is not None:
            config["init"] = self.init
        if self.l2:
            config["l2"] = self.l2
        return config

    def _shape_message(self, shape) -> str:
        shown = (
            "(N, " + ", ".join(str(s) for s in shape[1:]) + ")"
            if len(shape) > 1
            else str(shape)
        )
        D, M = self.in_features, self.out_features
        msg = f"Dense({D}, {M}) expects input of shape (N, {D}), got {shown}"
        if len(shape) > 2:
            msg += "; add Flatten() before this layer"
        elif len(shape) == 2:
            msg += f"; in_features should be {shape[1]}"
        elif len(shape) == 1:
            msg += "; a single sample must be reshaped to (1, D)"
        return msg
