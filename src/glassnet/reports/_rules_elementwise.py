"""The math of elementwise activations: a diagonal Jacobian, one derivative each.

out[i] = f(x[i]), so d out / d x is diagonal and backward is the Hadamard
product g * f'(x). Each derivative here is written from its textbook formula
(math.erf for GELU, a logistic computed through logaddexp), independently of
the layers' own code.
"""

import math

import numpy as np

from glassnet.reports._derivation import (
    Derivation,
    Jacobian,
    Rule,
    Step,
    matrix_text,
    rule_name,
)
from glassnet.reports._table import count_str, shape_str
from glassnet.reports._trace import LayerTrace


def _s(a) -> str:
    return shape_str(np.shape(a))


def _logistic(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) as exp(-log(1 + exp(-z))): no overflow for any z."""
    return np.exp(-np.logaddexp(0.0, -z))


_erf = np.vectorize(math.erf, otypes=[float])  # the C library's erf, per element


def _gelu(layer) -> tuple:
    if layer.approximate == "tanh":
        return (
            "out = x * (1 + tanh(u)) / 2, u = sqrt(2/pi) (x + 0.044715 x**3)",
            "g * ((1 + tanh(u)) / 2 + x (1 - tanh(u)**2) sqrt(2/pi) "
            "(1 + 3 * 0.044715 x**2) / 2)",
            _gelu_tanh_slope,
            'approximate="tanh" (GPT-2, BERT): within 4.7e-4 of the exact GELU',
        )
    return (
        "out = x * Phi(x), Phi(x) = (1 + erf(x / sqrt(2))) / 2",
        "g * (Phi(x) + x * phi(x)), phi(x) = exp(-x**2 / 2) / sqrt(2 pi)",
        lambda x, out, layer: (
            0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
            + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        ),
        "Phi is the standard normal CDF and phi its density; the product rule "
        "gives the two terms",
    )


def _gelu_tanh_slope(x, out, layer) -> np.ndarray:
    c = math.sqrt(2.0 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x**2)


def _elu(layer) -> tuple:
    a = layer.alpha
    return (
        f"out = where(x > 0, x, a * (exp(x) - 1)), a = {a:g}",
        "g * where(x > 0, 1, a * exp(x))",
        lambda x, out, layer: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
        "for x <= 0, a * exp(x) = out + a: backward reuses the output; at x = 0 "
        "the derivative is taken as a (PyTorch's choice)",
    )


def _softplus(layer) -> tuple:
    b, th = layer.beta, layer.threshold
    return (
        f"out = log(1 + exp(b x)) / b, or x where b x > {th:g}; b = {b:g}",
        f"g * where(b x > {th:g}, 1, sigmoid(b x))",
        lambda x, out, layer: np.where(b * x > th, 1.0, _logistic(b * x)),
        "the derivative of softplus is the logistic sigmoid; above the threshold "
        "the layer is linear (out = x, slope 1), as in PyTorch",
    )


# class name -> (forward, backward, local derivative from (x, out, layer), note), or
# a function of the layer that returns one (formulas that show its options)
_ELEMENTWISE = {
    "Identity": ("out = x", "g", lambda x, out, layer: np.ones_like(x), ""),
    "Sigmoid": (
        "out = 1 / (1 + exp(-x))",
        "g * out * (1 - out)",
        lambda x, out, layer: out * (1.0 - out),
        "the derivative is written with the output: s'(x) = s(x)(1 - s(x)); "
        "x * (1 - x) with the pre-activation x is a different, wrong number",
    ),
    "Tanh": (
        "out = tanh(x)",
        "g * (1 - out**2)",
        lambda x, out, layer: 1.0 - out**2,
        "tanh'(x) = 1 - tanh(x)**2, written with the output it is 1 - out**2",
    ),
    "ReLU": (
        "out = max(x, 0)",
        "g * (x > 0)",
        lambda x, out, layer: (x > 0).astype(x.dtype),
        "the derivative is 1 where x > 0 and 0 elsewhere (0 at x = 0 exactly)",
    ),
    "LeakyReLU": (
        "out = where(x > 0, x, a * x)",
        "g * where(x > 0, 1, a)",
        lambda x, out, layer: np.where(x > 0, 1.0, layer.negative_slope),
        "a = negative_slope",
    ),
    "Dropout": (
        "out = x * mask / (1 - rate) (training), x (predict)",
        "g * mask / (1 - rate)",
        lambda x, out, layer: _dropout_scale(layer, x),
        "the mask is drawn in forward and reused by backward; predict drops nothing",
    ),
    "SiLU": (
        "out = x * s(x), s(x) = 1 / (1 + exp(-x))",
        "g * s(x) * (1 + x * (1 - s(x)))",
        lambda x, out, layer: _logistic(x) * (1.0 + x * (1.0 - _logistic(x))),
        "SiLU is also called Swish; the product rule gives s + x s (1 - s)",
    ),
    # the formulas depend on the layer's options: built from the layer
    "GELU": _gelu,
    "ELU": _elu,
    "Softplus": _softplus,
}


def _dropout_scale(layer, x: np.ndarray) -> np.ndarray:
    """mask / (1 - rate) as drawn in the last forward (ones outside training)."""
    cached = layer._cache[0] if isinstance(layer._cache, tuple) else None
    return np.ones_like(x) if cached is None else cached


def _elementwise_spec(layer) -> tuple:
    spec = _ELEMENTWISE[rule_name(layer, _ELEMENTWISE)]
    return spec(layer) if callable(spec) else spec


def _elementwise(t: LayerTrace) -> Derivation:
    fwd, bwd, deriv, note = _elementwise_spec(t.layer)
    x, out = t.x, t.out
    size = x.size
    why = [
        f"out[i] depends on x[i] alone, so d out/d x is diagonal ({size} x {size}, "
        f"{size} nonzeros): applying it to g is the Hadamard product g * f'(.), "
        "elementwise, never a matrix product"
    ]
    if note:
        why.append(note)
    numbers = []
    d = deriv(x, out, t.layer)
    if d[0].size <= 8:
        numbers = [
            Step("f' of example 0", matrix_text(d[0].reshape(1, -1)), "diagonal")
        ]
    return Derivation(
        Step("forward", fwd, f"{_s(x)} -> {_s(out)}, elementwise"),
        [Step("dL/dx", bwd, f"{_s(t.g)} * {_s(x)} -> {_s(x)}, Hadamard")],
        Jacobian(size, size, f"diagonal: {count_str(size)} entries f'(x)", size),
        why,
        numbers,
    )


def _elementwise_vjp(t: LayerTrace) -> dict:
    _, _, deriv, _ = _elementwise_spec(t.layer)
    return {"x": t.g * deriv(t.x, t.out, t.layer)}


RULES = {name: Rule(_elementwise, _elementwise_vjp) for name in _ELEMENTWISE}
