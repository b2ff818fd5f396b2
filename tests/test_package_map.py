"""The README's module table is the map of ``lic_teach``: every module is in it, in its
layer, and no module imports from a layer above its own, not even inside a function."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lic_teach"
DATA_FOLDERS = {
    "exercise_tests",
    "reference",
    "zoo_weights",
}  # package data, not modules


def _layers() -> dict[str, int]:
    """``{module: layer number}`` from the README's ``| layer | module | ... |``
    table."""
    rows = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    start = rows.index("| layer | module | what it holds |")
    order, layers = [], {}
    for row in rows[start + 2 :]:
        layer, modules = (cell.strip() for cell in row.strip("|").split("|")[:2])
        if layer not in order:
            order.append(layer)
        for module in modules.split(","):
            layers[module.strip().strip("`").removeprefix("lic_teach.")] = order.index(
                layer
            )
    return layers


def _modules() -> dict[str, list[Path]]:
    """``{top-level module or subpackage: its files}``."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if top != "__init__" and top not in DATA_FOLDERS:
            modules.setdefault(top, []).append(path)
    return modules


def _imported(path: Path, source: str | None = None) -> set[str]:
    """The ``lic_teach`` modules a file imports, at any depth of its code."""
    package = list(path.relative_to(PACKAGE).parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[1]
                for a in node.names
                if a.name.startswith("lic_teach.")
            }
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (
                    node.module.split(".")[1:]
                    if node.module.startswith("lic_teach.")
                    else None
                )
                if node.module == "lic_teach":
                    parts = []
                if parts is None:
                    continue
            else:
                parts = package[: len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else []
                )
            found |= {parts[0]} if parts else {a.name for a in node.names}
    return found


def test_every_module_is_in_the_readme_table_in_one_layer():
    layers, modules = _layers(), _modules()
    assert len(set(layers.values())) >= 6
    assert set(modules) == set(layers), (
        "modules missing from the README's table, or listed but gone"
    )


def test_no_module_imports_from_a_layer_above_its_own():
    layers = _layers()
    upward = [
        f"{path.relative_to(ROOT)} imports {other}"
        for module, paths in _modules().items()
        for path in paths
        for other in _imported(path)
        if other != module and layers[other] > layers[module]
    ]
    assert not upward


def test_the_import_reader_sees_every_kind_of_import():
    inside_models = PACKAGE / "models" / "probe.py"
    code = (
        "import torch\nfrom .base import ImageCodec\nfrom .. import coding\n"
        "def f():\n    from ..train import fit\n    import lic_teach.experiments\n"
        "    from lic_teach import grading\n    from lic_teach.data import load_image\n"
    )
    assert _imported(inside_models, code) == {
        "models",
        "coding",
        "train",
        "experiments",
        "grading",
        "data",
    }


def test_code_names_chapters_by_title_not_number():
    """Chapter numbers drift as chapters are added; names of chapters do not."""
    numbered = [
        f"{path.relative_to(ROOT)}:{number}"
        for paths in _modules().values()
        for path in paths
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bchapters? \d", line, re.IGNORECASE)
    ]
    assert not numbered


def test_every_public_function_and_class_has_a_docstring():
    """One docstring style: a summary sentence in prose with ``code`` in double
    backticks, details and citations after it, and an ``Args:`` list only where the
    arguments need one. Generated exercise tests are not library code."""
    missing = []
    for path in (ROOT / "lic_teach").rglob("*.py"):
        if "exercise_tests" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            missing.append(str(path))
        missing += [
            f"{path.name}:{node.name}"
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")
            and not ast.get_docstring(node)
        ]
        text = path.read_text()
        assert "Parameters\n    ----------" not in text, f"{path}: numpydoc style"
        assert ":param " not in text, f"{path}: reST field style"
    assert not missing, f"no docstring: {missing}"
