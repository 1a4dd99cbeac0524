"""A History as a CSV file: one row per epoch, written atomically."""

import csv
import os

import numpy as np

from glassnet.errors import DataError
from glassnet.io._atomic import atomic_open
from glassnet.io.datafiles import read_csv
from glassnet.train.callbacks import History


def write_history_csv(history, path: str | os.PathLike) -> None:
    """One row per epoch: epoch (0-based, as History.epoch), then each logged
    value (loss, metrics, val_..., lr) written exactly (repr). Atomic."""
    columns = dict(history.history)
    epochs = list(history.epoch)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["epoch", *columns])
        for i, epoch in enumerate(epochs):
            writer.writerow([epoch, *(repr(float(columns[k][i])) for k in columns)])


def read_history_csv(path: str | os.PathLike) -> History:
    """The History written by write_history_csv. Raises DataError."""
    path = os.fspath(path)
    header, values = read_csv(path)
    if header is None or not header or header[0] != "epoch":
        raise DataError(f"{path}: a history CSV starts with a header row 'epoch,...'")
    history = History()
    if not np.all(values[:, 0] == np.round(values[:, 0])):
        raise DataError(f"{path}: the epoch column must hold integers")
    history.epoch = [int(e) for e in values[:, 0]]
    for j, name in enumerate(header[1:], start=1):
        history.history[name] = [float(v) for v in values[:, j]]
    return history
