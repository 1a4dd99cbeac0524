"""PyTorch as the oracle for gradient_flow's per-step |dL/dh_t|, to 1e-10 in float64.

torch's recurrent cells (nn.RNNCell, nn.LSTMCell, nn.GRUCell) are unrolled by
hand with glassnet's weights copied, every hidden state h_t keeps its gradient
(retain_grad), and the loss is the same MSE of a Dense head: h_t.grad is then the
total dL/dh_t (from the output and from step t+1), which glassnet reports per
step and direction.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.reports._time_steps import hidden_gradients
from glassnet.reports._trace import run_trace

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytestmark = pytest.mark.torch

from torch_oracle_helpers import close, tensor  # noqa: E402

N, T, D, H = 3, 5, 2, 3

KINDS = {
    "rnn-tanh": (lambda **kw: gn.RNN(D, H, **kw), lambda: torch.nn.RNNCell(D, H)),
    "rnn-relu": (
        lambda **kw: gn.RNN(D, H, "relu", **kw),
        lambda: torch.nn.RNNCell(D, H, nonlinearity="relu"),
    ),
    "lstm": (lambda **kw: gn.LSTM(D, H, **kw), lambda: torch.nn.LSTMCell(D, H)),
    "gru": (lambda **kw: gn.GRU(D, H, **kw), lambda: torch.nn.GRUCell(D, H)),
}


def _model(kind: str, sequences: bool, bidirectional: bool) -> gn.Sequential:
    layer = KINDS[kind][0](return_sequences=sequences, bidirectional=bidirectional)
    width = (2 if bidirectional else 1) * H * (T if sequences else 1)
    head = [gn.Flatten()] if sequences else []
    return gn.Sequential(layer, *head, gn.Dense(width, 2), seed=0)


def _torch_hidden_grads(model, kind, x, y) -> list[np.ndarray]:
    """dL/dh_t from torch, (N, T, H) per direction in time order."""
    layer, dense = model[0], model[-1]
    outputs, hidden = [], []
    for suffix in layer._suffixes():
        cell = KINDS[kind][1]().double()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            value = getattr(layer, name + suffix).data
            getattr(cell, name).data = tensor(value)
        order = range(T) if suffix == "" else reversed(range(T))
        h = torch.zeros(N, H, dtype=torch.float64)
        c = torch.zeros(N, H, dtype=torch.float64)
        steps = {}
        for t in order:
            if kind == "lstm":
                h, c = cell(x[:, t], (h, c))
            else:
                h = cell(x[:, t], h)
            h.retain_grad()  # h_t's total gradient: output and step t+1
            steps[t] = h
        hidden.append(steps)
        if layer.return_sequences:
            outputs.append(torch.stack([steps[t] for t in range(T)], dim=1))
        else:
            outputs.append(h)  # the final state: t = T-1 forward, t = 0 reverse
    out = torch.cat(outputs, dim=-1).reshape(N, -1)
    pred = out @ tensor(dense.weight.data) + tensor(dense.bias.data)
    torch.nn.functional.mse_loss(pred, y).backward()
    return [
        np.stack([steps[t].grad.numpy() for t in range(T)], axis=1) for steps in hidden
    ]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bi"])
@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_per_step_gradients_are_torchs_retained_hidden_grads(
    kind, sequences, bidirectional, rng
):
    model = _model(kind, sequences, bidirectional)
    X = rng.standard_normal((N, T, D))
    y = rng.standard_normal((N, 2))
    expected = _torch_hidden_grads(model, kind, tensor(X), tensor(y))

    report = gn.gradient_flow(model, X, y, loss="mse")
    row = report.rows[0]
    names = ["forward", "reverse"] if bidirectional else ["forward"]
    assert list(row.step_norms) == names
    for name, dh in zip(names, expected, strict=True):
        # the reported number: mean over the batch of each example's L2 norm
        close(row.step_norms[name], np.linalg.norm(dh, axis=2).mean(axis=0), name)
    # and the arrays behind it, entry by entry (on a float64 copy, as the report)
    traces, _, _ = run_trace(model, X, y=y, loss="mse", dtype=np.float64)
    actual = hidden_gradients(traces[0].layer, traces[0].x, traces[0].g)
    for a, e in zip(actual, expected, strict=True):
        close(a, e)
