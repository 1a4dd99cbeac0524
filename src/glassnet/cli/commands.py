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
import time

import numpy as np

from glassnet.errors import ConfigError, DataError, ModelFileError
from glassnet.train.checkpoints import BackupAndRestore

DEFAULT_CHECKPOINT_SECONDS = 1.0  # at most about one checkpoint write a second


class UsageError(ConfigError):
    """A bad combination of arguments: cli.main prints the usage and exits 2."""


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
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
    train.add_argument(
        "-o",
        "--output",
        metavar="MODEL",
        help="model file to write (refused if it exists, unless --force; the "
        "config's default outputs are replaced)",
    )
    train.add_argument(
        "--history", metavar="CSV", help="history CSV to write (as -o: --force)"
    )
    train.add_argument(
        "--force", action="store_true", help="replace existing -o / --history files"
    )
    train.add_argument(
        "--checkpoint", metavar="PATH", help="checkpoint file (default: MODEL.ckpt)"
    )
    cadence = train.add_mutually_exclusive_group()
    cadence.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="write the checkpoint every N epochs",
    )
    cadence.add_argument(
        "--checkpoint-seconds",
        type=_positive_float,
        metavar="S",
        help=f"write the checkpoint at the end of an epoch once S seconds have "
        f"passed since the last one (default {DEFAULT_CHECKPOINT_SECONDS:g})",
    )
    cadence.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="write no checkpoint (an interrupted run starts over)",
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
    # (a model trained on class names prints them with --classes)
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
    plot.add_argument(
        "-o",
        "--output",
        metavar="PNG",
        help="default: SOURCE with .png; an existing -o file is refused unless --force",
    )
    plot.add_argument(
        "--force", action="store_true", help="replace an existing -o file"
    )
    plot.add_argument(
        "--data", metavar="FILE", help="2-feature CSV/NPZ: decision boundary"
    )
    plot.add_argument(
        "--target", metavar="COLUMN", help="the label column of a CSV --data"
    )


# -- train ---------------------------------------------------------------------


class _LoggedBackup(BackupAndRestore):
    """BackupAndRestore that writes every `every` epochs, or once `seconds` have
    passed since the last write (an fsynced write per epoch made small runs 20x
    slower than fit), and says on stderr when it resumes an interrupted run."""

    def __init__(self, path: str, *, every: int | None, seconds: float | None):
        super().__init__(path, delete_on_end=False)
        self.every, self.seconds = every, seconds
        self.saved_epoch: int | None = None  # the last epoch the file holds
        self._last = 0.0

    def on_train_begin(self, logs: dict) -> None:
        super().on_train_begin(logs)
        self.saved_epoch = self.restored_epoch
        self._last = time.monotonic()
        if self.restored_epoch is not None:
            _log(
                f"resuming from the checkpoint {self.path} after epoch "
                f"{self.restored_epoch + 1} (--restart starts over)"
            )

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.every is not None:
            due = (epoch + 1) % self.every == 0
        else:
            due = time.monotonic() - self._last >= self.seconds
        if due:
            super().on_epoch_end(epoch, logs)
            self.saved_epoch, self._last = epoch, time.monotonic()


def _epochs_in(path: str) -> int | None:
    """The epochs completed that the checkpoint file holds (read from the file:
    Ctrl-C may land after a save and before the callback notes it), or None."""
    from glassnet.train.checkpoints import load_checkpoint

    try:
        return load_checkpoint(path).epoch
    except (ModelFileError, OSError):
        return None


def _remove_checkpoint(path: str) -> None:
    """Remove the checkpoint and the previous one BackupAndRestore keeps beside
    it (path + ".prev", its fallback when the latest is damaged)."""
    for name in (path, path + ".prev"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def _check_outputs(paths: list[str], forced: list[str], force: bool) -> None:
    """Before any work: every output's folder exists, and the files in `forced`
    (given with -o / --history) exist only if --force allows replacing them."""
    for path in paths:
        folder = os.path.dirname(path)
        if folder and not os.path.isdir(folder):
            raise DataError(
                f"{path}: the folder {folder} does not exist; create it first"
            )
    for path in forced:
        if not force and os.path.exists(path):
            raise DataError(f"{path} exists; pass --force to replace it")


def train(args) -> int:
    """Train the model a TOML configuration describes; write the model file and
    the history CSV. A checkpoint is written every --checkpoint-every epochs or
    --checkpoint-seconds (default about one a second) and removed at the end;
    if one is found at the start (an interrupted run), training resumes."""
    from glassnet.cli.config import build_model, build_optimizer, load_config, load_data
    from glassnet.train.history_csv import write_history_csv

    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    model_path = args.output or cfg.model_path
    history_path = args.history or cfg.history_path
    checkpoint = args.checkpoint or cfg.checkpoint_path or model_path + ".ckpt"
    explicit = [p for p in (args.output, args.history) if p]
    _check_outputs([model_path, history_path, checkpoint], explicit, args.force)
    if args.restart:
        _remove_checkpoint(checkpoint)
    X, y = load_data(cfg, args.seed)
    model = build_model(cfg, args.seed)
    optimizer = build_optimizer(cfg)
    if args.no_checkpoint:
        backup = None
    else:
        seconds = args.checkpoint_seconds or DEFAULT_CHECKPOINT_SECONDS
        backup = _LoggedBackup(checkpoint, every=args.checkpoint_every, seconds=seconds)
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
            callbacks=[backup] if backup else [],
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
        completed = _epochs_in(checkpoint) if backup is not None else None
        if completed is not None:
            again = (
                "run the same command without --restart to resume"
                if args.restart
                else "run the same command again to resume"
            )
            _log(
                f"interrupted: the checkpoint {checkpoint} holds epoch "
                f"{completed}; {again}"
            )
        raise
    from glassnet.io.serialization import save

    save(model, model_path, extra={"classes": cfg.classes} if cfg.classes else None)
    write_history_csv(history, history_path)
    _remove_checkpoint(checkpoint)  # only now: the model file holds the result
    _log(f"wrote {model_path} and {history_path}")
    last = {k: v[-1] for k, v in history.history.items() if k != "lr"}
    print(f"epochs={len(history)} " + " ".join(f"{k}={v:.6g}" for k, v in last.items()))
    return 0


# -- predict -------------------------------------------------------------------


def predict(args) -> int:
    """Model outputs for every row of DATA, as CSV on stdout."""
    from glassnet.io.datafiles import read_table, write_csv
    from glassnet.io.serialization import load, read_extra

    model = load(args.model)
    classes = read_extra(args.model).get("classes")
    X, _ = read_table(args.data, target=args.target, x_key=args.x_key)
    _check_width(model, X, args)
    if args.output == "proba":
        out = model.predict_proba(X, batch_size=args.batch_size)
        names = classes if classes else range(out.shape[1])
        header = [f"proba_{k}" for k in names]
    elif args.output == "class":
        out = model.predict_classes(X, batch_size=args.batch_size)[:, None]
        if classes:  # the class names the model was trained on
            out = np.asarray(classes, dtype=object)[out]
        header = ["class"]
    else:
        out = model.predict(X, batch_size=args.batch_size)
        out = out.reshape(len(out), -1)
        header = [f"output_{k}" for k in range(out.shape[1])]
    write_csv(sys.stdout, out, header)
    sys.stdout.flush()  # a closed pipe is reported here, inside main's handler
    return 0


def _check_width(model, X: np.ndarray, args) -> None:
    """A DataError in CLI terms when DATA's columns do not match the model."""
    first = model.layers[0] if model.layers else None
    width = getattr(first, "in_features", None)
    if width is None or X.ndim != 2 or X.shape[1] == width:
        return
    hint = (
        "; if one of them is the label, pass --target COLUMN to skip it"
        if X.shape[1] == width + 1 and args.target is None
        else ""
    )
    raise DataError(
        f"{args.data}: has {X.shape[1]} feature columns, the model {args.model} "
        f"takes {width}{hint}"
    )


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
        if y is not None and y.dtype.kind == "U":  # class names: any fixed order
            y = np.unique(y, return_inverse=True)[1]
    if X is None:  # no data: random inputs, and <model(X), dout> as the objective
        first = model.layers[0] if model.layers else None
        shape = tuple(args.input_shape or ())
        if not shape and hasattr(first, "in_features"):
            shape = (first.in_features,)
        if not shape:
            raise UsageError(
                "pass --data FILE or --input-shape with one example's shape, "
                "e.g. --input-shape 4 or --input-shape 1,6,6"
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
    _check_outputs([out], [args.output] if args.output else [], args.force)
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
    from glassnet.io.serialization import load
    from glassnet.nn.layers import Conv2D

    model = load(args.source)
    if args.data is not None:
        from glassnet.io.datafiles import read_table

        X, y = read_table(args.data, target=args.target)
        if y is not None and y.dtype.kind == "U":
            y = np.unique(y, return_inverse=True)[1]
        elif y is not None and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        return gnplot.decision_boundary(model, X, y)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    if convs:
        return gnplot.filters(convs[0])
    raise ConfigError(
        f"{args.source}: nothing to plot: the model has no Conv2D layer; pass "
        "--data FILE (two feature columns) for a decision boundary"
    )
