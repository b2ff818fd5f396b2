"""Running a submitted notebook: a fresh Jupyter kernel in its own process group and an
empty temporary folder, within its :class:`Limits`.

:func:`run_in_kernel` starts a child process (``python -m lic_teach.grading --execute``)
that caps its own memory, runs the notebook with ``nbclient`` (a cell past its time is
interrupted and the next cells still run) and reports which cells failed through a
pipe that only it holds (:func:`execute`); the parent
kills the whole process group when the notebook runs past its total time. At its
:func:`grading_cell` the kernel serves the judge (:mod:`.serve`), a second process
started beside it (``python -m lic_teach.grading --judge``) that runs the tests and
writes the scores where the kernel cannot reach (:mod:`.judge`). :func:`in_parallel`
runs several notebooks at once, each kernel with its share of the cores' threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from . import cgroup, sandbox
from .limits import DEFAULT_LIMITS, Limits, limit_file_size, limit_memory

SERVE_CELL = """from lic_teach.grading.serve import serve
serve(globals(), {requests!r}, {answers!r}, {seconds!r})"""


def grading_cell(phase: str, tests: dict[str, Path]):
    """A cell at which :func:`run_in_kernel` grades the notebook: the judge
    (:mod:`.judge`) runs ``tests`` (question -> test file) in its own process, asking
    this kernel for the notebook's values (:mod:`.serve`); its scores come back under
    ``phase``. A notebook may have several, each graded when the kernel reaches it."""
    import nbformat

    cell = nbformat.v4.new_code_cell("")
    cell.metadata["lic_teach_grading"] = {
        "phase": phase,
        "tests": {q: str(p) for q, p in tests.items()},
    }
    return cell


def _cell_error(output: dict, number: int, limits: Limits) -> str:
    """One line on a cell's error output, saying a time or memory limit when one stopped
    it."""
    name, value = output.get("ename"), output.get("evalue", "")
    if name in ("KeyboardInterrupt", "CellTimeout"):
        line = (
            f"cell {number} ran past the {limits.cell_timeout} s a cell may take "
            "and was interrupted"
        )
    elif name == "MemoryError" or "can't allocate memory" in value:
        line = (
            f"cell {number} ran out of memory "
            f"(a notebook may use {limits.memory_gib:g} GiB)"
        )
    else:
        line = f"cell {number} raised {name}: {value}".strip()
    return line[:300]


@contextlib.contextmanager
def kernel_start_lock():
    """Held while one grading kernel starts, by every grading process of this machine.

    A kernel's TCP ports are picked free by its manager and bound by the kernel a moment
    later, so two kernels started at once (parallel grading) can pick the same ports;
    one of them then never answers ("Kernel didn't respond in 60 seconds") and its
    student would get zero. Once a kernel has answered, its ports are bound and no later
    pick can take them: so starts are serialized, up to the first answer, with a lock
    file."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "lic_teach_kernel_start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def undumpable() -> None:
    """Make this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): a process of
    the same user without ``CAP_SYS_PTRACE`` (the sandboxed kernel) can then not open
    its descriptors through ``/proc/<pid>/fd``."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def execute(notebook_path: Path, report: int, limits: Limits) -> None:
    """In the child process of :func:`run_in_kernel`: run a notebook in a fresh kernel
    in an empty folder, with ``limits``; write which cells failed, and whether the
    kernel died, to the descriptor ``report``, the write end of a pipe that the kernel
    does not inherit (its process starts with only its standard streams) and cannot
    open (this process is not dumpable)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    undumpable()
    limit_memory(limits.memory_gib)
    limit_file_size()
    notebook = nbformat.read(str(notebook_path), as_version=4)

    def timeout(cell):
        grading = cell.metadata.get("lic_teach_grading")
        return (
            limits.test_timeout * (len(grading["tests"]) + 1)
            if grading
            else limits.cell_timeout
        )

    with tempfile.TemporaryDirectory(prefix="lic_teach_grade_") as workdir:
        client = NotebookClient(
            notebook,
            timeout_func=timeout,
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": "CellTimeout",
                "evalue": f"ran past {limits.cell_timeout} s and was interrupted",
                "traceback": [],
            },
            kernel_name="python3",
            resources={"metadata": {"path": workdir}},
        )
        died = ""
        try:
            with kernel_start_lock():
                client.km = client.create_kernel_manager()
                client.start_new_kernel()
                client.start_new_kernel_client()  # returns once the kernel has answered
            client.execute()
        except DeadKernelError as error:
            died = f"the notebook's kernel died ({error})"
    errors = {
        index: _cell_error(output, index + 1, limits)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    }
    with open(report, "w", closefd=True) as channel:
        channel.write(json.dumps({"errors": errors, "died": died}))


_JOBS = threading.local()


def _thread_share() -> dict:
    """Environment for one grading kernel: when ``jobs`` kernels run at once, each gets
    ``cores / jobs`` threads (torch would otherwise start one per core in every kernel).
    """
    jobs = getattr(_JOBS, "count", 1)
    if jobs <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_in_kernel(notebook, limits: Limits = DEFAULT_LIMITS) -> dict | str:
    """Execute ``notebook`` in a fresh kernel in its own process group, within
    ``limits``.

    Returns ``{"results": {phase: {question: [score, failures]}}, "errors": {cell index:
    line}, "died": reason or ""}``, the results coming from its :func:`grading_cell`
    cells; or a string that says why nothing came back (the notebook ran past
    ``total_timeout``)."""
    import nbformat

    notebook = nbformat.from_dict(notebook)
    with (
        tempfile.TemporaryDirectory() as tmp,  # the kernel's: bound into its sandbox
        tempfile.TemporaryDirectory() as private,  # the judge's: never bound
    ):
        phases = []
        for cell in notebook.cells:
            grading = cell.metadata.get("lic_teach_grading")
            if not grading:
                continue
            number = len(phases)
            pipes = {
                name: os.path.join(tmp, f"{name}-{number}")
                for name in ("requests", "answers")
            }
            for path in pipes.values():
                os.mkfifo(path, 0o600)
            cell.source = SERVE_CELL.format(**pipes, seconds=limits.test_timeout)
            phases.append({**grading, **pipes})
        nbformat.write(notebook, os.path.join(tmp, "submission.ipynb"))
        report = _Channel()
        command = [
            sys.executable,
            "-m",
            "lic_teach.grading",
            "--execute",
            os.path.join(tmp, "submission.ipynb"),
            str(report.writer),
            json.dumps(limits.__dict__),
        ]
        if limits.sandbox:
            command = sandbox.wrap(command, [Path(tmp)], [])
        with cgroup.contained(limits.group_memory_bytes()) as group:
            outcome = _run(command, group, phases, private, limits, report)
        if isinstance(outcome, str):
            return outcome
        received = _report_of(report.received())
        if received is None:
            return f"the notebook could not be run: {outcome['child_error']}"
        outcome.update(received)
        outcome["errors"] = {
            int(index): line for index, line in outcome["errors"].items()
        }
        judged = _judged(outcome.pop("scores"), phases)
        failed = outcome["judge_failed"] if judged is not None else TAMPERED
        outcome["results"] = {
            phase["phase"]: (judged or {}).get(phase["phase"])
            or {q: [0, failed] for q in phase["tests"]}
            for phase in phases
        }
        return outcome


TAMPERED = "the judge's scores came back altered: nothing of them counts"


def _report_of(data: bytes | None) -> dict | None:
    """The runner's report ``{"errors", "died"}``, or ``None`` where none came whole
    (the process died first)."""
    try:
        report = json.loads(data) if data is not None else None
    except ValueError:
        return None
    valid = isinstance(report, dict) and {"errors", "died"} <= set(report)
    return report if valid else None


def _judged(data: bytes | None, phases: list) -> dict | None:
    """``{phase: scores}`` from the judge's lines (one JSON line a phase, in order);
    ``None`` where anything else came through the pipe: a line that is not one, a
    phase twice or out of order, more than 4 MiB."""
    if data is None:
        return None
    names, judged = [p["phase"] for p in phases], {}
    for line in data.decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        expected = names[len(judged)] if len(judged) < len(names) else None
        if not (
            isinstance(entry, dict)
            and entry.get("phase") == expected
            and isinstance(entry.get("results"), dict)
        ):
            return None
        judged[expected] = entry["results"]
    return judged


class _Channel:
    """A pipe whose write end only the process it is passed to holds (the runner's
    report, :func:`execute`; the judge's scores, :func:`.judge.main`), read here on a
    thread (at most 4 MiB), so a large message never blocks the writer."""

    LIMIT = 4 * 2**20

    def __init__(self):
        self.reader, self.writer = os.pipe()
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        with open(self.reader, "rb") as pipe:
            self.data = pipe.read(self.LIMIT + 1)

    def started(self):
        """Once the process holds the write end: close it here, start reading."""
        os.close(self.writer)
        self.thread.start()

    def received(self) -> bytes | None:
        """What came through, or ``None`` where it was more than the limit."""
        self.thread.join(5)
        return self.data if len(self.data) <= self.LIMIT else None


def _run(
    command, group, phases: list, private: str, limits: Limits, report: _Channel
) -> dict | str:
    """Run the notebook's process (in ``group``, where there is one; ``report``'s
    write end passed to it) and its judge until both end, or say that they ran past
    ``limits.total_timeout``. Returns ``{"child_error": its last line on stderr,
    "judge_failed": why the judge failed or "its tests never ran", "scores": what the
    judge sent}``."""
    deadline = time.monotonic() + limits.total_timeout
    child = _start(command, report)
    if group is not None:
        group.add(child.pid)
    processes, scores = [child], _Channel()
    if phases:
        spec = os.path.join(private, "judge.json")
        with open(spec, "w") as f:
            settings = {
                "seconds": limits.test_timeout,
                "hidden_seed": limits.hidden_seed,
                "scores": scores.writer,
            }
            json.dump({"phases": phases, "pid": child.pid, **settings}, f)
        judge = [sys.executable, "-m", "lic_teach.grading", "--judge", spec]
        processes.append(_start(judge, scores))
    else:
        scores.started()
    if _wait(processes, deadline):
        return f"the notebook ran past {limits.total_timeout} s in all and was stopped"
    failed = phases and processes[1].returncode
    return {
        "child_error": child.last_error_line(),
        "judge_failed": (
            f"the grader's judge failed: {processes[1].last_error_line()}"
            if failed
            else "its tests never ran"
        ),
        "scores": scores.received(),
    }


class _Child(subprocess.Popen):
    """A process in its own session whose stderr is kept (read on a thread, so that
    a child that writes much never blocks)."""

    stderr_text = ""

    def last_error_line(self) -> str:
        """The last line it wrote to stderr (once it has ended)."""
        self.drainer.join(5)
        return (self.stderr_text.strip().splitlines() or ["no message"])[-1][:300]


def _start(command: list[str], channel: _Channel | None = None) -> _Child:
    """``command`` started in its own session, with this kernel's share of threads
    and, if given, the write end of ``channel`` (then read here, started or not)."""
    try:
        return _started(command, (channel.writer,) if channel else ())
    finally:
        if channel:
            channel.started()


def _started(command: list[str], pass_fds) -> _Child:
    """:func:`_start` without the channel."""
    child = _Child(
        command,
        pass_fds=pass_fds,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=dict(os.environ, **_thread_share()),
    )

    def drain():
        child.stderr_text = child.stderr.read()[-20000:]

    child.drainer = threading.Thread(target=drain, daemon=True)
    child.drainer.start()
    return child


def _wait(processes: list, deadline: float) -> bool:
    """Wait for ``processes`` until ``deadline``; past it, kill every one's process
    group and return True."""
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(other.pid, signal.SIGKILL)
                other.wait()
            return True
    return False


def in_parallel(calls, jobs: int, desc: str = "grading") -> list:
    """Run the zero-argument ``calls`` ``jobs`` at a time, each kernel they start with
    its share of the cores' threads; the results come back in the order of ``calls``."""
    from tqdm.auto import tqdm

    jobs = max(1, min(jobs, len(calls)))

    def run(call):
        _JOBS.count = jobs
        return call()

    with (
        ThreadPoolExecutor(jobs) as pool,
        tqdm(total=len(calls), desc=desc, unit="notebook") as bar,
    ):
        futures = [pool.submit(run, call) for call in calls]
        for _ in as_completed(futures):
            bar.update()
        return [future.result() for future in futures]
