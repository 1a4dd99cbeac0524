"""BatchNorm1D, BatchNorm2D and LayerNorm: normalise, then scale and shift.

Both families compute xhat = (x - mean) / sqrt(var + eps) and out = weight * xhat +
bias; they differ in which numbers share a mean. BatchNorm averages each feature
(channel) over the batch (and positions), so an example's output depends on the
other examples in its batch, and evaluation needs running statistics instead.
LayerNorm averages each example over its own last axes, the same in training and
evaluation. The backward of either is the same compact formula; docs/
batchnorm_backward.md derives it step by step.
"""

import numbers

import numpy as np

from glassnet._kernels import column_sums, row_sums
from glassnet._validation import (
    check_float_dtype,
    check_positive_float,
    check_positive_int,
)
from glassnet.errors import ConfigError, ShapeError
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter


def _check_momentum(owner: str, momentum) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise ConfigError(f"{owner}: momentum must be a number, got {momentum!r}")
    if not 0.0 <= momentum <= 1.0:
        raise ConfigError(
            f"{owner}: momentum must be in [0, 1], got {momentum!r} (PyTorch's "
            "convention: the weight of the new batch, 0.1 by default; Keras's "
            "momentum=0.99 is PyTorch's 0.01)"
        )
    return float(momentum)


def _sums(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """a summed over `axes` (every axis but the channel axis 1): (C,).
    For (N, D) it is ones(N) @ a, 2-4x faster than a.sum(axis=0) (_kernels);
    the same BLAS trick, ones(D) on the right, gives LayerNorm's row sums."""
    if a.ndim == 2:
        return column_sums(a)
    return a.sum(axis=axes)


class _BatchNorm(Layer):
    """What BatchNorm1D and BatchNorm2D share; they differ only in the input
    ranks they accept (`_RANKS`)."""

    _RANKS: dict[int, str] = {}  # input ndim -> the layout, for messages

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype=None,
    ) -> None:
        name = type(self).__name__
        check_positive_int(name, num_features=num_features)
        check_positive_float(name, eps=eps)
        self.num_features, self.eps = num_features, float(eps)
        self.momentum = _check_momentum(name, momentum)
        self._dtype_given = dtype is not None
        dt = check_float_dtype(name, np.float32 if dtype is None else dtype)
        C = num_features
        self.weight = Parameter(np.ones(C, dt), "weight")  # gamma, the scale
        self.bias = Parameter(np.zeros(C, dt), "bias")  # beta, the shift
        self.running_mean = np.zeros(C, dt)  # buffers: updated by forward in
        self.running_var = np.ones(C, dt)  # training mode, used in evaluation

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """Take the model's dtype unless one was given; nothing is random."""
        if self._dtype_given:
            return
        super().initialize(rng, dtype)  # moves weight and bias
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, *positions) -> out, the same shape.

        Training (self.training True), per channel c, over its m = N * positions
        values:
            mean_c = sum(x) / m,  var_c = sum((x - mean_c)^2) / m   (biased)
            xhat = (x - mean_c) / sqrt(var_c + eps)
            out = weight_c * xhat + bias_c
            running_mean = (1 - momentum) running_mean + momentum mean_c
            running_var  = (1 - momentum) running_var  + momentum var_c m / (m - 1)
        (the running variance takes the unbiased estimate, as PyTorch does).
        Evaluation: the same with running_mean and running_var in place of the
        batch's statistics, which are not updated.
        """
        self._check_input(x.shape)
        C = self.num_features
        axes = (0, *range(2, x.ndim))  # every axis but the channel axis
        shape = (C,) + (1,) * (x.ndim - 2)  # (C,), (C, 1) or (C, 1, 1): broadcasts
        if self.training:
            m = x.size // C
            if m < 2:
                raise ShapeError(
                    f"{self._name()}: a training batch needs more than 1 value per "
                    f"channel to have a variance, got input {_batch(x.shape)}; use "
                    "a batch of 2 or more (or set training False to use the "
                    "running statistics)"
                )
            mean = _sums(x, axes) / m  # (C,)
            xc = x - mean.reshape(shape)  # (N, C, ...)
            var = _sums(xc * xc, axes) / m  # (C,), biased
            inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
            self._update_running(mean, var, m)
        else:
            xc = x - self.running_mean.reshape(shape)  # (N, C, ...)
            inv_std = 1.0 / np.sqrt(self.running_var + self.eps)  # (C,)
        xhat = xc
        xhat *= inv_std.reshape(shape)  # (N, C, ...), in place of xc
        self._cache = (self.training, xhat, inv_std, axes, shape)
        out = xhat * self.weight.data.reshape(shape)
        out += self.bias.data.reshape(shape)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, *positions) -> dx, the same shape. Per channel, with m values:

            dbias   = sum(dout)                      (C,)
            dweight = sum(dout * xhat)               (C,)
        Training: mean and var depend on every x of the channel, so
            dxhat = dout * weight
            dx = inv_std / m * (m dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
               = weight inv_std / m * (m dout - dbias - xhat * dweight)
        (derived in docs/batchnorm_backward.md). Evaluation: the statistics are
        constants and the layer is the affine map x -> weight inv_std x + ...:
            dx = dout * weight * inv_std
        """
        training, xhat, inv_std, axes, shape = self._cached()
        dbias = _sums(dout, axes)  # (C,)
        dweight = _sums(dout * xhat, axes)  # (C,)
        self.bias.grad = dbias
        self.weight.grad = dweight
        scale = self.weight.data * inv_std  # (C,): weight / sqrt(var + eps)
        if not training:
            return dout * scale.reshape(shape)  # (N, C, ...)
        m = dout.size // self.num_features
        dx = xhat * dweight.reshape(shape)  # (N, C, ...)
        dx += dbias.reshape(shape)
        np.subtract(m * dout, dx, out=dx)  # m dout - dbias - xhat dweight
        dx *= (scale / m).reshape(shape)
        return dx

    def own_buffers(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def _update_running(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        keep, new = 1.0 - self.momentum, self.momentum
        self.running_mean = keep * self.running_mean + new * mean
        unbiased = var * (m / (m - 1))  # (C,)
        self.running_var = keep * self.running_var + new * unbiased
        dt = self.weight.data.dtype  # buffers keep the parameters' dtype
        self.running_mean = self.running_mean.astype(dt, copy=False)
        self.running_var = self.running_var.astype(dt, copy=False)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_input((None, *input_shape))
        return tuple(input_shape)

    def get_config(self) -> dict:
        """Constructor arguments, dtype aside (a model file records a dtype beside
        the config when it differs from the model's)."""
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
        }

    def _name(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def _check_input(self, shape: tuple) -> None:
        C = self.num_features
        layouts = " or ".join(
            layout.replace("C", str(C)) for layout in self._RANKS.values()
        )
        if len(shape) not in self._RANKS:
            hint = ""
            if len(shape) == 4:
                hint = "; use BatchNorm2D for images (N, C, H, W)"
            elif len(shape) in (2, 3):
                hint = "; use BatchNorm1D for (N, D) or (N, C, L)"
            raise ShapeError(
                f"{self._name()} expects input of shape {layouts}, got "
                f"{_batch(shape)}{hint}"
            )
        if shape[1] != C:
            raise ShapeError(
                f"{self._name()} expects input of shape {layouts}, got "
                f"{_batch(shape)}; num_features should be {shape[1]} (the size of "
                "axis 1, the features or channels)"
            )


class BatchNorm1D(_BatchNorm):
    """Batch normalization of vectors (N, D) or sequences (N, C, L).

    Shapes: x (N, D) -> out (N, D), each of the D features normalised over the
    batch; x (N, C, L) -> out (N, C, L), each channel over the N * L values of
    the batch and positions. weight (gamma, starts at 1) and bias (beta, starts at
    0) have shape (num_features,).

    In training mode (inside fit, or with layer.training = True) the batch's own
    mean and biased variance normalise it, and running_mean / running_var follow
    them with PyTorch's momentum convention (momentum is the weight of the new
    batch, default 0.1; the running variance takes the unbiased estimate). In
    evaluation mode (predict, evaluate, validation) the running statistics are
    used, so one example's output does not depend on its batch. The running
    statistics are buffers (own_buffers), not parameters: no gradient, no
    optimizer. dtype: float32 unless given or set by the model.
    """

    _RANKS = {2: "(N, C)", 3: "(N, C, L)"}


class BatchNorm2D(_BatchNorm):
    """Batch normalization of images: x (N, C, H, W) -> out (N, C, H, W).

    Each channel is normalised over its N * H * W values; weight (gamma, starts at
    1) and bias (beta, starts at 0) have shape (C,) = (num_features,). Training
    and evaluation modes, momentum and the running statistics as in BatchNorm1D.
    """

    _RANKS = {4: "(N, C, H, W)"}


class LayerNorm(Layer):
    """Layer normalization over the last axes of each example.

    Shapes: x (..., *normalized_shape) -> out, the same shape. With
    normalized_shape = (D,) and x (N, T, D), each of the N * T vectors of D
    values is normalised on its own:
        mean = sum(x) / D,  var = sum((x - mean)^2) / D   (biased)
        xhat = (x - mean) / sqrt(var + eps)
        out = weight * xhat + bias     weight, bias: normalized_shape, init 1 and 0
    normalized_shape may hold several axes, e.g. (C, H, W) for images (N, C, H, W):
    then D is their product. No batch statistics and no running state: training
    and evaluation compute the same thing. elementwise_affine=False drops weight
    and bias (out = xhat).

    Backward, per normalised vector of D values (R = the number of such vectors):
        dweight = sum over the R vectors of dout * xhat      normalized_shape
        dbias   = sum over the R vectors of dout             normalized_shape
        dxhat = dout * weight
        dx = inv_std / D * (D dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    the BatchNorm formula with the sums taken along the vector instead of the batch.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        dtype=None,
    ) -> None:
        if isinstance(normalized_shape, (list, tuple)):
            shape = tuple(normalized_shape)
        else:
            shape = (normalized_shape,)
        if not shape:
            raise ConfigError("LayerNorm: normalized_shape must name at least one axis")
        check_positive_int(
            "LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)}
        )
        check_positive_float("LayerNorm", eps=eps)
        if not isinstance(elementwise_affine, bool):
            raise ConfigError(
                "LayerNorm: elementwise_affine must be True or False, got "
                f"{elementwise_affine!r}"
            )
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = float(eps), elementwise_affine
        self._dtype_given = dtype is not None
        dt = check_float_dtype("LayerNorm", np.float32 if dtype is None else dtype)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dt), "weight")
            self.bias = Parameter(np.zeros(self.normalized_shape, dt), "bias")

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """Take the model's dtype unless one was given; nothing is random."""
        if not self._dtype_given:
            super().initialize(rng, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x.shape)
        D = int(np.prod(self.normalized_shape))
        rows = x.reshape(-1, D)  # (R, D): one normalised vector per row
        mean = row_sums(rows) / D  # (R,)
        xhat = rows - mean[:, None]  # (R, D), centred
        var = row_sums(xhat * xhat) / D  # (R,), biased
        inv_std = (1.0 / np.sqrt(var + self.eps))[:, None]  # (R, 1)
        xhat *= inv_std
        self._cache = (xhat, inv_std, x.shape)
        if not self.elementwise_affine:
            return xhat.reshape(x.shape)
        out = xhat * self.weight.data.reshape(D)  # (R, D)
        out += self.bias.data.reshape(D)
        return out.reshape(x.shape)  # (R, D) -> (..., *normalized_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xhat, inv_std, x_shape = self._cached()
        R, D = xhat.shape
        drows = dout.reshape(R, D)  # (..., *normalized_shape) -> (R, D)
        if not self.elementwise_affine:
            dx = xhat * row_sums(drows * xhat)[:, None]  # (R, D)
            dx += row_sums(drows)[:, None]  # (R, 1) broadcast
            np.subtract(D * drows, dx, out=dx)  # D dxhat - sum - xhat sum(...)
            dx *= inv_std / D
            return dx.reshape(x_shape)
        ns, w = self.normalized_shape, self.weight.data.reshape(D)
        both = drows * xhat  # (R, D)
        self.weight.grad = column_sums(both).reshape(ns)  # (D,) -> ns
        self.bias.grad = column_sums(drows).reshape(ns)
        # with dxhat = drows * w, the row sums are matrix-vector products:
        # sum(dxhat * xhat) = (drows * xhat) @ w, sum(dxhat) = drows @ w
        along = (both @ w)[:, None]  # (R, 1): sum(dxhat * xhat)
        total = (drows @ w)[:, None]  # (R, 1): sum(dxhat)
        dx = drows * (D * w)  # (R, D): D dxhat
        dx -= total
        np.multiply(xhat, along, out=both)
        dx -= both  # D dxhat - sum(dxhat) - xhat sum(dxhat * xhat)
        dx *= inv_std / D
        return dx.reshape(x_shape)  # (R, D) -> x's shape

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_input((None, *input_shape))
        return tuple(input_shape)

    def get_config(self) -> dict:
        """Constructor arguments, dtype aside (a model file records a dtype beside
        the config when it differs from the model's)."""
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
        }

    def _check_input(self, shape: tuple) -> None:
        k, ns = len(self.normalized_shape), self.normalized_shape
        if len(shape) <= k or tuple(shape[-k:]) != ns:
            trailing = ", ".join(str(n) for n in ns)
            msg = (
                f"LayerNorm({list(ns) if k > 1 else ns[0]}) expects input of shape "
                f"(N, ..., {trailing}), got {_batch(shape)}"
            )
            if len(shape) > 1 and k == 1:
                msg += f"; normalized_shape should be {shape[-1]} (the last axis)"
            elif len(shape) > k:
                msg += (
                    f"; normalized_shape should be the last {k} axes, "
                    f"{tuple(shape[-k:])}"
                )
            raise ShapeError(msg)


def _batch(shape) -> str:
    """(4, 5) -> "(N, 5)" for a batch shape; (4,) -> "(N,)"."""
    rest = tuple(shape)[1:]
    return "(N, " + ", ".join(str(s) for s in rest) + ")" if rest else "(N,)"
