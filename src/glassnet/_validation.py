"""Small check_* helpers that build error messages (used at public boundaries)."""

import numbers

import numpy as np

from glassnet.errors import ArgumentTypeError, ConfigError, DataError, ShapeError


def _is_positive_int(value) -> bool:
    if type(value) is int:  # the common case, without the ABC check (1 us)
        return value >= 1
    if isinstance(value, bool):  # True would otherwise pass as 1
        return False
    return isinstance(value, numbers.Integral) and value >= 1


def check_positive_int(owner: str, **values) -> None:
    """Raise one ConfigError naming every argument that is not an integer >= 1."""
    bad = [f"{k}={plain_repr(v)}" for k, v in values.items() if not _is_positive_int(v)]
    if bad:
        raise ConfigError(f"{owner}: expected integers >= 1, got {', '.join(bad)}")


def check_positive_float(owner: str, **values) -> None:
    """Raise ConfigError for any value that is not a finite real number > 0."""
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ConfigError(f"{owner}: {k} must be a number > 0, got {plain_repr(v)}")
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(
                f"{owner}: {k} must be a finite number > 0, got {plain_repr(v)}"
            )


def check_in_range(owner: str, name: str, value, low: float, high: float) -> None:
    """Raise ConfigError unless low <= value < high."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{owner}: {name} must be a number, got {plain_repr(value)}")
    if not low <= value < high:
        raise ConfigError(
            f"{owner}: {name} must be in [{low}, {high}), got {plain_repr(value)}"
        )


def _all_finite(arr: np.ndarray) -> bool:
    """np.isfinite(arr).all() for a C-contiguous arr, in blocks of 64K elements.

    The same answer without a boolean temporary the size of arr (47 MB for 60,000
    rows of 784 features, the largest allocation of a whole fit), and faster while
    the blocks stay in cache (12 ms against 27 ms for those rows).
    """
    flat = arr.reshape(-1)  # a view: arr is contiguous
    step = 1 << 16
    if flat.size <= step:  # one block: no generator (0.6 us of a 60 us iris fit)
        return bool(np.isfinite(flat).all())
    return all(np.isfinite(flat[i : i + step]).all() for i in range(0, flat.size, step))


def as_float_array(x, name: str, dtype, ndim: int | None = None) -> np.ndarray:
    """Convert x to a C-contiguous float array, refusing non-numeric or non-finite data.

    Raises ArgumentTypeError for non-numeric input, ShapeError for the wrong number
    of dimensions and DataError for NaN or inf.
    """
    if (
        type(x) is np.ndarray
        and x.dtype == dtype
        and x.flags.c_contiguous
        and (ndim is None or x.ndim == ndim)
        and _all_finite(x)
    ):  # already what the checks below return (fit's data on every call of a
        # fit(epochs=1) loop): they are skipped, 3 us of each fit; any failure
        # goes the long way, which names it
        return x
    if _is_sparse(x):
        raise ArgumentTypeError(
            f"{name}: expected a dense array, got a SciPy sparse "
            f"{type(x).__name__}; convert it with {name.split()[-1]}.toarray()"
        )
    if hasattr(x, "dtypes") and hasattr(x, "columns") and hasattr(x, "to_numpy"):
        x = _frame_values(x, name)  # a DataFrame: name the columns that are not numbers
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ArgumentTypeError(
            f"{name}: could not convert to an array ({exc})"
        ) from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise ArgumentTypeError(
            f"{name}: expected a numeric array, got dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        raise ArgumentTypeError(f"{name}: expected real numbers, got complex values")
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(
            f"{name}: expected a {ndim}-D array, got shape {arr.shape}"
            + (
                " (reshape a single sample with x.reshape(1, -1))"
                if arr.ndim == 1
                else ""
            )
        )
    source = arr
    with np.errstate(all="ignore"):  # overflow is reported below, by name
        arr = np.ascontiguousarray(arr, dtype=dtype)
    if not _all_finite(arr):
        if source.dtype != arr.dtype and _all_finite(source):
            big = float(np.abs(source).max())
            raise DataError(
                f"{name}: values up to {big:.6g} overflow {np.dtype(dtype).name} "
                f"(largest {float(np.finfo(dtype).max):.6g}); rescale the data "
                "(e.g. standardize it) or use a float64 model"
            )
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(
            f"{name}: expected finite values, got {arr[tuple(bad)]} "
            f"at index {tuple(bad.tolist())}"
        )
    return arr


def _frame_values(frame, name: str) -> np.ndarray:
    """A DataFrame's values as float64, nullable columns (Int64, Float64) included
    (a missing value becomes NaN, reported by the caller); ArgumentTypeError
    naming the columns that are not numbers."""
    bad = [
        f"{column!s} ({dtype})"
        for column, dtype in frame.dtypes.items()
        if getattr(dtype, "kind", "O") not in "biuf"
    ]
    if bad:
        raise ArgumentTypeError(
            f"{name}: expected numeric columns, got {', '.join(bad)}; encode them "
            "as numbers (e.g. pd.get_dummies or .cat.codes) or drop them"
        )
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_sparse(x) -> bool:
    """A SciPy sparse matrix or array, recognised without importing SciPy."""
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "toarray")


def check_seed(owner: str, seed) -> None:
    """Raise ConfigError unless seed is None or an integer >= 0 (not a bool)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(
            f"{owner}: seed must be an integer >= 0 or None, got {plain_repr(seed)}"
        )


def plain_repr(value) -> str:
    """repr(value), but a NumPy scalar as a plain Python number (no np.int64(0))."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def check_labels(labels: np.ndarray, n: int, k: int, name: str = "y") -> np.ndarray:
    """Validate integer class labels of shape (n,) with values in [0, k)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ShapeError(f"{name}: expected labels of shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":  # np.issubdtype(.., np.integer), 1 us faster
        if np.issubdtype(labels.dtype, np.floating) and np.all(
            labels == np.round(labels)
        ):
            labels = labels.astype(np.intp)
        else:
            hint = (
                "; encode labels as 0..K-1, e.g. "
                "classes, y = np.unique(y, return_inverse=True)"
                if not np.issubdtype(labels.dtype, np.number)
                else ""
            )
            raise DataError(
                f"{name}: expected integer class labels, got dtype {labels.dtype}"
                + hint
            )
    if n and (labels.min() < 0 or labels.max() >= k):
        raise DataError(
            f"{name}: labels must lie in [0, {k}) for {k} outputs, got values from "
            f"{labels.min()} to {labels.max()}"
        )
    return labels


def check_float_dtype(owner: str, dtype) -> np.dtype:
    """np.dtype(dtype) if float32 or float64; else ConfigError naming owner."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ConfigError(f"{owner}: dtype must be float32 or float64, got {dtype!r}")
    return dt
