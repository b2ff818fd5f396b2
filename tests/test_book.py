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
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p["chapters"]]
    while stack:
        entry = stack.pop(0)
        entries.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return entries


@pytest.fixture(scope="session")
def executed_book(tmp_path_factory):
    """A copy of the book with every chapter executed at the smoke budget."""
    copy = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "book", copy / "book")
    (copy / ".pytest_cache").mkdir()              # what `make test` leaves behind in a checkout
    (copy / ".pytest_cache" / "README.md").write_text("# pytest cache directory #\n")
    seconds, errors = {}, {}
    previous = {name: os.environ.get(name) for name in ("LIC_BUDGET", "LIC_TEACH_CACHE")}
    os.environ["LIC_BUDGET"] = "smoke"
    os.environ["LIC_TEACH_CACHE"] = str(tmp_path_factory.mktemp("cache"))   # never a stale home cache
    try:
        for path in sorted((copy / "book").glob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            try:
                NotebookClient(notebook, timeout=2 * SMOKE_LIMIT_S, kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
            except CellExecutionError as error:
                errors[path.name] = str(error)[-3000:]
            seconds[path.name] = time.perf_counter() - start
            nbformat.write(notebook, path)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    return copy, seconds, errors


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_chapter_runs_at_smoke_budget(executed_book, chapter):
    _, seconds, errors = executed_book
    assert chapter not in errors, errors.get(chapter)
    assert seconds[chapter] < SMOKE_LIMIT_S, f"{chapter} took {seconds[chapter]:.0f} s at smoke"
    notebook = nbformat.read(executed_book[0] / "book" / chapter, as_version=4)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "budget 'smoke'" in printed, "a chapter prints the budget it ran"


@pytest.mark.slow
def test_book_builds_without_warnings_and_serves_plotly_itself(executed_book):
    copy, _, errors = executed_book
    assert not errors
    config = yaml.safe_load((copy / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"         # already executed above
    (copy / "_config.yml").write_text(yaml.safe_dump(config))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jupyter_book), "build", str(copy), "--warningiserror",
                             "--keep-going"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = copy / "_build" / "html"
    assert (html / "index.html").is_file()
    plotly_js = html / "_static" / "plotly.min.js"
    assert plotly_js.stat().st_size > 1_000_000
    figures = 0
    for page in (html / "book").glob("*.html"):
        text = page.read_text()
        assert "output traceback" not in text and "output error" not in text, page.name
        assert not re.search(r"cdn\.plot\.ly|plotly-[\d.]+\.min\.js", text), page.name
        if "Plotly.newPlot" in text:
            assert '<script src="../_static/plotly.min.js' in text
            figures += text.count("Plotly.newPlot")
            if "require.min.js" in text:  # plotly.js must define window.Plotly before require.js
                assert text.index("_static/plotly.min.js") < text.index("require.min.js"), page.name
    assert figures >= 10
    chapter = (html / "book" / "ch01_transform_coding.html").read_text()
    assert "colab.research.google.com/github/" in chapter


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in list((ROOT / "book").rglob("*.ipynb")) + list((ROOT / "exercises").rglob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
                dirty.append(path.name)
                break
    assert not dirty, f"strip outputs from: {dirty}"


def test_every_chapter_starts_with_the_colab_setup_cell():
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'LIC_TEACH_REPO = "{repository}"' in SETUP_CELL
    for path in CHAPTERS:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert code[0].source.strip() == SETUP_CELL, f"{path.name}: first code cell differs"


def test_setup_cell_is_harmless_outside_colab():
    namespace = {}
    exec(compile(SETUP_CELL, "setup_cell", "exec"), namespace)   # no install, no restart
    assert namespace["LIC_TEACH_REPO"].startswith("https://")


def test_toc_and_chapters_agree():
    files = _toc_files()
    for entry in files:
        assert any((ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), entry
    listed = {entry for entry in files}
    for path in CHAPTERS:
        assert f"book/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("loaded_numpy, installed, restarts", [
    ("2.0.2", False, True),      # Colab's numpy 2 is loaded: install, then restart once
    ("1.26.4", False, False),    # numpy 1 could be imported fresh: no restart needed
    ("2.0.2", True, False),      # after the restart: lic_teach is there, nothing to do
])
def test_setup_cell_on_colab_installs_and_restarts_once(monkeypatch, capsys, loaded_numpy,
                                                         installed, restarts):
    import importlib.util
    import subprocess
    import types

    import numpy

    calls, kills = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (real_find_spec(name) if installed else None) if name == "lic_teach" else real_find_spec(name, *a)))
    monkeypatch.setattr(subprocess, "run", lambda command, check: calls.append(command))
    monkeypatch.setattr(os, "kill", lambda pid, signal: kills.append((pid, signal)))
    monkeypatch.setattr(numpy, "__version__", loaded_numpy)
    exec(compile(SETUP_CELL, "setup_cell", "exec"), {})
    assert len(calls) == (0 if installed else 1)
    if calls:
        assert calls[0][-1].startswith("lic_teach @ git+https://")
    assert kills == ([(os.getpid(), 9)] if restarts else [])
    if restarts:
        assert "Run all again" in capsys.readouterr().out
