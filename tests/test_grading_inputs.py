"""What a dishonest submission controls without breaking out of its kernel (issue 36):
the scores reported, the exercise its metadata names, its size, and a kernel that dies.
Each is checked by the grader, outside the kernel."""

import json

import nbformat
import pytest

from lic_teach.grading import grades, kernel
from lic_teach.grading.grades import Grade


def _grade() -> Grade:
    return Grade("s.ipynb", "ch01", {"q1": 0.0, "q2": 0.0}, {"q1": 1.0, "q2": 2.0})


@pytest.mark.parametrize(
    "reported",
    [250, -1, float("nan"), float("inf"), "1", True, [1], None, 2.5],
)
def test_a_score_it_cannot_have_counts_zero(reported):
    grade = grades.scored(_grade(), {"q1": [1, ""], "q2": [reported, ""]}, {})
    assert grade.scores == {"q1": 1.0, "q2": 0.0}
    assert "not a score" in grade.feedback["q2"]
    assert grade.total <= sum(grade.possible.values())


def test_results_that_are_not_a_table_of_scores_count_zero():
    for results in ([1, 2], "q1", {"q1": 1}, {"q1": [1, 2, 3]}):
        assert grades.scored(_grade(), results, {}).total == 0


def test_the_exercise_is_a_name_never_a_path(tmp_path):
    (tmp_path / "ch01").mkdir()
    (tmp_path / "ch01" / "q1.py").write_text("OK_FORMAT = True\n")
    for named in ("../../lic_teach/exercise_tests/ch01", "ch01/../ch01", "/tmp", "ch1"):
        notebook = {"metadata": {"lic_teach": {"exercise": named}}}
        exercise, tests = grades.tests_of(
            tmp_path / "ch01_x.ipynb", notebook, tmp_path, None
        )
        assert isinstance(tests, str)
        assert "not chNN" in tests
    exercise, tests = grades.tests_of(tmp_path / "a.ipynb", {}, tmp_path, "ch01")
    assert exercise == "ch01"
    assert list(tests) == ["q1"]
    _, missing = grades.tests_of(tmp_path / "a.ipynb", {}, tmp_path, "ch02")
    assert "no tests of exercise ch02" in missing


def test_a_huge_notebook_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(grades, "MAX_NOTEBOOK_BYTES", 1000)
    path = tmp_path / "ch01_big.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1\n" * 400)]
    nbformat.write(notebook, path)
    grade = grades.grade_notebook(path)
    assert grade.total == 0
    assert "not read" in grade.feedback["notebook"]


def test_a_kernel_that_died_keeps_only_what_the_judge_scored(tmp_path, monkeypatch):
    """The judge scores in its own process, so what it scored before the kernel died
    stands; what it could no longer ask scores 0, with the reason."""
    (tmp_path / "ch01").mkdir()
    for q in ("q1", "q2"):
        (tmp_path / "ch01" / f"{q}.py").write_text("OK_FORMAT = True\ntest = {}\n")
    monkeypatch.setattr(grades, "points", lambda path: 1.0)
    judged = {
        "results": {
            "grade": {"q1": [1, ""], "q2": [0, "the kernel stopped answering"]}
        },
        "errors": {},
        "died": "the notebook's kernel died",
    }
    monkeypatch.setattr(grades, "run_in_kernel", lambda notebook, limits: judged)
    path = tmp_path / "ch01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    grade = grades.grade_notebook(path, tmp_path)
    assert grade.scores == {"q1": 1.0, "q2": 0.0}
    assert "kernel died" in grade.feedback["q2"]
    assert "q1" not in grade.feedback


def test_the_judge_s_scores_count_only_as_it_sent_them():
    """One JSON line a phase, in order: anything else through the pipe (a forger's
    line, a phase twice, a line that is not JSON, too much) voids them all."""
    phases = [{"phase": "grade"}, {"phase": "check"}]

    def line(phase, score=1):
        return json.dumps({"phase": phase, "results": {"q1": [score, ""]}}) + "\n"

    sent = (line("grade") + line("check", 0)).encode()
    assert kernel._judged(sent, phases) == {
        "grade": {"q1": [1, ""]},
        "check": {"q1": [0, ""]},
    }
    assert kernel._judged(line("grade").encode(), phases) == {"grade": {"q1": [1, ""]}}
    assert kernel._judged(b"", phases) == {}
    for altered in (
        line("grade") + line("grade"),  # a forger's line before the judge's
        line("check") + line("grade"),
        line("grade") + "{not json\n",
        json.dumps({"phase": "grade", "results": 1}) + "\n",
    ):
        assert kernel._judged(altered.encode(), phases) is None, altered
    assert kernel._judged(None, phases) is None  # more than the channel holds
    assert kernel._report_of(b'{"errors": {}, "died": ""}') == {
        "errors": {},
        "died": "",
    }
    assert kernel._report_of(b'{"errors": {}}{"errors": {}, "died": ""}') is None
