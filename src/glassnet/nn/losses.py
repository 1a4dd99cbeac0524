"""Losses: forward(pred, target) -> float, backward() -> dL/dpred, and LOSSES.

Every loss's backward is the exact derivative of the number forward reports.
With reduction="mean" (the default) that number is averaged: over the batch for
the cross-entropies (N rows), over every element for MeanSquaredError and the
binary cross-entropies (as PyTorch does); reduction="sum" adds instead.
SoftmaxCrossEntropy also takes sequences, logits (N, T, K) with labels (N, T),
and an ignore_index for padding; its "mean" is then over the positions not
ignored (see the class).

Sample weights: every built-in loss takes forward(pred, target, sample_weight)
with sample_weight (N,) >= 0, one weight per row. With reduction="mean" the
loss is the weighted mean of the rows' losses, sum(w_i * l_i) / sum(w_i), where
l_i is row i's loss (its mean over the row's elements for MeanSquaredError and
the binary cross-entropies), so weights of 1 give the unweighted loss; with
"sum" it is sum(w_i * l_i), l_i summed over the row. backward is its exact
derivative. fit's class_weight becomes such weights.

Each loss declares what it takes (class attributes, read by fit, evaluate, the
estimators, explain and the CLI instead of testing classes or names):

    loss                           input_kind     target_kind  activation
    MeanSquaredError               values         targets      None
    SoftmaxCrossEntropy            logits         labels       softmax
    CrossEntropy                   probabilities  labels       softmax
    BinaryCrossEntropyWithLogits   logits         targets      sigmoid
    BinaryCrossEntropy             probabilities  targets      sigmoid
"""

import math

import numpy as np

from glassnet._kernels import (
    ONE_HOT_MAX_CLASSES,
    binary_log_loss,
    constant,
    one_hot,
    row_max,
    row_sums,
    sigmoid,
    vdot,
)
from glassnet._validation import check_labels
from glassnet.errors import ConfigError, DataError, ShapeError

_EXP_MINUS_100 = float(np.exp(-100.0))


INPUT_KINDS = ("logits", "probabilities", "values")
TARGET_KINDS = ("labels", "targets")


class Loss:
    """Base class: a scalar objective at the end of the chain.

    forward(pred, target) returns a Python float and keeps what backward needs;
    backward() takes no argument and returns dL/dpred with pred's shape.

    What a loss takes, declared by each class:
    input_kind   "logits" (any real scores; the loss applies `activation` itself),
                 "probabilities" (the output of a final Softmax or Sigmoid layer,
                 each in [0, 1]) or "values" (any real numbers, e.g. regression).
    target_kind  "labels" (integer classes 0..K-1 of shape (N,), or one-hot
                 rows (N, K)) or "targets" (real values of pred's shape; in
                 [0, 1] for the binary cross-entropies).
    activation   "softmax" or "sigmoid": the function that turns logits into
                 this loss's probabilities (None for "values").
    A custom loss inherits "values" / "targets" / None unless it says otherwise.
    """

    input_kind: str = "values"
    target_kind: str = "targets"
    activation: str | None = None

    _cache = None
    _mean_over_elements = False  # "mean" averages every element, not only rows

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ConfigError(
                f"{type(self).__name__}: reduction must be 'mean' or 'sum', "
                f"got {reduction!r}"
            )
        self.reduction = reduction

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(
        self, pred: np.ndarray, target: np.ndarray, sample_weight=None
    ) -> float:
        """forward, after checking target (and sample_weight) against pred: forward
        itself trusts its inputs (fit checks them once per fit)."""
        pred = np.asarray(pred)
        target = self.prepare_target(target, pred.shape, pred.dtype)
        if sample_weight is None:
            return self.forward(pred, target)
        weights = check_sample_weight(sample_weight, len(pred), type(self).__name__)
        return self.forward(pred, target, weights)

    def _weight_scale(self, sample_weight, shape: tuple, dtype) -> np.ndarray:
        """The factor c (N, 1, ...) with loss = sum(c * terms): w_i / (sum(w) * M)
        for "mean" (M = elements per row where the mean is over elements, else
        1), w_i for "sum"; shaped to broadcast against pred."""
        w = np.asarray(sample_weight, dtype=dtype)  # (N,)
        if self.reduction == "mean":
            per_row = int(np.prod(shape[1:])) if self._mean_over_elements else 1
            w = w / (w.sum() * per_row)
        return w.reshape((len(w),) + (1,) * (len(shape) - 1))  # (N, 1, ...)

    def prepare_target(self, target, pred_shape: tuple[int, ...], dtype) -> np.ndarray:
        """Validate target against pred's shape once (fit calls this per fit, not
        per step) and return it in the form forward expects."""
        target = np.asarray(target)
        if target.ndim == 1 and len(pred_shape) == 2 and pred_shape[1] == 1:
            target = target.reshape(-1, 1)  # y of shape (N,) for a single output
        if target.shape != tuple(pred_shape):
            raise ShapeError(
                f"{type(self).__name__}: target must have the network output's shape "
                f"{tuple(pred_shape)}, got {target.shape}"
            )
        if target.dtype.kind == "c":
            raise DataError(
                f"{type(self).__name__}: expected real targets, got complex values"
            )
        return np.ascontiguousarray(target, dtype=dtype)

    def _scale(self, count: int) -> float:
        return 1.0 / count if self.reduction == "mean" else 1.0

    def get_config(self) -> dict:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class MeanSquaredError(Loss):
    """L = mean((pred - target)**2) over all elements; dL/dpred = 2 (pred - target) / n.

    Shapes: pred (N, ...) and target of the same shape. n = pred.size for "mean".
    """

    input_kind, target_kind, activation = "values", "targets", None
    _mean_over_elements = True

    def forward(
        self, pred: np.ndarray, target: np.ndarray, sample_weight=None
    ) -> float:
        if pred.shape != target.shape:
            raise ShapeError(_shape_hint(self, pred.shape, target.shape))
        diff = pred - target
        if sample_weight is not None:
            scale = self._weight_scale(sample_weight, diff.shape, diff.dtype)
            self._cache = (diff, scale)
            return float(np.sum(scale * diff * diff))
        scale = self._scale(diff.size)
        self._cache = (diff, scale)
        return float(vdot(diff, diff)) * scale  # vdot: sum of squares in one call

    def backward(self) -> np.ndarray:
        diff, scale = self._cache
        if type(scale) is float and diff.dtype.kind == "f":
            # 2 / n as a 0-d array of the dtype: 0.25 us less than a Python float
            return np.multiply(diff, constant(2.0 * scale, diff.dtype))
        return diff * (2.0 * scale)


def _shape_hint(loss: Loss, pred_shape: tuple, target_shape: tuple) -> str:
    """The message for targets not shaped like pred (they would broadcast)."""
    hint = ""
    if len(target_shape) == 1 and pred_shape == (target_shape[0], 1):
        hint = "; reshape with y.reshape(-1, 1) (fit and loss(pred, y) do it for you)"
    return (
        f"{type(loss).__name__}.forward: target must have pred's shape "
        f"{tuple(pred_shape)}, got {tuple(target_shape)}{hint}"
    )


def check_sample_weight(sample_weight, n: int, owner: str = "fit") -> np.ndarray:
    """sample_weight as a float64 array (n,) of finite values >= 0 with a
    positive sum; ShapeError / DataError naming owner otherwise."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise DataError(
            f"{owner}: sample_weight must hold real numbers, got dtype {w.dtype}"
        )
    w = w.astype(np.float64)
    if w.shape != (n,):
        raise ShapeError(
            f"{owner}: sample_weight must have shape ({n},), one weight per row, "
            f"got {w.shape}"
        )
    if n and not (np.isfinite(w).all() and w.min() >= 0 and w.sum() > 0):
        raise DataError(
            f"{owner}: sample_weight must be finite and >= 0 with a positive sum"
        )
    return w


def _one_hot_or_labels(loss: Loss, target, N: int, K: int, dtype):
    """Integer labels (N,) stay labels; (N, K) targets are class probabilities."""
    target = np.asarray(target)
    if target.ndim == 1 or (target.ndim == 2 and target.shape[1] == 1 and K != 1):
        return check_labels(target.reshape(-1), N, K)
    if target.shape != (N, K):
        raise ShapeError(
            f"{type(loss).__name__}: target must be integer labels of shape ({N},) or "
            f"one-hot rows of shape ({N}, {K}), got {target.shape}"
        )
    target = np.ascontiguousarray(target, dtype=dtype)
    if not np.isfinite(target).all() or target.min() < 0:
        raise DataError(
            f"{type(loss).__name__}: one-hot targets must be finite and >= 0"
        )
    return target


class SoftmaxCrossEntropy(Loss):
    """Mean cross-entropy of softmax(logits) against labels; fused for stability.

    Shapes: logits (N, K); target integer labels (N,) in [0, K) or one-hot /
    probability rows (N, K). L = -sum(y * log_softmax(logits)) / N.
    The softmax Jacobian times dL/dsoftmax collapses to
    dL/dlogits = (p * sum_k(y) - y) / N, which is (p - y) / N when each row of y
    sums to 1 (labels, one-hot rows, probabilities).

    Sequences: logits (N, T, K) (any number of axes between N and K) take labels
    (N, T), one per position; the softmax runs over the last axis.
    ignore_index: a label value (e.g. -1 or -100 at padding) whose positions add
    nothing to the loss or the gradient, as PyTorch's CrossEntropyLoss. "mean"
    then divides by the number of positions not ignored, and dL/dlogits is
    (p - onehot) / count there, 0 at ignored positions. With sample_weight (N,),
    every position of row i weighs w_i: "mean" is sum(w_i * l_it) / sum(w_i)
    over the positions not ignored, "sum" is sum(w_i * l_it). If every position
    is ignored (or weighs 0), the loss is 0 and so is its gradient (PyTorch
    gives NaN). Labels outside [0, K) that are not ignore_index are a DataError.
    """

    input_kind, target_kind, activation = "logits", "labels", "softmax"

    def __init__(
        self, reduction: str = "mean", ignore_index: int | None = None
    ) -> None:
        super().__init__(reduction)
        # a tuple, not int | np.integer: no union object built per loss (per fit)
        integer = isinstance(ignore_index, (int, np.integer))
        if ignore_index is not None and (isinstance(ignore_index, bool) or not integer):
            raise ConfigError(
                f"SoftmaxCrossEntropy: ignore_index must be an integer label or None, "
                f"got {ignore_index!r}"
            )
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def forward(
        self, logits: np.ndarray, target: np.ndarray, sample_weight=None
    ) -> float:
        if logits.ndim != 2 or (target.ndim == 1 and self.ignore_index is not None):
            return self._forward_positions(logits, target, sample_weight)
        N, K = logits.shape
        labels = target.ndim == 1  # then each row of y sums to 1
        if labels and K <= ONE_HOT_MAX_CLASSES:
            target = one_hot(target, K, logits.dtype)  # (N,) -> (N, K): faster below
        if K == 2:  # two classes: -log p in 2 NumPy calls (see binary_log_loss)
            neg_log_probs = binary_log_loss(logits)  # (N, 2)
            exp = np.exp(np.negative(neg_log_probs))  # probabilities, for backward
        else:
            shifted = logits - row_max(logits)[:, None]  # exp() cannot overflow
            exp = np.exp(shifted)
            sums = row_sums(exp)[:, None]  # (N, 1)
            neg_log_probs = np.log(sums) - shifted  # (N, K)
            exp /= sums  # probabilities, reused by backward
        if sample_weight is None:
            scale = 1.0 / N if self.reduction == "mean" else 1.0
        else:
            scale = self._weight_scale(sample_weight, logits.shape, logits.dtype)
        self._cache = (exp, target, scale, labels)
        if target.ndim == 1:
            picked = neg_log_probs[np.arange(N), target]  # (N,)
            return float(np.sum(picked * np.ravel(scale)))
        if sample_weight is not None:
            value = float(np.sum(scale * target * neg_log_probs))
        else:
            value = float(vdot(target, neg_log_probs)) * scale
        if math.isnan(value):  # masked logits (-inf) where y is 0: 0 * inf is NaN
            kept = np.where(target != 0, neg_log_probs, 0.0)  # (N, K); only then paid
            value = float(np.sum(scale * target * kept))
        return value

    def _forward_positions(self, logits, target, sample_weight) -> float:
        """Labels per position, some maybe ignored: logits (N, ..., K), labels
        (N, ...); the softmax over the last axis. The loss is -sum(c * log p_label)
        with c the positions' weights (0 where ignored), divided by sum(c) for
        "mean"; backward returns c * (p - onehot)."""
        K = logits.shape[-1]
        if target.shape != logits.shape[:-1]:
            raise ShapeError(_positions_hint(self, logits.shape, target.shape))
        flat = logits.reshape(-1, K)  # (N*T, K)
        labels = target.reshape(-1)  # (N*T,)
        ignored = labels < 0  # prepare_target writes -1 at ignored positions
        if self.ignore_index is not None:
            ignored |= labels == self.ignore_index
        safe = np.where(ignored, 0, labels)  # (N*T,) a valid index everywhere
        shifted = flat - flat.max(axis=1, keepdims=True)  # exp() cannot overflow
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)  # (N*T, 1)
        exp /= sums  # probabilities, reused by backward
        rows = np.arange(len(labels))
        picked = shifted[rows, safe] - np.log(sums[:, 0])  # (N*T,) log p of the label
        weight = (~ignored).astype(logits.dtype)  # (N*T,) 0 at ignored positions
        if sample_weight is not None:
            per_row = weight.reshape(len(logits), -1)  # (N, T)
            per_row *= np.asarray(sample_weight, dtype=logits.dtype)[:, None]
        if self.reduction == "mean":
            total = weight.sum()
            weight = weight / total if total > 0 else weight * 0  # all ignored: 0
        self._cache = (exp, safe, weight, logits.shape)
        return -float(np.dot(picked, weight))

    def backward(self) -> np.ndarray:
        probs, target, scale, labels = self._cache
        if isinstance(labels, tuple):  # per position: (probs, labels, c, shape)
            dlogits = probs.copy()  # (N*T, K)
            dlogits[np.arange(len(target)), target] -= 1.0
            dlogits *= scale[:, None]  # 0 at ignored positions
            return dlogits.reshape(labels)  # (N*T, K) -> (N, T, K)
        if target.ndim == 1:
            dlogits = probs.copy()
            dlogits[np.arange(len(target)), target] -= 1.0
        elif labels:
            dlogits = probs - target
        else:  # rows given by the caller need not sum to 1
            dlogits = probs * row_sums(target)[:, None]  # p * sum_k(y), (N, K)
            dlogits -= target
        if type(scale) is float:  # a 0-d array of the dtype: 0.25 us less
            scale = constant(scale, dlogits.dtype)
        np.multiply(dlogits, scale, dlogits)  # the loss is a mean over the batch
        return dlogits

    def prepare_target(self, target, pred_shape, dtype):
        if len(pred_shape) == 2 and self.ignore_index is None:
            N, K = pred_shape
            return _one_hot_or_labels(self, target, N, K, dtype)
        return _position_labels(self, target, tuple(pred_shape), dtype)

    def get_config(self) -> dict:
        return {"reduction": self.reduction, "ignore_index": self.ignore_index}

    def __repr__(self) -> str:
        return (
            f"SoftmaxCrossEntropy(reduction={self.reduction!r}, "
            f"ignore_index={self.ignore_index!r})"
        )


def _positions_hint(loss: Loss, pred_shape: tuple, target_shape: tuple) -> str:
    """The message for labels not shaped like logits without their last axis."""
    want = tuple(pred_shape[:-1])
    hint = ""
    if tuple(target_shape) == tuple(pred_shape):
        hint = (
            "; one-hot targets are taken for logits (N, K) only: pass "
            "labels = y.argmax(axis=-1)"
        )
    elif len(target_shape) == 1 and len(pred_shape) > 2:
        hint = "; a sequence model needs one label per position, not one per row"
    return (
        f"{type(loss).__name__}: labels must have shape {want} (logits "
        f"{tuple(pred_shape)} without the class axis), got {tuple(target_shape)}{hint}"
    )


def _position_labels(loss, target, pred_shape: tuple, dtype) -> np.ndarray:
    """Labels (N, ...) for logits (N, ..., K): integers in [0, K) or ignore_index,
    with -1 written at the ignored positions (what forward and accuracy skip).

    With logits (N, K), one-hot rows (N, K) are also taken (nothing is ignored)."""
    target = np.asarray(target)
    name = type(loss).__name__
    K = pred_shape[-1]
    if len(pred_shape) == 2 and target.shape == pred_shape and K != 1:
        return _one_hot_or_labels(loss, target, pred_shape[0], K, dtype)
    if len(pred_shape) == 2 and target.shape == (pred_shape[0], 1) and K != 1:
        target = target.reshape(-1)  # labels as a column (N, 1)
    if target.shape != pred_shape[:-1]:
        raise ShapeError(_positions_hint(loss, pred_shape, target.shape))
    if target.dtype.kind not in "iu":
        if target.dtype.kind in "bf" and np.all(target == np.round(target)):
            target = target.astype(np.intp)
        else:
            raise DataError(
                f"{name}: expected integer class labels, got dtype {target.dtype}; "
                "encode labels as 0..K-1, e.g. "
                "classes, y = np.unique(y, return_inverse=True)"
            )
    target = target.astype(np.intp)
    ignored = (
        target == loss.ignore_index
        if loss.ignore_index is not None
        else np.zeros(target.shape, bool)
    )
    bad = ~ignored & ((target < 0) | (target >= K))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = where[0] if len(where) == 1 else where
        allowed = (
            f" or equal ignore_index={loss.ignore_index}"
            if loss.ignore_index is not None
            else " (set ignore_index to skip padding)"
        )
        raise DataError(
            f"{name}: labels must lie in [0, {K}) for {K} classes{allowed}, got "
            f"label {int(target[where])} at position {at} "
            f"({int(bad.sum())} such labels)"
        )
    return np.where(ignored, -1, target)  # -1: the mark forward and accuracy skip


class CrossEntropy(Loss):
    """Mean cross-entropy of probabilities (e.g. a Softmax layer's output).

    Shapes: probs (N, K); target labels (N,) or one-hot rows (N, K).
    L = -sum(y * log(p)) / N; dL/dp = -y / p / N. Probabilities below the
    smallest normal float are clipped there (log stays finite; the gradient of a
    clipped entry is 0, as the clipped function is flat).
    Prefer SoftmaxCrossEntropy on logits: it is exact where this one clips.
    """

    input_kind, target_kind, activation = "probabilities", "labels", "softmax"

    def forward(
        self, probs: np.ndarray, target: np.ndarray, sample_weight=None
    ) -> float:
        N, K = probs.shape
        tiny = np.finfo(probs.dtype).tiny if probs.dtype.kind == "f" else 1e-300
        clipped = np.maximum(probs, tiny)
        y = target
        if target.ndim == 1:
            y = np.zeros_like(probs)
            y[np.arange(N), target] = 1.0
        if sample_weight is not None:
            scale = self._weight_scale(sample_weight, probs.shape, probs.dtype)
            self._cache = (clipped, probs > tiny, y, scale)
            return -float(np.sum(scale * y * np.log(clipped)))
        scale = self._scale(N)
        self._cache = (clipped, probs > tiny, y, scale)
        return -float(np.vdot(y, np.log(clipped))) * scale

    def backward(self) -> np.ndarray:
        clipped, unclipped, y, scale = self._cache
        return np.where(unclipped, -y / clipped, 0.0) * scale

    def prepare_target(self, target, pred_shape, dtype):
        N, K = pred_shape
        return _one_hot_or_labels(self, target, N, K, dtype)


class BinaryCrossEntropy(Loss):
    """Mean binary cross-entropy of probabilities p in [0, 1] against targets in [0, 1].

    Shapes: p and target the same, (N,) or (N, M). L = -mean(y log p + (1-y) log(1-p));
    dL/dp = (p - y) / (p (1 - p)) / n. log is clamped at -100 as PyTorch does, and
    the gradient of a clamped term is 0. Prefer BinaryCrossEntropyWithLogits.
    """

    input_kind, target_kind, activation = "probabilities", "targets", "sigmoid"
    _mean_over_elements = True

    def forward(self, p: np.ndarray, target: np.ndarray, sample_weight=None) -> float:
        floor = _EXP_MINUS_100  # log(floor) = -100
        ok_p, ok_1mp = p > floor, (1.0 - p) > floor
        log_p = np.log(np.maximum(p, floor))
        log_1mp = np.log(np.maximum(1.0 - p, floor))
        if sample_weight is not None:
            scale = self._weight_scale(sample_weight, p.shape, p.dtype)
            self._cache = (p, target, ok_p, ok_1mp, scale)
            terms = target * log_p + (1.0 - target) * log_1mp
            return -float(np.sum(scale * terms))
        scale = self._scale(p.size)
        self._cache = (p, target, ok_p, ok_1mp, scale)
        total = np.vdot(target, log_p) + np.vdot(1.0 - target, log_1mp)
        return -float(total) * scale

    def backward(self) -> np.ndarray:
        p, y, ok_p, ok_1mp, scale = self._cache
        safe_p = np.where(ok_p, p, 1.0)  # entries where the log was clamped get 0
        safe_1mp = np.where(ok_1mp, 1.0 - p, 1.0)
        dp = np.where(ok_1mp, (1.0 - y) / safe_1mp, 0.0) - np.where(
            ok_p, y / safe_p, 0.0
        )
        return (dp * scale).astype(p.dtype, copy=False)

    def prepare_target(self, target, pred_shape, dtype):
        target = super().prepare_target(target, pred_shape, dtype)
        if target.size and (target.min() < 0 or target.max() > 1):
            raise DataError(
                f"{type(self).__name__}: targets must lie in [0, 1], got values from "
                f"{target.min()} to {target.max()}"
            )
        return target


class BinaryCrossEntropyWithLogits(BinaryCrossEntropy):
    """Binary cross-entropy on logits z, fused with the sigmoid for stability.

    Shapes: z and target the same. L = mean(max(z, 0) - z y + log(1 + exp(-|z|)));
    dL/dz = (sigmoid(z) - y) / n.
    """

    input_kind, target_kind, activation = "logits", "targets", "sigmoid"

    def forward(self, z: np.ndarray, target: np.ndarray, sample_weight=None) -> float:
        terms = np.maximum(z, 0.0) - z * target + np.log1p(np.exp(-np.abs(z)))
        if sample_weight is not None:
            scale = self._weight_scale(sample_weight, z.shape, z.dtype)
            self._cache = (z, target, scale)
            return float(np.sum(scale * terms))
        scale = self._scale(z.size)
        self._cache = (z, target, scale)
        return float(terms.sum()) * scale

    def backward(self) -> np.ndarray:
        z, y, scale = self._cache
        s = sigmoid(z)
        s -= y
        s *= scale
        return s


LOSSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": CrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "binary_cross_entropy_with_logits": BinaryCrossEntropyWithLogits,
}


def get_loss(loss) -> Loss:
    """A Loss instance from a Loss, a Loss class or a name in LOSSES."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss.lower() in LOSSES:
        return LOSSES[loss.lower()]()
    known = ", ".join(sorted(LOSSES))
    raise ConfigError(f"unknown loss {loss!r}; known losses: {known}")


def takes_labels(loss) -> bool:
    """Whether loss (a Loss, a Loss class or a name) declares target_kind "labels";
    False for a name that is no loss (fit reports those)."""
    try:
        return get_loss(loss).target_kind == "labels"
    except ConfigError:
        return False


def loss_name(input_kind: str, activation: str | None = None) -> str:
    """The name in LOSSES of the built-in loss taking input_kind after activation.

    loss_name("logits", "softmax")         -> "softmax_cross_entropy"
    loss_name("probabilities", "sigmoid")  -> "binary_cross_entropy"
    loss_name("values")                    -> "mean_squared_error"
    """
    for name, cls in reversed(LOSSES.items()):  # the long name of MSE, not "mse"
        if (cls.input_kind, cls.activation) == (input_kind, activation):
            return name
    raise ConfigError(
        f"no built-in loss takes {input_kind} after {activation}; "
        f"input kinds: {', '.join(INPUT_KINDS)}"
    )


def name_of(loss: Loss) -> str:
    """How to name `loss` in a message: its name in LOSSES, else its class name."""
    for name, cls in reversed(LOSSES.items()):
        if type(loss) is cls:
            return name
    return type(loss).__name__
