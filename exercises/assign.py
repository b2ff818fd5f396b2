"""Regenerate the student notebooks, the tests and the Gradescope autograders from the
exercise sources (`make exercises`).

For each ``exercises/source/chNN_name.ipynb`` (otter-assign format: solutions, public and
hidden tests) this runs ``otter assign`` and places what it writes:

    exercises/student/chNN_name.ipynb      the notebook students open (solutions replaced by ...)
    lic_teach/exercise_tests/chNN/qK.py    public tests, shipped with the package for grader.check
    exercises/autograder/chNN/qK.py        all tests, hidden ones included, for lic_teach.grading
    exercises/autograder/chNN/solution.ipynb   the solutions notebook, tests removed (CI grades it)
    exercises/gradescope/chNN_autograder.zip   otter's autograder for Gradescope: all tests, an
                                           environment that installs exercises/source/requirements.txt,
                                           and a run_otter.py that grades with lic_teach's grader

The zip is rewritten with its entries sorted and dated 1980-01-01, so the same sources
give the same bytes and the committed file can be checked. otter is imported once and
each source assigned in a forked worker (one per core): starting Python and importing
otter cost ten times what assigning a notebook does.

    python exercises/assign.py [--no-run-tests] [--root DIR] [chNN ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "exercises" / "source"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def exercise_id(source: Path) -> str:
    match = re.match(r"(ch\d\d)_", source.name)
    if not match:
        raise ValueError(
            f"{source.name}: exercise sources are named chNN_<topic>.ipynb"
        )
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


def reproducible_zip(
    generated: Path, target: Path, replaced: dict | None = None
) -> None:
    """``generated`` rewritten to ``target`` with sorted entries and a fixed date
    (atomically); an entry named in ``replaced`` (name -> text) gets that text, and
    one the zip lacks is added."""
    replaced = dict(replaced or {})
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(generated) as source, zipfile.ZipFile(partial, "w") as out:
        contents = {
            i.filename: (i.external_attr, source.read(i)) for i in source.infolist()
        }
        for name, text in replaced.items():
            attributes = contents.get(name, (0o644 << 16, b""))[0]
            contents[name] = (attributes, text.encode())
        for name, (attributes, data) in sorted(contents.items()):
            entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            entry.external_attr, entry.compress_type = attributes, zipfile.ZIP_DEFLATED
            out.writestr(entry, data)
    partial.replace(target)


def gradescope_files(exercise: str) -> dict:
    """What the Gradescope zip holds beside otter's files: a ``run_otter.py`` that
    grades with lic_teach's grader (the verdict outside the student's kernel) and the
    ``grading.json`` it reads (lic_teach.grading.gradescope)."""
    from lic_teach.grading import gradescope

    settings = {"exercise": exercise, "hidden_seed": None}
    return {
        "run_otter.py": gradescope.ENTRY,
        gradescope.SETTINGS: json.dumps(settings, indent=1) + "\n",
    }


def assign(source: Path, root: Path, run_tests: bool) -> None:
    """Run ``otter assign`` on one source (in this process) and place its outputs under ``root``."""
    import otter.assign

    exercise = exercise_id(source)
    # the notebook's grader cell asks lic_teach for this folder while otter checks the solutions
    (REPO / "lic_teach" / "exercise_tests" / exercise).mkdir(
        parents=True, exist_ok=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(
            source.parent
        )  # the config's paths (requirements.txt) are relative to it
        otter.assign.main(str(source), tmp, no_run_tests=not run_tests)
        out = Path(tmp)
        for role, folder in (
            ("student", root / "exercises" / "student"),
            ("autograder", root / "exercises" / "autograder" / exercise),
        ):
            folder.mkdir(parents=True, exist_ok=True)
            name = source.name if role == "student" else "solution.ipynb"
            nbformat.write(_normalized(out / role / source.name), str(folder / name))
        _replace_tests(
            out / "student" / "tests", root / "lic_teach" / "exercise_tests" / exercise
        )
        _replace_tests(
            out / "autograder" / "tests", root / "exercises" / "autograder" / exercise
        )
        (generated,) = (out / "autograder").glob("*-autograder_*.zip")
        (root / "exercises" / "gradescope").mkdir(parents=True, exist_ok=True)
        reproducible_zip(
            generated,
            root / "exercises" / "gradescope" / f"{exercise}_autograder.zip",
            gradescope_files(exercise),
        )


def _one(source: Path, root: Path, run_tests: bool) -> None:
    print(f"otter assign {source.name}", flush=True)
    assign(source, root, run_tests)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "exercises", nargs="*", help="only these (e.g. ch01); default all"
    )
    parser.add_argument(
        "--no-run-tests",
        action="store_true",
        help="skip otter's check of the solutions",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="where to write (default: the repository)",
    )
    args = parser.parse_args(argv)
    sources = sorted(SOURCES.glob("ch*_*.ipynb"))
    if args.exercises:
        sources = [s for s in sources if exercise_id(s) in args.exercises]
    import otter.assign  # noqa: F401  (once, before the workers fork)

    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=fork) as pool:
        for future in [
            pool.submit(_one, source, args.root.resolve(), not args.no_run_tests)
            for source in sources
        ]:
            future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
