"""Plain-text layout for a terminal of any width: the width, and tables that fit it.

terminal_width() is COLUMNS when set, else the terminal's size, else 80.
fit_table(header, rows, width, ...) lays a table out in that width: it wraps the
columns allowed to wrap, then leaves out low-value columns in the order given,
and, when even that is too wide, prints each row as a block of "header: value"
lines. Every line it returns is at most `width` characters.
"""

import os
import sys
import textwrap

SEP = "  "  # between columns
MIN_FLEX = 8  # a wrapping column is never narrower than this


def terminal_width() -> int:
    """COLUMNS (if a positive integer), else the terminal's width, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns > 0 else 80


def wrap_text(text: str, width: int, indent: str = "", rest: str = "") -> list[str]:
    """text wrapped to width (long words broken), keeping its own line breaks."""
    lines = []
    for part in text.split("\n"):
        lines += textwrap.wrap(
            part,
            max(width, len(indent) + 1, len(rest) + 1),
            initial_indent=indent,
            subsequent_indent=rest,
            break_on_hyphens=False,
        ) or [indent.rstrip()]
        indent = rest
    return lines


def cell_lines(cell: str, width: int | None) -> list[str]:
    """A cell's lines ("\\n" splits them), each wrapped to width when given."""
    if width is None:
        return cell.split("\n")
    # a wrapped line's continuation is indented, so it reads as the same entry
    return [w for p in cell.split("\n") for w in (wrap_text(p, width, "", " ") or [""])]


def fit_widths(
    natural: list[int],
    width: int,
    *,
    minimum: list[int],
    flex: set[int],
    drop: list[int],
) -> tuple[list[int], list[int]] | None:
    """(kept columns, their widths) that fit in width, or None when none do.

    First the flexible columns shrink (the widest first, down to `minimum`), then
    the columns in `drop` are left out one at a time, least valuable first."""
    kept = list(range(len(natural)))
    for k in range(len(drop) + 1):
        if k:
            kept.remove(drop[k - 1])
        widths = {i: natural[i] for i in kept}
        excess = sum(widths.values()) + len(SEP) * (len(kept) - 1) - width
        while excess > 0:
            shrinkable = [i for i in kept if i in flex and widths[i] > minimum[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
        if excess <= 0:
            return kept, [widths[i] for i in kept]
    return None


def pad(cells: list[str], widths: list[int], align: str) -> str:
    padded = [
        c.rjust(w) if a == "r" else c.ljust(w)
        for c, w, a in zip(cells, widths, align, strict=True)
    ]
    return SEP.join(padded).rstrip()


def row_lines(row: list[str], widths: list[int], align: str) -> list[str]:
    """One table row as text lines: each cell wrapped to its column's width."""
    parts = [cell_lines(c, w) for c, w in zip(row, widths, strict=True)]
    height = max(len(p) for p in parts)
    return [
        pad([p[h] if h < len(p) else "" for p in parts], widths, align)
        for h in range(height)
    ]


def record_lines(header: list[str], row: list[str], width: int) -> list[str]:
    """A row too wide for any table: one "header: value" line (wrapped) per cell."""
    lines = []
    for h, cell in zip(header, row, strict=True):
        if cell.strip() in ("", "-"):
            continue
        lines += wrap_text(f"{h}: {cell}".replace("\n", "; "), width, "  ", "    ")
    return lines


def fit_table(
    header: list[str],
    rows: list[list[str]],
    width: int,
    *,
    align: str | None = None,
    flex: set[int] | None = None,
    drop: list[int] | None = None,
) -> list[str]:
    """A header, a rule and rows, every line at most width characters; a line
    names the columns left out, if any."""
    align = align or "l" * len(header)
    flex = set(range(len(header))) if flex is None else flex
    natural = [
        max([len(h)] + [len(x) for r in rows for x in cell_lines(r[i], None)])
        for i, h in enumerate(header)
    ]
    minimum = [
        min(natural[i], max(MIN_FLEX, *(len(w) for w in h.split()))) for i, h in
        enumerate(header)
    ]  # fmt: skip
    fit = fit_widths(natural, width, minimum=minimum, flex=flex, drop=drop or [])
    if fit is None:
        lines = []
        for r in rows:
            lines += [r[0][: width - 1] + ":"] + record_lines(header[1:], r[1:], width)
        return lines
    kept, widths = fit
    pick = lambda r: [r[i] for i in kept]  # noqa: E731
    shown = "".join(align[i] for i in kept)
    lines = row_lines(pick(header), widths, shown)
    lines.append(SEP.join("-" * w for w in widths))
    for r in rows:
        lines += row_lines(pick(r), widths, shown)
    gone = [header[i] for i in range(len(header)) if i not in kept]
    return lines + left_out(gone, width)


def left_out(names: list[str], width: int = 80) -> list[str]:
    if not names:
        return []
    text = f"(not shown at this width: {', '.join(names)}; to_dict() has every value)"
    return wrap_text(text, width)
