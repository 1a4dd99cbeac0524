"""`glassnet export`, and the promise that glassnet imports neither torch nor onnx
until an export asks for one of them."""

import subprocess
import sys

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli import main


def test_import_glassnet_and_its_export_module_load_neither_torch_nor_onnx():
    code = (
        "import sys, glassnet as gn, glassnet.export\n"
        "from glassnet.cli import build_parser\n"
        "build_parser()\n"
        "assert callable(gn.export.to_onnx) and callable(gn.export.to_torch)\n"
        "heavy = ['torch', 'onnx', 'onnxruntime']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def iris_file(tmp_path):
    model = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), seed=0)
    path = tmp_path / "iris.safetensors"
    model.save(path)
    return path


@pytest.fixture
def cnn_file(tmp_path):
    model = gn.Sequential(
        gn.Conv2D(1, 2, 3), gn.ReLU(), gn.Flatten(), gn.Dense(32, 2), seed=0
    )
    path = tmp_path / "cnn.safetensors"
    model.save(path)
    return path


def run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.onnx
@pytest.mark.parametrize(
    "options, dtype, opset, output",
    [
        ([], np.float32, 17, "output"),
        (["--proba"], np.float32, 17, "proba"),
        (["--opset", "18", "--float32"], np.float32, 18, "output"),
    ],
)
def test_export_writes_an_onnx_file_that_serves_the_model(
    iris_file, tmp_path, capsys, options, dtype, opset, output
):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    target = tmp_path / "iris.onnx"
    code, out, err = run(["export", iris_file, "-o", target, *options], capsys)
    assert code == 0, err
    assert out == f"wrote {target}\n"
    proto = onnx.load(target)
    assert proto.opset_import[0].version == opset
    assert [o.name for o in proto.graph.output] == [output]
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(dtype)
    got = session.run(None, {"input": x})[0]
    model = gn.load(iris_file)
    want = model.predict_proba(x) if output == "proba" else model.predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.onnx
def test_export_of_an_image_model_takes_the_input_shape(cnn_file, tmp_path, capsys):
    pytest.importorskip("onnx")
    target = tmp_path / "cnn.onnx"
    code, _, err = run(
        ["export", cnn_file, "-o", target, "--input-shape", "1,6,6"], capsys
    )
    assert code == 0, err
    assert target.stat().st_size > 0


@pytest.mark.torch
def test_export_writes_a_torch_program(iris_file, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    target = tmp_path / "iris.pt"
    code, out, err = run(["export", iris_file, "-o", target], capsys)
    assert code == 0, err
    module = torch.export.load(target).module()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(
        module(torch.from_numpy(x)).detach().numpy(),
        gn.load(iris_file).predict(x),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["{iris}", "-o", "{tmp}/iris.txt"], "must end in .onnx (ONNX) or .pt"),
        (["{iris}", "-o", "{tmp}/iris.pt", "--proba"], "apply to ONNX files only"),
        (["{tmp}/missing.safetensors", "-o", "{tmp}/m.onnx"], "missing.safetensors"),
        (["{cnn}", "-o", "{tmp}/cnn.onnx"], "input_shape is needed for a model whose"),
        (["{iris}", "-o", "{tmp}/iris.onnx", "--opset", "12"], "opset must be in [17"),
        (["{iris}", "-o", "{tmp}/i.onnx", "--input-shape", "5"], "does not fit"),
    ],
)
def test_export_errors_are_one_line_and_exit_1(
    args, message, iris_file, cnn_file, tmp_path, capsys
):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    filled = [
        a.format(iris=iris_file, cnn=cnn_file, tmp=tmp_path) for a in ["export", *args]
    ]
    code, out, err = run(filled, capsys)
    assert code == 1 and out == ""
    assert err.startswith("glassnet export: error: ") and err.count("\n") == 1
    assert message in err


def test_the_readme_export_table_has_a_row_for_every_layer():
    from pathlib import Path

    from glassnet.nn.layers.base import builtin_layers

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    start = readme.index("## Export: PyTorch and ONNX")
    section = readme[start : readme.index("\n## ", start + 1)]
    assert readme.index("## Export: PyTorch and ONNX") < readme.index("## Speed")
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    first_cells = " ".join(row.split("|")[1] for row in rows)
    missing = [name for name in builtin_layers() if f"`{name}`" not in first_cells]
    assert missing == []
