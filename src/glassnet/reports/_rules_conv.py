"""The math of Conv2D, MaxPool2D and AvgPool2D, written and evaluated per window.

The reference VJPs here loop over the KH x KW kernel offsets and let einsum do
the rest; they share no code with the layers' im2col implementation, so the
check in explain compares two independent derivations.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step, matrix_text
from glassnet.reports._table import count_str, shape_str
from glassnet.reports._trace import LayerTrace


def _pads(layer, H: int, W: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of a Conv2D or pooling on H x W."""
    (top, bottom), (left, right) = layer.padding_amounts((H, W))
    return top, bottom, left, right


def _stride_text(S: tuple[int, int]) -> str:
    return str(S[0]) if S[0] == S[1] else f"({S[0]}, {S[1]})"


def _window(
    a: np.ndarray, i: int, j: int, S: tuple[int, int], H_out: int, W_out: int
) -> np.ndarray:
    """a[:, :, i + h*SH, j + w*SW] for every output position: (N, C, H_out, W_out)."""
    SH, SW = S
    return a[:, :, i : i + SH * (H_out - 1) + 1 : SH, j : j + SW * (W_out - 1) + 1 : SW]


def _valid(size: int, pad: int, k: int, S: int, n_out: int) -> int:
    """Pairs (output position, kernel offset) along one axis that read a real pixel."""
    return sum(1 for h in range(n_out) for i in range(k) if 0 <= h * S + i - pad < size)


def _conv(t: LayerTrace) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    N, C, H, W = x.shape
    F, _, KH, KW = layer.weight.shape
    _, _, H_out, W_out = out.shape
    S = layer.stride
    top, _, left, _ = _pads(layer, H, W)
    CK, P = C * KH * KW, H_out * W_out
    SH, SW = S
    nonzeros = (
        N * F * C * _valid(H, top, KH, SH, H_out) * _valid(W, left, KW, SW, W_out)
    )
    steps = [
        Step(
            "as a GEMM",
            f"cols = im2col(x_pad); out[n] = W.reshape({F}, {CK}) @ cols[n]",
            f"cols ({N}, {CK}, {P}); ({F}, {CK}) @ ({CK}, {P}) -> ({F}, {P})",
        ),
        Step(
            "dL/dW",
            "sum over n of g[n] @ cols[n].T",
            f"({F}, {P}) @ ({P}, {CK}), summed over {N} -> ({F}, {C}, {KH}, {KW}) "
            "= W's shape",
        ),
        Step("dL/db", "g.sum(axis=(0, 2, 3))", f"{shape_str(out.shape)} -> ({F},)"),
        Step(
            "dL/dx",
            "col2im(W.reshape(F, -1).T @ g[n])",
            f"({CK}, {F}) @ ({F}, {P}) -> ({CK}, {P}), folded back to "
            f"({C}, {H}, {W}) per example",
        ),
    ]
    why = [
        f"weight sharing: the same W[f] slides over all {P} output pixels of all "
        f"{N} examples, so dL/dW sums over n, h and w and keeps W's shape",
        f"b[f] is added at every pixel of filter f: dL/db sums g over the batch and "
        f"the {H_out} x {W_out} pixels",
        f"an input pixel is read by up to {KH * KW} windows (fewer at the border"
        + (f" or with stride {_stride_text(S)}" if max(S) > 1 else "")
        + "): col2im adds the gradient of every window that read it",
        f"row (n, f, h, w) of the Jacobian holds W[f] at the {CK} inputs of its "
        "window and zeros elsewhere; examples do not mix, so it is block-diagonal",
    ]
    rows, cols = N * F * H_out * W_out, N * C * H * W
    return Derivation(
        Step(
            "forward",
            "out[n,f,h,w] = b[f] + sum over c,i,j of W[f,c,i,j] x_pad[n,c,hS+i,wS+j]",
            f"{shape_str(x.shape)} * {shape_str(layer.weight.shape)} + ({F},) -> "
            f"{shape_str(out.shape)}, S = {_stride_text(S)}, padding {layer.padding!r}",
        ),
        steps,
        Jacobian(
            rows, cols, "block-diagonal, sparse: W[f] in each row's window", nonzeros
        ),
        why,
    )


def _conv_vjp(t: LayerTrace) -> dict:
    layer, x, g = t.layer, t.x, t.g
    N, C, H, W = x.shape
    Wt = layer.weight.data
    F, _, KH, KW = Wt.shape
    H_out, W_out = g.shape[2:]
    S = layer.stride
    top, bottom, left, right = _pads(layer, H, W)
    x_pad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    dx_pad = np.zeros_like(x_pad)
    dW = np.zeros_like(Wt)
    for i in range(KH):
        for j in range(KW):
            seen = _window(
                x_pad, i, j, S, H_out, W_out
            )  # what W[:, :, i, j] multiplied
            dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", g, seen)
            _window(dx_pad, i, j, S, H_out, W_out)[...] += np.einsum(
                "nfhw,fc->nchw", g, Wt[:, :, i, j]
            )
    dx = dx_pad[:, :, top : top + H, left : left + W]
    return {"weight": dW, "bias": g.sum(axis=(0, 2, 3)), "x": dx}


def _padded(t: LayerTrace) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """x with the pooling's padding (-inf for the max, 0 for the mean), and the pads."""
    top, bottom, left, right = _pads(t.layer, *t.x.shape[2:])
    fill = -np.inf if _is_max(t.layer) else 0.0
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    return np.pad(t.x, widths, constant_values=fill), (top, bottom, left, right)


def _windows(t: LayerTrace) -> np.ndarray:
    """Every pooling window of x: (N, C, H_out, W_out, KH*KW), row-major within it."""
    (KH, KW), (SH, SW) = t.layer.kernel_size, t.layer.stride
    H_out, W_out = t.out.shape[2:]
    x_pad, _ = _padded(t)
    view = sliding_window_view(x_pad, (KH, KW), axis=(2, 3))[:, :, ::SH, ::SW]
    return view[:, :, :H_out, :W_out].reshape(*t.out.shape, KH * KW)


def _route(t: LayerTrace, share: np.ndarray) -> np.ndarray:
    """dx from share (N, C, H_out, W_out, KH*KW): what each window gives each pixel."""
    (KH, KW), S = t.layer.kernel_size, t.layer.stride
    H_out, W_out = t.out.shape[2:]
    x_pad, (top, _, left, _) = _padded(t)
    dx = np.zeros_like(x_pad)
    for k in range(KH * KW):
        i, j = divmod(k, KW)
        _window(dx, i, j, S, H_out, W_out)[...] += share[..., k]
    H, W = t.x.shape[2:]
    return dx[:, :, top : top + H, left : left + W]


def _pool(t: LayerTrace) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    (KH, KW), S = layer.kernel_size, layer.stride
    P = KH * KW  # pixels per window
    K = f"{KH}" if KH == KW else f"({KH}, {KW})"
    rows, cols = out.size, x.size
    is_max = _is_max(layer)
    if is_max:
        forward = "out[n,c,h,w] = max of x_pad[n,c,hSH:hSH+KH,wSW:wSW+KW]"
        backward = "dx = g at each window's (first) maximum, 0 elsewhere"
        jac = Jacobian(
            rows, cols, "a selection: one 1 per row, at its window's maximum", rows
        )
        why = [
            "moving a non-maximal input a little does not change the max, so its "
            "derivative is 0; the winner's is 1",
            "on a tie the first maximum (row-major) takes the whole gradient",
        ]
    else:
        forward = "out[n,c,h,w] = mean of x_pad[n,c,hSH:hSH+KH,wSW:wSW+KW]"
        backward = f"dx = g / {P} spread over each window"
        jac = Jacobian(
            rows, cols, f"each row holds 1/{P} at its (at most) {P} inputs", rows * P
        )
        why = [f"every input of a window counts 1/{P} in its mean (padding counts)"]
    why.append(
        f"channels and examples do not mix; with stride {_stride_text(S)} and "
        f"window {K} the "
        + (
            "windows do not overlap"
            if S[0] >= KH and S[1] >= KW
            else "windows overlap and a pixel adds up"
        )
    )
    numbers = []
    if is_max and out.shape[2] * out.shape[3] <= 16:
        winner = _windows(t)[0, 0].argmax(axis=-1)
        numbers = [
            Step(
                "winners (n=0, c=0)",
                matrix_text(winner),
                "offset k = i * KW + j of each window's maximum",
            )
        ]
    return Derivation(
        Step(
            "forward",
            forward,
            f"{shape_str(x.shape)} -> {shape_str(out.shape)}, window {K}, "
            f"S = {_stride_text(S)}, padding {layer.padding!r}",
        ),
        [Step("dL/dx", backward, f"{shape_str(t.g.shape)} -> {shape_str(x.shape)}")],
        jac,
        why + [f"{count_str(rows)} outputs, {count_str(cols)} inputs"],
        numbers,
    )


def _is_max(layer) -> bool:
    return any(c.__name__ == "MaxPool2D" for c in type(layer).__mro__)


def _pool_vjp(t: LayerTrace) -> dict:
    windows = _windows(t)
    P2 = windows.shape[-1]
    if _is_max(t.layer):
        first = windows.argmax(axis=-1)  # argmax returns the first maximum
        share = (np.arange(P2) == first[..., None]) * t.g[..., None]
    else:
        share = np.broadcast_to(t.g[..., None] / P2, windows.shape)
    return {"x": _route(t, share)}


RULES = {
    "Conv2D": Rule(_conv, _conv_vjp),
    "MaxPool2D": Rule(_pool, _pool_vjp),
    "AvgPool2D": Rule(_pool, _pool_vjp),
}
