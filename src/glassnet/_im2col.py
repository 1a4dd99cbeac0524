"""Window helpers shared by the convolutions and the poolings (1-D and 2-D).

A KH x KW window slides over each channel of x (N, C, H, W) with strides SH
(down) and SW (across). The 1-D layers use the same code on x (N, C, 1, L),
with KH = SH = 1. For window offset (i, j) (0 <= i < KH, 0 <= j < KW) the
input pixels it touches at every output position form one strided slice of x,

    x[:, :, i : i + SH * (H_out - 1) + 1 : SH, j : j + SW * (W_out - 1) + 1 : SW]

of shape (N, C, H_out, W_out). Every layer here loops over the KH * KW window
offsets only (9 for a 3x3 kernel) and lets NumPy handle batch, channels and
pixels in one call per offset: col2im (in Conv2D.backward) is KH * KW slice
additions for the whole batch (no np.add.at), max-pooling KH * KW np.maximum
calls. im2col goes further: the
slices of all offsets are one strided view, copied by one call.

Convolution with stride 1 on both axes uses a "wide" output grid. The padded
input is stored flat per channel, (N, C, Hp * Wp), and output position (h, w)
is given the flat index q = h * Wp + w for every w < Wp, not only w < W_out.
Then the pixels of offset (i, j) are the contiguous run
flat[i * Wp + j : i * Wp + j + H_out * Wp], so im2col and its adjoint copy and
add long contiguous runs, not short rows.
The Wp - W_out extra columns per row are computed and dropped (their upstream
gradient is zero, so they add nothing to any gradient); they cost (KW - 1) / Wp
of the matrix product, against copies several times faster.
"""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided


def output_size(size: int, window: int, stride: int, pad_total: int = 0) -> int:
    """Window positions along one axis: (size + pad_total - window) // stride + 1."""
    return (size + pad_total - window) // stride + 1


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """(before, after) padding so that the output has ceil(size / stride) positions.

    TensorFlow's rule: total = max((ceil(size / stride) - 1) * stride + window
    - size, 0), split as evenly as possible with the odd pixel after
    (bottom/right). For stride 1 this is PyTorch's padding="same" too, and for an
    odd window (window - 1) // 2 on both sides; PyTorch refuses stride > 1.
    """
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def strided_window(
    x: np.ndarray, i: int, j: int, SH: int, SW: int, H_out: int, W_out: int
) -> np.ndarray:
    """View of the pixels of window offset (i, j) at every output position.

    Shapes: x (N, C, H, W) -> view (N, C, H_out, W_out). Writing to the view
    writes to x; the positions of one offset never overlap, so `view += g` is safe.
    """
    rows = slice(i, i + SH * (H_out - 1) + 1, SH)
    cols = slice(j, j + SW * (W_out - 1) + 1, SW)
    return x[:, :, rows, cols]


@dataclass(frozen=True)
class ConvGrid:
    """Where a convolution's windows sit in its padded, flattened input.

    Shapes: input (N, C, H, W); padded input (N, C, Hp, Wp) stored flat as
    (N, C, size); output grid (F, N, H_out, W_grid), channel-major, with
    W_grid = Wp when the grid is wide (stride 1 on both axes) and W_out
    otherwise; L = H_out*W_grid grid positions per example. The poolings use
    only the geometry (Hp, Wp, H_out, W_out, the padding).
    """

    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def Hp(self) -> int:
        return self.top + self.H + self.bottom

    @property
    def Wp(self) -> int:
        return self.left + self.W + self.right

    @property
    def H_out(self) -> int:
        return output_size(self.Hp, self.KH, self.SH)

    @property
    def W_out(self) -> int:
        return output_size(self.Wp, self.KW, self.SW)

    @property
    def wide(self) -> bool:
        return self.SH == 1 and self.SW == 1

    @property
    def W_grid(self) -> int:
        return self.Wp if self.wide else self.W_out

    @property
    def size(self) -> int:
        # the wide grid's last window runs KW - 1 pixels past the padded image
        return self.Hp * self.Wp + (self.KW - 1 if self.wide else 0)

    def pad(self, x: np.ndarray) -> np.ndarray:
        """Zero-padded copy of x, flat per channel: (N, C, H, W) -> (N, C, size)."""
        N, C = x.shape[:2]
        flat = np.zeros((N, C, self.size), dtype=x.dtype)  # the border stays zero
        self.image(flat)[
            :, :, self.top : self.top + self.H, self.left : self.left + self.W
        ] = x
        return flat

    def padded(self, x: np.ndarray, fill: float) -> np.ndarray:
        """x with its padding filled with `fill` (the poolings: -inf for the max,
        0 for the mean): (N, C, H, W) -> (N, C, Hp, Wp); x itself if unpadded."""
        if self.Hp == self.H and self.Wp == self.W:
            return x
        N, C = x.shape[:2]
        image = np.full((N, C, self.Hp, self.Wp), fill, dtype=x.dtype)
        image[:, :, self.top : self.top + self.H, self.left : self.left + self.W] = x
        return image

    def unpadded(self, image: np.ndarray) -> np.ndarray:
        """The input's pixels of a padded image: (N, C, Hp, Wp) -> (N, C, H, W)."""
        if self.Hp == self.H and self.Wp == self.W:
            return image
        rows = slice(self.top, self.top + self.H)
        return np.ascontiguousarray(image[:, :, rows, self.left : self.left + self.W])

    def image(self, flat: np.ndarray) -> np.ndarray:
        """The padded image in a flat buffer: (N, C, size) -> (N, C, Hp, Wp) view."""
        N, C = flat.shape[:2]
        return flat[:, :, : self.Hp * self.Wp].reshape(N, C, self.Hp, self.Wp)

    # Channel-major buffers, (C, N, ...): channels first, then the batch, then the
    # pixels. The batch's columns are one (C*KH*KW, N*L) matrix, so each of
    # forward, dL/dweight and dL/dx is ONE matrix product over the batch (BLAS
    # splits it over threads), where per-example products (N small GEMMs) stay on
    # one thread; and every conversion to and from (N, C, ...) keeps the pixel
    # axis inner, so it copies contiguous rows. Measured against the per-example
    # and batch-last layouts it replaced, cnn benchmark conv 2: dL/dx 0.69 ms
    # instead of 0.79 ms on one thread (one product instead of KH*KW thin ones);
    # on two threads of a quiet machine the products alone take 0.18 ms instead
    # of 0.32 ms (forward) and 0.19 ms instead of 0.32 ms (dL/dweight).

    def im2col(self, flat: np.ndarray) -> np.ndarray:
        """Columns of windows, channel-major: (N, C, size) -> cols (C*KH*KW, N*L),
        L = H_out*W_grid (flat may be a slice of the batch, a chunk of examples).

        cols[(c, i, j), (n, h, w)] = padded x[n, c, h*SH + i, w*SW + j].
        All KH*KW windows are one read-only strided view of flat, copied by one
        call rather than one per offset: cnn benchmark, 0.10 ms instead of
        0.18 ms (conv 1) and 0.15 ms instead of 0.26 ms (conv 2), one thread.
        """
        N, C = flat.shape[:2]
        sN, sC = flat.strides[:2]
        if self.wide:  # offset (i, j) starts i*Wp + j values into each channel
            step = flat.strides[2]
            shape = (C, self.KH, self.KW, N, self.H_out * self.Wp)
            strides = (sC, self.Wp * step, step, sN, step)
            windows = as_strided(flat, shape, strides, writeable=False)
        else:
            image = self.image(flat)  # (N, C, Hp, Wp)
            sH, sW = image.strides[2], image.strides[3]
            shape = (C, self.KH, self.KW, N, self.H_out, self.W_out)
            strides = (sC, sH, sW, sN, self.SH * sH, self.SW * sW)
            windows = as_strided(image, shape, strides, writeable=False)
        cols = np.ascontiguousarray(windows)  # (C, KH, KW, N, H_out, W_grid) copy
        return cols.reshape(C * self.KH * self.KW, N * self.H_out * self.W_grid)

    def to_output(self, out: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The product's rows as a batch plus the bias, without the wide grid's
        extra columns: (F, N*L) and (F,) -> (N, F, H_out, W_out), a new array.

        One pass: the bias is added by the copy. Returning the channel-major
        view instead (no copy) made no step measurably faster (within +-5 %,
        one thread): the next layers then mix memory orders (ReLU's mask against
        the pooling's gradient), so the output is an ordinary contiguous array.
        """
        F = out.shape[0]
        grid = out.reshape(F, -1, self.H_out, self.W_grid)[:, :, :, : self.W_out]
        N = grid.shape[1]
        result = np.empty((N, F, self.H_out, self.W_out), dtype=out.dtype)
        np.add(grid.transpose(1, 0, 2, 3), bias[:, None, None], out=result)
        return result

    def from_output(self, dout: np.ndarray) -> np.ndarray:
        """dout on the output grid, channel-major, zeros in the extra columns:
        (N, F, H_out, W_out) -> (F, N*L), a new array."""
        N, F = dout.shape[:2]
        g = np.zeros((F, N, self.H_out, self.W_grid), dtype=dout.dtype)
        g[:, :, :, : self.W_out] = dout.transpose(1, 0, 2, 3)
        return g.reshape(F, -1)

    def col2im(self, dcols: np.ndarray) -> np.ndarray:
        """Each pixel collects the gradient of every window that read it:
        dcols (C*KH*KW, N*L) -> dx (N, C, H, W), a new array.

        One slice addition per kernel offset for the whole batch (not np.add.at):
        the positions of one offset never overlap, so `view += part` is exact. On
        the wide grid an offset's pixels are one contiguous run per (c, n).
        """
        KH, KW, H_out, W_grid = self.KH, self.KW, self.H_out, self.W_grid
        C = dcols.shape[0] // (KH * KW)
        parts = dcols.reshape(C, KH, KW, -1, H_out, W_grid)  # (C, KH, KW, N, ...)
        N = parts.shape[3]
        flat = np.zeros((C, N, self.size), dtype=dcols.dtype)  # padded dx
        image = flat[:, :, : self.Hp * self.Wp].reshape(C, N, self.Hp, self.Wp)
        SH, SW = self.SH, self.SW
        for i in range(KH):
            for j in range(KW):
                if self.wide:  # offset (i, j): a run of H_out*Wp from i*Wp + j
                    start = i * self.Wp + j
                    target = flat[:, :, start : start + H_out * W_grid]  # (C, N, L)
                    target += parts[:, i, j].reshape(C, N, -1)
                else:
                    rows = slice(i, i + SH * (H_out - 1) + 1, SH)
                    cols = slice(j, j + SW * (self.W_out - 1) + 1, SW)
                    image[:, :, rows, cols] += parts[:, i, j]  # (C, N, H_out, W_out)
        rows = slice(self.top, self.top + self.H)
        inner = image[:, :, rows, self.left : self.left + self.W]  # (C, N, H, W)
        return np.ascontiguousarray(inner.transpose(1, 0, 2, 3))  # (N, C, H, W)
