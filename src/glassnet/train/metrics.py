"""Metrics reported by fit and evaluate: accuracy, mae, mse; and METRICS."""

import numpy as np

from glassnet.errors import ConfigError


def accuracy(out: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of rows classified right.

    out (N, K) scores with K > 1: the class is argmax; target labels (N,) or one-hot
    (N, K). out (N, 1): the class is out > threshold (0.5 for probabilities, 0 for
    logits); target (N,) or (N, 1) of 0/1.
    """
    if out.ndim == 2 and out.shape[1] > 1:
        predicted = out.argmax(axis=1)
        truth = target if target.ndim == 1 else target.argmax(axis=1)
    else:
        predicted = out.reshape(-1) > threshold
        truth = target.reshape(-1) > 0.5
    return float(np.count_nonzero(predicted == truth)) / len(predicted)


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
