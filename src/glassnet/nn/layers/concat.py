"""Concat: parallel branches over one input, their outputs joined."""

import numpy as np

from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.nn.layers.base import Layer


class Concat(Layer):
    """Every branch sees the same x; their outputs are concatenated along `axis`.

        Concat(Dense(4, 3), Sequential(Dense(4, 8), ReLU(), Dense(8, 2)))

    Shapes: x (N, ...) -> each branch b_i gives (N, ..., M_i, ...) ->
    out (N, ..., sum(M_i), ...). axis counts the batch axis, like NumPy: the
    default 1 joins features (N, M) or channels (N, C, H, W); the branches'
    outputs must agree on every other axis.

    Backward: out's slice i is branch i's output, so dout splits back into the
    same slices, and x, which fed every branch, sums their input gradients:
        dL/dx = sum_i branch_i.backward(dout[..., slice i, ...])
    """

    def __init__(self, *branches: Layer, axis: int = 1) -> None:
        if len(branches) == 1 and isinstance(branches[0], (list, tuple)):
            branches = tuple(branches[0])
        if not branches:
            raise ConfigError("Concat: expected at least one branch, got none")
        for i, branch in enumerate(branches):
            if not isinstance(branch, Layer):
                raise ArgumentTypeError(
                    f"Concat: branch {i} must be a glassnet Layer, got "
                    f"{type(branch).__name__}"
                )
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ConfigError(
                f"Concat: axis must be a nonzero integer (0 is the batch), got {axis!r}"
            )
        self.branches = list(branches)
        self.axis = axis

    def forward(self, x: np.ndarray) -> np.ndarray:
        outs = [branch.forward(x) for branch in self.branches]
        axis = self._check(tuple(out.shape for out in outs), batch=True)
        self._cache = [out.shape[axis] for out in outs]  # each branch's width
        return np.concatenate(outs, axis=axis)  # (N, ..., sum(M_i), ...)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        widths = self._cached()
        axis = self.axis if self.axis > 0 else dout.ndim + self.axis
        bounds = np.cumsum(widths)[:-1]
        parts = np.split(dout, bounds, axis=axis)  # branch i's slice of dout
        dx = self.branches[0].backward(parts[0])
        for branch, part in zip(self.branches[1:], parts[1:], strict=True):
            dx = dx + branch.backward(part)  # x fed every branch
        return dx

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), branch) for i, branch in enumerate(self.branches)]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        shapes = []
        for i, branch in enumerate(self.branches):
            try:
                shape = branch.output_shape(tuple(input_shape))
            except ShapeError as exc:
                raise ShapeError(f"Concat branch {i}: {exc}") from None
            if shape is None:
                return None
            shapes.append(tuple(shape))
        axis = self._check(shapes, batch=False)
        joined = list(shapes[0])
        joined[axis] = sum(shape[axis] for shape in shapes)
        return tuple(joined)

    def get_config(self) -> dict:
        return {"axis": self.axis}

    def _check(self, shapes: list[tuple[int, ...]], batch: bool) -> int:
        """The axis as an index into `shapes`; ShapeError unless they can join."""
        offset = 0 if batch else 1  # one sample's shapes have no batch axis
        ndim = len(shapes[0]) + offset
        axis = self.axis if self.axis > 0 else ndim + self.axis
        if not 1 <= axis < ndim or any(len(s) + offset != ndim for s in shapes):
            raise ShapeError(
                f"Concat: cannot join the branch outputs {_shapes(shapes, batch)} "
                f"along axis {self.axis}"
            )
        axis -= offset
        rest = {s[:axis] + s[axis + 1 :] for s in shapes}
        if len(rest) > 1:
            raise ShapeError(
                f"Concat: branch outputs {_shapes(shapes, batch)} must agree on "
                f"every axis but axis {self.axis}"
            )
        return axis

    def __repr__(self) -> str:
        inner = ",\n".join("  " + repr(b).replace("\n", "\n  ") for b in self.branches)
        return f"Concat(\n{inner},\n  axis={self.axis}\n)"


def _shapes(shapes, batch: bool) -> str:
    shown = [s[1:] if batch else s for s in shapes]
    return ", ".join("(N, " + ", ".join(str(d) for d in s) + ")" for s in shown)
