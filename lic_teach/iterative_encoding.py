"""Iterative encoding: optimizing the latents of one image (the quantization chapter).

The analysis transform ``g_a`` is amortized: one network maps every image to latents
that are good on average. For one given image, the latents themselves can be optimized
for the rate-distortion cost, with the decoder and the entropy model fixed. Rounding
stops the gradient, so Yang, Bamler and Mandt ("Improving inference for neural image
compression", NeurIPS 2020, sec. 3.3) optimize through stochastic Gumbel annealing
(``quantization.sga``), whose samples become hard roundings as the temperature falls.
The decoder is unchanged: the result is coded and decoded as usual.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from . import metrics, quantization


def _cost(model, x, y_hat, lmbda):
    """``(lambda * 255^2 * MSE + bpp, bpp, mse)`` of latents ``y_hat`` for image ``x``."""
    height, width = x.shape[-2:]
    x_hat = model.g_s(y_hat)[..., :height, :width]
    bpp = metrics.bits(model.prior.likelihood(y_hat)) / (height * width)
    mse = ((x_hat - x) ** 2).mean()
    return lmbda * 255 ** 2 * mse + bpp, bpp, mse


def sga_encode(model, x: torch.Tensor, lmbda: float, *, steps: int = 500, lr: float = 5e-3,
               seed: int = 0, progress: bool = True) -> tuple[torch.Tensor, list[dict]]:
    """Latents for image ``x`` ``[1, 3, H, W]`` (sides divisible by ``model.y_stride``) of a
    ``FactorizedPrior``, optimized for ``lambda * 255^2 * MSE + bpp`` with SGA, starting
    from ``g_a(x)``. The temperature stays at 0.5 for the first fifth of the steps and
    then falls exponentially to 0.05 (Yang et al.'s schedule, shortened).

    Returns ``(y_hat, history)``: the final latents rounded around the medians (ready for
    ``rdoq.compress_latents``), and per step the ``tau`` used and the
    ``loss``, ``bpp`` and ``psnr`` that hard rounding of the current latents would give
    (so step 0 is the amortized encoder's result)."""
    if x.dim() != 4 or x.shape[-1] % model.y_stride or x.shape[-2] % model.y_stride:
        raise ValueError(f"expected one image [1, 3, H, W] with sides divisible by {model.y_stride}, "
                         f"got {tuple(x.shape)}")
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    warmup = steps // 5
    decay = math.log(10) / max(steps - warmup, 1)
    try:
        with torch.no_grad():
            y = model.g_a(x).clone()
        medians = model.prior.medians_like(y)
        y.requires_grad_(True)
        optimizer = torch.optim.Adam([y], lr=lr)
        history = []
        for step in tqdm(range(steps + 1), desc="SGA encoding", disable=not progress, leave=False):
            with torch.no_grad():
                loss, bpp, mse = _cost(model, x, quantization.hard_round(y, medians), lmbda)
            tau = quantization.sga_temperature(step, decay=decay, warmup=warmup)
            history.append({"step": step, "tau": tau, "loss": float(loss), "bpp": float(bpp),
                            "psnr": metrics.psnr_from_mse(float(mse))})
            if step == steps:
                break
            relaxed = quantization.sga(y, tau, medians, generator=generator)
            optimizer.zero_grad()
            _cost(model, x, relaxed, lmbda)[0].backward()
            optimizer.step()
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    return quantization.hard_round(y.detach(), medians), history
