"""The `glassnet` command, run in a subprocess: exit codes, stdout and stderr.

Conventions checked: results on stdout, logs on stderr, exit 2 with usage on bad
arguments, one line and exit 1 (no traceback) on a bad file, exit 130 on Ctrl-C
with the checkpoint intact, quiet exit when stdout's reader goes away.
"""

import contextlib
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli.config import build_model, build_optimizer, load_config, load_data

IRIS_TOML = """\
seed = 0

[data]
builtin = "iris"

[model]
layers = [
    { type = "Dense", in_features = 4, out_features = 6 },
    "tanh",
    { type = "Dense", in_features = 6, out_features = 3 },
]

[train]
loss = "softmax_cross_entropy"
epochs = 5
batch_size = 16
validation_split = 0.2

[optimizer]
name = "adam"
lr = 0.01
"""

XOR_TOML = """\
seed = 1

[data]
builtin = "xor"
options = { n_samples = 32, noise = 0.1 }

[model]
layers = [
    { type = "Dense", in_features = 2, out_features = 8 },
    "tanh",
    { type = "Dense", in_features = 8, out_features = 2 },
]

[train]
loss = "softmax_cross_entropy"
epochs = 100000
batch_size = 8

[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
"""


def glassnet(*args, cwd, stdin: str | None = None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "glassnet", *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _one_line_error(result, command: str, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"glassnet {command}: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A directory with iris.toml, the model and history it trains, and iris.csv."""
    root = tmp_path_factory.mktemp("cli")
    (root / "iris.toml").write_text(IRIS_TOML)
    result = glassnet("train", "iris.toml", cwd=root)
    assert result.returncode == 0, result.stderr
    X, y = gn.datasets.load_iris()
    table = np.column_stack([X, y])
    np.savetxt(
        root / "iris.csv", table, delimiter=",", header="a,b,c,d,species", comments=""
    )
    return root, result


# -- arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["train"],
        ["predict", "model.safetensors"],
        ["predict", "m", "d", "--batch-size", "0"],
        ["predict", "m", "d", "--proba", "--classes"],
        ["gradcheck", "m", "--rows", "many"],
        ["train", "c.toml", "--epochs", "-3"],
    ],
)
def test_bad_arguments_exit_2_with_usage(args, tmp_path):
    result = glassnet(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: glassnet")


# -- train ----------------------------------------------------------------------


def test_train_writes_model_and_history_and_logs_on_stderr(trained):
    root, result = trained
    assert result.stdout.startswith("epochs=5 loss=")
    assert len(result.stdout.splitlines()) == 1
    assert "wrote" in result.stderr and "\r" not in result.stderr  # no bar off a tty
    assert not (root / "iris.safetensors.ckpt").exists()
    # the command adds no logic: the library steps give the same bytes
    cfg = load_config(root / "iris.toml")
    X, y = load_data(cfg)
    model = build_model(cfg)
    history = model.fit(
        X,
        y,
        loss=cfg.loss,
        optimizer=build_optimizer(cfg),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        validation_split=cfg.validation_split,
        verbose=0,
    )
    model.save(root / "library.safetensors")
    saved = (root / "iris.safetensors").read_bytes()
    assert saved == (root / "library.safetensors").read_bytes()
    rows = (root / "iris-history.csv").read_text().splitlines()
    assert rows[0] == "epoch," + ",".join(history.history)
    assert len(rows) == 1 + len(history)
    assert rows[-1].split(",")[1] == repr(history["loss"][-1])


def test_same_seed_gives_a_byte_identical_model_file(tmp_path):
    (tmp_path / "iris.toml").write_text(IRIS_TOML)
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        result = glassnet(
            "train",
            "iris.toml",
            "--seed",
            seed,
            "-o",
            f"{name}.st",
            "--history",
            f"{name}.csv",
            "--epochs",
            2,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    a, b, c = ((tmp_path / f"{n}.st").read_bytes() for n in "abc")
    assert a == b and a != c
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_train_from_csv_and_npz_files(tmp_path):
    X, y = gn.datasets.make_blobs(60, centers=3, n_features=2, seed=0)
    np.savetxt(
        tmp_path / "blobs.csv",
        np.column_stack([y, X]),
        delimiter=",",
        header="label,x0,x1",
        comments="",
    )
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    common = IRIS_TOML.split("[model]")[1].replace("4, out", "2, out")
    for data in ['path = "blobs.csv"\ntarget = "label"', 'path = "blobs.npz"']:
        (tmp_path / "c.toml").write_text(f"seed = 0\n[data]\n{data}\n[model]{common}")
        result = glassnet("train", "c.toml", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        model = gn.load(tmp_path / "c.safetensors")
        assert model.predict(X).shape == (60, 3)


# -- predict --------------------------------------------------------------------


def test_predict_writes_exact_csv_on_stdout(trained):
    root, _ = trained
    X, _ = gn.datasets.load_iris()
    model = gn.load(root / "iris.safetensors")
    result = glassnet(
        "predict", "iris.safetensors", "iris.csv", "--target", "species", cwd=root
    )
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "output_0,output_1,output_2" and len(lines) == 151
    values = np.array([[np.float32(v) for v in line.split(",")] for line in lines[1:]])
    assert np.array_equal(values, model.predict(X))  # shortest repr reads back exactly
    proba = glassnet(
        "predict",
        "iris.safetensors",
        "-",
        "--proba",
        cwd=root,
        stdin="5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n",
    )
    rows = np.loadtxt(proba.stdout.splitlines()[1:], delimiter=",")
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-6)
    classes = glassnet(
        "predict",
        "iris.safetensors",
        "iris.csv",
        "--target",
        "-1",
        "--classes",
        cwd=root,
    )
    predicted = np.array([int(v) for v in classes.stdout.splitlines()[1:]])
    assert np.array_equal(predicted, model.predict_classes(X))


def test_predict_into_a_closed_pipe_exits_quietly(trained):
    root, _ = trained
    rows = np.random.default_rng(0).normal(size=(40000, 4))
    np.savetxt(root / "many.csv", rows, delimiter=",")
    command = (
        f"'{sys.executable}' -m glassnet predict iris.safetensors many.csv "
        "2>stderr.txt | head -1; exit ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        ["bash", "-c", command], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0
    assert result.stdout == "output_0,output_1,output_2\n"
    assert (root / "stderr.txt").read_text() == ""


# -- bad files --------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_bad_files_give_one_line_and_exit_1(trained, tmp_path):
    root, _ = trained
    marker = tmp_path / "pwned"
    (tmp_path / "garbage.safetensors").write_text("just some text\n")
    (tmp_path / "model.pt").write_bytes(pickle.dumps(_Payload(str(marker))))
    whole = (root / "iris.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(whole[: len(whole) - 7])
    (tmp_path / "bad.csv").write_text("1,2,3,4\n5,6,x,8\n")
    (tmp_path / "ragged.csv").write_text("1,2,3,4\n5,6\n")
    np.savez(
        tmp_path / "objects.npz", X=np.array([_Payload(str(marker))], dtype=object)
    )
    (tmp_path / "bad.toml").write_text("seed = \n")
    (tmp_path / "unknown.toml").write_text(
        IRIS_TOML.replace('"Dense"', '"os.system"', 1)
    )
    model = root / "iris.safetensors"
    cases = [
        (["predict", tmp_path / "missing.safetensors", "x.csv"], "missing.safetensors"),
        (["predict", tmp_path / "garbage.safetensors", "x.csv"], "garbage.safetensors"),
        (["predict", tmp_path / "model.pt", "x.csv"], "pickle"),
        (["summary", tmp_path / "cut.safetensors"], "cut.safetensors"),
        (["gradcheck", tmp_path / "cut.safetensors"], "truncated"),
        (["predict", model, tmp_path / "missing.csv"], "missing.csv"),
        (["predict", model, tmp_path / "bad.csv"], "row 2 (line 2), column 3: 'x'"),
        (["predict", model, tmp_path / "ragged.csv"], "data row 2 has 2 columns"),
        (["predict", model, tmp_path / "objects.npz"], "Python objects"),
        (["train", tmp_path / "bad.toml"], "not valid TOML"),
        (["train", tmp_path / "unknown.toml"], "unknown layer type 'os.system'"),
        (["train", tmp_path / "missing.toml"], "no such file"),
        (["plot", tmp_path / "bad.csv"], "bad.csv"),
    ]
    for args, fragment in cases:
        _one_line_error(glassnet(*args, cwd=tmp_path), args[0], fragment)
    assert not marker.exists()


# -- Ctrl-C and resume ---------------------------------------------------------------


def test_ctrl_c_keeps_the_checkpoint_and_the_same_command_resumes(tmp_path):
    (tmp_path / "xor.toml").write_text(XOR_TOML)
    checkpoint = tmp_path / "xor.safetensors.ckpt"
    child = subprocess.Popen(
        [sys.executable, "-m", "glassnet", "train", "xor.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell may start background jobs with SIGINT ignored; undo that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while (
        not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    time.sleep(0.2)  # a few more epochs, so Ctrl-C may land inside a save
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert out == "" and "Traceback" not in err
    assert "run the same command again to resume" in err
    assert not (tmp_path / "xor.safetensors").exists()
    assert [p.name for p in tmp_path.glob("*.tmp")] == []
    epoch = gn.load_checkpoint(checkpoint).epoch  # intact and readable
    epochs = epoch + 4
    resumed = glassnet("train", "xor.toml", "--epochs", epochs, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and not checkpoint.exists()
    fresh = glassnet(
        "train",
        "xor.toml",
        "--epochs",
        epochs,
        "-o",
        "fresh.st",
        "--history",
        "fresh.csv",
        cwd=tmp_path,
    )
    assert fresh.returncode == 0 and "resuming" not in fresh.stderr
    assert (tmp_path / "xor.safetensors").read_bytes() == (
        tmp_path / "fresh.st"
    ).read_bytes()
    history = (tmp_path / "xor-history.csv").read_text()
    assert history == (tmp_path / "fresh.csv").read_text()
    assert len(history.splitlines()) == 1 + epochs


def test_a_checkpoint_of_another_model_is_refused_until_restart(tmp_path):
    (tmp_path / "iris.toml").write_text(IRIS_TOML)
    other = gn.Sequential(gn.Dense(4, 3), seed=0)
    X, y = gn.datasets.load_iris()
    other.fit(
        X,
        y,
        epochs=1,
        verbose=0,
        callbacks=[
            gn.BackupAndRestore(tmp_path / "iris.safetensors.ckpt", delete_on_end=False)
        ],
    )
    refused = glassnet("train", "iris.toml", cwd=tmp_path)
    _one_line_error(refused, "train", "different model architecture", "--restart")
    restarted = glassnet("train", "iris.toml", "--restart", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr


# -- gradcheck, summary, plot ---------------------------------------------------------


def test_gradcheck_of_a_model_file_and_of_a_config(trained):
    root, _ = trained
    for target in ["iris.safetensors", "iris.toml"]:
        result = glassnet("gradcheck", target, cwd=root)
        assert result.returncode == 0, result.stderr
        assert "gradcheck PASSED" in result.stdout
    with_data = glassnet(
        "gradcheck",
        "iris.safetensors",
        "--data",
        "iris.csv",
        "--target",
        "species",
        "--rows",
        5,
        "--loss",
        "softmax_cross_entropy",
        cwd=root,
    )
    assert with_data.returncode == 0 and "PASSED" in with_data.stdout


def test_summary_prints_the_layers(trained):
    root, _ = trained
    result = glassnet("summary", "iris.safetensors", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "Dense(4, 6)" in result.stdout and "Tanh" in result.stdout


def test_plot_writes_png_files(trained, tmp_path):
    pytest.importorskip("matplotlib")
    root, _ = trained
    result = glassnet("plot", "iris-history.csv", "-o", tmp_path / "h.png", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    X, y = gn.datasets.make_xor(16, noise=0.1, seed=0)
    model = gn.Sequential(gn.Dense(2, 4), gn.Tanh(), gn.Dense(4, 2), seed=0)
    model.save(tmp_path / "xor.safetensors")
    np.savetxt(tmp_path / "xor.csv", np.column_stack([X, y]), delimiter=",")
    boundary = glassnet(
        "plot", "xor.safetensors", "--data", "xor.csv", "--target", -1, cwd=tmp_path
    )
    assert boundary.returncode == 0, boundary.stderr
    assert (tmp_path / "xor.png").stat().st_size > 1000
    nothing = glassnet("plot", "xor.safetensors", cwd=tmp_path)
    _one_line_error(nothing, "plot", "no Conv2D layer")
    assert os.path.getsize(tmp_path / "xor.png") > 1000


# -- the README's section ----------------------------------------------------------


def _readme_section() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("## Save, load, checkpoints and the command line")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_readme_section_snippets_run(tmp_path, monkeypatch):
    section = _readme_section()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in re.findall(r"^```python\n(.*?)^```", section, re.S | re.M):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "README.md", "exec"), namespace)
    assert not (tmp_path / "iris.ckpt").exists()  # removed after the normal end
    (toml,) = re.findall(r"^```toml\n(.*?)^```", section, re.S | re.M)
    (tmp_path / "iris.toml").write_text(toml)
    result = glassnet("train", "iris.toml", "--epochs", 3, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert gn.load(tmp_path / "iris.safetensors").predict(np.ones((1, 4))).shape == (
        1,
        3,
    )
