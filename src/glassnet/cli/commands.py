"""What each `glassnet` subcommand does, called by glassnet.cli after parsing.

Results go to stdout, progress and logs to stderr. Each function returns the
exit code; errors are raised (glassnet errors, OSError) and turned into one
line by cli.main.
"""

import argparse
import contextlib
import io
import os
import sys

import numpy as np

from glassnet.train.checkpoints import BackupAndRestore


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _is_config(path: str) -> bool:
    return path.endswith(".toml")


# -- arguments ---------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    """ "4" -> (4,); "1,28,28" -> (1, 28, 28)."""
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected sizes such as 4 or 1,28,28, got {text!r}"
        )
    return shape


def add_commands(commands) -> None:
    """Add train, predict, gradcheck and plot to an argparse subparsers object."""
    train = commands.add_parser(
        "train", help="train the model a TOML config describes; write model and history"
    )
    train.add_argument("config", metavar="CONFIG.toml", help="training configuration")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument(
        "--epochs", type=_positive_int, help="override the config's epochs"
    )
    train.add_argument("-o", "--output", metavar="MODEL", help="model file to write")
    train.add_argument("--history", metavar="CSV", help="history CSV to write")
    train.add_argument(
        "--checkpoint", metavar="PATH", help="checkpoint file (default: MODEL.ckpt)"
    )
    train.add_argument(
        "--restart",
        action="store_true",
        help="ignore a checkpoint left by an interrupted run",
    )
    noise = train.add_mutually_exclusive_group()
    noise.add_argument(
        "-q", "--quiet", dest="verbosity", action="store_const", const="quiet"
    )
    noise.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const="verbose",
        help="one line per epoch on stderr",
    )

    predict = commands.add_parser(
        "predict", help="model outputs for DATA, CSV on stdout"
    )
    predict.add_argument("model", metavar="MODEL", help="a model file (model.save)")
    predict.add_argument(
        "data", metavar="DATA", help="CSV or NPZ file; - reads CSV from stdin"
    )
    kind = predict.add_mutually_exclusive_group()
    kind.add_argument(
        "--proba",
        dest="output",
        action="store_const",
        const="proba",
        help="class probabilities",
    )
    kind.add_argument(
        "--classes",
        dest="output",
        action="store_const",
        const="class",
        help="the predicted class of each row",
    )
    predict.set_defaults(output="values")
    predict.add_argument(
        "--target", metavar="COLUMN", help="a label column of DATA to skip"
    )
    predict.add_argument("--x-key", default="X", help="NPZ: the input array's name")
    predict.add_argument(
        "--batch-size", type=_positive_int, help="rows per forward pass"
    )

    check = commands.add_parser(
        "gradcheck", help="finite-difference check of a model file or a config's model"
    )
    check.add_argument("target_file", metavar="MODEL|CONFIG.toml")
    check.add_argument("--data", metavar="FILE", help="CSV/NPZ rows to check on")
    check.add_argument(
        "--target", metavar="COLUMN", help="the label column of a CSV --data"
    )
    check.add_argument(
        "--rows", type=_positive_int, default=10, help="rows (default 10)"
    )
    check.add_argument("--loss", help="loss name (default: inferred)")
    check.add_argument(
        "--input-shape", type=_shape, help="one example's shape, e.g. 1,28,28"
    )
    check.add_argument("--seed", type=int, help="override the config's seed")

    plot = commands.add_parser(
        "plot",
        help="PNG of a history CSV, or of a model (filters or decision boundary)",
    )
    plot.add_argument("source", metavar="HISTORY.csv|MODEL")
    plot.add_argument("-o", "--output", metavar="PNG", help="default: SOURCE with .png")
    plot.add_argument(
        "--data", metavar="FILE", help="2-feature CSV/NPZ: decision boundary"
    )
    plot.add_argument(
        "--target", metavar="COLUMN", help="the label column of a CSV --data"
    )


# -- train ---------------------------------------------------------------------


class _LoggedBackup(BackupAndRestore):
    """BackupAndRestore that says on stderr when it resumes an interrupted run."""

    def on_train_begin(self, logs: dict) -> None:
        super().on_train_begin(logs)
        if self.restored_epoch is not None:
            _log(
                f"resuming from the checkpoint {self.path} after epoch "
                f"{self.restored_epoch + 1} (--restart starts over)"
            )


# -- train ---------------------------------------------------------------------


def train(args) -> int:
    """Train the model a TOML configuration describes; write the model file and
    the history CSV. A checkpoint is written after every epoch and removed at the
    end; if one is found at the start (an interrupted run), training resumes."""
    from glassnet.cli.config import build_model, build_optimizer, load_config, load_data
    from glassnet.errors import ModelFileError
    from glassnet.train.history_csv import write_history_csv

    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    model_path = args.output or cfg.model_path
    history_path = args.history or cfg.history_path
    checkpoint = args.checkpoint or cfg.checkpoint_path or model_path + ".ckpt"
    if args.restart:
        with contextlib.suppress(FileNotFoundError):
            os.remove(checkpoint)
    X, y = load_data(cfg, args.seed)
    model = build_model(cfg, args.seed)
    optimizer = build_optimizer(cfg)
    backup = _LoggedBackup(checkpoint, delete_on_end=False)
    verbose = {None: "auto", "quiet": 0, "verbose": 2}[args.verbosity]
    try:
        history = model.fit(
            X,
            y,
            loss=cfg.loss,
            optimizer=optimizer,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            shuffle=cfg.shuffle,
            validation_split=cfg.validation_split,
            callbacks=[backup],
            verbose=verbose,
        )
    except ModelFileError as exc:
        if exc.path != checkpoint:
            raise
        raise ModelFileError(
            checkpoint,
            f"{exc.reason}; glassnet train --restart ignores this checkpoint",
        ) from None
    except KeyboardInterrupt:
        if os.path.exists(checkpoint):
            _log(
                f"interrupted: the checkpoint {checkpoint} holds the last finished "
                "epoch; run the same command again to resume"
            )
        raise
    model.save(model_path)
    write_history_csv(history, history_path)
    with contextlib.suppress(FileNotFoundError):
        os.remove(checkpoint)  # only now: the model file holds the result
    _log(f"wrote {model_path} and {history_path}")
    last = {k: v[-1] for k, v in history.history.items() if k != "lr"}
    print(f"epochs={len(history)} " + " ".join(f"{k}={v:.6g}" for k, v in last.items()))
    return 0


# -- predict -------------------------------------------------------------------


def predict(args) -> int:
    """Model outputs for every row of DATA, as CSV on stdout."""
    from glassnet.io.datafiles import read_table, write_csv
    from glassnet.io.serialization import load

    model = load(args.model)
    X, _ = read_table(args.data, target=args.target, x_key=args.x_key)
    if args.output == "proba":
        out = model.predict_proba(X, batch_size=args.batch_size)
        header = [f"proba_{k}" for k in range(out.shape[1])]
    elif args.output == "class":
        out = model.predict_classes(X, batch_size=args.batch_size)[:, None]
        header = ["class"]
    else:
        out = model.predict(X, batch_size=args.batch_size)
        out = out.reshape(len(out), -1)
        header = [f"output_{k}" for k in range(out.shape[1])]
    write_csv(sys.stdout, out, header)
    sys.stdout.flush()  # a closed pipe is reported here, inside main's handler
    return 0


# -- gradcheck -----------------------------------------------------------------


def gradcheck(args) -> int:
    """Finite-difference check of a saved model (or a configuration's untrained
    model) on a few rows; the report on stdout, exit 1 if it fails."""
    from glassnet.check.gradcheck import gradcheck as check
    from glassnet.io.datafiles import read_table
    from glassnet.nn.losses import takes_labels
    from glassnet.train.loop import infer_loss

    X = y = None
    loss = args.loss
    if _is_config(args.target_file):
        from glassnet.cli.config import build_model, load_config, load_data

        cfg = load_config(args.target_file)
        model = build_model(cfg, args.seed)
        if args.data is None:
            X, y = load_data(cfg, args.seed)
            loss = loss or cfg.loss
    else:
        from glassnet.io.serialization import load

        model = load(args.target_file)
    if args.data is not None:
        X, y = read_table(args.data, target=args.target)
    if X is None:  # no data: random inputs, and <model(X), dout> as the objective
        first = model.layers[0] if model.layers else None
        shape = tuple(args.input_shape or ())
        if not shape and hasattr(first, "in_features"):
            shape = (first.in_features,)
        if not shape:
            from glassnet.errors import ConfigError

            raise ConfigError(
                "gradcheck: pass --data FILE or --input-shape (one example's shape)"
            )
        rng = np.random.default_rng(args.seed or 0)
        X = rng.standard_normal((args.rows, *shape))
    X = X[: args.rows]
    if y is not None:
        y = y[: args.rows]
        if loss is None:
            loss = infer_loss(model, y)
        if np.issubdtype(np.asarray(y).dtype, np.floating) and takes_labels(loss):
            y = np.asarray(y).astype(np.int64)
    report = check(model, X, y, loss=loss if y is not None else None)
    print(report)
    return 0 if report.passed else 1


# -- plot ----------------------------------------------------------------------


def plot(args) -> int:
    """A PNG of a history CSV's curves, a model's first Conv2D filters, or a
    model's decision boundary on 2-feature data (--data)."""
    from glassnet.io._atomic import atomic_write

    try:
        import glassnet.plot as gnplot
    except ImportError as exc:
        raise ImportError(
            f"glassnet plot needs matplotlib: pip install 'glassnet[plot]' ({exc})"
        ) from None
    source = args.source
    out = args.output or os.path.splitext(source)[0] + ".png"
    if source.endswith(".csv"):
        from glassnet.train.history_csv import read_history_csv

        fig = gnplot.history(read_history_csv(source))
    else:
        fig = _model_figure(gnplot, args)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(out, buffer.getvalue())
    print(out)
    return 0


def _model_figure(gnplot, args):
    from glassnet.errors import ConfigError
    from glassnet.io.serialization import load
    from glassnet.nn.layers import Conv2D

    model = load(args.source)
    if args.data is not None:
        from glassnet.io.datafiles import read_table

        X, y = read_table(args.data, target=args.target)
        if y is not None and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        return gnplot.decision_boundary(model, X, y)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    if convs:
        return gnplot.filters(convs[0])
    raise ConfigError(
        f"{args.source}: nothing to plot: the model has no Conv2D layer; pass "
        "--data FILE (two feature columns) for a decision boundary"
    )
