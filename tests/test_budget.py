import pytest
import torch

from lic_teach.budget import NAMES, budget


def test_names_and_order_of_sizes():
    smoke, cpu, gpu = (budget(name) if name != "gpu" else None for name in NAMES)
    assert NAMES == ("smoke", "cpu", "gpu")
    assert smoke.train_steps < cpu.train_steps
    assert smoke.patch_size <= cpu.patch_size
    assert smoke.rd_points <= cpu.rd_points


def test_environment_variable_selects(monkeypatch):
    monkeypatch.setenv("LIC_BUDGET", "smoke")
    assert budget().name == "smoke"
    monkeypatch.setenv("LIC_BUDGET", " CPU ")
    assert budget().name == "cpu"


def test_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("LIC_BUDGET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert budget().name == "cpu"
    assert budget().device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert budget().name == "gpu"
    assert budget().device == "cuda"


def test_gpu_without_cuda_warns(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        assert budget("gpu").device == "cpu"


def test_unknown_budget_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LIC_BUDGET", "huge")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        budget()


def test_printable():
    assert "smoke" in str(budget("smoke"))
    assert budget("smoke").as_dict()["name"] == "smoke"
