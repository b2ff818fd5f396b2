"""The lattice chapter's experiments: lattices on the 2-D sources with a real code, a
factorized-prior model fine-tuned with lattice quantizers, and encode times.

- **2-D sources** (``lic_teach.toy_sources``): each source is quantized directly by a
  lattice scaled to cells of area ``step^2``. :class:`LatticeCode` is a real code: it
  enumerates the lattice points whose cells have mass under the source's density
  (:func:`lic_teach.lattices.cell_log_mass`), codes each point's index with the book's
  rANS, and escapes the rare point outside its table with the point's coefficients. A
  learned 2-D basis (:func:`fit_toy_lattice`) is trained for the same trade-off as the
  scalar quantizer of each step.
- **An image model** (:func:`fine_tune`): a zoo factorized-prior model fine-tuned for
  the same steps with scalar rounding (the control) or with its latents quantized, ``n``
  channels at a time, by ``D4``, ``E8`` or a learned lattice
  (:class:`lic_teach.lattice_quantized.LatticeQuantized`); its rate is the ideal code
  length of the cells' masses, with the spread of the Monte Carlo estimate
  (:func:`measure`).
- **Encode time** (:func:`encode_times`): scalar rounding, Babai's rounding, the exact
  ``E8`` search and the nearest codeword of an unstructured codebook, per vector.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import struct
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .. import (
    cache,
    coding,
    complexity,
    data,
    evaluate,
    lattice_quantized,
    lattices,
    metrics,
    toy_sources,
    train,
    zoo,
)
from ..seeding import seeded
from .end_to_end import training_crops as end_to_end_crops

# ----------------------------------------------------------------------- 2-D sources

# the cell side sqrt(area) of each point: from about 9 bits a vector down to 3
TOY_STEPS = (0.3, 0.42, 0.6, 0.85, 1.2)
ESCAPE_TABLE = ([0.5], 0.5)  # one symbol (0) and an escape: coefficients sent raw


def toy_lattice(
    name: str, step: float, learned: dict | None = None
) -> lattices.Lattice:
    """``"scalar"`` (``Z^2``), ``"A2"`` or ``"learned"`` (``learned[step]``, a basis),
    with cells of area ``step^2``."""
    if name == "scalar":
        return lattices.integer_lattice(2).scaled(step)
    if name == "A2":
        return lattices.hexagonal().with_volume(step**2)
    if name == "learned":
        return lattices.Lattice("learned", learned[step])
    raise ValueError(f"unknown lattice {name!r}; choose scalar, A2 or learned")


class LatticeCode:
    """A real code for points of a 2-D source quantized to ``lattice``.

    Its table holds the lattice points that quantizing ``count`` samples of the source
    (drawn with ``seed``, never the test samples) reaches and whose cells carry mass at
    least ``floor`` under the source's density, each with that mass (``samples`` Monte
    Carlo points a cell); what the table misses is its escape. The stream is the point
    count (4 bytes) and one rANS string: the table index of every point, then the two
    integer coefficients of each escaped point (:data:`ESCAPE_TABLE`)."""

    def __init__(
        self,
        lattice: lattices.Lattice,
        source: str,
        samples: int = 256,
        floor: float = 2**-20,
        count: int = 200_000,
        seed: int = 0,
    ):
        if source not in toy_sources.SOURCES:
            raise ValueError(
                f"unknown source {source!r}; "
                f"choose one of {', '.join(toy_sources.SOURCES)}"
            )
        self.lattice = lattice
        x = toy_sources.SOURCES[source](
            count, torch.Generator().manual_seed(seed)
        ).double()
        reached = torch.unique(self.coefficients(lattice.quantize(x)), dim=0)  # [K, 2]
        log_mass = lattices.cell_log_mass(
            toy_sources.LOG_DENSITIES[source],
            reached.double() @ lattice.basis,
            lattice.basis,
            lattice.quantize,
            samples,
            torch.Generator().manual_seed(seed),
        )
        keep = log_mass.exp() >= floor
        if int(keep.sum()) >= (1 << coding.PRECISION) // 2:
            raise ValueError(
                f"{int(keep.sum())} cells are too many for a "
                f"{coding.PRECISION}-bit table: use a larger step"
            )
        self.table = reached[keep]
        self.index = {tuple(k): i for i, k in enumerate(self.table.tolist())}
        masses = log_mass[keep].exp().tolist()
        self.pmf = masses
        tail = max(1.0 - sum(masses), floor)
        self.cdfs, self.cdf_lengths = coding.build_cdf_tables(
            [masses, ESCAPE_TABLE[0]], [tail, ESCAPE_TABLE[1]]
        )
        self.offsets = [0, 0]

    def coefficients(self, points: torch.Tensor) -> torch.Tensor:
        """The integer ``k`` with ``points = k B``, ``[N, n]`` int64."""
        return lattices.coefficients(points.double(), self.lattice.basis).long()

    def encode(self, x: torch.Tensor, coder: str = "ans") -> bytes:
        """The bytes of the lattice points of ``x`` ``[N, 2]``."""
        escape = len(self.table)
        symbols, escaped = [], []
        for k in self.coefficients(self.lattice.quantize(x.double())).tolist():
            i = self.index.get(tuple(k), escape)
            symbols.append(i)
            if i == escape:
                escaped += k
        string = coding.get_coder(coder).encode_with_indexes(
            symbols + escaped,
            [0] * len(symbols) + [1] * len(escaped),
            self.cdfs,
            self.cdf_lengths,
            self.offsets,
        )
        return struct.pack(">I", len(symbols)) + string

    def decode(self, stream: bytes, coder: str = "ans") -> torch.Tensor:
        """The lattice points ``[N, 2]`` of :meth:`encode`'s bytes; bad bytes raise
        ``ValueError``."""
        if len(stream) < 4:
            raise ValueError(
                "a lattice code stream starts with a 4-byte point count: "
                "this one is truncated"
            )
        (count,) = struct.unpack(">I", stream[:4])
        if count > 8 * len(stream) * (1 << coding.PRECISION):
            raise ValueError(
                f"the stream claims {count} points, "
                f"more than its {len(stream)} bytes can hold"
            )
        decoder = coding.get_coder(coder).stream_decoder(stream[4:])
        symbols = decoder.decode([0] * count, self.cdfs, self.cdf_lengths, self.offsets)
        escape = len(self.table)
        escapes = sum(s == escape for s in symbols)
        raw = iter(
            decoder.decode(
                [1] * (2 * escapes), self.cdfs, self.cdf_lengths, self.offsets
            )
        )
        decoder.finish()
        if any(not 0 <= s <= escape for s in symbols):
            raise ValueError(
                "the stream decodes to symbols outside the table: corrupted"
            )
        rows = [
            self.table[s].tolist() if s < escape else [next(raw), next(raw)]
            for s in symbols
        ]
        return (
            torch.tensor(rows, dtype=torch.float64).reshape(-1, 2) @ self.lattice.basis
        )


def toy_point(
    lattice: lattices.Lattice,
    source: str,
    count: int = 100_000,
    seed: int = 1,
    coder: str = "ans",
    code_count: int = 200_000,
    code_samples: int = 256,
) -> dict:
    """One R-D point through the real code (its table from ``code_count`` training
    samples and ``code_samples`` points a cell): ``bits`` per vector (the stream's
    bytes), ``ideal`` (``-log2`` of the table's masses), ``mse`` per vector, ``snr_db``,
    ``escapes`` (points outside the table) and ``cells`` (the table's size)."""
    code = LatticeCode(lattice, source, samples=code_samples, count=code_count)
    x = toy_sources.SOURCES[source](count, torch.Generator().manual_seed(seed)).double()
    stream = code.encode(x, coder)
    x_hat = code.decode(stream, coder)
    if not torch.allclose(x_hat, lattice.quantize(x)):
        raise AssertionError("the lattice code did not decode to the quantized points")
    mse = float(((x - x_hat) ** 2).sum(dim=1).mean())
    indexes = [code.index.get(tuple(k)) for k in code.coefficients(x_hat).tolist()]
    pmf = np.asarray(code.pmf)
    ideal = float(np.mean([-math.log2(pmf[i]) for i in indexes if i is not None]))
    return {
        "bits": 8 * len(stream) / count,
        "ideal": ideal,
        "mse": mse,
        "escapes": indexes.count(None),
        "snr_db": 10 * math.log10(float(x.var(dim=0).sum()) / mse),
        "cells": len(code.table),
    }


def toy_lambda(step: float) -> float:
    """The trade-off at which scalar rounding with this step is optimal at high rate:
    ``R = h - 2 log2(step)``, ``D = step^2 / 6`` per 2-D vector, so ``-dR/dD = 6 /
    (step^2 ln 2)``."""
    return 6 / (step**2 * math.log(2))


def fit_toy_lattice(
    source: str,
    step: float,
    *,
    steps: int = 300,
    beta: float = 1.0,
    samples: int = 16,
    batch_size: int = 1024,
    lr: float = 1e-2,
    seed: int = 0,
    start=None,
    progress: bool = False,
):
    """A :class:`lic_teach.lattices.LearnedLattice` for ``source``, started at
    ``start`` (default: ``Z^2`` of this step) and trained on ``bits + lambda ||u||^2 +
    beta * orthogonality`` with ``x + u`` (``u`` uniform over the Babai cell) and the
    bits of that cell's mass; ``lambda`` is :func:`toy_lambda` of the step. Returns
    ``(lattice, history)``."""
    lattice = lattices.LearnedLattice(
        2, step * torch.eye(2) if start is None else start
    )
    lmbda, log_density = toy_lambda(step), toy_sources.LOG_DENSITIES[source]
    generator = torch.Generator().manual_seed(seed)

    def step_loss():
        x = toy_sources.SOURCES[source](batch_size, generator)
        u = lattices.cell_noise(
            (batch_size,), lattice.basis, lattice.quantize, generator
        )
        bits = -lattices.cell_log_mass(
            log_density, x + u, lattice.basis, lattice.quantize, samples, generator
        ) / math.log(2)
        distortion = (u**2).sum(dim=1)
        loss = bits.mean() + lmbda * distortion.mean() + beta * lattice.orthogonality()
        return loss, {"bits": bits.mean().item(), "mse": distortion.mean().item()}

    with seeded(seed):
        history = train.train_steps(
            step_loss,
            lattice.parameters(),
            steps=steps,
            lr=lr * step,
            progress=progress,
            description=f"learned lattice, step {step}",
        )
    return lattice.frozen(), history


def toy_curves(
    source: str,
    steps=TOY_STEPS,
    learned: dict | None = None,
    count: int = 100_000,
    coder: str = "ans",
    code_count: int = 200_000,
    code_samples: int = 256,
) -> dict:
    """``{name: curve}`` for scalar, A2 (and the learned bases ``{step: basis}``): each
    curve with ``bpp`` (bits per vector, the stream's) and ``psnr`` (the SNR in dB, so
    ``metrics.bd_comparison`` reads it) and the points."""
    names = ("scalar", "A2") + (("learned",) if learned else ())
    curves = {}
    for name in names:
        points = [
            toy_point(
                toy_lattice(name, s, learned),
                source,
                count,
                coder=coder,
                code_count=code_count,
                code_samples=code_samples,
            )
            for s in steps
        ]
        curves[name] = SimpleNamespace(
            name=name,
            bpp=[p["bits"] for p in points],
            psnr=[p["snr_db"] for p in points],
            points=points,
            steps=list(steps),
        )
    return curves


def cell_map(lattice: lattices.Lattice, extent, resolution: int = 300) -> dict:
    """The cells of ``lattice`` over ``extent = (x0, x1, y0, y1)``: ``{"x", "y",
    "cell"}`` with ``cell[i, j]`` a number for the cell of grid point ``(x[j], y[i])``
    (equal numbers, equal cells; neighbours differ), for drawing."""
    xs = torch.linspace(extent[0], extent[1], resolution, dtype=torch.float64)
    ys = torch.linspace(extent[2], extent[3], resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    k = lattices.coefficients(lattice.quantize(grid), lattice.basis).long()
    cell = (k[:, 0] * 7 + k[:, 1] * 3) % 11  # neighbouring cells differ in colour
    return {
        "x": xs.tolist(),
        "y": ys.tolist(),
        "cell": cell.reshape(resolution, resolution).tolist(),
    }


# ----------------------------------------------------------------------- an image model

IMAGE_VARIANTS = ("scalar", "D4", "E8", "learned 2-D", "learned 4-D", "learned 8-D")


@dataclasses.dataclass(frozen=True)
class ImageStudy:
    """How the zoo's factorized models are fine-tuned and measured (see the module
    docstring)."""

    qualities: tuple[int, ...] = (1, 2, 3)
    variants: tuple[str, ...] = IMAGE_VARIANTS
    steps: int = 200
    patch_size: int = 128
    batch_size: int = 8
    lr: float = 1e-4
    # a learned lattice's basis moves a hundred times faster than the transforms
    basis_lr: float = 1e-2
    samples: int = 16  # Monte Carlo points a cell in training
    eval_samples: int = 256  # and in measuring
    repeats: int = 3  # independent Monte Carlo estimates of each rate
    beta: float = 1.0
    eval_size: int | None = None
    seeds: tuple[int, ...] = (0,)

    def key(self) -> str:
        """The settings' hash that the study's records carry
        (:func:`lic_teach.cache.settings_hash`)."""
        return cache.settings_hash(dataclasses.asdict(self))


# the study `make studies` runs and ships (`python -m lic_teach.experiments.lattice_vq`)
STUDY = ImageStudy(steps=400, seeds=(0, 1))
FOLDER = Path(__file__).resolve().parent.parent / "studies" / "lattice"


def image_lattice(variant: str):
    """The quantizer of a variant: a classical lattice at unit volume, or a learned one
    started at ``Z^n`` (``None`` for scalar rounding)."""
    if variant == "scalar":
        return None
    if variant == "D4":
        return lattices.checkerboard(4).with_volume(1.0)
    if variant == "E8":
        return lattices.gosset()
    if variant.startswith("learned "):
        return lattices.LearnedLattice(int(variant.split()[1].removesuffix("-D")))
    raise ValueError(
        f"unknown variant {variant!r}; choose one of {', '.join(IMAGE_VARIANTS)}"
    )


def fine_tune(
    variant: str,
    quality: int,
    study: ImageStudy,
    seed: int = 0,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple:
    """``(codec, seconds)``: the zoo model of ``quality`` fine-tuned for ``study.steps``
    with the variant's quantizer on ``device`` (the same crops, seed and learning rate
    for every variant)."""
    base = zoo.load("factorized", quality).to(device)
    lmbda, lattice = zoo.lambda_of("factorized", quality), image_lattice(variant)
    codec = (
        base
        if lattice is None
        else lattice_quantized.LatticeQuantized(base, lattice, study.samples)
    )
    criterion = (
        None
        if lattice is None
        else lattice_quantized.LatticeLoss(codec, lmbda, study.beta)
    )
    with seeded(seed):
        crops, _ = end_to_end_crops(study.patch_size, study.steps * study.batch_size)
    started = time.perf_counter()
    train.fit(
        codec,
        crops,
        steps=study.steps,
        lmbda=lmbda,
        criterion=criterion,
        lr=study.lr,
        batch_size=study.batch_size,
        seed=seed,
        lr_of={"lattice.basis": study.basis_lr},
        device=device,
        progress=progress,
        description=f"{variant}, q{quality}",
    )
    return codec, time.perf_counter() - started


def _estimates(
    codec: lattice_quantized.LatticeQuantized,
    x: torch.Tensor,
    pixels: int,
    study: ImageStudy,
) -> list[float]:
    """``study.repeats`` independent Monte Carlo estimates of the bits of ``x`` (an
    image padded for the codec) over ``pixels``, the image's own pixel count."""
    return [
        codec.measured_bits(
            x, study.eval_samples, torch.Generator().manual_seed(1000 + r), exact=False
        )[0]
        / pixels
        for r in range(study.repeats)
    ]


def _mean_and_spread(per_image: list[list[float]]) -> tuple[float, float]:
    """The mean over estimates of the image-mean rate, and the spread (one standard
    deviation) of those."""
    per_estimate = np.mean(np.asarray(per_image), axis=0)
    spread = float(per_estimate.std(ddof=1)) if len(per_estimate) > 1 else 0.0
    return float(per_estimate.mean()), spread


@torch.no_grad()
def measure(codec, images: dict, study: ImageStudy) -> dict:
    """On ``images`` (each taken to 8 bits), averaged: ``bpp``, the ideal code length
    of the quantized latents of the image padded to a multiple of 16 pixels, over the
    image's own pixels (as a bitstream's rate is counted), and ``psnr`` and ``ms_ssim``
    of the decoded image cropped back to the image's size, as every codec of the book
    is measured (``evaluate.distortion``: the decoded image taken to 8 bits; MS-SSIM is
    ``None`` on crops too small for it). The rate is exact for scalar rounding and for
    ``D4``; for the other lattices it is the mean of ``study.repeats`` Monte Carlo
    estimates (``study.eval_samples`` points a cell), ``bpp_error`` their spread. Where
    the rate is exact, the record also has ``bpp_mc`` and ``bpp_mc_error``: the same
    rate estimated by Monte Carlo, as the other lattices' is (for scalar rounding, as
    cubes of ``Z^8``), which measures the estimator's own error; and for scalar
    rounding ``bpp_real``, from its real bitstream (``evaluate.measure``)."""
    codec.eval()
    lattice = isinstance(codec, lattice_quantized.LatticeQuantized)
    exact = not lattice or codec.exact_mass
    rates, checks, real, distortions = [], [], [], []
    for x in images.values():
        x = data.quantize_8bit(x)
        height, width = x.shape[-2:]
        pixels = height * width
        padded = data.pad_to(x[None], 16).to(next(codec.parameters()).device)
        if lattice:
            bits, x_hat = codec.measured_bits(padded)
        else:
            out = codec(padded)
            bits, x_hat = float(metrics.bits(out["likelihoods"])), out["x_hat"]
            coded = evaluate.measure(
                x, codec.compress, codec.decompress, with_ms_ssim=False
            )
            real.append(coded["bpp"])
        if exact:
            rates.append([bits / pixels])
            estimator = (
                codec
                if lattice
                else lattice_quantized.LatticeQuantized(
                    codec, lattices.integer_lattice(8)
                )
            )
            checks.append(_estimates(estimator, padded, pixels, study))
        else:
            rates.append(_estimates(codec, padded, pixels, study))
        distortions.append(evaluate.distortion(x, x_hat[0, :, :height, :width]))
    mean = metrics.mean_point(distortions)
    record = dict(zip(("bpp", "bpp_error"), _mean_and_spread(rates)))
    record.update(psnr=mean["psnr"], ms_ssim=mean["ms_ssim"], exact=exact)
    if checks:
        record.update(zip(("bpp_mc", "bpp_mc_error"), _mean_and_spread(checks)))
    if real:
        record["bpp_real"] = float(np.mean(real))
    return record


def run(
    variant: str,
    quality: int,
    seed: int,
    study: ImageStudy,
    images: dict | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> dict:
    """One fine-tuning on ``device`` and its measurement on the held-out photos:
    ``{"variant", "quality", "seed", "seconds", "study", **measure(...)}``, and for a
    learned basis the basis and Babai's miss rate for it."""
    images = data.held_out(study.eval_size) if images is None else images
    codec, seconds = fine_tune(variant, quality, study, seed, progress, device)
    record = {
        "variant": variant,
        "quality": quality,
        "seed": seed,
        "seconds": seconds,
        "study": study.key(),
        **measure(codec, images, study),
    }
    if variant.startswith("learned"):
        basis = codec.lattice.basis.detach().double()
        record["basis"] = basis.tolist()
        record["miss_rate"] = lattices.babai_miss_rate(basis, 1000)["rate"]
    return record


def image_study(
    study: ImageStudy, progress: bool = False, device: str | torch.device = "cpu"
) -> list[dict]:
    """:func:`run` for every variant, quality and seed of ``study``, here and now, on
    ``device``."""
    images = data.held_out(study.eval_size)
    return [
        run(v, q, seed, study, images, progress, device)
        for seed in study.seeds
        for v in study.variants
        for q in study.qualities
    ]


def _record_path(folder: Path, variant: str, quality: int, seed: int) -> Path:
    return folder / f"{variant.replace(' ', '_')}-q{quality}-s{seed}.json"


def run_study(
    study: ImageStudy = STUDY, folder: Path = FOLDER, progress: bool = True
) -> list[dict]:
    """The shipped study: each missing record is run and written atomically, so an
    interrupted study resumes; returns all of the study's records."""
    images = data.held_out(study.eval_size)
    for seed in study.seeds:
        for variant in study.variants:
            for quality in study.qualities:
                path = _record_path(folder, variant, quality, seed)
                if (
                    path.exists()
                    and json.loads(path.read_text()).get("study") == study.key()
                ):
                    continue
                record = run(variant, quality, seed, study, images, progress)
                cache.atomic_write(path, json.dumps(record, indent=1))
    return records(study, folder)


def records(study: ImageStudy = STUDY, folder: Path = FOLDER) -> list[dict]:
    """The records in ``folder`` written by ``study``'s settings, in file order."""
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [r for r in found if r.get("study") == study.key()]


def image_curves(found: list[dict], seed: int) -> dict:
    """``{variant: curve}`` of one seed's records, with ``bpp`` and ``psnr`` in quality
    order."""
    curves = {}
    for r in sorted(
        (r for r in found if r["seed"] == seed), key=lambda r: r["quality"]
    ):
        curve = curves.setdefault(
            r["variant"], SimpleNamespace(name=r["variant"], bpp=[], psnr=[])
        )
        curve.bpp.append(r["bpp"])
        curve.psnr.append(r["psnr"])
    return curves


def bd_against_scalar(found: list[dict]) -> dict:
    """``{variant: [metrics.bd_comparison against scalar rounding, one per seed]}``."""
    seeds = sorted({r["seed"] for r in found})
    per_seed = [image_curves(found, seed) for seed in seeds]
    return {
        v: [metrics.bd_comparison(c["scalar"], c[v]) for c in per_seed]
        for v in per_seed[0]
        if v != "scalar"
    }


def main(argv=None) -> int:
    """``python -m lic_teach.experiments.lattice_vq``: run (or finish) the shipped
    study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    args = parser.parse_args(argv)
    found = run_study(STUDY, args.folder)
    print(f"{len(found)} records in {args.folder}")
    return 0


# ----------------------------------------------------------------------- encode time


def nearest_codeword(
    y: torch.Tensor, codebook: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """The nearest row of ``codebook`` ``[K, n]`` to each row of ``y`` ``[N, n]``: a
    full search, the cost of an unstructured vector quantizer."""
    norms = (codebook**2).sum(dim=1)
    picks = [(norms - 2 * part @ codebook.T).argmin(dim=1) for part in y.split(chunk)]
    return codebook[torch.cat(picks)]


def _seconds_per_vector(function, y: torch.Tensor, repeats: int) -> float:
    return complexity.median_seconds([lambda: function(y)], repeats)[0] / y.shape[0]


def encode_times(
    count: int = 100_000,
    vq_count: int = 5_000,
    bits_per_dimension=(1.0, 2.0),
    repeats: int = 5,
    seed: int = 0,
    model=None,
    image: torch.Tensor | None = None,
) -> list[dict]:
    """Seconds per 8-D vector of each quantizer, on Gaussian vectors (medians of
    ``repeats`` runs after a warm-up; one thread, so the ratios do not depend on how
    many cores are free): scalar rounding, Babai's rounding in the ``E8`` basis, the
    exact ``E8`` search, and full search in a codebook of ``2^(8 R)`` random codewords
    for each ``R`` of ``bits_per_dimension`` (on ``vq_count`` vectors). With a ``model``
    and an ``image`` ``[1, 3, H, W]``, also its analysis transform ``g_a``, per 8
    latents it makes."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(count, 8, generator=generator)
    e8 = lattices.gosset()
    basis, inverse = e8.basis.float(), torch.linalg.inv(e8.basis).float()
    quantizers = [
        ("scalar rounding", torch.round, y),
        ("Babai's rounding (E8 basis)", lambda v: torch.round(v @ inverse) @ basis, y),
        ("exact E8 (two D8 searches)", lattices.closest_e8, y),
    ]
    for rate in bits_per_dimension:
        codebook = torch.randn(int(2 ** (8 * rate)), 8, generator=generator)
        quantizers.append(
            (
                f"full search, {len(codebook)} codewords ({rate:g} bit/dim)",
                lambda v, c=codebook: nearest_codeword(v, c),
                y[:vq_count],
            )
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [
            {"quantizer": name, "seconds": _seconds_per_vector(f, v, repeats)}
            for name, f, v in quantizers
        ]
        if model is not None:
            with torch.no_grad():
                vectors = model.g_a(image).numel() / 8
                seconds = (
                    _seconds_per_vector(lambda x: model.g_a(x), image, repeats)
                    * image.shape[0]
                    / vectors
                )
            rows.append(
                {
                    "quantizer": "the analysis transform g_a (for comparison)",
                    "seconds": seconds,
                }
            )
    finally:
        torch.set_num_threads(threads)
    for row in rows:
        row["ratio"] = row["seconds"] / rows[0]["seconds"]
    return rows


if __name__ == "__main__":
    sys.exit(main())
