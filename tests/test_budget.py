import pytest
import torch

from lic_teach.budget import NAMES, budget, device_named


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


def test_a_device_is_named_or_refused_with_the_reason(monkeypatch):
    assert device_named("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device_named("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match="has 1 CUDA GPU$"):
        device_named("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="has no CUDA GPUs"):
        device_named("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        device_named("gpu")
