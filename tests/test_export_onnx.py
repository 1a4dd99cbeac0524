"""glassnet -> ONNX, for every layer and for nested models, in float64 and float32.

Each exported graph passes onnx.checker's full check, and ONNX Runtime (CPU) and
the onnx.reference evaluator both compute glassnet's predict: to 1e-12 in
float64 (ONNX Runtime runs every float64 graph glassnet writes: the operators
its CPU provider lacks in float64 are replaced by exact decompositions), to
1e-6 in float32; for batches of 1 and 5 (the batch axis is dynamic).
"""

import math

import numpy as np
import pytest

import glassnet as gn
from export_cases import (
    CASE_IDS,
    CASES,
    FeatureScale,
    NoHooks,
    covered_classes,
    not_yet_cases,
    stand_in,
)
from glassnet.nn.layers.base import builtin_layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from glassnet.export import NOT_EXPORTED, onnx_graph, onnx_layers, to_onnx  # noqa: E402

pytestmark = pytest.mark.onnx

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}


def session(proto):
    return ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def run_both(proto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ONNX Runtime's output, the reference evaluator's output) for input x."""
    name = proto.graph.input[0].name
    got = session(proto).run(None, {name: x})[0]
    with np.errstate(all="ignore"):  # the evaluator computes unselected lanes too
        ref = ReferenceEvaluator(proto).run(None, {name: x})[0]
    return got, ref


def feed(case, x: np.ndarray, dtype) -> np.ndarray:
    return x.astype(np.int64) if case.ids else x.astype(dtype)


def test_every_glassnet_layer_has_an_onnx_converter_and_a_case():
    layers = {c for name, c in builtin_layers().items() if name not in NOT_EXPORTED}
    assert layers - set(onnx_graph.TO_ONNX) == set()
    assert layers - covered_classes() == set()
    assert {c.__name__ for c in onnx_graph.TO_ONNX} & set(NOT_EXPORTED) == set()


@pytest.mark.parametrize("name", not_yet_cases())
def test_to_onnx_refuses_a_layer_without_converters_and_says_why(
    name, tmp_path, monkeypatch
):
    build, shape = stand_in(name, monkeypatch, onnx_graph.TO_ONNX, NOT_EXPORTED)
    model = gn.Sequential(gn.Identity(), build(), seed=0)
    with pytest.raises(gn.ConfigError) as info:
        to_onnx(model, tmp_path / "m.onnx", input_shape=shape)
    text = str(info.value)
    assert text.startswith(f"to_onnx: layer '1' ({name}) does not export yet: ")
    assert NOT_EXPORTED[name] in text


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_onnx_runtime_and_reference_compute_glassnets_predict(case, dtype, tmp_path):
    model = case.model()
    path = tmp_path / "model.onnx"
    proto = to_onnx(model, path, input_shape=case.input_shape, dtype=dtype)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    model = case.model(dtype)  # float32: compared with glassnet's float32 model
    tol = TOLERANCE[dtype]
    for n in (1, 5):
        x = case.inputs(n)
        want = model.predict(x)
        got, ref = run_both(proto, feed(case, x, dtype))
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg="runtime")
        np.testing.assert_allclose(ref, want, rtol=tol, atol=tol, err_msg="reference")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_initializers_are_the_parameters_and_buffers_by_name(case, tmp_path):
    model = case.model()
    proto = to_onnx(model, tmp_path / "m.onnx", input_shape=case.input_shape)
    held = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    arrays = {n: p.data for n, p in model.named_parameters()}
    arrays.update(model.named_buffers())
    for name, array in arrays.items():
        assert name in held, name
        np.testing.assert_array_equal(held[name], array, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float64_graphs_use_no_operator_onnx_runtime_lacks_in_float64(case, tmp_path):
    model = case.model()
    proto = to_onnx(model, tmp_path / "m.onnx", input_shape=case.input_shape)
    used = {node.op_type for node in proto.graph.node}
    assert used & set(onnx_graph.ORT_CPU_NO_FLOAT64) == set()
    # and no float attribute that float32 would round (eps, slopes)
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.FLOAT:
                assert float(np.float32(attribute.f)) == attribute.f


_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def one_node_float64(op_type: str):
    """A float64 graph of one op_type node on a (N, 2, 4, 4) input (the
    recurrent operators: on a sequence (T, N, D) = (4, N, 4), hidden size 3)."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, ["N", 2, 4, 4])
    inputs, inits, attrs = ["x"], [], {}
    if op_type == "Conv":
        inits = [numpy_helper.from_array(np.ones((3, 2, 3, 3)), "w")]
        inputs.append("w")
    if op_type == "AveragePool":
        attrs = {"kernel_shape": [2, 2]}
    if op_type in _GATES:
        x = helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [4, "N", 4])
        rows = 3 * _GATES[op_type]
        inits = [
            numpy_helper.from_array(np.ones((1, rows, 4)), "w"),
            numpy_helper.from_array(np.ones((1, rows, 3)), "r"),
        ]
        inputs += ["w", "r"]
        attrs = {"hidden_size": 3}
    node = helper.make_node(op_type, inputs, ["y"], **attrs)
    y = helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)
    graph = helper.make_graph([node], "g", [x], [y], inits)
    opset = 20 if op_type == "Gelu" else 17
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("op_type", onnx_graph.ORT_CPU_NO_FLOAT64)
def test_onnx_runtime_cpu_lacks_these_operators_in_float64(op_type):
    # what the docs say and the converters avoid; a failure here means the
    # installed onnxruntime gained a kernel, and the list (and docs) can shrink.
    # LSTM and GRU build a session and refuse when run.
    x = np.ones((4, 2, 4) if op_type in _GATES else (2, 2, 4, 4))
    with pytest.raises(Exception, match="NOT_IMPLEMENTED|does not support double"):
        session(one_node_float64(op_type)).run(None, {"x": x})


@pytest.mark.parametrize(
    "layers, proba_of",
    [
        ([gn.Dense(4, 3)], "softmax"),
        ([gn.Dense(4, 3), gn.Softmax()], "as is"),
        ([gn.Dense(4, 1)], "sigmoid"),
        ([gn.Dense(4, 1), gn.Sigmoid()], "as is"),
    ],
    ids=["logits", "softmax", "one logit", "one sigmoid"],
)
def test_proba_output_is_predict_proba(layers, proba_of, tmp_path):
    model = gn.Sequential(*layers, seed=0, dtype=np.float64)
    proto = to_onnx(model, tmp_path / "m.onnx", output="proba")
    assert [o.name for o in proto.graph.output] == ["proba"]
    ops = [node.op_type for node in proto.graph.node]
    for op, layer in [("Softmax", gn.Softmax), ("Sigmoid", gn.Sigmoid)]:
        in_model = sum(isinstance(m, layer) for m in layers)
        added = int(proba_of == op.lower())  # by the head, after the model
        assert ops.count(op) == in_model + added, op
    x = np.random.default_rng(0).standard_normal((6, 4))
    for got in run_both(proto, x):
        np.testing.assert_allclose(got, model.predict_proba(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("opset", [17, 18, onnx.defs.onnx_opset_version()])
def test_every_supported_opset_gives_the_same_outputs(opset, tmp_path):
    case = next(c for c in CASES if c.name == "cnn")
    model = case.model()
    proto = to_onnx(
        model, tmp_path / "m.onnx", input_shape=case.input_shape, opset=opset
    )
    assert proto.opset_import[0].version == opset
    x = case.inputs()
    for got in run_both(proto, x):
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-12, atol=1e-12)


def test_a_custom_layer_exports_through_its_hook(tmp_path):
    model = gn.Sequential(gn.Dense(3, 4), FeatureScale(4), seed=0, dtype=np.float64)
    proto = to_onnx(model, tmp_path / "m.onnx")
    names = {t.name for t in proto.graph.initializer}
    assert {"1.gamma", "1.beta"} <= names
    x = np.random.default_rng(0).standard_normal((5, 3))
    for got in run_both(proto, x):
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-12)


class ShapeUnknown(FeatureScale):
    output_shape = gn.Layer.output_shape  # returns None: the shape is inferred


def test_a_custom_layer_without_output_shape_gets_an_inferred_output_shape(tmp_path):
    model = gn.Sequential(gn.Dense(3, 4), ShapeUnknown(4), seed=0, dtype=np.float64)
    proto = to_onnx(model, tmp_path / "m.onnx")
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 4]
    x = np.random.default_rng(0).standard_normal((2, 3))
    for got in run_both(proto, x):
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-12)


class ReturnsNodes(FeatureScale):
    def to_onnx_nodes(self, graph, x):
        return [super().to_onnx_nodes(graph, x)]


class BadNode(FeatureScale):
    def to_onnx_nodes(self, graph, x):
        return graph.node("Mul", [x, "no_such_tensor"])


def _conv_model():
    return gn.Sequential(gn.Conv2D(1, 2, 3), gn.Flatten(), seed=0)


def _dense_model(*more):
    return gn.Sequential(gn.Dense(3, 4), *more, seed=0)


ERRORS = [
    (_dense_model(), {"opset": 16}, gn.ConfigError, "opset must be in [17, "),
    (_dense_model(), {"opset": "17"}, gn.ConfigError, "opset must be an int"),
    (_dense_model(), {"output": "logits"}, gn.ConfigError, "'predict' or 'proba'"),
    (_dense_model(), {"dtype": np.int32}, gn.ConfigError, "float32 or float64"),
    (_conv_model(), {}, gn.ConfigError, "input_shape is needed for a model whose"),
    (_conv_model(), {"input_shape": (2, 5, 5)}, gn.ShapeError, "does not fit"),
    (_dense_model(), {"input_shape": (0,)}, gn.ConfigError, "positive sizes"),
    (
        gn.Sequential(gn.Conv2D(1, 2, 3), seed=0),
        {"input_shape": (1, 5, 5), "output": "proba"},
        gn.ShapeError,
        "output='proba' needs outputs of shape (N, K), got (N, 2, 3, 3)",
    ),
    (
        _dense_model(NoHooks()),
        {},
        gn.ConfigError,
        "layer '1' (NoHooks) has no ONNX converter; give the class a to_onnx_nodes",
    ),
    (
        _dense_model(ReturnsNodes(4)),
        {},
        gn.ConfigError,
        "to_onnx_nodes must return the name of its output tensor (a str), got list",
    ),
    (_dense_model(BadNode(4)), {}, gn.ConfigError, "the graph fails onnx.checker"),
    (
        gn.Sequential(gn.TimeDistributed(NoHooks()), seed=0),
        {"input_shape": (3, 4)},
        gn.ConfigError,
        "layer '0.layer' (NoHooks) has no ONNX converter",
    ),
    ("a model", {}, gn.ArgumentTypeError, "expected a glassnet model"),
]


@pytest.mark.parametrize(
    "model, options, error, message",
    ERRORS,
    ids=[f"{i}-{e[3][:30]}" for i, e in enumerate(ERRORS)],
)
def test_to_onnx_refuses_with_a_message_and_leaves_the_old_file(
    model, options, error, message, tmp_path
):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous export")
    with pytest.raises(error) as info:
        to_onnx(model, path, **options)
    assert message in str(info.value)
    assert path.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary


def test_graph_input_and_output_names_types_and_batch_axis(tmp_path):
    case = next(c for c in CASES if c.name == "sequence")
    proto = to_onnx(case.model(), tmp_path / "m.onnx", input_shape=(3,))
    (x,), (y,) = proto.graph.input, proto.graph.output
    assert x.name == "input" and y.name == "output"
    assert x.type.tensor_type.elem_type == onnx.TensorProto.INT64  # Embedding ids
    assert y.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    assert dims == ["N", 3]
    assert [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == [
        "N",
        2,
    ]


# -- the float64 decompositions, on their own ------------------------------------


def _elementwise(build, x: np.ndarray) -> np.ndarray:
    graph = onnx_graph.OnnxGraph(np.float64, 17)
    name = graph.add_input("input", x.shape[1:], integer=False)
    graph.add_output(build(graph, name), "output")
    return run_both(graph.to_model("test"), x)[0]


def test_erfc_matches_the_c_library_to_a_few_ulps_over_the_whole_range():
    x = np.concatenate([np.linspace(-30, 30, 6001), [-0.46875, 0.46875, -4.0, 4.0]])
    got = _elementwise(onnx_graph.erfc, x[None, :])[0]
    want = np.array([math.erfc(v) for v in x])
    # relative, down to the subnormals (below 2.2e-308 digits are lost anyway)
    np.testing.assert_allclose(got, want, rtol=5e-15, atol=1e-300)


@pytest.mark.parametrize("t", [-1e-20, -1e-9, -1e-5, -0.3, -5.0, -50.0, -800.0, 0.0])
def test_expm1_is_accurate_near_zero_and_exact_far_out(t):
    got = _elementwise(onnx_graph.expm1, np.array([[t]]))[0, 0]
    assert got == pytest.approx(math.expm1(t), rel=1e-15, abs=0)


@pytest.mark.parametrize("e", [0.0, 1e-20, 1e-9, 1e-5, 0.3, 1.0])
def test_log1p_is_accurate_near_zero(e):
    got = _elementwise(onnx_graph.log1p, np.array([[e]]))[0, 0]
    assert got == pytest.approx(math.log1p(e), rel=1e-15, abs=0)


def test_the_registry_and_onnx_module_are_what_to_onnx_uses():
    assert onnx_layers.TO_ONNX is onnx_graph.TO_ONNX
    assert onnx_layers.MIN_OPSET == 17
