"""The pieces a layer's derivation is made of, shared by every rule module."""

from dataclasses import dataclass, field

import numpy as np

from glassnet.reports._table import count_str


@dataclass
class Step:
    """One line of a derivation: what, its formula, and the shapes involved."""

    name: str
    formula: str
    shapes: str = ""


@dataclass
class Jacobian:
    """d vec(out) / d vec(x): size, structure and how many entries can be nonzero."""

    rows: int
    cols: int
    structure: str
    nonzeros: int

    def text(self) -> str:
        total = self.rows * self.cols
        return (
            f"{self.structure}; {count_str(self.nonzeros)} of {count_str(total)} "
            "entries can be nonzero; never built"
        )


@dataclass
class Derivation:
    forward: Step
    backward: list[Step]
    jacobian: Jacobian | None
    why: list[str] = field(default_factory=list)
    numbers: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    describe: object  # (LayerTrace) -> Derivation
    vjp: object  # (LayerTrace) -> {"x": dL/dx, parameter name: gradient}
    # (LayerTrace) -> what else the layer's code computes that vjp also derives
    # (a recurrent layer's dL/dh_t per step), by the same names: checked too
    actual: object = None


def matrix_text(a: np.ndarray) -> str:
    """A small matrix as rows of numbers, 3 significant digits."""
    a = np.atleast_2d(a)
    if a.dtype.kind in "iub":
        return "\n".join(" ".join(str(int(v)) for v in row) for row in a)
    return "\n".join(" ".join(f"{v:+.3f}" for v in row) for row in a)


def rule_name(layer, table) -> str | None:
    """The name in table of layer's class or of its nearest base class, if any."""
    for cls in type(layer).__mro__:
        if cls.__name__ in table:
            return cls.__name__
    return None
