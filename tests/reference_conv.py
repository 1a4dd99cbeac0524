"""Naive loop versions of Conv2D, MaxPool2D and AvgPool2D: slow and obviously right.

Test references only. Each function returns the output and a backward function
mapping dout to the gradients, computed with the same loops (every output
element adds its share to the inputs it read).
"""

import numpy as np


def pad_amounts(H, W, KH, KW, stride, padding):
    """(top, bottom, left, right); "same" gives ceil(size / stride) outputs,
    the odd pixel of padding after, as documented for Conv2D."""
    if padding != "same":
        return padding, padding, padding, padding
    amounts = []
    for size, k in ((H, KH), (W, KW)):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        amounts += [total // 2, total - total // 2]
    return tuple(amounts)


def conv2d_naive(x, w, b, stride=1, padding=0):
    """out, backward(dout) -> (dx, dw, db). x (N, C, H, W), w (F, C, KH, KW), b (F,)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    top, bottom, left, right = pad_amounts(H, W, KH, KW, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    H_out = (H + top + bottom - KH) // stride + 1
    W_out = (W + left + right - KW) // stride + 1
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    r, c = i * stride, j * stride
                    window = xp[n, :, r : r + KH, c : c + KW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]

    def backward(dout):
        dxp, dw = np.zeros_like(xp), np.zeros_like(w)
        db = np.zeros_like(b)
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        r, c = i * stride, j * stride
                        g = dout[n, f, i, j]
                        dxp[n, :, r : r + KH, c : c + KW] += g * w[f]
                        dw[f] += g * xp[n, :, r : r + KH, c : c + KW]
                        db[f] += g
        return dxp[:, :, top : top + H, left : left + W], dw, db

    return out, backward


def maxpool2d_naive(x, P, stride=None):
    """out, backward(dout) -> dx; ties go to the first maximum in row-major order."""
    S = P if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = (H - P) // S + 1, (W - P) // S + 1
    out = np.zeros((N, C, H_out, W_out))
    argmax = {}
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    best = None
                    for a in range(P):
                        for e in range(P):
                            v = x[n, c, i * S + a, j * S + e]
                            if best is None or v > best[0]:  # strict: first max wins
                                best = (v, i * S + a, j * S + e)
                    out[n, c, i, j] = best[0]
                    argmax[n, c, i, j] = best[1:]

    def backward(dout):
        dx = np.zeros_like(x)
        for (n, c, i, j), (r, s) in argmax.items():
            dx[n, c, r, s] += dout[n, c, i, j]
        return dx

    return out, backward


def avgpool2d_naive(x, P, stride=None):
    """out, backward(dout) -> dx."""
    S = P if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = (H - P) // S + 1, (W - P) // S + 1
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = x[
                        n, c, i * S : i * S + P, j * S : j * S + P
                    ].mean()

    def backward(dout):
        dx = np.zeros_like(x)
        for n in range(N):
            for c in range(C):
                for i in range(H_out):
                    for j in range(W_out):
                        dx[n, c, i * S : i * S + P, j * S : j * S + P] += (
                            dout[n, c, i, j] / P**2
                        )
        return dx

    return out, backward
