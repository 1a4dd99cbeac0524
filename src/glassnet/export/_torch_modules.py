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

from glassnet._im2col import same_padding


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


class SamePadConv2d(nn.Conv2d):
    """nn.Conv2d with glassnet's padding="same" for any stride.

    torch.nn.Conv2d refuses padding="same" with a stride above 1, because the
    padding then depends on the input size. This module pads each input
    explicitly, (H, W) -> (H + top + bottom, W + left + right) with the odd pixel
    at the bottom and right (as glassnet, Keras and ONNX's SAME_UPPER), then
    convolves without padding: output ceil(H / S) x ceil(W / S).
    Its parameters are nn.Conv2d's: weight (F, C, KH, KW) and bias (F,).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (KH, KW), (SH, SW) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], KH, SH)
        left, right = same_padding(x.shape[-1], KW, SW)
        x = F.pad(x, (left, right, top, bottom))  # (N, C, H + top + bottom, ...)
        return F.conv2d(x, self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", padding='same' (explicit, any stride)"
