"""fit trains with the first layer's own backward.

Training skips the first layer's dL/dx through backward_params, a faster path
some layers define (Dense, Conv2D, the recurrent layers, Embedding). A subclass
that overrides backward but inherits that path must still train with its own
backward: gradcheck and explain read backward, so fit must too.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.nn.layers.base import backward_params_of


def frozen(cls):
    """A subclass of cls whose backward zeroes every parameter gradient."""

    def backward(self, dout):
        dx = cls.backward(self, dout)
        for p in self.parameters():
            p.grad = np.zeros_like(p.grad)
        return dx

    return type(f"Frozen{cls.__name__}", (cls,), {"backward": backward})


def _ids(rng):
    return rng.integers(0, 6, size=(8, 5))  # (N, T) token ids


CASES = [
    pytest.param(
        lambda: [frozen(gn.Dense)(4, 3)], lambda r: r.normal(size=(8, 4)), id="dense"
    ),
    pytest.param(
        lambda: [frozen(gn.Conv2D)(1, 2, 3), gn.Flatten(), gn.Dense(2 * 4 * 4, 3)],
        lambda r: r.normal(size=(8, 1, 6, 6)),
        id="conv2d",
    ),
    pytest.param(
        lambda: [frozen(gn.Conv1D)(2, 2, 3), gn.Flatten(), gn.Dense(2 * 6, 3)],
        lambda r: r.normal(size=(8, 2, 8)),
        id="conv1d",
    ),
    pytest.param(
        lambda: [frozen(gn.LSTM)(4, 5), gn.Dense(5, 3)],
        lambda r: r.normal(size=(8, 5, 4)),
        id="lstm",
    ),
    pytest.param(
        lambda: [frozen(gn.GRU)(4, 5), gn.Dense(5, 3)],
        lambda r: r.normal(size=(8, 5, 4)),
        id="gru",
    ),
    pytest.param(
        lambda: [frozen(gn.RNN)(4, 5), gn.Dense(5, 3)],
        lambda r: r.normal(size=(8, 5, 4)),
        id="rnn",
    ),
    pytest.param(
        lambda: [frozen(gn.Embedding)(6, 4), gn.Flatten(), gn.Dense(20, 3)],
        _ids,
        id="embedding",
    ),
    pytest.param(
        lambda: [gn.Sequential(frozen(gn.Dense)(4, 3), gn.Tanh()), gn.Dense(3, 3)],
        lambda r: r.normal(size=(8, 4)),
        id="nested-sequential",
    ),
    pytest.param(
        lambda: [gn.TimeDistributed(frozen(gn.Dense)(4, 3)), gn.Flatten()],
        lambda r: r.normal(size=(8, 1, 4)),
        id="time-distributed",
    ),
]


def _frozen_layer(model):
    return next(
        layer
        for _, layer in model.named_layers()
        if type(layer).__name__.startswith("Frozen")
    )


@pytest.mark.parametrize("make_layers, make_x", CASES)
def test_a_first_layer_that_overrides_backward_trains_with_it(make_layers, make_x):
    rng = np.random.default_rng(0)
    model = gn.Sequential(*make_layers(), seed=0, dtype=np.float64)
    layer = _frozen_layer(model)
    before = [p.data.copy() for p in layer.parameters()]
    X, y = make_x(rng), np.arange(8) % 3
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.SGD(lr=0.5),
              epochs=2, batch_size=4, verbose=0)  # fmt: skip
    for p, old in zip(layer.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, old)  # its own backward: no change
    last = model.layers[-1]
    if last is not layer and last.parameters():  # control: the rest did train
        assert any(
            not np.allclose(p.data, q)
            for p, q in zip(last.parameters(), _initial(make_layers), strict=True)
        )


def _initial(make_layers):
    model = gn.Sequential(*make_layers(), seed=0, dtype=np.float64)
    return [p.data for p in model.layers[-1].parameters()]


@pytest.mark.parametrize(
    "layer, fast",
    [
        (gn.Dense(4, 3), True),
        (gn.Conv2D(1, 2, 3), True),
        (gn.LSTM(4, 5), True),
        (gn.Embedding(6, 4), True),
        (frozen(gn.Dense)(4, 3), False),
        (frozen(gn.LSTM)(4, 5), False),
        (gn.Tanh(), False),  # no faster path: backward itself
    ],
    ids=["dense", "conv2d", "lstm", "embedding", "frozen-dense", "frozen-lstm", "tanh"],
)
def test_the_faster_path_is_kept_where_it_is_the_layers_own(layer, fast):
    chosen = backward_params_of(layer)
    assert (chosen == layer.backward_params) is fast
    assert (chosen == layer.backward) is (not fast)
