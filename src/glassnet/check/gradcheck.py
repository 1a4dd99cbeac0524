"""gradcheck: compare analytic gradients with central finite differences.

    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    report = gn.gradcheck(layer, x)                 # <forward(x), dout> for random dout
    report = gn.gradcheck(loss_fn, arrays, grad=grad_fn)   # your own backprop

The check runs in float64 on a copy (a float32 model is upcast; the report says
so). For every tensor (the input and each parameter) it perturbs up to
`max_elements` entries one at a time (all of a small tensor; a fixed-seed sample
of a large one, always including the largest analytic entry) and compares

    numeric = (f(w + eps) - f(w - eps)) / (2 eps)

with the analytic value, plus one whole-tensor projection: for a random
direction u, (f(w + eps u) - f(w - eps u)) / (2 eps) against sum(grad * u).
The error of an entry is |a - n| / (|a| + |n|), after subtracting the rounding
error a finite difference of f cannot avoid: 8 * machine epsilon * max(|f|, 1) / eps, or
8 sigma / eps if larger, where sigma is f's rounding noise measured per tensor
(8 sigma: the 6th-difference estimate of sigma from 16 points can be low by a
factor of 2 to 3, and a correct, confident model must not fail on noise).
An entry where the forward and backward one-sided differences disagree sharply
sits on a kink (ReLU at 0, a max-pool tie): it is counted and excluded.
"""

import copy
import sys
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from glassnet.check import diagnosis as diagnose
from glassnet.errors import ArgumentTypeError, ShapeError
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.containers import Sequential
from glassnet.nn.parameter import shape_hint

_ROUNDING = 8 * np.finfo(np.float64).eps  # per unit of |f|
_NOISE_POINTS = 16  # evaluations of f (one of them f0) that measure its noise
_GAMMA6 = 518400 / 479001600  # (6!)^2 / 12!: 6th differences of noise -> variance


@dataclass
class GradcheckRow:
    """One tensor's result. name: "input", "0.weight", or your array's key."""

    name: str
    layer: str
    shape: tuple
    checked: int
    total: int
    kinks: int
    max_error: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    projection_error: float
    passed: bool
    diagnosis: str = ""
    grad_norm: float = float("nan")  # L2 norm of the analytic gradient (gradient flow)
    resolution: float = 0.0  # smallest difference the finite differences can resolve
    unresolved: bool = False  # every entry at or below that resolution
    raw_error: float = 0.0  # max |a - n| / (|a| + |n|) before the rounding allowance


@dataclass
class GradcheckReport:
    """Rows of a gradient check, printable as a table; `passed` is the verdict.

    A row whose every gradient entry is smaller than the finite differences can
    resolve (a very confident, well-trained model) passes, and a note says that
    the check could not confirm it: check such a model before training, or on
    harder examples.
    """

    rows: list[GradcheckRow]
    threshold: float
    eps: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def worst(self) -> GradcheckRow:
        """The row with the largest error (entry-wise or projection)."""
        return max(self.rows, key=lambda r: max(r.max_error, r.projection_error))

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
            "threshold": self.threshold,
            "eps": self.eps,
            "notes": list(self.notes),
            "rows": [asdict(row) for row in self.rows],
        }

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "tensor",
            "layer",
            "shape",
            "checked",
            "kinks",
            "max rel err",
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
                    f"{r.raw_error:.2e}",
                    str(r.worst_index) if r.worst_index is not None else "-",
                    f"{r.analytic:+.6e}",
                    f"{r.numeric:+.6e}",
                    f"{r.projection_error:.2e}",
                    ("ok" if r.raw_error <= self.threshold else "ok*")
                    if r.passed
                    else "FAIL",
                ]
            )
        return header, body

    def __str__(self) -> str:
        header, body = self._table()
        widths = [
            max(len(h), *(len(row[i]) for row in body)) if body else len(h)
            for i, h in enumerate(header)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            for row in body
        ]
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(
            f"gradcheck {verdict}: threshold {self.threshold:g} on max relative error, "
            f"eps {self.eps:g}, float64"
        )
        if any(r.passed and r.raw_error > self.threshold for r in self.rows):
            lines.append(
                "ok*: above the threshold, but by less than the rounding error "
                "finite differences cannot avoid here (GradcheckRow.resolution)"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"{r.name}: {r.diagnosis}" for r in self.rows if r.diagnosis]
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
        verdict = "PASSED" if self.passed else "FAILED"
        return f"<table><tr>{head}</tr>{rows}</table><p>gradcheck {verdict}</p>{notes}"


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


def _progress(arrays, max_elements: int):
    """A tqdm bar on stderr, counting evaluations of f, for a long check on a
    terminal; None otherwise (a pipe or a log file gets no bar)."""
    total = sum(2 * min(np.size(a), max_elements) + 2 + _NOISE_POINTS for a in arrays)
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


def _measured_noise(objective, value: np.ndarray, f0: float, eps: float) -> float:
    """Standard deviation of f's rounding noise near `value`, measured as ECnoise
    does (More and Wild, 2011): f at points eps apart (per entry) along a fixed
    random direction, the step the differences take. Over such small steps f is a
    polynomial to machine precision, so its 6th differences are rounding alone.
    It matters where f cancels: a confident softmax cross-entropy computes
    log(1 + tiny), whose error is machine epsilon, not machine epsilon * |f|, and
    a well-trained model would otherwise fail. (Much smaller steps would miss it:
    there f is often constant, quantised, rather than noisy.)"""
    u = np.random.default_rng(0).standard_normal(value.shape) * eps
    saved = value.copy()
    fs = np.full(_NOISE_POINTS, f0)
    try:
        for k in range(1, _NOISE_POINTS):
            value[...] = saved + k * u
            fs[k] = objective()
    finally:
        value[...] = saved
    return float(np.sqrt(_GAMMA6 * np.mean(np.diff(fs, n=6) ** 2)))


def _check_tensor(
    objective, name, layer, value, analytic, eps, threshold, max_elements, rng
):
    """Compare analytic with central differences for the array `value` (perturbed in
    place and restored)."""
    if analytic is None or np.shape(analytic) != value.shape:
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
    analytic = np.asarray(analytic, np.float64)
    total = value.size
    if total <= max_elements:
        flat_idx = np.arange(total)
    else:
        sample = rng.choice(total, size=max_elements - 1, replace=False)
        flat_idx = np.unique(np.append(sample, int(np.argmax(np.abs(analytic)))))
    f0 = objective()
    sigma = _measured_noise(objective, value, f0, eps)
    # rounding error of a difference quotient
    # |f0| floored at 1: a loss near 0 is still built from numbers near 1 (logits,
    # log(1 + tiny)) whose rounding, about machine epsilon, its differences inherit;
    # there f is often constant (quantised), and measuring sigma would give 0.
    noise = max(_ROUNDING * max(abs(f0), 1.0), 8 * sigma) / eps
    numeric = np.full(value.shape, np.nan)
    errors = np.zeros(len(flat_idx))
    raw = np.zeros(len(flat_idx))  # before the rounding allowance: picks the worst
    kinks = 0
    for j, flat in enumerate(flat_idx):
        idx = np.unravel_index(flat, value.shape)
        original = value[idx]
        try:
            value[idx] = original + eps
            f_plus = objective()
            value[idx] = original - eps
            f_minus = objective()
        finally:
            value[idx] = original  # leave the tensor exactly as we found it
        forward, backward = (f_plus - f0) / eps, (f0 - f_minus) / eps
        jump = abs(forward - backward)
        if jump > 1e-3 * (abs(forward) + abs(backward)) + 4 * noise + 1e-5:
            kinks += 1
            errors[j] = -1.0  # excluded
            continue
        n = (f_plus - f_minus) / (2 * eps)
        numeric[idx] = n
        a = analytic[idx]
        raw[j] = abs(a - n) / max(abs(a) + abs(n), 1e-300)
        errors[j] = max(0.0, abs(a - n) - noise) / max(abs(a) + abs(n), 1e-300)
    # one whole-tensor projection: catches errors in entries the sample skipped
    u = rng.standard_normal(value.shape)
    # entries found on a kink stay still: across a kink the projection would
    # compare the two one-sided slopes, which disagree by design
    u.flat[flat_idx[errors < 0]] = 0.0
    saved = value.copy()
    try:
        value += eps * u
        f_plus = objective()
        value[...] = saved - eps * u
        f_minus = objective()
    finally:
        value[...] = saved
    n_proj, a_proj = (f_plus - f_minus) / (2 * eps), float(np.sum(analytic * u))
    proj_noise = noise * np.sqrt(total)
    # relative to the terms summed, not only to their sum: a random u can make
    # sum(analytic * u) cancel to almost nothing, and rounding noise would then fail
    # a correct gradient (seen on a confident model: two near-equal entries and
    # u ~ (-1, 1))
    terms = float(np.sum(np.abs(analytic * u)))
    proj_error = max(0.0, abs(a_proj - n_proj) - proj_noise) / max(
        abs(a_proj) + abs(n_proj), terms, 1e-300
    )
    if kinks:
        proj_error = (
            0.0 if proj_error < 1e-3 else proj_error
        )  # kinks blur the projection
    valid = errors >= 0
    if valid.any():
        # the largest error; among entries all within the rounding allowance (error
        # 0), the one whose raw difference is largest, so "worst at" means something
        candidates = np.flatnonzero(valid & (errors == errors[valid].max()))
        j = int(candidates[np.argmax(raw[candidates])])
        worst = tuple(int(i) for i in np.unravel_index(flat_idx[j], value.shape))
        max_error = float(errors[j])
        a_w, n_w = float(analytic[worst]), float(numeric[worst])
    else:
        worst, max_error, a_w, n_w = None, 0.0, np.nan, np.nan
    passed = max_error <= threshold and proj_error <= max(
        threshold, 1e-6 if kinks else threshold
    )
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
        int(valid.sum()),
        total,
        kinks,
        max_error,
        worst,
        a_w,
        n_w,
        proj_error,
        passed,
        diagnosis,
        float(np.linalg.norm(analytic)),
        noise,
        unresolved,
        float(raw[valid].max()) if valid.any() else 0.0,
    )


def _unresolved_notes(rows: list[GradcheckRow]) -> list[str]:
    names = [r.name for r in rows if r.unresolved]
    if not names:
        return []
    return [
        f"{', '.join(names)}: every gradient entry is below what finite differences "
        "resolve here, so these rows pass without being confirmed (check the model "
        "before training, or on examples it gets wrong)"
    ]


def _to_float64(target: Layer) -> Layer:
    """A deep copy of target with every parameter in float64."""
    clone = copy.deepcopy(target)
    for p in clone.parameters():
        p.data = np.array(p.data, dtype=np.float64)
        p.grad = np.zeros(p.shape)
    if hasattr(clone, "dtype"):
        clone.dtype = np.dtype(np.float64)
    return clone


def gradcheck(
    target,
    X=None,
    y=None,
    loss=None,
    *,
    grad=None,
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

    Function: target(arrays) returns the loss for a dict of arrays; grad(arrays)
    returns your hand-written gradients as a dict with the same keys and shapes.
    """
    # A stream of its own: with default_rng(seed) alone, a user's x drawn from
    # default_rng(0) would equal the random dout of a same-shaped output, and a
    # transposed weight gradient (x.T @ x is symmetric) would pass unnoticed.
    rng = np.random.default_rng([seed, 0x6C61])
    if isinstance(target, Layer):
        return _check_layer(target, X, y, loss, eps, threshold, max_elements, rng)
    if callable(target):
        if not isinstance(X, dict) or grad is None or not callable(grad):
            raise ArgumentTypeError(
                "gradcheck(function, arrays, grad=grad_function): arrays must be a "
                "dict of NumPy arrays and grad a function returning a dict of "
                "gradients"
            )
        return _check_function(target, X, grad, eps, threshold, max_elements, rng)
    raise ArgumentTypeError(
        f"gradcheck: expected a Layer, a Sequential model or a loss function, got "
        f"{type(target).__name__}"
    )


def _check_layer(
    target, X, y, loss, eps, threshold, max_elements, rng, locate: bool = True
) -> GradcheckReport:
    """Rows for the input and every parameter at every depth; with `locate`, a
    failing check is followed by one per layer inside (see _faulty_layers)."""
    from glassnet.nn.losses import get_loss

    notes = []
    dtype = getattr(target, "dtype", None)
    params = target.parameters()
    if any(p.data.dtype != np.float64 for p in params) or (
        dtype is not None and dtype != np.float64
    ):
        notes.append("the model is not float64: the check ran on a float64 copy")
    model = _to_float64(target)
    try:
        x = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"gradcheck: X must be a numeric array ({exc})"
        ) from None
    if not np.isfinite(x).all():
        from glassnet.errors import DataError

        raise DataError("gradcheck: X contains NaN or inf")
    if x.ndim < 1:
        raise ShapeError(f"gradcheck: X must be a batch of inputs, got shape {x.shape}")
    is_model = hasattr(model, "layers")
    forward = (
        (lambda a: model.forward(a, training=False)) if is_model else model.forward
    )
    out = forward(x)
    if loss is not None:
        loss_fn = get_loss(loss)
        if y is None:
            raise ArgumentTypeError("gradcheck: a loss needs targets y")
        target_y = loss_fn.prepare_target(y, out.shape, np.float64)

        def f():
            return loss_fn.forward(forward(x), target_y)

        f()
        dout = loss_fn.backward()
    else:
        weights = rng.standard_normal(out.shape)

        def f():  # <forward(x), w> has gradient backward(w)
            return float(np.sum(forward(x) * weights))

        f()
        dout = weights.copy()
    dx = model.backward(dout)
    grads = {"input": None if dx is None else np.array(dx, dtype=np.float64)}
    names = dict(model.named_parameters())
    layer_of = _holders(model)
    for key, p in names.items():
        grads[key] = p.grad.copy()
    repeated = diagnose.accumulating(model, dout, names, grads)  # += instead of =
    objective = _Objective(f)
    objective.bar = _progress([x, *(p.data for p in names.values())], max_elements)
    rows = [
        _check_tensor(
            objective, "input", "", x, grads["input"], eps, threshold, max_elements, rng
        )
    ]
    for key, p in names.items():
        layer = layer_of[key]
        rows.append(
            _check_tensor(
                objective,
                key,
                layer,
                p.data,
                grads[key],
                eps,
                threshold,
                max_elements,
                rng,
            )
        )
    if objective.bar is not None:
        objective.bar.close()
    for row in rows:
        if row.name in repeated:
            row.passed, row.diagnosis = False, diagnose.ACCUMULATES
    report = GradcheckReport(rows, threshold, eps, notes + _unresolved_notes(rows))
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
        )
        report.notes.extend(_faulty_layers(model, forward, x, check, report))
    return report


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
            seen.setdefault(id(layer), np.array(a, dtype=np.float64))
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
    return notes


def _check_function(
    f, arrays, grad, eps, threshold, max_elements, rng
) -> GradcheckReport:
    tensors = {}
    for key, value in arrays.items():
        try:
            tensors[key] = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(
                f"gradcheck: array {key!r} is not numeric ({exc})"
            ) from None
    analytic = grad({k: v.copy() for k, v in tensors.items()})
    if not isinstance(analytic, dict):
        raise ArgumentTypeError(
            f"gradcheck: grad must return a dict of arrays keyed like the inputs, got "
            f"{type(analytic).__name__}"
        )
    objective = _Objective(lambda: f(tensors))
    objective.bar = _progress(tensors.values(), max_elements)
    rows = []
    for key, value in tensors.items():
        a = analytic.get(key)
        rows.append(
            _check_tensor(
                objective, key, "", value, a, eps, threshold, max_elements, rng
            )
        )
    if objective.bar is not None:
        objective.bar.close()
    notes = (
        [
            "grad returned keys not among the arrays: "
            f"{sorted(set(analytic) - set(tensors))}"
        ]
        if set(analytic) - set(tensors)
        else []
    )
    return GradcheckReport(rows, threshold, eps, notes + _unresolved_notes(rows))
