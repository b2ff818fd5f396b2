"""A sandbox for a grading kernel (issue 36): bubblewrap (``bwrap``, Debian's
``bubblewrap`` package), which needs no root where the kernel allows unprivileged user
namespaces.

:func:`wrap` turns the command that runs a submission (``python -m lic_teach.grading
--execute ...``: nbclient and the student's kernel) into one that runs inside new
namespaces of every kind: no network (its own loopback only, where nbclient and the
kernel talk), its own process tree (it sees no other process, and everything it
started dies with it), a read-only view of the system (``/usr``, ``/etc``, the Python
installation and this environment, and the ``lic_teach`` package), a private, empty
``/tmp`` (at most :data:`TMP_BYTES`), ``/dev/shm`` (:data:`SHM_BYTES`) and home, and
nothing else of the machine: not the repository, its solutions or tests (the tests
run in the judge, outside: :mod:`.judge`), not the other submissions, not other
kernels' connection files, not the judge's files. Only the submission's own folder
(with the two pipes to its judge) is writable. It holds no capability, even where the
grader runs as root (bubblewrap would keep root's): it can neither make device nodes
nor mount, nor open the descriptors of the process that reports on it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

from .limits import SHM_BYTES, TMP_BYTES

SYSTEM = ("/usr", "/etc")  # read-only; /bin, /lib, ... are links into /usr here
LINKS = ("/bin", "/sbin", "/lib", "/lib64")


def _system_binds() -> list[str]:
    """The read-only system: ``/usr`` and ``/etc``, and ``/bin``, ``/lib``, ... as the
    links (or folders) they are on this machine."""
    arguments = []
    for path in SYSTEM:
        arguments += ["--ro-bind", path, path]
    for path in LINKS:
        link = Path(path)
        if link.is_symlink():
            arguments += ["--symlink", str(link.readlink()), path]
        elif link.is_dir():
            arguments += ["--ro-bind", path, path]
    return arguments


def _python_binds() -> list[str]:
    """This Python, its environment and the ``lic_teach`` package, read-only (an
    editable install's package lies outside the environment)."""
    import lic_teach

    package = Path(lic_teach.__file__).resolve().parent
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), package}
    arguments = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        arguments += ["--ro-bind", str(path), str(path)]
    return arguments


def wrap(command: list[str], writable: list[Path], readable: list[Path]) -> list[str]:
    """``command`` run by bubblewrap in the sandbox of the module docstring, with the
    folders ``writable`` writable and the files ``readable`` read-only, each at its own
    path."""
    arguments = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--cap-drop", "ALL",  # run by root, bwrap would keep every capability
        "--die-with-parent",
        "--new-session",
        # the private folders first: what is bound later may lie inside them (a
        # checkout, its environment or a submission under /tmp)
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
        "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
        *_system_binds(),
        *_python_binds(),
        "--dir", "/tmp/home",
        "--setenv", "HOME", "/tmp/home",
        "--setenv", "TMPDIR", "/tmp",
        "--unsetenv", "JUPYTER_RUNTIME_DIR",
        "--unsetenv", "JUPYTER_DATA_DIR",
        "--unsetenv", "IPYTHONDIR",
    ]  # fmt: skip
    for path in readable:
        arguments += ["--ro-bind", str(path), str(path)]
    for path in writable:
        arguments += ["--bind", str(path), str(path)]
    return [*arguments, "--", *command]


@functools.cache
def available() -> str:
    """``""`` where a sandbox can be made here, else why not (no ``bwrap``, or user
    namespaces disabled): a short Python runs in one to find out."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt install bubblewrap)"
    probe = wrap([sys.executable, "-c", "import lic_teach"], [], [])
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start: {error}"
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap could not make a sandbox here: {last[:200]}"
    return ""
