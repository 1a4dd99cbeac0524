"""`glassnet train` against `fit` doing the same work: the README's Iris config,
500 epochs, both in this process (best of 5 after one warm-up each).

    python benchmarks/cli_train_vs_fit.py      # prints "train ... fit ... ratio ..."

The goal (issue 12) is a ratio within 1.5x; before the checkpoint cadence
(a fsynced checkpoint after every epoch) it was about 26x.
"""

import contextlib
import io
import os
import tempfile
import time

from glassnet.cli import main
from glassnet.cli.config import build_model, build_optimizer, load_config, load_data

CONFIG = """\
seed = 0

[data]
builtin = "iris"

[model]
layers = [
    { type = "Dense", in_features = 4, out_features = 8 },
    "tanh",
    { type = "Dense", in_features = 8, out_features = 3 },
]

[train]
loss = "softmax_cross_entropy"
epochs = 500
batch_size = 16
validation_split = 0.2

[optimizer]
name = "adam"
lr = 0.01
"""


def run_train(config: str) -> float:
    folder = os.path.dirname(config)
    for name in ("iris.safetensors", "iris-history.csv"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, name))
    start = time.perf_counter()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        assert main(["train", config, "-q"]) == 0
    return time.perf_counter() - start


def run_fit(config: str) -> float:
    start = time.perf_counter()
    cfg = load_config(config)
    X, y = load_data(cfg)
    model = build_model(cfg)
    model.fit(
        X,
        y,
        loss=cfg.loss,
        optimizer=build_optimizer(cfg),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        validation_split=cfg.validation_split,
        verbose=0,
    )
    return time.perf_counter() - start


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        config = os.path.join(folder, "iris.toml")
        with open(config, "w") as fh:
            fh.write(CONFIG)
        run_train(config), run_fit(config)  # warm-up
        train = min(run_train(config) for _ in range(5))
        fit = min(run_fit(config) for _ in range(5))
    print(f"train {train:.3f} s  fit {fit:.3f} s  ratio {train / fit:.2f}")
