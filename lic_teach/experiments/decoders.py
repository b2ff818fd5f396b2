"""The decoder-training chapter's fine-tunings: ``g_s`` of the zoo's factorized models
retrained on the latents an encoder-side quantizer chooses (rounding, RDOQ, the
trellis), beside a control trained on noisy latents."""

from __future__ import annotations

import torch

from .. import quantization, rdoq, train, trellis
from ..budget import Budget
from ..seeding import seeded
from .end_to_end import finetuned_family, training_crops, zoo_family


def channel_weights(model, lmbda: float, B: Budget) -> torch.Tensor:
    """``rdoq.distortion_weights`` of ``model``, its channel gains
    measured on 8 random training crops of ``max(B.patch_size, 128)`` pixels."""
    crops, _ = training_crops(max(B.patch_size, 128), 8)
    with seeded(4321):
        x = torch.stack([crops[i] for i in range(8)]).to(B.device)
    with torch.no_grad():
        y_hat = model.prior.hard_round(model.g_a(x))
    return rdoq.distortion_weights(rdoq.channel_gains(model, y_hat), lmbda)


def quantizers(model, weights: torch.Tensor) -> dict:
    """``{name: y -> y_hat}``: the latents a decoder may be retrained on (the
    decoder-training chapter)."""
    return {
        "rounding": model.prior.hard_round,
        "noise (control)": quantization.uniform_noise,
        "RDOQ": lambda y: rdoq.rdo_round(model, y, weights),
        "trellis": lambda y: trellis.trellis_quantize(model, y, weights)[0],
    }


def decoder_family(names, B: Budget, progress: bool = True) -> dict:
    """``{name: (models, histories)}``: the zoo's factorized models with ``g_s``
    fine-tuned for :func:`finetune_steps` steps (``train.fit_synthesis``, lr 1e-4) on
    the latents of :func:`quantizers` ``[name]``, the encoder and the prior frozen."""
    base = zoo_family(B)
    weights = {lmbda: channel_weights(model, lmbda, B) for lmbda, model in base.items()}
    families = {}
    for name in names:

        def tune(model, crops, name=name, **options):
            quantize = quantizers(model, weights[options["lmbda"]])[name]
            return train.fit_synthesis(model, crops, quantize, seed=3, **options)

        families[name] = finetuned_family(
            B, "decoder fine-tuning", f"decoder on {name}", tune, progress
        )
    return families
