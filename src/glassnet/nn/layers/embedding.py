"""Embedding: integer ids (tokens, categories) to learned vectors."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._validation import check_float_dtype, check_positive_int
from glassnet.errors import ArgumentTypeError, DataError, ShapeError
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter


class Embedding(Layer):
    """A lookup table: row i of weight is the vector of id i.

    Shapes: ids (N, T) -> out (N, T, D); ids (N,) -> out (N, D); in general
    ids (N, ...) -> (N, ..., D), where D = embedding_dim. weight is
    (num_embeddings, D), drawn from N(0, 1) as in PyTorch.

        out[n, t] = weight[ids[n, t]]

    The ids must be whole numbers in [0, num_embeddings). Integer arrays are
    expected; float arrays of whole numbers are accepted too, because a model
    (Sequential.predict, fit) converts its input to the model's float dtype
    (float32 holds every integer up to 2^24 = 16,777,216 exactly).

    Backward, with dout (N, T, D): each occurrence of an id adds its dout row to
    that id's row of the gradient, so an id seen k times in the batch gets the
    sum of k rows (np.add.at; a plain dW[ids] += dout would keep only one):
        dweight[i] = sum over (n, t) with ids[n, t] == i of dout[n, t]
    Ids that do not occur get a zero gradient.

    The ids are not differentiable (a small change of an id is not an id), so
    there is no dL/d(ids). PyTorch returns none; glassnet's contract is that
    backward returns an array of the input's shape, so it returns zeros
    (float, the ids' shape): the honest derivative of a function that is constant
    between whole numbers. Inside fit, as the first layer, backward_params
    stores the weight gradient and skips the zeros.

    rng: the generator that draws the weight; without one, a model draws it from
    its own seeded generator. dtype: float32 unless given or set by the model.
    """

    takes_ids = True  # integer input without a gradient: gradcheck never perturbs it

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        check_positive_int(
            "Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim
        )
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self._own_rng = rng is not None
        self._dtype_given = dtype is not None
        dt = check_float_dtype("Embedding", np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.zeros((num_embeddings, embedding_dim), dt), "weight")
        self._draw(rng if rng is not None else np.random.default_rng(), dt)

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """A model's generator and dtype, for what the layer was not given."""
        dt = self.weight.data.dtype if self._dtype_given else np.dtype(dtype)
        if not self._own_rng:
            self._draw(rng, dt)  # the model's seed reproduces the weights
        elif dt != self.weight.data.dtype:
            self.weight.data = self.weight.data.astype(dt)  # grad follows

    def _draw(self, rng: np.random.Generator, dtype) -> None:
        shape = (self.num_embeddings, self.embedding_dim)
        w = rng.standard_normal(shape).astype(dtype)  # N(0, 1), PyTorch's init
        self.weight.data, self.weight.grad = w, np.zeros_like(w)

    def forward(self, x: np.ndarray) -> np.ndarray:
        ids = self._checked_ids(x)  # integer array, x's shape
        self._cache = ids
        return self.weight.data[ids]  # (N, T) -> (N, T, D)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.backward_params(dout)
        ids = self._cached()
        return np.zeros(ids.shape, dtype=dout.dtype)  # ids are not differentiable

    def backward_params(self, dout: np.ndarray) -> None:
        ids = self._cached()
        D = self.embedding_dim
        grad = np.zeros_like(self.weight.data)  # (V, D): ids never seen get 0
        # unbuffered: a repeated id adds every one of its rows
        np.add.at(grad, ids.reshape(-1), dout.reshape(-1, D))  # (N*T, D) into (V, D)
        self.weight.grad = grad

    def parameters(self) -> list[Parameter]:
        return [self.weight]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*tuple(input_shape), self.embedding_dim)

    def get_config(self) -> dict:
        """Constructor arguments, rng and dtype aside (a model file records a dtype
        beside the config when it differs from the model's)."""
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
        }

    def _checked_ids(self, x) -> np.ndarray:
        """x as an integer array, or a glassnet error naming the first bad id."""
        V, D = self.num_embeddings, self.embedding_dim
        me = f"Embedding({V}, {D})"
        ids = np.asarray(x)
        if ids.ndim < 1:
            raise ShapeError(
                f"{me} expects a batch of ids (N,) or (N, T), got a scalar; "
                "wrap it as np.array([id])"
            )
        kind = ids.dtype.kind
        if kind not in "iuf":
            raise ArgumentTypeError(
                f"{me} expects integer ids, got an array of dtype {ids.dtype}"
            )
        if kind == "f":
            whole = np.isfinite(ids) & (ids == np.round(ids))
            if not whole.all():
                bad = tuple(int(i) for i in np.argwhere(~whole)[0])
                raise DataError(
                    f"{me}: ids must be whole numbers in [0, {V}), got {ids[bad]} at "
                    f"index {bad}; an Embedding takes token or category indices, not "
                    "features (for float features use Dense)"
                )
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            outside = (ids < 0) | (ids >= V)
            bad = tuple(int(i) for i in np.argwhere(outside)[0])
            value = ids[bad].item()
            value = int(value) if kind == "f" else value
            hint = ""
            if value == V:
                hint = (
                    f"; ids count from 0, so {V} ids are 0..{V - 1}: for ids "
                    f"1..{V} use Embedding({V + 1}, {D}) or subtract 1"
                )
            elif value >= V:
                hint = f"; num_embeddings must exceed the largest id ({ids.max()})"
            raise DataError(
                f"{me}: ids must lie in [0, {V}) (num_embeddings = {V}), got "
                f"{value} at index {bad}{hint}"
            )
        return ids.astype(np.intp, copy=False)
