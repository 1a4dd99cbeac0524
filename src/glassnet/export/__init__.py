"""Export to PyTorch and ONNX, import from PyTorch (the [torch] and [onnx] extras).

    from glassnet.export import from_torch, to_onnx, to_torch

    module = to_torch(model)            # torch.nn.Module: same weights, same names
    model = from_torch(module)          # back to a glassnet Sequential
    to_onnx(model, "model.onnx")        # an ONNX graph with a dynamic batch axis

torch and onnx are imported by the first call that needs them, never by
`import glassnet` or `import glassnet.export`. The converters, one per layer
class, live in torch_export.py (TO_TORCH), torch_import.py (FROM_TORCH) and
onnx_layers.py (TO_ONNX, on the OnnxGraph of onnx_graph.py);
docs/export_and_scale.md is the guide, with the recipe for distributed
training in PyTorch and serving with ONNX Runtime.
"""

import os

from glassnet.errors import ConfigError, MissingDependencyError
from glassnet.export._common import NOT_EXPORTED

__all__ = ["NOT_EXPORTED", "from_torch", "save", "save_torch", "to_onnx", "to_torch"]


def _torch(module: str):
    """glassnet.export.torch_export or torch_import, once torch is found."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "glassnet.export needs PyTorch for this; install it with "
            "pip install 'glassnet[torch]'"
        ) from exc
    import importlib

    return importlib.import_module(f"glassnet.export.{module}")


def _onnx_layers():
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "glassnet.export needs the onnx package for this; install it with "
            "pip install 'glassnet[onnx]'"
        ) from exc
    from glassnet.export import onnx_layers

    return onnx_layers


def to_torch(model):
    """The same network as a torch.nn.Module, with the same weights and buffers.

    state_dict() keys are glassnet's qualified parameter and buffer names
    ("0.weight", "2.block.1.bias", "1.running_mean"), the values copies in the
    model's dtype. Dense's (in, out) weight becomes nn.Linear's (out, in), its
    transpose; every other array keeps its layout. Layers torch.nn lacks
    (Residual, Concat, global pooling, strided padding="same") become the small
    modules of glassnet.export._torch_modules. The module is in training mode
    if the model is, in eval mode otherwise. A custom layer exports through its
    own to_torch_module() method; without one, ConfigError names the layer.
    """
    return _torch("torch_export").to_torch(model)


def from_torch(module, *, dtype=None):
    """A glassnet Sequential that computes what `module` computes, same weights.

    module: an nn.Sequential (its children become the layers, named by
    position "0", "1", ...) or a single module (it becomes layer "0"). Modules
    glassnet has: Linear, Conv1d/2d, MaxPool1d/2d, AvgPool1d/2d, Flatten, Dropout,
    Identity, the activations (Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, GELU,
    SiLU, ELU, Softplus), BatchNorm1d/2d, LayerNorm, Embedding, nested
    Sequential, and the modules to_torch makes. An nn.Linear that sees a
    sequence (N, T, D), after an Embedding, a recurrent layer that returns every
    step or attention, becomes TimeDistributed(Dense). Anything else, or an option
    glassnet does not have (dilation, groups, bias=False, padding_mode,
    ceil_mode, count_include_pad=False with padding, padding_idx, ...), raises
    ConfigError naming the module's path, its type and the option. The model
    takes the module's training mode and its dtype (float32 or float64), or
    `dtype` if given: from_torch(module, dtype="float64") brings a float32
    module into float64, where gradcheck can judge its derivatives.
    """
    return _torch("torch_import").from_torch(module, dtype=dtype)


def save_torch(model, path, *, input_shape=None, dtype=None):
    """Write the model as a torch.export program, loadable without glassnet:
    torch.export.load(path).module() is an nn.Module with the same state_dict
    names, for inference (batch axis dynamic). input_shape: one example's shape,
    needed unless the first layer is a Dense. Written atomically; returns the
    torch.export.ExportedProgram. To train in PyTorch, use to_torch."""
    return _torch("torch_export").save_torch(
        model, path, input_shape=input_shape, dtype=dtype
    )


def to_onnx(
    model,
    path,
    *,
    input_shape=None,
    opset: int = 17,
    dtype=None,
    output: str = "predict",
):
    """Write the model's inference graph to `path` as ONNX and return the ModelProto.

    input_shape: one example's shape, no batch axis; needed unless the first
    layer is a Dense. The batch axis is dynamic ("N"); the others are fixed.
    opset: 17 (the default, the oldest with LayerNormalization) up to the onnx
    package's newest. dtype: float32 or float64 (default: the model's).
    output: "predict" (graph output "output", as model.predict) or "proba"
    (graph output "proba", as model.predict_proba). The graph input is "input":
    floats, or int64 ids when the model starts with an Embedding.

    Dropout is the identity and BatchNorm uses its running statistics, as in
    predict. Initializers carry the qualified parameter names and glassnet's
    layouts. The model passes onnx.checker.check_model(full_check=True) before
    it is written (atomically). Float64 graphs avoid the operators ONNX
    Runtime's CPU provider lacks in float64 (Conv, AveragePool, Erf, Elu,
    Softplus, ...) by exact decompositions (docs/export_and_scale.md). A custom
    layer exports through its to_onnx_nodes(graph, x) method; without one,
    ConfigError names the layer. The layers in NOT_EXPORTED are refused with
    the reason.
    """
    return _onnx_layers().to_onnx(
        model, path, input_shape=input_shape, opset=opset, dtype=dtype, output=output
    )


_TORCH_SUFFIXES = (".pt", ".pt2")


def save(
    model,
    path,
    *,
    input_shape=None,
    opset: int | None = None,
    dtype=None,
    output: str = "predict",
):
    """to_onnx for a path ending in .onnx, save_torch for .pt or .pt2 (what
    `glassnet export` calls). opset and output apply to ONNX only."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".onnx":
        return to_onnx(
            model,
            path,
            input_shape=input_shape,
            opset=17 if opset is None else opset,
            dtype=dtype,
            output=output,
        )
    if suffix in _TORCH_SUFFIXES:
        if opset is not None or output != "predict":
            raise ConfigError(
                f"export to {path}: opset and output='proba' apply to ONNX files "
                "only; a PyTorch program's output is the model's (apply softmax "
                "yourself, or write a .onnx file)"
            )
        return save_torch(model, path, input_shape=input_shape, dtype=dtype)
    raise ConfigError(
        f"export: cannot tell the format of {os.fspath(path)!r}; the file name must "
        "end in .onnx (ONNX) or .pt / .pt2 (a torch.export program)"
    )
