"""Regenerate the student notebooks and the test files from the exercise sources (`make exercises`).

For each ``exercises/source/chNN_name.ipynb`` (otter-assign format: solutions, public and
hidden tests) this runs ``otter assign`` and places what it writes:

    exercises/student/chNN_name.ipynb      the notebook students open (solutions replaced by ...)
    lic_teach/exercise_tests/chNN/qK.py    public tests, shipped with the package for grader.check
    exercises/autograder/chNN/qK.py        all tests, hidden ones included, for lic_teach.grading
    exercises/autograder/chNN/solution.ipynb   the solutions notebook, tests removed (CI grades it)

    python exercises/assign.py [--no-run-tests] [--root DIR] [chNN ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "exercises" / "source"


def exercise_id(source: Path) -> str:
    match = re.match(r"(ch\d\d)_", source.name)
    if not match:
        raise ValueError(f"{source.name}: exercise sources are named chNN_<topic>.ipynb")
    return match.group(1)


def _normalized(path: Path) -> nbformat.NotebookNode:
    """A generated notebook without outputs or execution counts, so the committed file is stable."""
    notebook = nbformat.read(str(path), as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.pop("id", None)
    notebook.nbformat_minor = 4
    return notebook


def _replace_tests(generated: Path, target: Path) -> None:
    if target.exists():
        for old in target.glob("q*.py"):
            old.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for test in sorted(generated.glob("q*.py")):
        shutil.copyfile(test, target / test.name)


def assign(source: Path, root: Path, run_tests: bool) -> None:
    """Run ``otter assign`` on one source and place its outputs under ``root``."""
    exercise = exercise_id(source)
    # the notebook's grader cell asks lic_teach for this folder while otter checks the solutions
    (REPO / "lic_teach" / "exercise_tests" / exercise).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "otter", "assign", str(source), tmp]
        if not run_tests:
            command.append("--no-run-tests")
        subprocess.run(command, check=True, cwd=source.parent)
        out = Path(tmp)
        for role, folder in (("student", root / "exercises" / "student"),
                             ("autograder", root / "exercises" / "autograder" / exercise)):
            folder.mkdir(parents=True, exist_ok=True)
            name = source.name if role == "student" else "solution.ipynb"
            nbformat.write(_normalized(out / role / source.name), str(folder / name))
        _replace_tests(out / "student" / "tests", root / "lic_teach" / "exercise_tests" / exercise)
        _replace_tests(out / "autograder" / "tests", root / "exercises" / "autograder" / exercise)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exercises", nargs="*", help="only these (e.g. ch01); default all")
    parser.add_argument("--no-run-tests", action="store_true", help="skip otter's check of the solutions")
    parser.add_argument("--root", type=Path, default=REPO, help="where to write (default: the repository)")
    args = parser.parse_args(argv)
    sources = sorted(SOURCES.glob("ch*_*.ipynb"))
    if args.exercises:
        sources = [s for s in sources if exercise_id(s) in args.exercises]
    def one(source):
        print(f"otter assign {source.name}", flush=True)
        assign(source, args.root, run_tests=not args.no_run_tests)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:     # each otter run is its own process
        for future in [pool.submit(one, source) for source in sources]:
            future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
