"""Parameter: a trainable array and the gradient of the loss with respect to it."""

import numpy as np

from glassnet.errors import ShapeError


class Parameter:
    """A trainable array and its gradient, kept side by side.

    `data` and `grad` always have the same shape and dtype. Assigning to either
    copies into the existing array rather than rebinding it: an optimizer may have
    gathered every parameter of a model into one flat buffer (see `flatten`), and
    the parameter's arrays are views into it. So `p.grad = x.T @ dout` in a custom
    layer works as expected, and a shape mistake is reported by name.
    """

    __slots__ = ("_data", "_grad", "name")

    def __init__(self, data: np.ndarray, name: str) -> None:
        self._data = np.array(data, copy=True)
        self._grad = np.zeros_like(self._data)
        self.name = name

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value) -> None:
        self._assign(self._data, value, "data")

    @property
    def grad(self) -> np.ndarray:
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        self._assign(self._grad, value, "grad")

    def _assign(self, target: np.ndarray, value, what: str) -> None:
        value = np.asarray(value)
        if value.shape != target.shape:
            from glassnet.check.diagnosis import (
                shape_hint,  # why, for the classic mistakes
            )

            raise ShapeError(
                f"parameter {self.name!r}: {what} must have shape {target.shape}, "
                f"got {value.shape}" + shape_hint(value.shape, target.shape)
            )
        target[...] = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def size(self) -> int:
        return self._data.size

    def _rebind(self, data: np.ndarray, grad: np.ndarray) -> None:
        """Point this parameter at new arrays (used by flatten and dtype casts)."""
        self._data, self._grad = data, grad

    def __repr__(self) -> str:
        shape, dtype = self._data.shape, self._data.dtype
        return f"Parameter({self.name!r}, shape={shape}, dtype={dtype})"


def _flat_span(params: list[Parameter]) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (data, grad) 1-D views spanning params if they already lie back to back
    in one flat buffer, in order; otherwise None."""
    first = params[0]
    base, gbase = first._data.base, first._grad.base
    if base is None or gbase is None or base.ndim != 1 or gbase.ndim != 1:
        return None
    start = (
        first._data.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    )
    item = base.itemsize
    offset = start
    for p in params:
        if p._data.base is not base or p._grad.base is not gbase:
            return None
        if not (p._data.flags.c_contiguous and p._grad.flags.c_contiguous):
            return None
        here = (
            p._data.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        )
        ghere = (
            p._grad.__array_interface__["data"][0]
            - gbase.__array_interface__["data"][0]
        )
        if here != offset or ghere != offset:
            return None
        offset += p._data.nbytes
    lo, hi = start // item, offset // item
    return base[lo:hi], gbase[lo:hi]


def flatten(params: list[Parameter]) -> tuple[np.ndarray, np.ndarray]:
    """Gather params into one flat data buffer and one flat grad buffer.

    Returns (data, grad), 1-D arrays of length sum(p.size). Afterwards each
    parameter's data and grad are views into them, so an optimizer updates every
    parameter with a few whole-buffer operations instead of a loop of small ones
    (the loop's per-call overhead dominates at small sizes). Parameters that are
    already laid out this way are left alone, so two optimizers over the same model
    share buffers. All parameters must share one dtype.
    """
    params = list(params)
    if not params:
        empty = np.zeros(0)
        return empty, empty.copy()
    dtypes = {p._data.dtype for p in params}
    if len(dtypes) != 1:
        names = ", ".join(f"{p.name}:{p._data.dtype}" for p in params)
        raise ShapeError(
            f"parameters must share one dtype to be optimized, got {names}"
        )
    span = _flat_span(params)
    if span is not None:
        return span
    total = sum(p.size for p in params)
    dtype = dtypes.pop()
    data, grad = np.empty(total, dtype=dtype), np.empty(total, dtype=dtype)
    offset = 0
    for p in params:
        n = p.size
        data[offset : offset + n] = p._data.ravel()
        grad[offset : offset + n] = p._grad.ravel()
        p._rebind(
            data[offset : offset + n].reshape(p.shape),
            grad[offset : offset + n].reshape(p.shape),
        )
        offset += n
    return data, grad
