"""The math of Conv1D, MaxPool1D and AvgPool1D on signals (N, C, L), per window.

The layers run the 2-D code on (N, C, 1, L); these rules derive the 1-D math
on its own: the reference VJPs loop over the K kernel offsets along the length
and let einsum do the rest, sharing no code with the layers' im2col, so the
check in explain compares two independent derivations.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step, matrix_text
from glassnet.reports._table import count_str, shape_str


def _s(a) -> str:
    return shape_str(np.shape(a))


def _geometry(t) -> tuple[int, int, int, int, int]:
    """(K, S, left, right, L_out) of a 1-D convolution or pooling on t.x."""
    layer = t.layer
    K = (layer.weight.shape[2],) if hasattr(layer, "weight") else layer.kernel_size
    ((left, right),) = layer.padding_amounts((t.x.shape[2],))
    return K[0], layer.stride[0], left, right, t.out.shape[2]


def _taps(a: np.ndarray, k: int, S: int, L_out: int) -> np.ndarray:
    """a[:, :, l*S + k] for l = 0 .. L_out-1: what offset k reads, (N, C, L_out)."""
    return a[:, :, k : k + S * (L_out - 1) + 1 : S]


def _reads(L: int, left: int, K: int, S: int, L_out: int) -> int:
    """Pairs (output position, kernel offset) that read a real sample, not padding."""
    return sum(1 for j in range(L_out) for k in range(K) if 0 <= j * S + k - left < L)


def _padding_text(layer, left: int, right: int) -> str:
    """padding 'same' = (1, 2): as given, and the zeros it puts at each end."""
    shown = f"padding {layer.padding!r}"
    given = layer.padding  # "valid", "same", p, (p,), (left, right)...
    if given == (left, right) or (left == right and given == left):
        return shown
    return f"{shown} = ({left}, {right})"


# -- Conv1D ---------------------------------------------------------------------


def _conv1d(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    N, C, L = x.shape
    F = out.shape[1]
    K, S, left, right, L_out = _geometry(t)
    CK, Lp = C * K, L + left + right
    strided = f"with stride {S}" if S > 1 else "at every position"
    steps = [
        Step(
            "as a GEMM",
            f"cols = im2col(x_pad); out[n] = W.reshape({F}, {CK}) @ cols[n]",
            f"x_pad ({N}, {C}, {Lp}); cols ({N}, {CK}, {L_out}); ({F}, {CK}) @ "
            f"({CK}, {L_out}) -> ({F}, {L_out})",
        ),
        Step(
            "dL/dW",
            "dW[f,c,k] = sum over n,l of g[n,f,l] x_pad[n,c,lS+k]: x_pad "
            f"correlated with g, read {strided}",
            f"g ({N}, {F}, {L_out}) with x_pad ({N}, {C}, {Lp}) -> ({F}, {C}, {K}) "
            "= W's shape",
        ),
        Step("dL/db", "g.sum(axis=(0, 2))", f"{_s(out)} -> ({F},)"),
        Step(
            "dL/dx",
            "dx_pad[n,c,p] = sum over f and l,k with lS+k = p of g[n,f,l] W[f,c,k]: "
            "the transposed correlation (g with S-1 zeros between its samples, "
            "correlated with W flipped along k), then the padding cut off",
            f"({N}, {F}, {L_out}) -> x_pad ({N}, {C}, {Lp}) -> [{left}:{left + L}] "
            f"-> {_s(x)} = x's shape",
        ),
        Step(
            "as the layer computes it",
            "dW = sum over n of g[n] @ cols[n].T; dx = col2im(W.reshape(F, -1).T @ "
            "g[n])",
            f"({F}, {L_out}) @ ({L_out}, {CK}); ({CK}, {F}) @ ({F}, {L_out}) -> "
            f"({CK}, {L_out}), folded back to ({C}, {L})",
        ),
    ]
    why = [
        f"weight sharing: the same W[f] slides over all {L_out} output positions of "
        f"all {N} examples, so dL/dW sums over n and l and keeps W's shape",
        f"b[f] is added at every position of filter f: dL/db sums g over the batch "
        f"and the {L_out} positions",
        f"a sample is read by up to {K} windows (fewer at the ends"
        + (f" or with stride {S}" if S > 1 else "")
        + "): dL/dx adds the gradient of every window that read it",
        f"row (n, f, l) of the Jacobian holds W[f] at the {CK} inputs of its "
        "window and zeros elsewhere; examples do not mix, so it is block-diagonal",
    ]
    rows, cols = N * F * L_out, N * C * L
    nonzeros = N * F * C * _reads(L, left, K, S, L_out)
    return Derivation(
        Step(
            "forward",
            "out[n,f,l] = b[f] + sum over c,k of W[f,c,k] x_pad[n,c,lS+k]",
            f"{_s(x)} * {_s(layer.weight.data)} + ({F},) -> {_s(out)}, K = {K}, "
            f"S = {S}, {_padding_text(layer, left, right)}; L_out = ({L} + {left} + "
            f"{right} - {K}) // {S} + 1 = {L_out}",
        ),
        steps,
        Jacobian(
            rows, cols, "block-diagonal, banded: W[f] in each row's window", nonzeros
        ),
        why,
    )


def _conv1d_vjp(t) -> dict:
    x, g, W = t.x, t.g, t.layer.weight.data
    K, S, left, right, L_out = _geometry(t)
    L = x.shape[2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (left, right)))
    dx_pad = np.zeros_like(x_pad)
    dW = np.zeros_like(W)
    for k in range(K):
        seen = _taps(x_pad, k, S, L_out)  # what W[:, :, k] multiplied, (N, C, L_out)
        dW[:, :, k] = np.einsum("nfl,ncl->fc", g, seen)
        _taps(dx_pad, k, S, L_out)[...] += np.einsum("nfl,fc->ncl", g, W[:, :, k])
    return {
        "weight": dW,
        "bias": g.sum(axis=(0, 2)),
        "x": dx_pad[:, :, left : left + L],
    }


# -- MaxPool1D, AvgPool1D -------------------------------------------------------


def _is_max(layer) -> bool:
    return any(c.__name__ == "MaxPool1D" for c in type(layer).__mro__)


def _windows(t) -> np.ndarray:
    """Every window of x_pad (-inf padding for the max, 0 for the mean):
    (N, C, L_out, K)."""
    K, S, left, right, L_out = _geometry(t)
    fill = -np.inf if _is_max(t.layer) else 0.0
    x_pad = np.pad(t.x, ((0, 0), (0, 0), (left, right)), constant_values=fill)
    return np.stack([_taps(x_pad, k, S, L_out) for k in range(K)], axis=-1)


def _pool1d(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    K, S, left, right, L_out = _geometry(t)
    rows, cols = out.size, x.size
    if _is_max(layer):
        forward = "out[n,c,l] = max over k of x_pad[n,c,lS+k] (padding: -inf)"
        backward = "dx = g at each window's first maximum, 0 elsewhere"
        jac = Jacobian(
            rows, cols, "a selection: one 1 per row, at its window's maximum", rows
        )
        why = [
            "moving a non-maximal input a little does not change the max, so its "
            "derivative is 0; the winner's is 1",
            "on a tie the first maximum (smallest k) takes the whole gradient",
        ]
    else:
        forward = f"out[n,c,l] = sum over k of x_pad[n,c,lS+k] / {K} (padding: 0)"
        backward = f"dx[n,c,lS+k-{left}] += g[n,c,l] / {K} for every k, then cut"
        real = x.shape[0] * x.shape[1] * _reads(x.shape[2], left, K, S, L_out)
        jac = Jacobian(
            rows, cols, f"each row holds 1/{K} at its (at most) {K} inputs", real
        )
        why = [f"every input of a window counts 1/{K} in its mean (padding counts)"]
    overlap = "do not overlap" if S >= K else "overlap and a sample adds up"
    why.append(
        f"channels and examples do not mix; with stride {S} and window {K} the "
        f"windows {overlap}; {count_str(rows)} outputs, {count_str(cols)} inputs"
    )
    numbers = []
    if _is_max(layer) and L_out <= 16:
        numbers = [
            Step(
                "winners (n=0, c=0)",
                matrix_text(_windows(t)[0, 0].argmax(axis=-1)),
                "offset k of each window's maximum",
            )
        ]
    return Derivation(
        Step(
            "forward",
            forward,
            f"{_s(x)} -> {_s(out)}, K = {K}, S = {S}, "
            f"{_padding_text(layer, left, right)}",
        ),
        [Step("dL/dx", backward, f"{_s(t.g)} -> {_s(x)}")],
        jac,
        why,
        numbers,
    )


def _pool1d_vjp(t) -> dict:
    K, S, left, right, L_out = _geometry(t)
    windows = _windows(t)  # (N, C, L_out, K)
    if _is_max(t.layer):
        first = windows.argmax(axis=-1)  # argmax returns the first maximum
        share = (np.arange(K) == first[..., None]) * t.g[..., None]
    else:
        share = np.broadcast_to(t.g[..., None] / K, windows.shape)
    L = t.x.shape[2]
    dx_pad = np.zeros((*t.x.shape[:2], L + left + right))
    for k in range(K):
        _taps(dx_pad, k, S, L_out)[...] += share[..., k]
    return {"x": dx_pad[:, :, left : left + L]}


RULES = {
    "Conv1D": Rule(_conv1d, _conv1d_vjp),
    "MaxPool1D": Rule(_pool1d, _pool1d_vjp),
    "AvgPool1D": Rule(_pool1d, _pool1d_vjp),
}
