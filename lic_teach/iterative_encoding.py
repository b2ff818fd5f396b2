"""Iterative encoding: optimizing the latents of one image (the quantization chapter).

The analysis transform ``g_a`` is amortized: one network maps every image to latents
that are good on average. For one given image, the latents themselves can be optimized
for the rate-distortion cost, with the decoder and the entropy model fixed. Rounding
stops the gradient, so Yang, Bamler and Mandt ("Improving inference for neural image
compression", NeurIPS 2020, sec. 3.3) optimize through stochastic Gumbel annealing
(``quantization.sga``), whose samples become hard roundings as the temperature falls.
The decoder is unchanged: the result is coded and decoded as usual.

:func:`sga_encode` optimizes the one latent of a factorized prior;
:func:`sga_encode_hyperprior` optimizes both ``y`` and the hyper-latent ``z`` of a
(mean-)scale hyperprior, as Yang and Mandt do for their shallow decoders ("Asymmetrically-
powered neural image compression with shallow decoders", ICCV 2023, sec. 3.3), and
:func:`sga_compress` codes the result into the model's own bitstream.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from . import bitstream, metrics, quantization
from .data import as_batch, pad_to


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


# The paper's schedule for the hyperprior (Yang and Mandt 2023, app.; Yang et al. 2020):
# 3000 Adam steps at 5e-3, a tenth of that for the last 10%, and
# tau(t) = min(0.5, 0.5 exp(-5e-4 (t - 200))).
PAPER_SGA_STEPS, PAPER_SGA_LR, PAPER_TAU_DECAY, PAPER_TAU_WARMUP = 3000, 5e-3, 5e-4, 200


def paper_temperature(step: int, steps: int = PAPER_SGA_STEPS) -> float:
    """The paper's temperature at ``step`` of a run of ``steps``, its clock stretched so
    that a shorter run passes through the same temperatures (0.5 down to 0.12)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = step * PAPER_SGA_STEPS / steps
    return quantization.sga_temperature(t, decay=PAPER_TAU_DECAY, warmup=PAPER_TAU_WARMUP)


def _hyperprior_cost(model, y, z, tau=None, generator=None):
    """``(bits, x_hat)`` of latents ``y`` and ``z``: SGA samples at temperature ``tau``, or the
    coder's hard rounding (``tau=None``), of ``z`` around the medians and of ``y`` around
    the means predicted from ``z``'s sample."""
    z_medians = model.hyperprior.medians_like(z)
    if tau is None:
        z_hat = quantization.hard_round(z, z_medians)
    else:
        z_hat = quantization.sga(z, tau, z_medians, generator=generator)
    scales, means = model.gaussian_parameters(z_hat)
    y_hat = (quantization.hard_round(y, means) if tau is None
             else quantization.sga(y, tau, means, generator=generator))
    bits = metrics.bits(model.hyperprior.likelihood(z_hat)) + metrics.bits(
        model.conditional.likelihood(y_hat, scales, means))
    return bits, model.g_s(y_hat)


def sga_encode_hyperprior(model, x: torch.Tensor, lmbda: float, *, steps: int = PAPER_SGA_STEPS,
                          lr: float = PAPER_SGA_LR, seed: int = 0, progress: bool = True):
    """Latents ``(y, z)`` of a hyperprior model (``ScaleHyperprior`` and its subclasses)
    for image ``x`` ``[1, 3, H, W]`` (any size), optimized from ``g_a`` and ``h_a`` for
    ``lambda * 255^2 * MSE + bpp`` by SGA of both (Yang and Mandt 2023): Adam at ``lr``,
    a tenth of it for the last tenth of the steps, and :func:`paper_temperature`.

    Returns ``(y, z, history)``: the continuous latents (:func:`sga_compress` rounds them
    as the coder does) and, per step, ``tau`` and the ``loss``, ``bpp`` and ``psnr`` of
    hard rounding (step 0: the amortized encoder's)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = as_batch(x).to(next(model.parameters()).device)
    height, width = x.shape[-2:]
    padded = pad_to(x, model.downsampling)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)

    def cost(y, z, tau):
        bits, x_hat = _hyperprior_cost(model, y, z, tau, generator)
        bpp = bits / (height * width)
        x_hat = x_hat[..., :height, :width]
        mse = ((x_hat if tau is not None else x_hat.clamp(0, 1)) - x).square().mean()   # as decoded
        return lmbda * 255 ** 2 * mse + bpp, bpp, mse

    try:
        with torch.no_grad():
            y = model.g_a(padded)
            z = model.hyper_analysis(y)
        y, z = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([y, z], lr=lr)
        history = []
        for step in tqdm(range(steps + 1), desc="SGA encoding (y and z)", disable=not progress, leave=False):
            with torch.no_grad():
                loss, bpp, mse = cost(y, z, None)
            tau = paper_temperature(step, steps)
            history.append({"step": step, "tau": tau, "loss": float(loss), "bpp": float(bpp),
                            "psnr": metrics.psnr_from_mse(float(mse))})
            if step == steps:
                break
            if step == int(0.9 * steps):
                for group in optimizer.param_groups:
                    group["lr"] = lr / 10
            optimizer.zero_grad()
            cost(y, z, tau)[0].backward()
            optimizer.step()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return y.detach(), z.detach(), history


def compress_hyper_latents(model, y: torch.Tensor, z: torch.Tensor, height: int, width: int,
                           coder: str = "ans") -> bytes:
    """The bitstream ``model.compress`` would write for an image ``height x width`` had its
    encoder given latents ``y`` and ``z`` (rounded here as its coder rounds them):
    ``model.decompress`` decodes it unchanged."""
    expected = model.latent_size(height, width)
    y_expected = tuple(side * model.downsampling // model.y_stride for side in expected)
    if tuple(z.shape[-2:]) != expected or z.shape[0] != 1 or tuple(y.shape[-2:]) != y_expected or y.shape[0] != 1:
        raise ValueError(f"latents {tuple(y.shape)} and {tuple(z.shape)} do not belong to a {height}x{width} image "
                         f"(expected [1, M, {y_expected[0]}, {y_expected[1]}] and [1, N, {expected[0]}, {expected[1]}])")
    model.update()
    with torch.no_grad():
        z_strings = model.hyperprior.compress(z, coder)
        scales, means = model.gaussian_parameters(model.hyperprior.decompress(z_strings, expected, coder))
        strings = model.conditional.compress(y, scales, means, coder) + z_strings
    return bitstream.pack(model.bitstream_header(height, width, coder), strings)


def sga_compress(model, x: torch.Tensor, lmbda: float, *, steps: int = PAPER_SGA_STEPS,
                 lr: float = PAPER_SGA_LR, seed: int = 0, coder: str = "ans", progress: bool = False) -> bytes:
    """``model.compress(x)`` with the latents found by :func:`sga_encode_hyperprior`: the
    same decoder and bitstream, a slower and better encoder (``evaluate.codec_point``'s
    ``encode``)."""
    x = as_batch(x)
    y, z, _ = sga_encode_hyperprior(model, x, lmbda, steps=steps, lr=lr, seed=seed, progress=progress)
    return compress_hyper_latents(model, y, z, x.shape[-2], x.shape[-1], coder)


def amortized_and_sga(model, images, lmbda: float, *, steps: int = PAPER_SGA_STEPS, lr: float = PAPER_SGA_LR,
                      seed: int = 0, progress: bool = True) -> dict:
    """What iterative encoding buys a hyperprior ``model`` on ``images`` (``{name: [3, H, W]}``
    or a list), from real bitstreams: ``{"amortized": point, "sga": point}``, each point the
    mean ``bpp``, ``psnr`` and R-D ``cost`` (``lambda * 255^2 * MSE + bpp``) over the images.
    The difference of the costs is a lower bound on the model's inference gap (Yang and
    Mandt 2023, sec. 3.1): SGA is a better encoder than ``g_a``, not the best one."""
    from .data import image_list
    model.eval()
    points = {"amortized": [], "sga": []}
    device = next(model.parameters()).device
    for x in tqdm(image_list(images), desc="amortized and SGA encoding", disable=not progress, leave=False):
        x = x.to(device)
        pixels = x.shape[-2] * x.shape[-1]
        for label, data in (("amortized", model.compress(x)),
                            ("sga", sga_compress(model, x, lmbda, steps=steps, lr=lr, seed=seed))):
            error = float((model.decompress(data) - x).square().mean())
            points[label].append((8 * len(data) / pixels, metrics.psnr_from_mse(error),
                                  lmbda * 255 ** 2 * error + 8 * len(data) / pixels))
    return {label: dict(zip(("bpp", "psnr", "cost"), torch.tensor(rows, dtype=torch.float64).mean(0).tolist()))
            for label, rows in points.items()}
