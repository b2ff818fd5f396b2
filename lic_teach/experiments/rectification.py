"""The quantization-rectifier chapter's study: STP phase 2 on the zoo's models against
two controls, over seeds, qualities and two families, measured on the held-out photos
through real bitstreams.

For each zoo model (family, quality) and seed, three decoders are trained from it on the
same pool of ``crops`` random crops of the training photos and their latents, computed
once (:class:`lic_teach.rectifier.FrozenLatents`):

- ``control``: ``g_s`` alone, fine-tuned on the hard latents (the decoder-training
  chapter's remedy), for ``control_steps``;
- ``QR, alpha=0``: a rectifier warm-started on the latent distance
  (:func:`lic_teach.rectifier.pretrain_rectifier`, ``warm_steps``), then QR and ``g_s``
  trained on the distortion alone for ``steps``;
- ``STP``: the same warm start, then ``steps`` with the best positive ``alpha`` of the
  search (:func:`stp_alpha`).

The control's steps are set so that its training time matches the rectified decoders';
the records keep each decoder's seconds, so the chapter checks it. ``alpha`` is chosen
per family, at one quality and seed, on a validation photo held out of the training
photos, by this book's search (:func:`search_alpha`; the paper does not publish its
own).

``python -m lic_teach.experiments.rectification`` runs the study (``--jobs``) and writes
one JSON record per (family, quality, seed) into :data:`FOLDER`, atomically; a rerun
skips what is done, so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch

from .. import baselines, cache, data, evaluate, metrics, rectifier, zoo
from ..seeding import seeded

FOLDER = Path(__file__).resolve().parent.parent / "studies" / "rectification"
VARIANTS = ("control", "QR, alpha=0", "STP")


@dataclasses.dataclass(frozen=True)
class Study:
    """What the study trains; see the module docstring."""

    families: tuple[str, ...] = ("factorized", "mean-scale")
    qualities: tuple[int, ...] = (1, 2, 3)
    seeds: tuple[int, ...] = (0, 1, 2)
    patch_size: int = 128
    batch_size: int = 8
    crops: int = 2048
    warm_steps: int = 800
    warm_lr: float = 2e-3
    steps: int = 400
    control_steps: int = 650
    lr: float = 1e-4
    width: int = 64
    blocks: int = 2
    heads: int = 4
    window: int = 8
    alphas: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0)
    search_quality: int = 2
    scales: tuple[float, ...] = (1.0, 0.75, 0.5)
    eval_size: int | None = None

    def key(self) -> str:
        """The settings' hash that the study's records carry
        (:func:`lic_teach.cache.settings_hash`)."""
        return cache.settings_hash(dataclasses.asdict(self))


STUDY = Study()
SMOKE_STUDY = Study(
    families=("factorized",),
    qualities=(1, 2),
    seeds=(0,),
    patch_size=64,
    batch_size=2,
    crops=8,
    warm_steps=2,
    steps=2,
    control_steps=3,
    width=8,
    blocks=1,
    heads=2,
    window=4,
    alphas=(0.0, 1.0),
    search_quality=1,
    scales=(1.0,),
    eval_size=192,
)


def photos(study: Study, names=None) -> list[torch.Tensor]:
    """The training photos (``names`` of them, default all) at each of the study's
    scales."""
    train = data.sample_images("train")
    return [
        data.downscaled(train[n], s)
        for n in (names or sorted(train))
        for s in study.scales
    ]


def new_rectifier(model, study: Study, seed: int) -> rectifier.QuantizationRectifier:
    """A rectifier of the study's size for ``model``'s latents, initialized from
    ``seed``."""
    with seeded(seed):
        return rectifier.QuantizationRectifier(
            model.M, study.width, study.blocks, study.heads, study.window
        )


def warm_started(base, latents, study: Study, seed: int, progress: bool = False):
    """``base`` with a rectifier warm-started on ``latents`` for ``study.warm_steps``
    steps."""
    codec = rectifier.rectified(base, new_rectifier(base, study, seed))
    rectifier.pretrain_rectifier(
        codec,
        latents,
        steps=study.warm_steps,
        lr=study.warm_lr,
        batch_size=study.batch_size,
        seed=seed,
        progress=progress,
    )
    return codec


def train_variants(
    base,
    lmbda: float,
    latents,
    study: Study,
    seed: int,
    alpha: float,
    progress: bool = False,
) -> dict:
    """``{variant: (codec, seconds)}``: the three decoders of the module docstring."""

    def phase2(codec, steps, a):
        rectifier.stp_phase2(
            codec,
            latents,
            steps=steps,
            lmbda=lmbda,
            alpha=a,
            batch_size=study.batch_size,
            lr=study.lr,
            seed=seed,
            progress=progress,
        )
        return codec

    trained = {}
    started = time.perf_counter()
    trained["control"] = (
        phase2(copy.deepcopy(base), study.control_steps, 0.0),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    warm = warm_started(base, latents, study, seed, progress)
    warm_seconds = time.perf_counter() - started
    for variant, a in (("QR, alpha=0", 0.0), ("STP", alpha)):
        started = time.perf_counter()
        trained[variant] = (
            phase2(copy.deepcopy(warm), study.steps, a),
            warm_seconds + time.perf_counter() - started,
        )
    return trained


def measure(codec, images: dict[str, torch.Tensor]) -> dict:
    """Per held-out photo, ``bpp``, ``psnr`` and ``ms_ssim`` of the real bitstream
    (``evaluate.measure``: the decoded image taken to 8 bits), and their means over the
    photos; for a rectified codec, the rounding error per channel with and without QR.
    """
    record = {"images": {}}
    for name, x in images.items():
        row = evaluate.measure(x, codec.compress, codec.decompress)
        record["images"][name] = {key: row[key] for key in ("bpp", "psnr", "ms_ssim")}
    record.update(metrics.mean_point(list(record["images"].values())))
    if hasattr(codec.g_s, "rectifier"):
        errors = [
            rectifier.rounding_error(codec, data.pad_to(x[None], codec.downsampling))
            for x in images.values()
        ]
        for key in ("rounded", "rectified"):
            record[key] = torch.stack([e[key] for e in errors]).mean(0).tolist()
        record["recovered"] = 1 - sum(record["rectified"]) / sum(record["rounded"])
    return record


# ------------------------------------------------------------------- the alpha search


def _refuse_test_photos(images: dict[str, torch.Tensor]) -> None:
    """``ValueError`` if any of ``images`` is, or is cut from, a held-out test photo."""
    tests = data.sample_images("test")
    for name, image in images.items():
        for test_name, test in tests.items():
            if name == test_name or _is_crop_of(image, test):
                raise ValueError(
                    f"{name!r} is the held-out photo {test_name!r}: the search for "
                    "alpha must use a validation split of the training photos"
                )


def _is_crop_of(image: torch.Tensor, photo: torch.Tensor) -> bool:
    """Whether ``image`` equals a window of ``photo`` (checked where its first row
    matches)."""
    h, w = image.shape[-2:]
    if image.shape[0] != photo.shape[0] or h > photo.shape[-2] or w > photo.shape[-1]:
        return False
    windows = photo.unfold(1, h, 1).unfold(2, w, 1)  # [3, rows, cols, h, w]
    corner = (windows[..., 0, 0] == image[:, None, None, 0, 0]).all(dim=0)
    return any(
        torch.equal(windows[:, r, c], image) for r, c in corner.nonzero().tolist()
    )


def validation_split(
    images: dict[str, torch.Tensor], count: int = 1
) -> tuple[dict, dict]:
    """``(train, validation)``: the last ``count`` of ``images`` by name held out for
    choosing ``alpha``; the test photos are never among them."""
    _refuse_test_photos(images)
    names = sorted(images)
    if not 0 < count < len(names):
        raise ValueError(
            f"hold out between 1 and {len(names) - 1} of the {len(names)} images, "
            f"not {count}"
        )
    train = {n: images[n] for n in names[:-count]}
    return train, {n: images[n] for n in names[-count:]}


def validation_psnr(codec, validation: dict[str, torch.Tensor]) -> float:
    """Mean PSNR of ``codec`` over ``validation`` through its real bitstream."""
    values = [
        metrics.psnr(x, codec.decompress(codec.compress(x)))
        for x in validation.values()
    ]
    return sum(values) / len(values)


def search_alpha(
    train_one,
    validation: dict[str, torch.Tensor],
    alphas=(0.0, 0.01, 0.1, 1.0, 10.0),
    refine: bool = True,
    extend: int = 2,
) -> tuple[float, dict[float, float]]:
    """The rectifier coefficient of :func:`lic_teach.rectifier.stp_loss`, chosen on
    validation photos (never the test photos).

    ``train_one(alpha) -> codec`` runs STP phase 2 from the same start for each
    ``alpha``. The bytes do not depend on ``alpha``, so the choice is the highest
    validation PSNR through the real bitstream. This book's search (the paper's is not
    public): the grid ``alphas``; while the best is the largest value tried (at most
    ``extend`` times), ten times it; then, with ``refine``, the geometric midpoints
    between the best positive value and its neighbours (a bisection step in ``log
    alpha``). Ties go to the smaller ``alpha``. Returns ``(alpha, {alpha: PSNR})``."""
    _refuse_test_photos(validation)
    scores = {}

    def score(alpha):
        if alpha not in scores:
            scores[alpha] = validation_psnr(train_one(alpha), validation)
        return scores[alpha]

    def best():
        return max(scores, key=lambda a: (scores[a], -a))

    for alpha in sorted(set(alphas)):
        score(alpha)
    for _ in range(extend):
        if best() != max(scores) or best() == 0:
            break
        score(10 * best())
    if refine and best() > 0:
        tried, top = sorted(scores), best()
        index = tried.index(top)
        for neighbour in (
            tried[index - 1] if index else None,
            tried[index + 1] if index + 1 < len(tried) else None,
        ):
            if neighbour:
                score(math.sqrt(top * neighbour))
    return best(), dict(sorted(scores.items()))


def search(
    family: str, study: Study, folder: Path = zoo.FOLDER, progress: bool = False
) -> dict:
    """The alpha search for ``family`` at ``study.search_quality``, seed 0: the training
    photos but one, at the study's scales, and the held-out training photo to validate.
    """
    base = zoo.load(family, study.search_quality, folder)
    lmbda = zoo.lambda_of(family, study.search_quality, folder)
    train, validation = validation_split(data.sample_images("train"), 1)
    started = time.perf_counter()
    with seeded(0):
        latents = rectifier.FrozenLatents(
            base, photos(study, sorted(train)), study.patch_size, study.crops
        )
    warm = warm_started(base, latents, study, 0, progress)

    def train_one(alpha):
        codec = copy.deepcopy(warm)
        rectifier.stp_phase2(
            codec,
            latents,
            steps=study.steps,
            lmbda=lmbda,
            alpha=alpha,
            batch_size=study.batch_size,
            lr=study.lr,
            seed=0,
            progress=progress,
        )
        return codec

    alpha, scores = search_alpha(train_one, validation, study.alphas)
    return {
        "family": family,
        "quality": study.search_quality,
        "validation": sorted(validation),
        "alpha": alpha,
        "scores": {str(a): s for a, s in scores.items()},
        "seconds": time.perf_counter() - started,
        "study": study.key(),
    }


def stp_alpha(search_record: dict) -> float:
    """The ``alpha`` of the study's STP decoders: the best positive ``alpha`` of the
    search. STP is phase 2 with the distance term, so where ``alpha = 0`` wins the
    search (the distance does not help), the study still measures the best STP against
    its controls, and the chapter says which won."""
    scores = {
        float(a): psnr for a, psnr in search_record["scores"].items() if float(a) > 0
    }
    return max(scores, key=lambda a: (scores[a], -a))


def run(
    family: str,
    quality: int,
    seed: int,
    alpha: float,
    study: Study,
    folder: Path = zoo.FOLDER,
    progress: bool = False,
    weights: Path | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """One (family, quality, seed) of the study: the zoo model and its three decoders,
    trained and measured on ``device``; with ``weights``, the STP decoder's ``g_s`` (QR
    and synthesis) saved there."""
    base = zoo.load(family, quality, folder).to(device)
    lmbda = zoo.lambda_of(family, quality, folder)
    images = data.held_out(study.eval_size)
    with seeded(seed):
        latents = rectifier.FrozenLatents(
            base, photos(study), study.patch_size, study.crops
        )
    record = {
        "family": family,
        "quality": quality,
        "seed": seed,
        "lambda": lmbda,
        "alpha": alpha,
        "study": study.key(),
        "variants": {"zoo model": {**measure(base, images), "seconds": 0.0}},
    }
    decoders = train_variants(base, lmbda, latents, study, seed, alpha, progress)
    for variant, (codec, seconds) in decoders.items():
        record["variants"][variant] = {**measure(codec, images), "seconds": seconds}
    if weights is not None:
        record["weights_sha256"] = zoo.save_weights(decoders["STP"][0].g_s, weights)
    return record


def weights_path(family: str, folder: Path = FOLDER) -> Path:
    """Where the study keeps the STP decoder of ``family`` (search quality, seed 0)."""
    return folder / f"{family}-stp.safetensors"


def trained(
    family: str,
    study: Study = STUDY,
    folder: Path = FOLDER,
    zoo_folder: Path = zoo.FOLDER,
):
    """The study's STP codec of ``family`` at ``study.search_quality``, seed 0: the zoo
    model's encoder, entropy model and bytes, and the trained rectifier and synthesis
    (checked against the SHA-256 its record gives)."""
    record = _read(folder / f"{family}-q{study.search_quality}-seed0.json", study)
    if record is None or "weights_sha256" not in record:
        raise ValueError(
            f"no trained STP decoder of {family!r} in {folder}: run `make studies`"
        )
    base = zoo.load(family, study.search_quality, zoo_folder)
    codec = rectifier.rectified(base, new_rectifier(base, study, 0))
    zoo.load_weights(codec.g_s, weights_path(family, folder), record["weights_sha256"])
    return codec.eval()


# ------------------------------------------------------------------------------ files


def _write(path: Path, record: dict) -> None:
    cache.atomic_write(path, json.dumps(record, indent=1))


def _read(path: Path, study: Study) -> dict | None:
    """The record at ``path`` if it is readable and of this ``study``."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("study") == study.key() else None


def searches(study: Study = STUDY, folder: Path = FOLDER) -> dict[str, dict]:
    """``{family: search record}`` saved in ``folder`` for ``study``."""
    found = {f: _read(folder / f"search-{f}.json", study) for f in study.families}
    return {f: r for f, r in found.items() if r is not None}


def records(study: Study = STUDY, folder: Path = FOLDER) -> list[dict]:
    """Every (family, quality, seed) record saved in ``folder`` for ``study``."""
    found = [
        _read(folder / f"{f}-q{q}-seed{s}.json", study)
        for f in study.families
        for q in study.qualities
        for s in study.seeds
    ]
    return [r for r in found if r is not None]


def _search_job(family, study, zoo_folder, folder, threads):
    torch.set_num_threads(threads)
    _write(folder / f"search-{family}.json", search(family, study, zoo_folder))


def _run_job(family, quality, seed, alpha, study, zoo_folder, folder, threads):
    torch.set_num_threads(threads)
    keep = (
        weights_path(family, folder)
        if (quality, seed) == (study.search_quality, 0)
        else None
    )
    _write(
        folder / f"{family}-q{quality}-seed{seed}.json",
        run(family, quality, seed, alpha, study, zoo_folder, weights=keep),
    )


def run_study(
    study: Study = STUDY,
    folder: Path = FOLDER,
    zoo_folder: Path = zoo.FOLDER,
    jobs: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Run what is missing of ``study``: the searches, then the runs, ``jobs`` at a
    time."""
    threads = (
        torch.get_num_threads() if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs)
    )
    missing = [f for f in study.families if f not in searches(study, folder)]
    _run_all(
        [(_search_job, (f, study, zoo_folder, folder, threads)) for f in missing],
        jobs,
        "alpha searches",
        progress,
    )
    alphas = {f: stp_alpha(r) for f, r in searches(study, folder).items()}
    done = {(r["family"], r["quality"], r["seed"]) for r in records(study, folder)}
    todo = [
        (f, q, s)
        for f in study.families
        for q in study.qualities
        for s in study.seeds
        if (f, q, s) not in done
    ]
    _run_all(
        [
            (_run_job, (f, q, s, alphas[f], study, zoo_folder, folder, threads))
            for f, q, s in todo
        ],
        jobs,
        "study runs",
        progress,
    )
    return records(study, folder)


def _run_all(calls, jobs: int, description: str, progress: bool) -> None:
    """Each ``(function, arguments)`` of ``calls``: in this process if ``jobs`` is 1,
    else in ``jobs`` fresh processes (spawned: a forked child of a process that has run
    torch's thread pool can hang)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(calls), desc=description, disable=not progress or not calls)
    if jobs == 1:
        for function, arguments in calls:
            function(*arguments)
            bar.update()
    else:
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for future in concurrent.futures.as_completed(
                [pool.submit(f, *a) for f, a in calls]
            ):
                future.result()
                bar.update()
    bar.close()


# ---------------------------------------------------------------------------- summaries


def gains(
    records_: list[dict],
    family: str,
    quality: int,
    variant: str,
    over: str = "zoo model",
    key: str = "psnr",
) -> list[float]:
    """Per seed, ``key`` of ``variant`` minus ``key`` of ``over`` (same bytes, same
    seed)."""
    return [
        r["variants"][variant][key] - r["variants"][over][key]
        for r in sorted(records_, key=lambda r: r["seed"])
        if (r["family"], r["quality"]) == (family, quality)
    ]


def curve(
    records_: list[dict], family: str, seed: int, variant: str
) -> baselines.RDCurve:
    """``variant``'s R-D curve over the study's qualities for one ``family`` and
    ``seed``."""
    mine = sorted(
        (r for r in records_ if r["family"] == family and r["seed"] == seed),
        key=lambda r: r["quality"],
    )
    return baselines.RDCurve(
        f"{family}, {variant}, seed {seed}",
        [r["variants"][variant]["bpp"] for r in mine],
        [r["variants"][variant]["psnr"] for r in mine],
        params=[r["quality"] for r in mine],
    )


def bd_comparisons(
    records_: list[dict], family: str, variant: str, over: str = "zoo model"
) -> list[dict]:
    """Per seed, :func:`lic_teach.metrics.bd_comparison` of ``variant``'s curve against
    ``over``'s."""
    return [
        metrics.bd_comparison(
            curve(records_, family, seed, over), curve(records_, family, seed, variant)
        )
        for seed in sorted({r["seed"] for r in records_ if r["family"] == family})
    ]


def main(argv=None) -> int:
    """The command line: run what is missing of the study (or of the smoke study)."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.experiments.rectification",
        description="Train and measure the quantization-rectifier study.",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes at once (default 1)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the seconds-long SMOKE_STUDY on the shipped zoo",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=FOLDER,
        help=f"where the records go (default {FOLDER})",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return 2
    done = run_study(SMOKE_STUDY if args.smoke else STUDY, args.folder, jobs=args.jobs)
    print(f"{len(done)} records in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
