"""The hyperprior and context-model chapters' comparison: every architecture gets the
transforms of the zoo's factorized models and trains its entropy model alone, on the
same latents for the same steps (:func:`train_architectures`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import cache, evaluate, metrics, train
from ..budget import Budget
from ..seeding import seeded
from .end_to_end import sizes, training_crops, zoo_family


@dataclass(frozen=True)
class Setup:
    """How each architecture's entropy model is trained (see :func:`setup`)."""

    patch_size: int
    crops: int
    batch_size: int
    steps: int
    lambdas: tuple[float, ...]

    def __str__(self) -> str:
        return (
            f"the zoo's factorized transforms at each of the lambdas "
            f"{', '.join(f'{lmbda:g}' for lmbda in self.lambdas)}; "
            f"each entropy model trained from scratch for {self.steps} steps of "
            f"{self.batch_size} on the latents of {self.crops} random "
            f"{self.patch_size}x{self.patch_size} crops"
        )


def setup(B: Budget) -> Setup:
    """The lambdas of :func:`zoo_family`; crops of 256x256, so that the hyper-latent
    ``z`` (1/64 of the image side) has 4x4 positions (at 128x128 every position of a 2x2
    ``z`` would lie on the border); a quarter of the end-to-end chapter's base steps,
    each on the latents of 4 crops."""
    steps, batch = max(1, B.train_steps // 4), 4
    return Setup(
        max(B.patch_size, 256),
        min(512, steps * batch),
        batch,
        steps,
        tuple(zoo_family(B)),
    )


def transforms(model) -> dict:
    """The analysis and synthesis transforms' weights (``g_a.*``, ``g_s.*``) of a
    model."""
    return {
        k: v for k, v in model.state_dict().items() if k.startswith(("g_a.", "g_s."))
    }


@torch.no_grad()
def training_latents(model, settings: Setup, device) -> torch.Tensor:
    """``g_a`` of ``settings.crops`` random crops of the training photos (the same crops
    for every call: the generator is seeded)."""
    crops, _ = training_crops(settings.patch_size, settings.crops)
    chunks = []
    with seeded(1234):
        for start in range(0, settings.crops, 64):
            batch = torch.stack(
                [crops[i] for i in range(start, min(start + 64, settings.crops))]
            )
            chunks.append(model.g_a(batch.to(device)))
    return torch.cat(chunks)


def train_architectures(architectures: dict, B: Budget, progress: bool = True) -> dict:
    """``{name: (models, histories)}`` for ``{name: model class}``.

    Every model ``cls(N, M)`` takes the transforms ``g_a``, ``g_s`` of the zoo's
    factorized model at its lambda (:func:`zoo_family`, whose sizes ``N``, ``M`` it
    takes), unchanged. Its entropy model
    (for the factorized prior too) starts from scratch and is trained with
    ``train.fit_entropy_model`` on the same latents for the same steps, so the
    architectures differ only in their entropy models. Prints, per architecture, the
    training time or that it came from the cache."""
    settings, base = setup(B), zoo_family(B)
    N, M = sizes(base)
    print(f"{'transforms':24s}: the zoo's factorized models (N={N}, M={M})")
    latents = {
        lmbda: training_latents(model, settings, B.device)
        for lmbda, model in base.items()
    }
    fingerprints = [cache.tensors_fingerprint({"y": y}) for y in latents.values()]
    families = {}
    for name, model_class in architectures.items():

        def train_one(lmbda, name=name, model_class=model_class):
            with seeded(0):
                fresh = model_class(N, M).to(B.device)
            fresh.load_state_dict(transforms(base[lmbda]), strict=False)
            label = f"{name}, lambda={lmbda:g}"
            return fresh, {
                label: train.fit_entropy_model(
                    fresh,
                    latents[lmbda],
                    steps=settings.steps,
                    batch_size=settings.batch_size,
                    progress=progress,
                    description=label,
                )
            }

        start = time.perf_counter()
        models, histories, cached = cache.family(
            lambda model_class=model_class: model_class(N, M),
            dict(
                recipe="entropy model on fixed latents",
                steps=settings.steps,
                batch_size=settings.batch_size,
                latents=fingerprints,
            ),
            base,
            train_one,
            cache.default_cache_dir(),
            B.device,
        )
        seconds = time.perf_counter() - start
        print(
            f"{name:24s}: "
            + (
                "loaded from the cache (trained earlier with the same settings)"
                if cached
                else f"trained in {seconds:.0f} s"
            )
        )
        families[name] = (models, histories)
    return families


def anchor_handicap(factorized_models: dict, B: Budget, images: dict) -> str:
    """How the factorized-prior anchor of :func:`train_architectures` (the zoo's
    factorized transforms with a density retrained from scratch for
    ``setup(B).steps`` steps) compares with the zoo's models themselves on ``images``:
    a ``metrics.bd_summary`` line, positive if the anchor needs more bits."""
    original = zoo_family(B)
    return metrics.bd_summary(
        evaluate.rd_curve(original.values(), images, "the zoo's factorized models"),
        evaluate.rd_curve(factorized_models.values(), images, "the retrained anchor"),
    )
