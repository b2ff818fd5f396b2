"""ruff formats and lints the package, the tests, the benchmarks and the chapters
(configured in pyproject.toml: 88 characters, so code the book shows fits its page)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    command = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if command is None:  # the Colab-like run installs the package without its dev extra
        pytest.skip("ruff is not installed: it is in the dev extra (`make install`)")
    return subprocess.run(
        [command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_format():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint():
    result = ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr
