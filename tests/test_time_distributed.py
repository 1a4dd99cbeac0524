"""TimeDistributed: one layer at every time step, the weights shared by all."""

import numpy as np
import pytest

import glassnet as gn


def f64_dense(rng, D, M):
    layer = gn.Dense(D, M, rng=rng, dtype=np.float64)
    layer.bias.data = rng.normal(size=M)  # a zero bias gradient would prove nothing
    return layer


CASES = [
    pytest.param(lambda rng: f64_dense(rng, 4, 3), (2, 5, 4), id="dense"),
    pytest.param(lambda rng: f64_dense(rng, 4, 3), (1, 1, 4), id="dense-one-step"),
    pytest.param(lambda rng: gn.Tanh(), (3, 4, 2), id="tanh"),
    pytest.param(
        lambda rng: gn.Sequential(
            f64_dense(rng, 4, 6), gn.Tanh(), f64_dense(rng, 6, 2)
        ),
        (3, 2, 4),
        id="mlp",
    ),
]


@pytest.mark.parametrize("make, x_shape", CASES)
def test_gradients_match_finite_differences(make, x_shape, rng):
    layer = gn.TimeDistributed(make(rng))
    report = gn.gradcheck(layer, rng.normal(size=x_shape))
    assert report.passed, str(report)
    assert report.worst().max_error <= 1e-7


def test_every_step_uses_the_same_weights(rng):
    dense = f64_dense(rng, 4, 3)
    layer = gn.TimeDistributed(dense)
    x = rng.normal(size=(2, 5, 4))
    out = layer.forward(x)
    for t in range(5):
        np.testing.assert_allclose(out[:, t], dense.forward(x[:, t]), rtol=1e-14)
    dout = rng.normal(size=out.shape)
    layer.forward(x)
    layer.backward(dout)
    expected = sum(x[:, t].T @ dout[:, t] for t in range(5))  # summed over steps
    np.testing.assert_allclose(dense.weight.grad, expected, rtol=1e-12)


def test_names_shapes_and_errors():
    model = gn.Sequential(
        gn.Embedding(10, 6), gn.GRU(6, 8, return_sequences=True),
        gn.TimeDistributed(gn.Dense(8, 3)), seed=0,
    )  # fmt: skip
    assert [n for n, _ in model.named_parameters()][-2:] == [
        "2.layer.weight",
        "2.layer.bias",
    ]
    assert model.output_shape((7,)) == (7, 3)
    with pytest.raises(gn.ShapeError, match="sequence batch \\(N, T, ...\\)"):
        gn.TimeDistributed(gn.Dense(2, 2)).forward(np.ones((4, 2), np.float32))
    with pytest.raises(gn.ShapeError, match="TimeDistributed layer: Dense"):
        gn.TimeDistributed(gn.Dense(3, 2)).output_shape((7, 4))
    with pytest.raises(gn.ArgumentTypeError):
        gn.TimeDistributed("dense")


def test_a_tagger_trains_with_the_sequence_loss():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, (200, 8))
    labels = (ids % 3).astype(np.int64)  # each token's class depends on the token
    labels[:, 6:] = -1  # padding at the end of every row
    model = gn.Sequential(
        gn.Embedding(6, 8), gn.GRU(8, 16, return_sequences=True),
        gn.TimeDistributed(gn.Dense(16, 3)), seed=0,
    )  # fmt: skip
    loss = gn.SoftmaxCrossEntropy(ignore_index=-1)
    history = model.fit(
        ids, labels, loss=loss, optimizer=gn.Adam(lr=0.02), epochs=30, verbose=0
    )
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert model.evaluate(ids, labels, loss=loss)["accuracy"] > 0.95


@pytest.mark.torch
def test_matches_torch_linear_over_the_last_axis(rng):
    torch = pytest.importorskip("torch")
    dense = f64_dense(rng, 4, 3)
    layer = gn.TimeDistributed(dense)
    x, dout = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    out = layer.forward(x)
    dx = layer.backward(dout)
    linear = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(dense.weight.data.T))
        linear.bias.copy_(torch.tensor(dense.bias.data))
    xt = torch.tensor(x, requires_grad=True)
    yt = linear(xt)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        dense.weight.grad, linear.weight.grad.numpy().T, rtol=1e-10
    )
