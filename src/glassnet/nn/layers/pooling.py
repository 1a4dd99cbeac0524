"""MaxPool2D and AvgPool2D: a KH x KW window per channel, reduced to one number.

_MaxPool and _AvgPool hold the math for the 2-D layers here and the 1-D ones
(pooling1d.py), which run it on (N, C, 1, L) (see _windows.py).
"""

import numpy as np

from glassnet._im2col import ConvGrid, strided_window
from glassnet.errors import ConfigError
from glassnet.nn.layers._windows import (
    AXES,
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
from glassnet.nn.layers.base import Layer


class _Pool(Layer):
    """What the four poolings share: arguments, shape checks, output size, config.

    _NDIM is the number of spatial axes of the input: 2 for (N, C, H, W), 1 for
    (N, C, L), which the math sees as (N, C, 1, L).
    """

    _NDIM = 2

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        name, n = type(self).__name__, self._NDIM
        self.kernel_size = per_axis(name, "kernel_size", kernel_size, n)
        self.stride = (
            self.kernel_size if stride is None else per_axis(name, "stride", stride, n)
        )
        self.padding, self._padding = parse_padding(name, padding, n)
        if self._padding == "same":  # "same" pads less than a window on every side
            return
        pads = zip(AXES[n], self._padding, self.kernel_size, strict=True)
        for axis, (before, after), k in pads:
            if max(before, after) >= k:
                raise ConfigError(
                    f"{name}: padding {padding!r} puts {max(before, after)} zeros on "
                    f"one side of the {axis}, as many as the window ({k}): a window "
                    f"could then hold only padding; use at most {k - 1} per side "
                    f"(PyTorch allows at most {k // 2})"
                )

    def _grid(self, shape) -> ConvGrid:
        """Check a batch shape (N may be None) and place the windows on it."""
        check_rank(self, self._NDIM, None, shape)
        return window_grid(
            self, shape, self.kernel_size, self.stride, self._padding, pool=True
        )

    def _offsets(self, grid: ConvGrid) -> list[tuple[int, int]]:
        """Offsets (i, j) of the pixels in a window, in row-major order."""
        return [(i, j) for i in range(grid.KH) for j in range(grid.KW)]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        grid = self._grid((None, *input_shape))
        spatial = (grid.H_out, grid.W_out) if self._NDIM == 2 else (grid.W_out,)
        return (input_shape[0], *spatial)

    def padding_amounts(self, sizes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """(before, after) padding per spatial axis for an input of these sizes."""
        return resolve_padding(self._padding, sizes, self.kernel_size, self.stride)

    def get_config(self) -> dict:
        return {
            "kernel_size": as_config(compact(self.kernel_size)),
            "stride": as_config(compact(self.stride)),
            "padding": as_config(self.padding),
        }

    def __repr__(self) -> str:
        padding = "" if self.padding == 0 else f", padding={self.padding!r}"
        return (
            f"{type(self).__name__}(kernel_size={compact(self.kernel_size)}, "
            f"stride={compact(self.stride)}{padding})"
        )


class _MaxPool(_Pool):
    """The max-pooling math on images (N, C, H, W); see MaxPool2D."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        grid = self._grid(x.shape)
        SH, SW, H_out, W_out = grid.SH, grid.SW, grid.H_out, grid.W_out
        # padding never wins a max: PyTorch's implicit -inf
        x = grid.padded(to_image(x, self._NDIM), -np.inf)  # (N, C, Hp, Wp)
        out = strided_window(
            x, 0, 0, SH, SW, H_out, W_out
        ).copy()  # (N, C, H_out, W_out)
        for i, j in self._offsets(grid)[1:]:  # one call per offset for the whole batch
            np.maximum(out, strided_window(x, i, j, SH, SW, H_out, W_out), out=out)
        self._cache = (grid, x, out)
        return from_image(out, self._NDIM)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        grid, x, out = self._cached()
        dout = to_image(dout, self._NDIM)  # (N, C, H_out, W_out)
        SH, SW, H_out, W_out = grid.SH, grid.SW, grid.H_out, grid.W_out
        dx = np.zeros(x.shape, dtype=dout.dtype)  # (N, C, Hp, Wp)
        disjoint = SH >= grid.KH and SW >= grid.KW  # no pixel in two windows
        taken = None  # (N, C, H_out, W_out): windows whose winner is already found
        for i, j in self._offsets(grid):
            hit = strided_window(x, i, j, SH, SW, H_out, W_out) == out  # a max here
            if taken is None:
                taken = hit.copy()
            else:
                np.greater(hit, taken, out=hit)  # hit and not taken: first max wins
                taken |= hit
            target = strided_window(dx, i, j, SH, SW, H_out, W_out)  # view into dx
            if disjoint:  # each pixel set once
                np.multiply(dout, hit, out=target)
            else:  # a pixel in several windows may win several times
                target += dout * hit
        return from_image(grid.unpadded(dx), self._NDIM)  # (N, C, H, W)


class _AvgPool(_Pool):
    """The average-pooling math on images (N, C, H, W); see AvgPool2D."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        grid = self._grid(x.shape)
        SH, SW, H_out, W_out = grid.SH, grid.SW, grid.H_out, grid.W_out
        x = grid.padded(to_image(x, self._NDIM), 0.0)  # (N, C, Hp, Wp)
        out = np.zeros((*x.shape[:2], H_out, W_out), dtype=x.dtype)
        for i, j in self._offsets(grid):
            out += strided_window(x, i, j, SH, SW, H_out, W_out)
        out *= 1.0 / (grid.KH * grid.KW)  # padded zeros count, as in PyTorch
        self._cache = (grid, x.shape)
        return from_image(out, self._NDIM)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        grid, padded_shape = self._cached()
        dout = to_image(dout, self._NDIM)  # (N, C, H_out, W_out)
        SH, SW, H_out, W_out = grid.SH, grid.SW, grid.H_out, grid.W_out
        share = dout * (1.0 / (grid.KH * grid.KW))  # each pixel's part of a window
        dx = np.zeros(padded_shape, dtype=share.dtype)  # (N, C, Hp, Wp)
        for i, j in self._offsets(grid):
            target = strided_window(dx, i, j, SH, SW, H_out, W_out)  # view into dx
            if SH >= grid.KH and SW >= grid.KW:
                target[...] = share  # windows do not overlap
            else:
                target += share
        return from_image(grid.unpadded(dx), self._NDIM)  # (N, C, H, W)


class MaxPool2D(_MaxPool):
    """Maximum over each KH x KW window, per channel.

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), where
    H_out = (H + pad_top + pad_bottom - KH) // SH + 1 (W_out likewise).
    kernel_size: P or (KH, KW); stride: S or (SH, SW), default the window (windows
    do not overlap); padding: as for Conv2D ("valid", "same", p, (ph, pw) or
    ((top, bottom), (left, right))), at most KH - 1 rows and KW - 1 columns per
    side, so that every window holds an input pixel (PyTorch allows at most half
    the window). Padding never wins: it acts as -inf, as in PyTorch. Rows and
    columns that no window reaches are ignored, as in PyTorch.

    Backward sends each upstream gradient to the input that won its window and
    nothing to the others. On ties the first maximum in row-major order within
    the window wins (as in PyTorch), and receives the whole gradient.
    The winners are found in backward by comparing x with out, rather than by
    tracking an argmax in forward: the comparisons cost less than the tracking,
    and predict, which never calls backward, does not pay for them at all.
    """

    _NDIM = 2


class AvgPool2D(_AvgPool):
    """Mean over each KH x KW window, per channel.

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), with H_out, W_out,
    kernel_size, stride and padding as for MaxPool2D. Padded zeros count in the
    mean: every window divides by KH * KW (PyTorch's default,
    count_include_pad=True; TensorFlow's "same" divides by the input pixels only).
    Backward: every pixel of a window receives dout / (KH * KW) from it.
    """

    _NDIM = 2
