"""Gradient clipping, clipnorm= and clipvalue= on every optimizer: one step by
hand per optimizer, what last_clip reports, torch.nn.utils.clip_grad_norm_ and
clip_grad_value_ followed by the torch optimizer over five steps, and the
options surviving get_config and a checkpoint."""

import math

import numpy as np
import pytest

import glassnet as gn


def make_params():
    """Two parameters with known gradients: global norm sqrt(5.6), max |g| 2."""
    w = gn.Parameter(np.array([[1.0, -2.0], [0.5, 3.0]]), "weight")
    b = gn.Parameter(np.array([0.25, -0.75]), "bias")
    w.grad = np.array([[0.5, 0.5], [-1.0, 2.0]])
    b.grad = np.array([0.1, -0.3])
    return [w, b]


NORM = math.sqrt(0.25 + 0.25 + 1.0 + 4.0 + 0.01 + 0.09)  # sqrt(5.6) = 2.366...


def sgd_step(p, g):
    return p - 0.1 * g


def rmsprop_step(p, g):
    s = (1 - 0.99) * g * g  # from a zero state
    return p - 0.1 * g / (np.sqrt(s) + 1e-8)


def adam_step(p, g, decay=0.0):
    p = p * (1 - 0.1 * decay)  # AdamW shrinks the weights first
    m, v = (1 - 0.9) * g, (1 - 0.999) * g * g
    return p - 0.1 / (1 - 0.9) * m / (np.sqrt(v) / math.sqrt(1 - 0.999) + 1e-8)


STEPS = {
    "sgd": (lambda **kw: gn.SGD(lr=0.1, **kw), sgd_step),
    "rmsprop": (lambda **kw: gn.RMSprop(lr=0.1, **kw), rmsprop_step),
    "adam": (lambda **kw: gn.Adam(lr=0.1, **kw), adam_step),
    "adamw": (lambda **kw: gn.AdamW(lr=0.1, **kw), lambda p, g: adam_step(p, g, 0.01)),
}


def clip_by_hand(grads, clipnorm=None, clipvalue=None):
    """The clipped gradients, written out: values first, then the global norm."""
    if clipvalue is not None:
        grads = [np.minimum(np.maximum(g, -clipvalue), clipvalue) for g in grads]
    if clipnorm is not None:
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
        scale = clipnorm / (norm + 1e-6)
        if scale < 1:
            grads = [g * scale for g in grads]
    return grads


CLIPS = [
    pytest.param({"clipnorm": 1.0}, id="norm"),
    pytest.param({"clipvalue": 0.4}, id="value"),
    pytest.param({"clipnorm": 0.5, "clipvalue": 0.4}, id="both"),
    pytest.param({"clipnorm": 10.0}, id="norm-untriggered"),
]


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("name", sorted(STEPS))
def test_one_step_by_hand_with_clipping(name, clip):
    make, step = STEPS[name]
    params = make_params()
    before = [p.data.copy() for p in params]
    clipped = clip_by_hand([p.grad.copy() for p in params], **clip)
    make(**clip).step(params)
    for p, w, g in zip(params, before, clipped, strict=True):
        np.testing.assert_allclose(p.data, step(w, g), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(p.grad, g, rtol=1e-15)  # clipped in place


def test_clipnorm_scales_every_gradient_by_one_global_factor():
    params = make_params()
    optimizer = gn.SGD(lr=0.1, clipnorm=1.0)
    optimizer.step(params)
    info = optimizer.last_clip
    assert info.norm == pytest.approx(NORM, rel=1e-15)
    assert info.scale == pytest.approx(1.0 / (NORM + 1e-6), rel=1e-15)
    assert info.clipped and info.max_abs is None
    total = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
    assert total == pytest.approx(NORM / (NORM + 1e-6), rel=1e-14)  # just under 1
    # the direction is kept: the clipped gradient is parallel to the original
    np.testing.assert_allclose(params[0].grad * (NORM + 1e-6), [[0.5, 0.5], [-1, 2]])


def test_clipvalue_clips_entries_and_reports_the_largest():
    params = make_params()
    optimizer = gn.SGD(lr=0.1, clipvalue=0.4)
    optimizer.step(params)
    info = optimizer.last_clip
    assert info.max_abs == 2.0 and info.clipped and info.scale == 1.0
    assert info.norm == pytest.approx(NORM, rel=1e-15)  # before clipping
    np.testing.assert_array_equal(params[0].grad, [[0.4, 0.4], [-0.4, 0.4]])
    np.testing.assert_array_equal(params[1].grad, [0.1, -0.3])


@pytest.mark.parametrize(
    "clip, clipped",
    [({"clipnorm": NORM + 1.0}, False), ({"clipvalue": 2.0}, False), ({}, None)],
    ids=["norm-above", "value-at-max", "off"],
)
def test_last_clip_says_when_nothing_was_clipped(clip, clipped):
    params = make_params()
    grads = [p.grad.copy() for p in params]
    optimizer = gn.Adam(**clip)
    assert optimizer.last_clip is None
    optimizer.step(params)
    if clipped is None:
        assert optimizer.last_clip is None  # no clipping configured
    else:
        assert optimizer.last_clip.clipped is clipped
        assert optimizer.last_clip.scale == 1.0
    for p, g in zip(params, grads, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_the_norm_is_global_over_parameters_of_several_dtypes():
    a = gn.Parameter(np.array([3.0], dtype=np.float32), "a")
    b = gn.Parameter(np.array([4.0]), "b")
    a.grad, b.grad = np.array([3.0], dtype=np.float32), np.array([4.0])
    optimizer = gn.SGD(lr=1.0, clipnorm=1.0)
    optimizer.step([a, b])
    assert optimizer.last_clip.norm == pytest.approx(5.0)
    assert a.grad[0] == pytest.approx(0.6, rel=1e-6) and a.grad.dtype == np.float32
    assert b.grad[0] == pytest.approx(0.8, rel=1e-6)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_get_config_and_repr_keep_the_options(name):
    make, _ = STEPS[name]
    optimizer = make(clipnorm=1.5, clipvalue=0.25)
    config = optimizer.get_config()
    assert config["clipnorm"] == 1.5 and config["clipvalue"] == 0.25
    assert "clipnorm=1.5, clipvalue=0.25" in repr(optimizer)
    again = type(optimizer)(**config)
    assert again.get_config() == config
    assert "clipnorm" not in make().get_config()  # off: not listed


def test_a_checkpoint_keeps_the_clipping_options(tmp_path):
    model = gn.Sequential(gn.Dense(3, 2), seed=0)
    optimizer = gn.Adam(lr=0.01, clipnorm=0.5, clipvalue=0.1)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    model.forward(x, training=True)
    model.backward(np.ones((4, 2), np.float32))
    optimizer.step(model.parameters())
    path = tmp_path / "model.ckpt"
    gn.save_checkpoint(path, model, optimizer, epoch=0)
    back = gn.load_checkpoint(path).optimizer
    assert type(back) is gn.Adam and back.t == 1
    assert (back.clipnorm, back.clipvalue) == (0.5, 0.1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"clipnorm": 0}, "SGD: clipnorm must be a finite number > 0, got 0"),
        ({"clipnorm": -1.0}, "SGD: clipnorm must be a finite number > 0, got -1.0"),
        ({"clipvalue": float("inf")}, "SGD: clipvalue must be a finite number > 0"),
        ({"clipvalue": "1"}, "SGD: clipvalue must be a number > 0, got '1'"),
        ({"clipnorm": True}, "SGD: clipnorm must be a number > 0, got True"),
    ],
)
def test_bad_clipping_options_are_named(options, message):
    with pytest.raises(gn.ConfigError, match=message):
        gn.SGD(**options)


# -- PyTorch's utilities and optimizers: the oracle ----------------------------------

TORCH_OPTIMIZERS = {
    "sgd": (
        lambda **kw: gn.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, **kw),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    "rmsprop": (
        lambda **kw: gn.RMSprop(lr=0.01, momentum=0.5, **kw),
        lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5),
    ),
    "adam": (
        lambda **kw: gn.Adam(lr=0.01, **kw),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.01),
    ),
    "adamw": (
        lambda **kw: gn.AdamW(lr=0.01, **kw),
        lambda torch, ps: torch.optim.AdamW(ps, lr=0.01),
    ),
}


@pytest.mark.torch
@pytest.mark.parametrize("clip", CLIPS[:3])
@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZERS))
def test_five_steps_agree_with_torch_clip_utilities_and_optimizers(name, clip):
    torch = pytest.importorskip("torch")
    make_gn, make_torch = TORCH_OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,), (3, 2)]
    params = [
        gn.Parameter(rng.standard_normal(s), f"p{i}") for i, s in enumerate(shapes)
    ]
    tensors = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    optimizer, reference = make_gn(**clip), make_torch(torch, tensors)
    triggered = []
    for step in range(5):
        # gradients of changing size: clipping triggers on some steps only
        size = [0.1, 3.0, 0.2, 5.0, 1.0][step]
        for p, t in zip(params, tensors, strict=True):
            g = size * rng.standard_normal(p.shape)
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        if "clipvalue" in clip:
            torch.nn.utils.clip_grad_value_(tensors, clip["clipvalue"])
        if "clipnorm" in clip:
            torch.nn.utils.clip_grad_norm_(tensors, clip["clipnorm"])
        optimizer.step(params)
        reference.step()
        triggered.append(optimizer.last_clip.clipped)
        for p, t in zip(params, tensors, strict=True):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(
                p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14
            )
    assert True in triggered and False in triggered  # both paths were taken
