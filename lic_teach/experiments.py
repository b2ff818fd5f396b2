"""The training that the end-to-end, hyperprior and context-model chapters share, so
that their rate-distortion curves compare like with like.

The end-to-end chapter trains a family of factorized-prior models
(:func:`factorized_family`). The hyperprior and context-model chapters give every
architecture those models' transforms and train its entropy model alone, on the same
latents for the same steps (:func:`train_architectures`).
Everything is trained once: the weights are cached (``cache.family``) and reused
while the settings and the code stay the same.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import cache, data, quantization, rdoq, train, trellis
from .budget import Budget
from .models import FactorizedPrior
from .relaxed_training import Relaxed
from .seeding import seeded


@dataclass(frozen=True)
class Setup:
    """How each architecture's entropy model is trained (see :func:`setup`)."""

    patch_size: int
    crops: int
    batch_size: int
    steps: int
    lambdas: tuple[float, ...]

    def __str__(self) -> str:
        return (f"the end-to-end chapter's transforms at each of the lambdas "
                f"{', '.join(f'{l:g}' for l in self.lambdas)}; "
                f"each entropy model trained from scratch for {self.steps} steps of {self.batch_size} "
                f"on the latents of {self.crops} random {self.patch_size}x{self.patch_size} crops")


def setup(B: Budget) -> Setup:
    """The end-to-end chapter's lambdas; crops of 256x256, so that the hyper-latent ``z`` (1/64 of
    the image side) has 4x4 positions (at 128x128 every position of a 2x2 ``z`` lies on
    the border, and the hyperpriors measured worse than the factorized prior); a
    quarter of the end-to-end chapter's base steps, each on the latents of 4 crops."""
    steps, batch = max(1, B.train_steps // 4), 4
    return Setup(max(B.patch_size, 256), min(512, steps * batch), batch, steps, lambdas(B))


def lambdas(B: Budget) -> tuple[float, ...]:
    """``B.rd_models`` lambdas from 0.002 to 0.08, evenly spaced in log."""
    return tuple(np.geomspace(0.002, 0.08, B.rd_models).round(4).tolist())


def _crops(patch_size: int, count: int):
    photos = list(data.sample_images("train").values())
    return (data.RandomCropDataset(photos, patch_size, length=count),
            f"sample_images('train'), random {patch_size}x{patch_size} crops")


def factorized_family(B: Budget, progress: bool = True):
    """The end-to-end chapter's models: ``train.fit_family`` of ``FactorizedPrior(B.N, B.M)`` at
    :func:`lambdas`, on random crops of the training photos, kept in the cache.
    Returns ``(models, histories, from_cache)``."""
    crops, key = _crops(B.patch_size, B.train_steps * B.batch_size)
    return train.fit_family(lambda: FactorizedPrior(B.N, B.M), crops, lambdas(B), steps=B.train_steps,
                            batch_size=B.batch_size, device=B.device, name="factorized",
                            progress=progress, cache_dir=cache.default_cache_dir(), cache_key=key)


def transforms(model) -> dict:
    """The analysis and synthesis transforms' weights (``g_a.*``, ``g_s.*``) of a model."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(("g_a.", "g_s."))}


@torch.no_grad()
def training_latents(model, settings: Setup, device) -> torch.Tensor:
    """``g_a`` of ``settings.crops`` random crops of the training photos (the same crops
    for every call: the generator is seeded)."""
    crops, _ = _crops(settings.patch_size, settings.crops)
    chunks = []
    with seeded(1234):
        for start in range(0, settings.crops, 64):
            batch = torch.stack([crops[i] for i in range(start, min(start + 64, settings.crops))])
            chunks.append(model.g_a(batch.to(device)))
    return torch.cat(chunks)


def train_architectures(architectures: dict, B: Budget, progress: bool = True) -> dict:
    """``{name: (models, histories)}`` for ``{name: model class}``.

    Every model ``cls(B.N, B.M)`` takes the transforms ``g_a``, ``g_s`` of the end-to-end chapter's
    factorized model at its lambda, unchanged. Its entropy model (for the factorized
    prior too) starts from scratch and is trained with ``train.fit_entropy_model`` on
    the same latents for the same steps, so the architectures differ only in their
    entropy models. Prints, per architecture, the training time or that it came from
    the cache."""
    settings = setup(B)
    start = time.perf_counter()
    base, _, cached = factorized_family(B, progress)
    print(f"{'end-to-end models':24s}: " + ("loaded from the cache" if cached
                                           else f"trained in {time.perf_counter() - start:.0f} s"))
    latents = {lmbda: training_latents(model, settings, B.device) for lmbda, model in base.items()}
    fingerprints = [cache.tensors_fingerprint({"y": y}) for y in latents.values()]
    families = {}
    for name, model_class in architectures.items():
        def train_one(lmbda, name=name, model_class=model_class):
            with seeded(0):
                fresh = model_class(B.N, B.M).to(B.device)
            fresh.load_state_dict(transforms(base[lmbda]), strict=False)
            label = f"{name}, lambda={lmbda:g}"
            return fresh, {label: train.fit_entropy_model(fresh, latents[lmbda], steps=settings.steps,
                                                          batch_size=settings.batch_size, progress=progress,
                                                          description=label)}

        start = time.perf_counter()
        models, histories, cached = cache.family(
            lambda: model_class(B.N, B.M), dict(recipe="entropy model on fixed latents", steps=settings.steps,
                                                batch_size=settings.batch_size, latents=fingerprints),
            base, train_one, cache.default_cache_dir(), B.device)
        seconds = time.perf_counter() - start
        print(f"{name:24s}: " + ("loaded from the cache (trained earlier with the same settings)"
                                 if cached else f"trained in {seconds:.0f} s"))
        families[name] = (models, histories)
    return families


def held_out_images(B: Budget) -> dict:
    """The test photos (never trained on), centre-cropped to ``B.eval_size`` if set,
    at most ``B.eval_images`` of them."""
    images = data.sample_images("test")
    if B.eval_size:
        images = {name: data.center_crop(x, B.eval_size) for name, x in images.items()}
    return dict(list(images.items())[:B.eval_images])


def finetune_steps(B: Budget) -> int:
    """Steps of the short fine-tunings of the quantization and decoder-training chapters:
    a tenth of the end-to-end chapter's base steps."""
    return max(1, B.train_steps // 10)


def _finetuned_family(B: Budget, recipe: str, label: str, tune, progress: bool):
    """``(models, histories)``: a copy of each of the end-to-end chapter's models tuned in place by
    ``tune(model, lmbda, crops, label) -> history``, kept in the cache under ``recipe``."""
    base, _, _ = factorized_family(B, progress)
    crops, key = _crops(B.patch_size, B.train_steps * B.batch_size)

    def train_one(lmbda):
        tuned = copy.deepcopy(base[lmbda])
        name = f"{label}, lambda={lmbda:g}"
        return tuned, {name: tune(tuned, lmbda, crops, name)}

    settings = dict(recipe=recipe, label=label, steps=finetune_steps(B), batch_size=B.batch_size,
                    data=key, start=[cache.tensors_fingerprint(m.state_dict()) for m in base.values()])
    models, histories, _ = cache.family(lambda: FactorizedPrior(B.N, B.M), settings, base, train_one,
                                        cache.default_cache_dir(), B.device)
    return models, histories


def relaxation_family(relaxations, B: Budget, progress: bool = True) -> dict:
    """``{relaxation: (models, histories)}``: the end-to-end chapter's models, each fine-tuned at its
    lambda for :func:`finetune_steps` steps (lr 3e-4) with ``relaxation`` in place of
    rounding (``relaxed_training.Relaxed``), on the end-to-end chapter's training crops. ``"noise"``
    is the control: the same extra steps with the relaxation the end-to-end chapter trained with."""
    steps = finetune_steps(B)
    families = {}
    for relaxation in relaxations:
        def tune(model, lmbda, crops, label, relaxation=relaxation):
            return train.fit(Relaxed(model, relaxation, steps), crops, steps=steps, lmbda=lmbda, lr=3e-4,
                             batch_size=B.batch_size, seed=2, device=B.device, progress=progress,
                             description=label)

        families[relaxation] = _finetuned_family(B, "relaxation fine-tuning", relaxation, tune, progress)
    return families


def channel_weights(model, lmbda: float, B: Budget) -> torch.Tensor:
    """``rdoq.distortion_weights`` of ``model``, its channel gains
    measured on 8 random training crops of ``max(B.patch_size, 128)`` pixels."""
    crops, _ = _crops(max(B.patch_size, 128), 8)
    with seeded(4321):
        x = torch.stack([crops[i] for i in range(8)]).to(B.device)
    with torch.no_grad():
        y_hat = model.prior.hard_round(model.g_a(x))
    return rdoq.distortion_weights(rdoq.channel_gains(model, y_hat), lmbda)


def quantizers(model, weights: torch.Tensor) -> dict:
    """``{name: y -> y_hat}``: the latents a decoder may be retrained on (the
    decoder-training chapter)."""
    return {"rounding": model.prior.hard_round,
            "noise (control)": quantization.uniform_noise,
            "RDOQ": lambda y: rdoq.rdo_round(model, y, weights),
            "trellis": lambda y: trellis.trellis_quantize(model, y, weights)[0]}


def decoder_family(names, B: Budget, progress: bool = True) -> dict:
    """``{name: (models, histories)}``: the end-to-end chapter's models with ``g_s`` fine-tuned for
    :func:`finetune_steps` steps (``train.fit_synthesis``, lr 1e-4) on the latents of
    :func:`quantizers` ``[name]``, the encoder and the prior frozen."""
    base, _, _ = factorized_family(B, progress)
    weights = {lmbda: channel_weights(model, lmbda, B) for lmbda, model in base.items()}
    families = {}
    for name in names:
        def tune(model, lmbda, crops, label, name=name):
            return train.fit_synthesis(model, crops, quantizers(model, weights[lmbda])[name], steps=finetune_steps(B),
                                       lmbda=lmbda, batch_size=B.batch_size, seed=3, device=B.device,
                                       progress=progress, description=label)

        families[name] = _finetuned_family(B, "decoder fine-tuning", f"decoder on {name}", tune, progress)
    return families
