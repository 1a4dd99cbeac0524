"""glassnet -> PyTorch -> glassnet, for every layer and for nested models.

to_torch keeps the weights, the buffers and the qualified names; the module
computes the same outputs (1e-12, float64), the same gradients and the same
optimizer step (1e-10) as glassnet; from_torch brings back the same model,
bit for bit, and refuses, by name, every module and option glassnet lacks.
"""

import copy

import numpy as np
import pytest

import glassnet as gn
from export_cases import (
    CASE_IDS,
    CASES,
    NOT_YET,
    FeatureScale,
    NoHooks,
    covered_classes,
    not_yet_cases,
    stand_in,
)
from glassnet.nn.layers.base import builtin_layers

torch = pytest.importorskip("torch")
from glassnet.export import (  # noqa: E402
    NOT_EXPORTED,
    from_torch,
    save_torch,
    to_torch,
)
from glassnet.export.torch_export import TO_TORCH  # noqa: E402
from glassnet.export.torch_import import FROM_TORCH  # noqa: E402

pytestmark = pytest.mark.torch
nn = torch.nn


def torch_input(case, x: np.ndarray):
    return torch.from_numpy(x).long() if case.ids else torch.from_numpy(x)


def numpy(t) -> np.ndarray:
    return t.detach().numpy()


# -- every layer has its rows -------------------------------------------------------


def test_every_glassnet_layer_converts_both_ways_and_has_a_case():
    layers = {c for name, c in builtin_layers().items() if name not in NOT_EXPORTED}
    assert layers - set(TO_TORCH) == set()
    assert layers - covered_classes() == set()
    # a layer that gains converters leaves NOT_EXPORTED (and the README's list)
    assert set(NOT_EXPORTED) <= set(builtin_layers())
    assert {c.__name__ for c in TO_TORCH} & set(NOT_EXPORTED) == set()
    # and comes back: the class of every torch module to_torch makes is importable
    for case in CASES:
        module = to_torch(case.model())
        for name, sub in module.named_modules():
            assert type(sub) in FROM_TORCH, (case.name, name)


# -- glassnet -> torch ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_state_dict_holds_the_qualified_names_and_the_same_arrays(case):
    model = case.model()
    state = to_torch(model).state_dict()
    expected = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    assert set(state) == set(expected) | set(buffers)
    owners = {
        f"{path}.{p.name}": layer
        for path, layer in model.named_layers()
        for p in layer.own_parameters()
    }  # a parameter's name may hold a dot itself ("out_proj.weight")
    for name, p in expected.items():
        layer = owners[name]
        want = (
            p.data.T if isinstance(layer, gn.Dense) and p.name == "weight" else p.data
        )
        assert state[name].dtype == torch.float64
        np.testing.assert_array_equal(numpy(state[name]), want, err_msg=name)
    for name, array in buffers.items():
        np.testing.assert_array_equal(numpy(state[name]), array, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_torch_module_computes_the_same_outputs(case):
    model = case.model()
    x = case.inputs()
    module = to_torch(model)
    assert not module.training  # as the model, which is not fitting
    np.testing.assert_allclose(
        numpy(module(torch_input(case, x))), model.predict(x), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_round_trip_gives_back_the_same_model_bit_for_bit(case):
    model = case.model()
    back = from_torch(to_torch(model), dtype=np.float64)  # a layer alone: no tensors
    assert repr(back) == repr(model).replace("seed=0", "seed=None")
    assert [n for n, _ in back.named_parameters()] == [
        n for n, _ in model.named_parameters()
    ]
    for (name, p), (_, q) in zip(
        model.named_parameters(), back.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)
        assert q.data.dtype == np.float64
    for (name, a), (_, b) in zip(
        model.named_buffers(), back.named_buffers(), strict=True
    ):
        np.testing.assert_array_equal(b, a, err_msg=name)
    x = case.inputs()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def _torch_layout_grads(model: gn.Sequential) -> dict[str, np.ndarray]:
    """The model's parameter gradients laid out as torch lays out the weights:
    put each gradient where its parameter was and let to_torch transpose."""
    holder = copy.deepcopy(model)
    for (_, p), (_, q) in zip(
        model.named_parameters(), holder.named_parameters(), strict=True
    ):
        q.data = p.grad.copy()
    names = {n for n, _ in model.named_parameters()}
    return {k: numpy(v) for k, v in to_torch(holder).state_dict().items() if k in names}


OPTIMIZERS = {
    "sgd_momentum": (
        lambda: gn.SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    "adam": (
        lambda: gn.Adam(lr=0.01),
        lambda params: torch.optim.Adam(params, lr=0.01, eps=1e-8),
    ),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_and_one_optimizer_step_match_torch(case, optimizer):
    model = case.model()
    module = to_torch(model)
    # training mode (batch statistics), except where torch's dropout masks would
    # differ from glassnet's: there both run in evaluation mode
    training = not case.has_dropout
    module.train(training)
    x = case.inputs()
    dout = np.random.default_rng(9).standard_normal(model.predict(x).shape)

    out = model.forward(x, training=training)
    dx = model.backward(dout)
    tx = torch_input(case, x)
    if not case.ids:
        tx.requires_grad_(True)
    t_out = module(tx)
    (t_out * torch.from_numpy(dout)).sum().backward()

    np.testing.assert_allclose(numpy(t_out), out, rtol=1e-12, atol=1e-12)
    if not case.ids:  # ids have no gradient in torch; glassnet returns zeros
        np.testing.assert_allclose(dx, numpy(tx.grad), rtol=1e-10, atol=1e-12)
    grads = _torch_layout_grads(model)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(
            grads[name], numpy(p.grad), rtol=1e-10, atol=1e-12, err_msg=name
        )

    if not model.parameters():
        return  # no step to take
    # Adam divides by sqrt(v) + eps: where the gradient is zero up to roundoff on
    # both sides (attention's key bias: softmax ignores a shift of a row's
    # scores, so its true gradient is 0) the step is roundoff / eps, at most
    # lr * 1e-12 / 1e-8 = 1e-6 on each side. Every other entry agrees to 1e-10.
    roundoff = {}
    if optimizer == "adam":
        for name, p in module.named_parameters():
            g_gn, g_torch = np.abs(grads[name]), np.abs(numpy(p.grad))
            roundoff[name] = (g_gn <= 1e-12) & (g_torch <= 1e-12)
    make_gn, make_torch = OPTIMIZERS[optimizer]
    make_gn().step(model.parameters())
    make_torch(module.parameters()).step()
    after = to_torch(model).state_dict()  # weights, and running stats from forward
    for name, value in module.state_dict().items():
        got, want = after[name].numpy(), numpy(value)
        if name in roundoff:
            zero = roundoff[name]
            np.testing.assert_allclose(got[zero], want[zero], rtol=0, atol=2e-6)
            got, want = got[~zero], want[~zero]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["cnn", "stacked_recurrent", "transformer"])
def test_to_torch_draws_nothing_from_torchs_generator(name):
    model = next(c for c in CASES if c.name == name).model()
    state = torch.get_rng_state()
    to_torch(model)  # Conv2d, BatchNorm2d, Linear, LSTM, GRU, attention, ...
    assert torch.equal(torch.get_rng_state(), state)


def test_training_mode_follows_the_model():
    model = CASES[0].model()
    model.set_training(True)
    assert to_torch(model).training
    model.set_training(False)
    assert not to_torch(model).training


def test_float32_models_give_float32_modules():
    model = gn.Sequential(gn.Dense(3, 2), gn.BatchNorm1D(2), seed=0)
    state = to_torch(model).state_dict()
    assert {v.dtype for v in state.values()} == {torch.float32}
    assert from_torch(to_torch(model)).dtype == np.float32
    as64 = from_torch(to_torch(model), dtype="float64")
    assert as64.dtype == np.float64 and as64[0].weight.data.dtype == np.float64
    np.testing.assert_array_equal(as64[0].weight.data, model[0].weight.data)


def test_a_custom_layer_exports_through_its_hook():
    model = gn.Sequential(gn.Dense(3, 4), FeatureScale(4), seed=0, dtype=np.float64)
    module = to_torch(model)
    assert set(module.state_dict()) == {"0.weight", "0.bias", "1.gamma", "1.beta"}
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(
        numpy(module(torch.from_numpy(x))), model.predict(x), rtol=1e-12
    )


class WrongNames(FeatureScale):
    def to_torch_module(self):
        module = super().to_torch_module()
        module.register_parameter("scale", module.gamma)
        del module.gamma
        return module


class NotAModule(FeatureScale):
    def to_torch_module(self):
        return "a module"


@pytest.mark.parametrize(
    "layer, message",
    [
        (NoHooks(), "layer '1' (NoHooks) has no PyTorch converter; give the class a "),
        (WrongNames(4), "only in torch ['1.scale'], only in glassnet ['1.gamma']"),
        (NotAModule(4), "layer '1' (NotAModule): to_torch_module() must return"),
    ],
    ids=["no hook", "wrong names", "not a module"],
)
def test_to_torch_refuses_a_custom_layer_it_cannot_carry(layer, message):
    model = gn.Sequential(gn.Dense(3, 4), layer, seed=0, dtype=np.float64)
    with pytest.raises(gn.ConfigError) as info:
        to_torch(model)
    assert message in str(info.value)


def test_the_not_yet_table_covers_every_layer_without_converters():
    assert set(NOT_YET) == set(NOT_EXPORTED)


@pytest.mark.parametrize("name", not_yet_cases())
def test_to_torch_refuses_a_layer_without_converters_and_says_why(name, monkeypatch):
    build, shape = stand_in(name, monkeypatch, TO_TORCH, NOT_EXPORTED)
    model = gn.Sequential(gn.Identity(), build(), seed=0)
    with pytest.raises(gn.ConfigError) as info:
        to_torch(model)
    text = str(info.value)
    assert text.startswith(f"to_torch: layer '1' ({name}) does not export yet: ")
    assert NOT_EXPORTED[name] in text


def test_to_torch_wants_a_glassnet_layer():
    with pytest.raises(gn.ArgumentTypeError, match="expected a glassnet model"):
        to_torch(nn.Linear(2, 3))


# -- torch -> glassnet ---------------------------------------------------------------


def test_a_model_written_in_torch_comes_to_glassnet():
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),  # with num_batches_tracked, ignored
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 4),
        nn.Softmax(dim=-1),
    ).double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    module(x)  # a training step's forward: the running statistics move
    module.eval()
    model = from_torch(module)
    assert model.dtype == np.float64 and not model.layers[1].training
    np.testing.assert_allclose(
        model.predict(x.numpy()), numpy(module(x)), rtol=1e-12, atol=1e-14
    )
    report = gn.gradcheck(model, x.numpy()[:3])
    assert report.passed, report


def test_a_single_module_becomes_a_one_layer_model():
    model = from_torch(nn.Linear(3, 2).double())
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


class MyModule(nn.Module):
    def forward(self, x):
        return x


class MyLinear(nn.Linear):
    pass


REFUSALS = [
    (nn.Linear(3, 2, bias=False), "bias=False is not supported (glassnet's Dense"),
    (nn.Conv2d(1, 2, 3, dilation=2), "dilation=(2, 2) is not supported"),
    (nn.Conv1d(1, 2, 3, dilation=2), "dilation=(2,) is not supported"),
    (nn.Conv1d(2, 2, 3, groups=2, bias=False), "groups=2, bias=False are not"),
    (nn.MaxPool1d(2, ceil_mode=True), "ceil_mode=True is not supported"),
    (
        nn.AvgPool1d(3, padding=1, count_include_pad=False),
        "count_include_pad=False is not supported (glassnet's AvgPool1D",
    ),
    (nn.Conv2d(2, 2, 3, groups=2), "groups=2 is not supported"),
    (nn.Conv2d(1, 2, 3, bias=False), "bias=False is not supported"),
    (nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (nn.MaxPool2d(2, dilation=2), "dilation=2 is not supported"),
    (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode=True is not supported"),
    (nn.MaxPool2d(2, return_indices=True), "return_indices=True"),
    (nn.AvgPool2d(2, ceil_mode=True), "ceil_mode=True is not supported"),
    (
        nn.AvgPool2d(3, padding=1, count_include_pad=False),
        "count_include_pad=False is not supported",
    ),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override=3"),
    (nn.Flatten(start_dim=2), "start_dim=2 is not supported"),
    (nn.Flatten(end_dim=2), "end_dim=2 is not supported"),
    (nn.Softmax(dim=0), "dim=0 is not supported (glassnet's Softmax supports only"),
    (nn.Softmax(), "dim=None is not supported"),
    (nn.BatchNorm1d(3, affine=False), "affine=False is not supported"),
    (
        nn.BatchNorm2d(3, track_running_stats=False),
        "track_running_stats=False is not supported",
    ),
    (nn.BatchNorm1d(3, momentum=None), "momentum=None (a cumulative average"),
    (nn.LayerNorm(3, bias=False), "bias=False is not supported (glassnet's LayerNorm"),
    (nn.Embedding(5, 2, padding_idx=0), "padding_idx=0 is not supported"),
    (nn.Embedding(5, 2, max_norm=1.0), "max_norm=1.0 is not supported"),
    (nn.Embedding(5, 2, scale_grad_by_freq=True), "scale_grad_by_freq=True"),
    (nn.Embedding(5, 2, sparse=True), "sparse=True is not supported"),
    (nn.LeakyReLU(2.0), "negative_slope"),
    (nn.ELU(alpha=-1.0), "alpha"),
    (nn.Dropout(1.0), "rate"),
    (nn.Bilinear(2, 2, 2), "no glassnet layer computes this module"),
    (nn.PixelShuffle(2), "no glassnet layer computes this module"),
    (nn.ModuleList([nn.ReLU()]), "no glassnet layer computes this module"),
    (MyModule(), "(test_export_torch.MyModule): no glassnet layer computes"),
    (MyLinear(2, 3), "it subclasses torch.nn.Linear, but a subclass may change"),
    (nn.LSTM(3, 4, batch_first=True), "returns a pair (output, final state)"),
    (nn.GRU(3, 4), "use glassnet.export._torch_sequence.GRU"),
    (nn.RNN(3, 4), "glassnet layer returns; use glassnet.export._torch_sequence.RNN"),
    (nn.MultiheadAttention(4, 2), "batch_first=False is not supported"),
    (
        nn.MultiheadAttention(4, 2, batch_first=True, dropout=0.1),
        "dropout=0.1 is not supported (glassnet's MultiHeadAttention",
    ),
    (
        nn.MultiheadAttention(4, 2, batch_first=True, kdim=3, vdim=3),
        "kdim=3, vdim=3 are not supported",
    ),
    (
        nn.MultiheadAttention(4, 2, batch_first=True, add_bias_kv=True),
        "add_bias_kv=True is not supported",
    ),
    (
        nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True),
        "norm_first=False, activation='relu' are not supported",
    ),
    (
        nn.TransformerEncoderLayer(
            4, 2, 8, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
        ),
        "dropout=0.1 is not supported (glassnet's TransformerBlock",
    ),
    (
        nn.TransformerEncoderLayer(
            4,
            2,
            8,
            dropout=0.0,
            activation=nn.GELU("tanh"),
            batch_first=True,
            norm_first=True,
        ),
        """activation="GELU(approximate='tanh')" is not supported""",
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    "module, message",
    REFUSALS,
    ids=[f"{i}-{m[1][:24]}" for i, m in enumerate(REFUSALS)],
)
def test_from_torch_refuses_what_glassnet_lacks_naming_module_type_and_option(
    module, message
):
    wrapped = nn.Sequential(nn.Identity(), nn.Sequential(nn.Identity(), module))
    with pytest.raises(gn.ConfigError) as info:
        from_torch(wrapped.double())
    text = str(info.value)
    assert text.startswith("from_torch: module '1.1' (")
    name = type(module).__name__
    assert f"torch.nn.{name})" in text or f".{name})" in text
    assert message in text


@pytest.mark.parametrize(
    "module, message",
    [
        (nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double()), "dtypes torch.f"),
        (nn.Linear(2, 2).half(), "torch.float16"),
        ("a module", "expected a torch.nn.Module, got str"),
    ],
    ids=["mixed dtypes", "float16", "not a module"],
)
def test_from_torch_wants_one_float_dtype_and_a_module(module, message):
    with pytest.raises(gn.GlassnetError, match=message.replace("(", r"\(")):
        from_torch(module)


# -- a file PyTorch loads without glassnet --------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["residual_mlp", "sequence", "stacked_recurrent", "transformer"]
    + ["time_distributed_tagger", "time_distributed_conv"],
)
def test_save_torch_writes_a_program_with_a_dynamic_batch(name, tmp_path):
    case = next(c for c in CASES if c.name == name)
    model = case.model()
    path = tmp_path / "model.pt"
    save_torch(model, path, input_shape=case.input_shape)
    loaded = torch.export.load(path).module()
    names = {n for n, _ in model.named_parameters()} | {
        n for n, _ in model.named_buffers()
    }
    assert set(loaded.state_dict()) == names
    for n in (1, 6):
        x = case.inputs(n)
        np.testing.assert_allclose(
            numpy(loaded(torch_input(case, x))),
            model.predict(x),
            rtol=1e-12,
            atol=1e-12,
        )


# -- TimeDistributed ----------------------------------------------------------------

TIME_DISTRIBUTED = [c for c in CASES if c.name.startswith("time_distributed")]


@pytest.mark.parametrize("case", TIME_DISTRIBUTED, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-10)])
def test_time_distributed_computes_glassnets_outputs_in_torch(case, dtype, tol):
    model = case.model(dtype)
    module = to_torch(model)
    assert any(".layer." in name for name in module.state_dict())  # glassnet's names
    x = case.inputs(4)
    got = numpy(module(torch_input(case, x if case.ids else x.astype(dtype))))
    want = model.predict(x)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_time_distributed_refuses_a_wrapped_layer_without_converters():
    model = gn.Sequential(gn.Dense(3, 4), gn.TimeDistributed(NoHooks()), seed=0)
    with pytest.raises(gn.ConfigError) as info:
        to_torch(model)
    assert "layer '1.layer' (NoHooks) has no PyTorch converter" in str(info.value)


def _steps_after_embedding():
    return nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 3))


def _steps_after_norm():  # two Linears over the steps, an activation between
    return nn.Sequential(
        nn.Embedding(7, 4), nn.LayerNorm(4), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)
    )


def _steps_in_a_residual():
    inner = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    from glassnet.export._torch_modules import Residual

    return nn.Sequential(nn.Embedding(7, 4), Residual(inner), nn.Linear(4, 3))


@pytest.mark.parametrize(
    "make, wrapped",
    [
        (_steps_after_embedding, ["1"]),
        (_steps_after_norm, ["2", "4"]),
        (_steps_in_a_residual, ["1.block.0", "2"]),
    ],
    ids=["after-embedding", "after-layernorm", "in-a-residual"],
)
def test_a_linear_over_a_sequence_imports_as_time_distributed_dense(make, wrapped):
    torch.manual_seed(0)
    module = make().double().eval()
    model = from_torch(module)
    found = [
        n
        for n, layer in model.named_layers()
        if type(layer).__name__ == "TimeDistributed"
    ]
    assert found == wrapped
    ids = np.random.default_rng(0).integers(0, 7, size=(5, 6))
    want = numpy(module(torch.from_numpy(ids)))  # (5, 6, K)
    np.testing.assert_allclose(model.predict(ids), want, rtol=1e-12, atol=1e-12)


def test_a_model_that_starts_with_a_linear_keeps_dense():
    model = from_torch(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "ReLU",
        "Dense",
    ]
