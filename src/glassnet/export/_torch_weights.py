"""Building torch modules that hold given NumPy weights (the exporters' helpers).

This module imports torch: glassnet.export loads it only when asked.
"""

from operator import attrgetter

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init


def module_dtype(dtype) -> torch.dtype:
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def empty(cls, *args, like: np.ndarray | None = None, **kwargs) -> nn.Module:
    """cls(*args, **kwargs) in like's dtype, without drawing initial weights:
    they are overwritten at once, and torch's global generator stays untouched."""
    dtype = torch.float32 if like is None else module_dtype(like.dtype)
    return skip_init(cls, *args, dtype=dtype, **kwargs)


def fill(module: nn.Module, **arrays: np.ndarray) -> nn.Module:
    """Copy NumPy arrays into the module's parameters and buffers, by name
    (dotted names reach into children: "self_attn.in_proj_weight")."""
    with torch.no_grad():
        for name, array in arrays.items():
            target = attrgetter(name)(module)
            target.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return module
