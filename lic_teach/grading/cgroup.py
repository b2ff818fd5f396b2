"""A control group for one grading kernel: how many processes it may start, and how
much memory it may hold in all (shared memory and its private ``/tmp`` included).

``RLIMIT_DATA`` caps each process's heap, but not what it puts in ``/dev/shm`` or a
``tmpfs``, and ``RLIMIT_NPROC`` does not bind root; a cgroup counts both, for every
process the kernel starts. :func:`contained` makes one under Linux's cgroup v1
``pids`` and ``memory`` hierarchies (``/sys/fs/cgroup/pids``, ``.../memory``), which
needs the right to write there (root, or a delegated folder); where it cannot, it
says why and grading goes on with the other limits. When the grade ends every process
still in the group is killed, so nothing a submission started outlives it, with or
without the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
MAX_PROCESSES = 512  # tasks: a kernel, its threads and children need about 60


class Group:
    """One control group in each of the ``pids`` and ``memory`` hierarchies."""

    def __init__(self, folders: list[Path]):
        self.folders = folders

    def add(self, pid: int) -> None:
        """Move process ``pid`` and its descendants (and so whatever they start
        later) into the group."""
        for process in [pid, *_descendants(pid)]:
            for folder in self.folders:
                with contextlib.suppress(ProcessLookupError):
                    (folder / "cgroup.procs").write_text(f"{process}\n")

    def processes(self) -> set[int]:
        """The processes in the group now."""
        found = set()
        for folder in self.folders:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def kill_all(self) -> None:
        """SIGKILL every process in the group, until none is left (a fork may race)."""
        for _ in range(50):
            left = self.processes()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, and by those, now (from ``/proc``)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _make(hierarchy: str, settings: dict[str, str]) -> Path:
    folder = ROOT / hierarchy / "lic_teach_grading" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    for name, value in settings.items():
        (folder / name).write_text(value)
    return folder


def unavailable() -> str:
    """``""`` where :func:`contained` can make a group here, else why not."""
    for hierarchy in ("pids", "memory"):
        if not (ROOT / hierarchy / "cgroup.procs").exists():
            return f"no cgroup v1 {hierarchy} hierarchy at {ROOT / hierarchy}"
        if not os.access(ROOT / hierarchy, os.W_OK):
            return f"no right to make control groups in {ROOT / hierarchy}"
    return ""


@contextlib.contextmanager
def contained(memory_bytes: int | None, processes: int = MAX_PROCESSES):
    """A :class:`Group` of at most ``processes`` tasks and ``memory_bytes`` of memory
    (``None``: no memory cap), or ``None`` where none can be made; on leaving, every
    process in it is killed and the group removed."""
    if unavailable():
        yield None
        return
    folders = []
    try:
        folders.append(_make("pids", {"pids.max": str(processes)}))
        memory = (
            {} if memory_bytes is None else {"memory.limit_in_bytes": str(memory_bytes)}
        )
        folders.append(_make("memory", memory))
    except OSError:
        for folder in folders:
            with contextlib.suppress(OSError):
                folder.rmdir()
        yield None
        return
    group = Group(folders)
    try:
        yield group
    finally:
        group.kill_all()
        for folder in folders:
            for _ in range(50):  # a killed process leaves its group a moment later
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
