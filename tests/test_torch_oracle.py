"""PyTorch as an independent oracle: same weights, same numbers, to 1e-10 in float64.

glassnet's Dense weight is (in, out); torch.nn.Linear's is (out, in), the
transpose. Everything else (layer math, loss reductions, optimizer update rules
and their defaults) is meant to match torch exactly.
"""

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

from torch_oracle_helpers import close, tensor  # noqa: E402

# -- layers --------------------------------------------------------------------

# (make the glassnet layer, the same function in torch given the glassnet layer)
LAYERS = [
    pytest.param(
        lambda rng: gn.Dense(4, 3, rng=rng, dtype=np.float64),
        lambda layer, x, params: F.linear(x, params[0].T, params[1]),
        id="dense",
    ),
    pytest.param(
        lambda rng: gn.Sigmoid(), lambda layer, x, p: torch.sigmoid(x), id="sigmoid"
    ),
    pytest.param(lambda rng: gn.Tanh(), lambda layer, x, p: torch.tanh(x), id="tanh"),
    pytest.param(lambda rng: gn.ReLU(), lambda layer, x, p: torch.relu(x), id="relu"),
    pytest.param(
        lambda rng: gn.LeakyReLU(0.2),
        lambda layer, x, p: F.leaky_relu(x, layer.negative_slope),
        id="leaky_relu",
    ),
    pytest.param(
        lambda rng: gn.LeakyReLU(),
        lambda layer, x, p: F.leaky_relu(x),  # both default to 0.01
        id="leaky_relu-default",
    ),
    pytest.param(lambda rng: gn.Identity(), lambda layer, x, p: x * 1.0, id="identity"),
    pytest.param(
        lambda rng: gn.Softmax(), lambda layer, x, p: torch.softmax(x, 1), id="softmax"
    ),
]


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("make_layer, torch_fn", LAYERS)
def test_layer_matches_torch(make_layer, torch_fn, batch, rng):
    layer = make_layer(rng)
    features = layer.in_features if isinstance(layer, gn.Dense) else 4
    if isinstance(layer, gn.Dense):
        layer.bias.data = rng.normal(size=layer.bias.shape)
    x = rng.normal(0, 2, (batch, features))
    x[0, 0] = 0.0  # ReLU's kink: both take the derivative at 0 as 0
    dout = rng.normal(size=(batch, 3 if isinstance(layer, gn.Dense) else features))

    out = layer.forward(x.copy())
    dx = layer.backward(dout.copy())

    tx = tensor(x, grad=True)
    tparams = [tensor(p.data, grad=True) for p in layer.parameters()]
    tout = torch_fn(layer, tx, tparams)
    tout.backward(tensor(dout))

    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    for p, tp in zip(layer.parameters(), tparams, strict=True):
        close(p.grad, tp.grad, p.name)


# -- losses --------------------------------------------------------------------


def _probs(rng, n, k):
    p = rng.uniform(0.05, 1.0, (n, k))
    return p / p.sum(axis=1, keepdims=True)


def _torch_ce_on_probs(p, y, reduction):
    if y.dim() == 1:
        return F.nll_loss(torch.log(p), y, reduction=reduction)
    total = -(y * torch.log(p)).sum()
    return total / p.shape[0] if reduction == "mean" else total


# (glassnet loss class, make (pred, target), torch loss(pred, target, reduction))
LOSSES = [
    pytest.param(
        gn.MeanSquaredError,
        lambda rng, n: (rng.normal(size=(n, 3)), rng.normal(size=(n, 3))),
        lambda p, y, r: F.mse_loss(p, y, reduction=r),
        id="mse",
    ),
    pytest.param(
        gn.CrossEntropy,
        lambda rng, n: (_probs(rng, n, 4), rng.integers(0, 4, n)),
        _torch_ce_on_probs,
        id="cross_entropy-labels",
    ),
    pytest.param(
        gn.CrossEntropy,
        lambda rng, n: (_probs(rng, n, 4), np.eye(4)[rng.integers(0, 4, n)]),
        _torch_ce_on_probs,
        id="cross_entropy-onehot",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 3, (n, 4)), rng.integers(0, 4, n)),
        lambda p, y, r: F.cross_entropy(p, y, reduction=r),
        id="softmax_ce-labels",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 3, (n, 4)), np.eye(4)[rng.integers(0, 4, n)]),
        lambda p, y, r: F.cross_entropy(p, y, reduction=r),
        id="softmax_ce-onehot",
    ),
    pytest.param(
        gn.SoftmaxCrossEntropy,
        lambda rng, n: (rng.normal(0, 3, (n, 4)), _probs(rng, n, 4)),
        lambda p, y, r: F.cross_entropy(p, y, reduction=r),
        id="softmax_ce-soft",
    ),
    pytest.param(
        gn.BinaryCrossEntropy,
        lambda rng, n: (rng.uniform(0.02, 0.98, (n, 2)), rng.integers(0, 2, (n, 2))),
        lambda p, y, r: F.binary_cross_entropy(p, y, reduction=r),
        id="bce",
    ),
    pytest.param(
        gn.BinaryCrossEntropy,
        lambda rng, n: (rng.uniform(0.02, 0.98, (n, 1)), rng.uniform(0, 1, (n, 1))),
        lambda p, y, r: F.binary_cross_entropy(p, y, reduction=r),
        id="bce-soft",
    ),
    pytest.param(
        gn.BinaryCrossEntropyWithLogits,
        lambda rng, n: (rng.normal(0, 3, (n, 2)), rng.integers(0, 2, (n, 2))),
        lambda p, y, r: F.binary_cross_entropy_with_logits(p, y, reduction=r),
        id="bce_logits",
    ),
]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("loss_cls, make_data, torch_loss", LOSSES)
def test_loss_matches_torch(loss_cls, make_data, torch_loss, batch, reduction, rng):
    pred, target = make_data(rng, batch)
    loss = loss_cls(reduction=reduction)
    prepared = loss.prepare_target(target, pred.shape, np.float64)
    value = loss.forward(pred.copy(), prepared)
    dpred = loss.backward()

    tp = tensor(pred, grad=True)
    is_labels = np.issubdtype(np.asarray(target).dtype, np.integer) and target.ndim == 1
    ty = torch.tensor(target) if is_labels else tensor(target)
    tvalue = torch_loss(tp, ty, reduction)
    tvalue.backward()

    assert isinstance(value, float)
    close(value, tvalue, "loss value")
    close(dpred, tp.grad, "dL/dpred")


def test_extreme_logits_match_torch():
    """Far from the comfortable range, where a naive formula would overflow."""
    logits = np.array([[1e4, 0.0, -1e4], [-800.0, 800.0, 0.0]])
    labels = np.array([2, 0])
    loss = gn.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    tl = tensor(logits, grad=True)
    tvalue = F.cross_entropy(tl, torch.tensor(labels))
    tvalue.backward()
    close(value, tvalue)
    close(loss.backward(), tl.grad)

    z = np.array([[1000.0], [-1000.0], [30.0], [-30.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    bce = gn.BinaryCrossEntropyWithLogits()
    value = bce.forward(z, y)
    tz = tensor(z, grad=True)
    tvalue = F.binary_cross_entropy_with_logits(tz, tensor(y))
    tvalue.backward()
    close(value, tvalue)
    close(bce.backward(), tz.grad)


# -- a whole model -------------------------------------------------------------


def make_pair(seed=0):
    """A glassnet model and the same network in torch, with the same weights."""
    model = gn.Sequential(
        gn.Dense(4, 6),
        gn.Tanh(),
        gn.Dense(6, 5),
        gn.Sigmoid(),
        gn.Dense(5, 3),
        seed=seed,
        dtype=np.float64,
    )
    rng = np.random.default_rng(seed + 100)
    for p in model.parameters():
        if p.name == "bias":
            p.data = rng.normal(0, 0.3, p.shape)
    twin = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 5),
        torch.nn.Sigmoid(),
        torch.nn.Linear(5, 3),
    ).double()
    with torch.no_grad():
        for dense, linear in zip(model.layers[::2], twin[::2], strict=True):
            linear.weight.copy_(torch.from_numpy(dense.weight.data.T.copy()))
            linear.bias.copy_(torch.from_numpy(dense.bias.data.copy()))
    return model, twin


def assert_same_weights(model, twin):
    for i, (dense, linear) in enumerate(zip(model.layers[::2], twin[::2], strict=True)):
        close(dense.weight.data, linear.weight.T, f"layer {2 * i} weight")
        close(dense.bias.data, linear.bias, f"layer {2 * i} bias")


def test_model_forward_and_all_gradients_match_torch(rng):
    model, twin = make_pair()
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, 7)
    loss = gn.SoftmaxCrossEntropy()
    value = loss.forward(model.forward(X), y)
    dx = model.backward(loss.backward())

    tx = tensor(X, grad=True)
    tvalue = F.cross_entropy(twin(tx), torch.tensor(y))
    tvalue.backward()
    close(value, tvalue, "loss")
    close(dx, tx.grad, "input gradient")
    for i, (dense, linear) in enumerate(zip(model.layers[::2], twin[::2], strict=True)):
        close(dense.weight.grad, linear.weight.grad.T, f"{2 * i}.weight")
        close(dense.bias.grad, linear.bias.grad, f"{2 * i}.bias")


# -- optimizers: 10 steps on the same model, compared every step ---------------

OPTIMIZERS = [
    pytest.param(
        lambda: gn.SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1), id="sgd"
    ),
    pytest.param(
        lambda: gn.SGD(lr=0.1, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        id="sgd-momentum",
    ),
    pytest.param(
        lambda: gn.SGD(lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        id="nesterov",
    ),
    pytest.param(
        lambda: gn.SGD(lr=0.1, weight_decay=0.05),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05),
        id="sgd-weight_decay",
    ),
    pytest.param(
        lambda: gn.SGD(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
        lambda ps: torch.optim.SGD(
            ps, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05
        ),
        id="nesterov-weight_decay",
    ),
    pytest.param(
        lambda: gn.RMSprop(lr=0.01),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01),
        id="rmsprop",
    ),
    pytest.param(
        lambda: gn.RMSprop(lr=0.01, momentum=0.9),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.9),
        id="rmsprop-momentum",
    ),
    pytest.param(
        lambda: gn.RMSprop(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.05),
        lambda ps: torch.optim.RMSprop(
            ps, lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.05
        ),
        id="rmsprop-all",
    ),
    pytest.param(
        lambda: gn.Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01), id="adam"
    ),
    pytest.param(
        lambda: gn.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05),
        lambda ps: torch.optim.Adam(
            ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05
        ),
        id="adam-weight_decay",
    ),
    pytest.param(
        lambda: gn.AdamW(lr=0.01), lambda ps: torch.optim.AdamW(ps, lr=0.01), id="adamw"
    ),
    pytest.param(
        lambda: gn.AdamW(lr=0.01, weight_decay=0.3),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.3),
        id="adamw-0.3",
    ),
]


@pytest.mark.parametrize("make_gn, make_torch", OPTIMIZERS)
def test_ten_optimizer_steps_match_torch(make_gn, make_torch, rng):
    model, twin = make_pair()
    optimizer, toptimizer = make_gn(), make_torch(twin.parameters())
    loss = gn.SoftmaxCrossEntropy()
    for _ in range(10):
        X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)  # a new batch each step
        loss.forward(model.forward(X), y)
        model.backward(loss.backward())
        optimizer.step(model.parameters())

        toptimizer.zero_grad()
        F.cross_entropy(twin(tensor(X)), torch.tensor(y)).backward()
        toptimizer.step()
        assert_same_weights(model, twin)
    assert optimizer.t == 10


@pytest.mark.parametrize("make_gn, make_torch", OPTIMIZERS)
def test_fit_full_batch_matches_torch(make_gn, make_torch, rng):
    """fit's own training loop (one flat buffer, prepared steps) takes the same
    10 steps: full batch, no shuffling."""
    model, twin = make_pair()
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model.fit(
        X,
        y,
        loss="softmax_cross_entropy",
        optimizer=make_gn(),
        epochs=10,
        batch_size=None,
        shuffle=False,
        verbose=0,
    )
    toptimizer = make_torch(twin.parameters())
    for _ in range(10):
        toptimizer.zero_grad()
        F.cross_entropy(twin(tensor(X)), torch.tensor(y)).backward()
        toptimizer.step()
    assert_same_weights(model, twin)


@pytest.mark.parametrize(
    "make_gn, make_torch",
    [
        pytest.param(
            lambda: gn.SGD(lr=0.05, momentum=0.9),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
            id="sgd-momentum",
        ),
        pytest.param(
            lambda: gn.Adam(lr=0.01),
            lambda ps: torch.optim.Adam(ps, lr=0.01),
            id="adam",
        ),
    ],
)
def test_fit_minibatches_match_torch(make_gn, make_torch, rng):
    """Several minibatches per epoch, in order: state carries across batches and
    epochs exactly as a plain torch loop over the same slices."""
    model, twin = make_pair()
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    model.fit(
        X,
        y,
        loss="softmax_cross_entropy",
        optimizer=make_gn(),
        epochs=3,
        batch_size=4,
        shuffle=False,
        verbose=0,
    )
    toptimizer = make_torch(twin.parameters())
    for _ in range(3):
        for start in range(0, 10, 4):  # batches of 4, 4 and 2
            toptimizer.zero_grad()
            xb, yb = X[start : start + 4], y[start : start + 4]
            F.cross_entropy(twin(tensor(xb)), torch.tensor(yb)).backward()
            toptimizer.step()
    assert_same_weights(model, twin)


@pytest.mark.parametrize(
    "schedule, torch_schedule",
    [
        pytest.param(
            lambda: gn.StepDecay(step_size=3, gamma=0.5),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
            id="step",
        ),
        pytest.param(
            lambda: gn.ExponentialDecay(gamma=0.8),
            lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
            id="exponential",
        ),
        pytest.param(
            lambda: gn.CosineDecay(t_max=9, min_lr=0.01),  # torch rises again after
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
                o, T_max=9, eta_min=0.01
            ),
            id="cosine",
        ),
    ],
)
def test_schedules_match_torch(schedule, torch_schedule, rng):
    model, twin = make_pair()
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    history = model.fit(
        X,
        y,
        loss="softmax_cross_entropy",
        optimizer=gn.SGD(lr=0.2, momentum=0.5),
        epochs=10,
        batch_size=None,
        shuffle=False,
        verbose=0,
        callbacks=[schedule()],
    )
    toptimizer = torch.optim.SGD(twin.parameters(), lr=0.2, momentum=0.5)
    tschedule = torch_schedule(toptimizer)
    lrs = []
    for _ in range(10):
        lrs.append(toptimizer.param_groups[0]["lr"])
        toptimizer.zero_grad()
        F.cross_entropy(twin(tensor(X)), torch.tensor(y)).backward()
        toptimizer.step()
        tschedule.step()
    np.testing.assert_allclose(history["lr"], lrs, rtol=1e-12)
    assert_same_weights(model, twin)
