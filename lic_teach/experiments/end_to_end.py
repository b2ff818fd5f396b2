"""The end-to-end chapter's models, which the later chapters start from: a family of
factorized-prior models, one per lambda (:func:`factorized_family`), the held-out test
photos, and short fine-tunings of copies of those models (:func:`finetuned_family`)."""

from __future__ import annotations

import copy

import numpy as np

from .. import cache, data, train
from ..budget import Budget
from ..models import FactorizedPrior


def lambdas(B: Budget) -> tuple[float, ...]:
    """``B.rd_models`` lambdas from 0.002 to 0.08, evenly spaced in log."""
    return tuple(np.geomspace(0.002, 0.08, B.rd_models).round(4).tolist())


def training_crops(patch_size: int, count: int):
    """``(dataset, name)``: ``count`` random ``patch_size`` crops of the training
    photos, and a name for them in cache settings."""
    photos = list(data.sample_images("train").values())
    return (
        data.RandomCropDataset(photos, patch_size, length=count),
        f"sample_images('train'), random {patch_size}x{patch_size} crops",
    )


def factorized_family(B: Budget, progress: bool = True):
    """The end-to-end chapter's models: ``train.fit_family`` of ``FactorizedPrior(B.N,
    B.M)`` at :func:`lambdas`, on random crops of the training photos, kept in the
    cache. Returns ``(models, histories, from_cache)``."""
    crops, key = training_crops(B.patch_size, B.train_steps * B.batch_size)
    return train.fit_family(
        lambda: FactorizedPrior(B.N, B.M),
        crops,
        lambdas(B),
        steps=B.train_steps,
        batch_size=B.batch_size,
        device=B.device,
        name="factorized",
        progress=progress,
        cache_dir=cache.default_cache_dir(),
        cache_key=key,
    )


def held_out_images(B: Budget) -> dict:
    """The test photos (never trained on) at the budget's ``eval_size`` and
    ``eval_images``."""
    return data.held_out(B.eval_size, B.eval_images)


def finetune_steps(B: Budget) -> int:
    """Steps of the short fine-tunings of the quantization and decoder-training
    chapters: a fifteenth of the end-to-end chapter's base steps (the quantization
    chapter's 15 fit in its time)."""
    return max(1, B.train_steps // 15)


def finetuned_family(B: Budget, recipe: str, label: str, tune, progress: bool = True):
    """``(models, histories)``: a copy of each of the end-to-end chapter's models tuned
    in place by ``tune(model, crops, **options) -> history``, kept in the cache under
    ``recipe``. ``options`` are what every fine-tuning shares, as ``train.fit`` names
    them: ``steps`` (:func:`finetune_steps`), the model's ``lmbda``, the budget's
    ``batch_size`` and ``device``, ``progress`` and the ``description`` of its bar."""
    base, _, _ = factorized_family(B, progress)
    crops, key = training_crops(B.patch_size, B.train_steps * B.batch_size)

    def train_one(lmbda):
        tuned = copy.deepcopy(base[lmbda])
        name = f"{label}, lambda={lmbda:g}"
        options = dict(
            steps=finetune_steps(B),
            lmbda=lmbda,
            batch_size=B.batch_size,
            device=B.device,
            progress=progress,
            description=name,
        )
        return tuned, {name: tune(tuned, crops, **options)}

    settings = dict(
        recipe=recipe,
        label=label,
        steps=finetune_steps(B),
        batch_size=B.batch_size,
        data=key,
        start=[cache.tensors_fingerprint(m.state_dict()) for m in base.values()],
        # the code of the fine-tuning itself, which lives where ``tune`` is defined
        tune=cache.function_fingerprint(tune),
    )
    models, histories, _ = cache.family(
        lambda: FactorizedPrior(B.N, B.M),
        settings,
        base,
        train_one,
        cache.default_cache_dir(),
        B.device,
    )
    return models, histories
