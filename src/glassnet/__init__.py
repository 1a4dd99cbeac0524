"""glassnet: small NumPy neural networks whose every derivative can be checked."""

from glassnet.check.gradcheck import GradcheckReport, gradcheck
from glassnet.errors import (
    ArgumentTypeError,
    CallOrderError,
    ConfigError,
    DataError,
    GlassnetError,
    MissingDependencyError,
    ModelFileError,
    ShapeError,
    TrainingDivergedError,
)
from glassnet.io import datasets
from glassnet.nn.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool1D,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Concat,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    MaxPool1D,
    MaxPool2D,
    MultiHeadAttention,
    PositionalEmbedding,
    ReLU,
    Residual,
    Sigmoid,
    SiLU,
    SinusoidalPositionalEncoding,
    Softmax,
    Softplus,
    Tanh,
    TimeDistributed,
    TransformerBlock,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
)
from glassnet.nn.layers.containers import Sequential
from glassnet.nn.losses import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    Loss,
    MeanSquaredError,
    SoftmaxCrossEntropy,
)
from glassnet.nn.parameter import Parameter
from glassnet.train.callbacks import (
    Callback,
    CosineDecay,
    EarlyStopping,
    ExponentialDecay,
    History,
    LearningRateScheduler,
    PrintLogger,
    ProgressBar,
    StepDecay,
)
from glassnet.train.loop import Trainer, fit
from glassnet.train.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ArgumentTypeError",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Concat",
    "BackupAndRestore",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "CallOrderError",
    "Callback",
    "ConfigError",
    "Conv1D",
    "Conv2D",
    "CosineDecay",
    "CrossEntropy",
    "DataError",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "EarlyStopping",
    "ExponentialDecay",
    "Flatten",
    "GELU",
    "GRU",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlassnetError",
    "GradcheckReport",
    "History",
    "Identity",
    "Layer",
    "LayerNorm",
    "LSTM",
    "LeakyReLU",
    "LearningRateScheduler",
    "Loss",
    "MaxPool1D",
    "MaxPool2D",
    "MeanSquaredError",
    "MissingDependencyError",
    "MultiHeadAttention",
    "ModelCheckpoint",
    "ModelFileError",
    "Optimizer",
    "Parameter",
    "PositionalEmbedding",
    "PrintLogger",
    "ProgressBar",
    "RNN",
    "RMSprop",
    "ReLU",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SiLU",
    "SinusoidalPositionalEncoding",
    "Softmax",
    "Softplus",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "TimeDistributed",
    "Trainer",
    "TransformerBlock",
    "TrainingDivergedError",
    "datasets",
    "explain",
    "fit",
    "gradcheck",
    "load",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "save_weights",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
    "gradient_flow",
]

# Submodules with optional dependencies, imported on first attribute access so that
# `import glassnet` needs NumPy alone: gn.plot (matplotlib), gn.sklearn (scikit-learn),
# gn.export (torch and onnx, themselves imported only when a function needs them).
_LAZY_SUBMODULES = {"export", "plot", "sklearn"}


# Report functions, loaded on first use from glassnet.reports: explain, gradient_flow.
_LAZY_REPORTS = {"explain", "gradient_flow"}

# Saving and loading, imported on first use: with json, inspect and tempfile they
# were 14 ms of `import glassnet` (benchmarks/run.py --cases import).
_LAZY_NAMES = {
    "BackupAndRestore": "train.checkpoints",
    "ModelCheckpoint": "train.checkpoints",
    "load_checkpoint": "train.checkpoints",
    "save_checkpoint": "train.checkpoints",
    "load": "io.serialization",
    "load_weights": "io.serialization",
    "save_weights": "io.serialization",
}


# Modules by the names they had before the nn/train/check/io layout, so that
# `gn.losses.get_loss` and friends keep working through the package namespace.
_MODULE_ALIASES = {
    "losses": "nn.losses",
    "layers": "nn.layers",
    "initializers": "nn.initializers",
    "optimizers": "train.optimizers",
    "callbacks": "train.callbacks",
    "metrics": "train.metrics",
    "checkpoints": "train.checkpoints",
    "serialization": "io.serialization",
}


def __getattr__(name: str):
    if name in _MODULE_ALIASES:
        import importlib

        return importlib.import_module(f"glassnet.{_MODULE_ALIASES[name]}")
    if name in _LAZY_NAMES:
        import importlib

        module = importlib.import_module(f"glassnet.{_LAZY_NAMES[name]}")
        return getattr(module, name)
    if name in _LAZY_REPORTS:
        from glassnet import reports

        return getattr(reports, name)
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"glassnet.{name}")
    import difflib

    close = difflib.get_close_matches(name, __all__, n=3, cutoff=0.6)
    close += [
        n for n in __all__ if n.lower().startswith(name.lower()) and n not in close
    ]
    hint = f"; did you mean {' or '.join(close[:3])}?" if close else ""
    raise AttributeError(
        f"module 'glassnet' has no attribute {name!r}{hint} (to write a layer "
        "glassnet does not have, see docs/custom_layers.md)"
    )


def __dir__() -> list[str]:
    """Every public name, the lazy ones included (they load on first access)."""
    return sorted(set(globals()) | set(__all__) | _LAZY_SUBMODULES)
