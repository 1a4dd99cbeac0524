"""PyTorch as the oracle for attention, to 1e-10 in float64: the function pair
against F.scaled_dot_product_attention, MultiHeadAttention against
torch.nn.MultiheadAttention (self, cross, causal, key padding; outputs, input
gradients, every parameter gradient), TransformerBlock against
torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu"), and ten
Adam steps of a small transformer classifier.

Conventions as in test_torch_oracle.py. MultiHeadAttention's state dict copies
as is; in a TransformerBlock, Dense weights are (in, out), the transpose of
torch's Linear.
"""

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: more threads only add waiting
F = torch.nn.functional

pytestmark = pytest.mark.torch

from torch_oracle_helpers import adam_steps_side_by_side, close, tensor  # noqa: E402


def randomised(layer, rng):
    for p in layer.parameters():
        p.data = rng.normal(0.0, 0.5, p.shape) + (1.0 if p.name == "weight" else 0)
    return layer


def padding(N: int, S: int) -> np.ndarray:
    """(N, S) True at padding: example n has its last n % S keys padded."""
    mask = np.zeros((N, S), dtype=bool)
    for n in range(N):
        if n % S:
            mask[n, S - n % S :] = True
    return mask


def torch_causal(T: int, S: int):
    """torch's attn_mask: True where attention is NOT allowed (above the diagonal)."""
    return torch.triu(torch.ones(T, S, dtype=torch.bool), diagonal=1)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)], ids=["2d", "batch", "heads"])
def test_scaled_dot_product_attention_matches_torch(lead, masked, rng):
    q = rng.normal(size=(*lead, 4, 3))
    k, v = rng.normal(size=(*lead, 5, 3)), rng.normal(size=(*lead, 5, 2))
    mask = None
    if masked:
        mask = rng.random((*lead, 4, 5)) < 0.5
        mask[..., 0] = True
    out, _ = gn.scaled_dot_product_attention(q, k, v, mask)
    dout = rng.normal(size=out.shape)
    _, weights = gn.scaled_dot_product_attention(q, k, v, mask)
    dq, dk, dv = gn.scaled_dot_product_attention_backward(dout, q, k, v, weights)

    tq, tk, tv = (tensor(a, grad=True) for a in (q, k, v))
    tmask = None if mask is None else torch.tensor(mask)  # True = may attend
    tout = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask)
    tout.backward(tensor(dout))
    close(out, tout, "forward")
    for name, mine, theirs in (("dq", dq, tq), ("dk", dk, tk), ("dv", dv, tv)):
        close(mine, theirs.grad, name)


@pytest.mark.parametrize("pad", [False, True], ids=["", "padding"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_multi_head_attention_matches_torch(batch, heads, cross, causal, pad, rng):
    E, T = 6, 4
    S = 3 if cross else T
    layer = gn.MultiHeadAttention(E, heads, causal=causal, rng=rng, dtype=np.float64)
    randomised(layer, rng)
    twin = torch.nn.MultiheadAttention(E, heads, batch_first=True).double()
    twin.load_state_dict({n: tensor(p.data) for n, p in layer.named_parameters()})
    query = rng.normal(size=(batch, T, E))
    context = rng.normal(size=(batch, S, E))
    mask = padding(batch, S) if pad else None

    out = layer.forward((query, context) if cross else query, key_padding_mask=mask)
    dout = rng.normal(size=out.shape)
    grads = layer.backward(dout)

    tq = tensor(query, grad=True)
    tc = tensor(context, grad=True) if cross else tq
    tout, _ = twin(
        tq, tc, tc,
        key_padding_mask=None if mask is None else torch.tensor(mask),
        attn_mask=torch_causal(T, S) if causal else None,
        need_weights=False,
    )  # fmt: skip
    tout.backward(tensor(dout))

    close(out, tout, "forward")
    if cross:
        close(grads[0], tq.grad, "query gradient")
        close(grads[1], tc.grad, "context gradient")
    else:
        close(grads, tq.grad, "input gradient")
    theirs = dict(twin.named_parameters())
    for n, p in layer.named_parameters():
        close(p.grad, theirs[n].grad, n)


def torch_value(name: str, layer_param, theirs: dict):
    """The torch tensor matching a glassnet parameter of a TransformerBlock."""
    t = theirs[name]
    return t.T if name.startswith("linear") and name.endswith("weight") else t


def block_pair(rng, causal: bool):
    layer = gn.TransformerBlock(
        embed_dim=6, num_heads=2, mlp_dim=10, causal=causal, rng=rng, dtype=np.float64
    )
    randomised(layer, rng)
    twin = torch.nn.TransformerEncoderLayer(
        6, 2, dim_feedforward=10, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=True,
    ).double()  # fmt: skip
    state = {}
    for n, p in layer.named_parameters():
        is_dense = n.startswith("linear") and n.endswith("weight")
        state[n] = tensor(p.data.T if is_dense else p.data)
    twin.load_state_dict(state)  # strict: the names are torch's
    return layer, twin


@pytest.mark.parametrize("pad", [False, True], ids=["", "padding"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("batch", [1, 3])
def test_transformer_block_matches_torch_encoder_layer(batch, causal, pad, rng):
    T = 4
    layer, twin = block_pair(rng, causal)
    x = rng.normal(size=(batch, T, 6))
    mask = padding(batch, T) if pad else None
    out = layer.forward(x, key_padding_mask=mask)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)

    tx = tensor(x, grad=True)
    tout = twin(
        tx,
        src_mask=torch_causal(T, T) if causal else None,
        src_key_padding_mask=None if mask is None else torch.tensor(mask),
    )
    tout.backward(tensor(dout))
    close(out, tout, "forward")
    close(dx, tx.grad, "input gradient")
    theirs = dict(twin.named_parameters())
    for n, p in layer.named_parameters():
        close(p.grad, torch_value(n, p, {k: v.grad for k, v in theirs.items()}), n)


class TorchTiny(torch.nn.Module):
    """Embedding + learned positions -> causal pre-norm block -> flatten -> Linear."""

    def __init__(self, block) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(6, 6)
        self.pos = torch.nn.Parameter(torch.zeros(5, 6, dtype=torch.float64))
        self.block = block
        self.head = torch.nn.Linear(30, 2)

    def forward(self, ids):
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.block(x, src_mask=torch_causal(ids.shape[1], ids.shape[1]))
        return self.head(x.flatten(1))


def test_ten_adam_steps_of_a_small_transformer_match_torch(rng):
    block, tblock = block_pair(rng, causal=True)
    model = gn.Sequential(
        gn.Embedding(6, 6), gn.PositionalEmbedding(5, 6), block, gn.Flatten(),
        gn.Dense(30, 2), seed=0, dtype=np.float64,
    )  # fmt: skip
    twin = TorchTiny(tblock).double()
    with torch.no_grad():
        twin.embed.weight.copy_(tensor(model[0].weight.data))
        twin.pos.copy_(tensor(model[1].weight.data))
        for n, p in block.named_parameters():  # Sequential redrew the block
            is_dense = n.startswith("linear") and n.endswith("weight")
            dict(tblock.named_parameters())[n].copy_(
                tensor(p.data.T if is_dense else p.data)
            )
        twin.head.weight.copy_(tensor(model[4].weight.data.T))
        twin.head.bias.copy_(tensor(model[4].bias.data))

    def key_bias_gradient_is_noise():
        # the key bias adds q . b_k to every score of a row, which the softmax
        # ignores: its true gradient is 0, and both libraries hold rounding noise
        key_bias = block.self_attn.in_proj_bias.grad[6:12]
        assert np.abs(key_bias).max() < 1e-12

    adam_steps_side_by_side(model, twin, 0.02, rng, key_bias_gradient_is_noise)
    theirs = dict(tblock.named_parameters())
    # Adam divides that noise by its own size: the key bias takes lr-sized steps
    # that differ between the libraries, so only the q and v biases are compared
    q_and_v = np.r_[0:6, 12:18]
    for n, p in block.named_parameters():
        mine, expected = p.data, torch_value(n, p, theirs).detach().numpy()
        if n == "self_attn.in_proj_bias":
            mine, expected = mine[q_and_v], expected[q_and_v]
        close(mine, expected, f"{n} after 10 steps")
    close(model[1].weight.data, twin.pos, "positions after 10 steps")
