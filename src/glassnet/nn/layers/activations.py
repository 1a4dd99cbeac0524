"""Elementwise activations and Softmax, and the ACTIVATIONS registry.

ReLU's family (ReLU, LeakyReLU), the squashing functions (Sigmoid, Tanh), the
smooth activations of modern networks (GELU, SiLU/Swish, ELU, Softplus) and
Softmax; each is also known by name (ACTIVATIONS), so Sequential(..., "gelu")
and from_sizes(..., activations=["gelu"]) build it.

An elementwise activation's Jacobian is diagonal, so backward is a Hadamard
(elementwise) product dout * f'(x), never a matrix product. Softmax mixes the
features of a row, so its backward applies a full K x K Jacobian per row.
"""

import numpy as np

from glassnet._kernels import constant, sigmoid, softmax
from glassnet._special import erfc, erfc_abs_float32
from glassnet._validation import check_in_range, check_positive_float
from glassnet.errors import ConfigError, ShapeError
from glassnet.nn.layers.base import Layer


class Identity(Layer):
    """out = x. Shapes: any -> same."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = True
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self._cached()
        return dout

    def output_shape(self, input_shape):
        return tuple(input_shape)


class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)); backward: dout * out * (1 - out). Shapes: any -> same.

    Computed as 0.5 * (1 + tanh(x / 2)), which is exact and overflow-free for
    any finite x (sigmoid(1000) is exactly 1.0, sigmoid(-1000) exactly 0.0).
    The derivative uses the output, not x: s'(x) = s(x) * (1 - s(x)).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = sigmoid(x)
        self._cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        out = self._cache
        if out is None:
            self._cached()  # raises CallOrderError: backward before forward
        # elementwise: the Jacobian is diagonal. s - s*s rather than s * (1 - s):
        # NumPy takes a Python scalar operand slower than a second array.
        local = np.multiply(out, out)
        np.subtract(out, local, local)  # s (1 - s); out by position: 0.1 us less
        np.multiply(local, dout, local)
        return local

    def output_shape(self, input_shape):
        return tuple(input_shape)


class Tanh(Layer):
    """out = tanh(x); backward: dout * (1 - out**2). Shapes: any -> same."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x)
        self._cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        out = self._cached()
        local = np.multiply(out, out)
        # 1 - tanh(x)^2, written in place; the 1 as a 0-d array of out's dtype
        np.subtract(constant(1.0, out.dtype), local, out=local)
        local *= dout
        return local

    def output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(Layer):
    """out = max(x, 0); backward: dout where x > 0, else 0. Shapes: any -> same.

    At x == 0 exactly the derivative is taken as 0 (as PyTorch does).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0.0)
        self._cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        out = self._cached()
        # times the 0/1 mask: 4x faster than np.where(out > 0, dout, 0) at 128 x 256
        return dout * (out > 0.0)

    def output_shape(self, input_shape):
        return tuple(input_shape)


class LeakyReLU(Layer):
    """out = x if x > 0 else negative_slope * x; backward scales dout the same way.

    Shapes: any -> same. negative_slope defaults to 0.01, as in PyTorch.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        check_in_range("LeakyReLU", "negative_slope", negative_slope, 0.0, 1.0)
        self.negative_slope = float(negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        positive = x > 0.0
        self._cache = positive
        return np.where(positive, x, self.negative_slope * x).astype(
            x.dtype, copy=False
        )

    def backward(self, dout: np.ndarray) -> np.ndarray:
        positive = self._cached()
        return np.where(positive, dout, self.negative_slope * dout).astype(
            dout.dtype, copy=False
        )

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"negative_slope": self.negative_slope}


class Softmax(Layer):
    """Row-wise softmax: s = exp(x) / exp(x).sum(axis=1). Shapes: (N, K) -> (N, K).

    Each row has its own K x K Jacobian J = diag(s) - s s^T, so the batch's
    Jacobian is block-diagonal. Backward never builds it: for one row,
        J @ g = s * g - s * (s . g) = s * (g - sum(g * s)),
    which for the whole batch is one broadcast over (N, K).
    With cross-entropy on top, the product collapses to (s - y) / N (see
    SoftmaxCrossEntropy, which fuses the two).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ShapeError(f"Softmax expects input of shape (N, K), got {x.shape}")
        out = softmax(x)
        self._cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        s = self._cached()
        dot = np.sum(dout * s, axis=1, keepdims=True)  # (N, 1): s . g per row
        return s * (dout - dot)  # (N, K): J @ g for every row at once

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ShapeError(
                f"Softmax expects input of shape (N, K), got (N, {input_shape})"
            )
        return tuple(input_shape)


# -- smooth activations of modern networks ---------------------------------------


def _logistic(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) with full relative accuracy for any x: from exp(-|x|),
    which cannot overflow. (Sigmoid's 0.5 * (1 + tanh(x / 2)) loses the tail:
    at x = -30 it gives 0 where the answer is 9.4e-14, and x * sigmoid(x) in SiLU
    would be 100 % wrong there.)"""
    e = np.exp(-np.abs(x))  # in (0, 1]
    out = np.where(x >= 0, 1.0, e).astype(e.dtype, copy=False)
    out /= 1.0 + e
    return out


class GELU(Layer):
    """Gaussian error linear unit: out = x * Phi(x). Shapes: any -> same.

    Phi is the standard normal CDF, Phi(x) = (1 + erf(x / sqrt(2))) / 2, and
    phi(x) = exp(-x^2 / 2) / sqrt(2 pi) its density.

    approximate="none" (exact, PyTorch's default):
        out = x Phi(x)
        d out / dx = Phi(x) + x phi(x)
    Phi is computed as erfc(-x / sqrt(2)) / 2 in float64 (glassnet._special, Cody's
    rational approximations; NumPy has no erf), which keeps its relative accuracy
    far into the negative tail, then cast to x's dtype. A float32 x takes a
    float32 erfc instead (erfc_abs_float32, relative error <= 2e-6 for |x| < 5.6,
    17x faster), which keeps that accuracy at float32's precision.

    approximate="tanh" (GPT-2, BERT), with u = sqrt(2 / pi) (x + 0.044715 x^3):
        out = x (1 + tanh(u)) / 2
        d out / dx = (1 + tanh(u)) / 2 + x (1 - tanh(u)^2) sqrt(2 / pi)
                     (1 + 3 * 0.044715 x^2) / 2
    The two differ by at most 4.7e-4 (near x = +-2.3 / 0.3; tests pin it).
    The Jacobian is diagonal: backward is dout * d out / dx.
    """

    _KAPPA = 0.044715
    _SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ConfigError(
                f'GELU: approximate must be "none" (exact, erf-based) or "tanh", '
                f"got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            inner = x * x
            inner *= self._KAPPA
            inner += 1.0
            inner *= x
            inner *= self._SQRT_2_OVER_PI  # u = sqrt(2/pi) (x + 0.044715 x^3)
            t = np.tanh(inner)
            self._cache = (x, t)
            half = 0.5 * x
            return half + half * t  # x (1 + tanh u) / 2
        if x.dtype == np.float32:  # speed: float32 all through (see docstring)
            tail = erfc_abs_float32(x * np.float32(np.sqrt(0.5)))
            tail *= np.float32(0.5)  # Phi(-|x|): Phi(x) where x < 0
            # Phi(x) = tail + [x >= 0] (1 - 2 tail), as arithmetic: np.where on
            # random signs costs 2 ms here, np.copysign 0.25 ms, this 0.2 ms
            # (signbit: -0.0 counts as negative, and Phi(0) = 0.5 either way)
            cdf = np.float32(1.0) - tail
            cdf -= tail
            cdf *= ~np.signbit(x)
            cdf += tail
        else:
            cdf = erfc(np.asarray(x, np.float64) * -np.sqrt(0.5))
            cdf *= 0.5  # Phi(x), float64
            cdf = cdf.astype(x.dtype, copy=False)
        self._cache = (x, cdf)
        return x * cdf

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x, saved = self._cached()
        if self.approximate == "tanh":
            t = saved
            du = x * x
            du *= 3.0 * self._KAPPA
            du += 1.0
            du *= self._SQRT_2_OVER_PI  # du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
            local = 1.0 - t * t
            local *= du
            local *= x
            local += 1.0 + t
            local *= 0.5  # (1 + t) / 2 + x (1 - t^2) du/dx / 2
            return dout * local
        pdf = x * x
        pdf *= -0.5
        np.exp(pdf, out=pdf)
        pdf *= 1.0 / np.sqrt(2.0 * np.pi)  # phi(x)
        pdf *= x
        pdf += saved  # Phi(x) + x phi(x)
        return dout * pdf

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"approximate": self.approximate}


class SiLU(Layer):
    """Sigmoid linear unit, also called Swish: out = x * s(x), s(x) = 1 / (1 + e^-x).

    Shapes: any -> same.
        d out / dx = s(x) + x s(x) (1 - s(x)) = s(x) (1 + x (1 - s(x)))
    The Jacobian is diagonal: backward is dout * d out / dx. s(x) comes from
    exp(-|x|), exact to the last bit in both tails.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        s = _logistic(x)
        self._cache = (x, s)
        return x * s

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x, s = self._cached()
        local = 1.0 - s
        local *= x
        local += 1.0
        local *= s  # s (1 + x (1 - s))
        local *= dout
        return local

    def output_shape(self, input_shape):
        return tuple(input_shape)


class ELU(Layer):
    """Exponential linear unit. Shapes: any -> same.

        out = x                    if x > 0
              alpha (e^x - 1)      otherwise
        d out / dx = 1             if x > 0
                     alpha e^x     otherwise (= out + alpha)

    alpha (default 1.0, as in PyTorch) is the value out approaches as x -> -inf.
    e^x - 1 is computed with expm1, exact near 0. At x = 0 the derivative is taken
    as alpha (PyTorch's choice); with alpha = 1 the function is C^1 there.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        check_positive_float("ELU", alpha=alpha)
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        positive = x > 0.0
        negative_part = np.expm1(np.minimum(x, 0.0))  # e^x - 1 for x <= 0; no overflow
        negative_part *= self.alpha
        self._cache = (positive, negative_part)
        return np.where(positive, x, negative_part).astype(x.dtype, copy=False)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        positive, negative_part = self._cached()
        local = negative_part + self.alpha  # alpha e^x = alpha (e^x - 1) + alpha
        local[positive] = 1.0
        local *= dout
        return local

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"alpha": self.alpha}


class Softplus(Layer):
    """A smooth ReLU: out = log(1 + exp(beta x)) / beta. Shapes: any -> same.

        d out / dx = s(beta x) = 1 / (1 + exp(-beta x))
    As in PyTorch, where beta x > threshold (default 20) the layer is linear,
    out = x and d out / dx = 1: there log(1 + e^(beta x)) equals beta x to
    within 2e-9 relative (float32 cannot tell them apart). Below, log(1 + e^z)
    is computed as max(z, 0) + log1p(e^-|z|), which never overflows.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        check_positive_float("Softplus", beta=beta, threshold=threshold)
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = x * self.beta
        linear = z > self.threshold
        soft = np.logaddexp(0.0, z)  # log(1 + e^z), stable for any z
        soft /= self.beta
        self._cache = (z, linear)
        return np.where(linear, x, soft).astype(x.dtype, copy=False)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        z, linear = self._cached()
        local = _logistic(z)
        local[linear] = 1.0
        local *= dout
        return local

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"beta": self.beta, "threshold": self.threshold}


ACTIVATIONS = {
    "identity": Identity,
    "linear": Identity,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "softmax": Softmax,
    "gelu": GELU,
    "silu": SiLU,
    "swish": SiLU,
    "elu": ELU,
    "softplus": Softplus,
}


def make_activation(name: str) -> Layer:
    """Build the activation layer called `name` (see ACTIVATIONS)."""
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ConfigError(
            f"unknown activation {name!r}; known activations: {known}"
            + _layer_hint(name)
        )
    return ACTIVATIONS[name.lower()]()


def _layer_hint(name) -> str:
    """A pointer for a name that is a layer with arguments, or no layer at all."""
    from glassnet.nn.layers.base import builtin_layers

    if not isinstance(name, str):
        return ""
    key = name.lower().replace("_", "")
    layers = [n for n in builtin_layers() if n.lower().startswith(key)]
    if layers:
        shown = " or ".join(f"gn.{n}(...)" for n in layers[:3])
        return f"; {shown} is a layer with arguments: pass an instance, not a name"
    return "; for a layer glassnet does not have, see docs/custom_layers.md"
