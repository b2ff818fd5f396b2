"""What a kernel may take (issue 36): in its control group, a fork bomb stops at the
group's process cap, shared memory counts against its memory, and nothing it started
outlives it; everywhere, no file it writes grows past the file-size cap."""

import os
import subprocess
import sys

import pytest

from lic_teach.grading import cgroup

needs_cgroups = pytest.mark.skipif(
    bool(cgroup.unavailable()) and not os.environ.get("LIC_TEACH_CI"),
    reason=f"no control groups here: {cgroup.unavailable()}",
)

FORKS = """
import os, sys, time
sys.stdin.readline()  # once it is in the group
started = 0
for _ in range(2000):
    try:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        started += 1
    except OSError:
        break
print(started, flush=True)
time.sleep(600)
"""


@needs_cgroups
def test_a_fork_bomb_stops_at_the_cap_and_dies_with_the_grade():
    with cgroup.contained(None, processes=64) as group:
        bomb = subprocess.Popen(
            [sys.executable, "-c", FORKS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        group.add(bomb.pid)
        bomb.stdin.write("go\n")
        bomb.stdin.flush()
        started = int(bomb.stdout.readline())
        assert 0 < started < 64
        assert len(group.processes()) == started + 1
        left = group.processes()
    bomb.wait(timeout=10)
    assert not any(_running(pid) for pid in left)


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a killed child no one has reaped yet is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@needs_cgroups
def test_shared_memory_counts_against_the_group(tmp_path):
    """What a process puts in a tmpfs (``/dev/shm``) is memory RLIMIT_DATA misses;
    the group's cap counts it, and the process is stopped."""
    fill = (
        "import os, sys\n"
        "path = '/dev/shm/lic_teach_cgroup_test'\n"
        "with open(path, 'wb') as f:\n"
        "    for _ in range(400):\n"
        "        f.write(b'x' * 2**20)\n"
        "        f.flush()\n"
        "print('wrote it all')\n"
    )
    try:
        with cgroup.contained(200 * 2**20) as group:
            child = subprocess.Popen(
                [sys.executable, "-c", fill], stdout=subprocess.PIPE, text=True
            )
            group.add(child.pid)
            out, _ = child.communicate(timeout=60)
        assert "wrote it all" not in out
        assert child.returncode != 0
    finally:
        if os.path.exists("/dev/shm/lic_teach_cgroup_test"):
            os.remove("/dev/shm/lic_teach_cgroup_test")


def test_no_file_a_kernel_writes_grows_past_the_cap(tmp_path):
    """Runs everywhere (an rlimit needs no cgroup): the grading process caps the size
    of every file it and its kernel write."""
    script = (
        "import sys\n"
        "from lic_teach.grading.limits import limit_file_size\n"
        "limit_file_size(2**20)\n"
        "try:\n"
        "    with open(sys.argv[1], 'wb') as f:\n"
        "        f.write(b'x' * 2**21)\n"
        "except OSError as error:\n"
        "    print('refused', error.errno)\n"
    )
    target = tmp_path / "big"
    out = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "refused" in out
    assert target.stat().st_size <= 2**20
