"""Colab's runtime, as near as this machine gets, beside the README's ``.venv``.

A fresh virtual environment on Python 3.13 gets what Colab preinstalls and this project
depends on (numpy 2.1, the newest torch and torchvision, ipywidgets 7.7.1, a Jupyter
kernel, pytest). Then, in a kernel of that environment where ``google.colab`` is
importable (``tests/colab_stub``), the chapters' own setup cell runs unchanged,
installing ``lic_teach`` from this checkout's committed ``HEAD`` (``LIC_TEACH_REPO``)
instead of GitHub. Then the unit and cross-check tests, every chapter at the ``smoke``
budget, and the first exercise notebook with its own setup cell and ``grader.check``.

The Python 3.13 interpreter is ``$LIC_TEACH_COLAB_PYTHON``, ``python3.13`` on the PATH
or pyenv's; without one these tests skip, except in CI (``LIC_TEACH_CI=1``), where they
fail.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "colab_stub"
BOOK_SETUP = ROOT / "book" / "_templates" / "setup_cell.py"
EXERCISE = ROOT / "exercises" / "autograder" / "ch01" / "solution.ipynb"
COLAB_PREINSTALLED = [
    "numpy==2.1.3",
    "torch",
    "torchvision",
    "ipywidgets==7.7.1",
    "ipykernel",
    "nbclient",
    "nbformat",
    "pyyaml",
    "pytest",
    "pytest-timeout",
    "pytest-xdist",  # not Colab's: the unit tests run in two processes (`make test`)
]
SETUP_LIMIT_S = 180

pytestmark = [pytest.mark.slow, pytest.mark.colab]


def colab_python() -> str | None:
    """A Python 3.13 interpreter that runs (pyenv's shims exist for versions not
    selected)."""
    candidates = [
        os.environ.get("LIC_TEACH_COLAB_PYTHON"),
        *sorted(
            glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13"))
        ),
        shutil.which("python3.13"),
    ]
    for candidate in filter(None, candidates):
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if version.returncode == 0 and version.stdout.strip() == "(3, 13)":
            return candidate
    return None


class ColabLike:
    """A virtual environment and the commands run in it."""

    def __init__(self, folder: Path, python: str):
        self.venv = folder / "venv"
        subprocess.run([python, "-m", "venv", str(self.venv)], check=True)
        self.env = dict(
            os.environ,
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            LIC_TEACH_REPO=f"file://{ROOT}",
            LIC_TEACH_CACHE=str(folder / "cache"),
            LIC_BUDGET="smoke",
            PYTHONNOUSERSITE="1",
        )
        self.env.pop("VIRTUAL_ENV", None)
        self.run(
            "-m",
            "pip",
            "install",
            "--quiet",
            "--progress-bar",
            "off",
            *COLAB_PREINSTALLED,
            timeout=1200,
        )

    def run(
        self, *arguments, timeout=900, check=True, program="python", **env
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.venv / "bin" / program), *arguments],
            cwd=ROOT,
            env=dict(self.env, **env),
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        return result

    def version(self, distribution: str) -> str:
        return self.run(
            "-c",
            f"from importlib.metadata import version; print(version({distribution!r}))",
        ).stdout.strip()

    def execute_on_colab(self, notebook: Path, setup_cell: Path | None = None) -> dict:
        """``tests/colab_stub/execute.py`` on ``notebook`` (or only ``setup_cell``, in
        the notebook's folder): ``{"seconds": per cell, "text": output,
        "widget_manager": bool}``."""
        arguments = [str(STUB / "execute.py"), str(notebook)] + (
            [str(setup_cell)] if setup_cell else []
        )
        # PIP_NO_CACHE_DIR: time the install as a fresh runtime sees it, with nothing
        # cached
        output = self.run(*arguments, timeout=1200, PIP_NO_CACHE_DIR="1").stdout
        return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    python = colab_python()
    if python is None:
        message = (
            "no Python 3.13 for the Colab-like environment (set LIC_TEACH_COLAB_PYTHON)"
        )
        if os.environ.get("LIC_TEACH_CI"):
            pytest.fail(message)
        pytest.skip(message)
    if subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True
    ).returncode:
        pytest.skip(
            "the setup cell installs from git: this checkout is not a git repository"
        )
    return ColabLike(tmp_path_factory.mktemp("colab"), python)


@pytest.fixture(scope="module")
def installed(colab):
    """The chapters' setup cell, run in a Colab-like kernel."""
    before = {
        name: colab.version(name)
        for name in ("numpy", "torch", "torchvision", "ipywidgets")
    }
    result = colab.execute_on_colab(
        ROOT / "book" / "ch01_transform_coding.ipynb", BOOK_SETUP
    )
    result["before"] = before
    return result


def test_setup_cell_keeps_colab_packages_and_needs_no_restart(colab, installed):
    setup_seconds = installed["seconds"][1]
    print(f"setup cell: {setup_seconds:.0f} s\n{installed['text']}")
    assert setup_seconds < SETUP_LIMIT_S, installed["text"]
    for name, version in installed["before"].items():
        assert colab.version(name) == version, f"the setup cell changed {name}"
    assert colab.version("compressai") == "1.2.8"
    assert "No restart needed" in installed["text"]
    assert "Restart session" not in installed["text"]
    assert not installed["widget_manager"], "ipywidgets 7 renders on Colab as it is"
    check = colab.run(
        "-c", "import numpy, compressai.ans, lic_teach.coding; print(numpy.__version__)"
    )
    assert check.stdout.strip() == installed["before"]["numpy"]


def test_unit_and_crosscheck_tests_pass(colab, installed):
    # the pytest script, not `python -m pytest`, so that the installed lic_teach is
    # tested
    result = colab.run(
        "-q",
        "-m",
        "not slow",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "tests",
        program="pytest",
        timeout=1800,
        check=False,
        OMP_NUM_THREADS="1",
    )
    assert result.returncode == 0, result.stdout[-8000:]


def test_every_chapter_runs_at_smoke_budget(colab, installed):
    result = colab.run(
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_book.py",
        "-k",
        "chapter_runs_at_smoke_budget",
        program="pytest",
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:]


def test_exercise_installs_otter_and_checks_answers(colab, installed):
    start = time.perf_counter()
    result = colab.execute_on_colab(EXERCISE)
    print(f"exercise ch01 with its setup cell: {time.perf_counter() - start:.0f} s")
    assert (
        int(colab.version("ipywidgets").split(".")[0]) >= 8
    )  # otter-grader needs 8.1.5+
    assert result["widget_manager"], (
        "ipywidgets 8 renders on Colab only with the custom manager"
    )
    passed = re.findall(r"q\d results: All test cases passed!", result["text"])
    assert len(passed) == 4, result["text"][-3000:]
