"""The book's own model zoo: models trained by this project's code for longer than a
chapter can afford, shipped with the package as safetensors, each with a JSON manifest.

A *family* is one architecture trained at several lambdas by one :class:`Recipe`, the
same for every family so that they compare like with like: a base model trained jointly
(transforms and entropy model together) at the middle lambda, then a copy of it
fine-tuned at each lambda (``train.fit_family``'s plan). Training runs in *segments* of
``segment_steps``: each is one ``train.fit`` call that continues from the weights the
last one saved, so ``python -m lic_teach.zoo train`` resumes an interrupted run from its
last segment, and the result does not depend on where it was interrupted.

Loading never runs code: the weights are safetensors, checked against the SHA-256 in
their manifest before they are read. Quality ``q`` (1, 2, ...) is the ``q``-th lambda in
increasing order, as in CompressAI's zoo.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import lic_teach

from . import baselines, budget, cache, data, evaluate, metrics, train, zoo_data
from .entropy_models import TABLE_BUFFERS
from .models import registry
from .seeding import seeded

FOLDER = Path(__file__).with_name("zoo_weights")  # the shipped zoo
FAMILIES = {
    "factorized": "bmshj2018-factorized",
    "scale": "bmshj2018-hyperprior",
    "mean-scale": "mbt2018-mean",  # family -> registered architecture
    "checkerboard": "checkerboard-mean-scale",
    "jpeg-like": "ym2023-jpeg-like",
    "two-layer": "ym2023-two-layer",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a family is trained: ``N``, ``M``; random ``patch_size`` crops of the bundled
    training photos in batches of ``batch_size``; a base model at the middle lambda for
    ``base_segments`` segments (learning rate ``lr``, then ``lr / 10`` for the last
    ``decay_segments`` of them), then each lambda fine-tuned for ``finetune_segments``
    (at ``finetune_lr``, then ``finetune_lr / 10`` for the last
    ``finetune_decay_segments``). The photos are used at each of ``scales``
    (:func:`lic_teach.data.downscaled`). Manifests give R-D points on the held-out
    photos (their central ``eval_size`` square if set)."""

    N: int
    M: int
    lambdas: tuple[float, ...]
    patch_size: int
    batch_size: int
    segment_steps: int
    base_segments: int
    decay_segments: int
    finetune_segments: int
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    seed: int = 0
    eval_size: int | None = None
    scales: tuple[float, ...] = (1.0,)
    finetune_decay_segments: int = 0

    def steps(self) -> int:
        """Steps each model of the family has seen: the base's and its own
        fine-tuning."""
        return self.segment_steps * (self.base_segments + self.finetune_segments)

    def key(self) -> str:
        """The recipe's :func:`cache.settings_hash`, kept in each manifest."""
        return cache.settings_hash(dataclasses.asdict(self))


# A first recipe (base at 0.015 for 5000 steps, 500 per lambda, full-size photos only)
# left the top lambda's curve flat; 500 more steps of the 0.015 model gained +0.27 dB at
# equal rate, so the models were still learning, and on downscaled photos too gave
# +0.12 dB for 2.7% more rate. So: CompressAI's lambdas for its qualities 1, 3, 5 and 7,
# a base at 0.025 for 3250 steps, 1000 steps for each lambda ending at a tenth of the
# rate, photos at three scales: 7250 steps in all. The manifests record the time taken.
RECIPE = Recipe(
    N=48,
    M=64,
    lambdas=(0.0018, 0.0067, 0.025, 0.0932),
    patch_size=128,
    batch_size=8,
    segment_steps=250,
    base_segments=13,
    decay_segments=2,
    finetune_segments=4,
    finetune_lr=3e-4,
    finetune_decay_segments=1,
    scales=(1.0, 0.75, 0.5),
)
SMOKE_RECIPE = Recipe(
    N=8,
    M=12,
    lambdas=(0.005, 0.05),
    patch_size=64,
    batch_size=2,
    segment_steps=2,
    base_segments=2,
    decay_segments=1,
    finetune_segments=2,
    eval_size=192,
    finetune_decay_segments=1,
    scales=(1.0, 0.5),
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
            f"damaged or altered; train it again with python -m lic_teach.zoo train"
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
            f"train it with python -m lic_teach.zoo train {family}"
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
    quality, named with how the family was trained (sizes, steps, minutes)."""
    found = [m for m in manifests(folder) if m["family"] == family]
    if not found:
        raise ValueError(
            f"the zoo in {folder} has no {family} models; train them with "
            f"python -m lic_teach.zoo train {family}"
        )
    if len({json.dumps(m["recipe"], sort_keys=True) for m in found}) > 1:
        raise ValueError(
            f"the zoo's {family} models in {folder} were trained by different recipes; "
            f"train the family again with python -m lic_teach.zoo train {family}"
        )
    recipe, top = found[-1]["recipe"], found[-1]
    name = (
        f"zoo {family} (N={recipe['N']}, M={recipe['M']}, {top['steps']} steps, "
        f"{top['training_seconds'] / 60:.0f} min on CPU)"
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


# ------------------------------------------------------------------------- training


def training_photos(folder=None, min_side: int = 0) -> dict:
    """The photos the zoo trains on: the bundled training photos, whole; or, given a
    ``folder``, the user's own photos in it (``zoo_data.folder_photos``: each at least
    ``min_side`` pixels a side, none of them an evaluation image)."""
    if folder is None:
        return data.sample_images("train")
    return zoo_data.folder_photos(folder, min_side)


def training_crops(recipe: Recipe, photos: dict | None = None):
    """Random crops of ``photos`` (default :func:`training_photos`) at each of the
    recipe's scales, one segment's worth (the chapters' own crops when the only scale
    is 1)."""
    photos = [
        data.downscaled(x, s)
        for x in (photos or training_photos()).values()
        for s in recipe.scales
    ]
    return data.RandomCropDataset(
        photos, recipe.patch_size, length=recipe.segment_steps * recipe.batch_size
    )


def _segments(
    model,
    crops,
    recipe: Recipe,
    stage: str,
    lmbda: float,
    count: int,
    lr: float,
    decay_segments: int,
    work: Path,
    bar,
    device,
) -> float:
    """Train ``model`` for ``count`` segments at ``lr``, the last ``decay_segments`` of
    them at ``lr / 10`` (``train.learning_rate`` at each segment's first step),
    resuming after the last one saved in ``work``; return the seconds its training
    took, those of segments found saved included (each checkpoint's time is kept beside
    it, ``.seconds``), so a resumed run reports the whole training time."""
    seconds = 0.0
    steps, decay_at = count * recipe.segment_steps, 1 - decay_segments / max(count, 1)
    for segment in range(count):
        checkpoint = work / f"{stage}-{segment:03d}.safetensors"
        timing = checkpoint.with_suffix(".seconds")
        if checkpoint.is_file():
            load_weights(model, checkpoint)
            seconds += float(timing.read_text()) if timing.is_file() else 0.0
        else:
            started = time.perf_counter()
            train.fit(
                model,
                crops,
                steps=recipe.segment_steps,
                lmbda=lmbda,
                lr=train.learning_rate(
                    segment * recipe.segment_steps + 1, steps, lr, decay_at
                ),
                batch_size=recipe.batch_size,
                seed=recipe.seed + segment,
                device=device,
                progress=False,
            )
            elapsed = time.perf_counter() - started
            seconds += elapsed
            save_weights(model, checkpoint)
            cache.atomic_write(timing, f"{elapsed:.1f}\n")
        bar.update(1)
    return seconds


def train_family(
    family: str,
    recipe: Recipe = RECIPE,
    folder: Path = FOLDER,
    work: Path | None = None,
    progress: bool = True,
    data_folder: Path | None = None,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Train ``family`` by ``recipe`` into ``folder`` (weights and manifests), resuming
    from the segments saved in ``work`` (default: the cache); return the manifests.
    ``data_folder``: train on the photos in it instead of the bundled ones
    (:func:`training_photos`); the segments are then kept apart, keyed by those
    photos' pixels, and the manifests say what was trained on. ``device``: where the
    models train and are measured (``"cuda"`` on a GPU machine); the segments and
    weights saved are the same files on every device."""
    architecture = registry.architecture(FAMILIES[family])
    # a crop is cut from each photo at each scale
    photos = training_photos(
        data_folder, math.ceil(recipe.patch_size / min(recipe.scales))
    )
    trained_on = (
        f"lic_teach.data.sample_images('train') at scales {list(recipe.scales)}"
        if data_folder is None
        else {
            "folder": str(Path(data_folder).resolve()),
            "photos": sorted(photos),
            "sha256": zoo_data.photos_sha256(photos),
            "scales": list(recipe.scales),
        }
    )
    run_name = f"{family}-{recipe.key()}" + (
        "" if data_folder is None else f"-data-{trained_on['sha256'][:12]}"
    )
    work = Path(work or cache.default_cache_dir() / "zoo-work") / run_name
    crops, lambdas = training_crops(recipe, photos), sorted(recipe.lambdas)
    middle = lambdas[len(lambdas) // 2]
    with seeded(recipe.seed):
        base = architecture.model_class(recipe.N, recipe.M).to(device)
    total = recipe.base_segments + len(lambdas) * recipe.finetune_segments
    with tqdm(total=total, desc=f"zoo {family}", disable=not progress) as bar:
        base_seconds = _segments(
            base,
            crops,
            recipe,
            "base",
            middle,
            recipe.base_segments,
            recipe.lr,
            recipe.decay_segments,
            work,
            bar,
            device,
        )
        found = []
        for quality, lmbda in enumerate(lambdas, start=1):
            model = copy.deepcopy(base)
            seconds = _segments(
                model,
                crops,
                recipe,
                f"q{quality}",
                lmbda,
                recipe.finetune_segments,
                recipe.finetune_lr,
                recipe.finetune_decay_segments,
                work,
                bar,
                device,
            )
            model.eval().update(force=True)
            found.append(
                _publish(
                    model,
                    family,
                    quality,
                    lmbda,
                    recipe,
                    base_seconds + seconds,
                    folder,
                    (photos, trained_on),
                )
            )
    return found


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


CEILING_PIXELS = 2**20  # a larger training photo's ceiling is measured on a crop


def _bounded(photos: dict) -> dict:
    """``photos``, each larger than :data:`CEILING_PIXELS` cut to its central square
    of at most 1024 pixels a side (a user's 24-megapixel photo would need gigabytes of
    activations in one pass); the bundled photos are all smaller."""
    return {
        name: (
            x
            if x.shape[-2] * x.shape[-1] <= CEILING_PIXELS
            else data.center_crop(x, min(1024, *x.shape[-2:]))
        )
        for name, x in photos.items()
    }


def _publish(
    model,
    family: str,
    quality: int,
    lmbda: float,
    recipe: Recipe,
    seconds: float,
    folder: Path,
    training: tuple[dict, object],
) -> dict:
    """:func:`publish_model` for a model trained by :func:`train_family`."""
    return publish_model(
        model,
        folder,
        {"family": family, "quality": quality, "lambda": lmbda},
        {
            "recipe": dataclasses.asdict(recipe),
            "steps": recipe.steps(),
            "training_seconds": round(seconds, 1),
            "trained_on": training[1],
        },
        training[0],
        recipe.eval_size,
    )


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
    (``evaluate.ceiling``) on the training ``photos`` and the held-out ones. Its
    parameters are rounded to float16 first (half the bytes), and its coding tables
    rebuilt from the rounded parameters, so the figures are those of the shipped
    file."""
    rounded_to_half(model)
    path = weights_path(folder, name["family"], name["quality"])
    digest = save_weights(model, path, half=True, tables=False)
    images = data.held_out(eval_size)
    point = evaluate.codec_point(model, images, with_ms_ssim=True)
    ceiling = {
        "train": round(evaluate.ceiling(model, _bounded(photos)), 3),
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
    """``train [family ...] [--folder] [--smoke]`` or ``list [--folder]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.zoo", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser(
        "train", help="train families into the zoo (resumable)"
    )
    trainer.add_argument(
        "families",
        nargs="*",
        metavar="family",
        help=f"any of {', '.join(FAMILIES)} (default: all)",
    )
    trainer.add_argument("--folder", type=Path, default=FOLDER)
    trainer.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a folder of your own photos to train on (default: the bundled ones)",
    )
    trainer.add_argument(
        "--device",
        default="cpu",
        help="where to train: cpu (default) or cuda (a GPU machine)",
    )
    trainer.add_argument(
        "--smoke", action="store_true", help="the tiny recipe the tests use"
    )
    lister = commands.add_parser(
        "list", help="the models in the zoo and their R-D points"
    )
    lister.add_argument("--folder", type=Path, default=FOLDER)
    return parser.parse_args(argv)


def train_command(args) -> int:
    """Train the families asked for (all by default) and print their manifests'
    lines."""
    recipe = SMOKE_RECIPE if args.smoke else RECIPE
    unknown = sorted(set(args.families) - set(FAMILIES))
    if unknown:
        print(
            f"unknown zoo family {', '.join(unknown)}; "
            f"choose from {', '.join(FAMILIES)}",
            file=sys.stderr,
        )
        return 2
    if args.data is not None and Path(args.folder).resolve() == FOLDER.resolve():
        print(
            "zoo: --data trains on your photos: give --folder, where those models go "
            "(the shipped zoo in lic_teach/zoo_weights stays as it is)",
            file=sys.stderr,
        )
        return 2
    try:
        device = budget.device_named(args.device)
    except ValueError as error:
        print(f"zoo: {error}", file=sys.stderr)
        return 2
    for family in args.families or FAMILIES:
        try:
            manifests = train_family(
                family, recipe, args.folder, data_folder=args.data, device=device
            )
        except (FileNotFoundError, ValueError) as error:  # the photos of --data
            print(f"zoo: {error}", file=sys.stderr)
            return 2
        for manifest in manifests:
            print(describe(manifest))
    return 0


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
    return {"train": train_command, "list": list_command}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
