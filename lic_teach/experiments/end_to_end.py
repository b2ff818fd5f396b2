"""The end-to-end chapter's models and the ones the later chapters start from: the
chapter's family of factorized-prior models trained live, one per lambda
(:func:`factorized_family`); the zoo's factorized models, which the later chapters
start from instead of training that family again (:func:`zoo_family`); the held-out
test photos; and short fine-tunings of copies of the zoo's models
(:func:`finetuned_family`)."""

from __future__ import annotations

import copy

import numpy as np

from .. import cache, data, train, zoo
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


def zoo_family(B: Budget, family: str = "factorized") -> dict:
    """``{lambda: model}``: the shipped zoo's ``family`` models (``zoo.load``) that the
    later chapters start from, so that none of them trains the end-to-end chapter's
    family again (on Colab each notebook runs on a fresh machine). ``B.rd_models`` of
    its qualities, evenly spread from the lowest rate to the highest (all of them if it
    has no more), on ``B.device``, ready to code."""
    lambdas = {
        m["quality"]: m["lambda"] for m in zoo.manifests() if m["family"] == family
    }
    if not lambdas:
        raise ValueError(f"the shipped zoo has no {family} models")
    qualities = sorted(lambdas)
    picks = np.linspace(0, len(qualities) - 1, min(B.rd_models, len(qualities)))
    chosen = [qualities[int(round(i))] for i in picks]
    return {
        lambdas[quality]: zoo.load(family, quality).to(B.device) for quality in chosen
    }


def sizes(models: dict) -> tuple[int, ...]:
    """The hyper-parameters (``N``, ``M``) of a family's models, one set for all."""
    (found,) = {model.hyperparameters() for model in models.values()}
    return found


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
    """``(models, histories)``: a copy of each of the zoo's factorized models
    (:func:`zoo_family`) tuned in place by ``tune(model, crops, **options) ->
    history``, kept in the cache under ``recipe``. ``options`` are what every
    fine-tuning shares, as ``train.fit`` names them: ``steps``
    (:func:`finetune_steps`), the model's ``lmbda``, the budget's ``batch_size`` and
    ``device``, ``progress`` and the ``description`` of its bar."""
    base = zoo_family(B)
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
        lambda: FactorizedPrior(*sizes(base)),
        settings,
        base,
        train_one,
        cache.default_cache_dir(),
        B.device,
    )
    return models, histories
