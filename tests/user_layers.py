"""A user's own layer, written the way the seeds write backprop; tests break it.

Used by test_gradcheck.py and test_diagnosis.py: each planted bug is a subclass of
UserDense that changes one line of backward.
"""

import numpy as np

import glassnet as gn


class UserDense(gn.Layer):
    """A user's own fully connected layer: out = x @ W + b. Correct as written;
    the subclasses in the tests each break one line of backward."""

    def __init__(self, d: int, m: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weight = gn.Parameter(rng.normal(0, 0.5, (d, m)), "weight")
        self.bias = gn.Parameter(rng.normal(0, 0.5, m), "bias")

    def forward(self, x):
        self._cache = x
        return x @ self.weight.data + self.bias.data

    def backward(self, dout):
        x = self._cache
        self.weight.grad = x.T @ dout
        self.bias.grad = dout.sum(axis=0)
        return dout @ self.weight.data.T

    def parameters(self):
        return [self.weight, self.bias]
