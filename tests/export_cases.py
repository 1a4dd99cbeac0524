"""The models the export tests carry to PyTorch and ONNX: every layer glassnet
ships, alone and in nested and residual models, with every option that changes
what it exports to (strided and even-kernel "same" padding, overlapping pools,
multi-axis LayerNorm, ...).

Every parameter and buffer is random (a transposed weight or a swapped bias
cannot hide behind ones and zeros); everything is float64 unless a test asks
for float32.
Used by test_export_torch.py and test_export_onnx.py.
"""

from dataclasses import dataclass

import numpy as np

import glassnet as gn


@dataclass(frozen=True)
class Case:
    name: str
    build: object  # () -> list of layers
    input_shape: tuple[int, ...]  # one example's shape
    ids: int = 0  # > 0: the input is integer ids in [0, ids)
    scale: float = 1.0  # input scale (Softplus's threshold needs large inputs)

    def model(self, dtype=np.float64) -> gn.Sequential:
        """The case's model; in float32, the float64 model's values rounded."""
        model = gn.Sequential(*self.build(), seed=0, dtype=dtype)
        randomize(model, np.random.default_rng(1))
        return model

    def inputs(self, n: int = 5, seed: int = 2) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if self.ids:
            return rng.integers(0, self.ids, size=(n, *self.input_shape))
        return self.scale * rng.standard_normal((n, *self.input_shape))

    @property
    def has_dropout(self) -> bool:
        return any(isinstance(m, gn.Dropout) for _, m in self.model().named_layers())


def randomize(model: gn.Layer, rng: np.random.Generator) -> None:
    """Random weights and biases, and running statistics far from 0 and 1."""
    for _, p in model.named_parameters():
        p.data[...] = rng.normal(0.0, 0.6, p.data.shape)
    for _, layer in model.named_layers():
        if isinstance(layer, (gn.BatchNorm1D, gn.BatchNorm2D)):
            C = layer.num_features
            layer.load_buffer("running_mean", rng.normal(0.0, 0.5, C))
            layer.load_buffer("running_var", rng.uniform(0.5, 2.0, C))


def _residual_mlp():
    block = gn.Sequential(gn.Dense(6, 6), gn.Tanh(), gn.Dense(6, 6))
    return [gn.Dense(4, 6), gn.ReLU(), gn.Residual(block), gn.Dense(6, 3)]


def _nested():
    inner = gn.Sequential(gn.Dense(4, 5), gn.Sigmoid())
    branches = gn.Concat(gn.Dense(5, 3), gn.Sequential(gn.Dense(5, 2), gn.ELU()))
    return [inner, branches, gn.Residual(gn.Sequential(gn.Dense(5, 5))), gn.Softmax()]


def _cnn():
    return [
        gn.Conv2D(2, 4, 3, padding=1),
        gn.ReLU(),  # before BatchNorm, which would zero the bias's gradient
        gn.BatchNorm2D(4),
        gn.MaxPool2D(2),
        gn.Residual(gn.Sequential(gn.Conv2D(4, 4, 3, padding="same"), gn.Tanh())),
        gn.Concat(gn.GlobalAvgPool2D(), gn.GlobalMaxPool2D()),
        gn.Dense(8, 3),
    ]


def _signal():
    return [
        gn.Conv1D(2, 4, 5, padding="same"),
        gn.ReLU(),
        gn.BatchNorm1D(4),
        gn.MaxPool1D(2),
        gn.Conv1D(4, 4, 3, stride=2, padding=(2, 0)),
        gn.Concat(gn.GlobalAvgPool1D(), gn.GlobalMaxPool1D()),
        gn.Dense(8, 2),
    ]


def _sequence():
    return [
        gn.Embedding(7, 4),  # (N, T) ids -> (N, T, 4)
        gn.LayerNorm(4),
        gn.GELU(),
        gn.Flatten(),
        gn.Dense(12, 6),
        gn.BatchNorm1D(6),
        gn.SiLU(),
        gn.Dropout(0.3),
        gn.Dense(6, 2),
    ]


def _stacked_recurrent():
    return [
        gn.Embedding(7, 4),
        gn.LSTM(4, 5, return_sequences=True),  # stacking by composition
        gn.GRU(5, 3, bidirectional=True),
        gn.Dense(6, 2),
    ]


def _transformer():
    return [
        gn.Embedding(7, 8),
        gn.PositionalEmbedding(9, 8),
        gn.TransformerBlock(embed_dim=8, num_heads=2, causal=True),
        gn.SinusoidalPositionalEncoding(8),
        gn.LayerNorm(8),  # outputs of a moderate size: float32 keeps 1e-6
        gn.Flatten(),
        gn.Dense(48, 3),
    ]


def _tagger():  # a per-token head: ids (N, T) -> scores (N, T, K)
    head = gn.Sequential(gn.Dense(5, 4), gn.GELU(), gn.Dense(4, 3))
    return [
        gn.Embedding(7, 4),
        gn.LSTM(4, 5, return_sequences=True),
        gn.TimeDistributed(head),
    ]


def _per_step_conv():  # every step a (C, L) signal: (N, T, 2, 6) -> (N, T * 3)
    return [
        gn.TimeDistributed(gn.Conv1D(2, 3, 3, padding="same")),
        gn.TimeDistributed(gn.GlobalMaxPool1D()),
        gn.Flatten(),
    ]


CASES = [
    Case("dense", lambda: [gn.Dense(4, 3)], (4,)),
    Case("conv2d", lambda: [gn.Conv2D(2, 3, 3)], (2, 6, 5)),
    Case(
        "conv2d_pad1_stride2_rect",
        lambda: [gn.Conv2D(2, 3, (3, 2), stride=2, padding=1)],
        (2, 7, 6),
    ),
    Case("conv2d_same_even", lambda: [gn.Conv2D(2, 3, 4, padding="same")], (2, 5, 6)),
    Case(
        "conv2d_same_stride2",
        lambda: [gn.Conv2D(2, 3, 3, stride=2, padding="same")],
        (2, 7, 6),
    ),
    Case("conv2d_valid", lambda: [gn.Conv2D(2, 3, 3, padding="valid")], (2, 5, 5)),
    Case(
        "conv2d_per_axis",
        lambda: [gn.Conv2D(2, 3, (3, 1), stride=(1, 2), padding=(1, 0))],
        (2, 5, 7),
    ),
    Case(
        "conv2d_explicit_uneven",
        lambda: [gn.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)))],
        (2, 7, 6),
    ),
    Case("conv1d", lambda: [gn.Conv1D(2, 3, 3)], (2, 9)),
    Case("conv1d_same", lambda: [gn.Conv1D(2, 3, 3, padding="same")], (2, 8)),
    Case(
        "conv1d_same_stride2",
        lambda: [gn.Conv1D(2, 3, 4, stride=2, padding="same")],
        (2, 9),
    ),
    Case("conv1d_causal", lambda: [gn.Conv1D(2, 3, 3, padding=(2, 0))], (2, 7)),
    Case("maxpool2d", lambda: [gn.MaxPool2D(2)], (2, 6, 5)),
    Case("maxpool2d_padded", lambda: [gn.MaxPool2D(3, stride=2, padding=1)], (2, 7, 6)),
    Case("maxpool2d_same", lambda: [gn.MaxPool2D(2, padding="same")], (2, 5, 7)),
    Case(
        "maxpool2d_wide_pad", lambda: [gn.MaxPool2D(3, stride=1, padding=2)], (2, 4, 5)
    ),
    Case(
        "avgpool2d_padded",
        lambda: [gn.AvgPool2D((3, 2), stride=(2, 1), padding=(1, 0))],
        (2, 7, 6),
    ),
    Case(
        "avgpool2d_uneven",
        lambda: [gn.AvgPool2D(2, stride=1, padding=((1, 0), (0, 1)))],
        (2, 5, 4),
    ),
    Case("maxpool1d", lambda: [gn.MaxPool1D(2)], (3, 8)),
    Case("maxpool1d_same", lambda: [gn.MaxPool1D(3, stride=2, padding="same")], (3, 8)),
    Case("avgpool1d", lambda: [gn.AvgPool1D(3, stride=1, padding=1)], (3, 7)),
    Case("avgpool1d_uneven", lambda: [gn.AvgPool1D(2, padding=(1, 0))], (3, 7)),
    Case("maxpool2d_overlap", lambda: [gn.MaxPool2D(3, stride=2)], (2, 7, 7)),
    Case("avgpool2d", lambda: [gn.AvgPool2D(2)], (2, 6, 5)),
    Case("avgpool2d_overlap", lambda: [gn.AvgPool2D(3, stride=1)], (2, 5, 6)),
    Case("flatten", lambda: [gn.Flatten(), gn.Dense(24, 2)], (2, 3, 4)),
    Case("dropout", lambda: [gn.Dense(4, 5), gn.Dropout(0.4)], (4,)),
    Case("identity", lambda: [gn.Identity(), gn.Dense(4, 2)], (4,)),
    Case("sigmoid", lambda: [gn.Sigmoid()], (5,), scale=4.0),
    Case("tanh", lambda: [gn.Tanh()], (5,), scale=2.0),
    Case("relu", lambda: [gn.ReLU()], (5,)),
    Case("leaky_relu", lambda: [gn.LeakyReLU(0.01)], (5,)),
    Case("leaky_relu_half", lambda: [gn.LeakyReLU(0.5)], (5,)),
    Case("softmax", lambda: [gn.Dense(4, 3), gn.Softmax()], (4,)),
    Case("gelu", lambda: [gn.GELU()], (6,), scale=3.0),
    Case("gelu_tanh", lambda: [gn.GELU("tanh")], (6,), scale=3.0),
    Case("silu", lambda: [gn.SiLU()], (6,), scale=4.0),
    Case("elu", lambda: [gn.ELU(0.7)], (6,), scale=2.0),
    Case("softplus", lambda: [gn.Softplus(beta=2.0, threshold=5.0)], (6,), scale=3.0),
    Case("batchnorm1d", lambda: [gn.BatchNorm1D(4)], (4,)),
    Case("batchnorm1d_sequence", lambda: [gn.BatchNorm1D(3, eps=1e-3)], (3, 5)),
    Case("batchnorm2d", lambda: [gn.BatchNorm2D(2, momentum=0.3)], (2, 3, 4)),
    Case("layernorm", lambda: [gn.LayerNorm(5)], (3, 5)),
    Case("layernorm_2axes", lambda: [gn.LayerNorm((3, 4), eps=1e-3)], (2, 3, 4)),
    Case("layernorm_plain", lambda: [gn.LayerNorm(5, elementwise_affine=False)], (5,)),
    Case("embedding", lambda: [gn.Embedding(6, 3)], (4,), ids=6),
    Case("global_avg_pool1d", lambda: [gn.GlobalAvgPool1D()], (3, 5)),
    Case("global_max_pool1d", lambda: [gn.GlobalMaxPool1D()], (3, 5)),
    Case("global_avg_pool2d", lambda: [gn.GlobalAvgPool2D()], (3, 4, 5)),
    Case("global_max_pool2d", lambda: [gn.GlobalMaxPool2D()], (3, 4, 5)),
    Case("residual_mlp", _residual_mlp, (4,)),
    Case("nested", _nested, (4,)),
    Case(
        "concat_last_axis",
        lambda: [gn.Concat(gn.Identity(), gn.Tanh(), axis=-1)],
        (2, 3),
    ),
    Case("cnn", _cnn, (2, 8, 8)),
    Case("signal", _signal, (2, 16)),
    Case("sequence", _sequence, (3,), ids=7),
    Case("rnn", lambda: [gn.RNN(3, 4)], (5, 3)),
    Case(
        "rnn_relu_sequences",
        lambda: [gn.RNN(3, 4, "relu", return_sequences=True)],
        (5, 3),
    ),
    Case(
        "rnn_bidirectional",
        lambda: [gn.RNN(3, 4, bidirectional=True, return_sequences=True)],
        (5, 3),
    ),
    Case("lstm", lambda: [gn.LSTM(3, 4)], (5, 3)),
    Case(
        "lstm_bidirectional_sequences",
        lambda: [gn.LSTM(3, 4, return_sequences=True, bidirectional=True)],
        (5, 3),
    ),
    Case("gru_sequences", lambda: [gn.GRU(3, 4, return_sequences=True)], (5, 3)),
    Case("gru_bidirectional", lambda: [gn.GRU(3, 4, bidirectional=True)], (5, 3)),
    Case("stacked_recurrent", _stacked_recurrent, (6,), ids=7),
    Case("attention", lambda: [gn.MultiHeadAttention(6, 2)], (4, 6)),
    Case(
        "attention_causal",
        lambda: [gn.MultiHeadAttention(6, 3, causal=True)],
        (5, 6),
    ),
    Case("positional", lambda: [gn.PositionalEmbedding(7, 4)], (5, 4)),
    Case("sinusoidal", lambda: [gn.SinusoidalPositionalEncoding(5)], (4, 5)),
    Case("transformer", _transformer, (6,), ids=7),
    Case(
        "transformer_block",
        lambda: [gn.TransformerBlock(embed_dim=6, num_heads=3, mlp_dim=10)],
        (5, 6),
    ),
    Case("time_distributed", lambda: [gn.TimeDistributed(gn.Dense(3, 2))], (4, 3)),
    Case("time_distributed_tagger", _tagger, (6,), ids=7),
    Case("time_distributed_conv", _per_step_conv, (4, 2, 6)),
]

CASE_IDS = [case.name for case in CASES]


# one of each layer glassnet.export.NOT_EXPORTED lists (no converters yet), with
# one example's input shape: none at present
NOT_YET: dict = {}  # layers without converters: how to build one, its input shape

# while NOT_EXPORTED is empty, the refusal is tested on a stand-in: RNN, its
# converters taken away and a reason listed for the length of the test
STAND_IN = {"RNN": (lambda: gn.RNN(3, 4), (2, 3))}


def not_yet_cases() -> list[str]:
    """The layers the refusal tests run on: NOT_EXPORTED's, else the stand-in."""
    return sorted(NOT_YET) or sorted(STAND_IN)


def stand_in(name: str, monkeypatch, registry: dict, not_exported: dict) -> tuple:
    """(build, input shape) of a layer without converters; a stand-in's converter
    is removed from registry and a reason put in not_exported (monkeypatched)."""
    if name in NOT_YET:
        return NOT_YET[name]
    cls = next(c for c in registry if c.__name__ == name)
    monkeypatch.delitem(registry, cls)
    monkeypatch.setitem(not_exported, name, "its converters are still to write")
    return STAND_IN[name]


def covered_classes() -> set[type]:
    """Every layer class some case exports (containers included)."""
    found = set()
    for case in CASES:
        model = case.model()
        found.add(type(model))
        found.update(type(layer) for _, layer in model.named_layers())
    return found


class FeatureScale(gn.Layer):
    """A user's layer, out = x * gamma + beta, with both export hooks."""

    def __init__(self, features: int) -> None:
        rng = np.random.default_rng(3)
        self.gamma = gn.Parameter(rng.normal(size=features), "gamma")
        self.beta = gn.Parameter(rng.normal(size=features), "beta")

    def forward(self, x):
        self._cache = x
        return x * self.gamma.data + self.beta.data

    def backward(self, dout):
        x = self._cached()
        self.gamma.grad = (dout * x).sum(axis=0)
        self.beta.grad = dout.sum(axis=0)
        return dout * self.gamma.data

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def to_onnx_nodes(self, graph, x):
        scaled = graph.node("Mul", [x, graph.param(self.gamma)])
        return graph.node("Add", [scaled, graph.param(self.beta)])

    def to_torch_module(self):
        import torch

        class TorchFeatureScale(torch.nn.Module):
            def __init__(self, gamma, beta) -> None:
                super().__init__()
                self.gamma = torch.nn.Parameter(torch.tensor(gamma))
                self.beta = torch.nn.Parameter(torch.tensor(beta))

            def forward(self, x):
                return x * self.gamma + self.beta

        return TorchFeatureScale(self.gamma.data, self.beta.data)


class NoHooks(gn.Layer):
    """A user's layer that exports nowhere: out = 2 x."""

    def forward(self, x):
        return 2.0 * x

    def backward(self, dout):
        return 2.0 * dout

    def output_shape(self, input_shape):
        return tuple(input_shape)
