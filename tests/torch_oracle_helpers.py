"""What every PyTorch oracle test file shares: float64 tensors and one tolerance.

Import it after `pytest.importorskip("torch")`, so a missing torch skips the file.
"""

import numpy as np
import torch

RTOL, ATOL = 1e-10, 1e-13  # float64 on both sides: only rounding may differ


def close(actual, expected, what=""):
    """assert actual (NumPy) equals expected (a tensor or an array) to RTOL/ATOL."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def tensor(a, grad=False):
    """a as a float64 tensor, tracking gradients if asked."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)
