"""RNN, LSTM and GRU: gradcheck tables over every option (T, batch, direction,
return_sequences, initial state), shapes, PyTorch's parameter layout and init,
configs, errors, stacking, and training inside fit. (The PyTorch oracle for the
same layers is test_recurrent_torch.py.)"""

import numpy as np
import pytest

import glassnet as gn

CELLS = {
    "rnn-tanh": lambda **kw: gn.RNN(3, 4, **kw),
    "rnn-relu": lambda **kw: gn.RNN(3, 4, "relu", **kw),
    "lstm": lambda **kw: gn.LSTM(3, 4, **kw),
    "gru": lambda **kw: gn.GRU(3, 4, **kw),
}
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}


def f64(name, rng, **kw):
    return CELLS[name](rng=rng, dtype=np.float64, **kw)


# -- gradcheck ---------------------------------------------------------------------


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("name", CELLS)
def test_gradcheck_float64(name, T, batch, bidirectional, return_sequences, rng):
    layer = f64(
        name, rng, bidirectional=bidirectional, return_sequences=return_sequences
    )
    x = rng.normal(0.0, 1.0, (batch, T, 3))
    report = gn.gradcheck(layer, x)
    assert report.passed, str(report)
    expected = ["input"] + [n for n, _ in layer.named_parameters()]
    assert [row.name for row in report.rows] == expected
    for row in report.rows:
        assert row.max_error <= 1e-7, str(report)
        assert row.kinks == 0, str(report)


def _state_arrays(name, layer, N, rng, layout):
    """The initial state in `layout` ("NH" or "DNH"), as forward takes it."""
    dirs = 2 if layer.bidirectional else 1
    shape = (N, 4) if layout == "NH" else (dirs, N, 4)
    h0 = rng.normal(size=shape)
    return (h0, rng.normal(size=shape)) if name == "lstm" else h0


@pytest.mark.parametrize(
    "bidirectional, layout",
    [(False, "NH"), (False, "DNH"), (True, "DNH")],
    ids=["uni-(N,H)", "uni-(1,N,H)", "bi-(2,N,H)"],
)
@pytest.mark.parametrize("name", CELLS)
def test_gradcheck_with_an_initial_state(name, bidirectional, layout, rng):
    """forward((x, state)) and backward -> (dx, dstate): the function form checks
    the state's gradient along with x's and every parameter's."""
    layer = f64(name, rng, bidirectional=bidirectional, return_sequences=True)
    x = rng.normal(size=(2, 3, 3))
    state = _state_arrays(name, layer, 2, rng, layout)
    states = state if name == "lstm" else (state,)
    keys = ["h0", "c0"][: len(states)]
    params = dict(layer.named_parameters())
    w = rng.normal(size=(2, 3, 4 * (2 if bidirectional else 1)))

    def run(arrays):
        for key, p in params.items():
            p.data = arrays[key]
        s = tuple(arrays[k] for k in keys)
        return layer.forward((arrays["x"], s if name == "lstm" else s[0]))

    def f(arrays):
        return float(np.sum(run(arrays) * w))

    def grad(arrays):
        run(arrays)
        dx, dstate = layer.backward(w)
        dstates = dstate if name == "lstm" else (dstate,)
        out = {"x": dx, **dict(zip(keys, dstates, strict=True))}
        return out | {key: p.grad.copy() for key, p in params.items()}

    arrays = {"x": x, **dict(zip(keys, states, strict=True))}
    arrays |= {key: p.data.copy() for key, p in params.items()}
    report = gn.gradcheck(f, arrays, grad=grad)
    assert report.passed, str(report)
    assert max(row.max_error for row in report.rows) <= 1e-7, str(report)
    for key, s in zip(keys, states, strict=True):
        assert grad(arrays)[key].shape == s.shape  # in the layout it was given


def test_gradcheck_sees_a_wrong_lstm_cell_path(rng):
    """The tables can fail: dropping the gradient that c_t gets from c_{t+1}
    (the cell path) is the classic LSTM backward bug, and only T > 1 shows it."""

    class NoCellPath(gn.LSTM):
        def _step_backward(self, dstate, step_cache, w_hh):
            dh, dc_next = dstate
            return super()._step_backward((dh, 0.0 * dc_next), step_cache, w_hh)

    x = rng.normal(size=(2, 4, 3))
    wrong = NoCellPath(3, 4, rng=rng, dtype=np.float64, return_sequences=True)
    assert not gn.gradcheck(wrong, x).passed
    assert gn.gradcheck(wrong, x[:, :1]).passed  # one step: no cell path to drop


class StepByStepLSTM(gn.LSTM):
    """The same cell through _Recurrent's generic loop, one _step and one
    _step_backward per time step: LSTM runs its own fused loop (LSTM._run,
    _run_backward) only while both steps are LSTM's own."""

    def _step(self, xw_t, state, w_hh, b_hh):
        return super()._step(xw_t, state, w_hh, b_hh)


@pytest.mark.parametrize("initial", [False, True], ids=["zeros", "h0-c0"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_the_fused_lstm_loop_matches_the_per_step_cell(
    dtype, tol, T, bidirectional, return_sequences, initial, rng
):
    """Outputs, dL/dx, the initial state's and every parameter's gradient of the
    fused loop against the per-step reference (the steps explain walks), in the
    layer's dtype (float32 stays float32: no silent upcast)."""
    kw = dict(bidirectional=bidirectional, return_sequences=return_sequences)
    fused = gn.LSTM(3, 4, rng=np.random.default_rng(1), dtype=dtype, **kw)
    steps = StepByStepLSTM(3, 4, rng=np.random.default_rng(1), dtype=dtype, **kw)
    assert fused._fused() and not steps._fused()
    x = rng.normal(size=(2, T, 3)).astype(dtype)
    if initial:
        dirs = 2 if bidirectional else 1
        x = (x, tuple(rng.normal(size=(dirs, 2, 4)).astype(dtype) for _ in "hc"))
    outs = [layer.forward(x) for layer in (fused, steps)]
    dout = rng.normal(size=outs[0].shape).astype(dtype)
    grads = [layer.backward(dout) for layer in (fused, steps)]  # dx or (dx, (dh0, dc0))

    def arrays(out, grad, layer):  # every array to compare, flat
        dx, dstate = grad if initial else (grad, ())
        return [out, dx, *dstate, *(p.grad for p in layer.parameters())]

    flat = [arrays(*z) for z in zip(outs, grads, (fused, steps), strict=True)]
    assert len(flat[0]) == len(flat[1]) == 2 + 2 * initial + 4 * (1 + bidirectional)
    for a, b in zip(*flat, strict=True):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- shapes, parameters, init ------------------------------------------------------


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_output_shapes(name, bidirectional, return_sequences, rng):
    layer = CELLS[name](bidirectional=bidirectional, return_sequences=return_sequences)
    x = rng.normal(size=(5, 7, 3)).astype(np.float32)
    out = layer.forward(x)
    width = 8 if bidirectional else 4
    expected = (7, width) if return_sequences else (width,)
    assert out.shape == (5, *expected) and out.dtype == np.float32
    assert layer.output_shape((7, 3)) == expected
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_last_output_is_each_directions_final_state(name, bidirectional, rng):
    """return_sequences=False gives the forward direction's h at t = T-1 and the
    reverse direction's at t = 0, the steps where each has read the whole input."""
    seq = f64(name, rng, bidirectional=bidirectional, return_sequences=True)
    last = f64(name, rng, bidirectional=bidirectional)
    for p, q in zip(last.parameters(), seq.parameters(), strict=True):
        p.data = q.data.copy()
    x = rng.normal(size=(2, 5, 3))
    all_steps, out = seq.forward(x), last.forward(x)
    np.testing.assert_array_equal(out[:, :4], all_steps[:, -1, :4])
    if bidirectional:
        np.testing.assert_array_equal(out[:, 4:], all_steps[:, 0, 4:])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_parameters_follow_pytorch_names_layout_and_init(name, bidirectional):
    layer = CELLS[name](bidirectional=bidirectional, rng=np.random.default_rng(0))
    G = GATES[name]
    suffixes = ["", "_reverse"] if bidirectional else [""]
    expected = [
        (base + s, shape)
        for s in suffixes
        for base, shape in [
            ("weight_ih", (G * 4, 3)),
            ("weight_hh", (G * 4, 4)),
            ("bias_ih", (G * 4,)),
            ("bias_hh", (G * 4,)),
        ]
    ]
    assert [(n, p.shape) for n, p in layer.named_parameters()] == expected
    attributes = [v for v in vars(layer).values() if isinstance(v, gn.Parameter)]
    assert [id(p) for p in layer.parameters()] == [id(p) for p in attributes]
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= 0.5  # U(-1/sqrt(H), 1/sqrt(H)), H = 4
    assert values.std() > 0.25  # spread over it (uniform on +-0.5: std 0.29)


@pytest.mark.parametrize("name", CELLS)
def test_the_models_seed_and_dtype_fill_in_unless_the_layer_has_its_own(name):
    a = gn.Sequential(CELLS[name](), seed=3, dtype=np.float64)
    b = gn.Sequential(CELLS[name](), seed=3, dtype=np.float64)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.data.dtype == np.float64
        np.testing.assert_array_equal(p.data, q.data)
    own = CELLS[name](rng=np.random.default_rng(1))
    before = [p.data.copy() for p in own.parameters()]
    gn.Sequential(own, seed=0)  # float32 like the layer: nothing changes
    for p, w in zip(own.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, w)


@pytest.mark.parametrize("name", CELLS)
def test_backward_twice_gives_the_same_gradients(name, rng):
    layer = f64(name, rng, bidirectional=True, return_sequences=True)
    out = layer.forward(rng.normal(size=(3, 4, 3)))
    dout = rng.normal(size=out.shape)
    first = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    second = [layer.backward(dout)] + [p.grad.copy() for p in layer.parameters()]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", CELLS)
def test_backward_params_stores_what_backward_stores(name, rng):
    layer = f64(name, rng, bidirectional=True)
    out = layer.forward(rng.normal(size=(3, 4, 3)))
    dout = rng.normal(size=out.shape)
    layer.backward(dout)
    expected = [p.grad.copy() for p in layer.parameters()]
    for p in layer.parameters():
        p.grad = np.full(p.shape, np.nan)
    assert layer.backward_params(dout) is None
    for p, g in zip(layer.parameters(), expected, strict=True):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("name", CELLS)
def test_backward_before_forward_is_a_call_order_error(name):
    with pytest.raises(gn.CallOrderError, match=r"backward\(\) was called before"):
        CELLS[name]().backward(np.zeros((2, 4)))


@pytest.mark.parametrize("name", CELLS)
def test_get_config_rebuilds_the_layer(name):
    layer = CELLS[name](return_sequences=True, bidirectional=True)
    rebuilt = type(layer)(**layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.output_shape((6, 3)) == layer.output_shape((6, 3)) == (6, 8)


def test_integer_sequences_are_read_as_numbers(rng):
    layer = gn.GRU(1, 2, rng=rng)
    ids = rng.integers(0, 3, (4, 5, 1))
    as_floats = ids.astype(np.float32)  # the layer's dtype
    np.testing.assert_array_equal(layer.forward(ids), layer.forward(as_floats))


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: gn.LSTM(0, 4), gn.ConfigError, r"LSTM: expected integers >= 1, got "
         r"input_size=0"),
        (lambda: gn.GRU(3, 2.5), gn.ConfigError, r"hidden_size=2.5"),
        (lambda: gn.RNN(3, 4, "sigmoid"), gn.ConfigError, r'"tanh" or "relu"'),
        (lambda: gn.LSTM(3, 4, return_sequences=1), gn.ConfigError,
         r"return_sequences must be True or False"),
        (lambda: gn.GRU(3, 4, bidirectional="yes"), gn.ConfigError,
         r"bidirectional must be True or False"),
        (lambda: gn.RNN(3, 4, dtype=np.int32), gn.ConfigError, r"float32 or float64"),
    ],
)  # fmt: skip
def test_bad_configuration_is_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.zeros((2, 5)), gn.ShapeError,
         r"LSTM\(3, 4\) expects input of shape \(N, T, 3\), got \(N, 5\); a sequence "
         r"is \(N, T, D\): for token ids \(N, T\) put an Embedding first"),
        (np.zeros((2, 5, 2)), gn.ShapeError, r"input_size should be 2"),
        (np.zeros((2, 0, 3)), gn.ShapeError, r"at least one time step"),
        (np.array([["a"]]), gn.ArgumentTypeError, r"numeric array"),
        ((np.zeros((2, 5, 3)),), gn.ArgumentTypeError, r"\(x, initial_state\)"),
        ((np.zeros((2, 5, 3)), np.zeros((2, 4))), gn.ArgumentTypeError,
         r"the initial state is a pair \(h0, c0\)"),
        ((np.zeros((2, 5, 3)), (np.zeros((2, 4)), np.zeros((3, 4)))),
         gn.ShapeError, r"initial c0 must be a float array of shape \(1, 2, 4\) or "
         r"\(2, 4\)"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_hint(x, error, message):
    with pytest.raises(error, match=message):
        gn.LSTM(3, 4).forward(x)


def test_a_bidirectional_initial_state_needs_both_directions():
    layer = gn.GRU(3, 4, bidirectional=True)
    with pytest.raises(gn.ShapeError, match=r"shape \(2, 2, 4\) \(directions"):
        layer.forward((np.zeros((2, 5, 3)), np.zeros((2, 4))))


def test_a_wrong_dout_is_refused(rng):
    layer = gn.RNN(3, 4, return_sequences=True)
    layer.forward(rng.normal(size=(2, 5, 3)))
    with pytest.raises(gn.ShapeError, match=r"dout must have the output's shape"):
        layer.backward(np.zeros((2, 4)))


def test_output_shape_names_the_mismatch():
    model = gn.Sequential(gn.LSTM(3, 4, return_sequences=True), gn.GRU(5, 2))
    with pytest.raises(gn.ShapeError, match=r"layer 1 \(GRU\).*input_size should be 4"):
        model.output_shape((6, 3))


# -- composition and training ----------------------------------------------------------


def test_stacking_by_composition_feeds_every_step_up(rng):
    """Two layers in a Sequential: the second reads the first's whole sequence
    (2H wide after a bidirectional one); the model's gradient checks out."""
    model = gn.Sequential(
        gn.LSTM(3, 4, return_sequences=True, bidirectional=True),
        gn.GRU(8, 3, return_sequences=True),
        gn.RNN(3, 2),
        seed=0,
        dtype=np.float64,
    )
    assert model.output_shape((5, 3)) == (2,)
    report = gn.gradcheck(model, rng.normal(size=(2, 5, 3)))
    assert report.passed and max(r.max_error for r in report.rows) <= 1e-7, report


def _order_task(n: int, rng):
    """Sequences of ids 0..4; the class says whether the first id exceeds the last.
    The same ids in another order change the class: order must be read."""
    ids = rng.integers(0, 5, (n, 6))
    ids[:, -1] = np.where(ids[:, -1] == ids[:, 0], (ids[:, 0] + 1) % 5, ids[:, -1])
    return ids, (ids[:, 0] > ids[:, -1]).astype(int)


@pytest.mark.parametrize(
    "recurrent",
    [lambda: gn.GRU(8, 16), lambda: gn.LSTM(8, 16, bidirectional=True)],
    ids=["gru", "bilstm"],
)
def test_embedding_recurrent_dense_learns_an_order_task_in_fit(recurrent):
    rng = np.random.default_rng(0)
    X, y = _order_task(600, rng)
    layer = recurrent()
    model = gn.Sequential(
        gn.Embedding(5, 8), layer, gn.Dense(layer.output_shape((6, 8))[0], 2), seed=0
    )
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(lr=0.02),
              epochs=15, batch_size=50, verbose=0)  # fmt: skip
    X_test, y_test = _order_task(300, np.random.default_rng(1))
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.9
