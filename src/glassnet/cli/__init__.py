"""The `glassnet` command: argparse in front of library calls, no math here."""

import argparse
import os
import signal
import sys

from glassnet.errors import GlassnetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glassnet",
        description="Small NumPy neural networks with checked gradients.",
    )
    from glassnet import __version__

    parser.add_argument(
        "--version", action="version", version=f"glassnet {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train the Iris 4-5-4-3 network and print its gradient check"
    )
    demo.add_argument(
        "--epochs", type=int, default=300, help="training epochs (default 300)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_report_commands(commands)
    _add_io_commands(commands)
    from glassnet.cli import export as export_command  # `glassnet export`

    export_command.add_command(commands)
    return parser


def _add_report_commands(commands) -> None:
    """`glassnet summary` and `glassnet explain` (see glassnet.cli.reports)."""
    from glassnet.cli import reports as report_commands

    report_commands.add_commands(commands)


def _add_io_commands(commands) -> None:
    """`glassnet train`, `predict`, `gradcheck` and `plot` (glassnet.cli.commands)."""
    from glassnet.cli import commands as io_commands

    io_commands.add_commands(commands)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).replace("\n", "; ").split()) or type(exc).__name__


def demo(epochs: int, seed: int) -> int:
    """Train seed 000's network on Iris, report held-out accuracy and a gradcheck."""
    import glassnet as gn

    X, y = gn.datasets.load_iris()
    X_train, X_test, y_train, y_test = gn.datasets.train_test_split(
        X, y, 0.2, seed=seed
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    model = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3), seed=seed
    )
    print(model)
    print()
    # Checked before training: a fresh network's gradients are large enough for
    # finite differences to confirm every entry (a confident trained one's are not).
    report = gn.gradcheck(
        model, X_train[:10], y_train[:10], loss="softmax_cross_entropy"
    )
    print("gradient check of the untrained network, on 10 training rows:")
    print(report)
    print()
    history = model.fit(
        X_train,
        y_train,
        loss="softmax_cross_entropy",
        optimizer=gn.SGD(lr=0.1, momentum=0.9),
        epochs=epochs,
        batch_size=16,
        validation_split=0.2,
        verbose=0,
    )
    test = model.evaluate(X_test, y_test, loss="softmax_cross_entropy")
    print(
        f"trained {len(history)} epochs: train loss {history['loss'][-1]:.4f}, "
        f"validation accuracy {history['val_accuracy'][-1]:.3f}"
    )
    print(f"held-out test: loss {test['loss']:.4f}, accuracy {test['accuracy']:.3f}")
    return 0 if report.passed else 1


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT's KeyboardInterrupt would be: the same
    cleanup and message, exit status 143."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; the exit status: 0 done, 1 a bad file or a failed
    check, 2 bad arguments (with the usage), 130 Ctrl-C, 143 SIGTERM."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return int(exc.code or 0)
    previous = None
    if hasattr(signal, "SIGTERM"):
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
    try:
        return _run(parser, args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name, parser)
    return parser  # pragma: no cover - build_parser always adds subcommands


def _run(parser: argparse.ArgumentParser, args) -> int:
    from glassnet.cli.commands import UsageError

    try:
        if args.command == "demo":
            return demo(args.epochs, args.seed)
        if args.command in ("explain", "summary"):
            from glassnet.cli import reports as report_commands

            return report_commands.run(args)
        if args.command in ("train", "predict", "gradcheck", "plot"):
            from glassnet.cli import commands as io_commands

            return getattr(io_commands, args.command)(args)
        if args.command == "export":
            from glassnet.cli import export as export_command

            return export_command.run(args)
    except UsageError as exc:  # arguments argparse could not check alone
        sub = _subparser(parser, args.command)
        sub.print_usage(sys.stderr)
        print(f"{sub.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("glassnet: interrupted", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except BrokenPipeError:  # `glassnet ... | head` closed the pipe: exit quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit stays silent
        return 0
    except (GlassnetError, OSError, ValueError, ImportError) as exc:
        # a missing, malformed or malicious file: one line, no traceback
        print(f"glassnet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 2
