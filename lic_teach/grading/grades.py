"""Grading a submission: which exercise it answers, which cells belong to which
question, and its scores against the full tests of its exercise, hidden ones included.

The full tests are ``chNN/qK.py`` files in an autograder folder (``make exercises``
writes them to ``exercises/autograder/`` in the repository). Which exercise a notebook
answers is read from its metadata (``lic_teach.exercise``, written by ``make
exercises``) or else from a ``chNN`` in its file name. Every cell of a question must
run: a question with a cell that raised or was stopped scores zero, whatever its tests
say. The tests run in the grader's own judge process (:mod:`.judge`), never in the
student's kernel, so a score is what the tests computed, capped at what the question
is worth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .kernel import grading_cell, in_parallel, run_in_kernel
from .limits import DEFAULT_LIMITS, Limits, default_jobs

CHECK_CALL = re.compile(r"""grader\.check\(\s*["'](q\d+)["']\s*\)""")
EXERCISE = re.compile(
    r"ch\d\d"
)  # an exercise's name: a folder of its tests, nothing else
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a submission larger than this is not read
CHECKOUT_AUTOGRADER = Path(__file__).resolve().parents[2] / "exercises" / "autograder"
"""Where ``make exercises`` writes the full tests, in the checkout this package runs
from (an editable install); an installed package has none."""


@dataclass
class Grade:
    """The scores of one submission: per question, with feedback where marks were
    lost."""

    submission: str
    exercise: str
    scores: dict[str, float]
    possible: dict[str, float]
    feedback: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    def zero(self, reason: str) -> Grade:
        """This grade with every question at zero, for ``reason``."""
        feedback = {q: reason for q in self.possible}
        return Grade(
            self.submission,
            self.exercise,
            dict.fromkeys(self.possible, 0.0),
            self.possible,
            feedback,
        )


def question_files(tests: Path) -> dict[str, Path]:
    """``{"q1": tests/q1.py, ...}`` in question order."""
    files = {p.stem: p for p in tests.glob("q*.py") if re.fullmatch(r"q\d+", p.stem)}
    return dict(sorted(files.items(), key=lambda item: int(item[0][1:])))


def points(test_file: Path) -> float:
    """The points a question is worth, as its otter test file declares them."""
    from otter.nbmeta_config import NBMetadataConfig
    from otter.test_files import create_test_file

    return float(create_test_file(str(test_file), NBMetadataConfig()).possible)


def exercise_of(notebook: dict, path: Path) -> str | None:
    """The exercise a notebook answers: its ``lic_teach.exercise`` metadata, else
    ``chNN`` in its name. A name that is not ``chNN`` (a path that leaves the
    autograder folder, say) is returned as it is, and refused by :func:`tests_of`."""
    metadata = notebook.get("metadata", {}).get("lic_teach", {})
    named = metadata.get("exercise") if isinstance(metadata, dict) else None
    if named:
        return str(named)
    match = re.search(r"ch\d\d", path.name)
    return match.group(0) if match else None


def questions_of_cells(cells: list[dict]) -> dict[int, str]:
    """Cell index -> the question it belongs to: the cells up to and including
    ``grader.check("qN")``."""
    owner, pending = {}, []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        pending.append(index)
        match = CHECK_CALL.search("".join(cell.get("source", "")))
        if match:
            owner.update(dict.fromkeys(pending, match.group(1)))
            pending = []
    return owner


def _valid_score(entry, possible: float) -> tuple[float, str]:
    """``(score, failures)`` of a grading cell's entry ``[score, failures]``: a score
    that is not a number from 0 to what the question is worth counts 0 (the cell runs
    in the student's kernel, whose code may have changed what it reports)."""
    if not (isinstance(entry, list) and len(entry) == 2):
        return 0.0, "its result was not a score"
    score, failed = entry
    failed = failed if isinstance(failed, str) else ""
    if type(score) not in (int, float) or not 0 <= score <= possible:
        return (
            0.0,
            f"its result {str(score)[:40]!r} is not a score from 0 to {possible:g}",
        )
    return float(score), failed


def scored(grade: Grade, results: dict, cell_errors: dict[str, list[str]]) -> Grade:
    """``grade`` filled from one grading cell's ``results``: a question with a failed
    cell scores zero, and so does one whose result is not a score it can have."""
    results = results if isinstance(results, dict) else {}
    for question, possible in grade.possible.items():
        entry = results.get(question, [0, "its tests never ran"])
        score, failed = _valid_score(entry, possible)
        errors = cell_errors.get(question, [])
        grade.scores[question] = 0.0 if errors else score
        notes = errors + ([failed.strip()] if failed else [])
        if notes:
            grade.feedback[question] = "; ".join(notes)
    return grade


def autograder_folder(folder=None) -> Path:
    """The folder of full tests, one ``chNN`` subfolder per exercise: ``folder``, or
    else :data:`CHECKOUT_AUTOGRADER`; a ``ValueError`` that names what to pass when it
    is not there."""
    folder = Path(folder) if folder is not None else CHECKOUT_AUTOGRADER
    if not folder.is_dir():
        raise ValueError(
            f"no autograder tests at {folder}: pass --autograder (autograder= in "
            "Python), a folder with one chNN/ subfolder of tests per exercise; "
            "`make exercises` writes exercises/autograder/ in the repository"
        )
    return folder


def tests_of(path: Path, notebook: dict, autograder, exercise: str | None):
    """``(exercise, {question: test file})`` for a notebook, or a reason it cannot be
    graded; the tests from ``autograder`` (see :func:`autograder_folder`)."""
    exercise = exercise or exercise_of(notebook, path)
    if exercise is None or not EXERCISE.fullmatch(str(exercise)):
        return None, (
            f"cannot tell which exercise this answers (found {str(exercise)[:60]!r}, "
            f"not chNN); name it chNN_... or pass --exercise"
        )
    tests = autograder_folder(autograder) / exercise
    if not tests.is_dir():
        return exercise, f"no tests of exercise {exercise} in {tests.parent}"
    return exercise, question_files(tests)


def grade_notebook(
    path,
    autograder=None,
    exercise: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Grade:
    """Grade one submitted notebook against the full tests of its exercise, from
    ``autograder`` (see :func:`autograder_folder`)."""
    import nbformat

    path = Path(path)
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        reason = f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB: not read"
        return Grade(path.name, exercise or "?", {}, {}, {"notebook": reason})
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as error:  # any unreadable file is reported, never fatal
        return Grade(
            path.name,
            exercise or "?",
            {},
            {},
            {"notebook": f"not a readable notebook: {error}"},
        )
    exercise, tests = tests_of(path, notebook, autograder, exercise)
    if isinstance(tests, str):
        return Grade(path.name, exercise or "?", {}, {}, {"notebook": tests})
    grade = Grade(
        path.name,
        exercise,
        {q: 0.0 for q in tests},
        {q: points(p) for q, p in tests.items()},
    )
    owner = questions_of_cells(notebook.cells)
    notebook.cells.append(grading_cell("grade", tests))
    outcome = run_in_kernel(notebook, limits)
    if isinstance(outcome, str):
        return grade.zero(outcome)
    cell_errors: dict[str, list[str]] = {}
    for index, line in sorted(outcome["errors"].items()):
        if index in owner:
            cell_errors.setdefault(owner[index], []).append(line)
    grade = scored(grade, outcome["results"].get("grade", {}), cell_errors)
    if outcome["died"]:  # the judge's scores stand; what it could not ask scored 0
        for question, score in grade.scores.items():
            if score == 0:
                notes = [grade.feedback.get(question, ""), outcome["died"]]
                grade.feedback[question] = "; ".join(n for n in notes if n)
    return grade


def grade_folder(
    folder,
    jobs: int | None = None,
    autograder=None,
    exercise: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Grade]:
    """Grade every ``*.ipynb`` in ``folder`` (not its subfolders), ``jobs`` at a time
    (default :func:`default_jobs`); the grades come back in file-name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of submitted notebooks")
    paths = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise ValueError(f"no .ipynb files in {folder}")
    autograder = autograder_folder(autograder)
    calls = [
        lambda path=path: grade_notebook(path, autograder, exercise, limits)
        for path in paths
    ]
    return in_parallel(calls, jobs or default_jobs(limits.memory_gib))
