"""lic_teach.colab: what it asks pip for, what it holds, what it reports. The real
install in a Colab-like environment is tests/test_colab_environment.py."""

import sys
import types
from pathlib import Path

import pytest

from lic_teach import colab


def test_requirements_are_lic_teachs_and_compressais_without_the_numpy_ceiling():
    wanted = colab.requirements()
    names = [w.split(">")[0].split("=")[0].split("<")[0] for w in wanted]
    assert "compressai" not in names
    assert colab.compressai_requirement() == "compressai==1.2.8"
    assert "torch-geometric>=2.3.0" in wanted
    assert "plotly>=5.20" in wanted
    numpy = [w for w in wanted if w.startswith("numpy")]
    assert numpy
    assert not any("<" in w for w in numpy), numpy
    assert not any(";" in w for w in wanted), "markers are evaluated, not passed on"
    assert not any(w.startswith("otter-grader") for w in wanted)
    assert any(w.startswith("otter-grader") for w in colab.requirements(["exercises"]))


def test_install_holds_loaded_packages_and_reports_changes(monkeypatch, capsys):
    states = iter(
        [
            {"numpy": "2.1.3", "torch": "2.9.0", "plotly": "5.24.1"},
            {
                "numpy": "2.1.3",
                "torch": "2.9.0",
                "plotly": "6.0.0",
                "compressai": "1.2.8",
            },
        ]
    )
    commands = []

    def pip(*arguments):
        if "--constraint" in arguments:
            held = (
                Path(arguments[arguments.index("--constraint") + 1]).read_text().split()
            )
            commands.append(("constraints", held))
        commands.append(arguments)

    monkeypatch.setattr(colab, "installed_versions", lambda: next(states))
    monkeypatch.setattr(colab, "_pip", pip)
    monkeypatch.setitem(
        sys.modules, "plotly", sys.modules.get("plotly", types.ModuleType("plotly"))
    )
    report = colab.install()
    assert commands[0] == ("--no-deps", "compressai==1.2.8")
    assert commands[1] == ("constraints", ["numpy==2.1.3", "torch==2.9.0"])
    assert "plotly>=5.20" in commands[2]
    assert report["added"] == {"compressai": "1.2.8"}
    assert report["changed"] == {"plotly": ("5.24.1", "6.0.0")}
    assert report["restart_needed_for"] == ["plotly"]  # imported before it changed
    out = capsys.readouterr().out
    assert "keeping numpy==2.1.3, torch==2.9.0" in out
    assert "plotly 5.24.1 -> 6.0.0" in out
    assert "Restart session: plotly" in out
    assert not report["colab_widgets"]


def test_no_restart_when_nothing_loaded_changed():
    assert colab.loaded_but_changed({"a-package-nobody-imported": ("1", "2")}) == []


def test_a_failing_pip_says_what_to_do(monkeypatch):
    failure = types.SimpleNamespace(
        returncode=1, stdout="", stderr="ERROR: No matching distribution"
    )
    monkeypatch.setattr(colab.subprocess, "run", lambda *a, **k: failure)
    with pytest.raises(
        colab.InstallError, match="(?s)No matching distribution.*runtime is online"
    ):
        colab._pip("--no-deps", "compressai==1.2.8")


def test_widget_manager_is_turned_on_only_on_colab_with_ipywidgets_8(monkeypatch):
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    package = types.ModuleType("google.colab")
    package.output = output
    assert not colab._enable_colab_widgets()  # not on Colab
    monkeypatch.setitem(sys.modules, "google.colab", package)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    for version, enabled in (("7.7.1", False), ("8.1.5", True)):
        monkeypatch.setattr(colab.metadata, "version", lambda name, v=version: v)
        assert colab._enable_colab_widgets() is enabled
    assert calls == [1]
