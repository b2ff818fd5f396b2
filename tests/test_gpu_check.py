"""``make gpu-check``, run here on the CPU's stand-in for a second device: the report
has every part, and what cannot start says why."""

import nbformat
import pytest
import torch

from lic_teach import gpu_check, zoo


def test_the_check_measures_and_reports_every_part_on_the_stand_in(tmp_path):
    out = tmp_path / "report.md"
    arguments = ["--stand-in", "--sizes", "smoke", "--steps", "2", "--chapters", "none"]
    assert gpu_check.main([*arguments, "--out", str(out)]) == 0
    text = out.read_text()
    assert "- device: meta" in text
    for model in ("FactorizedPrior", "MeanScaleHyperprior"):
        assert f"| {model} |" in text
    assert "gpu_estimate's for a T4" in text  # beside the measured pace
    assert "serial (autoregressive) model, 64 px square" in text
    families = {m["family"] for m in zoo.manifests()}
    for family in families:
        # the stand-in computes as the CPU does: the same picture on both
        assert f"| {family} | q" in text
    assert text.count("decoded; largest difference 0.00e+00") == len(families)


def test_what_cannot_start_says_why(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--chapters", "none"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert gpu_check.main(["--stand-in", "--chapters", "ch99_nothing"]) == 2
    assert "no chapter ch99_nothing" in capsys.readouterr().err


@pytest.mark.slow
def test_chapters_run_in_kernels_of_their_own_and_failures_are_reported(tmp_path):
    failing = nbformat.v4.new_notebook()
    failing.cells = [
        nbformat.v4.new_code_cell(
            "import os\n"
            "from lic_teach.budget import budget\n"
            "assert os.environ['LIC_BUDGET'] == 'smoke'\n"
            "print(budget().device)\n"
            "raise RuntimeError('the chapter broke')"
        )
    ]
    nbformat.write(failing, tmp_path / "ch99_broken.ipynb")
    (row,) = gpu_check.run_chapters(
        gpu_check.chapter_paths("ch99_broken", tmp_path), stand_in=True
    )
    assert row["chapter"] == "ch99_broken"
    assert "the chapter broke" in row["error"]
    assert row["seconds"] > 0


def test_a_part_that_fails_is_reported_and_the_rest_still_runs(tmp_path, monkeypatch):
    def out_of_memory(*arguments):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_check, "coding_times", out_of_memory)
    out = tmp_path / "report.md"
    arguments = ["--stand-in", "--sizes", "smoke", "--steps", "2", "--chapters", "none"]
    assert gpu_check.main([*arguments, "--out", str(out)]) == 1
    text = out.read_text()
    assert "FAILED: RuntimeError: CUDA out of memory" in text
    assert "| FactorizedPrior |" in text  # the parts before and after it ran
    assert "decoded; largest difference" in text
