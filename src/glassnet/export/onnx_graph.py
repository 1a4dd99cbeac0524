"""OnnxGraph: what an ONNX converter, or a custom layer's to_onnx_nodes, builds on.

A converter receives the graph and the name of its input tensor and returns the
name of its output tensor, adding nodes and initializers on the way:

    def to_onnx_nodes(self, graph, x):               # a custom layer's hook
        gamma = graph.param(self.gamma)              # initializer "<path>.gamma"
        scaled = graph.node("Mul", [x, gamma])       # one output, a fresh name
        return graph.node("Add", [scaled, graph.param(self.beta)])

graph.dtype is the float dtype of the export (numpy float32 or float64),
graph.opset the ONNX opset, graph.shape(x) one example's shape of a tensor
(no batch axis). Initializers carry glassnet's qualified names ("2.block.0.weight")
in glassnet's layouts; other constants are named after the layer too.

Also here: exact decompositions of the operators ONNX Runtime's CPU provider has
no float64 kernel for (ORT_CPU_NO_FLOAT64), used by the converters in float64
graphs: erfc (Cody's rational approximations, as glassnet._special), expm1 and
log1p (accurate near 0), and the im2col windows that replace Conv and AveragePool.
"""

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from glassnet import _special
from glassnet.errors import ConfigError, ShapeError
from glassnet.export._common import not_exported_reason, register_in
from glassnet.nn.layers.base import Layer

# Operators ONNX Runtime's CPU provider lacks in float64: a one-node float64 graph
# fails with NOT_IMPLEMENTED (LSTM and GRU: "does not support double yet")
# (onnxruntime 1.32; tests/test_export_onnx.py measures it again). In float64
# graphs the converters use none of them.
ORT_CPU_NO_FLOAT64 = (
    "Conv",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Erf",
    "Gelu",
    "Softplus",
    "Elu",
    "RNN",
    "LSTM",
    "GRU",
)

TO_ONNX: dict[type, Callable] = {}


def exports(*classes: type):
    """Register the decorated function (layer, graph, x) -> output name as the
    ONNX converter of glassnet layer classes."""
    return register_in(TO_ONNX, *classes)


_ELEM_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
}


class OnnxGraph:
    """Nodes and initializers of one ONNX graph, built layer by layer."""

    def __init__(self, dtype, opset: int) -> None:
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.path = ""  # qualified name of the layer being converted
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._names: set[str] = set()
        self._shapes: dict[str, tuple[int, ...] | None] = {}
        self._integer: set[str] = set()
        self._scalars: dict[float, str] = {}

    # -- what converters call --------------------------------------------------

    def node(self, op_type: str, inputs: list[str], **attributes) -> str:
        """Add one node with one output; returns the output's (fresh) name."""
        out = self._fresh(f"{self.path or 'model'}/{op_type}")
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=out, **attributes)
        )
        return out

    def node_outputs(
        self, op_type: str, inputs: list[str], count: int, **attributes
    ) -> list[str]:
        """Add one node with `count` outputs (LSTM's Y, Y_h, Y_c); returns their
        fresh names."""
        base = f"{self.path or 'model'}/{op_type}"
        outs = [self._fresh(f"{base}:{i}") for i in range(count)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=outs[0], **attributes)
        )
        return outs

    def param(self, parameter) -> str:
        """An initializer holding a Parameter of the layer being converted, named
        by its qualified name ("<layer path>.<parameter name>")."""
        return self.constant(parameter.data, parameter.name)

    def constant(self, value, name: str) -> str:
        """An initializer named "<layer path>.<name>": float arrays in the graph's
        dtype, integers as int64 (shapes, axes, pads), booleans as they are."""
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
        full = self._fresh(f"{self.path}.{name}" if self.path else name)
        self.initializers.append(numpy_helper.from_array(array, full))
        return full

    def scalar(self, value: float) -> str:
        """A float scalar in the graph's dtype, shared by every node that uses it."""
        if value not in self._scalars:
            name = self._fresh(f"scalar_{value!r}")
            array = np.asarray(value, dtype=self.dtype)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._scalars[value] = name
        return self._scalars[value]

    def ints(self, values, name: str) -> str:
        """An int64 vector (shapes, axes, pads, slice bounds)."""
        return self.constant(np.asarray(values, dtype=np.int64), name)

    def shape(self, x: str, needed_by: str | None = None) -> tuple[int, ...] | None:
        """One example's shape of tensor x, or None if unknown. With needed_by,
        an unknown shape raises ConfigError saying who needs it."""
        shape = self._shapes.get(x)
        if shape is None and needed_by is not None:
            raise ConfigError(
                f"to_onnx: {needed_by} at {self.path or 'the model'!r} needs the size "
                "of its input, which a layer before it does not declare (its "
                "output_shape returns None); give that layer an output_shape method"
            )
        return shape

    def set_shape(self, x: str, shape: tuple[int, ...] | None) -> None:
        """Record one example's shape of x (convert does it for every layer)."""
        self._shapes[x] = None if shape is None else tuple(shape)

    def is_integer(self, x: str) -> bool:
        """True for a tensor of int64 ids (the input of an Embedding-first model)."""
        return x in self._integer

    def native(self, op_type: str) -> bool:
        """Whether ONNX Runtime's CPU provider runs op_type in this graph's dtype."""
        return self.dtype != np.float64 or op_type not in ORT_CPU_NO_FLOAT64

    def exact_attribute(self, value: float) -> bool:
        """Whether value can be a float attribute: ONNX float attributes are
        32-bit, so in a float64 graph a value float32 cannot hold (0.01, 1e-5)
        must be a tensor of the graph's dtype instead (graph.scalar)."""
        return self.dtype == np.float32 or float(np.float32(value)) == value

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int = 0) -> str:
        """ReduceMean/ReduceMax/ReduceSum over axes: an attribute up to opset 17,
        an input from opset 18 on."""
        if self.opset >= 18:
            return self.node(op_type, [x, self.ints(axes, "axes")], keepdims=keepdims)
        return self.node(op_type, [x], axes=list(axes), keepdims=keepdims)

    def convert(self, layer: Layer, name: str, x: str) -> str:
        """Add the nodes of `layer`, a child called `name` of the layer being
        converted, to input x; returns its output. Containers call this."""
        outer = self.path
        self.path = f"{outer}.{name}" if outer and name else outer or name
        try:
            fn = TO_ONNX.get(type(layer))
            if fn is not None:
                out = fn(layer, self, x)
            else:
                out = self._hook(layer, x)
            self.set_shape(out, _output_shape(layer, self._shapes.get(x)))
        finally:
            self.path = outer
        return out

    # -- building the model ----------------------------------------------------

    def add_input(self, name: str, shape: tuple[int, ...], integer: bool) -> str:
        elem = TensorProto.INT64 if integer else _ELEM_TYPES[self.dtype]
        self.inputs.append(helper.make_tensor_value_info(name, elem, ["N", *shape]))
        self._names.add(name)
        self._shapes[name] = tuple(shape)
        if integer:
            self._integer.add(name)
        return name

    def add_output(self, x: str, name: str) -> None:
        """Expose tensor x as the graph output `name` (an Identity renames it)."""
        self.nodes.append(
            helper.make_node("Identity", [x], [name], name=f"{name}/Identity")
        )
        self._names.add(name)
        shape = self._shapes.get(x)
        dims = ["N", *shape] if shape is not None else None
        elem = _ELEM_TYPES[self.dtype]
        self.outputs.append(helper.make_tensor_value_info(name, elem, dims))

    def to_model(self, doc_string: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "glassnet", self.inputs, self.outputs, self.initializers
        )
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(
            graph,
            opset_imports=opsets,
            producer_name="glassnet",
            doc_string=doc_string,
            # the oldest IR version that holds this opset: what runtimes accept
            ir_version=helper.find_min_ir_version_for(opsets),
        )
        _infer_unknown_output_shapes(model)
        return model

    # -- internals ---------------------------------------------------------------

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def _hook(self, layer: Layer, x: str) -> str:
        where = (
            f"{self.path!r} ({type(layer).__name__})"
            if self.path
            else (f"the model ({type(layer).__name__})")
        )
        hook = getattr(layer, "to_onnx_nodes", None)
        reason = not_exported_reason(layer)
        if hook is None and reason is not None:
            raise ConfigError(f"to_onnx: layer {where} does not export yet: {reason}")
        if hook is None:
            raise ConfigError(
                f"to_onnx: layer {where} has no ONNX converter; give the class a "
                "to_onnx_nodes(self, graph, x) method that adds its nodes with "
                "graph.node(op, inputs, **attributes) and graph.param(p) and "
                "returns the name of its output (see docs/export_and_scale.md, "
                "custom layers)"
            )
        out = hook(self, x)
        if not isinstance(out, str):
            raise ConfigError(
                f"to_onnx: layer {where}: to_onnx_nodes must return the name of its "
                f"output tensor (a str), got {type(out).__name__}"
            )
        return out


def _infer_unknown_output_shapes(model: onnx.ModelProto) -> None:
    """Fill in the output shapes no layer declared (a custom layer without
    output_shape) from ONNX's shape inference; the checker needs them."""
    unknown = [
        o for o in model.graph.output if not o.type.tensor_type.HasField("shape")
    ]
    if not unknown:
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except onnx.shape_inference.InferenceError:
        return  # the checker will say what is wrong
    known = {v.name: v for v in [*inferred.value_info, *inferred.output]}
    for output in unknown:
        identity = next(n for n in model.graph.node if output.name in n.output)
        source = known.get(identity.input[0])
        if source is not None and source.type.tensor_type.HasField("shape"):
            output.type.tensor_type.shape.CopyFrom(source.type.tensor_type.shape)


def _output_shape(layer: Layer, shape) -> tuple[int, ...] | None:
    if shape is None:
        return None
    try:
        out = layer.output_shape(tuple(shape))
    except ShapeError:
        return None
    return None if out is None else tuple(out)


# -- exact float64 replacements for what ONNX Runtime lacks ---------------------------


def _ratio(graph: OnnxGraph, t: str, num, den, lead: float) -> str:
    """num(t) / den(t) in Horner form, Cody's order (glassnet._special._ratio)."""
    num_acc = graph.node("Mul", [t, graph.scalar(lead)])
    den_acc = t
    for c, d in zip(num[:-1], den[:-1], strict=True):
        num_acc = graph.node("Mul", [graph.node("Add", [num_acc, graph.scalar(c)]), t])
        den_acc = graph.node("Mul", [graph.node("Add", [den_acc, graph.scalar(d)]), t])
    num_acc = graph.node("Add", [num_acc, graph.scalar(num[-1])])
    den_acc = graph.node("Add", [den_acc, graph.scalar(den[-1])])
    return graph.node("Div", [num_acc, den_acc])


def _exp_minus_square(graph: OnnxGraph, y: str) -> str:
    """exp(-y^2) without the rounding error of squaring y, in float64: y^2 split
    into head^2, head = y rounded to a multiple of 2^-4 (exact), plus a small
    rest (as glassnet._special._exp_minus_square). Plain exp(-y*y) would be off
    by up to 3e-13 relative in erfc's tail."""
    big = graph.scalar(2.0**48)
    head = graph.node("Sub", [graph.node("Add", [y, big]), big])
    rest = graph.node(
        "Mul", [graph.node("Sub", [y, head]), graph.node("Add", [y, head])]
    )  # y^2 - head^2
    far = graph.node("Exp", [graph.node("Neg", [graph.node("Mul", [head, head])])])
    return graph.node("Mul", [far, graph.node("Exp", [graph.node("Neg", [rest])])])


def erfc(graph: OnnxGraph, x: str) -> str:
    """1 - erf(x) from Add, Mul, Div, Exp and Where, for float64 graphs: Cody's
    three intervals of |x|, each evaluated everywhere and the right one selected
    (as glassnet._special.erfc, to within a few units in the last place)."""
    if graph.dtype != np.float64:
        raise ConfigError("erfc: the decomposition is written for float64 graphs")
    s = _special
    y = graph.node("Abs", [x])
    # |x| <= 0.46875: erfc = 1 - x P1(x^2) / Q1(x^2)
    x2 = graph.node("Mul", [x, x])
    small = graph.node("Mul", [_ratio(graph, x2, s._A[:4], s._B, s._A[4]), x])
    small = graph.node("Sub", [graph.scalar(1.0), small])
    # 0.46875 < |x| <= 4: erfc(|x|) = exp(-x^2) P2(|x|) / Q2(|x|)
    gauss = _exp_minus_square(graph, y)
    mid = graph.node("Mul", [_ratio(graph, y, s._C[:8], s._D, s._C[8]), gauss])
    # |x| > 4: exp(-x^2) / |x| (1/sqrt(pi) - z P3(z) / Q3(z)), z = 1 / x^2; |x|
    # clipped to [4, 40] so that the unused lanes stay finite (erfc(40) is 0)
    t = graph.node("Clip", [y, graph.scalar(4.0), graph.scalar(40.0)])
    z = graph.node("Reciprocal", [graph.node("Mul", [t, t])])
    tail = graph.node("Mul", [_ratio(graph, z, s._P[:5], s._Q, s._P[5]), z])
    tail = graph.node("Sub", [graph.scalar(s._SQRPI), tail])
    tail = graph.node("Div", [tail, t])
    tail = graph.node("Mul", [tail, _exp_minus_square(graph, t)])
    large = graph.node(
        "Where", [graph.node("LessOrEqual", [y, graph.scalar(4.0)]), mid, tail]
    )
    negative = graph.node("Less", [x, graph.scalar(0.0)])
    large = graph.node(
        "Where", [negative, graph.node("Sub", [graph.scalar(2.0), large]), large]
    )
    is_small = graph.node("LessOrEqual", [y, graph.scalar(s._THRESH)])
    return graph.node("Where", [is_small, small, large])


def expm1(graph: OnnxGraph, t: str) -> str:
    """e^t - 1 for t <= 0, accurate near 0 (Kahan: (u - 1) t / log u, u = e^t).
    t is clipped at -40, where e^t - 1 is -1 to the last bit in float64."""
    t = graph.node("Max", [t, graph.scalar(-40.0)])
    u = graph.node("Exp", [t])
    exact = graph.node("Equal", [u, graph.scalar(1.0)])  # t so small that e^t is 1
    # log u is 0 there: divide by 1 instead, so that no lane computes 0 / 0
    log_u = graph.node("Where", [exact, graph.scalar(1.0), graph.node("Log", [u])])
    um1 = graph.node("Sub", [u, graph.scalar(1.0)])
    fixed = graph.node("Div", [graph.node("Mul", [um1, t]), log_u])
    return graph.node("Where", [exact, t, fixed])


def log1p(graph: OnnxGraph, e: str) -> str:
    """log(1 + e) for e >= 0, accurate near 0 (Goldberg: log(u) e / (u - 1))."""
    u = graph.node("Add", [e, graph.scalar(1.0)])
    exact = graph.node("Equal", [u, graph.scalar(1.0)])  # e below half an ulp of 1
    um1 = graph.node("Sub", [u, graph.scalar(1.0)])
    # u - 1 is 0 there: divide by 1 instead, so that no lane computes 0 / 0
    um1 = graph.node("Where", [exact, graph.scalar(1.0), um1])
    fixed = graph.node("Div", [graph.node("Mul", [graph.node("Log", [u]), e]), um1])
    return graph.node("Where", [exact, e, fixed])


def windows(
    graph: OnnxGraph,
    x: str,
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
) -> tuple[str, tuple[int, ...]]:
    """im2col with Pad, Slice and Concat, for Conv and AveragePool in float64.

    x (N, C, *sizes), one or two spatial axes -> (N, C, K, *out_sizes), K the
    number of kernel offsets: entry [n, c, i*KW + j, h, w] is
    x_padded[n, c, h*SH + i, w*SW + j], the pixel under kernel offset (i, j) of
    output position (h, w) (for signals, [n, c, k, l] is x_padded[n, c, l*S + k]).
    pads: (before, after) zeros per spatial axis. Returns the windows' name and
    the output sizes.
    """
    ndim = len(sizes)
    if any(amount for pair in pads for amount in pair):
        befores, afters = [b for b, _ in pads], [a for _, a in pads]
        onnx_pads = [0, 0, *befores, 0, 0, *afters]  # every begin, then every end
        x = graph.node("Pad", [x, graph.ints(onnx_pads, "pads")])
    out = tuple(
        (n + b + a - k) // s + 1
        for n, (b, a), k, s in zip(sizes, pads, kernel, stride, strict=True)
    )
    spatial = list(range(2, 2 + ndim))
    axes, steps = graph.ints(spatial, "slice_axes"), graph.ints(stride, "strides")
    window_axis = graph.ints([2], "window_axis")
    parts = []
    for offset in np.ndindex(*kernel):  # row-major, as the weight's (..., KH, KW)
        starts = graph.ints(offset, "starts")
        ends = graph.ints(
            [o + (n - 1) * s + 1 for o, n, s in zip(offset, out, stride, strict=True)],
            "ends",
        )
        part = graph.node("Slice", [x, starts, ends, axes, steps])  # (N, C, *out)
        parts.append(graph.node("Unsqueeze", [part, window_axis]))
    stacked = graph.node("Concat", parts, axis=2)  # (N, C, K, *out)
    return stacked, out
