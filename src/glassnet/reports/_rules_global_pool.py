"""The math of GlobalAvgPool1D/2D and GlobalMaxPool1D/2D: one number per channel.

The reference VJPs build each channel's row of the Jacobian from the input
(the positions equal to the maximum, the first of them kept; or 1/S
everywhere), independently of the layers' argmax and broadcasting.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step
from glassnet.reports._table import count_str, shape_str


def _s(a) -> str:
    return shape_str(np.shape(a))


def _is_max(layer) -> bool:
    return any(c.__name__ == "_GlobalMaxPool" for c in type(layer).__mro__)


def _global_pool(t) -> Derivation:
    x, out = t.x, t.out
    N, C = out.shape
    S = x.size // (N * C)
    where = "L" if x.ndim == 3 else "H*W"
    if _is_max(t.layer):
        forward = "out[n, c] = max of x[n, c] over its positions"
        backward = "dx = g[n, c] at the first maximum of x[n, c], 0 elsewhere"
        jac = Jacobian(out.size, x.size, "a selection: one 1 per row", out.size)
        why = [
            "moving a value that is not the maximum a little does not change the "
            "max, so its derivative is 0; the maximum's is 1",
            "on a tie the first maximum (row-major) takes the whole gradient, as "
            "PyTorch's adaptive max pooling; x.max() differentiated by splitting "
            "between the ties would give another, equally valid, subgradient",
        ]
    else:
        forward = "out[n, c] = mean of x[n, c] over its positions"
        backward = f"dx[n, c, ...] = g[n, c] / {S}, every position"
        jac = Jacobian(
            out.size, x.size, f"each row holds 1/{S} at its {S} inputs", x.size
        )
        why = [f"each of the {S} positions ({where}) counts 1/{S} in the mean"]
    why.append(
        f"channels and examples do not mix: {count_str(out.size)} outputs, "
        f"{count_str(x.size)} inputs, no parameters"
    )
    return Derivation(
        Step("forward", forward, f"{_s(x)} -> {_s(out)}, S = {where} = {S}"),
        [Step("dL/dx", backward, f"{_s(t.g)} -> {_s(x)}")],
        jac,
        why,
    )


def _global_pool_vjp(t) -> dict:
    x, g = t.x, t.g
    N, C = g.shape
    flat = x.reshape(N, C, -1)  # (N, C, S)
    if _is_max(t.layer):
        ties = flat == flat.max(axis=2, keepdims=True)
        share = ties & (np.cumsum(ties, axis=2) == 1)  # the first maximum only
    else:
        share = np.full(flat.shape, 1.0 / flat.shape[2])
    return {"x": (share * g[:, :, None]).reshape(x.shape)}


RULES = {
    "_GlobalAvgPool": Rule(_global_pool, _global_pool_vjp),
    "_GlobalMaxPool": Rule(_global_pool, _global_pool_vjp),
}
