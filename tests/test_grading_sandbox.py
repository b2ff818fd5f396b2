"""The grading sandbox (``lic_teach.grading.sandbox``, bubblewrap): what a submission's
kernel can no longer reach. Without ``bwrap`` these tests skip, except in CI, which
installs it."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest

from lic_teach.grading import grades, sandbox
from lic_teach.grading.limits import Limits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sandboxed():
    why_not = sandbox.available()
    if why_not:
        if os.environ.get("LIC_TEACH_CI"):
            pytest.fail(f"CI must grade in a sandbox: {why_not}")
        pytest.skip(why_not)


@pytest.fixture
def listener():
    """A TCP server on this machine's loopback that counts the connections it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    connections, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connections.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


def _run(code: str, writable: list[Path]) -> subprocess.CompletedProcess:
    command = sandbox.wrap([sys.executable, "-c", code], writable, [])
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_a_sandboxed_process_sees_and_reaches_only_its_own(
    sandboxed, listener, tmp_path
):
    port, connections = listener
    mine = tmp_path / "mine"
    mine.mkdir()
    code = textwrap.dedent(f"""
        import os, socket
        def attempt(action):
            try:
                action()
                return "yes"
            except OSError:
                return "no"
        print("repository", os.path.exists({str(ROOT / "exercises")!r}))
        print("others", os.path.exists({str(tmp_path / "others")!r}))
        print("loopback", attempt(lambda: socket.create_connection(
            ("127.0.0.1", {port}), timeout=2)))
        print("outside_write", attempt(lambda: open("/etc/pwned", "w")))
        open({str(mine / "answer.txt")!r}, "w").write("42")
        open("/tmp/left-behind", "w").write("x")
        print("processes", sorted(p for p in os.listdir("/proc") if p.isdigit()))
        status = open("/proc/self/status").read()
        print("capabilities", status.split("CapEff:")[1].split()[0])
        print("device_node", attempt(lambda: os.mknod("/tmp/disk", 0o600 | 0o60000,
                                                     os.makedev(8, 0))))
        def fill(path):
            with open(path, "wb") as f:
                for _ in range({sandbox.SHM_BYTES // 2**20 + 16}):
                    f.write(bytes(2**20))
        print("shared_memory_filled", attempt(lambda: fill("/dev/shm/big")))
    """)
    (tmp_path / "others").mkdir()
    result = _run(code, [mine])
    assert result.returncode == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert seen["repository"] == "False"  # no solutions, no hidden tests
    assert seen["others"] == "False"  # no other submission
    assert seen["loopback"] == "no"
    assert not connections  # this machine's services are out of reach
    assert seen["outside_write"] == "no"
    assert seen["processes"] == "['1', '2']"  # itself and its shell of bwrap
    assert seen["capabilities"] == "0000000000000000"  # none, even run by root
    assert seen["device_node"] == "no"  # so no disk of the machine to mount
    assert (mine / "answer.txt").read_text() == "42"
    assert not Path("/tmp/left-behind").exists()  # its /tmp was its own
    assert seen["shared_memory_filled"] == "no"  # past SHM_BYTES


@pytest.fixture
def open_folder():
    """A fresh folder under ``/tmp`` that other users may enter (pytest's are
    closed), removed afterwards."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_the_sandbox_holds_for_a_user_without_root(
    sandboxed, listener, open_folder, monkeypatch
):
    """bubblewrap as an unprivileged user (``nobody``), as an instructor without root
    runs it: the same namespaces and binds, checked with a shell, since this machine's
    Python lies under ``/root``, which ``nobody`` cannot enter (its binds are left
    out)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to become another user (setpriv)")
    port, connections = listener
    mine, others = open_folder / "mine", open_folder / "others"
    mine.mkdir()
    others.mkdir()
    os.chown(mine, 65534, 65534)
    tcp = f"/dev/tcp/127.0.0.1/{port}"
    script = textwrap.dedent(f"""
        id -u
        test -e {ROOT / "exercises"} && echo repository || echo no-repository
        test -e {others} && echo others || echo no-others
        (exec 3<>{tcp}) 2>/dev/null && echo loopback || echo no-loopback
        (echo x > /etc/pwned) 2>/dev/null && echo outside || echo no-outside
        echo 42 > {mine / "answer.txt"}
        ls /proc | grep -c '^[0-9]'
    """)
    monkeypatch.setattr(sandbox, "_python_binds", lambda: [])
    command = sandbox.wrap(["/bin/bash", "-c", script], [mine], [])
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*as_nobody, *command], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    *seen, processes = result.stdout.split()
    assert seen == ["65534", "no-repository", "no-others", "no-loopback", "no-outside"]
    assert int(processes) <= 4  # bwrap's init, the shell, its ls and grep; no other
    assert not connections
    assert (mine / "answer.txt").read_text() == "42\n"


@pytest.mark.slow
def test_a_submission_that_copies_the_solution_or_leaves_a_process_gets_nothing(
    sandboxed, tmp_path
):
    """Graded in the sandbox, a notebook that executes the solution from the
    repository, plants a file outside its folder and starts a process that outlives
    it, scores zero, and nothing of it remains."""
    marker = tmp_path / "planted"
    solution = ROOT / "exercises" / "autograder" / "ch01" / "solution.ipynb"
    student = nbformat.read(
        str(ROOT / "exercises" / "student" / "ch01_transform_coding.ipynb"),
        as_version=4,
    )
    attack = textwrap.dedent(f"""
        import json, subprocess
        try:
            cells = json.load(open({str(solution)!r}))["cells"]
            for cell in cells:
                source = "".join(cell["source"])
                if cell["cell_type"] == "code" and "grader" not in source:
                    exec(source, globals())
        except OSError:
            pass
        try:
            open({str(marker)!r}, "w").write("planted")
        except OSError:
            pass
        subprocess.Popen(["sleep", "4321"], start_new_session=True)
    """)
    student.cells.append(nbformat.v4.new_code_cell(attack))
    # the answers the attack would have copied are checked at the end
    checks = [c for c in student.cells if "grader.check" in "".join(c.source)]
    student.cells = [c for c in student.cells if c not in checks] + checks
    path = tmp_path / "ch01_attack.ipynb"
    nbformat.write(student, path)
    grade = grades.grade_notebook(path, limits=Limits(sandbox=True))
    assert grade.total == 0
    assert not marker.exists()
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", "sleep 4321"], capture_output=True)
    assert left.returncode == 1  # no such process remains


def test_make_grade_refuses_without_a_sandbox_unless_told(
    tmp_path, monkeypatch, capsys
):
    from lic_teach import grading

    monkeypatch.setattr(sandbox, "available", lambda: "bubblewrap is not installed")
    tests = tmp_path / "autograder"
    (tests / "ch01").mkdir(parents=True)  # an installed package has no tests of its own
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    arguments = [str(submissions), "--autograder", str(tests)]
    assert grading.main(arguments) == 2
    said = capsys.readouterr().err
    assert "no sandbox for the kernels: bubblewrap is not installed" in said
    assert "--no-sandbox" in said
    # told to, it grades (here: a folder without notebooks, refused for that) and warns
    assert grading.main([*arguments, "--no-sandbox"]) == 2
    said = capsys.readouterr().err
    assert "can read the solutions" in said
    assert "no .ipynb files" in said
