"""`glassnet export`: a model file to ONNX, or to a program PyTorch loads.

    glassnet export iris.safetensors -o iris.onnx --proba
    glassnet export cnn.safetensors -o cnn.onnx --input-shape 1,28,28 --float32
    glassnet export cnn.safetensors -o cnn.pt --input-shape 1,28,28

The format follows the output's suffix: .onnx (glassnet.export.to_onnx) or
.pt / .pt2 (a torch.export program, glassnet.export.save_torch). Needs the
[onnx] or [torch] extra; a bad file or argument is one line on stderr, exit 1.
"""

import argparse

import numpy as np

from glassnet.cli.reports import _shape


def _opset(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an opset number such as 17, got {text!r}"
        ) from None


def add_command(commands) -> None:
    """Add the `export` subcommand to an argparse subparsers object."""
    export = commands.add_parser(
        "export", help="write a model file as ONNX (.onnx) or for PyTorch (.pt)"
    )
    export.add_argument("model", metavar="MODEL", help="a model file (model.save)")
    export.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="model.onnx (ONNX) or model.pt / model.pt2 (torch.export program)",
    )
    export.add_argument(
        "--input-shape",
        type=_shape,
        default=None,
        help="one example's shape, e.g. 1,28,28 (default: the first Dense's inputs)",
    )
    export.add_argument(
        "--opset", type=_opset, default=None, help="ONNX opset (default 17)"
    )
    export.add_argument(
        "--float32", action="store_true", help="export in float32 (default: as saved)"
    )
    export.add_argument(
        "--proba",
        action="store_true",
        help="ONNX output: class probabilities, as predict_proba",
    )


def run(args) -> int:
    """Load the model, write the export, say what was written."""
    import glassnet as gn
    from glassnet.export import save

    model = gn.load(args.model)
    output = "proba" if args.proba else "predict"
    save(
        model,
        args.output,
        input_shape=args.input_shape,
        opset=args.opset,
        dtype=np.float32 if args.float32 else None,
        output=output,
    )
    print(f"wrote {args.output}")
    return 0
