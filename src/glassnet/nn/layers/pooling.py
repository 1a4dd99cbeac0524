"""MaxPool2D and AvgPool2D: a P x P window per channel, reduced to one number."""

import numpy as np

from glassnet._im2col import output_size, strided_window
from glassnet._validation import check_positive_int
from glassnet.errors import ShapeError
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.conv2d import image_shape_message, shape_text


class _Pool2D(Layer):
    """What both poolings share: arguments, shape checks, output size, config."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        name = type(self).__name__
        check_positive_int(name, kernel_size=kernel_size)
        if stride is not None:
            check_positive_int(name, stride=stride)
        self.kernel_size = int(kernel_size)
        self.stride = self.kernel_size if stride is None else int(stride)

    def _out_size(self, shape) -> tuple[int, int]:
        """(H_out, W_out) for a batch shape whose N may be None; ShapeError if bad."""
        P, S = self.kernel_size, self.stride
        if len(shape) != 4:
            raise ShapeError(image_shape_message(repr(self), None, shape))
        H, W = shape[2], shape[3]
        if H < P or W < P:
            raise ShapeError(
                f"{self!r}: the {P}x{P} window is larger than the input {H}x{W} "
                f"(got {shape_text(shape)}); use a smaller kernel_size, pad the "
                "previous convolution (padding='same') or drop this pooling layer"
            )
        return output_size(H, P, S), output_size(W, P, S)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        H_out, W_out = self._out_size((None, *input_shape))
        return (input_shape[0], H_out, W_out)

    def get_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def _offsets(self) -> list[tuple[int, int]]:
        """Offsets (i, j) of the pixels in a window, in row-major order."""
        P = self.kernel_size
        return [(i, j) for i in range(P) for j in range(P)]


class MaxPool2D(_Pool2D):
    """Maximum over each P x P window, per channel (P = kernel_size).

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), where
    H_out = (H - P) // stride + 1 and W_out = (W - P) // stride + 1.
    stride defaults to P (windows do not overlap). There is no padding; rows and
    columns that no window reaches are ignored, as in PyTorch.

    Backward sends each upstream gradient to the input that won its window and
    nothing to the others. On ties the first maximum in row-major order within
    the window wins (as in PyTorch), and receives the whole gradient.
    The winners are found in backward by comparing x with out, rather than by
    tracking an argmax in forward: the comparisons cost less than the tracking,
    and predict, which never calls backward, does not pay for them at all.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        H_out, W_out = self._out_size(x.shape)
        S = self.stride
        out = strided_window(x, 0, 0, S, H_out, W_out).copy()  # (N, C, H_out, W_out)
        for i, j in self._offsets()[1:]:  # one call per offset for the whole batch
            np.maximum(out, strided_window(x, i, j, S, H_out, W_out), out=out)
        self._cache = (x, out)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x, out = self._cached()
        H_out, W_out = out.shape[2:]
        S = self.stride
        dx = np.zeros(x.shape, dtype=dout.dtype)
        taken = None  # (N, C, H_out, W_out): windows whose winner is already found
        for i, j in self._offsets():
            hit = strided_window(x, i, j, S, H_out, W_out) == out  # a maximum here
            if taken is None:
                taken = hit.copy()
            else:
                np.greater(hit, taken, out=hit)  # hit and not taken: first max wins
                taken |= hit
            target = strided_window(dx, i, j, S, H_out, W_out)  # view into dx
            if S >= self.kernel_size:  # windows do not overlap: each pixel set once
                np.multiply(dout, hit, out=target)
            else:  # a pixel in several windows may win several times
                target += dout * hit
        return dx

    def __repr__(self) -> str:
        return f"MaxPool2D(kernel_size={self.kernel_size}, stride={self.stride})"


class AvgPool2D(_Pool2D):
    """Mean over each P x P window, per channel (P = kernel_size).

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), with H_out and W_out as
    for MaxPool2D (stride defaults to P, no padding).
    Backward: every pixel of a window receives dout / P**2 from it.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        H_out, W_out = self._out_size(x.shape)
        P, S = self.kernel_size, self.stride
        out = np.zeros((*x.shape[:2], H_out, W_out), dtype=x.dtype)
        for i, j in self._offsets():
            out += strided_window(x, i, j, S, H_out, W_out)
        out *= 1.0 / (P * P)
        self._cache = x.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        P, S = self.kernel_size, self.stride
        H_out, W_out = dout.shape[2:]
        share = dout * (1.0 / (P * P))  # (N, C, H_out, W_out): each pixel's part
        dx = np.zeros(x_shape, dtype=share.dtype)
        for i, j in self._offsets():
            target = strided_window(dx, i, j, S, H_out, W_out)  # view into dx
            if S >= P:
                target[...] = share  # windows do not overlap
            else:
                target += share
        return dx

    def __repr__(self) -> str:
        return f"AvgPool2D(kernel_size={self.kernel_size}, stride={self.stride})"
