"""The math of each loss: dL/dpred as printed, and computed a second way.

The second way is the unfused chain rule where one exists: for
SoftmaxCrossEntropy the softmax's per-row Jacobian is built explicitly and
applied to dL/dp = -y / p / N, which must give the fused (p - y) / N.
"""

import numpy as np

from glassnet.reports._derivation import Derivation, Step, rule_name
from glassnet.reports._rules import softmax_blocks
from glassnet.reports._table import shape_str


def one_hot(target: np.ndarray, K: int, dtype) -> np.ndarray:
    """Integer labels (N,) -> one-hot rows (N, K); rows are returned as they are."""
    if target.ndim == 2:
        return target.astype(dtype)
    y = np.zeros((len(target), K), dtype=dtype)
    y[np.arange(len(target)), target] = 1.0
    return y


def _scale(loss, count: int) -> tuple[float, str]:
    if getattr(loss, "reduction", "mean") == "sum":
        return 1.0, ""
    return 1.0 / count, f" / {count}"


def _softmax_ce(loss, z, target):
    N, K = z.shape
    scale, per = _scale(loss, N)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = one_hot(target, K, z.dtype)
    chained = np.einsum("nkj,nj->nk", softmax_blocks(p), -y / p * scale)
    derivation = Derivation(
        Step(
            "forward",
            f"L = -sum(y * log(softmax(z))){per}",
            f"z {shape_str(z.shape)}, y one-hot {shape_str(y.shape)} -> scalar",
        ),
        [Step("dL/dz", f"(p - y){per}", f"{shape_str(z.shape)}, p = softmax(z)")],
        None,
        [
            f"the same as the chain rule through the softmax: per row "
            f"(diag(p) - p p.T) @ (-y / p){per} = (p * sum(y) - y){per} "
            f"= (p - y){per}, because each one-hot row of y sums to 1",
            "fused, no Jacobian is built and nothing is divided by p, so it stays "
            "exact when a probability underflows to 0",
        ],
        [
            Step(
                "via the Jacobian",
                f"J_n @ (-y_n / p_n){per} for each row n",
                f"{N} blocks of ({K}, {K}) applied explicitly",
            )
        ],
    )
    return derivation, chained


def _cross_entropy(loss, p, target):
    N, K = p.shape
    scale, per = _scale(loss, N)
    y = one_hot(target, K, p.dtype)
    return Derivation(
        Step(
            "forward", f"L = -sum(y * log(p)){per}", f"p {shape_str(p.shape)} -> scalar"
        ),
        [Step("dL/dp", f"-y / p{per}", shape_str(p.shape))],
        None,
        [
            "a Softmax layer below turns this into (p - y)" + per + "; "
            "softmax_cross_entropy on logits does both steps at once, exactly"
        ],
    ), -y / p * scale


def _mse(loss, pred, target):
    scale, per = _scale(loss, pred.size)
    return Derivation(
        Step(
            "forward",
            f"L = sum((pred - y)**2){per}",
            f"{shape_str(pred.shape)} -> scalar, the mean over all {pred.size} entries",
        ),
        [Step("dL/dpred", f"2 * (pred - y){per}", shape_str(pred.shape))],
        None,
        ["the 2 comes from the square; a loss written as 1/2 sum(...) has no 2"],
    ), 2.0 * (pred - target) * scale


def _bce(loss, p, target):
    scale, per = _scale(loss, p.size)
    return Derivation(
        Step(
            "forward",
            f"L = -sum(y log p + (1 - y) log(1 - p)){per}",
            f"{shape_str(p.shape)} -> scalar",
        ),
        [Step("dL/dp", f"(p - y) / (p (1 - p)){per}", shape_str(p.shape))],
        None,
        ["a Sigmoid below multiplies by p (1 - p), leaving (p - y)" + per],
    ), (p - target) / (p * (1.0 - p)) * scale


def _bce_logits(loss, z, target):
    scale, per = _scale(loss, z.size)
    s = 1.0 / (1.0 + np.exp(-z))
    return Derivation(
        Step(
            "forward",
            f"L = sum(log(1 + exp(z)) - z y){per}",
            f"{shape_str(z.shape)} -> scalar",
        ),
        [Step("dL/dz", f"(sigmoid(z) - y){per}", shape_str(z.shape))],
        None,
        [
            "the sigmoid and the binary cross-entropy fused, as softmax and "
            "cross-entropy are"
        ],
    ), (s - target) * scale


LOSS_RULES = {
    "SoftmaxCrossEntropy": _softmax_ce,
    "CrossEntropy": _cross_entropy,
    "MeanSquaredError": _mse,
    "BinaryCrossEntropyWithLogits": _bce_logits,
    "BinaryCrossEntropy": _bce,
}


def loss_rule(loss):
    """The rule for loss's class (or nearest base), or None for a custom loss."""
    name = rule_name(loss, LOSS_RULES)
    return None if name is None else LOSS_RULES[name]
