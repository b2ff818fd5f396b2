"""The chapter conventions of ``book/CONVENTIONS.md`` that a program can check, on the
committed notebooks (no execution): references by label, the closing sections, linked
citations and numbered figure captions. The executed book's outputs are checked in
``test_book.py`` (no stray object reprs, no warnings)."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
CLOSING = ["Summary", "Exercises", "References"]
FIGURE_CALL = re.compile(r"\.show\(\)")


def _markdown(path) -> list:
    return [
        c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
    ]


def _prose(text: str) -> str:
    """Markdown without code spans, fenced code and link targets (where a file name may
    legitimately contain a chapter's number)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)|<https?://[^>]*>", "]", text)


@pytest.mark.parametrize(
    "path", CHAPTERS + [ROOT / "book" / "preface.md"], ids=lambda p: p.name
)
def test_no_chapter_number_is_typed_by_hand(path):
    """Chapters are referred to by label ({doc} or {ref}), so a renumbering or a chapter
    that does not exist yet cannot leave a wrong number in the prose."""
    texts = (
        [c.source for c in _markdown(path)]
        if path.suffix == ".ipynb"
        else [path.read_text()]
    )
    typed = [
        m.group(0)
        for text in texts
        for m in re.finditer(r"\b[Cc]hapters? \d+", _prose(text))
    ]
    assert not typed, f"{path.name}: {typed}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_summary_exercises_and_references(path):
    headings = [
        line[3:].strip()
        for cell in _markdown(path)
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    assert headings[-3:] == CLOSING, f"{path.name} ends with {headings[-3:]}"
    exercises = next(
        c.source for c in _markdown(path) if c.source.startswith("## Exercises")
    )
    assert f"exercises/student/{path.name}" in exercises
    assert "colab.research.google.com" in exercises
    assert (ROOT / "exercises" / "student" / path.name).is_file()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_reference_has_a_link_and_every_arxiv_id_is_listed(path):
    cells = _markdown(path)
    references = next(c.source for c in cells if c.source.startswith("## References"))
    entries = [line for line in references.splitlines() if line.startswith("- ")]
    assert entries, f"{path.name}: no references"
    for entry in entries:
        assert re.search(
            r"<https://(arxiv\.org/abs/|doi\.org/10\.)|<https://www\.(itu\.int|rfc-editor\.org)/|"
            r"<https://(r0k\.us|openlibrary\.org)/",
            entry,
        ), f"{path.name}: no link in {entry!r}"
    text = "\n".join(c.source for c in cells)
    for identifier in re.findall(r"arXiv[: ]+(\d{4}\.\d{4,5})", text):
        assert f"https://arxiv.org/abs/{identifier}" in references, (
            f"{path.name}: arXiv {identifier} not listed"
        )


def _figure_cells():
    for path in CHAPTERS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and FIGURE_CALL.search(cell.source):
                yield path, cell


def test_every_figure_has_a_numbered_caption_and_a_label():
    """myst-nb wraps a cell's figure in a numbered figure from the cell's metadata
    (``mystnb.figure``: ``name`` and ``caption``); one figure a cell, so labels are
    unique."""
    names, missing = [], []
    for path, cell in _figure_cells():
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if not (figure.get("name") and figure.get("caption")):
            missing.append(f"{path.name}: {cell.source.splitlines()[0][:60]}")
            continue
        assert len(FIGURE_CALL.findall(cell.source)) == 1, (
            f"{path.name}, {figure['name']}: one figure a cell"
        )
        assert figure["name"].startswith(f"fig-{path.name[:4]}-"), figure["name"]
        names.append(figure["name"])
    assert not missing, f"figures without a caption: {missing}"
    assert len(names) == len(set(names)), "figure labels must be unique"
    assert len(names) >= 7


TABLE_CALL = re.compile(r"tables\.(Table|bd_table)\(")
TABLE_NAME = re.compile(r"""["'](tbl-[a-z0-9-]+)["']""")
PADDED_HEADER = re.compile(
    r"""\{'[^']+':[<>^]?\d+s?\}"""
)  # f"{'lambda':>8}": a printed column


def test_every_table_is_a_captioned_table_with_a_unique_label_outside_figure_cells():
    """Tables are ``lic_teach.tables.Table`` objects (numbered "Table 3.1" in the book),
    never columns printed with padded f-strings; a cell with figure metadata wraps all
    it displays in the figure, so a table never shares a cell with one."""
    names, printed = [], []
    for path in CHAPTERS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            if PADDED_HEADER.search(cell.source):
                printed.append(f"{path.name}: {cell.source.splitlines()[0][:60]}")
            found = TABLE_NAME.findall(
                cell.source
            )  # a helper's caller may name the table
            if not (TABLE_CALL.search(cell.source) or found):
                continue
            assert not cell.metadata.get("mystnb", {}).get("figure"), (
                f"{path.name}: a table in a figure cell"
            )
            assert all(n.startswith(f"tbl-{path.name[:4]}-") for n in found), found
            assert found or "def " in cell.source, (
                f"{path.name}: a table without a tbl- name: {cell.source[:80]}"
            )
            names += found
    assert not printed, f"columns printed by hand: {printed}"
    assert len(names) == len(set(names)), "table labels must be unique"
    assert len(names) >= 20


FIGURE_TITLE = re.compile(
    r"""(?<![\w.])title=f?("[^"]*"|'[^']*')"""
)  # not xaxis_title=, title_text=


def test_figure_titles_are_short_enough_to_read_at_the_drawn_width():
    """A figure's title is a label, and the caption carries the sentence: at most 60
    characters, each ``{...}`` field counted as 8 (a number or a short name)."""
    long, seen = [], 0
    for path, cell in _figure_cells():
        for match in FIGURE_TITLE.finditer(cell.source):
            seen += 1
            shown = re.sub(r"\{[^}]*\}", "x" * 8, match.group(1)[1:-1])
            if len(shown) > 60:
                long.append(f"{path.name}: {match.group(1)}")
    assert seen >= 20
    assert not long, long
