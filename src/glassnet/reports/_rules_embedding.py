"""The math of Embedding: a gather of weight rows, and its scatter-add backward.

The reference VJP writes the lookup as a product with one-hot rows (out[n, t] =
onehot(ids[n, t]) @ weight), so the weight gradient is a matrix product; the
layer computes it with np.add.at. Two independent routes to the same numbers.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step
from glassnet.reports._table import count_str, shape_str


def _s(a) -> str:
    return shape_str(np.shape(a))


def _embedding(t) -> Derivation:
    layer, ids, out = t.layer, t.x, t.out
    V, D = layer.num_embeddings, layer.embedding_dim
    n = ids.size
    distinct = len(np.unique(ids))
    return Derivation(
        Step(
            "forward",
            "out[..., :] = weight[ids[...]]",
            f"ids {_s(ids)} -> {_s(out)}: a gather of rows of weight ({V}, {D})",
        ),
        [
            Step(
                "dL/dweight",
                "zeros(V, D); np.add.at(dW, ids.ravel(), g.reshape(-1, D))",
                f"{count_str(n)} rows of g ({D},) scatter-added into ({V}, {D})",
            ),
            Step("dL/dx", "zeros(ids.shape)", f"{_s(ids)}: ids are not differentiable"),
        ],
        Jacobian(out.size, ids.size, "zero: ids are not differentiable", 0),
        [
            "each output row is a copy of one row of weight, so d out / d weight "
            f"is a selection ({count_str(out.size)} ones): backward sends each row "
            "of g back to the row of weight it came from",
            f"an id used k times gets the sum of its k rows of g: this batch uses "
            f"{distinct} distinct ids for {count_str(n)} lookups, and ids not used "
            "get a zero gradient; dW[ids] += g would keep only one of the repeats",
            "a small change of an id is not an id: there is no dL/d(ids), and "
            "backward returns zeros of the ids' shape (fit skips them for the "
            "first layer)",
        ],
    )


def _embedding_vjp(t) -> dict:
    layer, ids, g = t.layer, t.x, t.g
    V, D = layer.num_embeddings, layer.embedding_dim
    onehot = np.asarray(ids, np.intp).reshape(-1, 1) == np.arange(V)  # (N*T, V)
    dW = onehot.T.astype(g.dtype) @ g.reshape(-1, D)  # (V, N*T) @ (N*T, D)
    return {"x": np.zeros(ids.shape), "weight": dW}


RULES = {"Embedding": Rule(_embedding, _embedding_vjp)}
