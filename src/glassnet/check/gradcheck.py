"""gradcheck: compare analytic gradients with central finite differences.

    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    report = gn.gradcheck(model, X, y, loss=..., training=True)  # batch statistics
    report = gn.gradcheck(layer, x)                 # <forward(x), dout> for random dout
    report = gn.gradcheck(loss_fn, arrays, grad=grad_fn)   # your own backprop

The check runs in float64 on a copy (a float32 model or array is upcast; the
report says so), so the model you pass, its buffers and its modes are left as
they were. First it evaluates f twice at the same point: a function that gives
two answers (a layer drawing new random numbers on every call, such as Dropout
in training mode) cannot be differenced, and the report says "cannot check" and
names the layer. For every tensor (the input and each parameter) it perturbs up
to `max_elements` entries one at a time (all of a small tensor; a fixed-seed
sample of a large one, always including the largest analytic entry) and compares

    numeric = (f(w + h) - f(w - h)) / (2 h)

with the analytic value; then it covers the whole tensor with projections: for a
random direction u, (f(w + h u) - f(w - h u)) / (2 h) against sum(grad * u).
The error of an entry is |a - n| / (|a| + |n|), after subtracting the rounding
error a finite difference of f cannot avoid: 8 * machine epsilon * max(|f|, 1) / h,
or 8 sigma / h if larger, where sigma is f's rounding noise measured per tensor
(8 sigma: the 6th-difference estimate of sigma can be low by a factor of 2 to 3,
and a correct, confident model must not fail on noise). The step h is eps, unless
f is far noisier than float64 (float32 arithmetic inside f): then a larger step
keeps the noise from swamping the gradient, and the report says so.

Kinks (a ReLU at exactly 0, a max-pool tie) have no derivative, only one-sided
ones: an entry whose disagreement a kink or a bend within the step could explain
is not failed but counted under "kinks" and left unconfirmed, and a projection
that crosses a kink is split into halves until its parts are smooth. Every entry
that no check could confirm is counted in the row and named in the notes: such a
row is not failed, and not silently passed either. When a row has entries on
kinks, the same check also runs at a point moved off the ties (every array by
1 % of its scale): a row that fails only at the ties is left unconfirmed (their
one-sided slopes can cancel, hiding the kink), and a row the ties kept from
being confirmed is failed if it fails there (its formula is wrong anyway).
"""

import copy
import sys
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from glassnet.check import _differences as fd
from glassnet.check import diagnosis as diagnose
from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer, total_penalty
from glassnet.nn.layers.containers import Sequential
from glassnet.nn.parameter import shape_hint

_ROUNDING = fd.ROUNDING  # per unit of |f|


@dataclass
class GradcheckRow:
    """One tensor's result. name: "input", "0.weight", or your array's key.

    max_error is the error the verdict judges, as the table prints it ("max rel
    err"): the largest |a - n| / (|a| + |n|) over the checked entries once the
    rounding allowance (`resolution`) is subtracted; raw_error is the same before
    the allowance ("raw err"). worst_index, analytic and numeric belong to the
    entry with the largest max_error (ties: the largest raw error).
    """

    name: str
    layer: str
    shape: tuple
    checked: int  # entries compared one at a time (kinks excluded)
    total: int
    kinks: int  # sampled entries where f bends within the step: not confirmed
    max_error: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    projection_error: float  # the largest error of the whole-tensor projections
    passed: bool
    diagnosis: str = ""
    grad_norm: float = float("nan")  # L2 norm of the analytic gradient (gradient flow)
    resolution: float = 0.0  # smallest difference the finite differences can resolve
    unresolved: bool = False  # every entry at or below that resolution
    raw_error: float = 0.0  # max |a - n| / (|a| + |n|) before the rounding allowance
    step: float = 0.0  # the finite-difference step h (eps unless f is very noisy)
    sigma: float = 0.0  # f's rounding noise, measured near the point
    unconfirmed: int = 0  # entries no check could confirm (kinks, sampled or not)

    @property
    def confirmed(self) -> bool:
        """Passed, and every entry confirmed: no kinks, nothing unresolved."""
        return self.passed and not self.unconfirmed and not self.unresolved


@dataclass
class GradcheckReport:
    """Rows of a gradient check, printable as a table; `passed` is the verdict.

    passed: no row failed (and f could be checked at all). confirmed: passed, and
    every entry of every row was confirmed. A row can pass unconfirmed in two
    ways, each named in the notes: every gradient entry is smaller than the
    finite differences can resolve (a very confident, well-trained model: check
    it before training, or on harder examples), or entries sit on kinks, where f
    has only one-sided derivatives. `cannot_check` says why no row could be
    checked (f is not deterministic); passed is then False.
    """

    rows: list[GradcheckRow]
    threshold: float
    eps: float
    notes: list[str] = field(default_factory=list)
    cannot_check: str = ""

    @property
    def passed(self) -> bool:
        return not self.cannot_check and all(row.passed for row in self.rows)

    @property
    def confirmed(self) -> bool:
        return self.passed and all(row.confirmed for row in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def worst(self) -> GradcheckRow:
        """The row with the largest error the table shows (max rel err or proj err;
        ties: the largest raw err)."""
        return max(
            self.rows,
            key=lambda r: (max(r.max_error, r.projection_error), r.raw_error),
        )

    def failures(self) -> list[GradcheckRow]:
        return [row for row in self.rows if not row.passed]

    def __getitem__(self, name: str) -> GradcheckRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row named {name!r}; rows: {[r.name for r in self.rows]}")

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "confirmed": self.confirmed,
            "cannot_check": self.cannot_check,
            "threshold": self.threshold,
            "eps": self.eps,
            "notes": list(self.notes),
            "rows": [asdict(row) | {"verdict": self.verdict(row)} for row in self.rows],
        }

    def verdict(self, row: GradcheckRow) -> str:
        """The verdict column: FAIL, ok, ok* (within the rounding allowance only),
        partial (some entries unconfirmed), unconfirmed (none confirmed) or
        "not run" (f could not be checked)."""
        if self.cannot_check:
            return "not run"
        if not row.passed:
            return "FAIL"
        if row.unresolved or row.unconfirmed >= row.total:
            return "unconfirmed"
        if row.unconfirmed:
            return "partial"
        return "ok*" if row.raw_error > self.threshold else "ok"

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "tensor",
            "layer",
            "shape",
            "checked",
            "kinks",
            "max rel err",
            "raw err",
            "worst at",
            "analytic",
            "numeric",
            "proj err",
            "verdict",
        ]
        body = []
        for r in self.rows:
            body.append(
                [
                    r.name,
                    r.layer,
                    "x".join(map(str, r.shape)) or "()",
                    f"{r.checked}/{r.total}",
                    str(r.kinks),
                    f"{r.max_error:.2e}",
                    f"{r.raw_error:.2e}",
                    str(r.worst_index) if r.worst_index is not None else "-",
                    f"{r.analytic:+.6e}",
                    f"{r.numeric:+.6e}",
                    f"{r.projection_error:.2e}",
                    self.verdict(r),
                ]
            )
        return header, body

    def _headline(self) -> str:
        if self.cannot_check:
            return f"gradcheck CANNOT CHECK: {self.cannot_check}"
        verdict = "PASSED" if self.passed else "FAILED"
        line = (
            f"gradcheck {verdict}: threshold {self.threshold:g} on max relative "
            f"error, eps {self.eps:g}, float64"
        )
        partly = [r.name for r in self.rows if r.passed and not r.confirmed]
        if partly:
            line += f"; not confirmed everywhere: {', '.join(partly)} (see the notes)"
        return line

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, width: int | None = None) -> str:
        """The table and its notes, every line at most `width` characters
        (default: COLUMNS, else the terminal's width, else 80): narrow columns
        wrap, then max rel err (the error after the rounding allowance, 0 for
        most rows that pass: raw err, kept, says how close the two gradients
        are), kinks, worst at, proj err, numeric, analytic and checked are left
        out in that order (to_dict() keeps every number)."""
        from glassnet._terminal import fit_table, terminal_width, wrap_text

        width = width or terminal_width()
        header, body = self._table()
        lines = fit_table(
            header,
            body,
            width,
            flex={1, 2},
            drop=[5, 4, 7, 10, 9, 8, 3],
        )
        text = []
        text.append(self._headline())
        verdicts = {self.verdict(r) for r in self.rows}
        if "ok*" in verdicts:
            text.append(
                "ok*: above the threshold, but by less than the rounding error "
                "finite differences cannot avoid here (GradcheckRow.resolution; "
                "max rel err is measured after it, raw err before)"
            )
        if "partial" in verdicts or "unconfirmed" in verdicts:
            text.append(
                "partial / unconfirmed: passed, but some / all entries could not be "
                "confirmed (kinks, or gradients below the resolution): see the notes"
            )
        text += [f"note: {n}" for n in self.notes]
        text += [f"{r.name}: {r.diagnosis}" for r in self.rows if r.diagnosis]
        for line in text:
            lines += wrap_text(line, width, "", "  ")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html  # here: only notebooks need it, and it is 3 ms of import glassnet

        header, body = self._table()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in body
        )
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        headline = html.escape(self._headline())
        return f"<table><tr>{head}</tr>{rows}</table><p>{headline}</p>{notes}"


def _diagnose(analytic: np.ndarray, numeric: np.ndarray) -> str:
    """Name a common cause when analytic and numeric differ in a telling way.

    numeric holds NaN where an entry was not checked (sampled out or on a kink).
    """
    checked = ~np.isnan(numeric)
    a, n = analytic[checked], numeric[checked]
    big = np.abs(n) > 1e-8 * max(np.abs(n).max(initial=0.0), 1e-300)
    if not big.any():
        return (
            "the numeric gradient is zero here: the loss does not depend on this tensor"
        )
    if np.allclose(a, 0.0):
        return "the analytic gradient is zero: backward never writes this gradient"
    ratio = a[big] / n[big]
    c = float(np.median(ratio))
    if np.allclose(ratio, c, rtol=1e-4) and abs(c - 1) > 1e-4:
        known = {
            -1.0: "the sign is flipped (p - y written as y - p?)",
            2.0: "twice too large (MSE's factor 2 counted twice, or a 1/2 dropped)",
            0.5: "half the true value (a 1/2 in the loss not matched in backward?)",
        }
        for value, text in known.items():
            if abs(c - value) < 1e-4 * abs(value):
                return f"analytic = {value:g} x numeric: {text}"
        if c > 1 and abs(c - round(c)) < 1e-4:
            return (
                f"analytic = {round(c)} x numeric: a missing 1/N (N = {round(c)} is "
                "often the batch size) or a sum where the loss takes a mean"
            )
        if c < 1 and abs(1 / c - round(1 / c)) < 1e-3:
            return (
                f"analytic = numeric / {round(1 / c)}: an extra 1/N or a mean where "
                "the loss takes a sum"
            )
        return f"analytic = {c:.4g} x numeric everywhere: a constant factor is wrong"
    if analytic.ndim == 2 and analytic.shape[0] == analytic.shape[1] and checked.all():
        if np.allclose(analytic, numeric.T, rtol=1e-5, atol=1e-10):
            return (
                "analytic equals the transpose of numeric: "
                "the weight gradient is transposed"
            )
    return ""


class _NotDeterministic(Exception):
    """f gave two values at one point; carries them."""

    def __init__(self, first: float, second: float) -> None:
        super().__init__(first, second)
        self.first, self.second = first, second


class _Objective:
    """A scalar f() of float64 arrays that the checks perturb in place.
    `bar`, a progress bar or None, advances once per evaluation."""

    bar = None

    def __init__(self, f) -> None:
        self.f = f

    def __call__(self) -> float:
        if self.bar is not None:
            self.bar.update()
        return float(self.f())


_PROGRESS_MIN_EVALUATIONS = 1000  # fewer evaluations of f never show a bar
_PROGRESS_DELAY_S = 0.5  # and a bar appears only once the check has run this long


def _evaluations(size: int, max_elements: int) -> int:
    """Evaluations of f one tensor's check makes when every entry agrees: f twice,
    the noise on both sides, two per entry and two for the projection."""
    return 2 + 2 * fd.NOISE_POINTS + 2 * min(size, max_elements) + 2


def _progress(arrays, max_elements: int):
    """A tqdm bar on stderr, counting evaluations of f, for a long check on a
    terminal; None otherwise (a pipe or a log file gets no bar)."""
    total = sum(_evaluations(np.size(a), max_elements) for a in arrays)
    if total < _PROGRESS_MIN_EVALUATIONS or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm  # imported only when a bar is shown

    return tqdm(
        total=total,
        desc="gradcheck",
        unit="eval",
        file=sys.stderr,
        leave=False,
        delay=_PROGRESS_DELAY_S,
    )


def _shape_mismatch_row(name, layer, value, analytic) -> GradcheckRow:
    got = "nothing" if analytic is None else f"shape {np.shape(analytic)}"
    return GradcheckRow(
        name,
        layer,
        value.shape,
        0,
        value.size,
        0,
        np.inf,
        None,
        np.nan,
        np.nan,
        np.inf,
        False,
        f"the analytic gradient has {got}, expected {value.shape} "
        "(a gradient always has the shape of what it differentiates)"
        + ("" if analytic is None else shape_hint(np.shape(analytic), value.shape)),
    )


def _check_tensor(
    objective, name, layer, value, analytic, eps, threshold, max_elements, rng
):
    """Compare analytic with central differences for the array `value` (perturbed in
    place and restored). Raises _NotDeterministic if f gives two values at the
    point."""
    if analytic is None or np.shape(analytic) != value.shape:
        return _shape_mismatch_row(name, layer, value, analytic)
    analytic = np.asarray(analytic, np.float64)
    total = value.size
    if total <= max_elements:
        flat_idx = np.arange(total)
    else:
        sample = rng.choice(total, size=max_elements - 1, replace=False)
        flat_idx = np.unique(np.append(sample, int(np.argmax(np.abs(analytic)))))
    f0 = objective()
    again = objective()  # before any difference: is f a function at all?
    if not fd.same_value(f0, again):
        raise _NotDeterministic(f0, again)
    sigma = fd.measured_noise(objective, value, eps)
    h = fd.step_for(f0, sigma, eps)
    # rounding error of a difference quotient
    # |f0| floored at 1: a loss near 0 is still built from numbers near 1 (logits,
    # log(1 + tiny)) whose rounding, about machine epsilon, its differences inherit;
    # there f is often constant (quantised), and measuring sigma would give 0.
    noise = max(_ROUNDING * max(abs(f0), 1.0), 8 * sigma) / h
    numeric = np.full(value.shape, np.nan)
    errors = np.zeros(len(flat_idx))
    raw = np.zeros(len(flat_idx))  # before the rounding allowance: breaks ties
    judged = np.ones(len(flat_idx), dtype=bool)  # False: on a kink, not confirmed
    failed = False
    for j, flat in enumerate(flat_idx):
        idx = np.unravel_index(flat, value.shape)
        original = value[idx]

        def move(t, idx=idx, original=original):
            value[idx] = original + t
            return objective()

        try:
            p = fd.probe(move, f0, h, analytic[idx], noise, 0.0, threshold)
        finally:
            value[idx] = original  # leave the tensor exactly as we found it
        if p.status == "kink":
            judged[j] = False
            continue
        numeric[idx] = p.numeric
        errors[j], raw[j] = p.error, p.raw
        failed |= p.status == "fail"
    # the whole tensor: the entries the sample skipped, in projections; when
    # every entry was sampled, one projection over those that passed, a last
    # consistency check (a kink it crosses leaves nothing unconfirmed)
    kink_idx = flat_idx[~judged]
    skipped = np.setdiff1d(np.arange(total), flat_idx)
    projection = fd.project_groups(
        objective,
        value,
        analytic,
        skipped if len(skipped) else flat_idx[judged],
        f0,
        h,
        noise,
        threshold,
        rng,
        budget=2 * max_elements + 4 if len(skipped) else 4,
        kinks=kink_idx,
    )
    uncovered = projection.uncovered if len(skipped) else ()
    unconfirmed = len(kink_idx) + len(uncovered)
    if judged.any():
        candidates = np.flatnonzero(judged & (errors == errors[judged].max()))
        j = int(candidates[np.argmax(raw[candidates])])
        worst = tuple(int(i) for i in np.unravel_index(flat_idx[j], value.shape))
        max_error = float(errors[j])
        a_w, n_w = float(analytic[worst]), float(numeric[worst])
    else:
        worst, max_error, a_w, n_w = None, 0.0, np.nan, np.nan
    passed = not failed and not projection.failed
    diagnosis = ""
    if not passed:
        diagnosis = _diagnose(analytic, numeric)
    checked = ~np.isnan(numeric)
    unresolved = bool(checked.any()) and bool(
        np.all(np.maximum(np.abs(analytic[checked]), np.abs(numeric[checked])) <= noise)
    )
    return GradcheckRow(
        name,
        layer,
        value.shape,
        int(judged.sum()),
        total,
        int((~judged).sum()),
        max_error,
        worst,
        a_w,
        n_w,
        projection.error,
        passed,
        diagnosis,
        float(np.linalg.norm(analytic)),
        noise,
        unresolved,
        float(raw[judged].max()) if judged.any() else 0.0,
        h,
        sigma,
        unconfirmed,
    )


def _unconfirmed_notes(rows: list[GradcheckRow], eps: float, threshold: float):
    """Say which rows passed without being confirmed, and where the measured
    noise of f widened the rounding allowance or the step."""
    notes = []
    names = [r.name for r in rows if r.unresolved]
    if names:
        notes.append(
            f"{', '.join(names)}: every gradient entry is below what finite "
            "differences resolve here, so these rows pass without being confirmed "
            "(check the model before training, or on examples it gets wrong)"
        )
    kinked = [
        r
        for r in rows
        if r.passed and r.unconfirmed and not r.unresolved and r.diagnosis != _AT_TIES
    ]
    if kinked:
        parts = []
        for r in kinked:
            where = [f"{r.kinks} sampled entries on a kink"] if r.kinks else []
            if r.unconfirmed > r.kinks:
                where.append(
                    f"{r.unconfirmed - r.kinks} unsampled ones whose projections "
                    "cross kinks or ran past the budget (max_elements)"
                )
            parts.append(f"{r.name} ({r.unconfirmed} of {r.total}: {'; '.join(where)})")
        notes.append(
            "entries on kinks, not confirmed: "
            + "; ".join(parts)
            + ". At a kink (a ReLU at exactly 0, equal values in a max-pool window) "
            "f has only one-sided derivatives, and finite differences cannot tell "
            "what backward should return there (nor where f bends too sharply "
            "for the step, which is counted the same way); these rows pass on "
            "the entries that could be checked"
        )
    wider = [r for r in rows if r.step > eps]
    if wider:
        notes.append(
            f"{', '.join(r.name for r in wider)}: f is far noisier than float64 "
            f"rounding (sigma {max(r.sigma for r in wider):.1e}: float32 arithmetic "
            "inside f, or cancellation?), so these rows were differenced with a "
            "larger step ("
            + ", ".join(f"{r.step:.1e}" for r in wider)
            + " instead of eps) and are confirmed only up to their resolution ("
            + ", ".join(f"{r.resolution:.1e}" for r in wider)
            + "), not to the threshold: compute f in float64 for a full check"
        )
    # ok* rows whose rounding allowance came from f's measured noise, not from
    # float64's own rounding of |f|: the allowance grew, and the report says so
    widened = [
        r
        for r in rows
        if r.step <= eps
        and r.passed
        and r.raw_error > threshold
        and r.sigma > 0
        and 8 * r.sigma / r.step >= r.resolution
    ]
    if widened:
        notes.append(
            f"{', '.join(r.name for r in widened)}: the rounding allowance is f's "
            "measured noise (8 sigma / eps = "
            + ", ".join(f"{r.resolution:.1e}" for r in widened)
            + "), larger than float64's rounding of |f| alone; f cancels (a "
            "confident model's log(1 + tiny)) or computes in lower precision"
        )
    return notes


def _to_float64(target: Layer) -> Layer:
    """A deep copy of target with every parameter and float buffer in float64.

    The check runs on this copy, so the model it was given keeps its parameters,
    buffers (running statistics), modes and random generators untouched."""
    clone = copy.deepcopy(target)
    for p in clone.parameters():
        p.data = np.array(p.data, dtype=np.float64)
        p.grad = np.zeros(p.shape)
    for layer in [clone, *(layer for _, layer in clone.named_layers())]:
        for name, value in layer.own_buffers().items():
            if np.asarray(value).dtype.kind == "f":  # buffers are attributes by name
                setattr(layer, name, np.array(value, dtype=np.float64))
    if hasattr(clone, "dtype"):
        clone.dtype = np.dtype(np.float64)
    return clone


class _Buffers:
    """Every buffer of a model (running statistics), put back before each
    evaluation of f: in training mode a BatchNorm updates them on every forward,
    and f must be the same function at every nudged point."""

    def __init__(self, model: Layer) -> None:
        layers = [model, *(layer for _, layer in model.named_layers())]
        self.saved = [
            (layer, name, np.array(value, copy=True))
            for layer in layers
            for name, value in layer.own_buffers().items()
        ]

    def restore(self) -> None:
        for layer, name, value in self.saved:
            layer.load_buffer(name, value)


def gradcheck(
    target,
    X=None,
    y=None,
    loss=None,
    *,
    grad=None,
    training: bool | None = None,
    eps: float = 1e-6,
    threshold: float = 1e-7,
    max_elements: int = 200,
    seed: int = 0,
) -> GradcheckReport:
    """Check the gradients of a model, a layer, or a function of named arrays.

    Model or layer: X is its input batch; with y and loss, f = loss(model(X), y);
    without, f = sum(model(X) * dout) for a fixed random dout. Rows: "input" and
    every parameter at every depth, by its qualified name ("0.weight",
    "2.block.0.bias"), each under the layer that holds it. When some rows fail,
    each layer is also checked alone on the input it saw, and so, for a failing
    layer that holds others, are the layers inside it: the report's notes name
    the deepest layers whose own backward disagrees with their forward (the
    faulty layers, "faulty layer 2.block.0 (Dense)"), or the composite layer
    itself when every layer inside it passes.

    training: which function of a model is checked. False (a Sequential's
    default) is the evaluation-mode function predict computes; True the
    training-mode one fit differentiates (BatchNorm normalises with the batch's
    statistics); None keeps a single layer's own `training` flag. The check runs
    on a float64 copy whose buffers are restored before every evaluation, so the
    model you pass keeps its running statistics and modes. A layer that draws
    new random numbers on every call (Dropout in training mode) makes f
    non-deterministic: the report then says it cannot check, naming the layer.

    Function: target(arrays) returns the loss for a dict of arrays; grad(arrays)
    returns your hand-written gradients as a dict with the same keys and shapes.
    Both receive float64 copies (float32 arrays are upcast, and the report says
    so).
    """
    # A stream of its own: with default_rng(seed) alone, a user's x drawn from
    # default_rng(0) would equal the random dout of a same-shaped output, and a
    # transposed weight gradient (x.T @ x is symmetric) would pass unnoticed.
    rng = np.random.default_rng([seed, 0x6C61])
    if training is not None and not isinstance(training, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"gradcheck: training must be True, False or None, got {training!r}"
        )
    if isinstance(target, Layer):
        return _check_layer(
            target, X, y, loss, eps, threshold, max_elements, rng, training=training
        )
    if callable(target):
        if not isinstance(X, dict) or grad is None or not callable(grad):
            raise ArgumentTypeError(
                "gradcheck(function, arrays, grad=grad_function): arrays must be a "
                "dict of NumPy arrays and grad a function returning a dict of "
                "gradients"
            )
        if training is not None:
            raise ArgumentTypeError(
                "gradcheck: training= applies to a model or a layer; a function "
                "of arrays computes whatever mode it is written for"
            )
        return _check_function(target, X, grad, eps, threshold, max_elements, rng)
    raise ArgumentTypeError(
        f"gradcheck: expected a Layer, a Sequential model or a loss function, got "
        f"{type(target).__name__}"
    )


def _check_layer(
    target,
    X,
    y,
    loss,
    eps,
    threshold,
    max_elements,
    rng,
    locate: bool = True,
    training: bool | None = None,
    ties: bool = True,
) -> GradcheckReport:
    """Rows for the input and every parameter at every depth; with `locate`, a
    failing check is followed by one per layer inside (see _faulty_layers);
    with `ties`, a failure seen beside kinks is first checked away from them
    (see _failed_only_at_ties)."""
    from glassnet.nn.losses import get_loss

    notes = []
    dtype = getattr(target, "dtype", None)
    params = target.parameters()
    if any(p.data.dtype != np.float64 for p in params) or (
        dtype is not None and dtype != np.float64
    ):
        notes.append("the model is not float64: the check ran on a float64 copy")
    model = _to_float64(target)
    x = _checked_input(X)
    ids = x.dtype.kind != "f" and _takes_ids(model)  # an Embedding's token ids
    if not ids:
        x = x.astype(np.float64, copy=False)  # integer features are differentiable
    if ids:
        notes.append(
            "the input holds integers (ids): it has no gradient, so there is no "
            "input row; every parameter is checked"
        )
    if not np.isfinite(x).all():
        from glassnet.errors import DataError

        raise DataError("gradcheck: X contains NaN or inf")
    if x.ndim < 1:
        raise ShapeError(f"gradcheck: X must be a batch of inputs, got shape {x.shape}")
    is_model = isinstance(model, Sequential)
    # the mode checked: a model's evaluation mode unless told; a layer's own flag
    mode = training if training is not None else (False if is_model else None)
    if mode is not None:
        model.set_training(mode)
    buffers = _Buffers(model)

    def forward(a):
        buffers.restore()  # the same function at every point
        return model.forward(a, training=mode) if is_model else model.forward(a)

    out = forward(x)
    if loss is not None:
        loss_fn = get_loss(loss)
        if y is None:
            raise ArgumentTypeError("gradcheck: a loss needs targets y")
        target_y = loss_fn.prepare_target(y, out.shape, np.float64)

        def f():  # the loss fit reports: the data term plus the layers' penalties
            return loss_fn.forward(forward(x), target_y) + total_penalty(model)

    else:
        weights = rng.standard_normal(out.shape)

        def f():  # <forward(x), w> (+ penalties) has gradient backward(w)
            return float(np.sum(forward(x) * weights)) + total_penalty(model)

    names = dict(model.named_parameters())
    layer_of = _holders(model)
    shapes = [] if ids else [("input", "", x.shape)]
    shapes += [(k, layer_of[k], p.shape) for k, p in names.items()]
    # is f a function at all? two forward passes, and f twice, at the same point
    out = np.array(out, dtype=np.float64, copy=True)
    if not _same_output(out, forward(x)) or not fd.same_value(f(), f()):
        return _not_deterministic(model, forward, x, shapes, threshold, eps, notes)
    dout = loss_fn.backward() if loss is not None else weights.copy()  # of f()
    dx = model.backward(dout)
    grads = {"input": None if dx is None else np.array(dx, dtype=np.float64)}
    for key, p in names.items():
        grads[key] = p.grad.copy()
    repeated = diagnose.accumulating(model, dout, names, grads)  # += instead of =
    objective = _Objective(f)
    objective.bar = _progress([x, *(p.data for p in names.values())], max_elements)
    tensors = [] if ids else [("input", "", x)]
    tensors += [(k, layer_of[k], p.data) for k, p in names.items()]
    rows = []
    try:
        for key, layer, value in tensors:
            rows.append(
                _check_tensor(
                    objective,
                    key,
                    layer,
                    value,
                    grads[key],
                    eps,
                    threshold,
                    max_elements,
                    rng,
                )
            )
    except _NotDeterministic:
        return _not_deterministic(model, forward, x, shapes, threshold, eps, notes)
    finally:
        if objective.bar is not None:
            objective.bar.close()
    for row in rows:
        if row.name in repeated:
            row.passed, row.diagnosis = False, diagnose.ACCUMULATES
    where = (model, forward, x)  # the point the layers are searched at
    if ties and any(r.unconfirmed for r in rows):
        # entries on kinks: check the same function off the ties, to confirm
        # what the point could not, and to tell a failure of the ties from one
        # of the formulas
        buffers.restore()
        moved = copy.deepcopy(model)
        for p in moved.parameters():
            p.data = p.data + _nudge(p.data, rng)
        moved_x = x if ids else x + _nudge(x, rng)  # ids stay what they are
        away = _check_layer(
            moved, moved_x, y, loss, eps, threshold, max_elements, rng,
            locate=False, training=mode, ties=False,
        )  # fmt: skip
        notes += _settle_ties(rows, away)
        if all(r.diagnosis.startswith(_OFF_TIES) for r in rows if not r.passed):
            moved_buffers = _Buffers(moved)

            def moved_forward(a):
                moved_buffers.restore()
                return moved.forward(a, training=mode) if is_model else moved(a)

            where = (moved, moved_forward, moved_x)
    notes += _unconfirmed_notes(rows, eps, threshold)
    report = GradcheckReport(rows, threshold, eps, notes)
    if not report.passed:  # name the classic mistake behind each failing row
        if not is_model:
            diagnose.refine_layer_rows(model, x, dout, grads, rows)
        report.notes.extend(diagnose.report_notes(rows))
    if locate and not report.passed and model.children():
        check = partial(
            _check_layer,
            y=None,
            loss=None,
            eps=eps,
            threshold=threshold,
            max_elements=max_elements,
            rng=rng,
            locate=False,
            training=mode,
        )
        report.notes.extend(_faulty_layers(*where, check, report))
    return report


def _takes_ids(model: Layer) -> bool:
    """Whether the layer that receives model's input takes integer ids (an
    Embedding, or any layer with takes_ids = True): the first layer along first
    children, as a Sequential feeds its input to its first layer."""
    layer = model
    while not getattr(layer, "takes_ids", False) and layer.children():
        layer = layer.children()[0][1]
    return bool(getattr(layer, "takes_ids", False))


def _checked_input(X) -> np.ndarray:
    """A float64 copy of X, or an int64 copy when X holds integers or booleans
    (token ids for an Embedding, never perturbed; any other layer gets them as
    floats, see _check_layer)."""
    try:
        a = np.asarray(X)
        if a.dtype.kind in "iub":
            return np.array(a, dtype=np.int64)
        return np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"gradcheck: X must be a numeric array ({exc})"
        ) from None


def _nudge(a: np.ndarray, rng) -> np.ndarray:
    """Random noise of 1 % of a's scale (its root mean square, or 1 if it is all
    zero): enough to move every exact tie far beyond a difference step."""
    scale = float(np.sqrt(np.mean(np.square(a)))) if a.size else 0.0
    return 0.01 * (scale or 1.0) * rng.standard_normal(np.shape(a))


_AT_TIES = "not confirmed: disagrees only at exact ties (see the notes)"
_OFF_TIES = "off the ties"


def _settle_ties(rows: list[GradcheckRow], away: GradcheckReport) -> list[str]:
    """Judge the rows with entries on kinks by `away`, the same check at a point
    moved off the ties; return the notes saying what changed.

    A row that fails here but passes there is not failed: where many units sit
    exactly on their kinks (zero biases on a constant background), their
    one-sided slopes can cancel along the direction probed, so the kink is
    invisible there, and yet backward, taking each layer's derivative at its
    kink by convention (ReLU'(0) = 0), need not give the derivative of the
    whole; the row is left unconfirmed. A row that passed here only partly
    confirmed (or not at all) but fails there is failed, with the numbers of
    the check that judged it: its formula is wrong away from any tie.
    """
    if away.cannot_check:
        return []
    forgiven, failed, confirmed = [], [], []
    for i, (r, a) in enumerate(zip(rows, away.rows, strict=True)):
        if not r.passed and r.diagnosis != diagnose.ACCUMULATES and a.passed:
            r.passed, r.unconfirmed, r.diagnosis = True, r.total, _AT_TIES
            forgiven.append(r.name)
        elif r.passed and r.unconfirmed and not a.passed:
            a.diagnosis = f"{_OFF_TIES}: " + (a.diagnosis or "fails at the moved point")
            rows[i] = a
            failed.append(r.name)
        elif r.passed and r.unconfirmed and a.confirmed:
            confirmed.append(r.name)
    moved = "every array moved by 1 % of its scale"
    notes = []
    if forgiven:
        notes.append(
            f"{', '.join(forgiven)}: these rows disagree with finite differences "
            f"only at exact ties: off them ({moved}) the same check passes. At "
            "the point itself units sit exactly on their kinks, where backward's "
            "value is a convention (ReLU'(0) = 0) that need not be the derivative "
            "of the whole, so these rows are not confirmed there"
        )
    if failed:
        notes.append(
            f"{', '.join(failed)}: could not be confirmed here (entries on kinks) "
            f"and fail at a point off the ties ({moved}); their rows show that "
            "check, and the layers are searched there"
        )
    if confirmed:
        notes.append(
            f"{', '.join(confirmed)}: at a point off the ties ({moved}) every "
            "entry of these rows is confirmed; at the point itself the entries "
            "on kinks are not"
        )
    return notes


def _same_output(a, b) -> bool:
    """Two forward passes on the same input agree (up to float64 rounding)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    scale = _ROUNDING * max(float(np.max(np.abs(a), initial=0.0)), 1.0)
    with np.errstate(invalid="ignore"):
        return bool(np.all((np.abs(a - b) <= scale) | (np.isnan(a) & np.isnan(b))))


def _cannot_check(shapes, threshold, eps, notes, reason) -> GradcheckReport:
    """A report whose rows could not be checked at all, and why."""
    rows = [
        GradcheckRow(
            name,
            layer,
            shape,
            0,
            int(np.prod(shape)),
            0,
            np.nan,
            None,
            np.nan,
            np.nan,
            np.nan,
            False,
            "not checked: f is not deterministic",
        )  # fmt: skip
        for name, layer, shape in shapes
    ]
    return GradcheckReport(rows, threshold, eps, notes, cannot_check=reason)


_RANDOM = (
    "the function is not deterministic: evaluated twice at the same point it gave "
    "two values, and finite differences of such an f measure its randomness, not "
    "its gradient"
)


def _not_deterministic(model, forward, x, shapes, threshold, eps, notes):
    """The report for a model whose f gave two values at one point: the reason
    names the layers whose forward is not repeatable."""
    inputs = _inputs_seen(model, forward, x)
    inputs.setdefault(id(model), x)
    reason = _RANDOM
    random = diagnose.random_layers(model, inputs)
    if random:
        named = ", ".join(
            f"{path} ({type(layer).__name__})" if path else type(layer).__name__
            for path, layer in random
        )
        reason += f"; {named} returns different outputs for the same input"
    reason += (
        " (Dropout in training mode? check in evaluation mode, training=False, "
        "or make the layer repeatable: a fixed mask, or rate 0)"
    )
    return _cannot_check(shapes, threshold, eps, notes, reason)


def _holders(model: Layer) -> dict[str, str]:
    """{qualified parameter name: the layer that holds it}, "1.block.0 Dense",
    or the checked layer's class for its own parameters."""
    holders = {p.name: type(model).__name__ for p in model.own_parameters()}
    for path, layer in model.named_layers():
        for p in layer.own_parameters():
            holders[f"{path}.{p.name}"] = f"{path} {type(layer).__name__}"
    return holders


def _inputs_seen(model: Layer, forward, x: np.ndarray) -> dict[int, np.ndarray]:
    """The input every layer below model receives in one forward pass of x, by
    id(layer). Each layer's forward is wrapped for that pass (an instance
    attribute shadowing the method) and restored after it, so any composite
    layer, a user's own included, is seen from inside."""
    seen: dict[int, np.ndarray] = {}
    layers = [layer for _, layer in model.named_layers()]
    missing = object()
    saved = [vars(layer).get("forward", missing) for layer in layers]

    def recording(layer, forward_of_layer):
        def forward_and_record(a, *args, **kwargs):
            seen.setdefault(id(layer), _checked_input(a))
            return forward_of_layer(a, *args, **kwargs)

        return forward_and_record

    try:
        for layer in layers:
            layer.forward = recording(layer, layer.forward)
        forward(x)
    finally:
        for layer, before in zip(layers, saved, strict=True):
            if before is missing:
                del layer.forward
            else:
                layer.forward = before
    return seen


def _faulty_layers(model: Layer, forward, x, check, report) -> list[str]:
    """Check every layer below model alone, on the input it saw; name the deepest
    ones whose own backward disagrees with their own forward.

    A failing layer that holds others has them checked in turn; when all of
    them pass, the fault is its own backward (how it combines theirs), and it
    is named itself; so is the checked layer when every layer inside it passes.
    A Sequential is never named: its backward only chains its layers'.
    """
    inputs = _inputs_seen(model, forward, x)
    faulty: list[tuple[str, Layer, GradcheckReport]] = []

    def visit(path: str, layer: Layer) -> bool:
        a = inputs.get(id(layer))
        if a is None:  # never called in this forward pass
            return False
        sub = check(layer, a)
        if sub.passed:
            return False
        inner = [visit(f"{path}.{n}", child) for n, child in layer.children()]
        if not any(inner) and type(layer) is not Sequential:
            faulty.append((path, layer, sub))
        return True

    found = [visit(name, child) for name, child in model.children()]
    if not any(found) and type(model) is not Sequential:
        faulty.append(("", model, report))
    notes = []
    for path, layer, sub in faulty:
        prefix = f"{path}." if path else ""
        bad = ", ".join(
            (r.name if r.name == "input" else prefix + r.name)
            + (f" ({r.diagnosis})" if r.diagnosis else "")
            for r in sub.failures()
        )
        where = f"{path} ({type(layer).__name__})" if path else type(layer).__name__
        note = (
            f"faulty layer {where}: its backward disagrees with its own forward "
            f"for {bad}"
        )
        if layer.children():
            note += (
                "; every layer inside it passes on its own, so the mistake is in "
                "how its backward combines theirs"
            )
        notes.append(note)
    blamed = [f"{path}." for path, _, _ in faulty]
    downstream = [
        r.name
        for r in report.failures()
        if not any(r.name.startswith(path) for path in blamed)
    ]
    if faulty and "." not in blamed and downstream:
        notes.append(
            f"{', '.join(downstream)}: these rows fail only because the faulty "
            "layer's wrong gradient flows back through them"
        )
    if not faulty:
        notes.append(
            "no layer fails when checked alone on the input it saw, so the "
            "disagreement arises between layers: in the loss's backward (a loss "
            "of your own?), or where units sit exactly on their kinks and their "
            "one-sided slopes cancel (exact ties in the data or the weights)"
        )
    return notes


def _check_function(
    f, arrays, grad, eps, threshold, max_elements, rng, ties: bool = True
) -> GradcheckReport:
    tensors, notes = {}, []
    for key, value in arrays.items():
        try:
            tensors[key] = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(
                f"gradcheck: array {key!r} is not numeric ({exc})"
            ) from None
    upcast = {k: str(np.asarray(v).dtype) for k, v in arrays.items()}
    upcast = {k: d for k, d in upcast.items() if d != "float64"}
    if upcast:
        listed = ", ".join(f"{k!r} ({d})" for k, d in upcast.items())
        notes.append(
            f"arrays {listed} are not float64: f and grad received float64 copies "
            "(the check runs in float64; a float32 f would drown the differences "
            "in its rounding)"
        )
    analytic = grad({k: v.copy() for k, v in tensors.items()})
    if not isinstance(analytic, dict):
        raise ArgumentTypeError(
            f"gradcheck: grad must return a dict of arrays keyed like the inputs, got "
            f"{type(analytic).__name__}"
        )
    value = f(tensors)
    kind = np.asarray(value).dtype
    if kind.kind == "f" and kind != np.float64:
        notes.append(
            f"f returns {kind}: its rounding error limits what finite differences "
            "resolve (return the loss in float64 for a full check)"
        )
    shapes = [(k, "", v.shape) for k, v in tensors.items()]
    random = (
        _RANDOM + " (random numbers drawn inside f? draw them once, outside it, "
        "or from a generator seeded inside f)"
    )
    if not fd.same_value(float(value), float(f(tensors))):
        return _cannot_check(shapes, threshold, eps, notes, random)
    objective = _Objective(lambda: f(tensors))
    objective.bar = _progress(tensors.values(), max_elements)
    rows = []
    try:
        for key, value in tensors.items():
            a = analytic.get(key)
            rows.append(
                _check_tensor(
                    objective, key, "", value, a, eps, threshold, max_elements, rng
                )
            )
    except _NotDeterministic:
        return _cannot_check(shapes, threshold, eps, notes, random)
    finally:
        if objective.bar is not None:
            objective.bar.close()
    if ties and any(r.unconfirmed for r in rows):  # see _settle_ties
        moved = {k: v + _nudge(v, rng) for k, v in tensors.items()}
        away = _check_function(
            f, moved, grad, eps, threshold, max_elements, rng, ties=False
        )
        notes += _settle_ties(rows, away)
    if set(analytic) - set(tensors):
        notes.append(
            "grad returned keys not among the arrays: "
            f"{sorted(set(analytic) - set(tensors))}"
        )
    return GradcheckReport(
        rows, threshold, eps, notes + _unconfirmed_notes(rows, eps, threshold)
    )
