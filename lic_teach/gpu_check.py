"""``make gpu-check``: what only a GPU can show, in one script of a few minutes.

CI has no GPU. It catches tensors left on the wrong device with the CPU's stand-in for a
second device (:mod:`lic_teach.device_check`), but not what CUDA does differently:
its speed, its arithmetic, its asynchronous kernels. Run on a GPU machine, this script
measures those and writes a short Markdown report:

- every chapter of ``book/`` executed at the ``smoke`` budget on CUDA (seconds, or the
  error);
- ``steps`` training steps of the factorized prior and the mean-scale hyperprior at the
  ``gpu`` budget's sizes (seconds a step, after two untimed steps), beside what
  :mod:`lic_teach.gpu_estimate` assumes for a T4 (their ratio calibrates it), and what
  the budget's ``train_steps`` would then take;
- one build of a hyperprior's coding tables (``model.update(force=True)``) and one
  serial (autoregressive) encode and decode at those sizes;
- each zoo family's middle model encoding on CUDA and decoding on the CPU: the same
  image, or the decoder's refusal (``bitstream.check_index_digest``).

Timings on the device are the only absolute times the book may quote. ``--stand-in``
runs it all on the CPU's stand-in instead (what the tests do, at ``--sizes smoke``).

``python -m lic_teach.gpu_check [--device cuda] [--sizes gpu] [--steps 30]
[--chapters all|none|ch01,...] [--out gpu-check.md] [--stand-in]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

import lic_teach

from . import budget, cache, complexity, data, device_check, gpu_estimate, train, zoo
from .models import FactorizedPrior, JointAutoregressive, MeanScaleHyperprior

BOOK = Path(__file__).resolve().parent.parent / "book"


def environment(device: torch.device) -> dict:
    """What ran the check: versions, and the GPU's name and memory."""
    found = {
        "lic_teach": lic_teach.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        found["gpu"] = properties.name
        found["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
        found["cuda"] = torch.version.cuda
    return found


@contextlib.contextmanager
def _environ(settings: dict):
    """``os.environ`` with ``settings`` for the block (kernels inherit it)."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_chapters(paths: list[Path], stand_in: bool, timeout: float = 600) -> list:
    """Each notebook of ``paths`` executed at ``smoke`` in a fresh kernel (on CUDA
    where there is one; on the stand-in if ``stand_in``), with an empty cache:
    ``[{"chapter", "seconds", "error"}]``."""
    import nbformat
    from nbclient import NotebookClient

    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        settings = {"LIC_BUDGET": "smoke", "LIC_TEACH_CACHE": cache_dir}
        if stand_in:
            settings[device_check.ENV_VAR] = "1"
        with _environ(settings):
            for path in paths:
                notebook = nbformat.read(path, as_version=4)
                client = NotebookClient(
                    notebook,
                    timeout=timeout,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(path.parent)}},
                )
                started, error = complexity.clock(), None
                try:
                    client.execute()
                except Exception as failure:  # a cell's error, a timeout, a dead kernel
                    lines = str(failure).strip().splitlines() or [""]
                    error = f"{type(failure).__name__}: {lines[-1][:300]}"
                seconds = complexity.clock() - started
                rows.append({"chapter": path.stem, "seconds": seconds, "error": error})
    return rows


def _crops(sizes: budget.Budget, steps: int):
    """Random training crops at ``sizes``, enough for ``steps`` steps."""
    photos = list(data.sample_images("train").values())
    return data.RandomCropDataset(
        photos, sizes.patch_size, length=steps * sizes.batch_size
    )


def training_steps(device, sizes: budget.Budget, steps: int) -> list[dict]:
    """Seconds a training step of the factorized prior and the mean-scale hyperprior
    at ``sizes`` on ``device`` (after an untimed call of two steps; a call of two steps
    timed and subtracted from one of ``steps + 2``, so that a call's own setup and its
    final table build are not counted), and what ``sizes``'s ``train_steps`` would
    take at that pace."""
    rows = []
    crops = _crops(sizes, steps + 2)
    for model_class in (FactorizedPrior, MeanScaleHyperprior):
        model = model_class(sizes.N, sizes.M).to(device)
        options = {"batch_size": sizes.batch_size, "device": device, "progress": False}
        train.fit(model, crops, steps=2, **options)  # untimed: the first calls' costs
        started = complexity.clock()
        train.fit(model, crops, steps=2, **options)
        overhead = complexity.clock() - started  # a call's own: setup, table build
        started = complexity.clock()
        train.fit(model, crops, steps=steps + 2, **options)
        per_step = (complexity.clock() - started - overhead) / steps
        step = gpu_estimate.Work(
            "a step", model_class, sizes.N, sizes.M, sizes.patch_size,
            sizes.batch_size, True, steps=1,
        )  # fmt: skip
        rows.append(
            {
                "model": model_class.__name__,
                "seconds_a_step": per_step,
                "estimated_on_a_t4": gpu_estimate.seconds([step]),
                "budget_training_minutes": per_step * sizes.train_steps / 60,
            }
        )
    return rows


def coding_times(device, sizes: budget.Budget) -> dict:
    """Seconds of one table build of a mean-scale hyperprior at ``sizes``, and of one
    serial encode and decode of a ``patch_size`` square by the autoregressive model."""
    model = MeanScaleHyperprior(sizes.N, sizes.M).to(device).eval()
    started = complexity.clock()
    model.update(force=True)
    tables = complexity.clock() - started
    serial = JointAutoregressive(sizes.N, sizes.M).to(device).eval()
    serial.update(force=True)
    x = data.center_crop(data.sample_images("test")["astronaut"], sizes.patch_size)
    started = complexity.clock()
    stream = serial.compress(x)
    encoded = complexity.clock()
    serial.decompress(stream)
    return {
        "table_build_seconds": tables,
        "serial_encode_seconds": encoded - started,
        "serial_decode_seconds": complexity.clock() - encoded,
        "serial_side": sizes.patch_size,
    }


def across_devices(device) -> list[dict]:
    """Each zoo family's middle model encoding a held-out photo's central 256 pixels on
    ``device`` and decoding on the CPU: the largest pixel difference from decoding on
    ``device``, or the CPU decoder's refusal."""
    rows = []
    x = data.center_crop(data.sample_images("test")["astronaut"], 256)
    for family in zoo.FAMILIES:
        found = [m["quality"] for m in zoo.manifests() if m["family"] == family]
        if not found:
            continue
        quality = found[len(found) // 2]
        on_cpu = zoo.load(family, quality)
        moved = zoo.load(family, quality).to(device)
        stream = moved.compress(x)
        row = {"family": family, "quality": quality, "bytes": len(stream)}
        try:
            decoded = on_cpu.decompress(stream)
        except ValueError as refusal:
            row["outcome"] = f"refused: {str(refusal)[:120]}"
        else:
            there = moved.decompress(stream).cpu()
            difference = float((decoded - there).abs().max())
            row["outcome"] = f"decoded; largest difference {difference:.2e}"
        rows.append(row)
    return rows


def _chapters_section(rows: list) -> list[str]:
    lines = ["| chapter | seconds | error |", "| --- | --- | --- |"]
    return lines + [
        f"| {r['chapter']} | {r['seconds']:.1f} | {r['error'] or ''} |" for r in rows
    ]


def _training_section(rows: list) -> list[str]:
    lines = [
        "| model | seconds a step | gpu_estimate's for a T4 | "
        "the budget's steps would take (min) |",
        "| --- | --- | --- | --- |",
    ]
    return lines + [
        f"| {r['model']} | {r['seconds_a_step']:.4f} | "
        f"{r['estimated_on_a_t4']:.4f} | {r['budget_training_minutes']:.1f} |"
        for r in rows
    ]


def _coding_section(coding: dict) -> list[str]:
    return [
        f"- coding tables of a mean-scale hyperprior: "
        f"{coding['table_build_seconds']:.3f} s",
        f"- serial (autoregressive) model, {coding['serial_side']} px square: encode "
        f"{coding['serial_encode_seconds']:.2f} s, decode "
        f"{coding['serial_decode_seconds']:.2f} s",
    ]


def _across_section(rows: list) -> list[str]:
    lines = ["| family | quality | bytes | outcome |", "| --- | --- | --- | --- |"]
    return lines + [
        f"| {r['family']} | q{r['quality']} | {r['bytes']} | {r['outcome']} |"
        for r in rows
    ]


def report(results: dict) -> str:
    """The Markdown report of :func:`check`'s ``results`` (a part that failed: its
    error)."""
    lines = ["# GPU check", ""]
    lines += [f"- {k}: {v}" for k, v in results["environment"].items()]
    sections = {
        "chapters": ("Chapters at smoke", _chapters_section),
        "training": (
            f"Training at the {results['sizes']} budget's sizes",
            _training_section,
        ),
        "coding": ("Coding", _coding_section),
        "across_devices": (
            "Encoded on the device, decoded on the CPU",
            _across_section,
        ),
    }
    for name, (title, section) in sections.items():
        lines += ["", f"## {title}", ""]
        if name in results["failed"]:
            lines.append(f"FAILED: {results['failed'][name]}")
        else:
            lines += section(results[name])
    return "\n".join(lines) + "\n"


def chapter_paths(chosen: str, book: Path = BOOK) -> list[Path]:
    """The notebooks ``chosen`` names: ``all``, ``none`` or comma-separated stems
    (``ch01_transform_coding``); ``ValueError`` naming one that is not in ``book``."""
    if chosen == "none":
        return []
    found = {p.stem: p for p in sorted(Path(book).glob("ch*.ipynb"))}
    if chosen == "all":
        return list(found.values())
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(
            f"no chapter {', '.join(unknown)} in {book}; choose from {', '.join(found)}"
        )
    return [found[n] for n in names]


def check(device, sizes: budget.Budget, steps: int, chapters: list, stand_in: bool):
    """Every measurement of the module docstring: a dict for :func:`report`. A part
    that fails (CUDA out of memory, say) is reported as its error in ``failed``; the
    others still run."""
    results = {
        "environment": environment(torch.device(device)),
        "sizes": sizes.name,
        "failed": {},
    }
    parts = {
        "chapters": lambda: run_chapters(chapters, stand_in),
        "training": lambda: training_steps(device, sizes, steps),
        "coding": lambda: coding_times(device, sizes),
        "across_devices": lambda: across_devices(device),
    }
    for name, part in parts.items():
        try:
            results[name] = part()
        except Exception as error:  # reported, not fatal: the report is still written
            results[name] = None
            results["failed"][name] = f"{type(error).__name__}: {str(error)[:300]}"
    return results


def parse_args(argv):
    """The command line's options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.gpu_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="gpu", choices=budget.NAMES)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--chapters", default="all")
    parser.add_argument("--out", type=Path, default=Path("gpu-check.md"))
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="run on the CPU's stand-in for a second device instead (no GPU needed)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the check, write the report, print it; 2 with a message where it cannot
    start (no such device, no such chapter), 1 if a chapter or a part failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        chapters = chapter_paths(args.chapters)
        device = None if args.stand_in else budget.device_named(args.device)
    except ValueError as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return 2
    sizes = gpu_estimate.sizes(args.sizes)
    with device_check.stand_in() if args.stand_in else contextlib.nullcontext():
        results = check(
            device or device_check.DEVICE, sizes, args.steps, chapters, args.stand_in
        )
    text = report(results)
    cache.atomic_write(args.out, text)
    print(text)
    failed = results["failed"] or any(r["error"] for r in results["chapters"] or [])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
