"""Hand-written NumPy training steps, the baseline every benchmark ratio divides by.

Each class is what a careful person writes by hand for one benchmark network:
straight-line NumPy, one array per weight and per bias, the textbook update
written per parameter, no gradient for the network input. They do the same math
as the glassnet model of the same case (tests/test_benchmarks.py copies the
weights into both, takes three steps and compares), so a ratio measures the
library's overhead and nothing else.

Shapes follow glassnet: x (N, D), weights (D, M), biases (M,), labels (N,).
"""

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax (N, K) -> (N, K), shifted so exp cannot overflow."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # glassnet's exact, overflow-free form of 1 / (1 + exp(-z))
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax_cross_entropy(logits: np.ndarray, y: np.ndarray):
    """Mean cross-entropy of softmax(logits) against labels y (N,), and dL/dlogits."""
    N = len(y)
    p = _softmax(logits)  # (N, K)
    rows = np.arange(N)
    loss = -float(np.log(p[rows, y]).mean())
    dz = p  # (p - onehot(y)) / N, written into p
    dz[rows, y] -= 1.0
    dz /= N
    return loss, dz


class _Reference:
    """weights: [(W1, b1), (W2, b2), ...] copied in; SGD by default."""

    def __init__(self, weights, lr: float) -> None:
        self.W = [np.array(W) for W, _ in weights]
        self.b = [np.array(b) for _, b in weights]
        self.lr = lr

    def params(self) -> list[np.ndarray]:
        """Every array in glassnet's order: W1, b1, W2, b2, ..."""
        return [a for pair in zip(self.W, self.b, strict=True) for a in pair]

    def sgd(self, grads: list[np.ndarray]) -> None:
        for p, g in zip(self.params(), grads, strict=True):
            p -= self.lr * g


class IrisReference(_Reference):
    """4-5-4-3: Dense, tanh, Dense, tanh, Dense, softmax cross-entropy; SGD."""

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        (W1, W2, W3), (b1, b2, b3) = self.W, self.b
        a1 = np.tanh(x @ W1 + b1)  # (N, 5)
        a2 = np.tanh(a1 @ W2 + b2)  # (N, 4)
        loss, dz3 = _softmax_cross_entropy(a2 @ W3 + b3, y)  # (N, 3)
        dz2 = (dz3 @ W3.T) * (1.0 - a2 * a2)  # (N, 4)
        dz1 = (dz2 @ W2.T) * (1.0 - a1 * a1)  # (N, 5)
        self.sgd(
            [x.T @ dz1, dz1.sum(axis=0)]
            + [a1.T @ dz2, dz2.sum(axis=0)]
            + [a2.T @ dz3, dz3.sum(axis=0)]
        )
        return loss


class XorReference(_Reference):
    """2-2-2: Dense, sigmoid, Dense, softmax, cross-entropy on the probabilities.

    As in the XOR seed, the softmax and the cross-entropy are differentiated
    together: dL/dz2 = (p - onehot(y)) / N.
    """

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        (W1, W2), (b1, b2) = self.W, self.b
        a1 = _sigmoid(x @ W1 + b1)  # (N, 2)
        loss, dz2 = _softmax_cross_entropy(a1 @ W2 + b2, y)  # (N, 2)
        dz1 = (dz2 @ W2.T) * a1 * (1.0 - a1)  # (N, 2)
        self.sgd([x.T @ dz1, dz1.sum(axis=0), a1.T @ dz2, dz2.sum(axis=0)])
        return loss


class AutoencoderReference(_Reference):
    """64-32-64-64: Dense, sigmoid, Dense, sigmoid, Dense (linear); mean squared
    error over every element; SGD. The autoencoder seed's network."""

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        (W1, W2, W3), (b1, b2, b3) = self.W, self.b
        a1 = _sigmoid(x @ W1 + b1)  # (N, 32)
        a2 = _sigmoid(a1 @ W2 + b2)  # (N, 64)
        diff = a2 @ W3 + b3 - y  # (N, 64)
        loss = float(np.mean(diff * diff))
        dz3 = diff * (2.0 / diff.size)
        dz2 = (dz3 @ W3.T) * a2 * (1.0 - a2)  # (N, 64)
        dz1 = (dz2 @ W2.T) * a1 * (1.0 - a1)  # (N, 32)
        self.sgd(
            [x.T @ dz1, dz1.sum(axis=0)]
            + [a1.T @ dz2, dz2.sum(axis=0)]
            + [a2.T @ dz3, dz3.sum(axis=0)]
        )
        return loss


class MLPReference(_Reference):
    """784-256-128-10: Dense, ReLU, Dense, ReLU, Dense, softmax cross-entropy; Adam
    (PyTorch's defaults), written per parameter as in the textbook."""

    def __init__(self, weights, lr: float = 1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(weights, lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in self.params()]
        self.v = [np.zeros_like(p) for p in self.params()]
        self.t = 0

    def adam(self, grads: list[np.ndarray]) -> None:
        b1, b2 = self.beta1, self.beta2
        self.t += 1
        for p, g, m, v in zip(self.params(), grads, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            m_hat = m / (1.0 - b1**self.t)
            v_hat = v / (1.0 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        (W1, W2, W3), (b1, b2, b3) = self.W, self.b
        a1 = np.maximum(x @ W1 + b1, 0.0)  # (N, 256)
        a2 = np.maximum(a1 @ W2 + b2, 0.0)  # (N, 128)
        loss, dz3 = _softmax_cross_entropy(a2 @ W3 + b3, y)  # (N, 10)
        dz2 = (dz3 @ W3.T) * (a2 > 0)  # (N, 128)
        dz1 = (dz2 @ W2.T) * (a1 > 0)  # (N, 256)
        self.adam(
            [x.T @ dz1, dz1.sum(axis=0)]
            + [a1.T @ dz2, dz2.sum(axis=0)]
            + [a2.T @ dz3, dz3.sum(axis=0)]
        )
        return loss

    def epoch(self, X: np.ndarray, y: np.ndarray, batch_size: int, rng) -> float:
        """One pass over (X, y) in a fresh random order; returns the mean loss."""
        N = len(X)
        order = rng.permutation(N)
        total = 0.0
        for start in range(0, N, batch_size):
            idx = order[start : start + batch_size]
            total += self.step(X[idx], y[idx]) * len(idx)
        return total / N
