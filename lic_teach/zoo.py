"""The book's own model zoo: models trained by this project's code for longer than a
chapter can afford, shipped with the package as safetensors, each with a JSON manifest.

A *family* is one architecture at several lambdas. The zoo's models come from the
recipe study (:mod:`lic_teach.experiments.zoo_recipe`): ``make zoo`` (``python -m
lic_teach.experiments.zoo_recipe --zoo``) trains each family's recipe of
``zoo_recipe.ZOO``, open-ended and resumable segment by segment, and publishes its
latest cooled-down copies, one per lambda, into the zoo with :func:`publish_model`,
which measures each and writes its manifest. This module reads the zoo: it never
trains. (The models shipped now were made by an earlier trainer, one recipe for every
family, a base model and a fine-tune per lambda, which their manifests' ``recipe``
describes.)

Loading never runs code: the weights are safetensors, checked against the SHA-256 in
their manifest before they are read. Quality ``q`` (1, 2, ...) is the ``q``-th lambda in
increasing order, as in CompressAI's zoo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import lic_teach

from . import baselines, cache, data, evaluate, metrics, zoo_data
from .entropy_models import TABLE_BUFFERS
from .models import registry

FOLDER = Path(__file__).with_name("zoo_weights")  # the shipped zoo
FAMILIES = {
    "factorized": "bmshj2018-factorized",
    "scale": "bmshj2018-hyperprior",
    "mean-scale": "mbt2018-mean",  # family -> registered architecture
    "checkerboard": "checkerboard-mean-scale",
    "jpeg-like": "ym2023-jpeg-like",
    "two-layer": "ym2023-two-layer",
}


def training_command(family: str) -> str:
    """The command that trains ``family`` into the shipped zoo, for error messages."""
    return (
        f"make zoo FAMILIES={family} "
        f"(python -m lic_teach.experiments.zoo_recipe --zoo --families {family})"
    )


# --------------------------------------------------------------------------- files


def weights_path(folder: Path, family: str, quality: int) -> Path:
    """Where ``family``'s model of ``quality`` lives in ``folder`` (its manifest:
    ``.json``)."""
    return Path(folder) / f"{family}-q{quality}.safetensors"


def save_weights(
    model: torch.nn.Module, path: Path, half: bool = False, tables: bool = True
) -> str:
    """Write ``model``'s state as safetensors (its parameters as float16 if ``half``;
    other buffers such as the scale table stay as they are; the integer coding tables
    only if ``tables``, since ``model.update`` rebuilds them), atomically; return the
    file's SHA-256."""
    from safetensors.torch import save

    parameters = {name for name, _ in model.named_parameters()} if half else set()
    state = {
        k: (v.half() if k in parameters else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if tables or not _is_table(k)
    }
    return data.sha256(cache.atomic_write(path, save(state)))


def rounded_to_half(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its parameters rounded to float16 in place (kept as float32) and
    its coding tables rebuilt from them: the model a ``half=True`` weights file
    holds."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    model.update(force=True)
    return model


def _is_table(key: str) -> bool:
    """Whether a state-dict key names an entropy model's integer coding table."""
    return key.rsplit(".", 1)[-1] in TABLE_BUFFERS


def load_weights(
    model: torch.nn.Module, path: Path, expected_sha256: str | None = None
) -> torch.nn.Module:
    """``model`` with the safetensors weights of ``path`` (checked against
    ``expected_sha256`` first); ``ValueError`` naming the file if it is damaged or
    foreign. A file may leave out the coding tables (build them with
    ``model.update()``), nothing else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if expected_sha256 is not None and data.sha256(path) != expected_sha256:
        raise ValueError(
            f"{path} is not the file its manifest describes (SHA-256 differs): "
            f"damaged or altered; restore it (git checkout) or train it again "
            f"(make zoo)"
        )
    try:
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    except (SafetensorError, RuntimeError, ValueError, OSError) as error:
        raise ValueError(
            f"{path} is not a {type(model).__name__} weights file: {str(error)[:200]}"
        ) from error
    lacking = [k for k in missing if not _is_table(k)]
    if lacking or unexpected:
        raise ValueError(
            f"{path} is not a {type(model).__name__} weights file: "
            f"missing {lacking[:3]}, unexpected {unexpected[:3]}"
        )
    return model


def manifests(folder: Path = FOLDER) -> list[dict]:
    """The manifest of every model in ``folder``, by family and quality."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"the zoo manifest {path} is unreadable: {error}"
            ) from error
    return sorted(found, key=lambda m: (m["family"], m["quality"]))


def load(family: str, quality: int, folder: Path = FOLDER):
    """The zoo's ``family`` model at ``quality``, ready to code (eval mode, coding
    tables)."""
    if family not in FAMILIES:
        raise ValueError(
            f"unknown zoo family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    path = weights_path(folder, family, quality)
    manifest_path = path.with_suffix(".json")
    if not manifest_path.is_file():
        have = [m["quality"] for m in manifests(folder) if m["family"] == family]
        raise ValueError(
            f"the zoo has no {family} model of quality {quality} in {folder} "
            f"(qualities there: {have or 'none'}); "
            f"train it with {training_command(family)}"
        )
    manifest = json.loads(manifest_path.read_text())
    model = registry.architecture(manifest["architecture"]).model_class(
        *manifest["hyperparameters"]
    )
    load_weights(model, path, manifest["sha256"]).eval()
    model.update()
    if model.table_fingerprint() != manifest["table_fingerprint"]:
        raise ValueError(
            f"the coding tables built here for {path} differ from those it was "
            f"published with, so its bitstreams would not decode elsewhere "
            f"(torch {torch.__version__} here, {manifest['torch_version']} there)"
        )
    return model


def lambda_of(family: str, quality: int, folder: Path = FOLDER) -> float:
    """The lambda the zoo model of ``family`` and ``quality`` was trained for (its
    manifest)."""
    found = [
        m["lambda"]
        for m in manifests(folder)
        if (m["family"], m["quality"]) == (family, quality)
    ]
    if not found:
        raise ValueError(f"no zoo model {family!r} at quality {quality} in {folder}")
    return float(found[0])


def default_family(folder: Path = FOLDER) -> str:
    """The family of ``folder`` with the best R-D curve by its own manifests (the lowest
    BD-rate on the held-out photos against the first family present); mean-scale, else
    scale, else factorized where curves cannot be compared (fewer than 2 qualities, no
    overlap, or a curve whose rate and PSNR do not both increase)."""
    curves = {}
    for m in manifests(folder):
        curves.setdefault(m["family"], []).append(
            (m["rd_held_out"]["bpp"], m["rd_held_out"]["psnr"])
        )
    order = [f for f in ("mean-scale", "scale", "factorized") if f in curves]
    if not order:
        return "mean-scale"
    anchor = list(zip(*curves[order[-1]]))
    try:
        scores = {f: metrics.bd_rate(*anchor, *zip(*curves[f])) for f in order}
    except ValueError:
        return order[0]
    return min(order, key=lambda f: scores[f])


def curve(family: str, images, folder: Path = FOLDER):
    """The R-D curve of the zoo's ``family`` on ``images``: one real-bitstream point per
    quality, named with how the family was trained (sizes, steps, minutes, and where
    they were spent: the manifest's ``devices``, the CPU if it names none)."""
    found = [m for m in manifests(folder) if m["family"] == family]
    if not found:
        raise ValueError(
            f"the zoo in {folder} has no {family} models; train them with "
            f"{training_command(family)}"
        )
    if len({json.dumps(m["recipe"], sort_keys=True) for m in found}) > 1:
        raise ValueError(
            f"the zoo's {family} models in {folder} were trained by different recipes; "
            f"train the family again with {training_command(family)}"
        )
    recipe, top = found[-1]["recipe"], found[-1]
    name = (
        f"zoo {family} (N={recipe['N']}, M={recipe['M']}, {top['steps']} steps, "
        f"{top['training_seconds'] / 60:.0f} min on "
        f"{' and '.join(d.upper() for d in top.get('devices', ['cpu']))})"
    )
    return evaluate.rd_curve(
        [load(family, m["quality"], folder) for m in found],
        images,
        name,
        params=[m["lambda"] for m in found],
    )


def models(folder: Path = FOLDER) -> dict:
    """Every zoo model in ``folder``: ``{(family, quality): model}``."""
    return {
        (m["family"], m["quality"]): load(m["family"], m["quality"], folder)
        for m in manifests(folder)
    }


def held_out_figures(point: dict, images: dict, eval_size: int | None) -> dict:
    """A manifest's ``rd_held_out``: the model's R-D point on the held-out photos
    (``evaluate.codec_point``; their central ``eval_size`` square if set), and the PSNR
    Pillow's JPEG (``CLASSICAL["jpeg"]``) reaches there at the same rate (what the
    model reached, against JPEG)."""
    jpeg_curve = evaluate.classical_curve("jpeg", images, baselines.DENSE_QUALITIES)
    try:
        jpeg = round(baselines.psnr_at_rate(jpeg_curve, point["bpp"]), 3)
    except ValueError:  # a rate JPEG does not reach: no comparison
        jpeg = None
    return {
        "images": sorted(images),
        "size": eval_size or "full",
        "coder": "ans",
        **{
            k: None if point[k] is None else round(float(point[k]), 5)
            for k in ("bpp", "psnr", "ms_ssim")  # MS-SSIM: None below 161 pixels
        },
        "jpeg_psnr_at_equal_rate": jpeg,
    }


def publish_model(
    model,
    folder: Path,
    name: dict,
    training: dict,
    photos: dict,
    eval_size: int | None = None,
) -> dict:
    """Save ``model`` into the zoo in ``folder`` with its manifest, and return it.
    ``name``: its ``family``, ``quality`` and ``lambda``; ``training``: how it was
    trained (at least ``recipe``, ``steps``, ``training_seconds`` and ``trained_on``),
    copied into the manifest. The manifest adds its R-D point on the held-out photos
    (their central ``eval_size`` square if set) and its transforms' ceiling
    (``evaluate.ceiling``) on the training ``photos`` (``zoo_data.bounded``) and the
    held-out ones. Its parameters are rounded to float16 first (half the bytes), and
    its coding tables rebuilt from the rounded parameters, so the figures are those of
    the shipped file."""
    rounded_to_half(model)
    path = weights_path(folder, name["family"], name["quality"])
    digest = save_weights(model, path, half=True, tables=False)
    images = data.held_out(eval_size)
    point = evaluate.codec_point(model, images, with_ms_ssim=True)
    ceiling = {
        "train": round(evaluate.ceiling(model, zoo_data.bounded(photos)), 3),
        "held_out": round(evaluate.ceiling(model, images), 3),
    }
    manifest = {
        **name,
        "architecture": FAMILIES[name["family"]],
        "class": type(model).__name__,
        "hyperparameters": list(model.hyperparameters()),
        **training,
        "lic_teach_version": lic_teach.__version__,
        "torch_version": torch.__version__,
        "sha256": digest,
        "file": path.name,
        "table_fingerprint": model.table_fingerprint(),
        "rd_held_out": held_out_figures(point, images, eval_size),
        "ceiling_psnr": ceiling,
    }
    cache.atomic_write(path.with_suffix(".json"), json.dumps(manifest, indent=1) + "\n")
    return manifest


# ---------------------------------------------------------------------- command line


def parse_args(argv):
    """``list [--folder]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.zoo", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser(
        "list", help="the models in the zoo and their R-D points"
    )
    lister.add_argument("--folder", type=Path, default=FOLDER)
    return parser.parse_args(argv)


def list_command(args) -> int:
    """One line per zoo model: family, quality, lambda, R-D point, steps, training
    time."""
    for manifest in manifests(args.folder):
        print(describe(manifest))
    return 0


def describe(m: dict) -> str:
    """A manifest in one line: family, quality, lambda, R-D point (and JPEG's PSNR at
    that rate, the transforms' ceiling on the held-out and on the training photos),
    steps, training time."""
    rd, ceiling = m["rd_held_out"], m["ceiling_psnr"]
    jpeg = rd.get("jpeg_psnr_at_equal_rate")
    jpeg = "n/a" if jpeg is None else f"{jpeg:.2f}"
    return (
        f"{m['family']:>10} q{m['quality']}  lambda={m['lambda']:<7g} "
        f"{rd['bpp']:.3f} bpp  {rd['psnr']:.2f} dB (JPEG {jpeg}; ceiling "
        f"{ceiling['held_out']:.2f}, on its training photos {ceiling['train']:.2f})  "
        f"{m['steps']} steps  {m['training_seconds'] / 60:.1f} min"
    )


def main(argv=None) -> int:
    """``python -m lic_teach.zoo``; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return {"list": list_command}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
