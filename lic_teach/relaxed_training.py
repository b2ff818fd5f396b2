"""Training an image model with any stand-in for rounding (the quantization chapter).

:class:`Relaxed` wraps a ``FactorizedPrior`` so that, in training mode, its forward pass
replaces rounding with one of ``quantization.RELAXATIONS`` (the rate and the decoder
may get different stand-ins, as in mixed quantization); in eval mode it is the model
itself. It has the model's ``aux_loss`` and ``update``, so ``train.fit`` trains it as it
is. :func:`relaxed_estimate` measures what the training objective believes the rate
and the distortion are, to set beside what the real coder gives (the train-test
mismatch).
"""

from __future__ import annotations

import torch
from torch import nn

from . import data, metrics, quantization


def relaxed_outputs(
    model,
    x: torch.Tensor,
    relaxation: str,
    alpha: float = quantization.SOFT_ROUND_ALPHA,
    seed: int = 0,
) -> dict:
    """``{"x_hat", "likelihoods": {"y"}}`` of a ``FactorizedPrior`` with ``relaxation``
    in place of rounding (around the channel medians)."""
    y = model.g_a(x)
    y_rate, y_decoder = quantization.relax(
        y, relaxation, model.prior.medians_like(y), alpha=alpha, seed=seed
    )
    return {
        "x_hat": model.g_s(y_decoder),
        "likelihoods": {"y": model.prior.likelihood(y_rate)},
    }


class Relaxed(nn.Module):
    """``model`` trained with ``relaxation``: ``soft_round`` sharpens from ``alpha = 1``
    to 16 over ``steps`` training steps, ``universal`` draws a new dither each step."""

    def __init__(self, model: nn.Module, relaxation: str, steps: int = 1):
        super().__init__()
        if relaxation not in quantization.RELAXATIONS:
            raise ValueError(
                f"unknown relaxation {relaxation!r}; choose one of "
                f"{', '.join(quantization.RELAXATIONS)}"
            )
        self.model, self.relaxation, self.steps, self.step = (
            model,
            relaxation,
            int(steps),
            0,
        )

    def forward(self, x):
        if not self.training:
            return self.model(x)
        self.step += 1
        alpha = quantization.soft_round_alpha(self.step, self.steps)
        return relaxed_outputs(
            self.model, x, self.relaxation, alpha=alpha, seed=self.step
        )

    def aux_loss(self):
        return self.model.aux_loss()

    def update(self, force: bool = False) -> bool:
        return self.model.update(force=force)


@torch.no_grad()
def relaxed_estimate(
    model,
    images,
    relaxation: str,
    draws: int = 4,
    alpha: float = quantization.SOFT_ROUND_ALPHA,
) -> dict:
    """``{"bpp", "psnr"}`` that the training objective of ``relaxation`` reports for
    ``images`` (``{name: [3, H, W]}`` with sides divisible by ``model.y_stride``, or a
    list), averaged over ``draws`` samples of its noise or dither and over the images.
    The decoded image is clipped to [0, 1], as the real decoder clips it, so that a
    difference from the real codec is the quantizer's alone."""
    images = data.image_list(images)
    bpp = psnr = 0.0
    device = next(model.parameters()).device
    for x in images:
        x = (x[None] if x.dim() == 3 else x).to(device)
        if x.shape[-1] % model.y_stride or x.shape[-2] % model.y_stride:
            raise ValueError(
                f"image sides must be multiples of {model.y_stride}, "
                f"got {tuple(x.shape[-2:])}"
            )
        for draw in range(draws):
            out = relaxed_outputs(model, x, relaxation, alpha=alpha, seed=draw)
            bpp += float(metrics.bits(out["likelihoods"]["y"])) / (
                x.shape[-2] * x.shape[-1]
            )
            mse = float(((out["x_hat"].clamp(0, 1) - x) ** 2).mean())
            psnr += metrics.psnr_from_mse(mse)
    count = draws * len(images)
    return {"bpp": bpp / count, "psnr": psnr / count}
