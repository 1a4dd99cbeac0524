"""PyTorch as the oracle for RNN, LSTM and GRU, to 1e-10 in float64: outputs, the
input gradient, every parameter gradient and the initial state's gradient, for
every direction and output option; a two-layer stack against num_layers=2; and
ten Adam steps of an Embedding -> LSTM -> Dense classifier.

Conventions as in test_torch_oracle.py. Weights are copied by name: glassnet's
"weight_ih" is torch's "weight_ih_l0", "weight_ih_reverse" its
"weight_ih_l0_reverse"; in a stack, layer i's "i.weight_ih" is "weight_ih_l{i}".
"""

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

from torch_oracle_helpers import adam_steps_side_by_side, close, tensor  # noqa: E402


def torch_name(name: str, layer_index: int = 0) -> str:
    """glassnet's "weight_ih" / "weight_ih_reverse" -> torch's "weight_ih_l0" /
    "weight_ih_l0_reverse"; "1.weight_hh" -> "weight_hh_l1"."""
    if "." in name:
        index, name = name.split(".")
        layer_index = int(index)
    base, reverse = name.removesuffix("_reverse"), name.endswith("_reverse")
    return f"{base}_l{layer_index}" + ("_reverse" if reverse else "")


# id -> (glassnet layer given keyword arguments, torch module given the same)
LAYERS = {
    "rnn-tanh": (
        lambda **kw: gn.RNN(3, 4, **kw),
        lambda bi: torch.nn.RNN(3, 4, batch_first=True, bidirectional=bi),
    ),
    "rnn-relu": (
        lambda **kw: gn.RNN(3, 4, "relu", **kw),
        lambda bi: torch.nn.RNN(
            3, 4, nonlinearity="relu", batch_first=True, bidirectional=bi
        ),
    ),
    "lstm": (
        lambda **kw: gn.LSTM(3, 4, **kw),
        lambda bi: torch.nn.LSTM(3, 4, batch_first=True, bidirectional=bi),
    ),
    "gru": (
        lambda **kw: gn.GRU(3, 4, **kw),
        lambda bi: torch.nn.GRU(3, 4, batch_first=True, bidirectional=bi),
    ),
}


def pair(name: str, bidirectional: bool, return_sequences: bool, rng):
    make_gn, make_torch = LAYERS[name]
    layer = make_gn(
        bidirectional=bidirectional,
        return_sequences=return_sequences,
        rng=rng,
        dtype=np.float64,
    )
    twin = make_torch(bidirectional).double()
    twin.load_state_dict(
        {torch_name(n): tensor(p.data) for n, p in layer.named_parameters()}
    )
    return layer, twin


@pytest.mark.parametrize("initial_state", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(
    name, batch, bidirectional, return_sequences, initial_state, rng
):
    layer, twin = pair(name, bidirectional, return_sequences, rng)
    dirs = 2 if bidirectional else 1
    x = rng.normal(0.0, 1.5, (batch, 5, 3))
    states = [
        rng.normal(size=(dirs, batch, 4)) for _ in range(2 if name == "lstm" else 1)
    ]
    given = (tuple(states) if name == "lstm" else states[0]) if initial_state else None

    out = layer.forward(x if given is None else (x, given))
    dout = rng.normal(size=out.shape)
    grads = layer.backward(dout)
    dx, dstate = grads if initial_state else (grads, None)

    tx = tensor(x, grad=True)
    tstates = [tensor(s, grad=True) for s in states]
    if not initial_state:
        tout, h_n = twin(tx)
    else:
        tout, h_n = twin(tx, tuple(tstates) if name == "lstm" else tstates[0])
    h_n = h_n[0] if name == "lstm" else h_n  # (dirs, N, H)
    if not return_sequences:  # each direction's final state, side by side
        tout = torch.cat(list(h_n), dim=1)
    tout.backward(tensor(dout))

    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    theirs = dict(twin.named_parameters())
    for n, p in layer.named_parameters():
        close(p.grad, theirs[torch_name(n)].grad, n)
    if initial_state:
        dstates = dstate if name == "lstm" else (dstate,)
        for d, ts, label in zip(dstates, tstates, ["h0", "c0"], strict=False):
            close(d, ts.grad, f"d{label}")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_a_two_layer_stack_matches_torch_num_layers_2(name, rng):
    make_gn, _ = LAYERS[name]
    cls = type(make_gn())
    model = gn.Sequential(
        cls(3, 4, return_sequences=True, bidirectional=True),
        cls(8, 4, return_sequences=True, bidirectional=True),
        seed=0,
        dtype=np.float64,
    )
    twin = getattr(torch.nn, cls.__name__)(
        3, 4, num_layers=2, batch_first=True, bidirectional=True
    ).double()
    twin.load_state_dict(
        {torch_name(n): tensor(p.data) for n, p in model.named_parameters()}
    )
    x = rng.normal(size=(3, 6, 3))
    out = model.forward(x)
    dout = rng.normal(size=out.shape)
    dx = model.backward(dout)
    tx = tensor(x, grad=True)
    tout = twin(tx)[0]
    tout.backward(tensor(dout))
    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    theirs = dict(twin.named_parameters())
    for n, p in model.named_parameters():
        close(p.grad, theirs[torch_name(n)].grad, n)


class TorchClassifier(torch.nn.Module):
    """Embedding -> LSTM (last h) -> Linear, named like the glassnet model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(6, 3)
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, ids):
        _, (h_n, _) = self.lstm(self.embed(ids))
        return self.linear(h_n[0])


def test_ten_adam_steps_of_an_lstm_classifier_match_torch(rng):
    model = gn.Sequential(
        gn.Embedding(6, 3), gn.LSTM(3, 4), gn.Dense(4, 2), seed=0, dtype=np.float64
    )
    twin = TorchClassifier().double()
    with torch.no_grad():
        twin.embed.weight.copy_(tensor(model[0].weight.data))
        for n, p in model[1].named_parameters():
            getattr(twin.lstm, torch_name(n)).copy_(tensor(p.data))
        twin.linear.weight.copy_(tensor(model[2].weight.data.T))
        twin.linear.bias.copy_(tensor(model[2].bias.data))
    adam_steps_side_by_side(model, twin, 0.05, rng)
    close(model[0].weight.data, twin.embed.weight, "embedding after 10 steps")
    for n, p in model[1].named_parameters():
        close(p.data, getattr(twin.lstm, torch_name(n)), f"{n} after 10 steps")
    close(model[2].weight.data, twin.linear.weight.T, "dense weight after 10 steps")
