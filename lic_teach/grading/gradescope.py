"""Grading on Gradescope with this package's grader: the student's kernel answers, a
separate judge process runs the tests (:mod:`.judge`), as ``make grade`` does.

Gradescope runs an autograder zip in a container of its own per submission: the zip's
files in ``/autograder/source``, the submission in ``/autograder/submission``, and the
results it reads from ``/autograder/results/results.json``. The container is the
sandbox there (bubblewrap needs namespaces that Docker rarely grants), so the kernel
runs without :mod:`.sandbox`; the wall between the kernel and the judge holds all the
same, so values cross only as checked data and a score is what the tests computed.

The zips ``make exercises`` writes (``exercises/gradescope/chNN_autograder.zip``) are
otter-grader's, with ``run_otter.py`` calling :func:`main` and a ``grading.json`` that
names the exercise. Try one before uploading it:

    python -m lic_teach.grading.gradescope exercises/gradescope/ch01_autograder.zip \\
        notebook.ipynb

and give it a hidden seed that only you know (the committed zips have none):

    python -m lic_teach.grading.gradescope --seal 1234 \\
        exercises/gradescope/ch01_autograder.zip private_ch01.zip
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from .grades import EXERCISE, Grade, grade_notebook
from .limits import Limits

SETTINGS = "grading.json"  # in the zip: {"exercise": "chNN", "hidden_seed": n or null}
ENTRY = '''"""Grades the submission with lic_teach's grader: the student's kernel only
answers, and a separate judge process runs the tests (lic_teach.grading.gradescope)."""

import sys

from lic_teach.grading.gradescope import main

if __name__ == "__main__":
    sys.exit(main(["/autograder"]))
'''
"""The ``run_otter.py`` of the zips: Gradescope's ``run_autograder`` runs it."""
VISIBILITY = "after_published"  # students see their scores once the grades are out


def settings_of(source: Path) -> dict:
    """The zip's :data:`SETTINGS`, checked: an exercise ``chNN`` and an integer or
    missing ``hidden_seed``; a ``ValueError`` that says what is wrong."""
    path = source / SETTINGS
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"the autograder has no readable {SETTINGS}: {error}"
        ) from None
    exercise, seed = settings.get("exercise"), settings.get("hidden_seed")
    if not isinstance(exercise, str) or not EXERCISE.fullmatch(exercise):
        raise ValueError(f"{SETTINGS} names no exercise chNN: {exercise!r}")
    if seed is not None and type(seed) is not int:
        raise ValueError(f"{SETTINGS}: hidden_seed must be an integer, not {seed!r}")
    return {"exercise": exercise, "hidden_seed": seed}


def submitted_notebook(folder: Path) -> Path:
    """The one ``.ipynb`` of a submission (in ``folder`` or below it); a ``ValueError``
    that names what was found when there is not exactly one."""
    found = sorted(
        p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found[:5]) or "none"
        raise ValueError(f"submit exactly one .ipynb notebook (found: {names})")
    return found[0]


def results(grade: Grade) -> dict:
    """Gradescope's ``results.json`` of a grade: one test per question, with its
    feedback where marks were lost."""
    notes = grade.feedback.get("notebook", "")
    return {
        "score": grade.total,
        "output": notes or f"{grade.exercise}: {grade.total:g} points",
        "visibility": VISIBILITY,
        "tests": [
            {
                "name": question,
                "score": grade.scores.get(question, 0.0),
                "max_score": possible,
                "output": grade.feedback.get(question, ""),
                "visibility": VISIBILITY,
            }
            for question, possible in grade.possible.items()
        ],
    }


def refused(reason: str) -> dict:
    """A ``results.json`` that gives 0 and says why nothing was graded."""
    return {"score": 0.0, "output": reason, "visibility": VISIBILITY, "tests": []}


def grade_autograder(root: Path, limits: Limits | None = None) -> dict:
    """The ``results.json`` of the submission in ``root/submission``, graded with the
    tests in ``root/source/tests`` as the exercise ``root/source/grading.json`` names,
    with its hidden seed, within ``limits`` (default :class:`.Limits`), without the
    sandbox (the container is one)."""
    source = root / "source"
    try:
        settings = settings_of(source)
        notebook = submitted_notebook(root / "submission")
    except ValueError as error:
        return refused(str(error))
    limits = dataclasses.replace(
        limits or Limits(), sandbox=False, hidden_seed=settings["hidden_seed"]
    )
    with tempfile.TemporaryDirectory() as folder:
        # the grader reads an exercise's tests from autograder/chNN/
        tests = Path(folder) / settings["exercise"]
        shutil.copytree(source / "tests", tests)
        grade = grade_notebook(notebook, folder, settings["exercise"], limits)
    return results(grade)


def write_results(root: Path, outcome: dict) -> Path:
    """Write ``outcome`` to ``root/results/results.json`` (whole or not at all)."""
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".results.json.partial")
    partial.write_text(json.dumps(outcome, indent=1))
    partial.replace(target)
    return target


def try_locally(archive: Path, notebook: Path, out: Path) -> dict:
    """Grade ``notebook`` with ``archive`` as Gradescope would, in a temporary folder
    shaped like ``/autograder``; write ``out`` (results.json) and return it."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(root / "source")
        (root / "submission").mkdir()
        shutil.copyfile(notebook, root / "submission" / notebook.name)
        outcome = grade_autograder(root)
    out.write_text(json.dumps(outcome, indent=1))
    return outcome


def seal(archive: Path, seed: int, target: Path) -> None:
    """A copy of ``archive`` at ``target`` whose hidden tests draw their inputs from
    ``seed`` (:func:`.judge.redrawn`), for an instructor's own upload."""
    with zipfile.ZipFile(archive) as source:
        settings = json.loads(source.read(SETTINGS))
        settings["hidden_seed"] = seed
        partial = target.with_name(f".{target.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            for info in source.infolist():
                data = source.read(info)
                if info.filename == SETTINGS:
                    data = json.dumps(settings, indent=1).encode()
                out.writestr(info, data)
    partial.replace(target)


def main(argv=None) -> int:
    """``main(["/autograder"])`` on Gradescope; ``ARCHIVE NOTEBOOK`` to try a zip on a
    notebook here; ``--seal SEED ARCHIVE TARGET`` to give a zip a hidden seed."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.grading.gradescope",
        description="Grade as Gradescope does, with lic_teach's grader.",
    )
    parser.add_argument("paths", nargs="+", help="/autograder | ARCHIVE NOTEBOOK")
    parser.add_argument("--out", default="results.json", help="(ARCHIVE NOTEBOOK)")
    parser.add_argument(
        "--seal", type=int, metavar="SEED", help="ARCHIVE TARGET: add a hidden seed"
    )
    args = parser.parse_args(argv)
    if args.seal is not None:
        if len(args.paths) != 2:
            parser.error("--seal SEED ARCHIVE TARGET")
        seal(Path(args.paths[0]), args.seal, Path(args.paths[1]))
        return 0
    if len(args.paths) == 1:
        root = Path(args.paths[0])
        outcome = grade_autograder(root)
        write_results(root, outcome)
    elif len(args.paths) == 2:
        outcome = try_locally(Path(args.paths[0]), Path(args.paths[1]), Path(args.out))
    else:
        parser.error("give /autograder, or ARCHIVE NOTEBOOK")
    print(json.dumps(outcome, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
