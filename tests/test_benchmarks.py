"""The benchmark scripts still run (tiny sizes) and print what their docstrings promise."""
import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_factorized_speed_benchmark_runs(capsys):
    ratio = load("factorized_speed").main(["--quick"])
    printed = capsys.readouterr().out
    assert ratio > 0 and "ratio lic_teach/CompressAI" in printed
    assert "coder readable" in printed and "coder ans" in printed and "symbols/s" in printed


def test_context_decoding_benchmark_runs(capsys):
    module = load("context_decoding")
    serial, checkerboard = module.twin_models(8, 12)
    for (name, a), (_, b) in zip(serial.state_dict().items(), checkerboard.state_dict().items()):
        if "cdf" not in name:                               # same weights, own tables
            assert torch.equal(a, b), name
    ratio = module.main(["--quick"])
    printed = capsys.readouterr().out
    assert ratio > 0 and "ratio serial / checkerboard" in printed and "CompressAI" in printed
