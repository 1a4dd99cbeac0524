"""Data and history files for the command line: CSV and NPZ tables, history CSV.

    X, y = read_table("train.csv", target="species")   # y: that column
    X, y = read_table("train.npz")                     # arrays "X" and "y"
    write_history_csv(history, "history.csv")          # atomically
    history = read_history_csv("history.csv")

CSV: numbers only, comma-separated; the first row is a header if any of its
cells is not a number. NPZ files are read without pickle: each .npy member's
header is parsed and its declared size checked against the bytes really there
before an array is made, and arrays of Python objects are refused.
"""

import csv
import io
import math
import os
import sys
import zipfile

import numpy as np

from glassnet.errors import DataError


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(path: str) -> tuple[list[str] | None, np.ndarray]:
    """(header or None, values (N, D) float64)."""
    if path == "-":
        rows = list(csv.reader(sys.stdin))
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            try:
                rows = list(csv.reader(fh))
            except UnicodeDecodeError:
                raise DataError(f"{path}: not a UTF-8 text CSV file") from None
            except csv.Error as exc:
                raise DataError(f"{path}: not a valid CSV file ({exc})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]  # skip blank lines
    header = None
    if rows and any(_number(c) is None for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path}: the CSV file holds no data rows")
    width = len(rows[0])
    if header is not None and len(header) != width:
        raise DataError(
            f"{path}: the header has {len(header)} columns but row 1 has {width}"
        )
    values = np.empty((len(rows), width))
    line0 = 2 if header is not None else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}: data row {i + 1} has {len(row)} columns, expected {width}"
            )
        for j, cell in enumerate(row):
            v = _number(cell)
            if v is None:
                raise DataError(
                    f"{path}: data row {i + 1} (line {i + line0}), column {j + 1}: "
                    f"{cell!r} is not a number"
                )
            values[i, j] = v
    return header, values


def _column_index(target, header: list[str] | None, width: int, path: str) -> int:
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if header is None or target not in header:
            raise DataError(
                f"{path}: no column named {target!r}"
                + (f"; columns: {', '.join(header)}" if header else " (no header row)")
            )
        return header.index(target)
    index = int(target)
    if not -width <= index < width:
        raise DataError(f"{path}: column {index} is out of range for {width} columns")
    return index % width


def _read_npy(zf: zipfile.ZipFile, member: str, path: str) -> np.ndarray:
    from numpy.lib import format as npy

    data = zf.read(member)  # at most the member's real, decompressed bytes
    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = npy.read_array_header_2_0(stream)
    except ValueError as exc:
        raise DataError(f"{path}: {member} is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise DataError(
            f"{path}: {member} holds Python objects, which could only be read with "
            "pickle; glassnet reads numeric arrays only"
        )
    start = stream.tell()
    if math.prod(shape) * dtype.itemsize != len(data) - start:
        raise DataError(
            f"{path}: {member} declares shape {shape} of {dtype} but holds "
            f"{len(data) - start} bytes (truncated or crafted)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=start)
    return array.reshape(shape, order="F" if fortran else "C")


def _read_npz(
    path: str, x_key: str, y_key: str
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            if x_key not in names:
                raise DataError(
                    f"{path}: no array named {x_key!r}; arrays: {', '.join(names)}"
                )
            X = _read_npy(zf, names[x_key], path)
            y = _read_npy(zf, names[y_key], path) if y_key in names else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npz file ({exc})") from None
    return X, y


def read_table(
    path: str | os.PathLike,
    *,
    target=None,
    x_key: str = "X",
    y_key: str = "y",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read (X, y) from a CSV or NPZ file ("-" reads CSV from stdin).

    CSV: target is the label column (a header name or an index, -1 for the
    last); it is split off as y, the other columns form X. Without target, y is
    None. NPZ: the arrays x_key and y_key (y is None if absent).
    Raises DataError naming the file, row and column of any problem.
    """
    path = os.fspath(path)
    if path != "-" and not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if path.endswith(".npz"):
        return _read_npz(path, x_key, y_key)
    header, values = read_csv(path)
    if target is None:
        return values, None
    j = _column_index(target, header, values.shape[1], path)
    if values.shape[1] < 2:
        raise DataError(f"{path}: needs at least one feature column besides the target")
    return np.delete(values, j, axis=1), values[:, j]


def write_csv(out, array: np.ndarray, header: list[str]) -> None:
    """Rows of `array` (N, M) as CSV text on the text stream `out`, each number
    in the shortest form that reads back to the same value of its dtype."""
    out.write(",".join(header) + "\n")
    for row in array:
        out.write(",".join(str(v) for v in row) + "\n")


__all__ = ["read_csv", "read_table", "write_csv"]
