"""The Makefile runs what the README says each target does (each target once, no recipe
overridden by another)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    "test": (
        '-m pytest -m "not slow and not colab" -n 2',
        '-m pytest -m "slow and not colab"',
    ),
    "test-colab": "-m pytest -m colab -s tests/test_colab_environment.py",
    "exercises": "exercises/assign.py",
    "zoo": "-m lic_teach.experiments.zoo_recipe --zoo",
    "zoo DATA=photos/ FAMILIES=factorized MINUTES=5": (
        '--zoo --families "factorized" --data photos/ --folder my-zoo/study '
        "--to-zoo my-zoo --minutes-per-recipe 5"
    ),
    "zoo DEVICE=cuda": "--device cuda",
    "zoo-study": "-m lic_teach.experiments.zoo_recipe --interleave",
    "studies": (
        "-m lic_teach.experiments.rectification",
        "-m lic_teach.experiments.lattice_vq",
    ),
    "gpu-check": '-m lic_teach.gpu_check --out "gpu-check.md"',
    "lab": "jupyter lab book/",
    "book": "jupyter-book build .",
}


def _without_make_variables() -> dict:
    """This environment without the variables of a make that runs the tests."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    }


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_each_target_runs_its_command(target):
    # -o: take the install stamp as up to date, so that only the target's own recipe
    # prints and, when the tests themselves run under make, not as a sub-make (which
    # prints its directory)
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            ".venv/.installed-stamp",
            *target.split(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=_without_make_variables(),
    )
    assert "overriding recipe" not in result.stderr, result.stderr
    commands = [
        line
        for line in result.stdout.splitlines()
        if line.strip() and not line.startswith("echo ")
    ]
    expected = (
        EXPECTED[target] if isinstance(EXPECTED[target], tuple) else (EXPECTED[target],)
    )
    assert len(commands) == len(expected), result.stdout
    for command, part in zip(commands, expected):
        assert part in command, result.stdout


def test_grade_grades_the_submissions_folder_it_is_given():
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", ".venv/.installed-stamp"]
        + ["grade", "SUBMISSIONS=hand-ins/", "JOBS=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=_without_make_variables(),
    )
    assert '-m lic_teach.grading "hand-ins/" --out "scores.csv" --jobs 2' in (
        result.stdout
    )
