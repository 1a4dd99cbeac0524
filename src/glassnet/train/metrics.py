"""Metrics reported by fit and evaluate: accuracy, mae, mse; and METRICS."""

import numpy as np

from glassnet.errors import ConfigError, ShapeError


def accuracy(
    out: np.ndarray,
    target: np.ndarray,
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> float:
    """Fraction of rows (or positions) classified right.

    out (N, K) scores with K > 1: the class is argmax; target labels (N,) or one-hot
    (N, K). out (N, 1): the class is out > threshold (0.5 for probabilities, 0 for
    logits); target (N,) or (N, 1) of 0/1.
    Sequences: out (N, T, K) (any axes between N and K) with labels (N, T): the
    fraction of positions whose argmax over the last axis is the label.
    Labels below 0 (the -1 SoftmaxCrossEntropy(ignore_index=...) writes at
    padding, or PyTorch's -100) and labels equal to ignore_index are skipped;
    0.0 if every position is skipped.
    """
    if out.ndim > 2:
        return _label_accuracy(out, target, ignore_index)
    if out.ndim == 2 and out.shape[1] > 1:
        if target.ndim == 1 and (ignore_index is not None or target.min() < 0):
            return _label_accuracy(out, target, ignore_index)
        predicted = out.argmax(axis=1)
        truth = target if target.ndim == 1 else target.argmax(axis=1)
    else:
        predicted = out.reshape(-1) > threshold
        truth = target.reshape(-1) > 0.5
    return float(np.count_nonzero(predicted == truth)) / len(predicted)


def _label_accuracy(out: np.ndarray, labels: np.ndarray, ignore_index) -> float:
    """accuracy of scores (N, ..., K) against labels (N, ...), skipping labels
    below 0 or equal to ignore_index."""
    if labels.shape != out.shape[:-1]:
        raise ShapeError(
            f"accuracy: labels must have shape {out.shape[:-1]} (the output "
            f"{out.shape} without the class axis), got {labels.shape}"
        )
    kept = labels >= 0  # (N, T)
    if ignore_index is not None:
        kept &= labels != ignore_index
    count = int(np.count_nonzero(kept))
    if count == 0:
        return 0.0
    right = (out.argmax(axis=-1) == labels) & kept  # (N, T)
    return float(np.count_nonzero(right)) / count


def mean_absolute_error(out: np.ndarray, target: np.ndarray, threshold=None) -> float:
    """mean(|out - target|) over every element."""
    return float(np.mean(np.abs(out - target.reshape(out.shape))))


def mean_squared_error(out: np.ndarray, target: np.ndarray, threshold=None) -> float:
    """mean((out - target)**2) over every element."""
    diff = out - target.reshape(out.shape)
    return float(np.vdot(diff, diff)) / diff.size


METRICS = {"accuracy": accuracy, "mae": mean_absolute_error, "mse": mean_squared_error}


def get_metric(name: str):
    """The metric function called `name`; ConfigError lists the known names."""
    if name not in METRICS:
        known = ", ".join(sorted(METRICS))
        raise ConfigError(f"unknown metric {name!r}; known metrics: {known}")
    return METRICS[name]
