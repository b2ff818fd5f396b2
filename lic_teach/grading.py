"""Grading exercise notebooks, instructor side: a folder of submissions to a CSV of scores.

    python -m lic_teach.grading submissions/ --out scores.csv --jobs 4
    (or: make grade SUBMISSIONS=submissions/ JOBS=4)

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
- a kernel may use ``memory_gib`` of memory (its data segment, ``RLIMIT_DATA``, which
  counts every heap and anonymous allocation): past it an allocation fails, the cell
  raises ``MemoryError`` and its question scores zero, and the machine keeps the memory
  the other kernels need;
- a deleted or never defined variable fails the tests that need it, with a message.

A folder is graded ``jobs`` notebooks at a time: by default one per CPU core, and no
more than the available memory holds at ``memory_gib`` each; each kernel gets an equal
share of the cores' threads. The grades come back in file-name order. :func:`question_summary`
says, per question, how many lost it and the most common reason (the class's report).

Which exercise a notebook answers is read from its metadata (``lic_teach.exercise``,
written by ``make exercises``) or else from a ``chNN`` in its file name.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

AUTOGRADER = Path(__file__).resolve().parents[1] / "exercises" / "autograder"
CHECK_CALL = re.compile(r"""grader\.check\(\s*["'](q\d+)["']\s*\)""")
MEMORY_GIB = 4.0          # the exercise solutions' kernels peak at 1.2 GiB of data

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


@dataclass(frozen=True)
class Limits:
    """What one notebook may take: seconds per cell, per question's tests and in all; memory."""

    cell_timeout: int = 120
    test_timeout: int = 60
    total_timeout: int = 900
    memory_gib: float = MEMORY_GIB


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


def questions_of_cells(cells: list[dict]) -> dict[int, str]:
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


def grading_cell(phase: str, tests: dict[str, Path]):
    """A cell that runs ``tests`` (question -> test file) on the kernel's variables when
    :func:`run_in_kernel` executes it; its scores come back under ``phase``."""
    import nbformat

    cell = nbformat.v4.new_code_cell("")
    cell.metadata["lic_teach_grading"] = {"phase": phase, "tests": {q: str(p) for q, p in tests.items()}}
    return cell


def _cell_error(output: dict, number: int, limits: Limits) -> str:
    """One line on a cell's error output, saying a time or memory limit when one stopped it."""
    name, value = output.get("ename"), output.get("evalue", "")
    if name in ("KeyboardInterrupt", "CellTimeout"):
        line = f"cell {number} ran past the {limits.cell_timeout} s a cell may take and was interrupted"
    elif name == "MemoryError" or "can't allocate memory" in value:
        line = f"cell {number} ran out of memory (a notebook may use {limits.memory_gib:g} GiB)"
    else:
        line = f"cell {number} raised {name}: {value}".strip()
    return line[:300]


def _limit_memory(gib: float) -> None:
    """Cap this process's data segment, and so its children's (the kernel), at ``gib``."""
    import resource

    if gib > 0:
        limit = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


@contextlib.contextmanager
def kernel_start_lock():
    """Held while one grading kernel starts, by every grading process of this machine.

    A kernel's TCP ports are picked free by its manager and bound by the kernel a moment
    later, so two kernels started at once (parallel grading) can pick the same ports; one
    of them then never answers ("Kernel didn't respond in 60 seconds") and its student
    would get zero. Once a kernel has answered, its ports are bound and no later pick can
    take them: so starts are serialized, up to the first answer, with a lock file."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "lic_teach_kernel_start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _execute(notebook_path: Path, report: Path, limits: Limits) -> None:
    """In a child process: run a notebook in a fresh kernel in an empty folder, with
    ``limits``; write which cells failed, and whether the kernel died, to ``report``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    _limit_memory(limits.memory_gib)
    notebook = nbformat.read(str(notebook_path), as_version=4)

    def timeout(cell):
        grading = cell.metadata.get("lic_teach_grading")
        return limits.test_timeout * (len(grading["tests"]) + 1) if grading else limits.cell_timeout

    with tempfile.TemporaryDirectory(prefix="lic_teach_grade_") as workdir:
        client = NotebookClient(
            notebook, timeout_func=timeout, allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": "CellTimeout", "evalue": f"ran past {limits.cell_timeout} s and was interrupted",
                              "traceback": []},
            kernel_name="python3", resources={"metadata": {"path": workdir}})
        died = ""
        try:
            with kernel_start_lock():
                client.km = client.create_kernel_manager()
                client.start_new_kernel()
                client.start_new_kernel_client()         # returns once the kernel has answered
            client.execute()
        except DeadKernelError as error:
            died = f"the notebook's kernel died ({error})"
    errors = {index: _cell_error(output, index + 1, limits)
              for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"}
    report.write_text(json.dumps({"errors": errors, "died": died}))


_JOBS = threading.local()


def _thread_share() -> dict:
    """Environment for one grading kernel: when ``jobs`` kernels run at once, each gets
    ``cores / jobs`` threads (torch would otherwise start one per core in every kernel)."""
    jobs = getattr(_JOBS, "count", 1)
    if jobs <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_in_kernel(notebook, limits: Limits = Limits()) -> dict | str:
    """Execute ``notebook`` in a fresh kernel in its own process group, within ``limits``.

    Returns ``{"results": {phase: {question: [score, failures]}}, "errors": {cell index:
    line}, "died": reason or ""}``, the results coming from its :func:`grading_cell` cells;
    or a string that says why nothing came back (the notebook ran past ``total_timeout``)."""
    import nbformat

    notebook = nbformat.from_dict(notebook)
    with tempfile.TemporaryDirectory() as tmp:
        for cell in notebook.cells:
            grading = cell.metadata.get("lic_teach_grading")
            if grading:
                out = os.path.join(tmp, f"scores-{grading['phase']}.json")
                cell.source = f"{GRADING_CELL}\n_lic_teach_grade({grading['tests']!r}, {out!r}, {limits.test_timeout!r})"
        nbformat.write(notebook, os.path.join(tmp, "submission.ipynb"))
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "lic_teach.grading", "--execute", os.path.join(tmp, "submission.ipynb"),
                   str(report), json.dumps(limits.__dict__)]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True, env=dict(os.environ, **_thread_share()))
        try:
            _, stderr = child.communicate(timeout=limits.total_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return f"the notebook ran past {limits.total_timeout} s in all and was stopped"
        if not report.exists():
            last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
            return f"the notebook could not be run: {last[0][:300]}"
        outcome = json.loads(report.read_text())
        outcome["errors"] = {int(index): line for index, line in outcome["errors"].items()}
        outcome["results"] = {path.stem.removeprefix("scores-"): json.loads(path.read_text())
                              for path in Path(tmp).glob("scores-*.json")}
        return outcome


def scored(grade: Grade, results: dict, cell_errors: dict[str, list[str]]) -> Grade:
    """``grade`` filled from one grading cell's ``results``: a question with a failed cell scores zero."""
    for question in grade.possible:
        score, failed = results.get(question, [0, "its tests never ran"])
        errors = cell_errors.get(question, [])
        grade.scores[question] = 0.0 if errors else float(score)
        notes = errors + ([failed.strip()] if failed else [])
        if notes:
            grade.feedback[question] = "; ".join(notes)
    return grade


def tests_of(path: Path, notebook: dict, autograder, exercise: str | None):
    """``(exercise, {question: test file})`` for a notebook, or a reason it cannot be graded."""
    exercise = exercise or exercise_of(notebook, path)
    tests = Path(autograder) / str(exercise)
    if exercise is None or not tests.is_dir():
        return exercise, (f"cannot tell which exercise this answers (found {exercise!r}); "
                          f"name it chNN_... or pass --exercise")
    return exercise, question_files(tests)


def grade_notebook(path, autograder=AUTOGRADER, exercise: str | None = None, limits: Limits = Limits()) -> Grade:
    """Grade one submitted notebook against the full tests of its exercise."""
    import nbformat

    path = Path(path)
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as error:  # any unreadable file is reported, never fatal
        return Grade(path.name, exercise or "?", {}, {}, {"notebook": f"not a readable notebook: {error}"})
    exercise, tests = tests_of(path, notebook, autograder, exercise)
    if isinstance(tests, str):
        return Grade(path.name, exercise or "?", {}, {}, {"notebook": tests})
    grade = Grade(path.name, exercise, {q: 0.0 for q in tests}, {q: points(p) for q, p in tests.items()})
    owner = questions_of_cells(notebook.cells)
    notebook.cells.append(grading_cell("grade", tests))
    outcome = run_in_kernel(notebook, limits)
    if isinstance(outcome, str):
        return grade.zero(outcome)
    if outcome["died"] and not outcome["results"]:
        return grade.zero(outcome["died"])
    cell_errors: dict[str, list[str]] = {}
    for index, line in sorted(outcome["errors"].items()):
        if index in owner:
            cell_errors.setdefault(owner[index], []).append(line)
    return scored(grade, outcome["results"].get("grade", {}), cell_errors)


def available_memory_gib() -> float:
    """Memory the machine can give new processes now (``MemAvailable``), in GiB."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def default_jobs(memory_gib: float = MEMORY_GIB) -> int:
    """One kernel per CPU core, and no more than the available memory holds at ``memory_gib`` each."""
    by_memory = int(available_memory_gib() // memory_gib) if memory_gib > 0 else os.cpu_count() or 1
    return max(1, min(os.cpu_count() or 1, by_memory))


def in_parallel(calls, jobs: int, desc: str = "grading") -> list:
    """Run the zero-argument ``calls`` ``jobs`` at a time, each kernel they start with its
    share of the cores' threads; the results come back in the order of ``calls``."""
    from tqdm.auto import tqdm

    jobs = max(1, min(jobs, len(calls)))

    def run(call):
        _JOBS.count = jobs
        return call()

    with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(calls), desc=desc, unit="notebook") as bar:
        futures = [pool.submit(run, call) for call in calls]
        for _ in as_completed(futures):
            bar.update()
        return [future.result() for future in futures]


def grade_folder(folder, jobs: int | None = None, autograder=AUTOGRADER, exercise: str | None = None,
                 limits: Limits = Limits()) -> list[Grade]:
    """Grade every ``*.ipynb`` in ``folder`` (not its subfolders), ``jobs`` at a time
    (default :func:`default_jobs`); the grades come back in file-name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of submitted notebooks")
    paths = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise ValueError(f"no .ipynb files in {folder}")
    calls = [lambda path=path: grade_notebook(path, autograder, exercise, limits) for path in paths]
    return in_parallel(calls, jobs or default_jobs(limits.memory_gib))


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


def _reasons(feedback: str) -> list[str]:
    """The separate reasons in one question's feedback, with cell numbers left out so that
    the same mistake in notebooks of different lengths counts as one."""
    return [re.sub(r"^cell \d+ ", "a cell ", reason.strip()) for reason in feedback.split("; ") if reason.strip()]


def question_summary(grades: list[Grade]) -> list[dict]:
    """Per exercise and question: how many submissions lost marks on it, their mean score,
    and the most common reason, with how many gave it (what confused the class)."""
    rows = []
    for exercise in sorted({g.exercise for g in grades if g.possible}):
        graded = [g for g in grades if g.exercise == exercise and g.possible]
        for question in sorted({q for g in graded for q in g.possible}, key=lambda q: int(q[1:])):
            lost = [g for g in graded if g.scores.get(question, 0.0) < g.possible.get(question, 0.0)]
            reasons = Counter(reason for g in lost for reason in set(_reasons(g.feedback.get(question, ""))))
            common, count = reasons.most_common(1)[0] if reasons else ("", 0)
            rows.append({"exercise": exercise, "question": question, "submissions": len(graded),
                         "lost": len(lost), "mean": sum(g.scores.get(question, 0.0) for g in graded) / len(graded),
                         "possible": max(g.possible.get(question, 0.0) for g in graded),
                         "reason": common, "reason_count": count})
    return rows


def summary_markdown(grades: list[Grade]) -> str:
    """:func:`question_summary` as a Markdown table, with the submissions that could not be graded."""
    lines = ["| exercise | question | lost it | mean score | most common reason |", "| --- | --- | --- | --- | --- |"]
    for row in question_summary(grades):
        reason = f"{row['reason']} ({row['reason_count']} of {row['lost']})" if row["lost"] else ""
        lines.append(f"| {row['exercise']} | {row['question']} | {row['lost']} of {row['submissions']} | "
                     f"{row['mean']:.2f} / {row['possible']:g} | {reason.replace('|', '/')} |")
    ungraded = [g for g in grades if not g.possible]
    if ungraded:
        lines += ["", f"Not graded ({len(ungraded)}): "
                  + "; ".join(f"{g.submission}: {g.feedback.get('notebook', '')}" for g in ungraded)]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    """The command line's options, checked; ``--report`` defaults to the CSV's name with ``.md``."""
    parser = argparse.ArgumentParser(prog="python -m lic_teach.grading", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="a folder of submitted .ipynb notebooks")
    parser.add_argument("--out", default="scores.csv", help="the CSV to write (default scores.csv)")
    parser.add_argument("--report", help="the per-question summary to write (default: the CSV's name, .md)")
    parser.add_argument("--autograder", default=str(AUTOGRADER), help="folder of full tests, one subfolder per exercise")
    parser.add_argument("--exercise", help="grade every notebook as this exercise (e.g. ch01)")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds a cell may run (default 120)")
    parser.add_argument("--test-timeout", type=int, default=60, help="seconds a question's tests may run (default 60)")
    parser.add_argument("--total-timeout", type=int, default=900, help="seconds a notebook may run (default 900)")
    parser.add_argument("--memory-gib", type=float, default=MEMORY_GIB,
                        help=f"memory one notebook's kernel may use, in GiB (default {MEMORY_GIB:g}; 0: no limit)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks graded at once (default: one per CPU core, as many as the memory holds)")
    args = parser.parse_args(argv)
    if not Path(args.autograder).is_dir():
        parser.error(f"no autograder tests at {args.autograder}; run `make exercises` in the repository, "
                     f"or pass --autograder")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.report = args.report or str(Path(args.out).with_suffix(".md"))
    return args


def main(argv=None) -> int:
    """The command line ``python -m lic_teach.grading folder/ [--out scores.csv] [--jobs N]``."""
    args = parse_args(argv)
    limits = Limits(args.cell_timeout, args.test_timeout, args.total_timeout, args.memory_gib)
    jobs = args.jobs or default_jobs(args.memory_gib)
    if args.memory_gib > 0 and jobs * args.memory_gib > available_memory_gib():
        print(f"warning: {jobs} kernels at up to {args.memory_gib:g} GiB each could need more than the "
              f"{available_memory_gib():.1f} GiB available; fewer --jobs or a smaller --memory-gib is safer",
              file=sys.stderr)
    try:
        grades = grade_folder(args.submissions, jobs, args.autograder, args.exercise, limits)
    except ValueError as error:
        print(f"python -m lic_teach.grading: error: {error}", file=sys.stderr)
        return 2
    write_csv(grades, args.out)
    summary = summary_markdown(grades)
    Path(args.report).write_text(summary)
    for g in grades:
        print(f"{g.submission}: {g.total:g} / {sum(g.possible.values()):g}")
    print(f"\n{summary}\nscores written to {args.out}, the summary per question to {args.report}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--execute":
        _execute(Path(sys.argv[2]), Path(sys.argv[3]), Limits(**json.loads(sys.argv[4])))
    else:
        sys.exit(main())
