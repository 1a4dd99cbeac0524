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


class UserSigmoid(gn.Layer):
    """A user's sigmoid that keeps z and a = sigmoid(z); correct as written."""

    def forward(self, z):
        a = 1.0 / (1.0 + np.exp(-z))
        self._cache = (z, a)
        return a

    def backward(self, dout):
        z, a = self._cache
        return dout * a * (1.0 - a)


class UserTanh(gn.Layer):
    """A user's tanh that keeps z and a = tanh(z); correct as written."""

    def forward(self, z):
        self._cache = (z, np.tanh(z))
        return self._cache[1]

    def backward(self, dout):
        z, a = self._cache
        return dout * (1.0 - a**2)


class UserSoftmax(gn.Layer):
    """A user's row-wise softmax with the full Jacobian-vector product."""

    def forward(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self._cache = e / e.sum(axis=1, keepdims=True)
        return self._cache

    def backward(self, dout):
        p = self._cache
        return p * (dout - np.sum(dout * p, axis=1, keepdims=True))


class UserBlock(gn.Layer):
    """A user's composite layer: out = x + scale * second(tanh(first(x))), with two
    Dense layers inside and a 0-d parameter of its own; correct as written."""

    def __init__(self, features: int = 3, hidden: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.first = gn.Dense(features, hidden, rng=rng, dtype=np.float64)
        self.second = gn.Dense(hidden, features, rng=rng, dtype=np.float64)
        self.scale = gn.Parameter(np.array(0.5), "scale")

    def forward(self, x):
        h = np.tanh(self.first.forward(x))
        s = self.second.forward(h)
        self._cache = (h, s)
        return x + self.scale.data * s

    def backward(self, dout):
        h, s = self._cache
        self.scale.grad = np.sum(dout * s)
        dh = self.second.backward(self.scale.data * dout)
        return dout + self.first.backward(dh * (1.0 - h**2))
