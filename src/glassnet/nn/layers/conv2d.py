"""Conv2D: 2-D convolution (cross-correlation, as in PyTorch), channels-first."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numbers

import numpy as np

from glassnet._im2col import ConvGrid, same_padding
from glassnet._kernels import column_sums, ones
from glassnet._validation import _is_positive_int, check_positive_int
from glassnet.errors import ConfigError, ShapeError
from glassnet.nn.initializers import generator_from_state, get_initializer
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter


def _pair(owner: str, name: str, value) -> tuple[int, int]:
    """An int k or a pair (kh, kw) of ints >= 1, as a pair."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(_is_positive_int(v) for v in pair):
        raise ConfigError(
            f"{owner}: {name} must be an int >= 1 or a pair (h, w) of them, "
            f"got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _valid_padding(padding) -> bool:
    """ "same", or an int >= 0 (not a bool: True would pass as 1)."""
    if isinstance(padding, str):
        return padding == "same"
    is_int = isinstance(padding, numbers.Integral) and not isinstance(padding, bool)
    return is_int and padding >= 0


def shape_text(shape) -> str:
    """(None, 3, 28, 28) -> "(N, 3, 28, 28)"; a batch axis of None prints as N."""
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


def image_shape_message(layer: str, channels: int | None, shape) -> str:
    """Why `shape` is not a batch of channels-first images, with a hint.

    channels: the channel count the layer needs (None: any). shape is the full
    batch shape, its first entry None when the batch size is not known.
    """
    C = "C" if channels is None else str(channels)
    got = shape_text(shape)
    msg = f"{layer} expects input of shape (N, C, H, W) = (N, {C}, H, W), got {got}"
    if len(shape) == 3:
        if channels in (None, 1):
            return msg + "; add a channel axis: X.reshape(N, 1, H, W), i.e. X[:, None]"
        return (
            msg + f"; a single image of shape ({C}, H, W) needs a batch axis: x[None]"
        )
    if len(shape) == 2:
        return (
            msg
            + "; the input is already flat: put Flatten() after, not before, this layer"
        )
    if len(shape) != 4:
        return msg
    if channels is not None and shape[-1] == channels:
        return (
            msg
            + "; this looks channels-last (N, H, W, C): glassnet is channels-first, "
            "use X.transpose(0, 3, 1, 2)"
        )
    if channels is not None:
        return msg + f"; in_channels should be {shape[1]}"
    return msg


class Conv2D(Layer):
    """2-D convolution: each of F filters slides over all C input channels.

    out[n, f, h, w] = bias[f] + sum over c, i, j of
                      weight[f, c, i, j] * x_padded[n, c, h*S + i, w*S + j]

    Shapes, channels-first as in PyTorch: x (N, C, H, W) -> out (N, F, H_out, W_out)
    with C = in_channels, F = out_channels, weight (F, C, KH, KW), bias (F,) and
        H_out = (H + pad_top + pad_bottom - KH) // S + 1  (W_out likewise).
    kernel_size: k or (KH, KW). stride S: an int >= 1. padding: an int p (p zeros on
    every side) or "same" (output ceil(H / S) x ceil(W / S); any odd pixel of
    padding goes to the bottom and right, as in Keras and PyTorch).

    As one matrix product (im2col): the windows become the columns of
    cols (N, C*KH*KW, H_out*W_out) and out = weight.reshape(F, C*KH*KW) @ cols.
    Backward, with g = dL/dout reshaped to (N, F, H_out*W_out):
        dL/dweight = sum over n of g[n] @ cols[n].T     (F, C*KH*KW)
        dL/dbias   = sum of g over n and pixels          (F,)
        dL/dx      = col2im(weight.reshape(F, -1).T @ g): each pixel collects the
                     gradient of every window that read it.
    init: an initializer name, default "glorot_uniform" (he_normal suits a ReLU
    that follows); the bias starts at zero. The fans are fan_in = C*KH*KW and
    fan_out = F*KH*KW. rng, dtype: as for Dense, the layer's own when given (a
    Sequential never replaces them), the model's when left None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride: int = 1,
        padding=0,
        *,
        init: str | None = None,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        check_positive_int(
            "Conv2D", in_channels=in_channels, out_channels=out_channels, stride=stride
        )
        KH, KW = _pair("Conv2D", "kernel_size", kernel_size)
        if not _valid_padding(padding):
            raise ConfigError(
                f"Conv2D: padding must be an int >= 0 or 'same', got {padding!r}"
            )
        if init is not None:
            get_initializer(init)  # fail now on an unknown name
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = (KH, KW)
        self.stride = int(stride)
        self.padding = padding if padding == "same" else int(padding)
        self.init = init
        self._own_dtype = dtype is not None
        # with its own rng, the layer keeps the generator's state to draw the same
        # numbers again if a model changes only the dtype
        self._own_rng = None if rng is None else rng.bit_generator.state
        dtype = np.float32 if dtype is None else dtype
        shape = (self.out_channels, self.in_channels, KH, KW)
        self.weight = Parameter(np.zeros(shape, dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_channels, dtype), "bias")
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
        scheme = get_initializer(self.init or "glorot_uniform")
        F, C, (KH, KW) = self.out_channels, self.in_channels, self.kernel_size
        self.weight.data = scheme(rng, (F, C, KH, KW), C * KH * KW, F * KH * KW, dtype)
        self.weight.grad = np.zeros((F, C, KH, KW), dtype)
        self.bias.data, self.bias.grad = np.zeros(F, dtype), np.zeros(F, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        grid = self._grid(x.shape)
        F = self.out_channels
        cols = grid.im2col(grid.pad(x))  # (N, C*KH*KW, H_out*W_grid)
        w_rows = self.weight.data.reshape(F, -1)  # (F, C*KH*KW)
        out = np.matmul(w_rows, cols)  # (N, F, H_out*W_grid), one GEMM per example
        out += self.bias.data[:, None]  # one bias per filter, shared by every pixel
        self._cache = (grid, cols)
        return grid.grid_to_output(out)  # (N, F, H_out, W_out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        grid, g = self._parameter_grads(dout)
        # col2im fused with its matrix product: the pixels read by offset (i, j)
        # collect weight[:, :, i, j].T @ g. Adding each offset's (C, L*N) product
        # while it is in cache beats building all (C*KH*KW, L*N) columns first.
        # Batch last (see ConvGrid.window_last): each addition is C contiguous runs.
        N, (KH, KW) = dout.shape[0], self.kernel_size
        g_last = grid.output_to_grid_last(dout)  # (F, L*N)
        w_t = self.weight.data.transpose(2, 3, 1, 0).copy()  # (KH, KW, C, F)
        dflat = np.zeros((self.in_channels, grid.size, N), dtype=g.dtype)
        for i in range(KH):
            for j in range(KW):
                target = grid.window_last(dflat, i, j)  # (C, H_out, W_grid, N) view
                part = w_t[i, j] @ g_last  # (C, F) @ (F, L*N) -> (C, L*N)
                target += part.reshape(target.shape)
        return grid.unpad_last(dflat)  # (N, C, H, W)

    def backward_params(self, dout: np.ndarray) -> None:
        # skips dL/dx (for the first layer): col2im is the costliest part of backward
        self._parameter_grads(dout)

    def _parameter_grads(self, dout: np.ndarray):
        """Store dL/dweight and dL/dbias; return (grid, g) for dL/dx."""
        grid, cols = self._cached()
        g = grid.output_to_grid(dout)  # (N, F, L), L = H_out*W_grid; 0 on extra columns
        # The transposed products cols[n] @ g[n].T (the long axis L inner in both
        # operands, F the short output axis) run 1.4-2x faster in OpenBLAS than
        # g[n] @ cols[n].T (cnn benchmark conv 2: 0.6-0.9 ms against 1.3-1.5 ms),
        # and faster than one GEMM over the whole batch (1.0-1.2 ms).
        dw_t = np.matmul(cols, g.transpose(0, 2, 1))  # (N, C*KH*KW, F)
        dw_t = column_sums(dw_t.reshape(dw_t.shape[0], -1))  # (C*KH*KW * F,)
        dw_t = dw_t.reshape(-1, self.out_channels)  # (C*KH*KW, F)
        # written into the existing gradient array, not bound as a new one
        np.copyto(self.weight.grad, dw_t.T.reshape(self.weight.shape))  # (F, C, KH, KW)
        # bias: a matrix-vector product with ones is far faster than g.sum(axis=2)
        per_example = g @ ones(g.shape[2], g.dtype)  # (N, F, L) @ (L,) -> (N, F)
        np.sum(per_example, axis=0, out=self.bias.grad)  # (N, F) -> (F,)
        return grid, g

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        grid = self._grid((None, *input_shape))
        return (self.out_channels, grid.H_out, grid.W_out)

    def get_config(self) -> dict:
        KH, KW = self.kernel_size
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": KH if KH == KW else [KH, KW],
            "stride": self.stride,
            "padding": self.padding,
        }
        if self.init is not None:
            config["init"] = self.init
        return config

    def __repr__(self) -> str:
        KH, KW = self.kernel_size
        k = KH if KH == KW else (KH, KW)
        return (
            f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={k}, "
            f"stride={self.stride}, padding={self.padding!r})"
        )

    def _grid(self, shape) -> ConvGrid:
        """Check a batch shape (N may be None) and place the windows on it."""
        C, (KH, KW), S = self.in_channels, self.kernel_size, self.stride
        if len(shape) != 4 or shape[1] != C:
            raise ShapeError(image_shape_message(repr(self), C, shape))
        H, W = shape[2], shape[3]
        if self.padding == "same":
            top, bottom = same_padding(H, KH, S)
            left, right = same_padding(W, KW, S)
        else:
            top = bottom = left = right = self.padding
        Hp, Wp = H + top + bottom, W + left + right
        if Hp < KH or Wp < KW or min(H, W) < 1:
            raise ShapeError(
                f"{self!r}: the {KH}x{KW} kernel does not fit in the padded input "
                f"{Hp}x{Wp} (input {shape_text(shape)}, padding {self.padding!r}); "
                "use a smaller kernel, more padding or larger images"
            )
        return ConvGrid(H, W, KH, KW, S, top, bottom, left, right)
