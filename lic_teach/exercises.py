"""The graded exercises, student side: where each exercise's public tests live.

Each chapter has an exercise notebook, ``exercises/student/chNN_*.ipynb``, written for
otter-grader: the student fills in the ``...`` and runs ``grader.check("q1")``. Its
first cells create the grader with the public tests shipped inside this package, so
checking works offline and on Colab, where otter refuses tests kept only in notebook
metadata::

    import otter
    from lic_teach.exercises import tests_dir
    grader = otter.Notebook(tests_dir=tests_dir("ch01"))

The hidden tests that instructors grade with live outside the package, in
``exercises/autograder/`` (see :mod:`lic_teach.grading`).
"""

from __future__ import annotations

from pathlib import Path

PUBLIC_TESTS = Path(__file__).parent / "exercise_tests"


def exercises() -> list[str]:
    """The exercises whose public tests ship with the package: ``["ch01", "ch02",
    ...]``."""
    return sorted(
        p.name for p in PUBLIC_TESTS.iterdir() if p.is_dir() and any(p.glob("q*.py"))
    )


def tests_dir(exercise: str) -> str:
    """The folder of ``exercise``'s public tests (``q1.py``, ``q2.py``, ...), for
    ``otter.Notebook``."""
    folder = PUBLIC_TESTS / exercise
    if not folder.is_dir():
        raise ValueError(
            f"no exercise {exercise!r}; the exercises are {', '.join(exercises())}"
        )
    return str(folder)
