"""Name the classic backprop mistakes behind a failing gradient check.

gradcheck compares numbers; this module recognises patterns. When one layer is
checked alone, its input x, output out and the upstream gradient g are known, so
a wrong analytic gradient can be recomputed under each classic mistake (the
derivative applied to the pre-activation, a bias averaged or summed over the
wrong axis, a transposed weight gradient, a matrix product where a Hadamard
product belongs, ...); a mistake whose result equals the wrong gradient is
named. Report-level patterns (only the biases wrong, gradients that accumulate
instead of being replaced) live here too; shape hints live with Parameter.
"""

import itertools
import re

import numpy as np

from glassnet._kernels import sigmoid

_BATCH_SIZE_TEXT = "is often the batch size"


def _close(a, b) -> bool:
    if a is None or b is None or np.shape(a) != np.shape(b):
        return False
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return bool(np.max(np.abs(a - b), initial=0.0) <= 1e-7 * scale)


def _rows_sum_to_one(out) -> bool:
    return out.ndim == 2 and bool(np.allclose(out.sum(axis=1), 1.0)) and out.min() >= 0


# (test, message) for dL/dx; each test returns what backward would have computed
_INPUT_MISTAKES = [
    (
        lambda x, out, g: g,
        "backward returns dout unchanged: the layer's own derivative is missing from "
        "the chain rule",
    ),
    (
        lambda x, out, g: g * x * (1.0 - x),
        "the derivative is applied to the pre-activation: backward computes "
        "dout * x * (1 - x) with x, the layer's input, but s(1 - s) is the sigmoid's "
        "derivative written with its output: use dout * out * (1 - out)",
    ),
    (
        lambda x, out, g: g * (1.0 - x**2),
        "the derivative is applied to the pre-activation: backward computes "
        "dout * (1 - x**2) with the input x, but 1 - tanh**2 is written with the "
        "output: use dout * (1 - out**2)",
    ),
    (
        lambda x, out, g: g * out * (1.0 - out) if _rows_sum_to_one(out) else None,
        "only the diagonal of the softmax Jacobian: dout * s * (1 - s) ignores that "
        "each output of a row depends on every input of that row; the product with the "
        "full Jacobian is s * (dout - (dout * s).sum(axis=1, keepdims=True))",
    ),
    (
        lambda x, out, g: g * sigmoid(out) * (1.0 - sigmoid(out)),
        "the derivative is applied to the activation instead of the pre-activation: "
        "backward computes sigmoid'(out) = s(out)(1 - s(out)), the sigmoid applied "
        "twice; sigmoid'(x) = out * (1 - out)",
    ),
    (
        lambda x, out, g: g * (1.0 - np.tanh(out) ** 2),
        "the derivative is applied to the activation instead of the pre-activation: "
        "backward computes 1 - tanh(out)**2, tanh applied twice; tanh'(x) = 1 - out**2",
    ),
]


def _matrix_instead_of_hadamard(x, g, analytic) -> bool:
    """analytic == g @ M for one (D, D) matrix shared by all N > D examples."""
    if g.ndim != 2 or analytic.shape != g.shape or g.shape[0] <= g.shape[1]:
        return False
    M, *_ = np.linalg.lstsq(g, analytic, rcond=None)
    return _close(g @ M, analytic) and not _close(M, np.diag(np.diag(M)))


def _input_mistake(layer, x, out, g, analytic) -> str:
    for test, message in _INPUT_MISTAKES:
        with np.errstate(all="ignore"):
            if x.shape == out.shape == g.shape and _close(analytic, test(x, out, g)):
                return message
    weights = [p.data for p in layer.parameters() if p.data.ndim == 2]
    for W in weights:
        if W.shape[0] == W.shape[1] and g.ndim == 2 and _close(analytic, g @ W):
            return (
                "dL/dx uses W where it needs W.T: for out = x @ W, dL/dx = dout @ W.T"
            )
    if (
        not weights
        and x.shape == out.shape
        and _matrix_instead_of_hadamard(x, g, analytic)
    ):
        D = g.shape[1]
        return (
            f"backward multiplies dout by one ({D}, {D}) matrix shared by every "
            "example (a matrix product), but this layer acts elementwise: its "
            "Jacobian is diagonal, so backward is the Hadamard product dout * f'(.)"
        )
    return ""


def _reductions(g: np.ndarray, shape: tuple):
    """(axes, g summed over axes) for every choice of axes that leaves `shape`."""
    for k in range(1, g.ndim):
        for axes in itertools.combinations(range(g.ndim), k):
            total = g.sum(axis=axes)
            if total.shape == shape:
                yield axes, total


def _axes_text(axes: tuple) -> str:
    return str(axes[0]) if len(axes) == 1 else str(axes)


def _bias_mistake(name: str, g: np.ndarray, analytic: np.ndarray) -> str:
    for axes, total in _reductions(g, analytic.shape):
        count = g.size // total.size
        if count > 1 and _close(analytic, total / count):
            return (
                f"dL/d{name} = dout.mean(axis={_axes_text(axes)}): a mean where a sum "
                f"belongs; the {name} is added to every example, so each example's "
                f"gradient adds up: dout.sum(axis={_axes_text(axes)})"
            )
    for axes, total in _reductions(g, analytic.shape):
        if _close(analytic, total):
            return (
                f"dL/d{name} = dout.sum(axis={_axes_text(axes)}) sums over the wrong "
                f"axis: the {name} is broadcast over the batch (axis 0, and the pixels "
                "of an image), so its gradient sums dout over those axes"
            )
    if g.ndim >= 2 and _close(analytic, g[0]):
        return f"dL/d{name} takes only the first example's dout; sum over the batch"
    return ""


def _weight_mistake(name: str, x, out, g, analytic) -> str:
    if x.ndim != 2 or g.ndim != 2 or analytic.ndim != 2:
        return ""
    if _close(analytic, g.T @ x):
        return (
            f"dL/d{name} is transposed: dout.T @ x is the column-major formula "
            f"(W @ x layout); with out = x @ W it is x.T @ dout"
        )
    if out.shape[1] == x.shape[1] and _close(analytic, out.T @ g):
        return (
            f"dL/d{name} uses the layer's output where it needs its input: x.T @ dout "
            "with x the input this layer received"
        )
    return ""


def refine_layer_rows(layer, x, g, grads: dict, rows) -> None:
    """Replace the diagnosis of each failing row of a one-layer check with the
    classic mistake that reproduces its analytic gradient, if one does."""
    try:
        out = np.asarray(layer.forward(x))
    except Exception:  # a diagnosis must never turn a report into a crash
        return
    # the rows of the layer's own parameters are named by p.name; those of the
    # layers inside a composite ("first.weight") get no per-layer diagnosis here
    params = {p.name: p for p in layer.own_parameters()}
    for row in rows:
        if row.passed or row.diagnosis == ACCUMULATES:
            continue
        analytic = grads.get(row.name)
        if analytic is None:
            continue
        analytic = np.asarray(analytic, np.float64)
        text = ""
        if row.name == "input":
            text = _input_mistake(layer, x, out, g, analytic)
        elif row.name in params and analytic.ndim == 1:
            text = _bias_mistake(row.name, g, analytic)
        elif row.name in params:
            text = _weight_mistake(row.name, x, out, g, analytic)
        if text:
            row.diagnosis = text
        elif row.diagnosis and f"= {x.shape[0]} x numeric" in row.diagnosis:
            row.diagnosis = row.diagnosis.replace(
                _BATCH_SIZE_TEXT, "is this batch's size"
            )


_BIAS_NAME = re.compile(r"(^|[._])(bias|beta|b\d*|db\d*|dsdb\d*)$", re.IGNORECASE)


def report_notes(rows) -> list[str]:
    """Patterns across rows: only the biases are wrong."""
    failing = [r for r in rows if not r.passed]
    passing = [r for r in rows if r.passed and r.checked > 0]
    if failing and passing and all(_BIAS_NAME.search(r.name) for r in failing):
        names = ", ".join(r.name for r in failing)
        return [
            f"only the bias gradients are wrong ({names}): every other gradient "
            "passes, so the upstream gradient is right and the mistake is in how "
            "it is reduced to the bias's shape: a bias added to every example has "
            "gradient dout.sum(axis=0) (Conv2D: dout.sum(axis=(0, 2, 3))), not a "
            "mean, not another axis, not one example's row"
        ]
    return []


def accumulating(model, dout, params: dict, grads: dict) -> list[str]:
    """Names of parameters whose .grad changes when backward runs again on the same
    dout: the layer adds to .grad instead of replacing it."""
    try:
        model.backward(dout.copy())
    except Exception:  # a layer whose cache is single-use: nothing to learn here
        return []
    return [
        name
        for name, p in params.items()
        if name in grads
        and not _close(p.grad, grads[name])
        and _close(p.grad, 2 * grads[name])
    ]


ACCUMULATES = (
    "backward adds to .grad instead of replacing it: a second backward on the same "
    "batch doubled this gradient, so training sums the gradients of every step "
    "(glassnet's contract: assign p.grad = ..., never p.grad += ...)"
)


def _repeatable(first, second) -> bool:
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if a.shape != b.shape:
        return False
    scale = 8 * np.finfo(np.float64).eps * max(float(np.max(np.abs(a), initial=0)), 1)
    with np.errstate(invalid="ignore"):
        return bool(np.all((np.abs(a - b) <= scale) | (np.isnan(a) & np.isnan(b))))


def random_layers(model, inputs: dict) -> list:
    """(path, layer) for the deepest layers whose forward, called twice on the
    input it saw (inputs: {id(layer): array}), returns two different outputs: a
    layer drawing new random numbers on every call. The path is "" for model
    itself, named when nothing inside it is to blame (a lone Dropout)."""
    found = []

    def differs(layer, a) -> bool:
        try:
            first = np.array(layer.forward(a.copy()), dtype=np.float64, copy=True)
            return not _repeatable(first, layer.forward(a.copy()))
        except Exception:  # a diagnosis must never turn a report into a crash
            return False

    def visit(path: str, layer) -> bool:
        a = inputs.get(id(layer))
        if a is None or not differs(layer, a):
            return False
        inner = [visit(f"{path}.{n}", child) for n, child in layer.children()]
        if not any(inner):
            found.append((path, layer))
        return True

    for name, child in model.children():
        visit(name, child)
    if not found and not model.children():
        a = inputs.get(id(model))
        if a is not None and differs(model, a):
            found.append(("", model))
    return found
