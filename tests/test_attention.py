"""Attention: scaled_dot_product_attention and its backward, MultiHeadAttention
(self, cross, causal, key padding), TransformerBlock and the positional layers.
Gradcheck tables, a naive reference, what masks and positions do, configs,
errors, and a small transformer trained in fit. (The PyTorch oracle for the
same layers is test_attention_torch.py.)"""

import numpy as np
import pytest

import glassnet as gn


def randomised(layer, rng, scale=0.5):
    """Every parameter drawn afresh, so no gradient hides behind a weight of 1
    or a bias of 0 (LayerNorm's and the attention biases' defaults)."""
    for p in layer.parameters():
        p.data = rng.normal(0.0, scale, p.shape) + (1.0 if p.name == "weight" else 0)
    return layer


class Masked(gn.Layer):
    """layer.forward(x, key_padding_mask=mask) as a one-input layer for gradcheck."""

    def __init__(self, layer, mask) -> None:
        self.layer, self.mask = layer, mask

    def forward(self, x):
        self._cache = True
        return self.layer.forward(x, key_padding_mask=self.mask)

    def backward(self, dout):
        return self.layer.backward(dout)


class Cross(gn.Layer):
    """Cross-attention as a one-input layer for gradcheck: x[:, :T] is the query,
    x[:, T:] the context, so the input row checks dquery and dcontext at once."""

    def __init__(self, attention, T, mask=None) -> None:
        self.attention, self.T, self.mask = attention, T, mask

    def forward(self, x):
        self._cache = True
        pair = (x[:, : self.T], x[:, self.T :])
        return self.attention.forward(pair, key_padding_mask=self.mask)

    def backward(self, dout):
        dquery, dcontext = self.attention.backward(dout)
        return np.concatenate([dquery, dcontext], axis=1)


def padding(N: int, S: int) -> np.ndarray:
    """(N, S) True at padding: example n has its last n % S keys padded (right
    padding, so every query keeps key 0)."""
    mask = np.zeros((N, S), dtype=bool)
    for n in range(N):
        if n % S:
            mask[n, S - n % S :] = True
    return mask


def mha(rng, E=6, heads=2, causal=False):
    return randomised(
        gn.MultiHeadAttention(E, heads, causal=causal, rng=rng, dtype=np.float64), rng
    )


def block(rng, causal=False):
    layer = gn.TransformerBlock(
        embed_dim=6, num_heads=2, mlp_dim=10, causal=causal, rng=rng, dtype=np.float64
    )
    return randomised(layer, rng)


# -- gradcheck: layers -------------------------------------------------------------

# (id, make the float64 layer from (rng, batch, T), input shape for (batch, T))
GRADCHECK = [
    ("mha-1head", lambda r, N, T: mha(r, heads=1), lambda N, T: (N, T, 6)),
    ("mha-2heads", lambda r, N, T: mha(r), lambda N, T: (N, T, 6)),
    ("mha-3heads-causal", lambda r, N, T: mha(r, heads=3, causal=True),
     lambda N, T: (N, T, 6)),
    ("mha-padding", lambda r, N, T: Masked(mha(r), padding(N, T)),
     lambda N, T: (N, T, 6)),
    ("mha-causal-padding", lambda r, N, T: Masked(mha(r, causal=True), padding(N, T)),
     lambda N, T: (N, T, 6)),
    ("mha-cross", lambda r, N, T: Cross(mha(r), T), lambda N, T: (N, T + 3, 6)),
    ("mha-cross-causal-padding",
     lambda r, N, T: Cross(mha(r, causal=True), T, padding(N, 3)),
     lambda N, T: (N, T + 3, 6)),
    ("transformer-block", lambda r, N, T: block(r), lambda N, T: (N, T, 6)),
    ("transformer-block-causal", lambda r, N, T: block(r, causal=True),
     lambda N, T: (N, T, 6)),
    ("transformer-block-padding", lambda r, N, T: Masked(block(r), padding(N, T)),
     lambda N, T: (N, T, 6)),
    ("positional-embedding",
     lambda r, N, T: gn.PositionalEmbedding(5, 6, rng=r, dtype=np.float64),
     lambda N, T: (N, T, 6)),
    ("sinusoidal", lambda r, N, T: gn.SinusoidalPositionalEncoding(6),
     lambda N, T: (N, T, 6)),
]  # fmt: skip


@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "make, shape", [pytest.param(*case[1:], id=case[0]) for case in GRADCHECK]
)
def test_gradcheck_float64(make, shape, batch, T, rng):
    layer = make(rng, batch, T)
    report = gn.gradcheck(layer, rng.normal(size=shape(batch, T)))
    assert report.passed, str(report)
    expected = ["input"] + [name for name, _ in layer.named_parameters()]
    assert [row.name for row in report.rows] == expected
    for row in report.rows:
        assert row.max_error <= 1e-7, str(report)


# -- gradcheck: the function pair ----------------------------------------------------


def causal(T, S):
    return np.tril(np.ones((T, S), dtype=bool))


def random_mask(shape, rng):
    mask = rng.random(shape) < 0.6
    mask[..., 0] = True  # every query keeps a key
    return mask


# (id, q shape, k shape, v shape, mask or None given rng)
SDPA = [
    ("2d", (3, 4), (5, 4), (5, 2), None),
    ("batch", (2, 3, 4), (2, 5, 4), (2, 5, 4), None),
    ("heads", (2, 3, 1, 4), (2, 3, 5, 4), (2, 3, 5, 3), None),
    ("causal", (2, 4, 3), (2, 4, 3), (2, 4, 3), lambda r: causal(4, 4)),
    ("causal-rect", (2, 3, 3), (2, 5, 3), (2, 5, 2), lambda r: causal(3, 5)),
    ("random-mask", (2, 3, 4, 2), (2, 3, 5, 2), (2, 3, 5, 2),
     lambda r: random_mask((2, 3, 4, 5), r)),
    ("key-mask-broadcast", (3, 2, 4, 2), (3, 2, 5, 2), (3, 2, 5, 2),
     lambda r: random_mask((3, 1, 1, 5), r)),
]  # fmt: skip


@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape, make_mask",
    [pytest.param(*case[1:], id=case[0]) for case in SDPA],
)
def test_gradcheck_scaled_dot_product_attention(
    q_shape, k_shape, v_shape, make_mask, rng
):
    mask = None if make_mask is None else make_mask(rng)
    arrays = {
        "q": rng.normal(size=q_shape),
        "k": rng.normal(size=k_shape),
        "v": rng.normal(size=v_shape),
    }
    w = rng.normal(size=(*q_shape[:-1], v_shape[-1]))

    def f(a):
        out, _ = gn.scaled_dot_product_attention(a["q"], a["k"], a["v"], mask)
        return float(np.sum(out * w))

    def grad(a):
        _, weights = gn.scaled_dot_product_attention(a["q"], a["k"], a["v"], mask)
        dq, dk, dv = gn.scaled_dot_product_attention_backward(
            w, a["q"], a["k"], a["v"], weights
        )
        return {"q": dq, "k": dk, "v": dv}

    report = gn.gradcheck(f, arrays, grad=grad)
    assert report.passed, str(report)
    assert max(row.max_error for row in report.rows) <= 1e-7, str(report)


def naive_attention(q, k, v, allowed):
    """One query at a time with Python loops: slow and obviously right."""
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(q.shape[:-1]):
        lead, t = idx[:-1], idx[-1]
        keys = [j for j in range(k.shape[-2]) if allowed[(*lead, t, j)]]
        scores = np.array([q[idx] @ k[(*lead, j)] for j in keys]) / np.sqrt(q.shape[-1])
        e = np.exp(scores - scores.max())
        out[idx] = sum(
            p * v[(*lead, j)] for p, j in zip(e / e.sum(), keys, strict=True)
        )
    return out


@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape, make_mask",
    [pytest.param(*case[1:], id=case[0]) for case in SDPA],
)
def test_attention_matches_a_naive_loop(q_shape, k_shape, v_shape, make_mask, rng):
    q, k, v = (rng.normal(size=s) for s in (q_shape, k_shape, v_shape))
    mask = None if make_mask is None else make_mask(rng)
    scores_shape = (*q_shape[:-1], k_shape[-2])
    allowed = np.broadcast_to(True if mask is None else mask, scores_shape)
    out, weights = gn.scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out, naive_attention(q, k, v, allowed), atol=1e-12)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(weights[~allowed] == 0.0)  # a masked key gets exactly nothing


@pytest.mark.parametrize(
    "spread, dtype",
    [
        (1.0, np.float32),  # scores within 80 of each other: one shift for all
        (1.0, np.float64),
        (60.0, np.float32),  # spread past 80 (and exp(-80) underflow territory
        (60.0, np.float64),  # for a single shift): each query's own maximum
    ],
)
def test_softmax_shift_keeps_every_query_normalised(spread, dtype, rng):
    """Both branches of the softmax's shift give each query's weights as a
    float64 softmax over its own scores does, rows summing to 1, no NaN."""
    q = (rng.normal(size=(2, 3, 5, 4)) * spread).astype(dtype)
    k = rng.normal(size=(2, 3, 6, 4)).astype(dtype)
    v = rng.normal(size=(2, 3, 6, 2)).astype(dtype)
    _, weights = gn.scaled_dot_product_attention(q, k, v)
    scores = q.astype(np.float64) @ k.astype(np.float64).swapaxes(-1, -2) / 2.0
    expected = np.exp(scores - scores.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    assert weights.dtype == dtype and np.all(np.isfinite(weights))
    atol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(weights, expected, atol=atol)


def test_gradcheck_sees_a_backward_without_the_softmax_jacobian(rng):
    """The table above can fail: treating the softmax as elementwise (w (1 - w)
    instead of diag(w) - w w.T) is the classic wrong attention backward."""
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    w = rng.normal(size=(3, 2))

    def f(a):
        return float(np.sum(gn.scaled_dot_product_attention(a["q"], k, v)[0] * w))

    def wrong_grad(a):
        _, weights = gn.scaled_dot_product_attention(a["q"], k, v)
        dweights = w @ v.T
        dscores = dweights * weights * (1 - weights) / 2.0  # diagonal only
        return {"q": dscores @ k}

    assert not gn.gradcheck(f, {"q": q}, grad=wrong_grad).passed


# -- what masks and positions do -------------------------------------------------------


def test_self_attention_is_permutation_equivariant_until_positions_are_added(rng):
    """Without positions, shuffling the tokens shuffles the outputs the same way;
    a positional encoding in front breaks the symmetry."""
    layer = mha(rng)
    x = rng.normal(size=(2, 5, 6))
    perm = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(
        layer.forward(x[:, perm]), layer.forward(x)[:, perm], atol=1e-12
    )
    model = gn.Sequential(gn.SinusoidalPositionalEncoding(6), layer, dtype=np.float64)
    assert not np.allclose(model.forward(x[:, perm]), model.forward(x)[:, perm])


@pytest.mark.parametrize(
    "make", [lambda r: mha(r, causal=True), lambda r: block(r, causal=True)],
    ids=["mha", "transformer-block"],
)  # fmt: skip
def test_causal_output_at_t_ignores_later_tokens(make, rng):
    layer = make(rng)
    x = rng.normal(size=(2, 5, 6))
    later = x.copy()
    later[:, 3:] = rng.normal(size=(2, 2, 6))
    a, b = layer.forward(x), layer.forward(later)
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_padded_keys_change_nothing(rng):
    layer = mha(rng)
    x = rng.normal(size=(3, 4, 6))
    pad = padding(3, 4)
    changed = x.copy()
    changed[pad] = rng.normal(size=(int(pad.sum()), 6))
    keep = ~pad  # the outputs at real positions
    a = layer.forward(x, key_padding_mask=pad)[keep]
    b = layer.forward(changed, key_padding_mask=pad)[keep]
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_sinusoidal_encoding_values():
    P = gn.SinusoidalPositionalEncoding(5).encoding(3)  # odd E: 3 sines, 2 cosines
    t = np.arange(3.0)
    np.testing.assert_allclose(P[:, 0], np.sin(t))
    np.testing.assert_allclose(P[:, 1], np.cos(t))
    np.testing.assert_allclose(P[:, 2], np.sin(t / 10000 ** (2 / 5)))
    np.testing.assert_allclose(P[:, 3], np.cos(t / 10000 ** (2 / 5)))
    np.testing.assert_allclose(P[:, 4], np.sin(t / 10000 ** (4 / 5)))


def test_positional_embedding_gradient_sums_over_the_batch(rng):
    layer = gn.PositionalEmbedding(6, 2, rng=rng, dtype=np.float64)
    x = rng.normal(size=(3, 4, 2))
    np.testing.assert_array_equal(layer.forward(x), x + layer.weight.data[:4])
    dout = rng.normal(size=(3, 4, 2))
    assert layer.backward(dout) is dout
    np.testing.assert_allclose(layer.weight.grad[:4], dout.sum(axis=0))
    assert np.all(layer.weight.grad[4:] == 0)  # positions not seen


# -- parameters, configs, the Layer contract -------------------------------------------


def test_attention_parameters_follow_torch_names_layout_and_init():
    layer = gn.MultiHeadAttention(8, 2, rng=np.random.default_rng(0))
    assert [(n, p.shape) for n, p in layer.named_parameters()] == [
        ("in_proj_weight", (24, 8)),
        ("in_proj_bias", (24,)),
        ("out_proj.weight", (8, 8)),
        ("out_proj.bias", (8,)),
    ]
    assert np.abs(layer.in_proj_weight.data).max() <= np.sqrt(6 / 32)  # Glorot
    assert np.abs(layer.out_proj_weight.data).max() <= 1 / np.sqrt(8)
    assert not layer.in_proj_bias.data.any() and not layer.out_proj_bias.data.any()


def test_transformer_block_is_built_from_public_layers():
    layer = gn.TransformerBlock(embed_dim=8, num_heads=2)
    assert [(n, type(c).__name__) for n, c in layer.children()] == [
        ("norm1", "LayerNorm"),
        ("self_attn", "MultiHeadAttention"),
        ("norm2", "LayerNorm"),
        ("linear1", "Dense"),
        ("activation", "GELU"),
        ("linear2", "Dense"),
    ]
    assert layer.mlp_dim == 32 and layer.linear1.out_features == 32


ALL = [
    pytest.param(lambda: gn.MultiHeadAttention(6, 3, causal=True), id="mha"),
    pytest.param(
        lambda: gn.TransformerBlock(embed_dim=6, num_heads=2, mlp_dim=7, eps=1e-3),
        id="transformer-block",
    ),
    pytest.param(lambda: gn.PositionalEmbedding(5, 6), id="positional-embedding"),
    pytest.param(lambda: gn.SinusoidalPositionalEncoding(6, 100.0), id="sinusoidal"),
]


@pytest.mark.parametrize("make", ALL)
def test_get_config_rebuilds_the_layer(make):
    layer = make()
    rebuilt = type(layer)(**layer.get_config())
    assert rebuilt.get_config() == layer.get_config() and repr(rebuilt) == repr(layer)
    assert rebuilt.output_shape((4, 6)) == layer.output_shape((4, 6)) == (4, 6)
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [
        (n, p.shape) for n, p in layer.named_parameters()
    ]


@pytest.mark.parametrize("make", ALL)
def test_backward_twice_gives_the_same_gradients(make, rng):
    layer = make()
    out = layer.forward(rng.normal(size=(2, 4, 6)).astype(np.float32))
    assert out.shape == (2, 4, 6) and out.dtype == np.float32
    dout = rng.normal(size=out.shape).astype(np.float32)
    first = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    second = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first[0].dtype == np.float32


@pytest.mark.parametrize("make", ALL)
def test_backward_before_forward_is_a_call_order_error(make):
    with pytest.raises(gn.CallOrderError, match=r"backward\(\) was called before"):
        make().backward(np.zeros((2, 4, 6)))


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: gn.MultiHeadAttention(6, 4), gn.ConfigError,
         r"embed_dim \(6\) must be divisible by num_heads \(4\)"),
        (lambda: gn.MultiHeadAttention(6, 0), gn.ConfigError, r"num_heads=0"),
        (lambda: gn.MultiHeadAttention(6, 2, causal="yes"), gn.ConfigError,
         r"causal must be True or False"),
        (lambda: gn.TransformerBlock(64, 4), gn.ConfigError,
         r"sizes as keywords, e.g. TransformerBlock\(embed_dim=64, num_heads=4\)"),
        (lambda: gn.TransformerBlock(gn.Dense(2, 2), embed_dim=2, num_heads=1),
         gn.ArgumentTypeError, r"expected the 6 sub-layers norm1, self_attn"),
        (lambda: gn.TransformerBlock(embed_dim=6, num_heads=4), gn.ConfigError,
         r"divisible"),
        (lambda: gn.PositionalEmbedding(0, 4), gn.ConfigError, r"max_len=0"),
        (lambda: gn.SinusoidalPositionalEncoding(4, base=1.0), gn.ConfigError,
         r"base must be a number > 1"),
    ],
)  # fmt: skip
def test_bad_configuration_is_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m.forward(np.zeros((2, 6))), gn.ShapeError,
         r"x must have shape \(N, length, 6\), got \(N, 6\); a sequence is"),
        (lambda m: m.forward(np.zeros((2, 3, 5))), gn.ShapeError,
         r"got \(N, 3, 5\)"),
        (lambda m: m.forward((np.zeros((2, 3, 6)),) * 3), gn.ArgumentTypeError,
         r"the pair \(query, context\), got a tuple of 3"),
        (lambda m: m.forward((np.zeros((2, 3, 6)), np.zeros((3, 4, 6)))),
         gn.ShapeError, r"same batch size, got 2 and 3"),
        (lambda m: m.forward(np.zeros((2, 3, 6)),
                             key_padding_mask=np.zeros((2, 4), dtype=bool)),
         gn.ShapeError, r"key_padding_mask must have shape \(N, S\) = \(2, 3\)"),
        (lambda m: m.forward(np.zeros((2, 3, 6)), key_padding_mask=np.zeros((2, 3))),
         gn.ArgumentTypeError, r"key_padding_mask must be booleans, True at padding"),
        (lambda m: m.forward(np.zeros((2, 3, 6), dtype=int)), gn.ArgumentTypeError,
         r"x must be a float array"),
        (lambda m: m.forward(np.zeros((2, 3, 6)),
                             key_padding_mask=np.ones((2, 3), dtype=bool)),
         gn.DataError, r"may attend to no key .* pad sequences on the right"),
    ],
)  # fmt: skip
def test_bad_attention_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call(gn.MultiHeadAttention(6, 2))


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros((3, 4)), np.zeros((5, 3)), np.zeros((5, 2))), gn.ShapeError,
         r"expected q \(..., T, d\), k \(..., S, d\)"),
        ((np.zeros((2, 3, 4)), np.zeros((3, 5, 4)), np.zeros((3, 5, 2))),
         gn.ShapeError, r"share their leading axes"),
        ((np.zeros(4), np.zeros((5, 4)), np.zeros((5, 2))), gn.ShapeError,
         r"q must be a float array"),
        ((np.zeros((3, 4)), np.zeros((5, 4)), np.zeros((5, 2)), np.ones((3, 5))),
         gn.ArgumentTypeError, r"mask must be boolean"),
        ((np.zeros((3, 4)), np.zeros((5, 4)), np.zeros((5, 2)),
          np.ones((3, 4), dtype=bool)), gn.ShapeError, r"does not broadcast"),
    ],
)  # fmt: skip
def test_bad_arguments_to_the_function_are_refused(args, error, message):
    with pytest.raises(error, match=message):
        gn.scaled_dot_product_attention(*args)


def test_positional_embedding_refuses_a_longer_sequence():
    with pytest.raises(gn.ShapeError, match=r"up to 4 positions, got T = 5"):
        gn.PositionalEmbedding(4, 2).forward(np.zeros((1, 5, 2)))


# -- training ------------------------------------------------------------------------


def test_a_small_causal_transformer_learns_an_order_task_in_fit():
    """Is the first id larger than the last? A bag of tokens cannot say (the same
    ids in another order flip the class): the model has to read order."""
    rng = np.random.default_rng(0)

    def task(n, rng):
        ids = rng.integers(0, 5, (n, 6))
        ids[:, -1] = np.where(ids[:, -1] == ids[:, 0], (ids[:, 0] + 1) % 5, ids[:, -1])
        return ids, (ids[:, 0] > ids[:, -1]).astype(int)

    X, y = task(600, rng)
    model = gn.Sequential(
        gn.Embedding(5, 8), gn.PositionalEmbedding(6, 8),
        gn.TransformerBlock(embed_dim=8, num_heads=2, mlp_dim=16, causal=True),
        gn.Flatten(), gn.Dense(48, 2),
        seed=0,
    )  # fmt: skip
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(lr=0.01),
              epochs=15, batch_size=50, verbose=0)  # fmt: skip
    X_test, y_test = task(300, np.random.default_rng(1))
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.9
