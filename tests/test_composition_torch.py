"""PyTorch as the oracle for layers that hold layers: a residual MLP and a nested
model (a Sequential inside a Sequential, a Concat of two branches), in float64.

The torch twin is built from the glassnet model, layer for layer, so that its
parameters carry the same qualified names ("2.block.0.weight"): every gradient
and every weight is compared by name, to 1e-10. glassnet's Dense weight is
(in, out); torch.nn.Linear's is (out, in), the transpose.
"""

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

from torch_oracle_helpers import close, tensor  # noqa: E402


class TorchResidual(torch.nn.Module):
    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


class TorchConcat(torch.nn.Module):
    def __init__(self, branches: list, axis: int) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)  # named "0", "1" as glassnet's
        self.axis = axis

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=self.axis)


ACTIVATIONS = {
    gn.Tanh: torch.nn.Tanh,
    gn.Sigmoid: torch.nn.Sigmoid,
    gn.ReLU: torch.nn.ReLU,
}


def twin_of(layer: gn.Layer) -> torch.nn.Module:
    """The same network in torch, with the same weights and the same names."""
    if isinstance(layer, gn.Dense):
        linear = torch.nn.Linear(layer.in_features, layer.out_features).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
        return linear
    if isinstance(layer, gn.Sequential):
        return torch.nn.Sequential(*(twin_of(inner) for inner in layer.layers))
    if isinstance(layer, gn.Residual):
        return TorchResidual(twin_of(layer.block))
    if isinstance(layer, gn.Concat):
        return TorchConcat([twin_of(branch) for branch in layer.branches], layer.axis)
    return ACTIVATIONS[type(layer)]()


def residual_mlp():
    return gn.Sequential(
        gn.Dense(4, 8), gn.Tanh(),
        gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
        gn.Dense(8, 3),
        seed=0, dtype=np.float64,
    )  # fmt: skip


def nested_model():
    return gn.Sequential(
        gn.Dense(4, 6), gn.Tanh(),
        gn.Sequential(gn.Dense(6, 5), gn.Sigmoid(), gn.Sequential(gn.Dense(5, 5))),
        gn.Concat(gn.Dense(5, 2), gn.Sequential(gn.Dense(5, 4), gn.Tanh())),
        gn.Dense(6, 3),
        seed=1, dtype=np.float64,
    )  # fmt: skip


MODELS = [
    pytest.param(residual_mlp, "2.block.2.weight", id="residual-mlp"),
    pytest.param(nested_model, "3.1.0.bias", id="nested-concat"),
]


def make_pair(make, seed=0):
    model = make()
    rng = np.random.default_rng(seed + 100)
    for name, p in model.named_parameters():  # nonzero biases test their rows
        if name.endswith("bias"):
            p.data = rng.normal(0, 0.3, p.shape)
    return model, twin_of(model)


def as_glassnet(name: str, value):
    """A torch parameter (or its gradient) in glassnet's layout."""
    value = value.detach().numpy()
    return value.T if name.endswith("weight") and value.ndim == 2 else value


def assert_same_weights(model, twin, when=""):
    theirs = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        close(p.data, as_glassnet(name, theirs[name]), f"{name} {when}")


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("make, deep_name", MODELS)
def test_forward_input_gradient_and_every_parameter_gradient(
    make, deep_name, batch, rng
):
    model, twin = make_pair(make)
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in twin.named_parameters()]
    assert deep_name in names
    X = rng.normal(size=(batch, 4))
    dout = rng.normal(size=(batch, 3))

    out = model.forward(X.copy(), training=True)
    dx = model.backward(dout.copy())

    tx = tensor(X, grad=True)
    tout = twin(tx)
    tout.backward(tensor(dout))
    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    theirs = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        close(p.grad, as_glassnet(name, theirs[name].grad), name)


OPTIMIZERS = [
    pytest.param(
        lambda: gn.SGD(lr=0.1, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        id="sgd-momentum",
    ),
    pytest.param(
        lambda: gn.Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01), id="adam"
    ),
]


@pytest.mark.parametrize("make_gn, make_torch", OPTIMIZERS)
@pytest.mark.parametrize("make, deep_name", MODELS)
def test_ten_optimizer_steps_match_torch(make, deep_name, make_gn, make_torch, rng):
    model, twin = make_pair(make)
    optimizer, toptimizer = make_gn(), make_torch(twin.parameters())
    loss = gn.SoftmaxCrossEntropy()
    for step in range(10):
        X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)  # a new batch each step
        value = loss.forward(model.forward(X, training=True), y)
        model.backward(loss.backward())
        optimizer.step(model.parameters())

        toptimizer.zero_grad()
        tvalue = F.cross_entropy(twin(tensor(X)), torch.tensor(y))
        tvalue.backward()
        toptimizer.step()
        close(value, tvalue, f"loss at step {step}")
        assert_same_weights(model, twin, f"after step {step + 1}")
    assert optimizer.t == 10


@pytest.mark.parametrize("make, deep_name", MODELS)
def test_fit_trains_a_nested_model_as_torch_does(make, deep_name, rng):
    """fit's own loop, full batch, no shuffling: the same 10 Adam steps."""
    model, twin = make_pair(make)
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(lr=0.01),
              epochs=10, batch_size=None, shuffle=False, verbose=0)  # fmt: skip
    toptimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    for _ in range(10):
        toptimizer.zero_grad()
        F.cross_entropy(twin(tensor(X)), torch.tensor(y)).backward()
        toptimizer.step()
    assert_same_weights(model, twin, "after fit")
