"""Conv1D: 1-D convolution over signals (N, C, L), channels-first as in PyTorch."""

from glassnet.nn.layers.conv2d import _Convolution


class Conv1D(_Convolution):
    """1-D convolution: each of F filters slides along the length of all C channels.

    out[n, f, l] = bias[f] + sum over c, k of weight[f, c, k] * x_padded[n, c, l*S + k]

    Shapes, as PyTorch's Conv1d: x (N, C, L) -> out (N, F, L_out) with
    C = in_channels, F = out_channels, weight (F, C, K), bias (F,) and
        L_out = (L + pad_left + pad_right - K) // S + 1.
    kernel_size: K or (K,). stride: S or (S,). padding: "valid" (none, the same
    as 0), an int p (p zeros at both ends), (p,), (left, right) or
    ((left, right),) explicitly, or "same": L_out = ceil(L / S), with total =
    max((ceil(L / S) - 1) * S + K - L, 0) zeros, total // 2 on the left and the
    odd one on the right (TensorFlow's rule; for stride 1 also PyTorch's
    padding="same", which PyTorch refuses for a stride > 1).

    Forward and backward are Conv2D's (_Convolution) on x viewed as (N, C, 1, L)
    with the weight viewed as (F, C, 1, K): the same im2col, one matrix product
    for the whole batch, the same speed tricks and the same gradients
        dL/dweight[f, c, k] = sum over n, l of g[n, f, l] * x_padded[n, c, l*S + k]
        dL/dbias[f]         = sum over n, l of g[n, f, l]
        dL/dx[n, c, p]      = sum over the (f, l, k) with l*S + k = p + pad_left of
                              g[n, f, l] * weight[f, c, k]
    with g = dL/dout (N, F, L_out). init, rng, dtype: as for Conv2D (fans
    C*K and F*K).
    """

    _NDIM = 1
