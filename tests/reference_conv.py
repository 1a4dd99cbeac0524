"""Naive loop versions of the convolutions and poolings: slow and obviously right.

Test references only. Each function returns the output and a backward function
mapping dout to the gradients, computed with the same loops (every output
element adds its share to the inputs it read). The 1-D versions have their own
loops; they do not reuse the 2-D ones, as the layers do. The padding rules are
written out here again from the documentation, not imported from glassnet.
"""

import numpy as np


def per_axis(value, ndim):
    """k or a tuple of ndim of them, as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim


def pad_amounts(sizes, kernel, stride, padding):
    """((before, after), ...) per axis, from the forms the docstrings list:
    "valid", "same" (TensorFlow's rule: total = max((ceil(n / s) - 1) * s + k - n,
    0), the odd pixel after), p, (p per axis), explicit pairs, and in 1-D also
    (left, right)."""
    ndim = len(sizes)
    kernel, stride = per_axis(kernel, ndim), per_axis(stride, ndim)
    if padding == "valid":
        return ((0, 0),) * ndim
    if padding == "same":
        amounts = []
        for n, k, s in zip(sizes, kernel, stride, strict=True):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            amounts.append((total // 2, total - total // 2))
        return tuple(amounts)
    if isinstance(padding, int):
        return ((padding, padding),) * ndim
    if ndim == 1 and len(padding) == 2 and isinstance(padding[0], int):
        return (tuple(padding),)  # (left, right)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def conv2d_naive(x, w, b, stride=1, padding=0):
    """out, backward(dout) -> (dx, dw, db). x (N, C, H, W), w (F, C, KH, KW), b (F,)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    SH, SW = per_axis(stride, 2)
    (top, bottom), (left, right) = pad_amounts((H, W), (KH, KW), (SH, SW), padding)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    H_out = (H + top + bottom - KH) // SH + 1
    W_out = (W + left + right - KW) // SW + 1
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    r, c = i * SH, j * SW
                    window = xp[n, :, r : r + KH, c : c + KW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]

    def backward(dout):
        dxp, dw = np.zeros_like(xp), np.zeros_like(w)
        db = np.zeros_like(b)
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        r, c = i * SH, j * SW
                        g = dout[n, f, i, j]
                        dxp[n, :, r : r + KH, c : c + KW] += g * w[f]
                        dw[f] += g * xp[n, :, r : r + KH, c : c + KW]
                        db[f] += g
        return dxp[:, :, top : top + H, left : left + W], dw, db

    return out, backward


def conv1d_naive(x, w, b, stride=1, padding=0):
    """out, backward(dout) -> (dx, dw, db). x (N, C, L), w (F, C, K), b (F,)."""
    N, C, L = x.shape
    F, _, K = w.shape
    (S,) = per_axis(stride, 1)
    ((left, right),) = pad_amounts((L,), (K,), (S,), padding)
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    L_out = (L + left + right - K) // S + 1
    out = np.zeros((N, F, L_out))
    for n in range(N):
        for f in range(F):
            for i in range(L_out):
                out[n, f, i] = np.sum(xp[n, :, i * S : i * S + K] * w[f]) + b[f]

    def backward(dout):
        dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), np.zeros_like(b)
        for n in range(N):
            for f in range(F):
                for i in range(L_out):
                    g = dout[n, f, i]
                    dxp[n, :, i * S : i * S + K] += g * w[f]
                    dw[f] += g * xp[n, :, i * S : i * S + K]
                    db[f] += g
        return dxp[:, :, left : left + L], dw, db

    return out, backward


def maxpool2d_naive(x, kernel, stride=None, padding=0):
    """out, backward(dout) -> dx; ties go to the first maximum in row-major order.
    Padding is -inf: it never wins."""
    KH, KW = per_axis(kernel, 2)
    SH, SW = (KH, KW) if stride is None else per_axis(stride, 2)
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pad_amounts((H, W), (KH, KW), (SH, SW), padding)
    xp = np.pad(
        x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf
    )
    H_out = (H + top + bottom - KH) // SH + 1
    W_out = (W + left + right - KW) // SW + 1
    out = np.zeros((N, C, H_out, W_out))
    argmax = {}
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    best = None
                    for a in range(KH):
                        for e in range(KW):
                            v = xp[n, c, i * SH + a, j * SW + e]
                            if best is None or v > best[0]:  # strict: first max wins
                                best = (v, i * SH + a, j * SW + e)
                    out[n, c, i, j] = best[0]
                    argmax[n, c, i, j] = best[1:]

    def backward(dout):
        dxp = np.zeros(xp.shape)
        for (n, c, i, j), (r, s) in argmax.items():
            dxp[n, c, r, s] += dout[n, c, i, j]
        return dxp[:, :, top : top + H, left : left + W]

    return out, backward


def avgpool2d_naive(x, kernel, stride=None, padding=0):
    """out, backward(dout) -> dx. Padded zeros count in the mean (divide by KH*KW)."""
    KH, KW = per_axis(kernel, 2)
    SH, SW = (KH, KW) if stride is None else per_axis(stride, 2)
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pad_amounts((H, W), (KH, KW), (SH, SW), padding)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    H_out = (H + top + bottom - KH) // SH + 1
    W_out = (W + left + right - KW) // SW + 1
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, c, i * SH : i * SH + KH, j * SW : j * SW + KW]
                    out[n, c, i, j] = window.sum() / (KH * KW)

    def backward(dout):
        dxp = np.zeros(xp.shape)
        for n in range(N):
            for c in range(C):
                for i in range(H_out):
                    for j in range(W_out):
                        dxp[n, c, i * SH : i * SH + KH, j * SW : j * SW + KW] += dout[
                            n, c, i, j
                        ] / (KH * KW)
        return dxp[:, :, top : top + H, left : left + W]

    return out, backward


def maxpool1d_naive(x, kernel, stride=None, padding=0):
    """out, backward(dout) -> dx for x (N, C, L); the first maximum wins ties."""
    (K,) = per_axis(kernel, 1)
    (S,) = (K,) if stride is None else per_axis(stride, 1)
    N, C, L = x.shape
    ((left, right),) = pad_amounts((L,), (K,), (S,), padding)
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)), constant_values=-np.inf)
    L_out = (L + left + right - K) // S + 1
    out = np.zeros((N, C, L_out))
    winner = np.zeros((N, C, L_out), dtype=int)
    for n in range(N):
        for c in range(C):
            for i in range(L_out):
                window = list(xp[n, c, i * S : i * S + K])
                best = max(window)
                out[n, c, i] = best
                winner[n, c, i] = i * S + window.index(best)  # the first maximum

    def backward(dout):
        dxp = np.zeros(xp.shape)
        for n in range(N):
            for c in range(C):
                for i in range(L_out):
                    dxp[n, c, winner[n, c, i]] += dout[n, c, i]
        return dxp[:, :, left : left + L]

    return out, backward


def avgpool1d_naive(x, kernel, stride=None, padding=0):
    """out, backward(dout) -> dx for x (N, C, L); padded zeros count (divide by K)."""
    (K,) = per_axis(kernel, 1)
    (S,) = (K,) if stride is None else per_axis(stride, 1)
    N, C, L = x.shape
    ((left, right),) = pad_amounts((L,), (K,), (S,), padding)
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    L_out = (L + left + right - K) // S + 1
    out = np.zeros((N, C, L_out))
    for n in range(N):
        for c in range(C):
            for i in range(L_out):
                out[n, c, i] = xp[n, c, i * S : i * S + K].sum() / K

    def backward(dout):
        dxp = np.zeros(xp.shape)
        for n in range(N):
            for c in range(C):
                for i in range(L_out):
                    dxp[n, c, i * S : i * S + K] += dout[n, c, i] / K
        return dxp[:, :, left : left + L]

    return out, backward
