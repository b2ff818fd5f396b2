"""The benchmark scripts still run (tiny sizes) and print what their docstrings
promise."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_factorized_speed_benchmark_runs(capsys):
    ratio = load("factorized_speed").main(["--quick"])
    printed = capsys.readouterr().out
    assert ratio > 0
    assert "ratio lic_teach/CompressAI" in printed
    assert "coder readable" in printed
    assert "coder ans" in printed
    assert "symbols/s" in printed


def test_context_decoding_benchmark_runs(capsys):
    module = load("context_decoding")
    serial, checkerboard = module.twin_models(8, 12)
    for (name, a), (_, b) in zip(
        serial.state_dict().items(), checkerboard.state_dict().items()
    ):
        if "cdf" not in name:  # same weights, own tables
            assert torch.equal(a, b), name
    ratio = module.main(["--quick"])
    printed = capsys.readouterr().out
    assert ratio > 0
    assert "ratio serial / checkerboard" in printed
    assert "CompressAI" in printed


def test_grading_speedup_benchmark_measures_parallel_grading(monkeypatch, capsys):
    """The benchmark's bookkeeping, with a stand-in for a kernel that takes 0.3 s: two
    jobs at once must then be about twice as fast, and the grades the same."""
    import time

    from lic_teach import grading

    def graded(path, *args, **kwargs):
        time.sleep(0.3)
        return grading.Grade(Path(path).name, "ch01", {"q1": 1.0}, {"q1": 1.0})

    monkeypatch.setattr(grading.grades, "grade_notebook", graded)
    seconds = load("grading_speedup").main(["--submissions", "4", "--jobs", "2"])
    printed = capsys.readouterr().out
    assert 1.6 < seconds[1] / seconds[2] < 2.2
    assert "ratio 1 job / 2 jobs" in printed
    assert "same grades at every job count" in printed
