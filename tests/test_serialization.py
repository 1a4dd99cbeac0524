"""Save / load: round trips, crafted files, atomic writes, checkpoints and resume.

Malicious files are written here by hand, byte by byte, so each test controls
exactly what the loader sees.
"""

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import glassnet as gn
from glassnet.errors import ModelFileError
from glassnet.io.serialization import (
    FORMAT_VERSION,
    LAYERS,
    load,
    load_weights,
    save,
    save_weights,
)
from glassnet.train.checkpoints import load_checkpoint, restore_checkpoint
from user_layers import UserBlock


def _perturb(model, seed: int = 1):
    """Weights that differ from what the model's seed alone would give, so a
    loader that re-initialises instead of reading the file is caught."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = p.data + rng.normal(0.0, 0.5, p.shape).astype(p.data.dtype)
    return model


def _mlp(dtype):
    return gn.Sequential(
        gn.Dense(4, 6), gn.ReLU(),
        gn.Dense(6, 5, init="he_normal"), gn.LeakyReLU(0.2),
        gn.Dense(5, 5), gn.Tanh(), gn.Identity(),
        gn.Dense(5, 4), gn.Sigmoid(),
        gn.Dense(4, 3), gn.Softmax(),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _cnn(dtype):
    return gn.Sequential(
        gn.Conv2D(2, 3, 3, padding=1), gn.ReLU(),
        gn.MaxPool2D(2),
        gn.Conv2D(3, 4, (2, 3), stride=1, padding="same"),
        gn.AvgPool2D(2, stride=1),
        gn.Dropout(0.3),
        gn.Flatten(),
        gn.Dense(4 * 3 * 3, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _signal(dtype):  # 1-D layers and the per-axis argument forms
    return gn.Sequential(
        gn.Conv1D(2, 3, 5, stride=2, padding="same"), gn.ReLU(),
        gn.MaxPool1D(2, padding=(1, 0)),
        gn.Conv1D(3, 4, (3,), padding=((2, 0),), init="he_normal"),
        gn.AvgPool1D(3, stride=1, padding=1),
        gn.Flatten(),
        gn.Dense(4 * 3, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _image_axes(dtype):  # per-axis kernels, strides and explicit padding in 2-D
    return gn.Sequential(
        gn.Conv2D(2, 3, (1, 3), stride=(1, 2), padding=((0, 0), (1, 2))),
        gn.MaxPool2D((2, 1), padding="same"),
        gn.AvgPool2D((1, 2), stride=(1, 1), padding=(0, 1)),
        gn.Flatten(),
        gn.Dense(3 * 4 * 6, 2),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _residual_mlp(dtype):
    return gn.Sequential(
        gn.Dense(4, 8), gn.Tanh(),
        gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
        gn.Dense(8, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _sequence(dtype, pool=gn.GlobalMaxPool1D):  # normalization and activations
    return gn.Sequential(
        gn.BatchNorm1D(2), gn.LayerNorm(6), gn.GELU(), gn.SiLU(), pool(),
        gn.Dense(2, 4), gn.BatchNorm1D(4, momentum=0.2), gn.ELU(0.5),
        gn.Softplus(2.0), gn.GELU("tanh"), gn.Dense(4, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _nested(dtype):
    inner = gn.Sequential(gn.Dense(6, 5), gn.ReLU(), seed=3)  # its own seed
    return gn.Sequential(
        gn.Dense(4, 6), gn.Tanh(),
        inner,
        gn.Concat(
            gn.Dense(5, 2),
            gn.Sequential(gn.Dense(5, 3), gn.Sigmoid(), gn.Residual(gn.Dense(3, 3))),
        ),
        gn.Dense(5, 3),
        seed=1, dtype=dtype,
    )  # fmt: skip


def _image(dtype, pool=gn.GlobalAvgPool2D):
    return gn.Sequential(
        gn.BatchNorm2D(2, eps=1e-3), gn.LayerNorm((4, 4), elementwise_affine=False),
        pool(), gn.Dense(2, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _tokens(dtype):  # takes integer ids: see test_round_trip_of_an_embedding_model
    return gn.Sequential(
        gn.Embedding(10, 4), gn.LayerNorm(4), gn.Flatten(), gn.Dense(12, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _token_lstm(dtype):  # a sequence classifier on integer ids
    return gn.Sequential(
        gn.Embedding(10, 4), gn.LSTM(4, 5), gn.Dense(5, 3), seed=0, dtype=dtype
    )


def _token_tagger(dtype):  # one label per token: a per-step Dense head
    return gn.Sequential(
        gn.Embedding(10, 4), gn.GRU(4, 5, return_sequences=True),
        gn.TimeDistributed(gn.Dense(5, 3)), seed=0, dtype=dtype,
    )  # fmt: skip


def _recurrent(dtype):  # every recurrent layer and option, stacked
    return gn.Sequential(
        gn.GRU(2, 3, return_sequences=True, bidirectional=True),
        gn.RNN(6, 4, "relu", return_sequences=True),
        gn.LSTM(4, 3, return_sequences=True, bidirectional=True),
        gn.RNN(6, 3, bidirectional=True), gn.Dense(6, 2),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _attention(dtype):
    return gn.Sequential(
        gn.SinusoidalPositionalEncoding(8), gn.PositionalEmbedding(5, 8),
        gn.TransformerBlock(embed_dim=8, num_heads=2, mlp_dim=12, causal=True),
        gn.MultiHeadAttention(8, 4), gn.Flatten(), gn.Dense(24, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


MODELS = [
    pytest.param(_mlp, (7, 4), id="mlp"),
    pytest.param(_cnn, (5, 2, 8, 8), id="cnn"),
    pytest.param(_signal, (5, 2, 12), id="signal"),
    pytest.param(_image_axes, (5, 2, 7, 9), id="image-axes"),
    pytest.param(_residual_mlp, (7, 4), id="residual-mlp"),
    pytest.param(_nested, (7, 4), id="nested"),
    pytest.param(_sequence, (5, 2, 6), id="sequence"),
    pytest.param(
        lambda d: _sequence(d, gn.GlobalAvgPool1D), (5, 2, 6), id="sequence-avg"
    ),
    pytest.param(_image, (5, 2, 4, 4), id="image"),
    pytest.param(lambda d: _image(d, gn.GlobalMaxPool2D), (5, 2, 4, 4), id="image-max"),
    pytest.param(_recurrent, (5, 6, 2), id="recurrent"),
    pytest.param(_attention, (5, 3, 8), id="attention"),
]


def test_round_trip_models_cover_every_registered_layer():
    makers = [p.values[0] for p in MODELS] + [_tokens, _token_lstm, _token_tagger]
    used = {
        type(layer).__name__
        for make in makers
        for _, layer in make(np.float32).named_layers()
    }
    used.add("Sequential")  # the round-trip models are Sequentials themselves
    assert set(LAYERS) <= used, f"add {set(LAYERS) - used} to the round-trip models"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, x_shape", MODELS)
def test_round_trip_predictions_are_bitwise_equal(make, x_shape, dtype, tmp_path):
    model = _perturb(make(dtype))
    X = np.random.default_rng(2).normal(size=x_shape)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = gn.load(path)
    assert loaded.dtype == np.dtype(dtype)
    assert [repr(a) for a in loaded] == [repr(b) for b in model]
    assert [a.get_config() for a in loaded] == [b.get_config() for b in model]
    assert [(n, type(a)) for n, a in loaded.named_layers()] == [
        (n, type(b)) for n, b in model.named_layers()
    ]
    for (name, p), (name2, q) in zip(
        model.named_parameters(), loaded.named_parameters(), strict=True
    ):
        assert name == name2 and p.data.dtype == q.data.dtype
        assert np.array_equal(p.data, q.data), name
    assert np.array_equal(model.predict(X), loaded.predict(X))


@pytest.mark.parametrize(
    "make", [_tokens, _token_lstm, _token_tagger], ids=["flatten", "lstm", "tagger"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_of_an_embedding_model(dtype, make, tmp_path):
    model = _perturb(make(dtype))
    ids = np.random.default_rng(2).integers(0, 10, (5, 3))
    model.save(tmp_path / "model.safetensors")
    loaded = gn.load(tmp_path / "model.safetensors")
    assert [repr(a) for a in loaded] == [repr(b) for b in model]
    assert np.array_equal(model.predict(ids), loaded.predict(ids))


# -- buffers and mixed dtypes ------------------------------------------------------


def _bn_mlp(dtype):
    return gn.Sequential(
        gn.Dense(4, 6), gn.BatchNorm1D(6), gn.ReLU(), gn.Dense(6, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _bn_residual(dtype):  # BatchNorm inside Residual inside Sequential, and beside
    block = gn.Sequential(gn.BatchNorm1D(6), gn.Dense(6, 6), gn.Tanh())
    return gn.Sequential(
        gn.Dense(4, 6), gn.Residual(block), gn.BatchNorm1D(6, momentum=0.5),
        gn.Dense(6, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


def _bn_image(dtype):
    return gn.Sequential(
        gn.Conv2D(2, 3, 3, padding=1), gn.BatchNorm2D(3), gn.ReLU(),
        gn.GlobalAvgPool2D(), gn.BatchNorm1D(3), gn.Dense(3, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


BATCHNORM_MODELS = [
    pytest.param(_bn_mlp, (4,), id="mlp"),
    pytest.param(_bn_residual, (4,), id="inside-residual"),
    pytest.param(_bn_image, (2, 5, 5), id="image"),
]


def _trained(model, sample_shape):
    """model after two epochs of fit: running statistics far from their start."""
    rng = np.random.default_rng(3)
    X = rng.normal(1.5, 3.0, size=(60, *sample_shape))
    y = rng.integers(0, model.predict(X[:2]).shape[1], 60)  # one class per output
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for name, buffer in model.named_buffers():
        start = 0.0 if name.endswith("running_mean") else 1.0
        assert not np.allclose(buffer, start), f"{name} did not move in training"
    return model, X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, sample_shape", BATCHNORM_MODELS)
def test_trained_batchnorm_model_predicts_bitwise_after_load(
    make, sample_shape, dtype, tmp_path
):
    model, X = _trained(make(dtype), sample_shape)
    path = tmp_path / "bn.safetensors"
    model.save(path)
    from safetensors.numpy import load_file

    stored = load_file(path)
    for name, buffer in model.named_buffers():  # beside the parameters, marked
        assert name not in stored
        assert np.array_equal(stored[f"buffers.{name}"], buffer), name
    fresh = make(dtype)  # running statistics at 0 and 1: predicts differently
    assert not np.array_equal(fresh.predict(X), model.predict(X))
    for loaded in (gn.load(path), load_weights(fresh, path)):
        assert [n for n, _ in loaded.named_buffers()] == [
            n for n, _ in model.named_buffers()
        ]
        for (name, a), (_, b) in zip(
            model.named_buffers(), loaded.named_buffers(), strict=True
        ):
            assert a.dtype == b.dtype == np.dtype(dtype)
            assert np.array_equal(a, b), name
        assert not any("running" in n for n, _ in loaded.named_parameters())
        assert np.array_equal(loaded.predict(X), model.predict(X))


def _buffer_checkpoint(tmp_path):
    """A checkpoint (also a model file) of a trained _bn_residual model."""
    model, _ = _trained(_bn_residual(np.float32), (4,))
    path = tmp_path / "bn.ckpt"
    from glassnet.train.checkpoints import save_checkpoint

    save_checkpoint(path, model, epoch=1)
    return path


def _rewrite_tensors(path, change) -> None:
    """Rewrite a file's tensors with change(arrays), metadata untouched."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    from safetensors.numpy import save as safetensors_save

    with safe_open(path, "np") as fh:
        metadata = fh.metadata()
    arrays = load_file(path)
    change(arrays)
    path.write_bytes(safetensors_save(arrays, metadata=metadata))


def _unmark_buffers(arrays):  # buffers stored under parameter-like names
    for name in [n for n in arrays if n.startswith("buffers.")]:
        arrays[name.removeprefix("buffers.")] = arrays.pop(name)


BUFFER_EDITS = [
    pytest.param(
        lambda a: a.pop("buffers.1.block.0.running_var"),
        ["buffers.1.block.0.running_var: missing from the file"],
        id="missing-nested",
    ),
    pytest.param(
        lambda a: a.update({"buffers.2.running_std": np.ones(6, np.float32)}),
        ["buffers.2.running_std: in the file (shape (6,)) but not in the model"],
        id="extra",
    ),
    pytest.param(
        _unmark_buffers,
        [
            "buffers.2.running_mean: missing from the file",
            "2.running_mean: in the file (shape (6,)) but not in the model",
            "buffers.1.block.0.running_var: missing from the file",
        ],
        id="stored-as-parameters",
    ),
    pytest.param(
        lambda a: a.update({"buffers.2.running_mean": np.zeros(5, np.float32)}),
        ["buffers.2.running_mean: file shape (5,) float32, model shape (6,) float32"],
        id="wrong-shape",
    ),
    pytest.param(
        lambda a: a.update({"buffers.2.running_var": np.ones(6)}),
        ["buffers.2.running_var: file shape (6,) float64, model shape (6,) float32"],
        id="wrong-dtype",
    ),
]


def _load_into_fresh(loader):
    def run(path):
        if loader == "load":
            return load(path)
        if loader == "load_checkpoint":
            return load_checkpoint(path)
        model = _bn_residual(np.float32)
        if loader == "load_weights":
            return load_weights(model, path)
        return restore_checkpoint(path, model)

    return run


@pytest.mark.parametrize(
    "loader", ["load", "load_weights", "load_checkpoint", "restore_checkpoint"]
)
@pytest.mark.parametrize("edit, messages", BUFFER_EDITS)
def test_a_file_with_missing_or_extra_buffers_is_refused(
    edit, messages, loader, tmp_path
):
    path = _buffer_checkpoint(tmp_path)
    _load_into_fresh(loader)(path)  # the file as written loads
    _rewrite_tensors(path, edit)
    with pytest.raises(ModelFileError) as info:
        _load_into_fresh(loader)(path)
    assert str(info.value).startswith(str(path))
    for message in messages:
        assert message in str(info.value)


def test_a_refused_file_leaves_the_buffers_unchanged(tmp_path):
    path = _buffer_checkpoint(tmp_path)
    _rewrite_tensors(path, lambda a: a.pop("buffers.2.running_var"))
    model = _bn_residual(np.float32)
    model[2].running_mean = np.full(6, 7.0, np.float32)
    with pytest.raises(ModelFileError, match="running_var: missing"):
        restore_checkpoint(path, model)
    assert np.array_equal(model[2].running_mean, np.full(6, 7.0))


def _spec_mixed(dtype):  # the example: the first layer keeps its float64
    return gn.Sequential(
        gn.Dense(4, 3, dtype=np.float64), gn.Tanh(), gn.Dense(3, 2), seed=0
    )


def _mixed(dtype):
    """Layers given the other dtype than the model's, at several depths."""
    other = np.float64 if dtype == np.float32 else np.float32
    block = gn.Sequential(gn.BatchNorm1D(6, dtype=other), gn.Dense(6, 6), gn.Tanh())
    return gn.Sequential(
        gn.Dense(4, 6, dtype=other), gn.Tanh(), gn.Residual(block),
        gn.LayerNorm(6, dtype=other), gn.Dense(6, 3),
        seed=0, dtype=dtype,
    )  # fmt: skip


MIXED_MODELS = [
    pytest.param(_spec_mixed, np.float32, ["0"], id="issue-example"),
    pytest.param(_mixed, np.float32, ["0", "2.block.0", "3"], id="float32-model"),
    pytest.param(_mixed, np.float64, ["0", "2.block.0", "3"], id="float64-model"),
]


def _dtypes(model) -> list[tuple[str, np.dtype]]:
    """(name, dtype) of every parameter and buffer."""
    return [(n, p.data.dtype) for n, p in model.named_parameters()] + [
        ("buffers." + n, a.dtype) for n, a in model.named_buffers()
    ]


def _entries_with_dtype(entry, layer, prefix="") -> dict[str, str]:
    """{layer path: dtype} of the architecture entries below `entry` that carry a
    dtype; `layer` is the model's layer the entry describes."""
    found = {}
    pairs = zip(entry.get("layers", []), layer.children(), strict=True)
    for child_entry, (name, child) in pairs:
        if "dtype" in child_entry:
            found[prefix + name] = child_entry["dtype"]
        found.update(_entries_with_dtype(child_entry, child, f"{prefix}{name}."))
    return found


@pytest.mark.parametrize("make, dtype, own", MIXED_MODELS)
def test_mixed_dtype_model_round_trips_each_dtype(make, dtype, own, tmp_path):
    model, X = _trained(_perturb(make(dtype)), (4,))
    kinds = {d for _, d in _dtypes(model)}
    assert kinds == {np.dtype(np.float32), np.dtype(np.float64)}  # truly mixed
    path = tmp_path / "mixed.safetensors"
    model.save(path)
    from safetensors import safe_open

    with safe_open(path, "np") as fh:
        arch = json.loads(fh.metadata()["glassnet"])["architecture"]
    other = "float64" if np.dtype(dtype) == np.float32 else "float32"
    # a "dtype" entry only where a layer was given its own
    assert _entries_with_dtype(arch, model) == dict.fromkeys(own, other)
    for loaded in (load(path), load_weights(make(dtype), path)):
        assert loaded.dtype == model.dtype
        assert _dtypes(loaded) == _dtypes(model)
        for (name, p), (_, q) in zip(
            model.named_parameters(), loaded.named_parameters(), strict=True
        ):
            assert np.array_equal(p.data, q.data), name
        assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("make, dtype, own", MIXED_MODELS)
def test_mixed_dtype_checkpoint_restores_each_dtype(make, dtype, own, tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "run.ckpt"
    model, adam = make(dtype), gn.Adam(lr=0.01)
    y = y % model.predict(X[:1]).shape[1]  # the example has two outputs
    backup = gn.BackupAndRestore(path, delete_on_end=False)
    model.fit(X, y, optimizer=adam, epochs=2, verbose=0, callbacks=[backup])
    saved = load_checkpoint(path)
    restored, optimizer = make(dtype), gn.Adam(lr=0.01)
    assert restore_checkpoint(path, restored, optimizer) == 1
    for other, opt in ((saved.model, saved.optimizer), (restored, optimizer)):
        assert _dtypes(other) == _dtypes(model)
        for (name, p), (_, q) in zip(
            model.named_parameters(), other.named_parameters(), strict=True
        ):
            assert np.array_equal(p.data, q.data), name
        assert np.array_equal(other.predict(X), model.predict(X))
        assert opt.t == adam.t
        for key, arr in adam.state_arrays().items():
            assert arr.dtype == np.float64  # the wider of the two
            assert np.array_equal(arr, opt.state_arrays()[key]), key
    all32 = gn.Sequential(  # the same layers, all in the model's float32
        gn.Dense(4, 3), gn.Tanh(), gn.Dense(3, 2), seed=0
    )
    if make is _spec_mixed:
        with pytest.raises(ModelFileError, match="configurations differ"):
            restore_checkpoint(path, all32, gn.Adam(lr=0.01))


def test_save_refuses_a_layer_whose_tensors_mix_dtypes(tmp_path):
    model = gn.Sequential(gn.BatchNorm1D(3), seed=0)
    model[0].running_var = model[0].running_var.astype(np.float64)
    with pytest.raises(gn.ConfigError, match=r"layer 0 \(BatchNorm1D\) holds tensors"):
        model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_parameter_names_cannot_take_the_buffers_prefix(tmp_path):
    class Holder(gn.Layer):
        def __init__(self):
            self.buffers = gn.Dense(2, 2)

        def forward(self, x):
            return self.buffers.forward(x)

        def backward(self, dout):
            return self.buffers.backward(dout)

    with pytest.raises(gn.ConfigError, match="'buffers'.* keep for buffers"):
        save_weights(Holder(), tmp_path / "w.safetensors")


def test_same_model_gives_same_bytes_in_another_process(tmp_path):
    here, there = tmp_path / "here.safetensors", tmp_path / "there.safetensors"
    save(_perturb(_mlp(np.float32)), here)
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        from test_serialization import _mlp, _perturb
        _perturb(_mlp(np.float32)).save({str(there)!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    assert here.read_bytes() == there.read_bytes()


def test_file_is_plain_safetensors_with_json_metadata(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    model = _perturb(_mlp(np.float64))
    model.save(tmp_path / "m.safetensors")
    arrays = load_file(tmp_path / "m.safetensors")
    assert set(arrays) == set(dict(model.named_parameters()))
    with safe_open(tmp_path / "m.safetensors", "np") as fh:
        meta = json.loads(fh.metadata()["glassnet"])
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["architecture"]["config"] == {"seed": 0, "dtype": "float64"}
    assert [e["class"] for e in meta["architecture"]["layers"]] == [
        type(layer).__name__ for layer in model
    ]


def test_nested_architecture_is_a_tree_of_entries(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "m.safetensors"
    model = _nested(np.float32)
    model.save(path)
    with safe_open(path, "np") as fh:
        arch = json.loads(fh.metadata()["glassnet"])["architecture"]
        names = set(fh.keys())
    assert names == {name for name, _ in model.named_parameters()}
    assert "3.1.2.block.weight" in names  # Concat -> Sequential -> Residual -> Dense
    concat = arch["layers"][3]
    assert concat["class"] == "Concat" and concat["config"] == {"axis": 1}
    assert [e["class"] for e in concat["layers"]] == ["Dense", "Sequential"]
    residual = concat["layers"][1]["layers"][2]
    assert residual == {
        "class": "Residual",
        "config": {},
        "layers": [
            {"class": "Dense", "config": {"in_features": 3, "out_features": 3}}
        ],
    }  # fmt: skip
    assert arch["layers"][2] == {
        "class": "Sequential",
        "config": {"seed": 3, "dtype": "float32"},
        "layers": [
            {"class": "Dense", "config": {"in_features": 6, "out_features": 5}},
            {"class": "ReLU", "config": {}},
        ],
    }  # fmt: skip


def test_save_refuses_a_custom_layer_but_save_weights_works(tmp_path):
    class Double(gn.Layer):
        def forward(self, x):
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    model = gn.Sequential(gn.Dense(3, 2), Double(), seed=0)
    with pytest.raises(gn.ConfigError, match=r"layer 1 \(Double\) is not a glassnet"):
        model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    _perturb(model)
    save_weights(model, tmp_path / "w.safetensors")
    other = gn.Sequential(gn.Dense(3, 2), Double(), seed=5)
    load_weights(other, tmp_path / "w.safetensors")
    X = np.ones((2, 3))
    assert np.array_equal(other.predict(X), model.predict(X))
    with pytest.raises(ModelFileError, match="weights only"):
        load(tmp_path / "w.safetensors")


def test_load_weights_lists_every_mismatch(tmp_path):
    path = tmp_path / "m.safetensors"
    gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0).save(path)
    other = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), gn.Dense(3, 1))
    with pytest.raises(ModelFileError) as info:
        load_weights(other, path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "0.weight: file shape (4, 5) float32, model shape (4, 6) float32" in message
    assert "0.bias: file shape (5,) float32, model shape (6,) float32" in message
    assert "2.weight: file shape (5, 3) float32, model shape (6, 3) float32" in message
    assert "3.weight: missing from the file" in message


def test_custom_composite_layer_round_trips_every_tensor(tmp_path):
    """A user's layer holding two Dense and a 0-d parameter: save refuses it (no
    architecture entry), save_weights writes all of its tensors, load_weights
    restores every one."""
    model = _perturb(gn.Sequential(gn.Dense(3, 3), UserBlock(), seed=0, dtype=float))
    with pytest.raises(gn.ConfigError, match=r"layer 1 \(UserBlock\) is not a"):
        model.save(tmp_path / "m.safetensors")
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    names = ["0.weight", "0.bias", "1.scale", "1.first.weight", "1.first.bias"]
    names += ["1.second.weight", "1.second.bias"]
    assert [n for n, _ in model.named_parameters()] == names
    from safetensors.numpy import load_file

    assert sorted(load_file(path)) == sorted(names)
    other = gn.Sequential(gn.Dense(3, 3), UserBlock(seed=9), seed=5, dtype=float)
    load_weights(other, path)
    for (name, p), (_, q) in zip(
        model.named_parameters(), other.named_parameters(), strict=True
    ):
        assert np.array_equal(p.data, q.data), name
    assert other[1].scale.data.shape == ()
    X = np.random.default_rng(0).normal(size=(4, 3))
    assert np.array_equal(other.predict(X), model.predict(X))


def test_load_weights_refuses_missing_and_extra_tensors(tmp_path):
    small = gn.Sequential(UserBlock(), seed=0, dtype=float)
    large = gn.Sequential(UserBlock(), gn.Dense(3, 2), seed=0, dtype=float)
    save_weights(small, tmp_path / "small.safetensors")
    save_weights(large, tmp_path / "large.safetensors")
    before = [p.data.copy() for p in large.parameters()]
    with pytest.raises(ModelFileError) as info:
        load_weights(large, tmp_path / "small.safetensors")
    message = str(info.value)
    assert message.startswith(str(tmp_path / "small.safetensors"))
    assert "1.weight: missing from the file" in message
    assert "1.bias: missing from the file" in message
    after = large.parameters()
    assert all(np.array_equal(a, p.data) for a, p in zip(before, after, strict=True))
    with pytest.raises(ModelFileError) as info:
        load_weights(small, tmp_path / "large.safetensors")
    assert "1.weight: in the file (shape (3, 2)) but not in the model" in str(
        info.value
    )
    assert "1.bias: in the file (shape (2,)) but not in the model" in str(info.value)


def test_format_version_1_file_of_a_flat_model_still_loads(tmp_path):
    header, data = _valid_parts()
    assert json.loads(header["__metadata__"]["glassnet"])["format_version"] == 1
    path = tmp_path / "v1.safetensors"
    path.write_bytes(_file_bytes(header, data))
    model = load(path)
    path2 = tmp_path / "v2.safetensors"
    model.save(path2)  # written again as format version 2, same tensors
    again = load(path2)
    assert [n for n, _ in again.named_parameters()] == ["0.weight", "0.bias"]
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)


def test_hand_written_nested_file_loads_and_names_its_tensors(tmp_path):
    header, data = _valid_parts()
    inner = {"class": "Sequential", "config": {}, "layers": [_DENSE_2_3]}
    nested = _with_meta(format_version=2, layers=[inner])
    for name in ("0.weight", "0.bias"):  # flat names: the tree says 0.0.*
        nested[name] = header[name]
    path = tmp_path / "m.safetensors"
    path.write_bytes(_file_bytes(nested, data))
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert "0.0.weight: missing from the file" in str(info.value)
    assert "0.weight: in the file (shape (2, 3)) but not in the model" in str(
        info.value
    )
    nested["0.0.weight"], nested["0.0.bias"] = (
        nested.pop("0.weight"),
        nested.pop("0.bias"),
    )
    path.write_bytes(_file_bytes(nested, data))
    model = load(path)
    assert np.array_equal(model[0][0].weight.data, np.arange(6).reshape(2, 3))
    assert np.array_equal(model[0][0].bias.data, [0.5, -1.0, 2.0])


# -- crafted files -------------------------------------------------------------


def _file_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file assembled by hand: length, JSON header, data."""
    text = json.dumps(header).encode()
    n = len(text) if length is None else length
    return _n(n) + text + data


def _valid_parts():
    """(header dict, data bytes) of a real small model's file, to tamper with."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    arch = {
        "class": "Sequential",
        "config": {"seed": 0, "dtype": "float32"},
        "layers": [{"class": "Dense", "config": {"in_features": 2, "out_features": 3}}],
    }
    meta = {"format_version": 1, "architecture": arch}
    header = {
        "__metadata__": {"glassnet": json.dumps(meta)},
        "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
        "0.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [12, 36]},
    }
    return header, b.tobytes() + w.tobytes()


def _with_meta(**changes) -> dict:
    header, _ = _valid_parts()
    meta = json.loads(header["__metadata__"]["glassnet"])
    for key, value in changes.items():
        if key == "layers":
            meta["architecture"]["layers"] = value
        else:
            meta[key] = value
    header["__metadata__"] = {"glassnet": json.dumps(meta)}
    return header


def test_hand_written_valid_file_loads(tmp_path):
    header, data = _valid_parts()
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_file_bytes(header, data))
    model = load(path)
    assert np.array_equal(model[0].weight.data, np.arange(6).reshape(2, 3))
    assert np.array_equal(model[0].bias.data, [0.5, -1.0, 2.0])


def _tensor(name, **fields):
    header, data = _valid_parts()
    header[name] = {**header[name], **fields}
    return header, data


_DENSE_2_3 = {"class": "Dense", "config": {"in_features": 2, "out_features": 3}}


def _v2(layers) -> bytes:
    """A format-version-2 file of _valid_parts' tensors with these layers."""
    return _file_bytes(_with_meta(format_version=2, layers=layers), _valid_parts()[1])


def _deep(depth: int) -> dict:
    entry = _DENSE_2_3
    for _ in range(depth):
        entry = {"class": "Sequential", "config": {}, "layers": [entry]}
    return entry


HUGE = 2**40
_n = struct.Struct("<Q").pack  # the 8-byte header length
CRAFTED = [
    pytest.param(b"", "too short", id="empty"),
    pytest.param(b"\x10\x00\x00", "too short", id="three-bytes"),
    pytest.param(_n(2**63) + b"{}", "over the limit", id="huge-header"),
    pytest.param(_n(64 * 2**20) + b"{}", "over the limit", id="64MB-header"),
    pytest.param(_n(500) + b'{"a":1}', "truncated", id="header-past-end"),
    pytest.param(_n(6) + b'{"a":}', "not valid JSON", id="bad-json"),
    pytest.param(_n(9) + b'{"a":NaN}', "not valid JSON", id="json-nan"),
    pytest.param(_n(4) + b"{\xff\xfe}", "not UTF-8", id="not-utf8"),
    pytest.param(_file_bytes([1, 2]), "not a JSON object", id="json-list"),
    pytest.param(_n(17) + b'{"a": 1, "a": 2} ', "duplicate key", id="duplicate-key"),
    pytest.param(
        _n(20000) + b"{" + b'{"a":' * 3333 + b"1" + b"}" * 3334,
        "nested too deeply|not valid JSON",
        id="deep-nesting",
    ),
    pytest.param(
        _file_bytes(*_valid_parts())[:-5], "truncated|only", id="truncated-data"
    ),
    pytest.param(
        _file_bytes(*_valid_parts()) + b"\0" * 8, "trailing bytes", id="trailing"
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", data_offsets=[8, 32])),
        "overlap",
        id="overlapping-offsets",
    ),
    pytest.param(
        _file_bytes(
            *_tensor(
                "0.weight", shape=[HUGE, HUGE], data_offsets=[12, 12 + 4 * HUGE**2]
            )
        ),
        "data_offsets .* are not integers from 0 to 2",
        id="huge-declared-shape",
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", shape=[HUGE, HUGE])),
        "needs",
        id="shape-offsets-disagree",
    ),
    pytest.param(
        _file_bytes(
            _tensor("0.weight", data_offsets=[16, 40])[0], _valid_parts()[1] + b"\0" * 4
        ),
        "byte ranges overlap or leave a gap",
        id="gap-between-tensors",
    ),  # fmt: skip
    pytest.param(
        _file_bytes(*_tensor("0.weight", data_offsets="12-36")),
        "is not a valid safetensors file",
        id="offsets-not-a-list",
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", shape=[2, 4])),
        "shape and dtype need another number of bytes",
        id="shape-too-large-for-its-bytes",
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", dtype="I64")), "F32 or F64", id="int-dtype"
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", dtype="O")), "F32 or F64", id="object-dtype"
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", shape=[2, -3])), "integers >= 0", id="neg"
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", shape=[True, 6])), ">= 0", id="bool-dim"
    ),
    pytest.param(
        _file_bytes(*_tensor("0.weight", pickle="x")), "exactly", id="extra-field"
    ),
    pytest.param(
        _file_bytes(
            {"0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
            b"\0" * 4,
        ),
        "without glassnet metadata",
        id="no-metadata",
    ),
    pytest.param(
        _file_bytes(_with_meta(format_version=3), _valid_parts()[1]),
        "format version 3 by a newer glassnet",
        id="newer-format",
    ),
    pytest.param(
        _file_bytes(_with_meta(format_version="1"), _valid_parts()[1]),
        "format_version",
        id="version-string",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(layers=[{"class": "os.system", "config": {}}]), _valid_parts()[1]
        ),
        "unknown type 'os.system'",
        id="layer-os-system",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(layers=[{"class": "Layer", "config": {}}]), _valid_parts()[1]
        ),
        "unknown type 'Layer'",
        id="abstract-base",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[
                    {
                        "class": "Dense",
                        "config": {
                            "in_features": 2,
                            "out_features": 3,
                            "rng": {"__class__": "x"},
                        },
                    }
                ]
            ),
            _valid_parts()[1],
        ),
        "unknown config keys",
        id="config-rng",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[
                    {
                        "class": "Dense",
                        "config": {"in_features": 10**6, "out_features": 10**6},
                    }
                ]
            ),
            _valid_parts()[1],
        ),
        "would have 1000001000000 parameters",
        id="huge-architecture",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[
                    {
                        "class": "Dense",
                        "config": {"in_features": 3000, "out_features": 3000},
                    }
                ]
            ),
            _valid_parts()[1],
        ),
        "would have 9003000 parameters",
        id="large-architecture",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[{"class": "MaxPool2D", "config": {"kernel_size": 10**9}}]
            ),
            _valid_parts()[1],
        ),
        "far more memory",
        id="unsized-layer",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[
                    {
                        "class": "Conv2D",
                        "config": {
                            "in_channels": 1,
                            "out_channels": 1,
                            "kernel_size": 2**16,
                        },
                    }
                ]
            ),
            _valid_parts()[1],
        ),
        "would have",
        id="huge-conv-kernel",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(
                layers=[
                    {"class": "Dense", "config": {"in_features": 2, "out_features": 4}}
                ]
            ),
            _valid_parts()[1],
        ),
        r"0.weight: file shape \(2, 3\) float32, model shape \(2, 4\) float32",
        id="shape-mismatch",
    ),
    pytest.param(
        _file_bytes(
            _tensor("0.bias")[0]
            | {"extra": {"dtype": "F32", "shape": [0], "data_offsets": [36, 36]}},
            _valid_parts()[1],
        ),
        "extra: in the file",
        id="unexpected-tensor",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(layers=[{"class": "Residual", "config": {}, "layers": []}]),
            _valid_parts()[1],
        ),
        r"layer 0 must be \{class: name, config: \{...\}\}",
        id="v1-with-nested-layers",
    ),
    pytest.param(
        _v2([{"class": "Residual", "config": {}, "layers": [_DENSE_2_3] * 2}]),
        r"layer 0 \(Residual\): config \{\} with 2 layers inside is invalid",
        id="residual-two-blocks",
    ),
    pytest.param(
        _v2([{"class": "Concat", "config": {}, "layers": []}]),
        "expected at least one branch",
        id="concat-no-branch",
    ),
    pytest.param(_v2([_deep(40)]), "nested more than 32 deep", id="deep-tree"),
    pytest.param(
        _v2(
            [
                {
                    "class": "Residual",
                    "config": {},
                    "layers": [
                        {
                            "class": "Dense",
                            "config": {"in_features": 10**6, "out_features": 10**6},
                        }
                    ],
                }
            ]
        ),
        r"layer 0.block \(Dense\) would have 1000001000000 parameters",
        id="huge-layer-inside-residual",
    ),
    pytest.param(
        _v2(
            [
                {
                    "class": "Sequential",
                    "config": {},
                    "layers": [
                        {
                            "class": "Dense",
                            "config": {"in_features": 1000, "out_features": 1000},
                        }
                    ]
                    * 3,
                }
            ]
        ),
        r"layers up to 0.1 \(Dense\) would have more parameters than the 9 values",
        id="many-layers-each-under-the-slack",
    ),
    pytest.param(
        _v2([{"class": "Concat", "config": {"axis": 1, "rng": {}}, "layers": []}]),
        r"layer 0 \(Concat\): unknown config keys \['rng'\]",
        id="container-config-rng",
    ),
    pytest.param(
        _v2([{"class": "Dense", "config": {"in_features": 2}, "layers": []}]),
        r"layer 0 \(Dense\) does not hold other layers, but the file lists 0",
        id="layers-on-a-leaf",
    ),
    pytest.param(
        _v2([{"class": "Sequential", "config": {"dtype": "float16"}, "layers": []}]),
        "dtype must be float32 or float64",
        id="nested-dtype",
    ),
    pytest.param(
        _v2([{**_DENSE_2_3, "dtype": "float16"}]),
        "layer 0: dtype must be float32 or float64, got 'float16'",
        id="layer-dtype-float16",
    ),
    pytest.param(
        _v2([{**_DENSE_2_3, "dtype": 64}]),
        "layer 0: dtype must be float32 or float64, got 64",
        id="layer-dtype-number",
    ),
    pytest.param(
        _v2([{**_DENSE_2_3, "dtype": None}]),
        "layer 0: dtype must be float32 or float64, got None",
        id="layer-dtype-null",
    ),
    pytest.param(
        _v2([{**_DENSE_2_3, "dtype": "float64"}]),
        r"0.weight: file shape \(2, 3\) float32, model shape \(2, 3\) float64",
        id="layer-dtype-other-than-its-tensors",
    ),
    pytest.param(
        _v2([_DENSE_2_3, {"class": "Tanh", "config": {}, "dtype": "float64"}]),
        r"layer 1 \(Tanh\) has dtype 'float64' beside its config, but it takes no",
        id="layer-dtype-on-an-activation",
    ),
    pytest.param(
        _v2([{"class": "Sequential", "config": {}, "layers": [], "dtype": "float64"}]),
        r"layer 0 \(Sequential\) has dtype .* but its config holds its dtype",
        id="layer-dtype-beside-a-sequential-config",
    ),
    pytest.param(
        _v2(
            [
                {"class": "Residual", "config": {}, "layers": [_DENSE_2_3]}
                | {"dtype": "float32"}
            ]
        ),
        r"layer 0 \(Residual\) has dtype 'float32' beside its config, but it takes",
        id="layer-dtype-on-a-container",
    ),
    pytest.param(
        _v2([{**_DENSE_2_3, "config": {**_DENSE_2_3["config"], "dtype": "float64"}}]),
        r"layer 0 \(Dense\): unknown config keys \['dtype'\]",
        id="layer-dtype-inside-its-config",
    ),
    pytest.param(
        _file_bytes(
            _with_meta(layers=[{**_DENSE_2_3, "dtype": "float64"}]), _valid_parts()[1]
        ),
        r"layer 0 must be \{class: name, config: \{...\}\}",
        id="v1-with-a-layer-dtype",
    ),
    pytest.param(
        _v2(
            [
                {
                    "class": "Sequential",
                    "config": {},
                    "layers": [{"class": "os.system", "config": {}}],
                }
            ]
        ),
        r"layer 0.0 has unknown type 'os.system'",
        id="unknown-type-deep",
    ),  # fmt: skip
]


@pytest.mark.parametrize("content, message", CRAFTED)
def test_crafted_files_raise_one_error_naming_the_file(content, message, tmp_path):
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=message) as info:
            load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, ValueError) and isinstance(
        info.value, gn.GlassnetError
    )
    assert peak < 2 * 2**20, f"{peak} bytes were allocated for a crafted file"


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=4))
    with pytest.raises(ModelFileError, match="looks like a pickle file"):
        load(path)
    with pytest.raises(ModelFileError):
        load_weights(gn.Sequential(gn.Dense(2, 3)), path)
    assert not marker.exists()


def test_pickle_in_the_metadata_is_only_text(tmp_path):
    marker = tmp_path / "pwned"
    header, data = _valid_parts()
    payload = pickle.dumps(_Payload(str(marker)), protocol=0).decode("latin-1")
    header["__metadata__"]["glassnet"] = payload
    path = tmp_path / "m.safetensors"
    path.write_bytes(_file_bytes(header, data))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(path)
    assert not marker.exists()


def test_class_names_in_a_file_are_never_imported(tmp_path):
    header, data = _valid_parts()
    names = ["antigravity", "this", "glassnet_payload_module.Evil", "builtins.eval"]
    for name in names:
        header = _with_meta(layers=[{"class": name, "config": {}}])
        path = tmp_path / "m.safetensors"
        path.write_bytes(_file_bytes(header, data))
        before = set(sys.modules)
        with pytest.raises(ModelFileError, match="unknown type"):
            load(path)
        assert set(sys.modules) == before


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="is a directory"):
        load(tmp_path)


def test_nonfinite_weights_are_refused_unless_allowed(tmp_path):
    model = gn.Sequential(gn.Dense(2, 3), seed=0)
    model[0].weight.data[0, 1] = np.nan
    model[0].bias.data[2] = np.inf
    path = tmp_path / "m.safetensors"
    model.save(path)
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert "'0.weight' holds 1 NaN and 0 inf values" in str(info.value)
    assert "'0.bias' holds 0 NaN and 1 inf values" in str(info.value)
    loaded = load(path, allow_nonfinite=True)
    assert np.isnan(loaded[0].weight.data[0, 1]) and np.isinf(loaded[0].bias.data[2])


def test_dtype_of_the_architecture_is_enforced(tmp_path):
    header, data = _valid_parts()
    meta = json.loads(header["__metadata__"]["glassnet"])
    meta["architecture"]["config"]["dtype"] = "float64"
    header["__metadata__"]["glassnet"] = json.dumps(meta)
    path = tmp_path / "m.safetensors"
    path.write_bytes(_file_bytes(header, data))
    with pytest.raises(
        ModelFileError, match="file shape .* float32, model shape .* float64"
    ):
        load(path)


# -- atomic writes ---------------------------------------------------------------

_KILL_CHILD = """
import os, sys, time
import numpy as np
import glassnet as gn
import glassnet.io._atomic as atomic

path, where = sys.argv[1], sys.argv[2]
model = gn.Sequential(gn.Dense(256, 256), gn.Tanh(), gn.Dense(256, 8), seed=0)
model.save(path)                                   # the file that must survive
for p in model.parameters():
    p.data = p.data + 1.0

def stall():
    print("in-save", flush=True)
    time.sleep(60)

if where == "before-rename":                       # all bytes written, not renamed
    real_fsync = atomic.os.fsync
    def fsync(fd):
        real_fsync(fd)
        stall()
    atomic.os.fsync = fsync
else:                                              # half the bytes written
    real_fdopen = atomic.os.fdopen
    class Half:
        def __init__(self, fh):
            self.fh = fh
        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            stall()
        def __getattr__(self, name):
            return getattr(self.fh, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)
    atomic.os.fdopen = lambda *a, **k: Half(real_fdopen(*a, **k))
model.save(path)
"""


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_killed_save_leaves_the_previous_file_intact(where, tmp_path):
    path = tmp_path / "model.safetensors"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(path), where],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "in-save"
        leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert leftovers, "the new file should be in progress beside the old one"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    reference = gn.Sequential(gn.Dense(256, 256), gn.Tanh(), gn.Dense(256, 8), seed=0)
    survivor = load(path)
    for p, q in zip(reference.parameters(), survivor.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)


def test_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    import glassnet.io._atomic as atomic

    path = tmp_path / "model.safetensors"
    model = gn.Sequential(gn.Dense(3, 2), seed=0)
    model.save(path)
    before = path.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _perturb(model).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_new_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "m.safetensors"
    gn.Sequential(gn.Dense(3, 2), seed=0).save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


# -- checkpoints ------------------------------------------------------------------

_RESUME_SCRIPT = """
import os, signal, sys
import glassnet as gn
from glassnet.train.checkpoints import save_checkpoint

backup, final, mode, variant = sys.argv[1:5]
X, y = gn.datasets.make_spirals(120, classes=3, seed=4)
layers = [gn.Dense(2, 16), gn.ReLU(), gn.Dropout(0.2), gn.Dense(16, 3)]
if variant == "batchnorm":  # running statistics (buffers), one nested, float64 too
    block = gn.Sequential(gn.BatchNorm1D(16, momentum=0.3), gn.Dense(16, 16))
    layers[2:2] = [gn.Residual(block), gn.BatchNorm1D(16, dtype="float64")]
model = gn.Sequential(*layers, seed=7)
if variant in ("adam", "batchnorm"):
    optimizer, fit_seed = gn.Adam(lr=0.01), None
else:  # fit(seed=...) shuffles with its own generator, saved as fit_rng
    optimizer, fit_seed = gn.SGD(lr=0.05, momentum=0.9), 11

class Crash(gn.Callback):
    def on_epoch_end(self, epoch, logs):
        if mode == "crash" and epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup of any kind

callbacks = [gn.BackupAndRestore(backup), Crash()]
history = model.fit(X, y, optimizer=optimizer, epochs=8, batch_size=16, verbose=0,
                    validation_split=0.25, callbacks=callbacks, seed=fit_seed)
save_checkpoint(final, model, optimizer, epoch=7, history=history, rng=callbacks[0].rng)
"""


@pytest.mark.parametrize("variant", ["adam", "sgd", "batchnorm"])
def test_resume_in_a_new_process_is_bitwise_equal(variant, tmp_path):
    def run(mode, backup, final):
        return subprocess.run(
            [
                sys.executable,
                "-c",
                _RESUME_SCRIPT,
                str(tmp_path / backup),
                str(tmp_path / final),
                mode,
                variant,
            ],
            capture_output=True,
            text=True,
        )

    plain = run("run", "plain-backup.ckpt", "plain.ckpt")  # never interrupted
    assert plain.returncode == 0, plain.stderr
    crashed = run("crash", "backup.ckpt", "unused.ckpt")
    assert crashed.returncode == -signal.SIGKILL
    assert not (tmp_path / "unused.ckpt").exists()
    backup = load_checkpoint(tmp_path / "backup.ckpt")
    assert backup.epoch == 4 and len(backup.history) == 4  # epochs completed
    resumed = run("run", "backup.ckpt", "resumed.ckpt")  # a new process
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "backup.ckpt").exists()  # removed after a normal end

    a = load_checkpoint(tmp_path / "plain.ckpt")
    b = load_checkpoint(tmp_path / "resumed.ckpt")
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)
    buffers_a, buffers_b = a.model.named_buffers(), b.model.named_buffers()
    assert len(buffers_a) == (4 if variant == "batchnorm" else 0)
    for (name, u), (name_b, v) in zip(buffers_a, buffers_b, strict=True):
        assert name == name_b and u.dtype == v.dtype
        assert np.array_equal(u, v), name
    if buffers_a:  # trained: the statistics moved away from their start
        assert not np.array_equal(buffers_a[0][1], np.zeros(16))
        assert buffers_a[-1][1].dtype == np.float64
    assert a.optimizer.t == b.optimizer.t == 8 * 6  # 90 training rows, batches of 16
    assert a.optimizer.state_arrays().keys() == b.optimizer.state_arrays().keys()
    for name, arr in a.optimizer.state_arrays().items():
        assert np.array_equal(arr, b.optimizer.state_arrays()[name]), name
    assert a.rng_state == b.rng_state and a.fit_rng_state == b.fit_rng_state
    assert (a.fit_rng_state is None) == (variant != "sgd")
    assert a.history.epoch == b.history.epoch == list(range(8))
    assert a.history.history == b.history.history
    order = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]  # as fit logs them
    assert list(a.history.history) == list(b.history.history) == order
    assert (tmp_path / "plain.ckpt").read_bytes() == (
        tmp_path / "resumed.ckpt"
    ).read_bytes()


def test_restore_refuses_another_architecture_or_optimizer(tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "b.ckpt"
    model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
    model.fit(
        X,
        y,
        optimizer=gn.Adam(),
        epochs=2,
        verbose=0,
        callbacks=[gn.BackupAndRestore(path, delete_on_end=False)],
    )
    other = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), seed=0)
    with pytest.raises(ModelFileError, match="different model architecture"):
        restore_checkpoint(path, other, gn.Adam())
    same = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
    before = [p.data.copy() for p in same.parameters()]
    with pytest.raises(ModelFileError, match="optimizer Adam, not SGD"):
        restore_checkpoint(path, same, gn.SGD())
    after = same.parameters()
    assert all(np.array_equal(a, p.data) for a, p in zip(before, after, strict=True))
    assert restore_checkpoint(path, same, gn.Adam()) == 1


def _block_model(seed, block=UserBlock):
    layers = [gn.Dense(4, 3), block(seed=seed), gn.Dense(3, 3)]
    return gn.Sequential(*layers, seed=seed, dtype=np.float64)


class OtherBlock(UserBlock):
    """The same tensors as UserBlock, another layer."""


def test_checkpoint_of_a_model_with_custom_composite_layers(tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "run.ckpt"
    model, adam = _block_model(0), gn.Adam(lr=0.01)
    backup = gn.BackupAndRestore(path, delete_on_end=False)
    model.fit(X, y, optimizer=adam, epochs=2, verbose=0, callbacks=[backup])
    with pytest.raises(ModelFileError, match="call restore_checkpoint"):
        load_checkpoint(path)
    other, optimizer = _block_model(1), gn.Adam(lr=0.01)
    assert restore_checkpoint(path, other, optimizer) == 1
    names = [n for n, _ in other.named_parameters()]
    assert "1.first.weight" in names and "1.scale" in names
    for (name, p), (_, q) in zip(
        model.named_parameters(), other.named_parameters(), strict=True
    ):
        assert np.array_equal(p.data, q.data), name
    assert optimizer.t == adam.t
    for key, arr in adam.state_arrays().items():
        assert np.array_equal(arr, optimizer.state_arrays()[key]), key


def test_checkpoint_structure_is_checked_before_the_first_epoch(tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "run.ckpt"
    backup = gn.BackupAndRestore(path, delete_on_end=False)
    _block_model(0).fit(X, y, epochs=1, verbose=0, callbacks=[backup])
    wrong = _block_model(0, block=OtherBlock)  # same tensor names and shapes
    before = [p.data.copy() for p in wrong.parameters()]
    with pytest.raises(
        ModelFileError,
        match=r"different model architecture than the one training: the file has "
        r"layer 1 \(UserBlock\) where the model has layer 1 \(OtherBlock\)",
    ):
        wrong.fit(X, y, epochs=3, verbose=0, callbacks=[backup])
    after = wrong.parameters()
    assert all(np.array_equal(a, p.data) for a, p in zip(before, after, strict=True))


@pytest.mark.parametrize("make", [_residual_mlp, _nested])
def test_checkpoint_of_a_nested_model_loads_bitwise(make, tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "run.ckpt"
    model, sgd = make(np.float64), gn.SGD(lr=0.05, momentum=0.9)
    backup = gn.BackupAndRestore(path, delete_on_end=False)
    model.fit(X, y, optimizer=sgd, epochs=2, verbose=0, callbacks=[backup])
    saved = load_checkpoint(path)
    assert [(n, type(a)) for n, a in saved.model.named_layers()] == [
        (n, type(b)) for n, b in model.named_layers()
    ]
    for (name, p), (_, q) in zip(
        model.named_parameters(), saved.model.named_parameters(), strict=True
    ):
        assert np.array_equal(p.data, q.data), name
    assert np.array_equal(saved.model.predict(X), model.predict(X))
    for key, arr in sgd.state_arrays().items():
        assert np.array_equal(arr, saved.optimizer.state_arrays()[key]), key


def _rewrite_metadata(path, change) -> None:
    """Rewrite a file's glassnet metadata with change(meta), tensors untouched."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    from safetensors.numpy import save as safetensors_save

    with safe_open(path, "np") as fh:
        meta = json.loads(fh.metadata()["glassnet"])
    change(meta)
    blob = safetensors_save(load_file(path), metadata={"glassnet": json.dumps(meta)})
    path.write_bytes(blob)


def _as_version_1(meta) -> None:
    meta["format_version"] = 1
    del meta["training"]["structure"]


def test_format_version_1_checkpoint_still_loads_and_restores(tmp_path):
    X, y = gn.datasets.load_iris()
    path = tmp_path / "run.ckpt"
    model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
    backup = gn.BackupAndRestore(path, delete_on_end=False)
    model.fit(X, y, optimizer=gn.Adam(), epochs=2, verbose=0, callbacks=[backup])
    _rewrite_metadata(path, _as_version_1)
    saved = load_checkpoint(path)
    assert saved.epoch == 2  # epochs completed: the file's last finished epoch + 1
    assert np.array_equal(saved.model.predict(X), model.predict(X))
    same = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=3)
    assert restore_checkpoint(path, same, gn.Adam()) == 1
    other = gn.Sequential(gn.Dense(4, 5), gn.ReLU(), gn.Dense(5, 3), seed=3)
    with pytest.raises(ModelFileError, match="different model architecture"):
        restore_checkpoint(path, other, gn.Adam())
    _rewrite_metadata(path, lambda meta: meta.update(format_version=2))
    with pytest.raises(ModelFileError, match="training state must have keys"):
        load_checkpoint(path)  # version 2 checkpoints carry their structure


def test_model_checkpoint_of_a_custom_model_writes_its_weights(tmp_path):
    X, y = gn.datasets.load_iris()
    model = _block_model(0)
    callbacks = [
        gn.ModelCheckpoint(tmp_path / "full.ckpt"),
        gn.ModelCheckpoint(tmp_path / "w.safetensors", include_training_state=False),
    ]
    model.fit(X, y, epochs=2, verbose=0, callbacks=callbacks)
    for name in ("full.ckpt", "w.safetensors"):
        other = load_weights(_block_model(1), tmp_path / name)
        assert np.array_equal(other.predict(X), model.predict(X)), name


def test_model_checkpoint_saves_the_best_epoch(tmp_path):
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
    best = gn.ModelCheckpoint(tmp_path / "best.safetensors", save_best_only=True)
    every = gn.ModelCheckpoint(
        str(tmp_path / "m-{epoch:02d}-{loss:.3f}.safetensors"),
        include_training_state=False,
    )
    history = model.fit(
        X,
        y,
        optimizer=gn.SGD(lr=0.05),
        epochs=5,
        verbose=0,
        validation_split=0.2,
        callbacks=[best, every],
    )
    assert best.best == min(history["val_loss"])
    saved = load_checkpoint(tmp_path / "best.safetensors")
    assert saved.epoch == int(np.argmin(history["val_loss"])) + 1  # epochs completed
    as_model = load(tmp_path / "best.safetensors")  # a checkpoint is a model file too
    assert np.array_equal(as_model.predict(X), saved.model.predict(X))
    names = sorted(p.name for p in tmp_path.glob("m-*.safetensors"))
    expected = [
        f"m-{e + 1:02d}-{v:.3f}.safetensors" for e, v in enumerate(history["loss"])
    ]
    assert names == sorted(expected)
    last = load(tmp_path / expected[-1])
    assert np.array_equal(last.predict(X), model.predict(X))


@pytest.mark.parametrize("template", ["{epoch.__class__}.st", "{nope}.st", "{0}.st"])
def test_model_checkpoint_file_names_accept_plain_fields_only(template, tmp_path):
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    callback = gn.ModelCheckpoint(str(tmp_path / template))
    with pytest.raises(gn.ConfigError, match="ModelCheckpoint"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[callback])


def test_history_csv_round_trip(tmp_path):
    from glassnet.train.history_csv import read_history_csv, write_history_csv

    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 3), seed=0)
    history = model.fit(X, y, epochs=3, verbose=0, validation_split=0.2)
    write_history_csv(history, tmp_path / "h.csv")
    back = read_history_csv(tmp_path / "h.csv")
    assert back.epoch == history.epoch and back.history == history.history
