"""Arguments, geometry and shape messages shared by the sliding-window layers.

Conv1D/Conv2D, MaxPool1D/MaxPool2D and AvgPool1D/AvgPool2D take the same forms,
with one entry per spatial axis (2-D: height, width; 1-D: length):

    kernel_size, stride   k, or a tuple (kh, kw) / (k,)
    padding               "valid"   no padding (the same as 0)
                          "same"    out = ceil(size / stride) on every axis (below)
                          p         p zeros on both sides of every axis
                          (ph, pw)  per axis, on both sides (1-D: (p,))
                          ((top, bottom), (left, right))  explicit
                                    (1-D: ((left, right),) or (left, right))

"same" pads each axis by total = max((ceil(size / S) - 1) * S + K - size, 0),
total // 2 before and the rest after (the odd pixel at the bottom/right). This is
TensorFlow's rule. For stride 1 it gives the input's own size and agrees with
PyTorch's padding="same"; PyTorch refuses "same" with a stride > 1, glassnet
follows TensorFlow there.

The 1-D layers run the 2-D code on (N, C, 1, L), with a kernel, stride and
padding of 1, 1 and 0 along the added height axis: to_image and from_image add
and drop that axis (views, no copies).
"""

import numbers

import numpy as np

from glassnet._im2col import ConvGrid, output_size, same_padding
from glassnet._validation import _is_positive_int
from glassnet.errors import ConfigError, ShapeError

AXES = {1: ("length",), 2: ("height", "width")}
_UNITS = {"height": ("row", "rows"), "width": ("column", "columns")}


def _is_size(value) -> bool:
    """An int >= 0 (not a bool: True would pass as 1)."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return is_int and value >= 0


def per_axis(owner: str, name: str, value, ndim: int) -> tuple[int, ...]:
    """An int k >= 1, or a tuple of ndim of them, as a tuple of ndim ints."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim
    if len(values) != ndim or not all(_is_positive_int(v) for v in values):
        form = "a pair (h, w) of them" if ndim == 2 else "a 1-tuple (k,)"
        raise ConfigError(
            f"{owner}: {name} must be an int >= 1 or {form}, got {value!r}"
        )
    return tuple(int(v) for v in values)


def parse_padding(owner: str, padding, ndim: int):
    """(display form, explicit form) of a padding argument.

    The explicit form is "same" or ((before, after), ...) with one pair per axis;
    the display form is what repr and get_config show: "valid", "same", an int, or
    the tuples as given (lists become tuples).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return "valid", ((0, 0),) * ndim
        if padding == "same":
            return "same", "same"
    elif _is_size(padding):
        p = int(padding)
        return p, ((p, p),) * ndim
    elif isinstance(padding, (tuple, list)):
        items = tuple(tuple(v) if isinstance(v, (tuple, list)) else v for v in padding)
        if len(items) == ndim and all(_is_size(v) for v in items):
            shown = tuple(int(v) for v in items)  # (ph, pw) or (p,)
            return shown, tuple((v, v) for v in shown)
        if ndim == 1 and len(items) == 2 and all(_is_size(v) for v in items):
            shown = (int(items[0]), int(items[1]))  # (left, right)
            return shown, (shown,)
        pairs = len(items) == ndim and all(
            isinstance(v, tuple) and len(v) == 2 and all(_is_size(e) for e in v)
            for v in items
        )
        if pairs:
            shown = tuple((int(a), int(b)) for a, b in items)
            return shown, shown
    forms = (
        "an int >= 0, (ph, pw) or ((top, bottom), (left, right))"
        if ndim == 2
        else "an int >= 0, (p,), (left, right) or ((left, right),)"
    )
    raise ConfigError(
        f"{owner}: padding must be 'valid', 'same', {forms}; got {padding!r}"
    )


def compact(values: tuple):
    """(3, 3) -> 3 and (3,) -> 3; (2, 5) stays a tuple: how repr shows a size."""
    return values[0] if len(set(values)) == 1 else values


def as_config(value):
    """Tuples as lists (what JSON gives back), anything else unchanged."""
    if isinstance(value, tuple):
        return [as_config(v) for v in value]
    return value


def resolve_padding(padding, sizes, kernel, stride) -> tuple[tuple[int, int], ...]:
    """(before, after) per axis for an input of these spatial sizes."""
    if padding == "same":
        return tuple(
            same_padding(n, k, s) for n, k, s in zip(sizes, kernel, stride, strict=True)
        )
    return padding


def to_image(a: np.ndarray, ndim: int) -> np.ndarray:
    """(N, C, L) -> (N, C, 1, L), a view; images (ndim 2) are returned unchanged."""
    return a[:, :, None, :] if ndim == 1 else a


def from_image(a: np.ndarray, ndim: int) -> np.ndarray:
    """(N, C, 1, L) -> (N, C, L), a view; images (ndim 2) are returned unchanged."""
    return a[:, :, 0, :] if ndim == 1 else a


def shape_text(shape) -> str:
    """(None, 3, 28, 28) -> "(N, 3, 28, 28)"; a batch axis of None prints as N."""
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


def _reads_only_padding(size: int, before: int, k: int, s: int, n_out: int) -> bool:
    """True when no window along this axis covers an input position."""
    return all(o * s + k - 1 < before or o * s >= before + size for o in range(n_out))


def _axis_text(what: str, axis: str, size, before, after, k, s) -> str:
    """'height 1 + padding (1, 1) = 3, kernel 1, stride 2 -> 2' and what is wrong."""
    padded = size + before + after
    pad = f" + padding ({before}, {after}) = {padded}" if before or after else ""
    text = f"{axis} {size}{pad}, {what} {k}, stride {s}"
    if padded < k:
        return text + f" -> the {what} does not fit"
    n_out = output_size(padded, k, s)
    text += f" -> {n_out}"
    if _reads_only_padding(size, before, k, s, n_out):
        one, many = _UNITS.get(axis, ("position", "positions"))
        starts = [o * s for o in range(n_out)]
        shown = ", ".join(str(v) for v in starts[:4]) + (", ..." if n_out > 4 else "")
        unit, verb = (one, "is") if size == 1 else (many, "are")
        text += (
            f" (windows at {many} {shown} of the {padded} padded {many}: only "
            f"padding; the input's {size} {unit} {verb} never read)"
        )
    return text


def window_grid(
    layer, shape, kernel, stride, padding, *, pool: bool = False
) -> ConvGrid:
    """Place the windows on a batch shape (N, C, *spatial), N possibly None.

    layer: the layer, named by its repr in messages; padding: "same" or explicit
    pairs.
    Raises ShapeError naming every axis's size, padding and output when a kernel
    does not fit or an axis's windows read only padding (the output would then
    not depend on the input at all).
    """
    sizes = tuple(shape[2:])
    pads = resolve_padding(padding, sizes, kernel, stride)
    axes = AXES[len(sizes)]
    rows = [
        (axis, n, before, after, k, s)
        for axis, n, (before, after), k, s in zip(
            axes, sizes, pads, kernel, stride, strict=True
        )
    ]
    what = "window" if pool else "kernel"
    too_big = [a for a, n, b, e, k, _ in rows if n + b + e < k]
    padding_only = [
        a
        for a, n, b, e, k, s in rows
        if n + b + e >= k
        and _reads_only_padding(n, b, k, s, output_size(n + b + e, k, s))
    ]
    if too_big or padding_only or min(sizes) < 1:
        per_axis_text = "; ".join(_axis_text(what, *row) for row in rows)
        if too_big:
            padded = [n + b + e for _, n, b, e, _, _ in rows]
            if len(sizes) == 2:
                problem = (
                    f"the {kernel[0]}x{kernel[1]} {what} does not fit in the padded "
                    f"input {padded[0]}x{padded[1]} along the " + " and ".join(too_big)
                )
            else:
                problem = (
                    f"the {what} of size {kernel[0]} does not fit in the padded "
                    f"input of length {padded[0]}"
                )
            hint = (
                "use a smaller kernel_size, pad the previous convolution "
                "(padding='same') or drop this pooling layer"
                if pool
                else "use a smaller kernel, more padding or larger inputs"
            )
        elif padding_only:
            problem = (
                "along the " + " and ".join(padding_only) + " every window reads "
                "only padding, so the output would not depend on the input"
            )
            hint = (
                "pad only the axes that need it, e.g. padding=(0, p) or "
                "((0, 0), (left, right)); for signals (N, C, L) use Conv1D"
                if len(sizes) == 2
                else "use less padding or a larger kernel"
            )
        else:
            problem = "an axis of the input is empty"
            hint = "every spatial axis needs at least one position"
        raise ShapeError(
            f"{layer!r}: {problem} (input {shape_text(shape)}: {per_axis_text}); {hint}"
        )
    if len(sizes) == 1:  # a signal is an image of height 1
        (H, W), (KH, KW), (SH, SW) = (1, sizes[0]), (1, kernel[0]), (1, stride[0])
        pads = ((0, 0), *pads)
    else:
        (H, W), (KH, KW), (SH, SW) = sizes, kernel, stride
    (top, bottom), (left, right) = pads
    return ConvGrid(H, W, KH, KW, SH, SW, top, bottom, left, right)


def image_shape_message(layer: str, channels: int | None, shape) -> str:
    """Why `shape` is not a batch of channels-first images, with a hint.

    channels: the channel count the layer needs (None: any). shape is the full
    batch shape, its first entry None when the batch size is not known.
    """
    C = "C" if channels is None else str(channels)
    got = shape_text(shape)
    msg = f"{layer} expects input of shape (N, C, H, W) = (N, {C}, H, W), got {got}"
    if len(shape) == 3:
        if channels in (None, 1):
            return (
                msg + "; add a channel axis: X.reshape(N, 1, H, W), i.e. X[:, None]"
                " (signals (N, C, L) go to the 1-D layers: Conv1D, MaxPool1D)"
            )
        return (
            msg + f"; a single image of shape ({C}, H, W) needs a batch axis: x[None]"
            " (signals (N, C, L) go to the 1-D layers: Conv1D, MaxPool1D)"
        )
    if len(shape) == 2:
        return (
            msg
            + "; the input is already flat: put Flatten() after, not before, this layer"
        )
    if len(shape) != 4:
        return msg
    if channels is not None and shape[-1] == channels:
        return (
            msg
            + "; this looks channels-last (N, H, W, C): glassnet is channels-first, "
            "use X.transpose(0, 3, 1, 2)"
        )
    if channels is not None:
        return msg + f"; in_channels should be {shape[1]}"
    return msg


def signal_shape_message(layer: str, channels: int | None, shape) -> str:
    """Why `shape` is not a batch of channels-first signals (N, C, L), with a hint."""
    C = "C" if channels is None else str(channels)
    got = shape_text(shape)
    msg = f"{layer} expects input of shape (N, C, L) = (N, {C}, L), got {got}"
    if len(shape) == 2:
        if channels in (None, 1):
            return msg + "; add a channel axis: X.reshape(N, 1, L), i.e. X[:, None]"
        return msg + f"; a single signal of shape ({C}, L) needs a batch axis: x[None]"
    if len(shape) == 4:
        return msg + "; images (N, C, H, W) go to the 2-D layers: Conv2D, MaxPool2D"
    if len(shape) != 3:
        return msg
    if channels is not None and shape[-1] == channels:
        return (
            msg + "; this looks channels-last (N, L, C): glassnet is channels-first, "
            "use X.transpose(0, 2, 1)"
        )
    if channels is not None:
        return msg + f"; in_channels should be {shape[1]}"
    return msg


def check_rank(layer, ndim: int, channels: int | None, shape) -> None:
    """ShapeError unless shape is (N, C, H, W) (ndim 2) or (N, C, L) (ndim 1);
    the message names the layer by its repr."""
    if len(shape) == 2 + ndim and (channels is None or shape[1] == channels):
        return
    message = image_shape_message if ndim == 2 else signal_shape_message
    raise ShapeError(message(repr(layer), channels, shape))
