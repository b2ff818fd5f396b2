"""Grading exercise notebooks, instructor side: a folder of submissions to a CSV of scores.

    python -m lic_teach.grading submissions/ --out scores.csv      (or: make grade SUBMISSIONS=submissions/)

Each submission runs in its own fresh Jupyter kernel, in an empty temporary folder, without
Docker and without network. After the student's cells, the full otter tests of the exercise,
hidden ones included (``exercises/autograder/chNN/qK.py``), run against the notebook's
variables, one question at a time. Nothing a submission does stops the others:

- every cell of a question must run: a cell that raises, or runs past ``cell_timeout``
  seconds and is interrupted, scores its question zero with a message, and the next
  cells still run (a question's cells are those up to its ``grader.check("qN")``);
- a test that runs past ``test_timeout`` seconds (a student function that never returns)
  fails that question only;
- a submission that kills its kernel, or runs past ``total_timeout`` seconds in all,
  scores zero with a message that says so;
- a deleted or never defined variable fails the tests that need it, with a message.

Which exercise a notebook answers is read from its metadata (``lic_teach.exercise``,
written by ``make exercises``) or else from a ``chNN`` in its file name. A folder is
graded ``jobs`` notebooks at a time (one per CPU core by default), each kernel given an
equal share of the cores' threads.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

AUTOGRADER = Path(__file__).resolve().parents[1] / "exercises" / "autograder"
CHECK_CALL = re.compile(r"""grader\.check\(\s*["'](q\d+)["']\s*\)""")

GRADING_CELL = '''
def _lic_teach_grade(tests, out, seconds):
    """Run each question's otter tests on this notebook's variables; write the scores."""
    import io, json, signal
    from otter.nbmeta_config import NBMetadataConfig
    from otter.test_files import create_test_file

    class TestTimeout(BaseException):
        pass

    def on_alarm(*_):
        raise TestTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    results = {}
    for question, path in tests.items():
        signal.alarm(seconds)
        try:
            test_file = create_test_file(path, NBMetadataConfig())
            test_file.run(_lic_teach_grade.__globals__)
            signal.alarm(0)
            failed = [(tcr.test_case.failure_message or tcr.message.strip().splitlines()[-1])
                      + (" (a hidden test)" if tcr.test_case.hidden else "")
                      for tcr in test_file.test_case_results if not tcr.passed]
            results[question] = [test_file.score, "; ".join(failed)]
        except TestTimeout:
            results[question] = [0, f"its tests ran past {seconds} s and were stopped"]
        except BaseException as error:
            signal.alarm(0)
            results[question] = [0, f"its tests stopped with {type(error).__name__}: {error}"]
    with io.open(out, "w") as f:
        json.dump(results, f)
'''


@dataclass
class Grade:
    """The scores of one submission: per question, with feedback where marks were lost."""

    submission: str
    exercise: str
    scores: dict[str, float]
    possible: dict[str, float]
    feedback: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    def zero(self, reason: str) -> "Grade":
        """This grade with every question at zero, for ``reason``."""
        feedback = {q: reason for q in self.possible}
        return Grade(self.submission, self.exercise, dict.fromkeys(self.possible, 0.0), self.possible, feedback)


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
    """The exercise a notebook answers: its ``lic_teach.exercise`` metadata, else ``chNN`` in its name."""
    named = notebook.get("metadata", {}).get("lic_teach", {}).get("exercise")
    if named:
        return str(named)
    match = re.search(r"ch\d\d", path.name)
    return match.group(0) if match else None


def _questions_of_cells(cells: list[dict]) -> dict[int, str]:
    """Cell index -> the question it belongs to: the cells up to and including ``grader.check("qN")``."""
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


def _cell_errors(cells: list[dict], owner: dict[int, str], cell_timeout: int) -> dict[str, list[str]]:
    """Per question, one line for each of its cells that raised or was stopped."""
    errors: dict[str, list[str]] = {}
    for index, question in owner.items():
        for output in cells[index].get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if output.get("ename") in ("KeyboardInterrupt", "CellTimeout"):
                line = f"cell {index + 1} ran past the {cell_timeout} s a cell may take and was interrupted"
            else:
                line = f"cell {index + 1} raised {output.get('ename')}: {output.get('evalue', '')}".strip()
            errors.setdefault(question, []).append(line[:300])
    return errors


def _execute(notebook_path: Path, tests: Path, report: Path, cell_timeout: int, test_timeout: int) -> None:
    """In a child process: run one notebook in a fresh kernel, then its tests; write a JSON report."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    notebook = nbformat.read(str(notebook_path), as_version=4)
    owner = _questions_of_cells(notebook.cells)
    with tempfile.TemporaryDirectory(prefix="lic_teach_grade_") as workdir:
        scores_file = os.path.join(workdir, ".lic_teach_scores.json")
        tests_by_question = {q: str(p) for q, p in question_files(tests).items()}
        call = f"_lic_teach_grade({tests_by_question!r}, {scores_file!r}, {test_timeout!r})"
        grading_cell = nbformat.v4.new_code_cell(GRADING_CELL + "\n" + call)
        notebook.cells.append(grading_cell)
        tests_limit = test_timeout * (len(tests_by_question) + 1)
        client = NotebookClient(
            notebook, timeout_func=lambda cell: tests_limit if cell is grading_cell else cell_timeout,
            allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": "CellTimeout", "evalue": f"ran past {cell_timeout} s and was interrupted",
                              "traceback": []},
            kernel_name="python3", resources={"metadata": {"path": workdir}})
        died = ""
        try:
            client.execute()
        except DeadKernelError as error:
            died = f"the notebook's kernel died ({error})"
        results = {}
        if os.path.exists(scores_file):
            with open(scores_file) as f:
                results = json.load(f)
    errors = _cell_errors(notebook.cells[:-1], owner, cell_timeout)
    report.write_text(json.dumps({"results": results, "errors": errors, "died": died}))


_JOBS = threading.local()


def _thread_share() -> dict:
    """Environment for one grading kernel: when ``jobs`` kernels run at once, each gets
    ``cores / jobs`` threads (torch would otherwise start one per core in every kernel)."""
    jobs = getattr(_JOBS, "count", 1)
    if jobs <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _run_child(path: Path, tests: Path, cell_timeout: int, test_timeout: int, total_timeout: int) -> dict | str:
    """Run :func:`_execute` in its own process group; a string says why no report came back."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "lic_teach.grading", "--execute", str(path), str(tests), str(report),
                   str(cell_timeout), str(test_timeout)]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True, env=dict(os.environ, **_thread_share()))
        try:
            _, stderr = child.communicate(timeout=total_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return f"the notebook ran past {total_timeout} s in all and was stopped"
        if not report.exists():
            last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
            return f"the notebook could not be run: {last[0][:300]}"
        return json.loads(report.read_text())


def grade_notebook(path, autograder=AUTOGRADER, exercise: str | None = None, cell_timeout: int = 120,
                   test_timeout: int = 60, total_timeout: int = 900) -> Grade:
    """Grade one submitted notebook against the full tests of its exercise."""
    import nbformat

    path = Path(path)
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as error:  # any unreadable file is reported, never fatal
        return Grade(path.name, exercise or "?", {}, {}, {"notebook": f"not a readable notebook: {error}"})
    exercise = exercise or exercise_of(notebook, path)
    tests = Path(autograder) / str(exercise)
    if exercise is None or not tests.is_dir():
        return Grade(path.name, exercise or "?", {}, {},
                     {"notebook": f"cannot tell which exercise this answers (found {exercise!r}); "
                                  f"name it chNN_... or pass --exercise"})
    possible = {q: points(p) for q, p in question_files(tests).items()}
    grade = Grade(path.name, exercise, dict.fromkeys(possible, 0.0), possible)
    report = _run_child(path, tests, cell_timeout, test_timeout, total_timeout)
    if isinstance(report, str):
        return grade.zero(report)
    if report["died"] and not report["results"]:
        return grade.zero(report["died"])
    for question in possible:
        score, failed = report["results"].get(question, [0, "its tests never ran"])
        cell_errors = report["errors"].get(question, [])
        grade.scores[question] = 0.0 if cell_errors else float(score)
        notes = cell_errors + ([failed.strip()] if failed else [])
        if notes:
            grade.feedback[question] = "; ".join(notes)
    return grade


def grade_folder(folder, jobs: int | None = None, **options) -> list[Grade]:
    """Grade every ``*.ipynb`` in ``folder`` (not its subfolders), ``jobs`` at a time
    (default: one per CPU core); the grades come back in file-name order."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of submitted notebooks")
    paths = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise ValueError(f"no .ipynb files in {folder}")
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths)))

    def grade(path):
        _JOBS.count = jobs
        return grade_notebook(path, **options)

    with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(paths), desc="grading", unit="notebook") as bar:
        futures = [pool.submit(grade, path) for path in paths]
        for future in as_completed(futures):
            bar.update()
        return [future.result() for future in futures]


def write_csv(grades: list[Grade], path) -> None:
    """One row per submission: a column per question, the total, what is possible, and feedback."""
    questions = sorted({q for g in grades for q in g.possible}, key=lambda q: int(q[1:]))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", *questions, "total", "possible", "feedback"])
        for g in grades:
            feedback = " | ".join(f"{q}: {text}" for q, text in g.feedback.items())
            row = [g.scores.get(q, "") for q in questions]
            writer.writerow([g.submission, g.exercise, *row, g.total, sum(g.possible.values()), feedback])


def main(argv=None) -> int:
    """The command line ``python -m lic_teach.grading folder/ [--out scores.csv]``."""
    parser = argparse.ArgumentParser(prog="python -m lic_teach.grading", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="a folder of submitted .ipynb notebooks")
    parser.add_argument("--out", default="scores.csv", help="the CSV to write (default scores.csv)")
    parser.add_argument("--autograder", default=str(AUTOGRADER), help="folder of full tests, one subfolder per exercise")
    parser.add_argument("--exercise", help="grade every notebook as this exercise (e.g. ch01)")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds a cell may run (default 120)")
    parser.add_argument("--test-timeout", type=int, default=60, help="seconds a question's tests may run (default 60)")
    parser.add_argument("--total-timeout", type=int, default=900, help="seconds a notebook may run (default 900)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks graded at once (default: one per CPU core)")
    args = parser.parse_args(argv)
    if not Path(args.autograder).is_dir():
        parser.error(f"no autograder tests at {args.autograder}; run `make exercises` in the repository, "
                     f"or pass --autograder")
    try:
        grades = grade_folder(args.submissions, jobs=args.jobs, autograder=args.autograder, exercise=args.exercise,
                              cell_timeout=args.cell_timeout, test_timeout=args.test_timeout,
                              total_timeout=args.total_timeout)
    except ValueError as error:
        parser.error(str(error))
    write_csv(grades, args.out)
    for g in grades:
        print(f"{g.submission}: {g.total:g} / {sum(g.possible.values()):g}")
    print(f"scores written to {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--execute":
        _, _, nb, tests, report, cell_timeout, test_timeout = sys.argv
        _execute(Path(nb), Path(tests), Path(report), int(cell_timeout), int(test_timeout))
    else:
        sys.exit(main())
