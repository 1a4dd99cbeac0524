"""The math of BatchNorm1D/2D and LayerNorm.

Both normalise groups of m values, xhat = (x - mean) / sqrt(var + eps), then
scale and shift: out = weight * xhat + bias. BatchNorm's groups are the
features (channels): m = N * positions values of the batch. LayerNorm's are the
rows: the D = prod(normalized_shape) values of one example (or one position).

The reference VJP walks the computational graph one node at a time (x -> mean
-> centred -> var -> inv_std -> xhat -> out, as docs/batchnorm_backward.md
does), with the statistics recomputed from the traced input; the layers
compute the compact formula from their cache, so explain compares two
independent derivations.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step, matrix_text
from glassnet.reports._table import shape_str


def _s(a) -> str:
    return shape_str(np.shape(a))


def staged_dx(x: np.ndarray, dxhat: np.ndarray, axes: tuple, eps: float):
    """dL/dx of xhat = (x - mean) / sqrt(var + eps), the statistics taken over
    `axes`, by the chain rule through every node of the graph (the long way)."""
    m = np.prod([x.shape[a] for a in axes])
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean  # x reaches xc directly and through mean
    var = (xc * xc).mean(axis=axes, keepdims=True)  # biased: divides by m
    inv_std = (var + eps) ** -0.5
    d_inv_std = (dxhat * xc).sum(axis=axes, keepdims=True)  # xhat = xc * inv_std
    d_var = d_inv_std * -0.5 * (var + eps) ** -1.5
    d_xc = dxhat * inv_std + d_var * 2.0 * xc / m  # both paths into xc
    d_mean = -d_xc.sum(axis=axes, keepdims=True)
    return d_xc + d_mean / m, xc * inv_std


# -- BatchNorm ------------------------------------------------------------------------


def _bn_parts(t):
    """(axes, broadcast shape, m, positions text) for x (N, C, *positions)."""
    x = t.x
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    letters = {2: "N", 3: "N*L", 4: "N*H*W"}[x.ndim]
    return axes, shape, m, letters


def _batchnorm(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    C, size = x.shape[1], x.size
    axes, _, m, letters = _bn_parts(t)
    over = "the batch" if x.ndim == 2 else f"the batch and positions ({letters})"
    if not layer.training:
        return Derivation(
            Step(
                "forward",
                "out = weight * (x - running_mean) / sqrt(running_var + eps) + bias",
                f"{_s(x)} -> {_s(out)}, per feature: {C} running statistics",
            ),
            [
                Step("dL/dbias", f"g.sum(axis={axes})", f"{_s(t.g)} -> ({C},)"),
                Step("dL/dweight", f"(g * xhat).sum(axis={axes})", f"-> ({C},)"),
                Step(
                    "dL/dx",
                    "g * weight / sqrt(running_var + eps)",
                    f"{_s(t.g)} * ({C},) -> {_s(x)}, Hadamard",
                ),
            ],
            Jacobian(size, size, "diagonal: an affine map per feature", size),
            [
                "evaluation mode (predict, evaluate, validation): the running "
                "statistics are constants, so the layer is the affine map x -> "
                "weight * inv_std * x + (bias - weight * inv_std * running_mean), "
                "feature by feature, and examples do not interact",
                "the running statistics are buffers: saved with the model, updated "
                "in training mode, never differentiated",
            ],
        )
    block = f"{m} x {m}"
    why = [
        f"mean and var are taken over {over}: every output of a feature depends "
        f"on all {m} inputs of that feature, so examples interact and the "
        f"Jacobian is not block-diagonal over examples but over features: a "
        f"dense {letters} x {letters} block ({block}) per feature, {C} blocks",
        "the block is weight * inv_std / m * (m I - 1 1.T - xhat xhat.T): the "
        "identity minus two rank-one terms (the paths through mean and var), so "
        "applying it costs two sums per feature, dbias and dweight; the block is "
        "never built",
        "dx = g * weight * inv_std alone (the evaluation-mode answer) forgets "
        "those two paths and fails the gradient check; docs/batchnorm_backward.md "
        "derives the formula node by node",
        "forward also moves running_mean and running_var towards the batch's "
        f"statistics (momentum {layer.momentum}); they are buffers, not "
        "differentiated",
    ]
    numbers = []
    if C <= 6:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        numbers = [Step("batch mean, var", matrix_text(np.stack([mean, var])))]
    return Derivation(
        Step(
            "forward",
            "xhat = (x - mean) / sqrt(var + eps); out = weight * xhat + bias",
            f"{_s(x)} -> {_s(out)}; mean, var ({C},) over {m} values ({letters}) "
            "each, var biased",
        ),
        [
            Step("dL/dbias", f"g.sum(axis={axes})", f"{_s(t.g)} -> ({C},)"),
            Step("dL/dweight", f"(g * xhat).sum(axis={axes})", f"-> ({C},)"),
            Step(
                "dL/dx",
                "weight * inv_std / m * (m * g - dL/dbias - xhat * dL/dweight)",
                f"({C},) * {_s(t.g)} -> {_s(x)}, m = {m}",
            ),
        ],
        Jacobian(
            size,
            size,
            f"one dense {letters} x {letters} block per feature ({C} blocks of "
            f"{block}): examples mix",
            C * m * m,
        ),
        why,
        numbers,
    )


def _batchnorm_vjp(t) -> dict:
    layer, x, g = t.layer, t.x, t.g
    axes, shape, _, _ = _bn_parts(t)
    w = layer.weight.data.reshape(shape)
    if layer.training:
        dx, xhat = staged_dx(x, g * w, axes, layer.eps)
    else:
        inv_std = (layer.running_var.reshape(shape) + layer.eps) ** -0.5
        xhat = (x - layer.running_mean.reshape(shape)) * inv_std
        dx = g * w * inv_std
    return {
        "x": dx,
        "weight": (g * xhat).sum(axis=axes),
        "bias": g.sum(axis=axes),
    }


# -- LayerNorm ------------------------------------------------------------------------


def _ln_parts(t):
    """(axes, D, R): the normalised axes, their size and the number of rows."""
    k = len(t.layer.normalized_shape)
    axes = tuple(range(t.x.ndim - k, t.x.ndim))
    D = int(np.prod(t.layer.normalized_shape))
    return axes, D, t.x.size // D


def _layernorm(t) -> Derivation:
    layer, x, out = t.layer, t.x, t.out
    axes, D, R = _ln_parts(t)
    ns = shape_str(layer.normalized_shape)
    affine = layer.elementwise_affine
    steps = []
    if affine:
        steps = [
            Step("dL/dbias", "g summed over the rows", f"{_s(t.g)} -> {ns}"),
            Step("dL/dweight", "(g * xhat) summed over the rows", f"-> {ns}"),
        ]
    dxhat = "g * weight" if affine else "g"
    steps.append(
        Step(
            "dL/dx",
            "inv_std / D * (D * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)), "
            f"dxhat = {dxhat}, sums along the row",
            f"{_s(t.g)} -> {_s(x)}, D = {D}",
        )
    )
    return Derivation(
        Step(
            "forward",
            "xhat = (x - mean) / sqrt(var + eps)"
            + ("; out = weight * xhat + bias" if affine else "; out = xhat"),
            f"{_s(x)} -> {_s(out)}; mean, var per row of D = {D} values "
            f"(axes {axes}), {R} rows",
        ),
        steps,
        Jacobian(
            x.size,
            x.size,
            f"block-diagonal: one dense D x D block per row ({R} blocks of {D} x {D})",
            R * D * D,
        ),
        [
            f"each row (the last {len(axes)} axes, {ns}) is normalised with its own "
            f"mean and variance, so inside a row every output depends on all {D} "
            "inputs, and rows never interact",
            "the block is diag(weight) inv_std / D (D I - 1 1.T - xhat xhat.T): the "
            "BatchNorm formula with the sums taken along the row instead of the "
            "batch; applied as two row sums, never built",
            "no batch statistics and no running state: training and evaluation "
            "compute the same function",
        ],
    )


def _layernorm_vjp(t) -> dict:
    layer, x, g = t.layer, t.x, t.g
    axes, _, _ = _ln_parts(t)
    if not layer.elementwise_affine:
        return {"x": staged_dx(x, g, axes, layer.eps)[0]}
    w = layer.weight.data
    dx, xhat = staged_dx(x, g * w, axes, layer.eps)
    rows = tuple(range(x.ndim - len(axes)))
    return {"x": dx, "weight": (g * xhat).sum(axis=rows), "bias": g.sum(axis=rows)}


RULES = {
    "_BatchNorm": Rule(_batchnorm, _batchnorm_vjp),
    "LayerNorm": Rule(_layernorm, _layernorm_vjp),
}
