"""The benchmark scripts still run (tiny sizes) and print what their docstrings promise."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_factorized_speed_benchmark_runs(capsys):
    spec = importlib.util.spec_from_file_location("factorized_speed", ROOT / "benchmarks" / "factorized_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ratio = module.main(["--quick"])
    printed = capsys.readouterr().out
    assert ratio > 0 and "ratio lic_teach/CompressAI" in printed
    assert "coder readable" in printed and "coder ans" in printed and "symbols/s" in printed
