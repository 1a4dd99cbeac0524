"""The `glassnet` command for quick experiments: checkpoint cadence, class names
in CSV files, hints in CLI terms, exit codes, overwrite policy, signals."""

import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli import main
from glassnet.cli.config import build_model, load_config
from glassnet.errors import DataError, ModelFileError
from glassnet.io import serialization

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
epochs = EPOCHS
batch_size = 16

[optimizer]
name = "adam"
lr = 0.01
"""

CSV_TOML = """\
seed = 0

[data]
path = "flowers.csv"
target = "species"

[model]
layers = [
    { type = "Dense", in_features = 4, out_features = 6 },
    "tanh",
    { type = "Dense", in_features = 6, out_features = 3 },
]

[train]
epochs = 30
batch_size = 16

[optimizer]
name = "adam"
lr = 0.02
"""

NAMES = np.array(["setosa", "versicolor", "virginica"])


def glassnet(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "glassnet", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result, command: str, status: int = 1) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"glassnet {command}: error: "), lines[0]
    return lines[0]


def write_iris(folder, epochs: int = 5, name: str = "iris.toml"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(IRIS_TOML.replace("EPOCHS", str(epochs)))
    return folder / name


def write_flowers(folder, header: bool = True):
    """Iris as a CSV with the species as names in the last column."""
    X, y = gn.datasets.load_iris()
    lines = ["a,b,c,d,species"] if header else []
    lines += [
        ",".join(map(str, row)) + "," + NAMES[k] for row, k in zip(X, y, strict=True)
    ]
    (folder / "flowers.csv").write_text("\n".join(lines) + "\n")
    return X, NAMES[y]


# -- arguments and exit codes --------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["summary", "{model}", "--batch-size", "0"], "--batch-size"),
        (["explain", "{model}", "--batch-size", "0"], "--batch-size"),
        (["train", "c.toml", "--checkpoint-every", "0"], "--checkpoint-every"),
        (["train", "c.toml", "--checkpoint-seconds", "-1"], "--checkpoint-seconds"),
        (["train", "c.toml", "--no-checkpoint", "--checkpoint-every", "2"], "not"),
        (["gradcheck", "{headless}"], "--input-shape 1,6,6"),
        (["summary", "{conv}"], "--input-shape 1,6,6"),
        (["explain", "{conv}"], "--input-shape 1,6,6"),
    ],
)
def test_usage_errors_exit_2_with_the_usage(args, fragment, tmp_path, capsys):
    gn.Sequential(gn.Dense(4, 3), seed=0).save(tmp_path / "m.safetensors")
    gn.Sequential(gn.Tanh(), gn.Dense(4, 3), seed=0).save(tmp_path / "h.safetensors")
    conv = gn.Sequential(gn.Conv2D(1, 2, 3), gn.Flatten(), seed=0)
    conv.save(tmp_path / "c.safetensors")
    paths = {
        "{model}": "m.safetensors",
        "{headless}": "h.safetensors",
        "{conv}": "c.safetensors",
    }
    args = [str(tmp_path / paths[a]) if a in paths else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: glassnet") and fragment in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"glassnet {gn.__version__}"


@pytest.mark.parametrize("command", ["summary", "explain", "predict", "plot"])
def test_every_subcommand_reports_a_missing_file_in_one_line(command, tmp_path):
    args = [command, "missing.safetensors"]
    if command == "predict":
        args.append("data.csv")
    line = one_line(glassnet(*args, cwd=tmp_path), command)
    assert "missing" in line


# -- train: paths, cadence, overwrite policy -------------------------------------------


def test_a_config_in_another_folder_writes_beside_it(tmp_path):
    write_iris(tmp_path / "configs")
    result = glassnet("train", "configs/iris.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "configs" / "iris.safetensors").exists()
    assert (tmp_path / "configs" / "iris-history.csv").exists()


@pytest.mark.parametrize(
    "every, seconds, saved",
    [
        (1, None, list(range(10))),
        (3, None, [2, 5, 8]),
        (None, 3600.0, []),  # a fast run writes no checkpoint at all
        (None, 1e-9, list(range(10))),
    ],
)
def test_checkpoint_cadence(every, seconds, saved, tmp_path, monkeypatch):
    from glassnet.cli import commands

    written = []
    monkeypatch.setattr(
        commands.BackupAndRestore,
        "on_epoch_end",
        lambda self, epoch, logs: written.append(epoch),
    )
    backup = commands._LoggedBackup(
        str(tmp_path / "m.ckpt"), every=every, seconds=seconds
    )
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    model.fit(X, y, epochs=10, callbacks=[backup], verbose=0)
    assert written == saved
    assert backup.saved_epoch == (saved[-1] if saved else None)


def test_restart_and_the_end_remove_the_previous_checkpoint_too(tmp_path):
    write_iris(tmp_path, epochs=3)
    ckpt = tmp_path / "iris.safetensors.ckpt"
    ran = glassnet("train", "iris.toml", "--checkpoint-every", "1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ckpt*")) == []
    model = build_model(load_config(tmp_path / "iris.toml"))
    gn.save_checkpoint(str(ckpt) + ".prev", model, epoch=0)  # a stale fallback
    restarted = glassnet("train", "iris.toml", "--restart", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming" not in restarted.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ckpt*")) == []


def test_no_checkpoint_ignores_and_writes_no_checkpoint(tmp_path):
    write_iris(tmp_path)
    (tmp_path / "iris.safetensors.ckpt").write_bytes(b"not a checkpoint")
    result = glassnet("train", "iris.toml", "--no-checkpoint", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" not in result.stderr


@pytest.mark.parametrize("command", ["train", "plot"])
def test_o_refuses_to_replace_a_file_unless_force(command, tmp_path):
    write_iris(tmp_path)
    assert glassnet("train", "iris.toml", cwd=tmp_path).returncode == 0
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    source = "iris.toml" if command == "train" else "iris-history.csv"
    refused = glassnet(command, source, "-o", "out.bin", cwd=tmp_path)
    assert "--force" in one_line(refused, command)
    assert target.read_bytes() == b"keep me"
    if command == "plot":
        pytest.importorskip("matplotlib")
    forced = glassnet(command, source, "-o", "out.bin", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() != b"keep me"
    help_text = glassnet(command, "--help", cwd=tmp_path).stdout
    assert "--force" in help_text


def test_a_missing_output_folder_is_named_before_training(tmp_path):
    write_iris(tmp_path, epochs=100000)
    result = glassnet("train", "iris.toml", "-o", "nowhere/m.safetensors", cwd=tmp_path)
    assert "the folder nowhere does not exist" in one_line(result, "train")
    with pytest.raises(ModelFileError, match="the folder .*nowhere does not exist"):
        gn.Sequential(gn.Dense(4, 3), seed=0).save(tmp_path / "nowhere" / "m.st")


# -- class names in CSV files ------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_string_class_labels_train_and_predict_with_their_names(header, tmp_path):
    X, names = write_flowers(tmp_path, header)
    toml = CSV_TOML if header else CSV_TOML.replace('"species"', "-1")
    (tmp_path / "flowers.toml").write_text(toml)
    trained = glassnet("train", "flowers.toml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert serialization.read_extra(tmp_path / "flowers.safetensors") == {
        "classes": NAMES.tolist()
    }
    target = "species" if header else "-1"
    args = ["predict", "flowers.safetensors", "flowers.csv", "--target", target]
    classes = glassnet(*args, "--classes", cwd=tmp_path)
    assert classes.returncode == 0, classes.stderr
    lines = classes.stdout.splitlines()
    assert lines[0] == "class" and set(lines[1:]) <= set(NAMES)
    assert np.mean(np.array(lines[1:]) == names) > 0.8
    proba = glassnet(*args, "--proba", cwd=tmp_path)
    header = "proba_setosa,proba_versicolor,proba_virginica"
    assert proba.stdout.splitlines()[0] == header


def test_read_table_drops_the_target_before_parsing(tmp_path):
    X, names = write_flowers(tmp_path)
    path = tmp_path / "flowers.csv"
    got_X, got_y = gn.io.datafiles.read_table(path, target="species")
    np.testing.assert_allclose(got_X, X)
    assert got_y.tolist() == names.tolist()


def test_a_label_column_left_in_gets_a_target_hint(tmp_path):
    write_flowers(tmp_path)
    gn.Sequential(gn.Dense(4, 3), seed=0).save(tmp_path / "m.safetensors")
    result = glassnet("predict", "m.safetensors", "flowers.csv", cwd=tmp_path)
    assert "--target" in one_line(result, "predict")
    np.savetxt(tmp_path / "numbers.csv", np.ones((3, 5)), delimiter=",")
    result = glassnet("predict", "m.safetensors", "numbers.csv", cwd=tmp_path)
    line = one_line(result, "predict")
    assert "has 5 feature columns" in line and "--target" in line


def test_npz_zip_bomb_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, X=np.zeros((5000, 1000)))  # 39 KB -> 40 MB
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("X.npy").compress_size < 100_000
    with pytest.raises(DataError, match="bomb.npz.*decompress"):
        gn.io.datafiles.read_table(path)
    small = tmp_path / "small.npz"
    np.savez_compressed(small, X=np.zeros((10, 4)))  # tiny files are fine
    assert gn.io.datafiles.read_table(small)[0].shape == (10, 4)


# -- signals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "sig, status, extra, hint",
    [
        (signal.SIGINT, 130, [], "run the same command again to resume"),
        (signal.SIGTERM, 143, [], "run the same command again to resume"),
        (signal.SIGINT, 130, ["--restart"], "without --restart to resume"),
    ],
)
def test_interrupt_prints_a_correct_resume_hint(sig, status, extra, hint, tmp_path):
    write_iris(tmp_path, epochs=100000)
    checkpoint = tmp_path / "iris.safetensors.ckpt"
    child = subprocess.Popen(
        [sys.executable, "-m", "glassnet", "train", "iris.toml", "-q", *extra]
        + ["--checkpoint-every", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    child.send_signal(sig)
    out, err = child.communicate(timeout=120)
    assert child.returncode == status, err
    assert "Traceback" not in err
    assert "glassnet: interrupted" in err and hint in err
    completed = gn.load_checkpoint(checkpoint).epoch  # epochs completed
    assert f"holds epoch {completed};" in err
