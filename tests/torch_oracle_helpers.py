"""What every PyTorch oracle test file shares: float64 tensors and one tolerance.

Import it after `pytest.importorskip("torch")`, so a missing torch skips the file.
"""

import numpy as np
import torch
import torch.nn.functional as F

import glassnet as gn

RTOL, ATOL = 1e-10, 1e-13  # float64 on both sides: only rounding may differ


def close(actual, expected, what=""):
    """assert actual (NumPy) equals expected (a tensor or an array) to RTOL/ATOL."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def tensor(a, grad=False):
    """a as a float64 tensor, tracking gradients if asked."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def adam_steps_side_by_side(model, twin, lr, rng, each_step=None, steps=10):
    """`steps` Adam steps of glassnet `model` and its torch `twin` (same weights)
    on the same random token batches ((8, 5) ids in [0, 6), labels in {0, 1}),
    softmax cross-entropy; asserts the losses agree at every step and calls
    each_step() after it (a test's own per-step checks)."""
    optimizer = gn.Adam(lr=lr)
    toptimizer = torch.optim.Adam(twin.parameters(), lr=lr)
    loss = gn.SoftmaxCrossEntropy()
    for step in range(steps):
        ids, y = rng.integers(0, 6, (8, 5)), rng.integers(0, 2, 8)
        value = loss.forward(model.forward(ids, training=True), y)
        model.backward(loss.backward())
        optimizer.step(model.parameters())

        toptimizer.zero_grad()
        tvalue = F.cross_entropy(twin(torch.tensor(ids)), torch.tensor(y))
        tvalue.backward()
        toptimizer.step()
        close(value, tvalue, f"loss at step {step}")
        if each_step is not None:
            each_step()
