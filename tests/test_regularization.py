"""The per-layer l2 option: penalty l2 * sum(weight**2), its gradient in backward,
checked by gradcheck, kept in configs and files, equal to PyTorch's."""

import numpy as np
import pytest

import glassnet as gn

L2_LAYERS = [
    pytest.param(lambda rng: gn.Dense(4, 3, l2=0.1, rng=rng), (5, 4), id="dense"),
    pytest.param(
        lambda rng: gn.Conv2D(2, 3, 3, padding=1, l2=0.05, rng=rng),
        (2, 2, 5, 5),
        id="conv2d",
    ),
    pytest.param(
        lambda rng: gn.Conv1D(2, 3, 3, l2=0.2, rng=rng), (2, 2, 7), id="conv1d"
    ),
]


def _f64(layer, rng):
    for p in layer.parameters():
        p.data = rng.normal(size=p.shape)  # float64, nonzero bias
    return layer


@pytest.mark.parametrize("make, x_shape", L2_LAYERS)
def test_penalty_is_l2_times_the_sum_of_squared_weights(make, x_shape, rng):
    layer = _f64(make(rng), rng)
    W = layer.weight.data
    assert layer.penalty() == pytest.approx(layer.l2 * np.sum(W**2), rel=1e-14)
    assert gn.Dense(4, 3).penalty() == 0.0  # no l2, no penalty


@pytest.mark.parametrize("make, x_shape", L2_LAYERS)
def test_gradcheck_confirms_the_penalty_gradient(make, x_shape, rng):
    layer = _f64(make(rng), rng)
    report = gn.gradcheck(layer, rng.normal(size=x_shape))
    assert report.passed, str(report)


@pytest.mark.parametrize("make, x_shape", L2_LAYERS)
def test_gradcheck_fails_a_backward_that_forgets_the_penalty(make, x_shape, rng):
    layer = _f64(make(rng), rng)
    honest = type(layer).backward

    def forgetful(self, dout):
        dx = honest(self, dout)
        self.weight.grad = self.weight.grad - 2.0 * self.l2 * self.weight.data
        return dx

    layer.backward = forgetful.__get__(layer)
    report = gn.gradcheck(layer, rng.normal(size=x_shape))
    assert not report.passed
    assert [row.name for row in report.failures()] == ["weight"]


def test_a_model_with_l2_passes_gradcheck_with_a_loss(rng):
    model = gn.Sequential(
        gn.Dense(4, 5, l2=0.1), gn.Tanh(), gn.Dense(5, 3, l2=0.3), seed=0
    )
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    report = gn.gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert report.passed, str(report)


def test_backward_params_adds_the_penalty_gradient_too(rng):
    layer = _f64(gn.Dense(4, 3, l2=0.5, rng=rng), rng)
    x, dout = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    layer.forward(x)
    layer.backward(dout)
    full = layer.weight.grad.copy()
    layer.backward_params(dout)
    np.testing.assert_allclose(layer.weight.grad, full, rtol=1e-14)


@pytest.mark.parametrize("l2", [-0.1, "0.1", True, float("nan")])
def test_bad_l2_is_refused(l2):
    with pytest.raises(gn.ConfigError, match="l2 must be a number >= 0"):
        gn.Dense(2, 2, l2=l2)


def test_l2_is_saved_and_loaded_with_the_model(tmp_path):
    model = gn.Sequential(
        gn.Conv1D(1, 2, 3, l2=0.25), gn.Flatten(), gn.Dense(10, 2, l2=0.5)
    )
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = gn.load(path)
    assert [loaded[0].l2, loaded[2].l2] == [0.25, 0.5]
    assert loaded[2].get_config()["l2"] == 0.5


@pytest.mark.torch
def test_dense_l2_gradient_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    layer = _f64(gn.Dense(4, 3, l2=0.2, rng=rng), rng)
    x, dout = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    layer.forward(x)
    layer.backward(dout)
    W = torch.tensor(layer.weight.data.T.copy(), requires_grad=True)  # (out, in)
    b = torch.tensor(layer.bias.data)
    out = torch.tensor(x) @ W.T + b
    objective = (out * torch.tensor(dout)).sum() + 0.2 * (W**2).sum()
    objective.backward()
    np.testing.assert_allclose(layer.weight.grad, W.grad.numpy().T, rtol=1e-10)


def test_fit_and_evaluate_report_the_loss_with_its_penalty():
    X, y = gn.datasets.make_blobs(40, centers=3, n_features=2, seed=0)
    model = gn.Sequential(
        gn.Dense(2, 4, l2=0.1), gn.Tanh(), gn.Dense(4, 3, l2=0.2), seed=0,
        dtype=np.float64,
    )  # fmt: skip
    data_loss = gn.SoftmaxCrossEntropy().forward(model.predict(X), y)
    penalty = 0.1 * np.sum(model[0].weight.data ** 2) + 0.2 * np.sum(
        model[2].weight.data ** 2
    )
    evaluated = model.evaluate(X, y, loss="softmax_cross_entropy")["loss"]
    assert evaluated == pytest.approx(data_loss + penalty, rel=1e-12)
    # one full-batch epoch reports the loss at the weights it started from
    history = model.fit(
        X, y, loss="softmax_cross_entropy", optimizer=gn.SGD(lr=0.1),
        batch_size=None, verbose=0,
    )  # fmt: skip
    assert history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


@pytest.mark.parametrize("clipnorm, clipped", [(1e-4, 3), (1e6, 0)])
def test_history_counts_the_steps_clipping_changed(clipnorm, clipped):
    X, y = gn.datasets.make_blobs(30, centers=2, n_features=2, seed=0)
    model = gn.Sequential(gn.Dense(2, 2), seed=0)
    history = model.fit(
        X, y, loss="softmax_cross_entropy", epochs=2, batch_size=10, verbose=0,
        optimizer=gn.SGD(lr=0.1, clipnorm=clipnorm),
    )  # fmt: skip
    assert history["clipped_steps"] == [clipped, clipped]


def test_no_clipping_column_without_clipping():
    X, y = gn.datasets.make_blobs(30, centers=2, n_features=2, seed=0)
    history = gn.Sequential(gn.Dense(2, 2), seed=0).fit(X, y, verbose=0)
    assert "clipped_steps" not in history.history
