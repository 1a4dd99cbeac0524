"""Table and Report: one description of a report, three renderings.

A report is a title, one table (optionally cut into titled sections) and notes.
The same cells print as aligned plain text, as Markdown, and as HTML for
Jupyter; `to_dict` is each report's own (its numbers, not its text).
A cell may hold several lines ("\\n"): plain text stacks them, Markdown and
HTML separate them with <br>.
"""

import html
import textwrap
from dataclasses import dataclass, field

from glassnet._terminal import (
    MIN_FLEX,
    fit_widths,
    left_out,
    record_lines,
    row_lines,
    terminal_width,
    wrap_text,
)


@dataclass
class Section:
    """Rows under an optional title line (explain uses one section per layer)."""

    title: str | None
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


class Table:
    """A header and sections of string rows; `align` is "l" or "r" per column."""

    def __init__(
        self,
        header: list[str],
        sections: list[Section],
        align: str | None = None,
        wrap: dict[int, int] | None = None,
        code: set[int] | None = None,
        flex: set[int] | None = None,
        drop: list[int] | None = None,
    ) -> None:
        self.header = list(header)
        self.sections = sections
        self.align = align or "l" * len(header)
        self.wrap = wrap or {}  # column -> width at which plain text wraps
        self.code = code or set()  # columns shown as `code` in Markdown
        # columns that may wrap narrower to fit the terminal (default: all), and
        # the columns left out when that is not enough, least valuable first
        self.flex = set(range(len(header))) if flex is None else set(flex)
        self.drop = list(drop or [])
        for section in sections:
            for row in section.rows:
                if len(row) != len(self.header):
                    raise ValueError(f"row {row} does not match header {self.header}")

    def _lines(self, row: list[str]) -> list[list[str]]:
        """Each cell of row as its plain-text lines, wrapped where asked."""
        cells = []
        for i, cell in enumerate(row):
            parts = cell.split("\n")
            if i in self.wrap:
                parts = [
                    w for p in parts for w in (textwrap.wrap(p, self.wrap[i]) or [""])
                ]
            cells.append(parts)
        return cells

    def natural_width(self) -> int:
        """The width of the plain-text table when nothing needs to wrap."""
        natural = [len(h) for h in self.header]
        for section in self.sections:
            for row in section.rows:
                for i, parts in enumerate(self._lines(row)):
                    natural[i] = max(natural[i], *(len(p) for p in parts))
        return sum(natural) + 2 * (len(natural) - 1)

    def to_text(self, width: int | None = None) -> str:
        """Aligned plain text, every line at most `width` characters (default:
        the terminal's width): wrapping columns narrow, then the `drop` columns
        are left out (a line names them), then rows print as blocks."""
        width = width or terminal_width()
        rows = [
            ["\n".join(p) for p in self._lines(r)]
            for s in self.sections
            for r in s.rows
        ]
        natural = [
            max([len(h)] + [len(x) for r in rows for x in r[i].split("\n")])
            for i, h in enumerate(self.header)
        ]
        minimum = [
            min(natural[i], max(MIN_FLEX, *(len(w) for w in h.split() or [""])))
            for i, h in enumerate(self.header)
        ]
        fit = fit_widths(
            natural, width, minimum=minimum, flex=self.flex, drop=self.drop
        )
        lines, k = [], 0
        if fit is not None:
            kept, widths = fit
            align = "".join(self.align[i] for i in kept)
            lines += row_lines([self.header[i] for i in kept], widths, align)
            lines.append("  ".join("-" * w for w in widths))
        for n, section in enumerate(self.sections):
            if section.title is not None:
                lines += [""] if n else []
                lines += wrap_text(section.title, width)
            for _ in section.rows:
                row = rows[k]
                k += 1
                if fit is None:
                    lines += wrap_text(row[0].replace("\n", " "), width)
                    lines += record_lines(self.header[1:], row[1:], width)
                else:
                    lines += row_lines([row[i] for i in kept], widths, align)
            for note in section.notes:
                lines += wrap_text(note, min(width, 100), "  * ", "    ")
        if fit is not None:
            gone = [h for i, h in enumerate(self.header) if i not in kept]
            lines += left_out(gone, width)
        return "\n".join(lines)

    def to_markdown(self) -> str:
        def row(cells: list[str], code: set[int]) -> str:
            shown = [
                markdown_code(c) if i in code else markdown_text(c)
                for i, c in enumerate(cells)
            ]
            return "| " + " | ".join(shown) + " |"

        rule = "|" + "|".join("---:" if a == "r" else "---" for a in self.align) + "|"
        blocks = []
        for section in self.sections:
            lines = [f"**{markdown_text(section.title)}**", ""] if section.title else []
            lines += [row(self.header, set()), rule]
            lines += [row(r, self.code) for r in section.rows]
            if section.notes:
                lines += [""] + [f"- {markdown_text(n)}" for n in section.notes]
            blocks.append("\n".join(lines))
        if not self.sections:
            blocks.append(row(self.header, set()) + "\n" + rule)
        return "\n\n".join(blocks)

    def to_html(self) -> str:
        def cell(text: str, tag: str, a: str = "l") -> str:
            style = (
                ' style="text-align:right"' if a == "r" else ' style="text-align:left"'
            )
            body = "<br>".join(html.escape(part) for part in text.split("\n"))
            return f"<{tag}{style}>{body}</{tag}>"

        n = len(self.header)
        parts = [
            "<table>",
            "<tr>" + "".join(cell(h, "th") for h in self.header) + "</tr>",
        ]
        for section in self.sections:
            if section.title is not None:
                title = html.escape(section.title)
                parts.append(
                    f'<tr><th colspan="{n}" style="text-align:left">{title}</th></tr>'
                )
            for r in section.rows:
                cells = "".join(
                    cell(c, "td", a) for c, a in zip(r, self.align, strict=True)
                )
                parts.append(f"<tr>{cells}</tr>")
            for note in section.notes:
                parts.append(
                    f'<tr><td colspan="{n}" style="text-align:left">'
                    f"<em>{html.escape(note)}</em></td></tr>"
                )
        parts.append("</table>")
        return "".join(parts)


def markdown_text(text: str) -> str:
    """Text safe inside a Markdown table cell: | and * escaped, lines joined by <br>."""
    text = text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")
    return text.replace("\n", "<br>")


def markdown_code(text: str) -> str:
    """Each line as inline code (a table cell cannot hold a code block)."""
    return "<br>".join(f"`{line}`" if line else "" for line in text.split("\n"))


class Report:
    """Base of the summary, explain and gradient-flow reports.

    Subclasses build `_table()` and list `_notes()` (warnings and totals);
    `str(report)` is the plain-text table, `report.to_markdown()` the Markdown,
    and Jupyter shows `_repr_html_()`. `format="markdown"` makes `str` (and so
    `print`) give Markdown.
    """

    title = ""
    format = "text"

    def _table(self) -> Table:
        raise NotImplementedError

    def _narrow_table(self) -> "Table | None":
        """The table for a terminal too narrow for _table(): fewer, merged
        columns whose cells wrap well (None: _table() wraps and drops itself)."""
        return None

    def _notes(self) -> list[str]:
        return []

    def to_dict(self) -> dict:
        raise NotImplementedError

    def to_text(self, width: int | None = None) -> str:
        """The plain-text report, every line at most `width` characters (default:
        COLUMNS, else the terminal's width, else 80)."""
        width = width or terminal_width()
        table = self._table()
        if table.natural_width() > width:
            table = self._narrow_table() or table
        lines = [*wrap_text(self.title, width), "", table.to_text(width)]
        notes = self._notes()
        if notes:
            lines.append("")
            for note in notes:
                lines += wrap_text(note, width, "", "  ")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        parts = [f"**{markdown_text(self.title)}**", self._table().to_markdown()]
        notes = self._notes()
        if notes:
            parts.append("\n".join(f"- {markdown_text(n)}" for n in notes))
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self._notes())
        notes = f"<ul>{notes}</ul>" if notes else ""
        return (
            f"<p><b>{html.escape(self.title)}</b></p>{self._table().to_html()}{notes}"
        )

    def __str__(self) -> str:
        return self.to_markdown() if self.format == "markdown" else self.to_text()

    def __repr__(self) -> str:  # the REPL shows the table, as print would
        return self.to_text()


def shape_str(shape) -> str:
    """(150, 4) -> "(150, 4)", (5,) -> "(5,)", None -> "?"."""
    if shape is None:
        return "?"
    return str(tuple(int(s) for s in shape))


def count_str(n: int) -> str:
    """12345 -> "12,345"."""
    return f"{int(n):,}"


def bytes_str(n: float) -> str:
    """A byte count for people: exact below 100 KiB (2,400 B), then 3.2 MiB."""
    if n < 100 * 2**10:
        return f"{round(n):,} B"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{round(n):,} B"  # pragma: no cover - unreachable


def layer_name(layer) -> str:
    """Dense(4, 5), Tanh, Conv2D(1, 2, 3): the class and its config values;
    Residual, Concat(axis=1), Sequential for layers that hold others (their
    layers are shown on rows of their own; a nested model's seed and dtype are
    left out)."""
    config = layer.get_config() if hasattr(layer, "get_config") else {}
    name = type(layer).__name__
    if layer.children():
        shown = [f"{k}={v!r}" for k, v in config.items() if k not in ("seed", "dtype")]
        return f"{name}({', '.join(shown)})" if shown else name
    if not config:
        return name
    return f"{name}({', '.join(repr(v) for v in config.values())})"
