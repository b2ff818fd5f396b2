"""Installing lic_teach into a running Python, such as a Colab runtime, without a
restart.

Colab preloads numpy 2, torch, ipywidgets 7 and much more. CompressAI 1.2.8, whose C++
rANS coder and models ``lic_teach`` uses and checks itself against, declares
``numpy<2`` in its metadata only: its C++ extension includes pybind11's headers, not
numpy's C API, and it runs unchanged on numpy 2. Installed the plain way, pip would swap
the loaded numpy 2 for 1.26 (on Python 3.13, by building it from source), and the
runtime would need a restart before anything could use it.

:func:`install` does this instead, in two pip commands:

1. ``pip install --no-deps compressai==1.2.8``: a wheel up to Python 3.12, built from
   its source distribution on 3.13 (Colab has a compiler);
2. ``pip install`` every other requirement of ``lic_teach`` and of CompressAI as they
   are declared, less CompressAI's numpy ceiling, with numpy, torch and torchvision held
   at the versions installed now by a constraints file. pip adds what is missing and
   upgrades a package only where a requirement asks for it.

Then it says what changed and how long it took, warns if a changed package was already
imported (only then would a restart be needed), and on Colab with ipywidgets 8 turns on
Colab's custom widget manager, without which those widgets do not render there.

The setup cell of every chapter and exercise notebook first puts ``lic_teach`` itself in
place (``pip install --no-deps lic_teach @ git+...``) and then calls :func:`install`;
``tests/test_colab_environment.py`` runs that same cell in a Colab-like environment.
This module imports only the standard library, because it runs before anything else is
installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import subprocess
import sys
import tempfile
import time

try:  # pip vendors packaging, so it is there even before anything is installed
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
except ImportError:  # pragma: no cover - depends on the environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet

HELD = ("numpy", "torch", "torchvision")  # loaded by the runtime: never replaced
ISSUES = "https://github.com/lic-teach/lic-teach/issues"


def _applies(requirement: Requirement, extras) -> bool:
    """Whether a requirement's environment marker holds here, for any of ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def _without_marker(requirement: Requirement) -> Requirement:
    requirement = Requirement(str(requirement))
    requirement.marker = None
    return requirement


def _without_numpy_ceiling(requirement: Requirement) -> Requirement:
    """CompressAI 1.2.8's ``numpy>=1.21.0,<2.0`` without the ``<2.0``, which is metadata
    only (its extension does not use numpy's C API)."""
    if requirement.name == "numpy":
        requirement.specifier = SpecifierSet(
            ",".join(
                str(s) for s in requirement.specifier if s.operator not in ("<", "<=")
            )
        )
    return requirement


def compressai_requirement() -> str:
    """The CompressAI release ``lic_teach`` declares, e.g. ``"compressai==1.2.8"``."""
    for text in metadata.requires("lic_teach") or []:
        requirement = Requirement(text)
        if requirement.name == "compressai":
            return str(_without_marker(requirement))
    raise RuntimeError(
        "lic_teach's metadata names no CompressAI release; reinstall lic_teach"
    )


def requirements(extras=()) -> list[str]:
    """What step 2 asks pip for: ``lic_teach``'s requirements (with ``extras``) less
    CompressAI itself, then CompressAI's own, less its numpy ceiling. CompressAI must be
    installed already (step 1), since its requirements are read from its metadata."""
    wanted = []
    for text in metadata.requires("lic_teach") or []:
        requirement = Requirement(text)
        if requirement.name != "compressai" and _applies(requirement, extras):
            wanted.append(_without_marker(requirement))
    for text in metadata.requires("compressai") or []:
        requirement = Requirement(text)
        if _applies(requirement, ()):
            wanted.append(_without_numpy_ceiling(_without_marker(requirement)))
    return [str(r) for r in wanted]


def installed_versions() -> dict[str, str]:
    """``{normalized distribution name: version}`` of everything installed."""
    importlib.invalidate_caches()
    return {
        _normalized(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pip(*arguments: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--progress-bar",
        "off",
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise InstallError(" ".join(command[2:]), result.stdout + result.stderr)


class InstallError(RuntimeError):
    """A pip command failed; the message says which, what it printed, and what to
    do."""

    def __init__(self, command: str, output: str):
        super().__init__(
            f"`{command}` failed. Its last lines:\n{output[-2500:]}\n"
            "What to do: check that the runtime is online; then choose Runtime > "
            "Disconnect and delete runtime, and run all cells again. If it fails "
            f"again, open an issue at {ISSUES} with the lines above and the output of "
            "`!python --version; pip list`."
        )


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """``(added, changed)``: ``{name: version}`` and ``{name: (old, new)}``."""
    added = {name: v for name, v in after.items() if name not in before}
    changed = {
        name: (before[name], v)
        for name, v in after.items()
        if name in before and before[name] != v
    }
    return added, changed


def loaded_but_changed(changed: dict) -> list[str]:
    """Distributions whose version changed although this process imported them already:
    the only case in which the new version needs a restart to take effect."""
    modules = metadata.packages_distributions()
    loaded = {
        _normalized(dist)
        for module, dists in modules.items()
        if module in sys.modules
        for dist in dists
    }
    return sorted(name for name in changed if name in loaded)


def _enable_colab_widgets() -> bool:
    """Colab renders ipywidgets 8 only through its custom widget manager."""
    if "google.colab" not in sys.modules:
        return False
    if int(metadata.version("ipywidgets").split(".")[0]) < 8:
        return False
    from google.colab import output

    output.enable_custom_widget_manager()
    return True


def install(*extras: str) -> dict:
    """Install CompressAI and ``lic_teach``'s requirements (and ``extras``, such as
    ``"exercises"``) into this Python, keeping numpy, torch and torchvision as they are.

    Prints what it installs, what changed and how long it took; returns the same as a
    dict. Raises :class:`InstallError`, which says what to do, if a pip command fails.
    """
    start = time.perf_counter()
    before = installed_versions()
    held = [f"{name}=={before[name]}" for name in HELD if name in before]
    compressai = compressai_requirement()
    print(f"Python {sys.version.split()[0]}; keeping " + ", ".join(held) + ".")
    print(
        f"1/2 {compressai} (without its numpy<2 pin; on Python 3.13 it compiles, "
        "about a minute)...",
        flush=True,
    )
    _pip("--no-deps", compressai)
    wanted = requirements(extras)
    print(f"2/2 the other requirements: {', '.join(wanted)}...", flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(held) + "\n")
    _pip("--constraint", constraints.name, *wanted)
    added, changed = changes(before, installed_versions())
    report = {
        "seconds": time.perf_counter() - start,
        "added": added,
        "changed": changed,
        "held": held,
        "restart_needed_for": loaded_but_changed(changed),
        "colab_widgets": _enable_colab_widgets(),
    }
    _print_report(report)
    return report


def _print_report(report: dict) -> None:
    added = ", ".join(f"{name} {v}" for name, v in sorted(report["added"].items()))
    changed = ", ".join(
        f"{name} {old} -> {new}"
        for name, (old, new) in sorted(report["changed"].items())
    )
    print(f"Installed in {report['seconds']:.0f} s: {added or 'nothing new'}.")
    if changed:
        print(f"Upgraded: {changed}.")
    if report["restart_needed_for"]:
        print(
            "These were imported before they changed, so they take effect after "
            f"Runtime > Restart session: {', '.join(report['restart_needed_for'])}."
        )
    else:
        print("No restart needed: " + ", ".join(report["held"]) + " are unchanged.")
    if report["colab_widgets"]:
        print("Colab's custom widget manager is on, so ipywidgets 8 widgets render.")


if __name__ == "__main__":
    install(*sys.argv[1:])
