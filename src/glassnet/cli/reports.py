"""`glassnet explain` and `glassnet summary`: argparse in front of the reports.

    glassnet summary iris.safetensors --batch-size 150
    glassnet explain iris.safetensors --loss softmax_cross_entropy --markdown
    glassnet explain letters.toml --input-shape 1,6,6

MODEL_OR_CONFIG is a model file written by model.save, or a training config
(TOML) whose model section builds the network. The report goes to stdout;
a bad argument exits 2 with the usage, a bad file is one line on stderr and
exit status 1.
"""

import argparse


def _shape(text: str) -> tuple[int, ...]:
    """ "4" -> (4,), "1,6,6" or "1x6x6" -> (1, 6, 6)."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one example's shape such as 4 or 1,6,6, got {text!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"sizes must be positive integers, got {text!r}"
        )
    return shape


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL_OR_CONFIG",
        help="a model file (model.save) or a training config (.toml)",
    )
    parser.add_argument(
        "--input-shape",
        type=_shape,
        default=None,
        help="one example's shape, e.g. 4 or 1,6,6 (default: the first Dense's inputs)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=32, help="N (default 32)"
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown")


def add_commands(commands) -> None:
    """Add the `summary` and `explain` subcommands to an argparse subparsers object."""
    names = commands.choices
    if "summary" not in names:
        summary = commands.add_parser(
            "summary",
            help="per layer: output, parameters, gradient shapes, backward memory",
        )
        _common(summary)
    explain = commands.add_parser(
        "explain", help="per layer: forward and backward formulas, Jacobian, checks"
    )
    _common(explain)
    explain.add_argument(
        "--loss",
        default=None,
        help="add the loss's derivative (e.g. softmax_cross_entropy)",
    )


def load_model(path: str):
    """A Sequential from a model file or a training config; ConfigError if neither."""
    import glassnet as gn

    if str(path).lower().endswith(".toml"):
        from glassnet.cli.config import build_model, load_config

        return build_model(load_config(path))
    return gn.load(path)


def _config_loss(path: str) -> str | None:
    """The loss a training config names, if the path is one and it names one."""
    if not str(path).lower().endswith(".toml"):
        return None
    from glassnet.cli.config import load_config

    return getattr(load_config(path), "loss", None)


def run(args) -> int:
    """Print the report `args.command` asks for; 0. Errors are raised and
    printed by cli.main in the same one-line style as every subcommand."""
    from glassnet.cli.commands import UsageError
    from glassnet.errors import GlassnetError
    from glassnet.reports.explain import explain

    model = load_model(args.model)
    try:
        if args.command == "summary":
            report = model.summary(args.input_shape, batch_size=args.batch_size)
        else:
            loss = args.loss or _config_loss(args.model)
            report = explain(
                model, args.input_shape, batch_size=args.batch_size, loss=loss
            )
    except GlassnetError as exc:
        if args.input_shape is None and "input_shape is required" in str(exc):
            raise UsageError(  # the library's hint, in the command's terms
                "the model's input shape cannot be inferred; pass --input-shape "
                "with one example's shape, e.g. --input-shape 4 or --input-shape 1,6,6"
            ) from None
        raise
    print(report.to_markdown() if args.markdown else report.to_text())
    return 0
