"""gn.gradient_flow(model, X, y, loss): where the gradient shrinks, grows or dies.

One forward/backward pass (on a float64 copy, in training mode) reported per
layer: the activations' mean and spread, the fraction of saturated outputs
(Sigmoid, Tanh; Softmax rows above 0.99) or dead ReLU units, the norm of the
upstream gradient dL/d(out) each layer receives and of the dL/dx it passes
down, and |dL/dW| / |W| for its weights. Warning lines name the layers where
the gradient vanishes or explodes. The layers inside a nested Sequential,
Residual or Concat get rows of their own, named by their qualified path and
indented under the row of the layer that holds them; warnings are about the
layers that compute (those that hold no other layers).

A recurrent layer (RNN, LSTM, GRU) also gets its gradient per time step, the
vanishing-gradient picture: |dL/dh_t| for t = 0 .. T-1, the mean over the batch
of each example's L2 norm over the H hidden features of dL/dh_t (the total
gradient reaching h_t: from the output and from step t+1), per direction, in
time order. The text shows the first, middle and last values and a log-scale
sparkline; to_dict() and the plot have every value.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from glassnet.reports._table import Report, Section, Table, layer_name, shape_str
from glassnet.reports._time_steps import (
    directions,
    hidden_gradients,
    is_recurrent,
    step_norms,
)
from glassnet.reports._trace import layers_of, output_trace, run_trace

SATURATED = {"Sigmoid": 0.01, "Tanh": 0.01, "Softmax": 0.01}  # |out - a limit| below
DEAD_KINDS = ("ReLU",)


@dataclass
class FlowRow:
    """One layer of the trace, at any depth. Norms are L2 norms of the whole
    tensor. index: the qualified name ("1", "1.block.0")."""

    index: str
    layer: str
    output_shape: tuple
    mean: float
    std: float
    saturated: float | None  # Sigmoid/Tanh outputs within 0.01 of a limit; Softmax rows
    dead: float | None  # fraction of ReLU units that are 0 for every example
    grad_norm: float  # |dL/d(out)|, the upstream gradient this layer receives
    dx_norm: float | None  # |dL/dx| it passes down
    param_grads: dict = field(default_factory=dict)  # name -> |dL/dp|
    param_ratios: dict = field(
        default_factory=dict
    )  # name -> |dL/dp| / |p| (None: p = 0)
    warnings: list = field(default_factory=list)
    depth: int = 0  # 0 for the model's own layers, 1 for the layers inside those...
    # recurrent layers: direction ("forward", "reverse") -> |dL/dh_t| for t = 0 ..
    # T-1, the mean over the batch of ||dL/dh_t[n]|| (L2 over the H features)
    step_norms: dict = field(default_factory=dict)


def _kind(layer, names) -> str | None:
    for cls in type(layer).__mro__:
        if cls.__name__ in names:
            return cls.__name__
    return None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2e}"


class GradientFlowReport(Report):
    """What gn.gradient_flow returns: `rows` (FlowRow), `loss`, `warnings`."""

    def __init__(
        self, title: str, rows: list[FlowRow], loss: float, top: float
    ) -> None:
        self.title = title
        self.rows = rows
        self.loss = loss
        self.top_grad_norm = top

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.rows for w in r.warnings]

    def _table(self) -> Table:
        header = [
            "#",
            "layer",
            "output",
            "act. mean",
            "act. std",
            "saturated/dead",
            "|dL/dout|",
            "|dL/dx|",
            "|dL/dW| / |W|",
        ]
        body = []
        for r in self.rows:
            if r.saturated is not None:
                state = f"{r.saturated:.0%} saturated"
            elif r.dead is not None:
                state = f"{r.dead:.0%} dead"
            else:
                state = "-"
            ratios = "\n".join(
                f"{k} {v:.2e}"
                if v is not None
                else f"{k} = 0, |grad| {r.param_grads[k]:.2e}"
                for k, v in r.param_ratios.items()
            )
            body.append(
                [
                    r.index,
                    "  " * r.depth + r.layer,
                    shape_str(r.output_shape),
                    f"{r.mean:+.3f}",
                    f"{r.std:.3f}",
                    state,
                    _fmt(r.grad_norm),
                    _fmt(r.dx_norm),
                    ratios or "-",
                ]
            )
        return Table(header, [Section(None, body)], align="llllrlrrl")

    def _notes(self) -> list[str]:
        notes = [
            f"loss {self.loss:.6g}; |dL/d(output)| = {self.top_grad_norm:.2e} at the "
            "top; read |dL/dout| from the bottom row up to follow the gradient down"
        ]
        notes += _time_step_notes(self.rows)
        return notes + [f"WARNING: {w}" for w in self.warnings]

    def to_dict(self) -> dict:
        return {
            "loss": self.loss,
            "top_grad_norm": self.top_grad_norm,
            "layers": [
                {**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows
            ],
            "warnings": self.warnings,
        }

    def plot(self):
        """A matplotlib Figure of the per-layer gradient norms (the [plot] extra)."""
        from glassnet import plot  # optional: matplotlib

        return plot.gradient_flow(self)


def _norm(a) -> float | None:
    return None if a is None else float(np.linalg.norm(np.ravel(a)))


def gradient_flow(
    model,
    X,
    y,
    loss=None,
    *,
    vanishing: float = 1e-3,
    exploding: float = 1e3,
    saturated: float = 0.5,
    dead: float = 0.5,
) -> GradientFlowReport:
    """Trace one forward/backward pass of model on (X, y) and report per layer.

        print(gn.gradient_flow(model, X, y, loss="softmax_cross_entropy"))

    loss: as in fit (None infers it from the model and y). A warning is raised
    for a layer whose upstream gradient norm is below `vanishing` or above
    `exploding` times the norm at the network's output, for a Sigmoid, Tanh or
    Softmax with more than `saturated` of its outputs saturated, and for a ReLU
    with more than `dead` of its units dead, and for a recurrent layer whose
    |dL/dh_t| at the first step it processes is below `vanishing` times its
    largest over the steps (vanishing through time; per-step norms in
    row.step_norms). The model itself is not changed.
    """
    from glassnet._validation import as_float_array
    from glassnet.nn.losses import get_loss
    from glassnet.train.loop import infer_loss

    layers_of(model)
    X = as_float_array(X, "X", np.float64)
    if hasattr(model, "_check_x"):
        model._check_x(X)  # names the first layer that does not fit
    loss_fn = infer_loss(model, y) if loss is None else get_loss(loss)
    traces, _, value = run_trace(model, X, y=y, loss=loss_fn, dtype=np.float64)
    top = _norm(output_trace(traces).g) if traces else 0.0
    rows, leaves = [], []
    for t in traces:
        out = t.out
        row = FlowRow(
            t.index,
            layer_name(t.layer),
            out.shape,
            float(out.mean()),
            float(out.std()),
            None,
            None,
            _norm(t.g),
            _norm(t.dx),
            depth=t.depth,
        )
        kind = _kind(t.layer, SATURATED)
        if kind == "Sigmoid":
            row.saturated = float(np.mean((out < 0.01) | (out > 0.99)))
        elif kind == "Tanh":
            row.saturated = float(np.mean(np.abs(out) > 0.99))
        elif kind == "Softmax" and out.ndim == 2:  # rows that put > 0.99 on one class
            row.saturated = float(np.mean(out.max(axis=1) > 0.99))
        if _kind(t.layer, DEAD_KINDS) and out.shape[0] > 0:
            row.dead = float(np.mean(np.all(out <= 0.0, axis=0)))  # never active
        for p in t.layer.own_parameters():
            size, grad = _norm(p.data), _norm(t.grads[p.name])
            row.param_grads[p.name] = grad
            row.param_ratios[p.name] = grad / size if size > 0 else None
        if is_recurrent(t.layer):
            gradients = hidden_gradients(t.layer, t.x, t.g)  # (N, T, H) each
            for name, dh in zip(directions(t.layer), gradients, strict=True):
                row.step_norms[name] = [float(v) for v in step_norms(dh)]
            _warn_through_time(row, vanishing)
        if not t.children:  # a container's gradients are its layers'
            _warn(row, top, exploding, saturated, dead)
            leaves.append(row)
        rows.append(row)
    _warn_vanishing(leaves, top, vanishing)
    if rows and top == 0:
        last = next(i for i, t in enumerate(traces) if t is output_trace(traces))
        rows[last].warnings.append(
            "the loss gradient is exactly zero: nothing will learn"
        )
    title = (
        f"gradient flow of {type(model).__name__}: one pass on X {shape_str(X.shape)}, "
        f"loss {type(loss_fn).__name__}"
    )
    return GradientFlowReport(title, rows, float(value), top)


SPARK = "_.-~=+*#"  # 8 levels, low to high, on a log scale; ASCII on any terminal
SPARK_WIDTH = 20  # at most this many steps drawn; longer sequences are sampled


def sparkline(values) -> str:
    """A log-scale line of SPARK characters, one per value (evenly sampled down to
    SPARK_WIDTH); zeros and non-finite values show as a space."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) > SPARK_WIDTH:
        v = v[np.linspace(0, len(v) - 1, SPARK_WIDTH).round().astype(int)]
    ok = np.isfinite(v) & (v > 0)
    if not ok.any():
        return " " * len(v)
    logs = np.log10(np.where(ok, v, 1.0))
    low, high = logs[ok].min(), logs[ok].max()
    span = high - low if high > low else 1.0
    levels = np.round((logs - low) / span * (len(SPARK) - 1)).astype(int)
    return "".join(
        SPARK[k] if good else " " for k, good in zip(levels, ok, strict=True)
    )


def _time_step_notes(rows: list[FlowRow]) -> list[str]:
    """One note per recurrent layer and direction: first, middle and last
    |dL/dh_t| and a sparkline of all steps."""
    recurrent = [r for r in rows if r.step_norms]
    if not recurrent:
        return []
    notes = [
        "|dL/dh_t| per time step (mean over the batch of each example's L2 norm "
        "over the hidden features; sparkline on a log scale, _ lowest, # highest):"
    ]
    for r in recurrent:
        for name, norms in r.step_norms.items():
            T = len(norms)
            picks = sorted({0, (T - 1) // 2, T - 1})
            values = "  ".join(f"t={t} {norms[t]:.1e}" for t in picks)
            kind = r.layer.split("(")[0]  # the index names the layer
            side = f" {name}" if len(r.step_norms) > 1 else ""
            notes.append(f"  {r.index} {kind}{side}: {values}  {sparkline(norms)}")
    return notes


def _warn_through_time(row: FlowRow, vanishing: float) -> None:
    """A warning when the first step a direction processes gets less than
    `vanishing` times the largest per-step gradient of that direction."""
    for name, norms in row.step_norms.items():
        first = 0 if name == "forward" else len(norms) - 1  # processed first
        largest = max(norms)
        if largest > 0 and np.isfinite(largest) and norms[first] < vanishing * largest:
            ratio = norms[first] / largest
            hint = "an LSTM or GRU, " if row.layer.startswith("RNN") else ""
            row.warnings.append(
                f"layer {row.index} ({row.layer}): vanishing gradient through time "
                f"({name}): |dL/dh_t| at t={first} is {ratio:.1e} of its largest "
                f"value, so what the first steps read barely learns ({hint}shorter "
                "sequences or return_sequences=True with a loss at every step help)"
            )


def _warn_vanishing(rows: list[FlowRow], top: float, vanishing: float) -> None:
    """One warning at the highest layer where |dL/dout| falls below vanishing * top."""
    low = [r for r in rows if r.grad_norm is not None and top > 0]
    low = [r for r in low if np.isfinite(r.grad_norm) and r.grad_norm < vanishing * top]
    if not low:
        return
    first, bottom = low[-1], low[0]
    text = (
        f"layer {first.index} ({first.layer}): vanishing gradient, |dL/dout| = "
        f"{first.grad_norm:.1e} is {first.grad_norm / top:.1e} of the norm at the "
        "output"
    )
    if bottom is first:
        text += f"; layer {first.index} barely learns"
    else:
        text += (
            f" (down to {bottom.grad_norm / top:.1e} at layer {bottom.index}); "
            f"layers {bottom.index}-{first.index} barely learn"
        )
    first.warnings.append(text)


def _warn(row: FlowRow, top, exploding, saturated, dead) -> None:
    where = f"layer {row.index} ({row.layer})"
    g = row.grad_norm
    if g is None:
        return
    if not np.isfinite(g):
        row.warnings.append(f"{where}: the gradient is not finite (NaN or inf)")
        return
    if top > 0 and g > exploding * top:
        row.warnings.append(
            f"{where}: exploding gradient, |dL/dout| = {g:.1e} is {g / top:.1e} times "
            "the norm at the output; lower the learning rate or rescale the weights"
        )
    if row.saturated is not None and row.saturated > saturated:
        row.warnings.append(
            f"{where}: {row.saturated:.0%} of its outputs are saturated, where its "
            "derivative is below 0.01 and the gradient through it nearly vanishes "
            "(scale the inputs or initialise smaller weights)"
        )
    if row.dead is not None and row.dead > dead:
        row.warnings.append(
            f"{where}: {row.dead:.0%} of its units are dead (0 for every example), so "
            "no gradient passes them (lower the learning rate, or try LeakyReLU)"
        )
