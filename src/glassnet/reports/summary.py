"""model.summary(input_shape): shapes, parameters, gradients and backward memory.

For one batch size, each layer's output shape, parameter count, the shape of
every gradient its backward produces (dL/dW, dL/db, dL/dx) and what it keeps
for backward (shape and bytes), with totals. Nothing here needs data: the
numbers come from one pass of random numbers through a copy of the model, so
they are what the layers really cache, custom layers included.

Buffers (a BatchNorm's running statistics: saved with the model, never
trained) are counted apart from the parameters, in the notes under the table
(the table has no room for another column).

A layer that holds others (a nested Sequential, Residual, Concat, a custom
composite) gets a row, named by its qualified path, followed by one row per
layer inside it, indented; its parameter count is the total of everything in
it, so the model's own rows add up to the total.
"""

from dataclasses import dataclass, field

import numpy as np

from glassnet.nn.layers.base import Layer, backward_params_of
from glassnet.reports._table import (
    Report,
    Section,
    Table,
    bytes_str,
    count_str,
    layer_name,
    shape_str,
)
from glassnet.reports._trace import batch_shape, owner, random_batch, run_trace


@dataclass
class SummaryRow:
    """One layer of the summary, at any depth. Shapes include the batch axis.

    index: the qualified name ("1", "1.block.0"); params: every parameter of
    the layer and of the layers inside it; param_grads: its own parameters."""

    index: str
    layer: str
    input_shape: tuple
    output_shape: tuple
    params: int
    param_grads: dict  # parameter name -> gradient shape (the parameter's shape)
    input_grad: tuple | None  # dL/dx shape, None if backward returns none
    cache: list  # [(label, shape, dtype, bytes, shared)]; shared names the holder
    cache_bytes: int  # memory this layer's cache adds (shared arrays counted once)
    depth: int = 0  # 0 for the model's own layers, 1 for the layers inside those...
    buffers: dict = field(default_factory=dict)  # its own buffers: name -> shape


class SummaryReport(Report):
    """The table model.summary returns; print it, or read `rows` and `to_dict()`."""

    def __init__(
        self, model_name: str, input_shape: tuple, dtype, rows, totals
    ) -> None:
        self.input_shape = input_shape
        self.batch_size = input_shape[0]
        self.dtype = np.dtype(dtype)
        self.rows: list[SummaryRow] = rows
        self.totals: dict = totals
        self.first_skips_dx = False  # layer 0's backward_params skips its dL/dx
        self.title = (
            f"{model_name} summary: batch of {self.batch_size}, input "
            f"{shape_str(input_shape)}, {self.dtype.name}"
        )

    def _table(self) -> Table:
        header = [
            "#",
            "layer",
            "output",
            "params",
            "gradient",
            "shape",
            "cached for backward",
            "bytes",
        ]
        rows = []
        for r in self.rows:
            grads = [f"dL/d{name}" for name in r.param_grads]
            shapes = [shape_str(s) for s in r.param_grads.values()]
            if r.input_grad is not None:
                grads.append("dL/dx")
                shapes.append(shape_str(r.input_grad))
            cached = [f"{label} {shape_str(shape)}" for label, shape, *_ in r.cache]
            sizes = [
                bytes_str(nbytes) + (f" (= {shared})" if shared else "")
                for *_, nbytes, shared in r.cache
            ]
            rows.append(
                [
                    r.index,
                    "  " * r.depth + r.layer,
                    shape_str(r.output_shape),
                    count_str(r.params),
                    "\n".join(grads) or "-",
                    "\n".join(shapes) or "-",
                    "\n".join(cached) or "-",
                    "\n".join(sizes) or "-",
                ]
            )
        t = self.totals
        rows.append(
            [
                "",
                "total",
                "",
                count_str(t["params"]),
                "",
                "",
                "",
                bytes_str(t["cache_bytes"]),
            ]
        )
        return Table(header, [Section(None, rows)], align="lllrllll", flex={1, 6})

    def _narrow_table(self) -> Table:
        """Gradients and cached arrays as one entry per line ("dL/dW (4, 5)",
        "x (32, 4) 512 B"), so a narrow column wraps without misaligning them."""
        rows = []
        for r in self.rows:
            grads = [f"dL/d{k} {shape_str(s)}" for k, s in r.param_grads.items()]
            if r.input_grad is not None:
                grads.append(f"dL/dx {shape_str(r.input_grad)}")
            cached = [
                f"{label} {shape_str(shape)}: {bytes_str(nbytes)}"
                + (f" (= {shared})" if shared else "")
                for label, shape, _, nbytes, shared in r.cache
            ]
            rows.append(
                [
                    r.index,
                    "  " * r.depth + r.layer,
                    shape_str(r.output_shape),
                    count_str(r.params),
                    "\n".join(grads) or "-",
                    "\n".join(cached) or "-",
                ]
            )
        t = self.totals
        total = ["", "total", "", count_str(t["params"]), ""]
        rows.append(total + [bytes_str(t["cache_bytes"])])
        header = ["#", "layer", "output", "params", "gradients", "cached for backward"]
        return Table(header, [Section(None, rows)], align="lllrll", flex={1, 2, 4, 5})

    def _notes(self) -> list[str]:
        t = self.totals
        buffers = ""
        if t["buffers"]:
            holders = ", ".join(r.index for r in self.rows if r.buffers)
            buffers = (
                f"; plus {count_str(t['buffers'])} buffer values "
                f"({bytes_str(t['buffer_bytes'])}: state saved with the model but "
                f"never trained, such as running statistics) in layers {holders}"
            )
        return [
            f"parameters: {count_str(t['params'])} ({bytes_str(t['param_bytes'])}); "
            "their gradients have the same shapes and take as much again" + buffers,
            f"kept for backward: {bytes_str(t['cache_bytes'])} for a batch of "
            f"{self.batch_size} ({bytes_str(t['cache_bytes'] / self.batch_size)} "
            "per example); an array that is also the input batch or another "
            "layer's output is counted once, where it first appears (marked =)",
            "every dL/dparameter has its parameter's shape, whatever the batch size; "
            "dL/dx has the input's shape",
        ] + (
            ["fit skips layer 0's dL/dx: the data needs no gradient"]
            if self.first_skips_dx
            else []
        )

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "dtype": self.dtype.name,
            "layers": [
                {
                    "index": r.index,
                    "layer": r.layer,
                    "depth": r.depth,
                    "input_shape": list(r.input_shape),
                    "output_shape": list(r.output_shape),
                    "params": r.params,
                    "param_grads": {k: list(v) for k, v in r.param_grads.items()},
                    "input_grad": None if r.input_grad is None else list(r.input_grad),
                    "cache": [
                        {
                            "name": label,
                            "shape": list(shape),
                            "dtype": dtype,
                            "bytes": nbytes,
                            "shared_with": shared or None,
                        }
                        for label, shape, dtype, nbytes, shared in r.cache
                    ],
                    "cache_bytes": r.cache_bytes,
                    "buffers": {k: list(v) for k, v in r.buffers.items()},
                }
                for r in self.rows
            ],
            "totals": dict(self.totals),
        }


def summary(model, input_shape=None, batch_size: int = 32) -> SummaryReport:
    """Per layer: output shape, parameters, gradient shapes and backward cache.

        print(model.summary((4,), batch_size=150))

    input_shape is one example's shape (no batch axis); the table is for a
    batch of `batch_size`. The model itself is not changed.
    """
    shape = batch_shape(model, input_shape, batch_size)
    dtype = getattr(model, "dtype", None)
    if dtype is None:
        params = model.parameters()
        dtype = params[0].data.dtype if params else np.float64
    x = random_batch(model, shape, np.random.default_rng(0), dtype)
    traces, _, _ = run_trace(model, x, training=True)
    # memory already held by someone else -> who; the data batch is not the model's
    held: dict[int, str] = {id(owner(x)): "the input batch"}
    rows, total_cache, total_params, param_bytes = [], 0, 0, 0
    total_buffers, buffer_bytes = 0, 0
    for t in traces:
        cache, cache_bytes = [], 0
        for label, a in t.cache:
            base = owner(a)
            shared = held.get(id(base), "")
            if not shared:
                held[id(base)] = f"layer {t.index}'s {label}"
                cache_bytes += base.nbytes
            cache.append((label, a.shape, a.dtype.name, int(base.nbytes), shared))
        held.setdefault(id(owner(t.out)), f"layer {t.index}'s output")
        total_cache += cache_bytes
        own = t.layer.own_parameters()
        total_params += sum(p.size for p in own)
        param_bytes += sum(p.data.nbytes for p in own)  # each in its own dtype
        buffers = t.layer.own_buffers()  # the copy's, as the model's before the pass
        total_buffers += sum(a.size for a in buffers.values())
        buffer_bytes += sum(a.nbytes for a in buffers.values())
        rows.append(
            SummaryRow(
                index=t.index,
                layer=layer_name(t.layer),
                input_shape=tuple(t.x.shape),
                output_shape=tuple(t.out.shape),
                params=sum(p.size for p in t.layer.parameters()),
                param_grads={p.name: tuple(t.grads[p.name].shape) for p in own},
                input_grad=None if t.dx is None else tuple(t.dx.shape),
                cache=cache,
                cache_bytes=cache_bytes,
                depth=t.depth,
                buffers={k: a.shape for k, a in buffers.items()},
            )
        )
    totals = {
        "params": total_params,  # each parameter once, at the layer holding it
        "param_bytes": param_bytes,
        "cache_bytes": total_cache,
        "buffers": total_buffers,  # values, every depth; no gradient, not trained
        "buffer_bytes": buffer_bytes,
        # a container's output is often its last layer's: count each array once
        "output_bytes": sum(
            {id(owner(t.out)): int(t.out.nbytes) for t in traces}.values()
        ),
    }
    model_name = type(model).__name__
    if not hasattr(model, "layers"):
        model_name = f"{model_name} (one layer)"
    report = SummaryReport(model_name, shape, dtype, rows, totals)
    report.first_skips_dx = bool(traces) and _skips_dx(traces[0].layer)
    return report


def _skips_dx(layer) -> bool:
    """Whether fit saves work on this first layer: its backward_params (what fit
    calls for the layer whose input is the data) is its own, skipping dL/dx."""
    if type(layer).backward_params is Layer.backward_params:
        return False
    if backward_params_of(layer) != layer.backward_params:
        return False  # a subclass's own backward: fit calls it, dL/dx included
    inner = getattr(layer, "layers", None)  # a Sequential passes it to its first
    if inner is not None:
        return bool(inner) and _skips_dx(inner[0])
    return True
