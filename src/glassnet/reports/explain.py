"""gn.explain(model, input_shape): the derivation behind every layer's backward.

For each layer: the forward formula, the backward formula as the
vector-Jacobian product backward really computes, the local Jacobian's shape
and structure with this batch's numbers, and a check: the formula, evaluated
independently on random data (or your X), against the layer's actual backward.
A layer glassnet has no rule for (your own) gets a gradient check instead.

Nested models are explained at every depth: each layer inside a Sequential,
Residual or Concat (or your own composite) gets its section, named by its
qualified path ("[2.block.0] Dense(8, 8)"), and each container a short rule of
its own: how it routes g to the layers inside it and combines their dL/dx,
checked against what its backward really did.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from glassnet.reports._rules import Derivation, find_rule
from glassnet.reports._rules_loss import loss_rule
from glassnet.reports._table import (
    Report,
    Section,
    Table,
    count_str,
    layer_name,
    shape_str,
)
from glassnet.reports._trace import (
    batch_shape,
    output_trace,
    random_batch,
    run_trace,
)

MATCH = 1e-9  # formula vs backward, relative, float64
# A gradient far smaller than the upstream gradient g could make it is compared
# with that size instead of its own (see _floor): a Dense bias before a BatchNorm
# sums a g whose columns add up to 0, so its true value and both computations of
# it are float64 roundoff, and their ratio means nothing.
ROUNDOFF_FLOOR = 1e-3


@dataclass
class LayerExplanation:
    """One layer, at any depth, or the loss (index None) of an explain report.
    index: the layer's qualified name ("1", "1.block.0")."""

    index: str | None
    layer: str
    input_shape: tuple
    output_shape: tuple
    derivation: Derivation
    check: dict = field(default_factory=dict)  # name -> relative difference
    threshold: float = MATCH  # a gradient check's threshold for layers without a rule

    @property
    def matches(self) -> bool:
        return all(v <= self.threshold for v in self.check.values())


def relative_difference(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """max |a - b| / max(max |b|, floor) (0 when both are zero); shapes must
    agree."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(b), initial=0.0)), floor, 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


class ExplainReport(Report):
    """What gn.explain returns: `layers` (LayerExplanation), `loss`, `to_dict()`."""

    def __init__(self, title, input_shape, layers, loss, format="text") -> None:
        self.title = title
        self.input_shape = input_shape
        self.layers: list[LayerExplanation] = layers
        self.loss: LayerExplanation | None = loss
        self.format = format

    @property
    def matches(self) -> bool:
        """True when every checked formula agrees with the code's backward."""
        return all(e.matches for e in self._entries())

    def only(self, *which) -> "ExplainReport":
        """The same report for some layers only: their indices or qualified names
        (1, "1.block.0"), and "loss" for the loss."""
        wanted = {str(w) for w in which if w != "loss"}
        layers = [e for e in self.layers if e.index in wanted]
        loss = self.loss if "loss" in which else None
        title = f"{self.title}, layers {', '.join(str(w) for w in which)}"
        return ExplainReport(title, self.input_shape, layers, loss, self.format)

    def _entries(self) -> list[LayerExplanation]:
        return self.layers + ([self.loss] if self.loss is not None else [])

    def _table(self) -> Table:
        sections = []
        for e in self._entries():
            d = e.derivation
            head = "loss" if e.index is None else f"[{e.index}]"
            shapes = f"{shape_str(e.input_shape)} -> {shape_str(e.output_shape)}"
            title = f"{head} {e.layer}: {shapes}"
            rows = [[d.forward.name, d.forward.formula, d.forward.shapes]]
            rows += [[s.name, s.formula, s.shapes] for s in d.backward]
            if d.jacobian is not None:
                j = d.jacobian
                what = "d out / d x" if e.index is not None else "d out / d in"
                rows.append(
                    [
                        "Jacobian",
                        f"{what}: {count_str(j.rows)} x {count_str(j.cols)}",
                        j.text(),
                    ]
                )
            rows += [[s.name, s.formula, s.shapes] for s in d.numbers]
            if e.check:
                worst = max(e.check.values())
                verdict = (
                    "the formula = backward" if e.matches else "DIFFERS from backward"
                )
                names = ", ".join(e.check)
                rows.append(["check", verdict, f"max rel. diff {worst:.1e} ({names})"])
            sections.append(Section(title, rows, list(d.why)))
        return Table(
            ["step", "formula", "shapes and structure"],
            sections,
            wrap={1: 48, 2: 56},
            code={1},
        )

    def _notes(self) -> list[str]:
        notes = [
            "g = dL/d(out), the gradient arriving from above, has out's shape; "
            "N is the batch size"
        ]
        bad = [e for e in self._entries() if not e.matches]
        for e in bad:
            where = "the loss" if e.index is None else f"layer {e.index}"
            notes.append(
                f"WARNING: {where} ({e.layer}): its backward does not compute the "
                "formula above; check it with gn.gradcheck(layer, x)"
            )
        return notes

    def to_dict(self) -> dict:
        def entry(e: LayerExplanation) -> dict:
            d = asdict(e.derivation)
            return {
                "index": e.index,
                "layer": e.layer,
                "input_shape": list(e.input_shape),
                "output_shape": list(e.output_shape),
                **d,
                "check": dict(e.check),
                "matches": e.matches,
            }

        return {
            "input_shape": list(self.input_shape),
            "layers": [entry(e) for e in self.layers],
            "loss": None if self.loss is None else entry(self.loss),
            "matches": self.matches,
        }


def _floor(g: np.ndarray, gradient: np.ndarray) -> float:
    """ROUNDOFF_FLOOR of the largest size `gradient` could have if each of its
    entries summed its share of g's entries (g.size / gradient.size), each as
    large as the largest: below that, a difference is float64 roundoff of the
    sums (a sum over m entries of g is off by about sqrt(m) * 1e-16 * max|g|)."""
    share = max(np.size(g) / max(np.size(gradient), 1), 1.0)
    return ROUNDOFF_FLOOR * share * float(np.max(np.abs(g), initial=0.0))


def _custom(t) -> tuple[Derivation, dict, float]:
    """A layer without a rule: its docstring, and a gradient check of its backward."""
    from glassnet.check.gradcheck import gradcheck
    from glassnet.reports._rules import Jacobian, Step

    doc = (type(t.layer).__doc__ or "").strip().split("\n")[0] or "your forward(x)"
    report = gradcheck(t.layer, t.x[:4], max_elements=40)
    rows, cols = t.out.size, t.x.size
    d = Derivation(
        Step("forward", doc, f"{shape_str(t.x.shape)} -> {shape_str(t.out.shape)}"),
        [
            Step(
                "dL/dx",
                "your backward(g)",
                f"{shape_str(t.g.shape)} -> {shape_str(t.x.shape)}",
            )
        ],
        Jacobian(rows, cols, "structure unknown to glassnet", rows * cols),
        [
            f"glassnet has no formula for {type(t.layer).__name__}; its backward was "
            "compared with finite differences: "
            + ("passed" if report.passed else "FAILED")
        ],
    )
    errors = {r.name: max(r.max_error, r.projection_error) for r in report.rows}
    return d, errors, report.threshold


def _random_targets(loss, out: np.ndarray, rng) -> np.ndarray:
    """Targets of the kind the loss declares: labels, values in [0, 1] for a loss
    on probabilities or logits, any real values otherwise."""
    if loss.target_kind == "labels":
        return rng.integers(0, out.shape[1], len(out))
    if loss.input_kind != "values":
        return rng.random(out.shape)
    return rng.standard_normal(out.shape)


def explain(
    model,
    input_shape=None,
    *,
    batch_size: int = 32,
    X=None,
    y=None,
    loss=None,
    format: str = "text",
    seed: int = 0,
    training: bool = True,
) -> ExplainReport:
    """Explain the math of every layer of model (a Sequential or one Layer).

        print(gn.explain(model, (4,), batch_size=150, loss="softmax_cross_entropy"))

    input_shape: one example's shape (no batch axis); or pass X, a real batch,
    whose numbers then appear in the report. loss (optional) adds the loss's own
    derivative; y are its targets (random ones if omitted). format="markdown"
    makes print give Markdown; the report also has to_markdown() and to_dict().
    training: explain the functions fit trains (the default: BatchNorm with the
    batch's statistics, Dropout's mask) or, with False, the ones predict uses
    (BatchNorm's running statistics, no dropout).
    Everything runs on a float64 copy: the model is not changed.
    """
    from glassnet.errors import ConfigError
    from glassnet.nn.losses import get_loss

    if format not in ("text", "markdown"):
        raise ConfigError(
            f"explain: format must be 'text' or 'markdown', got {format!r}"
        )
    rng = np.random.default_rng(seed)
    if X is not None:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim < 2:
            from glassnet.errors import ShapeError

            raise ShapeError(
                f"explain: X must be a batch (N, ...), got shape {x.shape}"
            )
        batch_shape(model, x.shape[1:], len(x))
    else:
        shape = batch_shape(model, input_shape, batch_size)
        x = random_batch(model, shape, rng, np.float64)  # ids for an Embedding
    loss_fn = None if loss is None else get_loss(loss)
    target = None
    if loss_fn is not None:
        probe, _, _ = run_trace(
            model, x, dtype=np.float64, seed=seed, training=training
        )
        out = output_trace(probe).out if probe else x
        target = loss_fn.prepare_target(
            _random_targets(loss_fn, out, rng) if y is None else y,
            out.shape,
            np.float64,
        )
    traces, _, _ = run_trace(
        model,
        x,
        y=target,
        loss=loss_fn,
        dtype=np.float64,
        seed=seed,
        training=training,
    )
    entries = []
    for t in traces:
        rule = find_rule(t.layer)
        threshold = MATCH
        if rule is None:
            derivation, check, threshold = _custom(t)
        else:
            derivation = rule.describe(t)
            reference = rule.vjp(t)
            actual = {"x": t.dx, **t.grads}
            actual.update({f"g of {c.local_name}": c.g for c in t.children})
            if rule.actual is not None:
                actual.update(rule.actual(t))
            check = {
                k: relative_difference(actual[k], v, _floor(t.g, v))
                for k, v in reference.items()
            }
        entries.append(
            LayerExplanation(
                t.index,
                layer_name(t.layer),
                t.x.shape,
                t.out.shape,
                derivation,
                check,
                threshold,
            )
        )
    loss_entry = None
    if loss_fn is not None:
        pred = output_trace(traces).out if traces else x
        rule = loss_rule(loss_fn)
        loss_fn.forward(pred, target)
        actual = loss_fn.backward()
        if rule is not None:
            derivation, reference = rule(loss_fn, pred, target)
            check = {"pred": relative_difference(actual, reference)}
            loss_entry = LayerExplanation(
                None, type(loss_fn).__name__, pred.shape, (), derivation, check
            )
    name = type(model).__name__
    title = f"explain {name}: input {shape_str(x.shape)}" + (
        f", loss {type(loss_fn).__name__}" if loss_fn is not None else ""
    )
    if not training:
        title += ", inference mode"
    return ExplainReport(title, x.shape, entries, loss_entry, format)
