"""MaxPool1D and AvgPool1D: a window of K positions per channel of a signal."""

from glassnet.nn.layers.pooling import _AvgPool, _MaxPool


class MaxPool1D(_MaxPool):
    """Maximum over each window of K positions, per channel of a signal.

    Shapes: x (N, C, L) -> out (N, C, L_out), L_out = (L + pad_left + pad_right
    - K) // S + 1. kernel_size: K or (K,); stride: S or (S,), default K;
    padding: as for Conv1D ("valid", "same", p, (p,), (left, right) or
    ((left, right),)), at most K - 1 per side; padding acts as -inf.
    The math is MaxPool2D's on x viewed as (N, C, 1, L) with a 1 x K window:
    out[n, c, l] = max over k of x_padded[n, c, l*S + k]; backward sends
    dout[n, c, l] to the first position of the window holding that maximum.
    """

    _NDIM = 1


class AvgPool1D(_AvgPool):
    """Mean over each window of K positions, per channel of a signal.

    Shapes, kernel_size, stride and padding as for MaxPool1D. Padded zeros count
    in the mean (every window divides by K, PyTorch's count_include_pad=True).
    The math is AvgPool2D's on x viewed as (N, C, 1, L):
    out[n, c, l] = sum over k of x_padded[n, c, l*S + k] / K; backward gives
    every position of a window dout[n, c, l] / K.
    """

    _NDIM = 1
