"""The gpu budget's estimate on a T4: FLOPs counted on the meta device agree with a
real pass, the chapters' numbers are the notebooks', and the command says which
chapters exceed the budget's promise."""

import json
import re
from pathlib import Path

import pytest
import torch

from lic_teach import complexity, gpu_estimate
from lic_teach.models import MeanScaleHyperprior

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_flops_counted_on_the_meta_device_are_a_real_pass():
    with torch.random.fork_rng():
        model = MeanScaleHyperprior(8, 12)
    real = 2 * complexity.macs(model, torch.zeros(1, 3, 64, 64))
    assert gpu_estimate.forward_flops(MeanScaleHyperprior, 8, 12, 64) == real


def _source(chapter: str) -> str:
    """The code and text of the notebook of ``chapter`` (``"ch08"``)."""
    (path,) = BOOK.glob(f"{chapter}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    return "".join("".join(cell["source"]) for cell in cells)


def _gpu_value(chapter: str, name: str) -> int:
    """The ``gpu`` entry of the notebook's ``name = {"smoke": ..., "gpu": N}``."""
    source = _source(chapter)
    pattern = rf'{re.escape(name)}.*?"gpu": (?:dict\(steps=)?(\d+)'
    return int(re.search(pattern, source, re.S)[1])


def test_the_estimate_counts_the_steps_the_notebooks_run():
    B = gpu_estimate.sizes("gpu")
    work = {int(c[2:4]): gpu_estimate.chapter_work(c, B) for c in gpu_estimate.CHAPTERS}
    (sga,) = [w for w in work[4] if w.what.startswith("SGA")]
    assert sga.passes == _gpu_value("ch04", "sga_steps")
    teacher, students, _ = work[8]
    assert teacher.passes == 14 * _gpu_value("ch08", "steps") * B.batch_size
    assert students.passes == teacher.passes
    chapter_8 = _source("ch08")
    for design in (
        "((N // 2,) * 3, (2, 2, 2, 2))",
        "((N, N), (2, 2, 4))",
        "((12,), (8, 2))",
    ):
        assert design in chapter_8  # the students student_flops counts
    assert work[9][0].passes == 24 * _gpu_value("ch09", "SGA = {")
    assert work[9][0].side == 256
    base = work[3][0]
    assert (base.N, base.M, base.side) == (B.N, B.M, B.patch_size)
    assert base.passes == B.train_steps * B.batch_size
    assert not work[1]
    assert not work[2]
    with pytest.raises(ValueError, match="no chapter 'ch13'"):
        gpu_estimate.chapter_work("ch13", B)
    assert [p.stem for p in sorted(BOOK.glob("ch*.ipynb"))] == list(
        gpu_estimate.CHAPTERS
    )


def test_the_command_prints_each_chapter_and_fails_where_one_exceeds(
    capsys, monkeypatch
):
    monkeypatch.setattr(gpu_estimate, "UTILIZATION", 1e3)  # everything fits
    assert gpu_estimate.main([]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " min " in line]
    assert len(lines) == 12
    monkeypatch.setattr(gpu_estimate, "UTILIZATION", 1e-3)
    assert gpu_estimate.main([]) == 1
    assert gpu_estimate.main(["--sizes", "smoke"]) == 0  # the promise is gpu's


def test_every_chapter_fits_the_gpu_budget_s_ten_minutes():
    for chapter, estimate, _ in gpu_estimate.table(gpu_estimate.sizes("gpu")):
        assert estimate <= gpu_estimate.LIMIT_SECONDS, chapter
