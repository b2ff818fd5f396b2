"""Captioned tables: the markdown the book numbers, the HTML Jupyter shows, the text
elsewhere, and the BD-rate table's caveats."""

import pytest

from lic_teach import tables
from lic_teach.metrics import RDCurve


def test_markdown_is_a_named_list_table_whose_cells_stay_literal():
    MarkdownIt = pytest.importorskip(
        "markdown_it"
    ).MarkdownIt  # with the book's tools, not on Colab
    table = tables.Table(
        ["codec", "BD-rate"],
        [["g_a *and* |x|", "-3.2%"], ["1. first", "+7.4%"]],
        "A caption with `code` and $x^2$.",
        "tbl-ch01-demo",
    )
    text = table._repr_markdown_()
    lines = text.splitlines()
    assert lines[:3] == [
        "~~~{list-table} A caption with `code` and $x^2$.",
        ":header-rows: 1",
        ":name: tbl-ch01-demo",
    ]
    assert lines[-1] == "~~~"
    body = "\n".join(lines[4:-1])
    # the directive's body is a two-level bullet list: rows, then cells, read as plain
    # text
    tokens = MarkdownIt("commonmark").parse(body)
    cells = [t.content for t in tokens if t.type == "inline"]
    rendered = [MarkdownIt("commonmark").renderInline(c) for c in cells]
    assert rendered == [
        "codec",
        "BD-rate",
        "g_a *and* |x|",
        "-3.2%",
        "1. first",
        "+7.4%",
    ]
    rows = sum(1 for t in tokens if t.type == "bullet_list_open")
    assert rows == 1 + 3, "one list of rows, one list of cells per row"


def test_an_empty_cell_is_blank_not_an_escape():
    text = tables.Table(["a", "b"], [["", "x"]], "Cap.", "tbl-x")._repr_markdown_()
    assert "* - \u00a0\n  - x" in text
    assert "\\" not in text


def test_html_and_text_carry_the_caption_and_every_cell():
    table = tables.Table(["a", "b"], [["<x>", 1.5]], "Cap & more", "tbl-x")
    html = table._repr_html_()
    assert "<caption>Cap &amp; more</caption>" in html
    assert "<td>&lt;x&gt;</td><td>1.5</td>" in html
    assert repr(table).splitlines() == [
        "Cap & more",
        "  a    b",
        "---  ---",
        "<x>  1.5",
    ]


@pytest.mark.parametrize(
    "header, rows, caption, name, message",
    [
        (
            ["a", "b"],
            [["1"]],
            "c",
            "n",
            "2 columns in the header, rows of \\[1\\] cells",
        ),
        (["a"], [], "c", "n", "has no rows"),
        (["a"], [["1"]], " ", "n", "needs a caption and a name"),
        (["a"], [["1"]], "two\nlines", "n", "caption is one line"),
        (["a"], [["1"]], "c", "tbl x", "name a label"),
    ],
)
def test_a_malformed_table_is_refused(header, rows, caption, name, message):
    with pytest.raises(ValueError, match=message):
        tables.Table(header, rows, caption, name)


def test_bd_table_gives_range_and_caveats():
    anchor = RDCurve(name="a", bpp=[0.2, 0.4, 0.8], psnr=[26.0, 29.0, 32.0])
    better = RDCurve(name="b", bpp=[0.18, 0.36, 0.72], psnr=[26.0, 29.0, 32.0])
    flat = RDCurve(name="f", bpp=[0.2, 0.38, 0.49], psnr=[25.3, 27.35, 27.47])
    apart = RDCurve(name="x", bpp=[3.0, 4.0], psnr=[50.0, 51.0])
    table = tables.bd_table(
        anchor, {"better": better, "flat": flat, "apart": apart}, "Cap.", "tbl-bd"
    )
    assert table.rows[0][:3] == ["better", "-10.0%", "26.00-32.00 dB"]
    assert table.rows[0][3].startswith("+")
    assert table.rows[0][4] == ""
    assert table.rows[1][4] == "flat top: test 0.33 dB"
    assert table.rows[2][1:4] == ["", "", ""]
    assert table.rows[2][4].startswith("not defined: the two curves")


def test_mean_spread_shows_the_signed_mean_and_the_sample_deviation():
    assert tables.mean_spread([1.0, 2.0, 3.0], 2) == "+2.00 ± 1.00"


def test_mean_spread_of_one_value_has_no_spread():
    assert tables.mean_spread([-0.1234], 3) == "-0.123"


def test_mean_spread_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        tables.mean_spread([])
