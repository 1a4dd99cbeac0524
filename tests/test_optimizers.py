"""One step by hand per optimizer (the textbook formula), their state, and the
learning-rate schedules."""

import math

import numpy as np
import pytest

import glassnet as gn


def make_params():
    """Two parameters of different shapes with known gradients."""
    w = gn.Parameter(np.array([[1.0, -2.0], [0.5, 3.0]]), "weight")
    b = gn.Parameter(np.array([0.25, -0.75]), "bias")
    w.grad = np.array([[0.5, 0.5], [-1.0, 2.0]])
    b.grad = np.array([0.1, -0.3])
    return [w, b]


def values(params):
    return [p.data.copy() for p in params]


def grads(params):
    return [p.grad.copy() for p in params]


# -- SGD -----------------------------------------------------------------------


def test_sgd_one_step():
    params = make_params()
    w0, g = values(params), grads(params)
    gn.SGD(lr=0.1).step(params)
    for p, w, gi in zip(params, w0, g, strict=True):
        np.testing.assert_allclose(p.data, w - 0.1 * gi, rtol=1e-15)


def test_sgd_by_hand_numbers():
    p = gn.Parameter(np.array([1.0, -2.0]), "w")
    p.grad = np.array([0.5, 0.5])
    gn.SGD(lr=0.1).step([p])
    np.testing.assert_allclose(p.data, [0.95, -2.05], rtol=1e-15)


def test_sgd_momentum_one_step_from_a_known_velocity():
    p = gn.Parameter(np.array([1.0, -2.0]), "w")
    p.grad = np.array([0.5, 0.5])
    optimizer = gn.SGD(lr=0.1, momentum=0.9).bind([p])
    optimizer.velocity[...] = 1.0
    optimizer.step()
    # v = 0.9 * 1.0 + 0.5 = 1.4, then w -= 0.1 * v
    np.testing.assert_allclose(optimizer.velocity, [1.4, 1.4], rtol=1e-15)
    np.testing.assert_allclose(p.data, [0.86, -2.14], rtol=1e-15)


def test_nesterov_one_step_from_a_known_velocity():
    p = gn.Parameter(np.array([1.0, -2.0]), "w")
    p.grad = np.array([0.5, -0.5])
    optimizer = gn.SGD(lr=0.1, momentum=0.9, nesterov=True).bind([p])
    optimizer.velocity[...] = 1.0
    optimizer.step()
    # v = 0.9 * 1 + g = [1.4, 0.4]; step direction g + 0.9 v = [1.76, -0.14]
    np.testing.assert_allclose(optimizer.velocity, [1.4, 0.4], rtol=1e-15)
    np.testing.assert_allclose(p.data, [1.0 - 0.176, -2.0 + 0.014], rtol=1e-14)


def test_sgd_weight_decay_adds_l2_gradient():
    p = gn.Parameter(np.array([1.0, -2.0]), "w")
    p.grad = np.array([0.5, 0.5])
    gn.SGD(lr=0.1, weight_decay=0.1).step([p])
    # g = [0.5 + 0.1, 0.5 - 0.2] = [0.6, 0.3]
    np.testing.assert_allclose(p.data, [0.94, -2.03], rtol=1e-15)


def test_sgd_momentum_two_steps_accumulate():
    params = make_params()
    w0, g = values(params), grads(params)
    optimizer = gn.SGD(lr=0.1, momentum=0.5)
    optimizer.step(params)
    optimizer.step(params)  # same gradient again: v1 = g, v2 = 0.5 g + g
    for p, w, gi in zip(params, w0, g, strict=True):
        np.testing.assert_allclose(p.data, w - 0.1 * gi - 0.1 * 1.5 * gi, rtol=1e-14)
    assert optimizer.t == 2


# -- RMSprop -------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_one_step_from_a_known_state(momentum):
    params = make_params()
    w0, g = values(params), grads(params)
    optimizer = gn.RMSprop(lr=0.01, alpha=0.9, eps=1e-8, momentum=momentum).bind(params)
    optimizer.square_avg[...] = 0.5
    if momentum:
        optimizer.velocity[...] = 0.2
    optimizer.step()
    for p, w, gi in zip(params, w0, g, strict=True):
        s = 0.9 * 0.5 + 0.1 * gi**2
        direction = gi / (np.sqrt(s) + 1e-8)
        if momentum:
            direction = 0.9 * 0.2 + direction
        np.testing.assert_allclose(p.data, w - 0.01 * direction, rtol=1e-14)


def test_rmsprop_first_step_from_zero_state():
    p = gn.Parameter(np.array([3.0]), "w")
    p.grad = np.array([2.0])
    gn.RMSprop(lr=0.01, alpha=0.99, eps=1e-8).step([p])
    # s = 0.01 * 4 = 0.04, sqrt(s) = 0.2, step = 0.01 * 2 / (0.2 + 1e-8)
    np.testing.assert_allclose(p.data, [3.0 - 0.01 * 2.0 / (0.2 + 1e-8)], rtol=1e-15)


def test_rmsprop_weight_decay():
    p = gn.Parameter(np.array([2.0]), "w")
    p.grad = np.array([1.0])
    gn.RMSprop(lr=0.1, alpha=0.5, weight_decay=0.5).step([p])
    g = 1.0 + 0.5 * 2.0  # 2.0
    s = 0.5 * g**2  # 2.0
    np.testing.assert_allclose(
        p.data, [2.0 - 0.1 * g / (math.sqrt(s) + 1e-8)], rtol=1e-15
    )


# -- Adam and AdamW ------------------------------------------------------------


def adam_by_hand(w, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def test_adam_first_step_is_lr_times_sign():
    """At t = 1 the bias corrections make m_hat = g and v_hat = g**2."""
    p = gn.Parameter(np.array([1.0, -1.0, 0.5]), "w")
    p.grad = np.array([3.0, -0.01, 1e-3])
    gn.Adam(lr=0.1, eps=1e-8).step([p])
    g = np.array([3.0, -0.01, 1e-3])
    np.testing.assert_allclose(
        p.data, [1.0, -1.0, 0.5] - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-14
    )


def test_adam_second_step_from_a_known_state():
    params = make_params()
    w0, g = values(params), grads(params)
    optimizer = gn.Adam(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6).bind(params)
    optimizer.m[...] = 0.3
    optimizer.v[...] = 0.2
    optimizer.t = 1  # one step already taken: the next is t = 2
    optimizer.step()
    assert optimizer.t == 2
    for p, w, gi in zip(params, w0, g, strict=True):
        expected, _, _ = adam_by_hand(w, gi, 0.3, 0.2, 2, 0.01, 0.8, 0.9, 1e-6)
        np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_adam_l2_weight_decay_enters_the_moments():
    p = gn.Parameter(np.array([2.0, -1.0]), "w")
    p.grad = np.array([0.5, 0.5])
    optimizer = gn.Adam(lr=0.1, weight_decay=0.1)
    optimizer.step([p])
    g = np.array([0.5 + 0.2, 0.5 - 0.1])
    np.testing.assert_allclose(optimizer.m, 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(p.data, [2.0, -1.0] - 0.1 * g / (np.abs(g) + 1e-8))


def test_adamw_decays_weights_directly():
    p = gn.Parameter(np.array([2.0, -1.0]), "w")
    p.grad = np.array([0.5, 0.5])
    optimizer = gn.AdamW(lr=0.1, weight_decay=0.5)
    optimizer.step([p])
    g = np.array([0.5, 0.5])  # the decay does not enter the moments
    np.testing.assert_allclose(optimizer.m, 0.1 * g, rtol=1e-15)
    shrunk = np.array([2.0, -1.0]) * (1 - 0.1 * 0.5)
    np.testing.assert_allclose(p.data, shrunk - 0.1 * g / (g + 1e-8), rtol=1e-14)


def test_adamw_default_weight_decay_and_adam_default_none():
    assert gn.AdamW().weight_decay == 0.01
    assert gn.Adam().weight_decay == 0.0
    assert (gn.Adam().beta1, gn.Adam().beta2, gn.Adam().eps) == (0.9, 0.999, 1e-8)


# -- state, binding, dtype -----------------------------------------------------

ALL = [
    pytest.param(lambda: gn.SGD(lr=0.1), id="sgd"),
    pytest.param(lambda: gn.SGD(lr=0.1, momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param(lambda: gn.RMSprop(momentum=0.5), id="rmsprop"),
    pytest.param(lambda: gn.Adam(), id="adam"),
    pytest.param(lambda: gn.AdamW(), id="adamw"),
]


@pytest.mark.parametrize("make", ALL)
def test_state_covers_every_parameter(make):
    params = make_params()
    optimizer = make()
    optimizer.step(params)
    total = sum(p.size for p in params)
    for name, state in optimizer.state_arrays().items():
        assert state.shape == (total,), name
        assert np.all(np.isfinite(state)), name
    assert optimizer.params == params


@pytest.mark.parametrize("make", ALL)
def test_step_moves_against_the_gradient_and_keeps_dtype(make):
    w = gn.Parameter(np.array([1.0, -1.0], dtype=np.float32), "w")
    w.grad = np.array([1.0, -1.0], dtype=np.float32)
    make().step([w])
    assert w.data.dtype == np.float32 and w.grad.dtype == np.float32
    assert w.data[0] < 1.0 and w.data[1] > -1.0


@pytest.mark.parametrize("make", ALL)
def test_repeated_manual_steps_keep_state(make):
    """step(model.parameters()) every iteration (a fresh list each time) must not
    rebind and reset the optimizer: t counts every step."""
    model = gn.Sequential(gn.Dense(3, 2), gn.Tanh(), gn.Dense(2, 2), seed=0)
    optimizer = make()
    for _ in range(5):
        for p in model.parameters():
            p.grad = np.ones(p.shape, np.float32)
        optimizer.step(model.parameters())
    assert optimizer.t == 5


def test_optimizer_updates_the_models_own_arrays(rng):
    model = gn.Sequential(gn.Dense(3, 2), seed=0, dtype=np.float64)
    X = rng.normal(size=(4, 3))
    before = model.predict(X)
    weight = model[0].weight
    weight.grad = np.ones(weight.shape)
    model[0].bias.grad = np.ones(2)
    gn.SGD(lr=0.5).step(model.parameters())
    assert model[0].weight is weight
    np.testing.assert_allclose(
        model.predict(X), before - 0.5 * (X.sum(axis=1, keepdims=True) + 1)
    )


def test_two_optimizers_on_one_model_do_not_reset_each_other():
    params = make_params()
    first, second = gn.SGD(lr=0.1, momentum=0.9), gn.Adam()
    first.step(params)
    second.step(params)
    first.step(params)
    assert (first.t, second.t) == (2, 1)


def test_step_before_binding_raises_call_order_error():
    with pytest.raises(gn.CallOrderError, match=r"SGD\.step\(\): no parameters"):
        gn.SGD().step()


def test_nesterov_needs_momentum():
    with pytest.raises(gn.ConfigError, match="nesterov=True needs momentum > 0"):
        gn.SGD(lr=0.1, nesterov=True)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: gn.SGD(momentum=1.0),
            r"SGD: momentum must be in \[0.0, 1.0\), got 1.0",
        ),
        (lambda: gn.SGD(weight_decay=-0.1), r"SGD: weight_decay .* got -0.1"),
        (lambda: gn.RMSprop(alpha=1.5), r"RMSprop: alpha .* got 1.5"),
        (lambda: gn.RMSprop(eps=0), r"RMSprop: eps must be a finite number > 0, got 0"),
        (lambda: gn.Adam(beta1=-0.1), r"Adam: beta1 .* got -0.1"),
        (lambda: gn.AdamW(beta2=1.0), r"AdamW: beta2 .* got 1.0"),
        (
            lambda: gn.Adam(lr=float("inf")),
            r"Adam: lr must be a finite number > 0, got inf",
        ),
    ],
)
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(gn.ConfigError, match=message):
        make()


# -- learning-rate schedules ---------------------------------------------------


class LrAtEpochBegin(gn.Callback):
    """Records the lr in force while each epoch trains (runs after the schedule)."""

    def __init__(self):
        self.lrs = []

    def on_epoch_begin(self, epoch, logs):
        self.lrs.append(self.optimizer.lr)


def _fit_with(schedule, epochs=7, lr=0.1):
    X, y = gn.datasets.make_blobs(20, 2, 3, seed=0)
    model = gn.Sequential(gn.Dense(3, 2), seed=0)
    recorder = LrAtEpochBegin()
    optimizer = gn.SGD(lr=lr)
    history = model.fit(
        X,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=None,
        verbose=0,
        callbacks=[schedule, recorder],
    )
    assert history["lr"] == recorder.lrs  # logged lr is the one used that epoch
    return recorder.lrs


@pytest.mark.parametrize(
    "schedule, expected",
    [
        pytest.param(
            lambda: gn.StepDecay(step_size=3, gamma=0.5),
            [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025],
            id="step",
        ),
        pytest.param(
            lambda: gn.ExponentialDecay(gamma=0.5),
            [0.1 * 0.5**e for e in range(7)],
            id="exponential",
        ),
        pytest.param(
            lambda: gn.CosineDecay(t_max=4, min_lr=0.02),
            [
                0.02 + 0.08 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2
                for e in range(7)
            ],
            id="cosine-then-flat",
        ),
        pytest.param(
            lambda: gn.LearningRateScheduler(
                lambda epoch, lr: lr if epoch < 2 else lr / 2
            ),
            [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125],
            id="user-function",
        ),
    ],
)
def test_schedule_sets_lr_each_epoch(schedule, expected):
    np.testing.assert_allclose(_fit_with(schedule()), expected, rtol=1e-14)


def test_cosine_decay_endpoints():
    lrs = _fit_with(gn.CosineDecay(t_max=6), epochs=8, lr=0.3)
    assert lrs[0] == 0.3
    assert lrs[3] == pytest.approx(0.15, rel=1e-14)
    assert lrs[6] == lrs[7] == 0.0  # min_lr, and it stays there


def test_schedule_changes_the_actual_updates():
    """Same data, same start: a schedule that halves lr every epoch moves the
    weights less in later epochs than a constant lr."""
    X, y = gn.datasets.make_blobs(20, 2, 3, seed=0)
    moves = {}
    for name, callbacks in [("constant", []), ("decayed", [gn.ExponentialDecay(0.01)])]:
        model = gn.Sequential(gn.Dense(3, 2), seed=0, dtype=np.float64)
        model.fit(X, y, optimizer=gn.SGD(lr=0.1), epochs=1, batch_size=None, verbose=0)
        start = model[0].weight.data.copy()
        model.fit(
            X,
            y,
            optimizer=gn.SGD(lr=0.1),
            epochs=3,
            batch_size=None,
            verbose=0,
            callbacks=callbacks,
        )
        moves[name] = np.abs(model[0].weight.data - start).sum()
    assert moves["decayed"] < 0.5 * moves["constant"]


def test_learning_rate_scheduler_rejects_non_positive_lr():
    with pytest.raises(
        gn.ConfigError, match="LearningRateScheduler: lr must be .* got 0.0"
    ):
        _fit_with(gn.LearningRateScheduler(lambda epoch, lr: 0.0))
