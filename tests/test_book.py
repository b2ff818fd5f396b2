"""The book as a reader gets it: every chapter executes at the ``smoke`` budget in under
60 s without a cell error, and the HTML book builds from the executed chapters with
Sphinx warnings treated as errors, its plotly figures served from the book itself."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
SMOKE_LIMIT_S = 60
SETUP_CELL = (ROOT / "book" / "_templates" / "setup_cell.py").read_text().strip()


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [
        c for p in toc.get("parts", []) for c in p["chapters"]
    ]
    while stack:
        entry = stack.pop(0)
        entries.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return entries


@pytest.fixture(scope="session")
def executed_book(tmp_path_factory):
    """A copy of the book with every chapter executed at the smoke budget."""
    return _execute_book(tmp_path_factory, {}, 2 * SMOKE_LIMIT_S)


def _execute_book(tmp_path_factory, environment: dict, cell_timeout: float):
    """A copy of the book with every chapter executed at the smoke budget, with
    ``environment`` added to the kernels' environment and at most ``cell_timeout``
    seconds a cell; ``(copy, seconds, errors)``."""
    copy = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "book", copy / "book")
    (copy / ".pytest_cache").mkdir()  # what `make test` leaves behind in a checkout
    (copy / ".pytest_cache" / "README.md").write_text("# pytest cache directory #\n")
    seconds, errors = {}, {}
    first, second = _streams(sorted((copy / "book").glob("*.ipynb")))

    def execute(paths):
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            try:
                NotebookClient(
                    notebook,
                    timeout=cell_timeout,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(path.parent)}},
                ).execute()
            except CellExecutionError as error:
                errors[path.name] = str(error)[-3000:]
            seconds[path.name] = time.perf_counter() - start
            nbformat.write(notebook, path)

    settings = {
        "LIC_BUDGET": "smoke",
        # never a stale home cache
        "LIC_TEACH_CACHE": str(tmp_path_factory.mktemp("cache")),
        "OMP_NUM_THREADS": "1",  # one core per kernel
        **environment,
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(execute, [first, second]))
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    return copy, seconds, errors


@pytest.fixture(scope="session")
def executed_on_stand_in(tmp_path_factory):
    """The book executed at the smoke budget with ``budget().device`` the CPU's
    stand-in for a second device (``lic_teach.device_check``)."""
    return _execute_book(
        tmp_path_factory, {"LIC_TEACH_CHECK_DEVICES": "1"}, 4 * SMOKE_LIMIT_S
    )


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_chapter_keeps_its_tensors_on_the_budgets_device(executed_on_stand_in, chapter):
    """Each chapter runs with the budget's device a stand-in for a GPU: no operation
    mixes it with the CPU, no ``.numpy()`` of a tensor on it, no generator of the other
    device (untimed: the check slows every operation)."""
    _, _, errors = executed_on_stand_in
    assert chapter not in errors, errors.get(chapter)
    notebook = nbformat.read(executed_on_stand_in[0] / "book" / chapter, as_version=4)
    assert "budget 'smoke' on meta" in _printed(notebook), "it ran on the stand-in"


# The chapters run in two streams at once, one kernel on each core, each chapter still
# timed against the smoke limit (while the other stream runs: never an easier test).
# No chapter trains another's models first (they start from the zoo), but the
# hyperprior and context-model chapters' entropy models, trained on the zoo's
# transforms, are cached and reused by the context-model and evaluation chapters: those
# chapters run in book order in the first stream, the others in the second, which hands
# its last chapters to the first while that has fewer.
SHARING_A_CACHE = ("experiments.train_architectures(", "evaluation.run(")


def _streams(paths):
    """``paths`` split into the two streams described above, each in book order."""
    first = [p for p in paths if any(s in p.read_text() for s in SHARING_A_CACHE)]
    second = [p for p in paths if p not in first]
    while len(first) < len(second) - 1:
        first.append(second.pop())
    return [sorted(first), second]


def _printed(notebook) -> str:
    """All that a notebook's code cells printed."""
    return "".join(
        o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def _slowest_cells(notebook, count: int = 4) -> str:
    """The cells that took longest, from the timing nbclient records in each cell."""
    timed = []
    for index, cell in enumerate(notebook.cells):
        execution = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in execution and "shell.execute_reply" in execution:
            start, end = (
                datetime.fromisoformat(execution[k].replace("Z", "+00:00"))
                for k in ("iopub.execute_input", "shell.execute_reply")
            )
            timed.append(
                ((end - start).total_seconds(), index, cell.source.split("\n")[0][:60])
            )
    return "; ".join(
        f"cell {i} {t:.0f} s ({first})"
        for t, i, first in sorted(timed, reverse=True)[:count]
    )


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_chapter_runs_at_smoke_budget(executed_book, chapter):
    _, seconds, errors = executed_book
    assert chapter not in errors, errors.get(chapter)
    notebook = nbformat.read(executed_book[0] / "book" / chapter, as_version=4)
    assert seconds[chapter] < SMOKE_LIMIT_S, (
        f"{chapter} took {seconds[chapter]:.0f} s at smoke; slowest cells: "
        + _slowest_cells(notebook)
    )
    assert "budget 'smoke'" in _printed(notebook), "a chapter prints its budget"


STRAY = re.compile(r"<[\w.]+ (object )?at 0x[0-9a-f]+>|<torch\._C\.Generator")


@pytest.mark.slow
def test_executed_chapters_print_no_stray_reprs_or_warnings(executed_book):
    """A cell's last line must not leak an object's repr (``<torch._C.Generator ...>``)
    and no cell may warn: the reader sees every output."""
    problems = []
    for path in sorted((executed_book[0] / "book").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                text = output.get("text", "") + "".join(
                    str(v)
                    for k, v in output.get("data", {}).items()
                    if k == "text/plain"
                )
                if (
                    STRAY.search(text)
                    or output.get("name") == "stderr"
                    and "Warning" in text
                ):
                    problems.append(f"{path.name}: {text.strip()[:120]}")
    assert not problems, problems


@pytest.fixture(scope="session")
def built_book(executed_book):
    """The HTML book built from the executed chapters: ``(html folder, build
    result)``."""
    copy, _, errors = executed_book
    assert not errors
    config = yaml.safe_load((copy / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # already executed above
    (copy / "_config.yml").write_text(yaml.safe_dump(config))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", str(copy), "--warningiserror", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return copy / "_build" / "html", result


@pytest.mark.slow
def test_book_builds_without_warnings_and_serves_plotly_itself(built_book):
    html, result = built_book
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (html / "index.html").is_file()
    plotly_js = html / "_static" / "plotly.min.js"
    assert plotly_js.stat().st_size > 1_000_000
    figures = 0
    for page in (html / "book").glob("*.html"):
        text = page.read_text()
        assert "output traceback" not in text, page.name
        assert "output error" not in text, page.name
        if "Plotly.newPlot" in text:
            assert '<script src="../_static/plotly.min.js' in text
            figures += text.count("Plotly.newPlot")
    assert figures >= 10
    chapter = (html / "book" / "ch01_transform_coding.html").read_text()
    assert "colab.research.google.com/github/" in chapter
    assert "lic_teach.colab.install" not in chapter, (
        "the setup cell is hidden in the HTML"
    )


@pytest.mark.slow
def test_figures_and_tables_are_numbered_by_chapter(built_book):
    """The toc numbers the chapters, so every caption reads "Fig. 3.2" or "Table 3.1"
    with its own chapter's number, and every table a chapter names is in its page,
    numbered."""
    html, result = built_book
    assert result.returncode == 0
    for number, entry in enumerate([e for e in _toc_files() if "/ch" in e], start=1):
        page = (html / f"{entry}.html").read_text()
        captions = re.findall(
            r'<span class="caption-number">(Fig\.|Table) ([\d.]+) </span>', page
        )
        assert captions, entry
        assert all(label.startswith(f"{number}.") for _, label in captions), (
            entry,
            captions,
        )
        code = "\n".join(
            c.source
            for c in nbformat.read(ROOT / f"{entry}.ipynb", as_version=4).cells
            if c.cell_type == "code"
        )
        names = set(re.findall(r"""["'](tbl-[a-z0-9-]+)["']""", code))
        for name in names:
            assert re.search(rf'<table[^>]*id="{name}"', page), (
                f"{entry}: table {name} missing"
            )
        assert sum(kind == "Table" for kind, _ in captions) == len(names), entry
        assert f'<h1><span class="section-number">{number}. </span>' in page, (
            f"{entry}: not numbered {number}"
        )


# A script or stylesheet fetched from elsewhere: src/href to http(s) or
# protocol-relative URLs in HTML, @import or url() in CSS.
REMOTE_ASSET = re.compile(
    r"""<script[^>]*\ssrc=["']?(?:https?:)?//[^"'\s>]+|"""
    r"""<link[^>]*\shref=["']?(?:https?:)?//[^"'\s>]+[^>]*>"""
)
REMOTE_CSS = re.compile(
    r"""@import\s+(?:url\()?["']?(?:https?:)?//|url\(["']?(?:https?:)?//"""
)


@pytest.mark.slow
def test_built_book_fetches_no_script_or_stylesheet_from_the_network(built_book):
    html, _ = built_book
    remote = []
    for page in html.rglob("*.html"):
        for match in REMOTE_ASSET.finditer(page.read_text(errors="replace")):
            tag = match.group(0)
            if tag.startswith("<script") or re.search(
                r"rel=[\"']?(stylesheet|preload|modulepreload)", tag
            ):
                remote.append(f"{page.relative_to(html)}: {tag[:160]}")
    for sheet in html.rglob("*.css"):
        if REMOTE_CSS.search(sheet.read_text(errors="replace")):
            remote.append(str(sheet.relative_to(html)))
    assert not remote, "\n".join(remote[:20])
    assert (html / "_static" / "mathjax" / "tex-svg.js").is_file()
    chapter = (html / "book" / "ch01_transform_coding.html").read_text()
    assert '<script defer="defer" src="../_static/mathjax/tex-svg.js' in chapter


def chromium() -> str:
    """Debian's chromium (or Chrome); skips without one, except in CI, where it
    fails."""
    found = next(
        filter(
            None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
        ),
        None,
    )
    if found is None:
        message = (
            "no chromium for the offline rendering check (Debian: apt install chromium)"
        )
        if os.environ.get("LIC_TEACH_CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def offline_dom(page: Path, profile: Path) -> str:
    """The DOM of a page after its scripts ran in headless Chromium with the network cut
    off: every host name fails to resolve and every request goes to a closed proxy."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=30000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


FIGURE_DIV = re.compile(r'<div id="([^"]+)" class="plotly-graph-div')
UNTYPESET_MATH = re.compile(r'class="math[^"]*">\s*(\\\(|\\\[|\$)')


@pytest.mark.slow
def test_chapters_typeset_math_and_draw_figures_offline(built_book, tmp_path):
    html, result = built_book
    assert result.returncode == 0
    for page in sorted((html / "book").glob("ch*.html")):
        source = page.read_text()
        dom = offline_dom(page, tmp_path / "profile")
        assert 'class="math' in source, f"{page.name} has no math to check"
        assert "<mjx-container" in dom, f"{page.name}: MathJax typeset nothing offline"
        assert not UNTYPESET_MATH.search(dom), f"{page.name}: raw TeX left on the page"
        figures = FIGURE_DIV.findall(
            source
        )  # not the escaped copies in a widget's saved state
        assert figures, f"{page.name} has no figure to check"
        undrawn = [
            f
            for f in figures
            if not re.search(f'id="{f}" class="[^"]*js-plotly-plot', dom)
        ]
        assert not undrawn, (
            f"{page.name}: plotly did not draw {len(undrawn)} of {len(figures)} figures"
        )


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in list((ROOT / "book").rglob("*.ipynb")) + list(
        (ROOT / "exercises").rglob("*.ipynb")
    ):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and (
                cell.get("outputs") or cell.get("execution_count")
            ):
                dirty.append(path.name)
                break
    assert not dirty, f"strip outputs from: {dirty}"


def test_every_chapter_starts_with_the_colab_setup_cell():
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    default = re.search(
        r'os\.environ\.get\(\s*"LIC_TEACH_REPO",\s*"([^"]*)",?\s*\)', SETUP_CELL
    )
    assert default, "the setup cell reads LIC_TEACH_REPO"
    assert default.group(1) == repository
    for path in CHAPTERS:
        code = [
            c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
        ]
        assert code[0].source.strip() == SETUP_CELL, (
            f"{path.name}: first code cell differs"
        )
        assert "remove-cell" in code[0].metadata.get("tags", []), (
            f"{path.name}: setup cell shown"
        )


def test_setup_cell_is_harmless_outside_colab(monkeypatch):
    monkeypatch.delenv(
        "LIC_TEACH_REPO", raising=False
    )  # set by the Colab-like environment
    namespace = {}
    exec(compile(SETUP_CELL, "setup_cell", "exec"), namespace)  # no install, no restart
    assert namespace["LIC_TEACH_REPO"].startswith("https://")


@pytest.mark.parametrize("installed", [False, True])
def test_setup_cell_on_colab_installs_lic_teach_then_the_rest(monkeypatch, installed):
    """On Colab: lic_teach alone (no dependencies), then lic_teach.colab.install; once
    CompressAI is there (a second run of the cell), nothing."""
    import importlib.util
    import types

    import lic_teach.colab

    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("LIC_TEACH_REPO", "file:///somewhere/lic-teach")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (real_find_spec(name) if installed else None)
            if name == "compressai"
            else real_find_spec(name, *a)
        ),
    )
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command: calls.append(command) or types.SimpleNamespace(returncode=0),
    )
    monkeypatch.setattr(
        lic_teach.colab, "install", lambda *extras: calls.append(("install", extras))
    )
    exec(compile(SETUP_CELL, "setup_cell", "exec"), {})
    if installed:
        assert calls == []
    else:
        assert calls[0] == [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "lic_teach @ git+file:///somewhere/lic-teach",
        ]
        assert calls[1] == ("install", ())


def test_every_live_widget_has_a_static_twin():
    """An ipywidgets demo needs a kernel: its output is removed from the HTML, and the
    chapter shows a plotly slider figure (which moves without a kernel) before it."""
    for path in CHAPTERS:
        code = [
            c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
        ]
        for index, cell in enumerate(code):
            if re.search(r"\bwidgets\.\w+_slider\(", cell.source):
                assert "remove-output" in cell.metadata.get("tags", []), (
                    f"{path.name}: {cell.source[:60]}"
                )
                assert any(
                    re.search(r"plots\.\w+_slider_figure\(", c.source)
                    for c in code[:index]
                ), f"{path.name}: no plotly twin before {cell.source[:60]!r}"
    demos = sum(
        len(re.findall(r"\bwidgets\.\w+_slider\(", c.source))
        for path in CHAPTERS
        for c in nbformat.read(path, as_version=4).cells
        if c.cell_type == "code"
    )
    assert demos >= 2


def test_setup_cell_says_what_to_do_when_pip_fails(monkeypatch):
    import importlib.util
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "compressai" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(
        subprocess, "run", lambda command: types.SimpleNamespace(returncode=1)
    )
    with pytest.raises(RuntimeError, match="runtime online.*run all again"):
        exec(compile(SETUP_CELL, "setup_cell", "exec"), {})


def test_toc_and_chapters_agree():
    files = _toc_files()
    for entry in files:
        assert any(
            (ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")
        ), entry
    listed = {entry for entry in files}
    for path in CHAPTERS:
        assert f"book/{path.stem}" in listed, f"{path.name} is not in _toc.yml"
