"""PyTorch modules for the glassnet layers torch.nn has no class for.

Each computes what its glassnet layer computes, with the same parameter names,
so that to_torch(model).state_dict() has glassnet's qualified names. They are
plain nn.Modules: they train, export (torch.export, ONNX) and pickle like any
other, as long as glassnet is importable where they are loaded.
This module imports torch: glassnet.export loads it only when asked.
"""

import torch
import torch.nn.functional as F
from torch import nn

from glassnet.nn.layers._windows import parse_padding, resolve_padding


class Residual(nn.Module):
    """out = x + block(x), as glassnet.Residual; the block is named "block"."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Concat(nn.Module):
    """Every branch sees x; their outputs are joined along `axis` (the batch is
    axis 0), as glassnet.Concat. The branches are named "0", "1", ..."""

    def __init__(self, *branches: nn.Module, axis: int = 1) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class TimeDistributed(nn.Module):
    """One module at every time step, as glassnet.TimeDistributed: (N, T, ...)
    is merged into one batch of N*T steps for the module and split back. The
    module is named "layer" (glassnet's parameter names: "layer.weight")."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        out = self.layer(x.flatten(0, 1))  # (N*T, ...)
        return out.unflatten(0, (-1, T))  # (N, T, ...)


class GlobalAvgPool1d(nn.Module):
    """(N, C, L) -> (N, C): the mean over the length, as glassnet.GlobalAvgPool1D."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2)


class GlobalAvgPool2d(nn.Module):
    """(N, C, H, W) -> (N, C): the mean of each channel (glassnet.GlobalAvgPool2D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class GlobalMaxPool1d(nn.Module):
    """(N, C, L) -> (N, C): the maximum over the length (glassnet.GlobalMaxPool1D).

    adaptive_max_pool1d, not amax: on ties the first maximum takes the whole
    gradient, as in glassnet (amax would split it between the ties)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool1d(x, 1).flatten(1)


class GlobalMaxPool2d(nn.Module):
    """(N, C, H, W) -> (N, C): the maximum of each channel (glassnet.GlobalMaxPool2D),
    the first maximum in row-major order winning ties, as in glassnet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(x, 1).flatten(1)


def _torch_pads(owner: str, pads, sizes, kernel, stride) -> tuple[int, ...]:
    """F.pad's amounts, last axis first: (left, right, top, bottom) for images.

    pads: a glassnet padding argument ("same", p, per axis, or (before, after)
    pairs), resolved for these input sizes as the glassnet layer does."""
    explicit = parse_padding(owner, pads, len(sizes))[1]
    pairs = resolve_padding(explicit, tuple(sizes), tuple(kernel), tuple(stride))
    return tuple(amount for pair in reversed(pairs) for amount in pair)


class ExplicitPadding:
    """Pads each input explicitly, then runs the module without padding.

    torch.nn refuses padding="same" with a stride above 1 (the padding then
    depends on the input size), different amounts before and after an axis, and
    pooling padding above half the window; glassnet has all three. `pads` is the
    glassnet layer's padding argument: "same" (total = max((ceil(size / S) - 1)
    * S + K - size, 0), total // 2 before and the odd one after: glassnet's and
    TensorFlow's rule), p, p per axis, or (before, after) pairs. The parameters,
    if any, are the torch module's own.
    """

    pads = "same"
    _fill = 0.0  # the padding value: zeros, or -inf for max pooling

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        ndim = x.dim() - 2  # spatial axes
        kernel = _tuple(self.kernel_size, ndim)
        stride = _tuple(self.stride, ndim)
        amounts = _torch_pads(
            type(self).__name__, self.pads, x.shape[2:], kernel, stride
        )
        return F.pad(x, amounts, value=self._fill)  # (N, C, *padded sizes)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pads={self.pads!r} (explicit)"


def _tuple(value, ndim: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim


class PaddedConv1d(ExplicitPadding, nn.Conv1d):
    """nn.Conv1d after explicit zero padding (see ExplicitPadding); weight (F, C, K)."""

    def __init__(self, *args, pads="same", device=None, dtype=None, **kwargs):
        # device and dtype spelled out: torch's skip_init looks for them
        super().__init__(*args, device=device, dtype=dtype, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(self._pad(x), self.weight, self.bias, self.stride)


class PaddedConv2d(ExplicitPadding, nn.Conv2d):
    """nn.Conv2d after explicit zero padding (see ExplicitPadding);
    weight (F, C, KH, KW)."""

    def __init__(self, *args, pads="same", device=None, dtype=None, **kwargs):
        # device and dtype spelled out: torch's skip_init looks for them
        super().__init__(*args, device=device, dtype=dtype, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self._pad(x), self.weight, self.bias, self.stride)


class PaddedMaxPool1d(ExplicitPadding, nn.MaxPool1d):
    """nn.MaxPool1d after explicit -inf padding (see ExplicitPadding)."""

    _fill = float("-inf")  # padding never wins a max, as in glassnet and torch

    def __init__(self, *args, pads="same", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(self._pad(x), self.kernel_size, self.stride)


class PaddedMaxPool2d(ExplicitPadding, nn.MaxPool2d):
    """nn.MaxPool2d after explicit -inf padding (see ExplicitPadding)."""

    _fill = float("-inf")

    def __init__(self, *args, pads="same", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self._pad(x), self.kernel_size, self.stride)


class PaddedAvgPool1d(ExplicitPadding, nn.AvgPool1d):
    """nn.AvgPool1d after explicit zero padding (see ExplicitPadding): the zeros
    count in the mean, as in glassnet (torch's count_include_pad=True)."""

    def __init__(self, *args, pads="same", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool1d(self._pad(x), self.kernel_size, self.stride)


class PaddedAvgPool2d(ExplicitPadding, nn.AvgPool2d):
    """nn.AvgPool2d after explicit zero padding (see ExplicitPadding), zeros counted."""

    def __init__(self, *args, pads="same", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self._pad(x), self.kernel_size, self.stride)
