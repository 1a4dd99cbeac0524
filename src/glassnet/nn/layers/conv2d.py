"""Conv2D: 2-D convolution (cross-correlation, as in PyTorch), channels-first.

_Convolution holds the math for Conv2D and Conv1D: Conv1D runs it on
(N, C, 1, L) with a 1 x K kernel (see _windows.py).
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._im2col import ConvGrid
from glassnet._kernels import ones
from glassnet._validation import check_positive_int
from glassnet.nn.initializers import generator_from_state, get_initializer
from glassnet.nn.layers._windows import (
    as_config,
    check_rank,
    compact,
    from_image,
    parse_padding,
    per_axis,
    resolve_padding,
    to_image,
    window_grid,
)
from glassnet.nn.layers.base import Layer, check_l2
from glassnet.nn.parameter import Parameter

# Columns of a batch up to WHOLE_BATCH_BYTES are made at once and kept for
# backward; larger ones are made in chunks of about CHUNK_BYTES (see
# _Convolution._chunks), so that large images never hold all their columns.
WHOLE_BATCH_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024


class _Convolution(Layer):
    """What Conv2D and Conv1D share: arguments, weights and the im2col math.

    The math is written for images x (N, C, H, W). _NDIM is the number of
    spatial axes of the layer's own input: 2 for Conv2D; 1 for Conv1D, whose
    signals (N, C, L) are viewed as (N, C, 1, L) and its weight (F, C, K) as
    (F, C, 1, K), so both layers run this same code (to_image / from_image add
    and drop the height axis as views).

        out[n, f, h, w] = bias[f] + sum over c, i, j of
                          weight[f, c, i, j] * x_padded[n, c, h*SH + i, w*SW + j]

    As one matrix product (im2col) for the whole batch: the windows become the
    columns of cols (C*KH*KW, N*H_out*W_out), channel-major (see ConvGrid), and
    out = weight.reshape(F, C*KH*KW) @ cols, (F, N*H_out*W_out); large columns
    are made and multiplied in chunks of examples (see _chunks).
    Backward, with g = dL/dout laid out the same way, (F, N*H_out*W_out):
        dL/dweight = g @ cols.T                           (F, C*KH*KW)
        dL/dbias   = sum of g over n and pixels          (F,)
        dL/dx      = col2im(weight.reshape(F, -1).T @ g): each pixel collects the
                     gradient of every window that read it.
    """

    _NDIM = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        *,
        init: str | None = None,
        rng: np.random.Generator | None = None,
        dtype=None,
        l2: float = 0.0,
    ) -> None:
        name, n = type(self).__name__, self._NDIM
        check_positive_int(name, in_channels=in_channels, out_channels=out_channels)
        self.l2 = check_l2(name, l2)
        self.kernel_size = per_axis(name, "kernel_size", kernel_size, n)
        self.stride = per_axis(name, "stride", stride, n)
        self.padding, self._padding = parse_padding(name, padding, n)
        if init is not None:
            get_initializer(init)  # fail now on an unknown name
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.init = init
        self._own_dtype = dtype is not None
        # with its own rng, the layer keeps the generator's state to draw the same
        # numbers again if a model changes only the dtype
        self._own_rng = None if rng is None else rng.bit_generator.state
        dtype = np.float32 if dtype is None else dtype
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
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
        F, C = self.out_channels, self.in_channels
        shape, K = (F, C, *self.kernel_size), int(np.prod(self.kernel_size))
        self.weight.data = scheme(rng, shape, C * K, F * K, dtype)
        self.weight.grad = np.zeros(shape, dtype)
        self.bias.data, self.bias.grad = np.zeros(F, dtype), np.zeros(F, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        grid = self._grid(x.shape)  # checks x; places the windows
        F, n = self.out_channels, self._NDIM
        flat = grid.pad(to_image(x, n))  # (N, C, size)
        w_rows = self.weight.data.reshape(F, -1)  # (F, C*KH*KW)
        N, L = flat.shape[0], grid.H_out * grid.W_grid
        out = np.empty((F, N * L), dtype=np.result_type(w_rows, flat))
        chunks = self._chunks(grid, flat)
        for s, e in chunks:
            cols = grid.im2col(flat[s:e])  # (C*KH*KW, n*L)
            np.matmul(w_rows, cols, out=out[:, s * L : e * L])  # (F, n*L)
        # backward makes the columns again when there were several chunks; the
        # order (grid, cols, padded x) is the one reports/_trace.py names
        self._cache = (grid, cols if len(chunks) == 1 else None, flat)
        # one bias per filter, shared by every pixel
        out = from_image(grid.to_output(out, self.bias.data), n)  # (N, F, ...)
        self._out_shape = out.shape  # what backward's dout must be
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self._check_dout(dout)
        grid, g = self._parameter_grads(to_image(dout, self._NDIM))  # g (F, N*L)
        w_rows = self.weight.data.reshape(self.out_channels, -1)  # (F, C*KH*KW)
        dcols = w_rows.T @ g  # (C*KH*KW, F) @ (F, N*L) -> (C*KH*KW, N*L)
        return from_image(grid.col2im(dcols), self._NDIM)  # (N, C, H, W)

    def backward_params(self, dout: np.ndarray) -> None:
        # skips dL/dx (for the first layer): col2im is the costliest part of backward
        self._check_dout(dout)
        self._parameter_grads(to_image(dout, self._NDIM))

    def _parameter_grads(self, dout: np.ndarray):
        """Store dL/dweight and dL/dbias; return (grid, g) for dL/dx.
        dout: (N, F, H_out, W_out), a signal's with its height axis of 1;
        g: dout channel-major on the grid, (F, N*L), 0 on the extra columns."""
        grid, kept, flat = self._cached()
        g = grid.from_output(dout)  # (F, N*L)
        L = grid.H_out * grid.W_grid
        dw_t = np.zeros((self.weight.data[0].size, self.out_channels), dtype=g.dtype)
        for s, e in self._chunks(grid, flat):
            cols = grid.im2col(flat[s:e]) if kept is None else kept  # (CKK, n*L)
            # cols @ g.T, the long axis n*L inner in both operands: faster in
            # OpenBLAS than g @ cols.T on two threads, as fast on one
            dw_t += cols @ g[:, s * L : e * L].T  # (C*KH*KW, n*L) @ (n*L, F)
        # written into the existing gradient array, not bound as a new one
        np.copyto(self.weight.grad, dw_t.T.reshape(self.weight.shape))  # (F, C, *K)
        if self.l2:  # d(l2 * sum(weight**2)) / dweight
            self.weight.grad += 2.0 * self.l2 * self.weight.data
        # bias: a matrix-vector product with ones is far faster than g.sum(axis=1)
        np.matmul(g, ones(g.shape[1], g.dtype), out=self.bias.grad)  # (F,)
        return grid, g

    @staticmethod
    def _chunks(grid, flat: np.ndarray) -> list[tuple[int, int]]:
        """Examples [s, e) per chunk of columns: the whole batch if its columns
        (C*KH*KW, N*L) take at most WHOLE_BATCH_BYTES, else chunks of about
        CHUNK_BYTES.

        Memory, not speed: columns larger than WHOLE_BATCH_BYTES are never
        kept whole (backward makes them again, chunk by chunk). Chunks sized
        for the L2 cache (512 KB) were tried for speed and dropped: in
        benchmarks/run.py's cnn case (LeNet, batch 64, columns of 4.3 and
        3.7 MB) they left one thread where it was (0.43x numpy, against 0.44x
        for the whole batch) and made two threads slower (0.50x against
        0.43x): each of the many small products waits for OpenBLAS's second
        thread.
        """
        N, C = flat.shape[:2]
        per_example = C * grid.KH * grid.KW * grid.H_out * grid.W_grid * flat.itemsize
        if N * per_example <= WHOLE_BATCH_BYTES:
            return [(0, N)]
        n = max(1, CHUNK_BYTES // per_example)
        return [(s, min(s + n, N)) for s in range(0, N, n)]

    def _check_dout(self, dout: np.ndarray) -> None:
        self._cached()  # CallOrderError before forward
        if dout.shape != self._out_shape:
            raise self._dout_error(self._out_shape, dout.shape)

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        grid = self._grid((None, *input_shape))
        spatial = (grid.H_out, grid.W_out) if self._NDIM == 2 else (grid.W_out,)
        return (self.out_channels, *spatial)

    def padding_amounts(self, sizes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """(before, after) zeros per spatial axis for an input of these sizes."""
        return resolve_padding(self._padding, sizes, self.kernel_size, self.stride)

    def get_config(self) -> dict:
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": as_config(compact(self.kernel_size)),
            "stride": as_config(compact(self.stride)),
            "padding": as_config(self.padding),
        }
        if self.init is not None:
            config["init"] = self.init
        if self.l2:
            config["l2"] = self.l2
        return config

    def penalty(self) -> float:
        W = self.weight.data
        return self.l2 * float(np.vdot(W, W)) if self.l2 else 0.0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"kernel_size={compact(self.kernel_size)}, "
            f"stride={compact(self.stride)}, padding={self.padding!r})"
        )

    def _grid(self, shape) -> ConvGrid:
        """Check a batch shape (N may be None) and place the windows on it."""
        check_rank(self, self._NDIM, self.in_channels, shape)
        return window_grid(self, shape, self.kernel_size, self.stride, self._padding)


class Conv2D(_Convolution):
    """2-D convolution: each of F filters slides over all C input channels.

    out[n, f, h, w] = bias[f] + sum over c, i, j of
                      weight[f, c, i, j] * x_padded[n, c, h*SH + i, w*SW + j]

    Shapes, channels-first as in PyTorch: x (N, C, H, W) -> out (N, F, H_out, W_out)
    with C = in_channels, F = out_channels, weight (F, C, KH, KW), bias (F,) and
        H_out = (H + pad_top + pad_bottom - KH) // SH + 1  (W_out likewise).
    kernel_size: k or (KH, KW). stride: S or (SH, SW).
    padding: "valid" (none, the same as 0), an int p (p zeros on every side),
    (ph, pw) per axis, ((top, bottom), (left, right)) explicitly, or "same":
    out ceil(H / SH) x ceil(W / SW). "same" pads total = max((ceil(H / SH) - 1)
    * SH + KH - H, 0) rows, total // 2 on top and the odd row at the bottom
    (columns likewise, the odd one on the right): TensorFlow's rule. With stride
    1 this is also PyTorch's padding="same"; PyTorch refuses "same" with a
    stride > 1, glassnet follows TensorFlow there.

    The math, forward and backward, is _Convolution's (one im2col and one matrix
    product for the whole batch). A shape error names each axis's size, padding and
    output, and says when an axis's windows read only padding (then the output
    would not depend on the input: Conv2D(1, 8, (1, 5), stride=2, padding=1) on
    (N, 1, 1, 40) reads padding rows 0 and 2 and never the signal's row 1).
    init: an initializer name, default "glorot_uniform" (he_normal suits a ReLU
    that follows); the bias starts at zero. The fans are fan_in = C*KH*KW and
    fan_out = F*KH*KW. rng, dtype: as for Dense, the layer's own when given (a
    Sequential never replaces them), the model's when left None.
    """

    _NDIM = 2
