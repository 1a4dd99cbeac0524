"""Plots of training and of what a network learned (the [plot] extra).

    import glassnet as gn

    fig = gn.plot.history(history)                    # loss and metric curves
    fig = gn.plot.decision_boundary(model, X, y)      # 2-D data: class regions
    fig = gn.plot.filters(model[0])                   # a Conv2D's weights
    fig = gn.plot.gradient_flow(gn.gradcheck(model, X, y, loss=...))
    fig.savefig("plot.png")

Each function returns a matplotlib Figure drawn with the Agg backend directly
(never pyplot), so it works without a display and leaves pyplot's global state
alone. In Jupyter the figure shows itself as a PNG image when it is a cell's
value, in a fresh kernel and without %matplotlib (it is a PlotFigure, a Figure
with _repr_png_). matplotlib is imported only when glassnet.plot is first used.
"""

import csv
import math
import os
from collections.abc import Mapping

import numpy as np

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "glassnet.plot needs matplotlib; install it with pip install 'glassnet[plot]'"
    ) from exc

from glassnet._validation import as_float_array
from glassnet.errors import ArgumentTypeError, DataError, ShapeError

__all__ = ["PlotFigure", "decision_boundary", "filters", "gradient_flow", "history"]

# a colour per class, the same in the regions and in the points
_CLASS_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


class PlotFigure(Figure):
    """A matplotlib Figure that Jupyter and IPython show as a PNG image.

    A Figure made without pyplot has no image view until pyplot's inline
    backend registers one, so a fresh kernel showed only "<Figure size ...>";
    _repr_png_ draws it into a PNG. Everything else is matplotlib's Figure.
    """

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _figure(figsize: tuple[float, float], dpi: float = 100) -> PlotFigure:
    fig = PlotFigure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)  # attaches itself: savefig and draw work headless
    return fig


# -- history ------------------------------------------------------------------------


def _history_columns(history) -> tuple[np.ndarray, dict[str, list[float]]]:
    """(epoch numbers starting at 1, {"loss": [...], "val_loss": [...], ...})."""
    epochs = None
    if isinstance(history, (str, os.PathLike)):  # a history CSV, one row per epoch
        with open(history, newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns = {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {})}
        if "epoch" in columns:
            epochs = np.asarray(columns.pop("epoch")) + 1
    elif isinstance(history, Mapping):
        columns = dict(history)
    elif isinstance(getattr(history, "history", None), Mapping):  # History, Keras
        columns = dict(history.history)
        if getattr(history, "epoch", None):
            epochs = np.asarray(history.epoch) + 1
    elif isinstance(getattr(history, "history_", None), Mapping):  # GlassClassifier
        columns = dict(history.history_)
    else:
        raise ArgumentTypeError(
            "plot.history: expected a History (from fit), a dict of per-epoch lists "
            f"or a history CSV path, got {type(history).__name__}"
        )
    columns = {k: list(v) for k, v in columns.items() if k != "lr"}
    n = max((len(v) for v in columns.values()), default=0)
    if n == 0:
        raise DataError("plot.history: the history holds no epochs")
    if epochs is None or len(epochs) != n:
        epochs = np.arange(1, n + 1)
    return epochs, columns


def history(history, *, figsize: tuple[float, float] | None = None) -> Figure:
    """Training curves: one panel per quantity (loss first, then each metric),
    the training value and, when present, the validation value ("val_...").

    history: the History fit returns, its .history dict, an estimator's
    history_, or the path of a history CSV (a column per quantity; an "epoch"
    column, if any, gives the x axis).
    """
    epochs, columns = _history_columns(history)
    names = [k for k in columns if not k.startswith("val_")]
    names += [k[4:] for k in columns if k.startswith("val_") and k[4:] not in names]
    names.sort(key=lambda k: (k != "loss", k))  # loss first, then alphabetical
    fig = _figure(figsize or (4.5 * len(names), 3.5))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        for key, label, style in (
            (name, "train", "-"),
            (f"val_{name}", "validation", "--"),
        ):
            if key in columns:
                values = columns[key]
                ax.plot(epochs[: len(values)], values, style, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if name == "loss" and min(min(v) for v in columns.values() if v) > 0:
            ax.set_yscale("log")  # losses fall by orders of magnitude
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


# -- decision boundary ---------------------------------------------------------------


def _label_indices(model, y, K: int) -> np.ndarray:
    """Row labels as class indices 0..K-1 (the columns of predict_proba)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == K and K > 1:  # one-hot rows
        return y.argmax(axis=1)
    y = y.reshape(-1)
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = np.arange(max(K, 2))  # a glassnet model: labels are 0..K-1
    index = np.searchsorted(classes, y)
    index = np.clip(index, 0, len(classes) - 1)
    if not np.array_equal(np.asarray(classes)[index], y):
        raise DataError(
            f"plot.decision_boundary: y holds labels {np.setdiff1d(y, classes)[:5]} "
            f"that are not among the model's classes {list(classes)}"
        )
    return index


def _scores(model, points: np.ndarray) -> tuple[np.ndarray, bool]:
    """(values, is_classifier): class probabilities (P, K), or regression outputs."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(points), dtype=np.float64), True
    if hasattr(model, "predict"):
        out = np.asarray(model.predict(points), dtype=np.float64)
        return out.reshape(len(points), -1), False
    raise ArgumentTypeError(
        "plot.decision_boundary: model needs predict_proba or predict, got "
        f"{type(model).__name__}"
    )


def decision_boundary(
    model,
    X,
    y=None,
    *,
    resolution: int = 200,
    figsize: tuple[float, float] = (5.0, 4.5),
) -> Figure:
    """Regions of the 2-D plane each class wins, with the data on top.

    model: a glassnet Sequential or a scikit-learn style estimator with
    predict_proba (a regressor's predict is drawn as a heat map instead).
    X: (N, 2) points; y: (N,) labels (0..K-1 for a glassnet model, or values of
    the estimator's classes_), or one-hot (N, K), or None for uncoloured points.
    The plane is sampled on a resolution x resolution grid around X; for two
    classes the p = 0.5 contour is drawn as a line.
    """
    X = as_float_array(X, "plot.decision_boundary X", np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or len(X) == 0:
        raise ShapeError(
            f"plot.decision_boundary: X must be points of shape (N, 2), got {X.shape}"
        )
    if y is not None and len(y) != len(X):
        raise ShapeError(
            f"plot.decision_boundary: y must have {len(X)} rows (one per point), "
            f"got {len(y)}"
        )
    low, high = X.min(axis=0), X.max(axis=0)
    pad = np.where(high > low, 0.1 * (high - low), 0.5)
    g0 = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)  # (R,)
    g1 = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)  # (R,)
    xx, yy = np.meshgrid(g0, g1)  # (R, R) each
    grid = np.column_stack([xx.ravel(), yy.ravel()])  # (R*R, 2)
    values, is_classifier = _scores(model, grid)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    if is_classifier:
        K = values.shape[1]
        colours = [_CLASS_COLOURS[k % len(_CLASS_COLOURS)] for k in range(K)]
        winner = values.argmax(axis=1).reshape(xx.shape)  # (R, R) class indices
        levels = np.arange(K + 1) - 0.5
        ax.contourf(
            xx, yy, winner, levels=levels, cmap=ListedColormap(colours), alpha=0.3
        )
        if K == 2:
            ax.contour(xx, yy, values[:, 1].reshape(xx.shape), levels=[0.5], colors="k")
        point_colours = (
            "0.3" if y is None else [colours[k] for k in _label_indices(model, y, K)]
        )
    else:
        surface = ax.contourf(
            xx, yy, values[:, 0].reshape(xx.shape), levels=20, cmap="viridis"
        )
        fig.colorbar(surface, ax=ax)
        point_colours = (
            "0.3" if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
        )
    ax.scatter(X[:, 0], X[:, 1], c=point_colours, s=18, edgecolors="k", linewidths=0.5)
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    fig.tight_layout()
    return fig


# -- convolution filters -------------------------------------------------------------


def filters(
    layer,
    *,
    max_filters: int = 64,
    figsize: tuple[float, float] | None = None,
    cmap: str = "RdBu_r",
) -> Figure:
    """A Conv2D's weights (F, C, KH, KW) as one grid of small images.

    One row per filter and one column per input channel; with a single input
    channel the filters wrap into a square grid. Colours are symmetric around
    zero (blue negative, red positive, one scale for the whole grid). Only the
    first max_filters filters are shown. layer: a Conv2D or the array itself.
    """
    weight = layer
    if not isinstance(weight, np.ndarray):  # a layer: its Parameter's array
        weight = getattr(getattr(layer, "weight", None), "data", None)
    if not isinstance(weight, np.ndarray):
        raise ArgumentTypeError(
            "plot.filters: expected a Conv2D layer (with .weight.data) or an array "
            f"(F, C, KH, KW), got {type(layer).__name__}"
        )
    if weight.ndim != 4:
        raise ShapeError(
            f"plot.filters: expected weights (F, C, KH, KW), got shape {weight.shape}"
        )
    w = np.asarray(weight[:max_filters], dtype=np.float64)  # (F, C, KH, KW)
    F, C, KH, KW = w.shape
    if C == 1:  # wrap the filters into a near-square grid of single images
        cols = math.ceil(math.sqrt(F))
        rows = math.ceil(F / cols)
        tiles = [(f // cols, f % cols, w[f, 0]) for f in range(F)]
    else:
        rows, cols = F, C
        tiles = [(f, c, w[f, c]) for f in range(F) for c in range(C)]
    # one mosaic image with a one-pixel NaN gap (drawn blank) between tiles
    mosaic = np.full((rows * (KH + 1) - 1, cols * (KW + 1) - 1), np.nan)
    for r, c, tile in tiles:
        mosaic[r * (KH + 1) : r * (KH + 1) + KH, c * (KW + 1) : c * (KW + 1) + KW] = (
            tile
        )
    scale = float(np.abs(w).max()) or 1.0
    if figsize is None:
        figsize = (
            min(12.0, 1.5 + 0.5 * cols * (KW + 1) / 4),
            min(12.0, 1.0 + 0.5 * rows),
        )
    fig = _figure(figsize)
    ax = fig.add_subplot()
    image = ax.imshow(
        mosaic, cmap=cmap, vmin=-scale, vmax=scale, interpolation="nearest"
    )
    if C == 1:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{F} filters {KH}x{KW}")
    else:
        ax.set_xticks([c * (KW + 1) + (KW - 1) / 2 for c in range(cols)])
        ax.set_xticklabels([f"c{c}" for c in range(cols)], fontsize=7)
        ax.set_yticks([r * (KH + 1) + (KH - 1) / 2 for r in range(rows)])
        ax.set_yticklabels([f"f{r}" for r in range(rows)], fontsize=7)
        ax.set_xlabel("input channel")
        ax.set_ylabel("filter")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


# -- gradient flow -------------------------------------------------------------------

_NORM_KEYS = ("grad_norm", "gradient_norm", "norm")


def _field(row, key: str):
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def _gradient_norms(report) -> tuple[list[str], np.ndarray, list[bool]]:
    """(names, norms, ok) from a dict or a report with rows; ok is False for a row
    that failed its check or carries warnings."""
    if isinstance(report, Mapping) and "rows" not in report and "layers" not in report:
        names = [str(k) for k in report]
        norms = [
            float(np.linalg.norm(np.asarray(v, dtype=np.float64)))
            for v in report.values()
        ]
        return names, np.asarray(norms), [True] * len(names)
    if isinstance(report, Mapping):
        rows = report["rows"] if "rows" in report else report["layers"]
    elif hasattr(report, "rows"):
        rows = report.rows
    elif hasattr(report, "to_dict"):
        return _gradient_norms(report.to_dict())
    else:
        raise ArgumentTypeError(
            "plot.gradient_flow: expected a gradcheck report, a trace with rows or "
            f"to_dict(), or a dict name -> norm, got {type(report).__name__}"
        )
    names, norms, passed = [], [], []
    for i, row in enumerate(rows):
        norm = next(
            (_field(row, k) for k in _NORM_KEYS if _field(row, k) is not None), None
        )
        if norm is None:
            raise DataError(
                f"plot.gradient_flow: row {i} has no gradient norm (a field named one "
                f"of {', '.join(_NORM_KEYS)})"
            )
        name, layer, index = (_field(row, k) for k in ("name", "layer", "index"))
        if name is None and layer is not None and index is not None:
            name = f"{index} {layer}"  # a per-layer trace: layer names repeat
        names.append(
            str(name if name is not None else layer if layer is not None else i)
        )
        norms.append(float(norm))
        flagged = _field(row, "passed") is False or bool(_field(row, "warnings"))
        passed.append(not flagged)
    return names, np.asarray(norms), passed


def _step_norms(report) -> list[tuple[str, np.ndarray]]:
    """(label, |dL/dh_t| for t = 0 .. T-1) per recurrent layer and direction of
    a gradient_flow report (rows with a non-empty "step_norms"); [] otherwise."""
    if isinstance(report, Mapping):
        rows = report.get("rows", report.get("layers", []))
    else:
        rows = getattr(report, "rows", [])
    lines = []
    for row in rows if isinstance(rows, (list, tuple)) else []:
        per_direction = _field(row, "step_norms") or {}
        for name, norms in per_direction.items():
            label = f"{_field(row, 'index')} {_field(row, 'layer')}"
            label += f" {name}" if len(per_direction) > 1 else ""
            lines.append((label, np.asarray(norms, dtype=np.float64)))
    return lines


def _draw_step_norms(ax, lines: list[tuple[str, np.ndarray]]) -> None:
    """One line of |dL/dh_t| over t per recurrent layer and direction, log y."""
    for label, norms in lines:
        shown = np.where(norms > 0, norms, np.nan)  # a zero has no place on a log axis
        ax.plot(np.arange(len(norms)), shown, marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("|dL/dh_t| (mean over batch)")
    ax.set_title("gradient per time step")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def gradient_flow(report, *, figsize: tuple[float, float] | None = None) -> Figure:
    """Gradient norms, input to output, on a log scale.

    Vanishing gradients show as bars falling towards the input; exploding ones
    as bars growing. report: a gradcheck report (a bar per tensor; failed rows
    drawn red), the report of gn.gradient_flow (a bar per layer: the gradient
    it receives; rows with warnings drawn red), any object with rows or
    to_dict() giving rows with a "grad_norm" (or "norm"), or a dict
    name -> norm (or name -> gradient array).
    A zero norm is drawn as a short hatched bar marked 0.
    When the model has recurrent layers (RNN, LSTM, GRU), a second panel below
    draws |dL/dh_t| over the time steps t, a line per layer and direction, on a
    log scale: the mean over the batch of each example's L2 norm of dL/dh_t.
    """
    names, norms, passed = _gradient_norms(report)
    if len(names) == 0:
        raise DataError("plot.gradient_flow: there are no gradients to plot")
    if not np.isfinite(norms).all():
        bad = [n for n, v in zip(names, norms, strict=True) if not np.isfinite(v)]
        raise DataError(f"plot.gradient_flow: non-finite gradient norms for {bad}")
    positive = norms[norms > 0]
    floor = positive.min() / 100 if positive.size else 1e-12
    heights = np.where(norms > 0, norms, floor)
    steps = _step_norms(report)
    width = max(4.0, 0.55 * len(names) + 1.5)
    fig = _figure(figsize or ((max(width, 6.0), 7.6) if steps else (width, 3.8)))
    ax = fig.add_subplot(2, 1, 1) if steps else fig.add_subplot()
    colours = ["#1f77b4" if ok else "#d62728" for ok in passed]
    bars = ax.bar(range(len(names)), heights, color=colours)
    for bar, value in zip(bars, norms, strict=True):
        if value == 0:
            bar.set_hatch("//")
            ax.annotate("0", (bar.get_x() + bar.get_width() / 2, floor), ha="center")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("gradient L2 norm")
    flagged = "" if all(passed) else " (red: failed check or warning)"
    ax.set_title("gradient flow" + flagged)
    ax.grid(True, axis="y", alpha=0.3)
    if steps:
        _draw_step_norms(fig.add_subplot(2, 1, 2), steps)
    fig.tight_layout()
    return fig
