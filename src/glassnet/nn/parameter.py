"""Parameter: a trainable array and the gradient of the loss with respect to it."""

import numpy as np

from glassnet.errors import ShapeError


class Parameter:
    """A trainable array and its gradient, kept side by side.

    `data` and `grad` always have the same shape and dtype. Reading gives the
    array; assigning binds the new array (after np.asarray), as for any attribute:

        p.grad = x.T @ dout        # p.grad is now that array
        p.data = p.data * 0.5      # so is p.data; its grad follows a dtype change

    A gradient is cast to the data's dtype; an array of another shape raises
    ShapeError naming the parameter (with a hint for the classic mistakes).
    Optimizers update `p.data` in place; backward replaces or fills `p.grad`.

    A parameter that comes back from pickle or a copy owns writable arrays, even
    when the arrays it was sent with were read-only (Ray) or borrowed from a
    buffer (pickle protocol 5 out of band, as dask sends them).
    """

    # data and grad are plain slots, read at attribute speed (layers read them
    # every step); __setattr__ checks what is assigned to them.
    __slots__ = ("data", "grad", "name")

    def __init__(self, data: np.ndarray, name: str) -> None:
        data = np.array(data, copy=True)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "grad", np.zeros_like(data))
        self.name = name

    def __setattr__(self, attr: str, value) -> None:
        if attr == "data":
            value = np.asarray(value)
            self._check_shape(value, "data")
            if value.dtype != self.grad.dtype:  # grad follows: same dtype, always
                object.__setattr__(self, "grad", self.grad.astype(value.dtype))
        elif attr == "grad":
            value = np.asarray(value, dtype=self.data.dtype)
            self._check_shape(value, "grad")
        object.__setattr__(self, attr, value)

    def _check_shape(self, value: np.ndarray, what: str) -> None:
        expected = self.data.shape
        if value.shape != expected:
            raise ShapeError(
                f"parameter {self.name!r}: {what} must have shape {expected}, "
                f"got {value.shape}" + shape_hint(value.shape, expected)
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def __getstate__(self) -> dict:
        return {"data": self.data, "grad": self.grad, "name": self.name}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "data", _owned(state["data"]))
        object.__setattr__(self, "grad", _owned(state["grad"]))
        object.__setattr__(self, "name", state["name"])

    def __repr__(self) -> str:
        shape, dtype = self.data.shape, self.data.dtype
        return f"Parameter({self.name!r}, shape={shape}, dtype={dtype})"


def _owned(a) -> np.ndarray:
    """a itself if it is a writable array owning its memory, else a copy.

    Unpickled arrays may be read-only (Ray) or views of the pickle's buffers
    (protocol 5 out of band, as dask sends them, possibly the sender's memory).
    """
    a = np.asarray(a)
    if a.flags.owndata and a.flags.writeable:
        return a
    return a.copy()


def shape_hint(got: tuple, expected: tuple) -> str:
    """Why a gradient of shape `got` cannot be the gradient of a `expected` tensor."""
    got, expected = tuple(got), tuple(expected)
    if len(got) == 2 and got == expected[::-1]:
        return (
            "; it is the transpose: for out = x @ W the gradient is x.T @ dout, "
            "which has W's shape"
        )
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return (
            f"; one row per example was kept: a tensor broadcast over the batch sums "
            f"its gradient over axis 0 (dout.sum(axis=0) has shape {expected})"
        )
    if len(got) == 2 and len(expected) == 1 and expected[0] in got:
        axis = got.index(expected[0])
        return f"; sum over axis {1 - axis}, the batch, to get shape {expected}"
    return ""
