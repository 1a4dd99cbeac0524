"""The math of layers that hold layers: Sequential, Residual and Concat.

A container computes nothing of its own; its rule says how it routes the
upstream gradient g to the layers inside it and how it combines their dL/dx.
The reference VJP is built from what those layers really received and
returned in the traced pass (their own derivations are checked in their own
sections), so the check catches a container that sends a layer the wrong g or
adds the paths wrongly: each "g of <layer>" entry compares the gradient the
layer inside received with the one the rule says it must receive.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Rule, Step
from glassnet.reports._table import count_str, shape_str
from glassnet.reports._trace import LayerTrace


def _s(a) -> str:
    return shape_str(np.shape(a))


# -- Residual -----------------------------------------------------------------------


def _residual(t: LayerTrace) -> Derivation:
    x, out, block = t.x, t.out, t.children[0]
    n = count_str(x.size)
    return Derivation(
        Step(
            "forward", "out = x + block(x)", f"{_s(x)} + {_s(block.out)} -> {_s(out)}"
        ),
        [
            Step("g of block", "g", f"{_s(t.g)}: block(x) is added to out as it is"),
            Step(
                "dL/dx",
                "g + block.backward(g)",
                f"{_s(t.g)} + {_s(block.dx)} -> {_s(x)}",
            ),
            Step("Jacobian", "d out / d x = I + J_block", f"{n} x {n}; never built"),
        ],
        None,
        [
            "out depends on x along two paths, the identity and the block, so the "
            "two gradients add",
            "the identity path hands g down untouched: a deep residual network "
            "passes gradients to its first layers undiminished",
        ],
    )


def _residual_vjp(t: LayerTrace) -> dict:
    block = t.children[0]
    return {f"g of {block.local_name}": t.g, "x": t.g + block.dx}


# -- Concat -------------------------------------------------------------------------


def _axis(t: LayerTrace) -> int:
    axis = t.layer.axis
    return axis if axis > 0 else t.out.ndim + axis


def _slices(t: LayerTrace) -> list[tuple[int, int]]:
    """[begin, end) of each branch's part of out along the axis."""
    axis, bounds, begin = _axis(t), [], 0
    for branch in t.children:
        end = begin + branch.out.shape[axis]
        bounds.append((begin, end))
        begin = end
    return bounds


def _slice_text(axis: int, begin: int, end: int) -> str:
    return "g[" + ":, " * axis + f"{begin}:{end}]"


def _concat(t: LayerTrace) -> Derivation:
    x, out, axis = t.x, t.out, _axis(t)
    parts = " | ".join(_s(b.out) for b in t.children)
    steps = [
        Step(f"g of {b.local_name}", _slice_text(axis, begin, end), _s(b.out))
        for b, (begin, end) in zip(t.children, _slices(t), strict=True)
    ]
    steps.append(
        Step(
            "dL/dx",
            "sum of branch.backward(its slice of g)",
            " + ".join(_s(b.dx) for b in t.children) + f" -> {_s(x)}",
        )
    )
    return Derivation(
        Step(
            "forward",
            f"out = every branch(x), joined on axis {axis}",
            f"{parts} -> {_s(out)}",
        ),
        steps,
        None,
        [
            "each slice of out is one branch's output, so each branch receives "
            "its own slice of g and nothing else",
            "x fed every branch: its gradient is the sum of theirs (the Jacobian "
            "stacks the branches' Jacobians, [J_0; J_1; ...], never built)",
        ],
    )


def _concat_vjp(t: LayerTrace) -> dict:
    axis, reference = _axis(t), {}
    for branch, (begin, end) in zip(t.children, _slices(t), strict=True):
        index = (slice(None),) * axis + (slice(begin, end),)
        reference[f"g of {branch.local_name}"] = t.g[index]
    reference["x"] = sum(branch.dx for branch in t.children)
    return reference


# -- Sequential (a model inside a model) ----------------------------------------------


def _sequential(t: LayerTrace) -> Derivation:
    x, out, layers = t.x, t.out, t.children
    if not layers:
        return Derivation(
            Step("forward", "out = x", f"{_s(x)} -> {_s(out)}"),
            [Step("dL/dx", "g", _s(t.g))],
            None,
        )
    last = layers[-1].local_name
    chain = "x"
    for layer in layers[:2]:
        chain = f"layer {layer.local_name}({chain})"
    if len(layers) > 2:
        chain = (
            f"layer {last}(... {chain})"
            if len(layers) > 3
            else f"layer {last}({chain})"
        )
    return Derivation(
        Step(
            "forward",
            f"out = {chain}",
            f"{_s(x)} -> {_s(out)}, {len(layers)} layers in order",
        ),
        [
            Step(f"g of {last}", "g", _s(t.g)),
            Step("g of layer i", "dL/dx of layer i + 1", "its output's shape"),
            Step("dL/dx", "layer 0's dL/dx", f"{_s(layers[0].dx)} = x's shape"),
        ],
        None,
        [
            "the chain rule: d out / d x = J_last ... J_1 J_0, applied to g one "
            "layer at a time from the last down (one VJP each, never a product of "
            "Jacobians)",
        ],
    )


def _sequential_vjp(t: LayerTrace) -> dict:
    layers = t.children
    if not layers:
        return {"x": t.g}
    reference = {f"g of {layers[-1].local_name}": t.g}
    for below, above in zip(layers[:-1], layers[1:], strict=True):
        reference[f"g of {below.local_name}"] = above.dx
    reference["x"] = layers[0].dx
    return reference


RULES = {
    "Residual": Rule(_residual, _residual_vjp),
    "Concat": Rule(_concat, _concat_vjp),
    "Sequential": Rule(_sequential, _sequential_vjp),
}
