"""PyTorch as the oracle for the layers of part 1, to 1e-10 in float64: outputs,
input gradients and parameter gradients of every layer and option, and
BatchNorm's running statistics after several training steps.

Conventions as in test_torch_oracle.py: the glassnet layer is built in float64,
its parameters are copied into torch tensors, and both see the same x and dout.
"""

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

from torch_oracle_helpers import close, tensor  # noqa: E402


def randomised(layer, rng):
    """A float64 layer with random parameters (and running statistics) so that
    no gradient is hidden by a weight of 1 or a bias of 0."""
    for p in layer.parameters():
        p.data = rng.normal(1.0 if p.name == "weight" else 0.0, 0.5, p.shape)
    if isinstance(layer, (gn.BatchNorm1D, gn.BatchNorm2D)):
        C = layer.num_features
        layer.running_mean = rng.normal(0.0, 0.5, C)
        layer.running_var = rng.uniform(0.5, 2.0, C)
    return layer


def _bn(layer, x, params, training):
    rm, rv = tensor(layer.running_mean), tensor(layer.running_var)
    return F.batch_norm(
        x, rm, rv, params[0], params[1], training, layer.momentum, layer.eps
    )


# (id, make the float64 layer, input shape for batch B, torch function of
#  (layer, x, params)); x is drawn from N(0, 2^2) plus the values listed in EXTRA
LAYERS = [
    ("gelu", lambda: gn.GELU(), (5,), lambda m, x, p: F.gelu(x)),
    (
        "gelu-tanh",
        lambda: gn.GELU("tanh"),
        (2, 3),
        lambda m, x, p: F.gelu(x, approximate="tanh"),
    ),
    ("silu", lambda: gn.SiLU(), (5,), lambda m, x, p: F.silu(x)),
    ("elu", lambda: gn.ELU(), (5,), lambda m, x, p: F.elu(x)),
    ("elu-alpha", lambda: gn.ELU(0.5), (2, 3), lambda m, x, p: F.elu(x, 0.5)),
    ("softplus", lambda: gn.Softplus(), (5,), lambda m, x, p: F.softplus(x)),
    (
        "softplus-beta-threshold",
        lambda: gn.Softplus(beta=2.0, threshold=3.0),
        (5,),
        lambda m, x, p: F.softplus(x, beta=2.0, threshold=3.0),
    ),
    (
        "batchnorm1d-train",
        lambda: gn.BatchNorm1D(5, dtype=np.float64),
        (5,),
        lambda m, x, p: _bn(m, x, p, True),
    ),
    (
        "batchnorm1d-seq-train",
        lambda: gn.BatchNorm1D(3, eps=1e-3, momentum=0.3, dtype=np.float64),
        (3, 6),
        lambda m, x, p: _bn(m, x, p, True),
    ),
    (
        "batchnorm2d-train",
        lambda: gn.BatchNorm2D(3, dtype=np.float64),
        (3, 4, 5),
        lambda m, x, p: _bn(m, x, p, True),
    ),
    (
        "batchnorm1d-eval",
        lambda: gn.BatchNorm1D(5, dtype=np.float64),
        (5,),
        lambda m, x, p: _bn(m, x, p, False),
    ),
    (
        "batchnorm1d-seq-eval",
        lambda: gn.BatchNorm1D(3, eps=1e-3, dtype=np.float64),
        (3, 6),
        lambda m, x, p: _bn(m, x, p, False),
    ),
    (
        "batchnorm2d-eval",
        lambda: gn.BatchNorm2D(3, dtype=np.float64),
        (3, 4, 5),
        lambda m, x, p: _bn(m, x, p, False),
    ),
    (
        "layernorm-1axis",
        lambda: gn.LayerNorm(6, dtype=np.float64),
        (4, 6),
        lambda m, x, p: F.layer_norm(x, (6,), p[0], p[1], m.eps),
    ),
    (
        "layernorm-2axes",
        lambda: gn.LayerNorm((3, 4), eps=1e-3, dtype=np.float64),
        (2, 3, 4),
        lambda m, x, p: F.layer_norm(x, (3, 4), p[0], p[1], m.eps),
    ),
    (
        "layernorm-no-affine",
        lambda: gn.LayerNorm(6, elementwise_affine=False, dtype=np.float64),
        (6,),
        lambda m, x, p: F.layer_norm(x, (6,), None, None, m.eps),
    ),
    (
        "global-avg-1d",
        lambda: gn.GlobalAvgPool1D(),
        (3, 7),
        lambda m, x, p: F.adaptive_avg_pool1d(x, 1)[:, :, 0],
    ),
    (
        "global-avg-2d",
        lambda: gn.GlobalAvgPool2D(),
        (3, 4, 5),
        lambda m, x, p: F.adaptive_avg_pool2d(x, 1)[:, :, 0, 0],
    ),
    (
        "global-max-1d",
        lambda: gn.GlobalMaxPool1D(),
        (3, 7),
        lambda m, x, p: F.adaptive_max_pool1d(x, 1)[:, :, 0],
    ),
    (
        "global-max-2d",
        lambda: gn.GlobalMaxPool2D(),
        (3, 4, 5),
        lambda m, x, p: F.adaptive_max_pool2d(x, 1)[:, :, 0, 0],
    ),
]

# values placed at the start of x for the elementwise layers: both sides of the
# kinks and thresholds, and far tails where a careless formula loses everything
EXTRA = [0.0, -0.0, 1.5, 1.5000001, 20.0, 20.5, 25.0, -8.0, -30.0, -745.0, 40.0]


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize(
    "name, make, shape, torch_fn", [pytest.param(*c, id=c[0]) for c in LAYERS]
)
def test_layer_matches_torch(name, make, shape, torch_fn, batch, rng):
    layer = randomised(make(), rng)
    layer.training = name.endswith("-train")  # only BatchNorm cares
    if layer.training and batch == 1 and len(shape) == 1:
        batch = 2  # BatchNorm of (N, D) needs two rows for a variance
    x = rng.normal(0.0, 2.0, (batch, *shape))
    if not layer.parameters() and "pool" not in name:  # an elementwise activation
        flat = x.reshape(-1)
        n = min(len(EXTRA), flat.size)
        flat[:n] = EXTRA[:n]
    out = layer.forward(x.copy())
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout.copy())

    tx = tensor(x, grad=True)
    tparams = [tensor(p.data, grad=True) for p in layer.parameters()]
    tout = torch_fn(layer, tx, tparams)
    tout.backward(tensor(dout))

    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    for p, tp in zip(layer.parameters(), tparams, strict=True):
        close(p.grad, tp.grad, p.name)


@pytest.mark.parametrize(
    "layer, torch_fn, x",
    [
        (
            gn.GlobalMaxPool2D(),
            lambda x: F.adaptive_max_pool2d(x, 1)[:, :, 0, 0],
            [[[[1.0, 3.0], [3.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]]],
        ),
        (
            gn.GlobalMaxPool1D(),
            lambda x: F.adaptive_max_pool1d(x, 1)[:, :, 0],
            [[[1.0, 5.0, 5.0, 5.0]], [[-1.0, -1.0, -2.0, -1.0]]],
        ),
    ],
    ids=["2d", "1d"],
)
def test_global_max_pool_ties_route_to_the_first_maximum_like_torch(
    layer, torch_fn, x, rng
):
    x = np.array(x)
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    tx = tensor(x, grad=True)
    tout = torch_fn(tx)
    tout.backward(tensor(dout))
    close(out, tout)
    np.testing.assert_array_equal(dx, tx.grad.numpy())


@pytest.mark.parametrize(
    "ids",
    [
        [[1, 2, 1, 6], [1, 0, 2, 2]],  # repeated ids accumulate
        [3, 3, 3],  # (N,) -> (N, D), one id three times
        [[[0, 1], [6, 6]], [[5, 4], [0, 0]]],  # any rank
    ],
    ids=["NT", "N", "NTS"],
)
def test_embedding_matches_torch(ids, rng):
    layer = gn.Embedding(7, 3, rng=rng, dtype=np.float64)
    ids = np.array(ids)
    out = layer.forward(ids)
    dout = rng.normal(size=out.shape)
    layer.backward(dout)
    tw = tensor(layer.weight.data, grad=True)
    tout = F.embedding(torch.tensor(ids), tw)
    tout.backward(tensor(dout))
    close(out, tout, "forward")
    close(layer.weight.grad, tw.grad, "weight gradient")


def test_embedding_init_matches_torch_distribution():
    """N(0, 1), as torch.nn.Embedding: the same moments on a large table."""
    w = gn.Embedding(2000, 50, rng=np.random.default_rng(0)).weight.data
    t = torch.nn.Embedding(2000, 50).weight.detach().numpy()
    assert abs(w.mean() - t.mean()) < 0.02 and abs(w.std() - t.std()) < 0.02


# -- state after training steps ------------------------------------------------------


def _torch_bn_model(layers, two_d: bool):
    """The torch twin of the layers [first, BatchNorm, ReLU, last] with their
    weights (and a Flatten before last for images)."""
    first, bn, _, last = layers
    if two_d:
        conv = torch.nn.Conv2d(first.in_channels, first.out_channels, 3, padding=1)
        conv.weight.data = tensor(first.weight.data)
        conv.bias.data = tensor(first.bias.data)
        tbn = torch.nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum)
        head = [torch.nn.Flatten()]
    else:
        conv = torch.nn.Linear(first.in_features, first.out_features)
        conv.weight.data = tensor(first.weight.data.T)
        conv.bias.data = tensor(first.bias.data)
        tbn = torch.nn.BatchNorm1d(bn.num_features, bn.eps, bn.momentum)
        head = []
    tbn.weight.data, tbn.bias.data = tensor(bn.weight.data), tensor(bn.bias.data)
    linear = torch.nn.Linear(last.in_features, last.out_features)
    linear.weight.data = tensor(last.weight.data.T)
    linear.bias.data = tensor(last.bias.data)
    layers = [conv, tbn, torch.nn.ReLU(), *head, linear]
    return torch.nn.Sequential(*layers).double(), tbn


@pytest.mark.parametrize("two_d", [False, True], ids=["batchnorm1d", "batchnorm2d"])
def test_running_statistics_after_five_sgd_steps_match_torch(two_d, rng):
    """fit with full-batch SGD for 5 epochs = 5 steps of forward, backward, update:
    the running mean and variance, and every weight, equal torch's."""
    if two_d:
        X = rng.normal(1.0, 2.0, (8, 2, 4, 4))
        model = gn.Sequential(
            gn.Conv2D(2, 3, 3, padding=1),
            gn.BatchNorm2D(3, momentum=0.2),
            gn.ReLU(),
            gn.Flatten(),
            gn.Dense(48, 2),
            seed=0,
            dtype=np.float64,
        )
        layers = [model.layers[i] for i in (0, 1, 2, 4)]
    else:
        X = rng.normal(1.0, 2.0, (16, 4))
        model = gn.Sequential(
            gn.Dense(4, 6),
            gn.BatchNorm1D(6),
            gn.ReLU(),
            gn.Dense(6, 2),
            seed=0,
            dtype=np.float64,
        )
        layers = model.layers
    y = rng.normal(size=(len(X), 2))
    randomised(model.layers[1], rng)
    bn = model.layers[1]
    bn.running_mean[...], bn.running_var[...] = 0.0, 1.0  # fresh, as torch's
    tmodel, tbn = _torch_bn_model(layers, two_d)

    model.fit(X, y, loss="mse", optimizer=gn.SGD(lr=0.1), epochs=5,
              batch_size=None, shuffle=False, verbose=0)  # fmt: skip

    opt = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    tmodel.train()
    for _ in range(5):
        opt.zero_grad()
        F.mse_loss(tmodel(tensor(X)), tensor(y)).backward()
        opt.step()

    close(bn.running_mean, tbn.running_mean, "running_mean")
    close(bn.running_var, tbn.running_var, "running_var")
    close(bn.weight.data, tbn.weight, "gamma")
    close(bn.bias.data, tbn.bias, "beta")
    tmodel.eval()  # and predict uses the running statistics, as torch's eval()
    close(model.predict(X), tmodel(tensor(X)), "predict")
