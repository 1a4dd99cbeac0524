"""Data and history files for the command line: CSV and NPZ tables, history CSV.

    X, y = read_table("train.csv", target="species")   # y: that column
    X, y = read_table("train.npz")                     # arrays "X" and "y"
    write_history_csv(history, "history.csv")          # atomically
    history = read_history_csv("history.csv")

CSV: numbers only, comma-separated; the first row is a header if any of its
cells is not a number. NPZ files are read without pickle: each .npy member's
header is parsed and its declared size checked against the bytes really there
before an array is made, and arrays of Python objects are refused. A member
that would decompress past MAX_NPZ_MEMBER_BYTES, or above 1 MiB at a ratio over
MAX_NPZ_RATIO, is refused before it is decompressed (a zip bomb).
CSV: a target column may hold class names (strings); the features are numbers.
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


def _read_rows(path: str) -> list[list[str]]:
    """The non-blank rows of a CSV file ("-": stdin) as lists of cells."""
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
    return [r for r in rows if r and any(c.strip() for c in r)]  # skip blank lines


def _split_header(
    rows: list[list[str]], path: str, *, numeric_cols=None, named: bool = False
) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, data rows): the first row is a header if one of its cells
    in numeric_cols (default all) is not a number, or if a column is named."""
    header = None
    if rows:
        cols = range(len(rows[0])) if numeric_cols is None else numeric_cols
        first = rows[0]
        if named or any(_number(first[j]) is None for j in cols if j < len(first)):
            header, rows = [c.strip() for c in first], rows[1:]
    if not rows:
        raise DataError(f"{path}: the CSV file holds no data rows")
    width = len(rows[0])
    if header is not None and len(header) != width:
        raise DataError(
            f"{path}: the header has {len(header)} columns but row 1 has {width}"
        )
    line0 = 2 if header is not None else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}: data row {i + 1} has {len(row)} columns, expected {width} "
                f"(line {i + line0})"
            )
    return header, rows


def _numbers(
    rows: list[list[str]], columns: list[int], path: str, line0: int, hint: str = ""
) -> np.ndarray:
    """The given columns of rows as float64 (N, len(columns)); DataError naming the
    row, line and column of the first cell that is not a number."""
    values = np.empty((len(rows), len(columns)))
    for i, row in enumerate(rows):
        for k, j in enumerate(columns):
            v = _number(row[j])
            if v is None:
                raise DataError(
                    f"{path}: data row {i + 1} (line {i + line0}), column {j + 1}: "
                    f"{row[j]!r} is not a number{hint}"
                )
            values[i, k] = v
    return values


def read_csv(path: str) -> tuple[list[str] | None, np.ndarray]:
    """(header or None, values (N, D) float64)."""
    header, rows = _split_header(_read_rows(path), path)
    line0 = 2 if header is not None else 1
    return header, _numbers(rows, list(range(len(rows[0]))), path, line0)


def _column_index(target, header: list[str] | None, width: int, path: str) -> int:
    if _is_name(target):
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


def _is_name(target) -> bool:
    return isinstance(target, str) and not target.lstrip("-").isdigit()


def _read_csv_table(path: str, target) -> tuple[np.ndarray, np.ndarray | None]:
    """(X, y) of a CSV file. The target column is split off before the features
    are parsed: it may hold numbers (y float64) or class names (y str)."""
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: the CSV file holds no data rows")
    width = len(rows[0])
    if target is None:
        header, rows = _split_header(rows, path)
        line0 = 2 if header is not None else 1
        return _numbers(rows, list(range(width)), path, line0, _TARGET_HINT), None
    if _is_name(target):
        j = _column_index(target, [c.strip() for c in rows[0]], width, path)
    else:
        j = _column_index(target, None, width, path)
    features = [k for k in range(width) if k != j]
    if not features:
        raise DataError(f"{path}: needs at least one feature column besides the target")
    header, rows = _split_header(
        rows, path, numeric_cols=features, named=_is_name(target)
    )
    line0 = 2 if header is not None else 1
    X = _numbers(rows, features, path, line0)
    labels = [row[j].strip() for row in rows]
    numbers = [_number(cell) for cell in labels]
    if all(v is not None for v in numbers):
        return X, np.asarray(numbers, dtype=np.float64)
    return X, np.asarray(labels, dtype=str)  # class names, e.g. "setosa"


_TARGET_HINT = "; if it is the label column, pass --target COLUMN to skip it"


# Zip-bomb bounds for .npz members, checked on the sizes the archive declares
# before anything is decompressed (zipfile never inflates past the declared size).
MAX_NPZ_MEMBER_BYTES = 2**31  # 2 GiB decompressed per array
MAX_NPZ_RATIO = 200  # decompressed / compressed, for members above 1 MiB
_RATIO_FREE_BYTES = 2**20


def _check_inflation(info: zipfile.ZipInfo, path: str) -> None:
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > MAX_NPZ_MEMBER_BYTES or (
        size > _RATIO_FREE_BYTES and size / packed > MAX_NPZ_RATIO
    ):
        raise DataError(
            f"{path}: {info.filename} would decompress from {info.compress_size} "
            f"to {size} bytes (ratio {size / packed:.0f}); glassnet reads at most "
            f"{MAX_NPZ_MEMBER_BYTES} bytes and a ratio of {MAX_NPZ_RATIO} per "
            "array (a zip bomb?)"
        )


def _read_npy(zf: zipfile.ZipFile, member: str, path: str) -> np.ndarray:
    from numpy.lib import format as npy

    _check_inflation(zf.getinfo(member), path)
    data = zf.read(member)  # at most the member's declared, decompressed bytes
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
    last); it is split off as y before the other columns are parsed as numbers
    (X). y is float64 if every label is a number, else str (class names).
    Without target, y is None. NPZ: the arrays x_key and y_key (y is None if absent).
    Raises DataError naming the file, row and column of any problem.
    """
    path = os.fspath(path)
    if path != "-" and not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if path.endswith(".npz"):
        return _read_npz(path, x_key, y_key)
    return _read_csv_table(path, target)


def write_csv(out, array: np.ndarray, header: list[str]) -> None:
    """Rows of `array` (N, M) as CSV text on the text stream `out`, each number
    in the shortest form that reads back to the same value of its dtype."""
    out.write(",".join(header) + "\n")
    for row in array:
        out.write(",".join(str(v) for v in row) + "\n")


__all__ = ["read_csv", "read_table", "write_csv"]
