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


def _im2col(x: np.ndarray, KH: int, KW: int) -> np.ndarray:
    """Every KH x KW window of x (N, C, H, W) as a column (stride 1, no padding):
    (N, C*KH*KW, H_out*W_out)."""
    N, C, H, W = x.shape
    H_out, W_out = H - KH + 1, W - KW + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (KH, KW), axis=(2, 3))
    cols = windows.transpose(0, 1, 4, 5, 2, 3)  # (N, C, KH, KW, H_out, W_out) view
    return cols.reshape(N, C * KH * KW, H_out * W_out)  # the copy


def _col2im(dcols: np.ndarray, x_shape, KH: int, KW: int) -> np.ndarray:
    """The adjoint of _im2col: each pixel sums the gradient of every window."""
    N, C, H, W = x_shape
    H_out, W_out = H - KH + 1, W - KW + 1
    d = dcols.reshape(N, C, KH, KW, H_out, W_out)
    dx = np.zeros(x_shape, dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            dx[:, :, i : i + H_out, j : j + W_out] += d[:, :, i, j]
    return dx


def _conv(x: np.ndarray, K: np.ndarray, c: np.ndarray):
    """Valid convolution, stride 1: x (N, C, H, W), K (F, C, KH, KW), c (F,)."""
    N, _, H, W = x.shape
    F, _, KH, KW = K.shape
    cols = _im2col(x, KH, KW)  # (N, C*KH*KW, L)
    out = K.reshape(F, -1) @ cols + c[:, None]  # (N, F, L)
    return out.reshape(N, F, H - KH + 1, W - KW + 1), cols


def _conv_backward(dout, cols, K, x_shape):
    """dL/dK, dL/dc and dL/dx of _conv from dout (N, F, H_out, W_out)."""
    F, _, KH, KW = K.shape
    g = dout.reshape(dout.shape[0], F, -1)  # (N, F, L)
    dK = (g @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(K.shape)
    dc = g.sum(axis=(0, 2))
    dx = None if x_shape is None else _col2im(K.reshape(F, -1).T @ g, x_shape, KH, KW)
    return dK, dc, dx


def _pool(x: np.ndarray) -> np.ndarray:
    """2 x 2 max-pooling, stride 2: (N, C, H, W) -> (N, C, H/2, W/2)."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def _pool_backward(dout: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Each window's gradient goes to its maximum (to every maximum on a tie;
    the ties here are ReLU zeros, whose gradient ReLU's backward zeroes)."""
    N, C, H, W = x.shape
    wins = x.reshape(N, C, H // 2, 2, W // 2, 2) == out[:, :, :, None, :, None]
    return (wins * dout[:, :, :, None, :, None]).reshape(x.shape)


class LeNetReference:
    """1x28x28 -> conv 6@5x5, ReLU, 2x2 max-pool -> conv 16@5x5, ReLU, 2x2
    max-pool -> flatten 256 -> Dense 120, ReLU -> Dense 84, ReLU -> Dense 10,
    softmax cross-entropy; SGD. The convolutions by im2col, as cs231n teaches."""

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.p = [np.array(a) for a in params]  # K1, c1, K2, c2, W1, b1, ..., b3
        self.lr = lr

    @classmethod
    def from_model(cls, model, lr: float) -> "LeNetReference":
        return cls([p.data.copy() for p in model.parameters()], lr)

    def params(self) -> list[np.ndarray]:
        return self.p

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        K1, c1, K2, c2, W1, b1, W2, b2, W3, b3 = self.p
        z1, cols1 = _conv(x, K1, c1)  # (N, 6, 24, 24)
        a1 = np.maximum(z1, 0.0)
        p1 = _pool(a1)  # (N, 6, 12, 12)
        z2, cols2 = _conv(p1, K2, c2)  # (N, 16, 8, 8)
        a2 = np.maximum(z2, 0.0)
        p2 = _pool(a2)  # (N, 16, 4, 4)
        f = p2.reshape(len(x), -1)  # (N, 256)
        h1 = np.maximum(f @ W1 + b1, 0.0)  # (N, 120)
        h2 = np.maximum(h1 @ W2 + b2, 0.0)  # (N, 84)
        loss, dz5 = _softmax_cross_entropy(h2 @ W3 + b3, y)  # (N, 10)
        dz4 = (dz5 @ W3.T) * (h2 > 0)
        dz3 = (dz4 @ W2.T) * (h1 > 0)
        dp2 = (dz3 @ W1.T).reshape(p2.shape)
        dz2 = _pool_backward(dp2, a2, p2) * (a2 > 0)
        dK2, dc2, dp1 = _conv_backward(dz2, cols2, K2, p1.shape)
        dz1 = _pool_backward(dp1, a1, p1) * (a1 > 0)
        dK1, dc1, _ = _conv_backward(dz1, cols1, K1, None)
        grads = [dK1, dc1, dK2, dc2, f.T @ dz3, dz3.sum(axis=0)]
        grads += [h1.T @ dz4, dz4.sum(axis=0), h2.T @ dz5, dz5.sum(axis=0)]
        for p, g in zip(self.p, grads, strict=True):
            p -= self.lr * g
        return loss


class _NormMLPReference(_Reference):
    """Dense, a normalization with scale gamma and shift beta (D,), an activation,
    Dense, softmax cross-entropy; SGD. Parameters in glassnet's order:
    W1, b1, gamma, beta, W2, b2."""

    eps = 1e-5

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.p = [np.array(a) for a in params]
        self.lr = lr

    @classmethod
    def from_model(cls, model, lr: float):
        return cls([p.data for p in model.parameters()], lr)

    def params(self) -> list[np.ndarray]:
        return self.p

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        W1, b1, gamma, beta, W2, b2 = self.p
        h = x @ W1 + b1  # (N, D)
        xhat, inv = self.normalize(h)  # (N, D)
        z = gamma * xhat + beta  # (N, D)
        a, dadz = self.activation(z)  # (N, D)
        loss, dout = _softmax_cross_entropy(a @ W2 + b2, y)  # (N, K)
        dz = (dout @ W2.T) * dadz  # (N, D)
        dxhat = dz * gamma  # (N, D)
        dh = self.normalize_backward(dxhat, xhat, inv)  # (N, D)
        self.sgd(
            [x.T @ dh, dh.sum(axis=0), (dz * xhat).sum(axis=0), dz.sum(axis=0)]
            + [a.T @ dout, dout.sum(axis=0)]
        )
        return loss


class BatchNormMLPReference(_NormMLPReference):
    """64-128-10: Dense, BatchNorm1D (training mode: batch statistics, biased
    variance), ReLU, Dense. The running statistics do not enter a training step
    and are not kept."""

    def normalize(self, h):
        mu = h.mean(axis=0)  # (D,)
        inv = 1.0 / np.sqrt(h.var(axis=0) + self.eps)  # (D,)
        return (h - mu) * inv, inv

    def normalize_backward(self, dxhat, xhat, inv):
        # the classic compact form: per feature, over the batch axis
        return inv * (
            dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)
        )  # (N, D)

    def activation(self, z):
        return np.maximum(z, 0.0), z > 0


class LayerNormMLPReference(_NormMLPReference):
    """64-128-10: Dense, LayerNorm(128), GELU (tanh approximation), Dense."""

    def normalize(self, h):
        mu = h.mean(axis=1, keepdims=True)  # (N, 1)
        inv = 1.0 / np.sqrt(h.var(axis=1, keepdims=True) + self.eps)  # (N, 1)
        return (h - mu) * inv, inv

    def normalize_backward(self, dxhat, xhat, inv):
        # the same form as BatchNorm's, per example, over the feature axis
        return inv * (
            dxhat
            - dxhat.mean(axis=1, keepdims=True)
            - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)
        )  # (N, D)

    def activation(self, z):
        # z * z * z, not z**3: float32 power takes 1.4 ms at (256, 128) here, the
        # product 4 us; c a Python float, so float32 stays float32
        c = float(np.sqrt(2.0 / np.pi))
        z2 = z * z  # (N, D)
        t = np.tanh(c * (z + 0.044715 * z2 * z))  # (N, D)
        a = 0.5 * z * (1.0 + t)
        du = c * (1.0 + 3 * 0.044715 * z2)  # d(inner)/dz
        dadz = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du
        return a, dadz


class SmallCNNReference(LeNetReference):
    """1x28x28 -> conv 8@3x3 (padding 1), ReLU, 2x2 max-pool -> conv 16@3x3
    (padding 1), ReLU, 2x2 max-pool -> flatten 784 -> Dense 10, softmax
    cross-entropy; SGD. The padded convolutions pad the input with zeros and
    run the valid im2col convolution; the input gradient drops the border."""

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        K1, c1, K2, c2, W, b = self.p
        z1, cols1 = _conv(_pad1(x), K1, c1)  # (N, 8, 28, 28)
        a1 = np.maximum(z1, 0.0)
        p1 = _pool(a1)  # (N, 8, 14, 14)
        p1_pad = _pad1(p1)  # (N, 8, 16, 16)
        z2, cols2 = _conv(p1_pad, K2, c2)  # (N, 16, 14, 14)
        a2 = np.maximum(z2, 0.0)
        p2 = _pool(a2)  # (N, 16, 7, 7)
        f = p2.reshape(len(x), -1)  # (N, 784)
        loss, dz = _softmax_cross_entropy(f @ W + b, y)  # (N, 10)
        dp2 = (dz @ W.T).reshape(p2.shape)
        dz2 = _pool_backward(dp2, a2, p2) * (a2 > 0)
        dK2, dc2, dp1_pad = _conv_backward(dz2, cols2, K2, p1_pad.shape)
        dz1 = _pool_backward(dp1_pad[:, :, 1:-1, 1:-1], a1, p1) * (a1 > 0)
        dK1, dc1, _ = _conv_backward(dz1, cols1, K1, None)
        grads = [dK1, dc1, dK2, dc2, f.T @ dz, dz.sum(axis=0)]
        for p, g in zip(self.p, grads, strict=True):
            p -= self.lr * g
        return loss


def _pad1(x: np.ndarray) -> np.ndarray:
    """One row and column of zeros around each image: (N, C, H, W) -> (N, C,
    H + 2, W + 2)."""
    return np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
