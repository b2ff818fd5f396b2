"""For exercise authors: does every question's test suite reject a plausible wrong
answer?

A test that passes the solution proves little; one that also fails a likely mistake (a
wrong log base, a missing clamp, an off-by-one) shows it checks the idea. This is
mutation testing of the exercise's full tests, hidden ones included, through the
grader's own kernel and grading cell (:mod:`lic_teach.grading`).

One fresh kernel runs the whole solution and grades it; then, for each question with a
mistake ``(right, wrong)``, it forgets every name that question's cells bind, runs those
cells with ``right`` replaced by ``wrong``, grades that question alone, and runs the
original cells again before the next question. A question's cells see the earlier
questions' state as a student's notebook would, so each verdict is the one a submission
with only that mistake gets, for one kernel start instead of one per mistake.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

from lic_teach import grading


def bound_names(source: str) -> set[str]:
    """The names a cell binds in the notebook's namespace (not those local to its
    functions, classes or comprehensions); none when it is not plain Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.alias):
                names.add((child.asname or child.name).split(".")[0])
            elif not isinstance(
                child,
                (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
            ):
                visit(child)

    visit(tree)
    return names


def _forget(cells):
    """A cell that removes every name ``cells`` bind from the notebook's namespace."""
    import nbformat

    names = sorted(set().union(*(bound_names(cell.source) for cell in cells)))
    return nbformat.v4.new_code_cell(
        f"for _name in {names!r}:\n    globals().pop(_name, None)"
    )


def _mutated(cells, question: str, right: str, wrong: str):
    """Copies of a question's cells with ``right`` replaced by ``wrong`` in the one cell
    holding it."""
    holding = [cell for cell in cells if right in cell.source]
    if len(holding) != 1:
        raise ValueError(
            f"{question}: {right!r} must appear in exactly one of its cells, "
            f"found it in {len(holding)}"
        )
    cells = copy.deepcopy(cells)
    for cell in cells:
        cell.source = cell.source.replace(right, wrong)
    return cells


def reject_wrong_answers(
    solution,
    mistakes: dict[str, tuple[str, str]],
    autograder=None,
    exercise: str | None = None,
    limits: grading.Limits = grading.DEFAULT_LIMITS,
) -> dict[str, grading.Grade]:
    """Grade ``solution`` (a notebook path), then each of ``mistakes`` (question ->
    ``(text in the solution, what a student might write)``) on its own, in one kernel,
    against the full tests in ``autograder`` (see
    :func:`lic_teach.grading.autograder_folder`).

    Returns ``{"solution": its grade, question: the grade of that question with its
    mistake}``: a test suite that rejects the mistake gives that question a score below
    its points, with the failure in its feedback."""
    import nbformat

    path = Path(solution)
    notebook = nbformat.read(str(path), as_version=4)
    exercise, tests = grading.tests_of(path, notebook, autograder, exercise)
    if isinstance(tests, str):
        raise ValueError(f"{path.name}: {tests}")
    unknown = set(mistakes) - set(tests)
    if unknown:
        raise ValueError(
            f"no question {sorted(unknown)} in {exercise} (it has {', '.join(tests)})"
        )
    owner = grading.questions_of_cells(notebook.cells)
    cells = list(notebook.cells) + [grading.grading_cell("solution", tests)]
    phase_of_cell = {index: ("solution", question) for index, question in owner.items()}
    for question, (right, wrong) in mistakes.items():
        own = [
            notebook.cells[index] for index, q in sorted(owner.items()) if q == question
        ]
        cells.append(_forget(own))
        for cell in _mutated(own, question, right, wrong):
            phase_of_cell[len(cells)] = (question, question)
            cells.append(cell)
        cells += [
            grading.grading_cell(question, {question: tests[question]}),
            _forget(own),
            *copy.deepcopy(own),
        ]
    notebook.cells = cells
    outcome = grading.run_in_kernel(notebook, limits)
    possible = {q: grading.points(p) for q, p in tests.items()}
    grades = {}
    for phase in ["solution", *mistakes]:
        asked = possible if phase == "solution" else {phase: possible[phase]}
        grade = grading.Grade(
            f"{path.name} ({phase})", exercise, dict.fromkeys(asked, 0.0), asked
        )
        if isinstance(outcome, str) or (
            outcome["died"] and phase not in outcome["results"]
        ):
            grades[phase] = grade.zero(
                outcome if isinstance(outcome, str) else outcome["died"]
            )
            continue
        cell_errors: dict[str, list[str]] = {}
        for index, line in sorted(outcome["errors"].items()):
            cell_phase, question = phase_of_cell.get(index, (None, None))
            if cell_phase == phase:
                cell_errors.setdefault(question, []).append(line)
        grades[phase] = grading.scored(
            grade, outcome["results"].get(phase, {}), cell_errors
        )
    return grades
