"""Tables with a numbered caption.

A :class:`Table` displays as MyST markdown in the built book (a ``list-table``
directive, which Sphinx numbers "Table 3.1" and which ``{numref}`` can refer to by its
name), as an HTML table with its caption in Jupyter and on Colab, and as aligned text
elsewhere. The book's configuration ranks markdown above HTML so the numbered form is
the one it shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from lic_teach import metrics

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def _markdown_cell(value) -> str:
    """One cell as inline markdown: special characters escaped, and a leading ``-``,
    ``+`` or number-and-dot escaped so it is not read as a list marker."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
    text = re.sub(r"^(\d+)([.)])(?= |$)", r"\1\\\2", text)
    return "\\" + text if text.startswith(("-", "+")) else text


class Table:
    """A captioned table: ``header`` names the columns, every row has as many cells.

    Cells are shown as given (format numbers before, e.g. ``f"{psnr:.2f}"``); ``name``
    is the label ``{numref}`` uses, ``tbl-chNN-...`` by the book's conventions."""

    def __init__(
        self, header: Sequence, rows: Sequence[Sequence], caption: str, name: str
    ):
        self.header = [str(h) for h in header]
        self.rows = [[str(cell) for cell in row] for row in rows]
        if not self.rows:
            raise ValueError(f"table {name!r} has no rows")
        widths = {len(row) for row in self.rows}
        if widths != {len(self.header)}:
            raise ValueError(
                f"table {name!r}: {len(self.header)} columns in the header, "
                f"rows of {sorted(widths)} cells"
            )
        if not caption.strip() or not name.strip():
            raise ValueError("a table needs a caption and a name")
        if (
            "\n" in caption
            or "~~~" in caption
            or not re.fullmatch(r"[\w-]+", name.strip())
        ):
            raise ValueError(
                "a table's caption is one line without '~~~' and its name a label: "
                f"{name!r}"
            )
        self.caption, self.name = caption.strip(), name.strip()

    def _repr_markdown_(self) -> str:
        # a tilde fence: its caption (the info string) may contain backticks, a backtick
        # fence's may not
        lines = [
            f"~~~{{list-table}} {self.caption}",
            ":header-rows: 1",
            f":name: {self.name}",
            "",
        ]
        for row in [self.header] + self.rows:
            cells = [_markdown_cell(cell) or "\u00a0" for cell in row]
            lines.append(f"* - {cells[0]}")
            lines.extend(f"  - {cell}" for cell in cells[1:])
        return "\n".join(lines + ["~~~"])

    def _repr_html_(self) -> str:
        def row_html(cells, tag):
            return (
                "<tr>"
                + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells)
                + "</tr>"
            )

        body = "".join(row_html(row, "td") for row in self.rows)
        return (
            f"<table><caption>{html.escape(self.caption)}</caption>"
            f"<thead>{row_html(self.header, 'th')}</thead><tbody>{body}</tbody></table>"
        )

    def __repr__(self) -> str:
        columns = list(zip(self.header, *self.rows))
        widths = [max(len(cell) for cell in column) for column in columns]

        def line(cells):
            return "  ".join(
                cell.rjust(width) for cell, width in zip(cells, widths)
            ).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join(
            [self.caption, line(self.header), rule] + [line(row) for row in self.rows]
        )


def bd_table(anchor, tests: Mapping, caption: str, name: str) -> Table:
    """BD-rate and BD-PSNR of each curve in ``tests`` (label -> curve) against
    ``anchor``, each with the PSNR range it averages over
    (:func:`lic_teach.metrics.bd_comparison`). The last column flags a comparison that
    is undefined, or unreliable because a curve is flat at its top (its gain in dB per
    doubling of rate there is given)."""
    rows = []
    for label, curve in tests.items():
        c = metrics.bd_comparison(anchor, curve)
        if c["error"]:
            rows.append([label, "", "", "", f"not defined: {c['error']}"])
            continue
        note = (
            "flat top: "
            + ", ".join(f"{who} {slope:.2f} dB" for who, slope in c["flat"].items())
            if c["flat"]
            else ""
        )
        rows.append(
            [
                label,
                f"{c['bd_rate']:+.1f}%",
                f"{c['low']:.2f}-{c['high']:.2f} dB",
                f"{c['bd_psnr']:+.2f} dB",
                note,
            ]
        )
    return Table(["", "BD-rate", "over PSNR", "BD-PSNR", "caveat"], rows, caption, name)


def mean_spread(values: Sequence[float], digits: int = 2) -> str:
    """A table cell for a figure measured over seeds: the signed mean and the sample
    standard deviation (``ddof=1``), as ``"+0.12 ± 0.03"``; one value alone is shown
    without a spread, and no values raise ``ValueError``."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_spread needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:+.{digits}f}"
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return f"{mean:+.{digits}f} ± {variance**0.5:.{digits}f}"
