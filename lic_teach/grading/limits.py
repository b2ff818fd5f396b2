"""What one submitted notebook may take, and how many the machine can grade at once.

A kernel's memory is capped through its data segment (``RLIMIT_DATA``, which counts
every heap and anonymous allocation): past the cap an allocation fails and the cell
raises ``MemoryError``, so N kernels graded at once cannot exhaust the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TMP_BYTES = 2**30  # a sandboxed kernel's private /tmp holds at most this
SHM_BYTES = 2**28  # and its /dev/shm this (both are memory, which RLIMIT_DATA misses)
MEMORY_GIB = 4.0  # the exercise solutions' kernels peak at 1.2 GiB of data


@dataclass(frozen=True)
class Limits:
    """What one notebook may take: seconds per cell, per question's tests and in all;
    memory; whether its kernel runs in a sandbox (:mod:`.sandbox`); and the
    instructor's ``hidden_seed``, which redraws the random inputs of the hidden tests
    (:func:`.judge.redrawn`; ``None``: the inputs the tests were written with)."""

    cell_timeout: int = 120
    test_timeout: int = 60
    total_timeout: int = 900
    memory_gib: float = MEMORY_GIB
    sandbox: bool = False
    hidden_seed: int | None = None

    def group_memory_bytes(self) -> int | None:
        """What a kernel's control group (:mod:`.cgroup`) may hold in all: its memory,
        the sandbox's private ``/tmp`` and ``/dev/shm`` (memory too), and 1 GiB for
        the process that runs it and the libraries' pages; ``None`` when memory is not
        limited."""
        if self.memory_gib <= 0:
            return None
        return int((self.memory_gib + 1) * 2**30) + TMP_BYTES + SHM_BYTES


DEFAULT_LIMITS = Limits()


def limit_memory(gib: float) -> None:
    """Cap this process's data segment, and so its children's (the kernel), at ``gib``
    (no cap for ``gib <= 0``)."""
    import resource

    if gib > 0:
        limit = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def limit_file_size(size: int = TMP_BYTES) -> None:
    """Cap every file this process and its children (the kernel) write at ``size``
    bytes: past it a write fails (``EFBIG``), so a submission cannot fill the disk
    of the folder it is graded in with one file."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def available_memory_gib() -> float:
    """Memory the machine can give new processes now (``MemAvailable``), in GiB."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def default_jobs(memory_gib: float = MEMORY_GIB) -> int:
    """One kernel per CPU core, and no more than the available memory holds at
    ``memory_gib`` each."""
    by_memory = (
        int(available_memory_gib() // memory_gib)
        if memory_gib > 0
        else os.cpu_count() or 1
    )
    return max(1, min(os.cpu_count() or 1, by_memory))
