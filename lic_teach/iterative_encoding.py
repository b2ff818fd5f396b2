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
(mean-)scale hyperprior, as Yang and Mandt do for their shallow decoders
("Asymmetrically-powered neural image compression with shallow decoders", ICCV 2023,
sec. 3.3). Both keep one contract: an image of any size, padded as ``compress`` pads
it; the cost ``lambda * 255^2 * MSE + bpp`` (``train.rd_loss``) of the image
at its own size; a history whose step 0 is the amortized encoder's result, measured on
the latents rounded as the coder rounds them and the image as decoded (clipped to
[0, 1]); and the one loop, ``train.train_steps``, given a ``step_loss`` with the model
``train.frozen`` around it. The latents found are coded by the model's own
``compress_latents`` (:func:`sga_compress`), which the unchanged decoder reads.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from tqdm.auto import tqdm

from . import evaluate, metrics, quantization, seeding, train
from .data import as_batch, image_list, pad_to
from .rdoq import check_factorized


def _factorized_cost(model, y, tau=None, generator=None):
    """``(bits, x_hat)`` of the latent ``y`` of a factorized prior: an SGA sample at
    temperature ``tau``, or the coder's hard rounding (``tau=None``), around the
    channel medians."""
    medians = model.prior.medians_like(y)
    if tau is None:
        y_hat = quantization.hard_round(y, medians)
    else:
        y_hat = quantization.sga(y, tau, medians, generator=generator)
    return metrics.bits(model.prior.likelihood(y_hat)), model.g_s(y_hat)


def _hyperprior_cost(model, y, z, tau=None, generator=None):
    """``(bits, x_hat)`` of latents ``y`` and ``z``: SGA samples at temperature ``tau``,
    or the coder's hard rounding (``tau=None``), of ``z`` around the medians and of
    ``y`` around the means predicted from ``z``'s sample."""
    z_medians = model.hyperprior.medians_like(z)
    if tau is None:
        z_hat = quantization.hard_round(z, z_medians)
    else:
        z_hat = quantization.sga(z, tau, z_medians, generator=generator)
    scales, means = model.gaussian_parameters(z_hat)
    y_hat = (
        quantization.hard_round(y, means)
        if tau is None
        else quantization.sga(y, tau, means, generator=generator)
    )
    bits = metrics.bits(model.hyperprior.likelihood(z_hat)) + metrics.bits(
        model.conditional.likelihood(y_hat, scales, means)
    )
    return bits, model.g_s(y_hat)


def sga_steps(model, x, lmbda, latents, cost, temperature, generator):
    """``(step_loss, measure)`` for ``train.train_steps``: at its ``t``-th call (from
    0) ``step_loss`` returns the cost of an SGA sample of ``latents`` at temperature
    ``temperature(t)``, and as the history's entry ``measure(t)``: ``tau``, and the
    ``loss``, ``bpp``, ``mse`` and ``psnr`` of the latents rounded as the coder rounds
    them, the image clipped as decoded. ``cost(model, *latents, tau, generator)`` gives
    ``(bits, x_hat)`` of the padded image; ``x`` ``[1, 3, H, W]`` is the unpadded one.
    """
    height, width = x.shape[-2:]

    def cost_of(tau):
        bits, x_hat = cost(model, *latents, tau, generator)
        x_hat = x_hat[..., :height, :width]
        if tau is None:
            x_hat = x_hat.clamp(0, 1)
        mse = (x_hat - x).square().mean()
        bpp = bits / (height * width)
        return train.rd_loss(lmbda, mse, bpp), bpp, mse

    def measure(step):
        with torch.no_grad():
            loss, bpp, mse = cost_of(None)
        return {
            "step": step,
            "tau": temperature(step),
            "loss": float(loss),
            "bpp": float(bpp),
            "mse": float(mse),
            "psnr": metrics.psnr_from_mse(float(mse)),
        }

    clock = itertools.count()

    def step_loss():
        entry = measure(next(clock))
        return cost_of(entry["tau"])[0], entry

    return step_loss, measure


def _sga(model, x, lmbda, cost, temperature, *, steps, lr, decay_at, seed, progress):
    """``(latents, history)``: ``model.analysis`` of image ``x`` (any size, padded),
    optimized by ``steps`` Adam steps of :func:`sga_steps` at ``lr`` (a tenth of it
    after ``decay_at``, ``train.learning_rate``), the temperature ``temperature(t,
    steps)``; the model frozen. The history has ``steps + 1`` entries: before each
    step and after the last."""
    x = as_batch(x).to(next(model.parameters()).device)
    generator = seeding.generator(x.device, seed)
    with torch.no_grad():
        found = model.analysis(pad_to(x, model.downsampling))
    latents = [t.clone().requires_grad_(True) for t in found.values()]
    step_loss, measure = sga_steps(
        model, x, lmbda, latents, cost, lambda t: temperature(t, steps), generator
    )
    with train.frozen(model.parameters()):
        history = train.train_steps(
            step_loss,
            latents,
            steps=steps,
            lr=lr,
            decay_at=decay_at,
            progress=progress,
            description=f"SGA encoding ({', '.join(found)})",
        )
        history.append({**history[-1], **measure(steps)})  # the latents found
    return dict(zip(found, (t.detach() for t in latents))), history


def falling_temperature(step: int, steps: int) -> float:
    """Yang et al.'s schedule shortened to a run of ``steps``: 0.5 for the first fifth,
    then falling exponentially to 0.05 at the last step."""
    warmup = steps // 5
    decay = math.log(10) / max(steps - warmup, 1)
    return quantization.sga_temperature(step, decay=decay, warmup=warmup)


def sga_encode(
    model,
    x: torch.Tensor,
    lmbda: float,
    *,
    steps: int = 500,
    lr: float = 5e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict]]:
    """Latents for image ``x`` ``[1, 3, H, W]`` (any size) of a ``FactorizedPrior``,
    optimized with SGA for ``lambda * 255^2 * MSE + bpp``, starting from ``g_a(x)``:
    Adam at ``lr`` and :func:`falling_temperature`.

    Returns ``(y_hat, history)``: the final latents rounded around the medians (ready
    for ``rdoq.compress_latents``), and per step the ``tau`` used and the ``loss``,
    ``bpp`` and ``psnr`` that hard rounding of the current latents would give (so step 0
    is the amortized encoder's result)."""
    check_factorized(model)
    latents, history = _sga(
        model,
        x,
        lmbda,
        _factorized_cost,
        falling_temperature,
        steps=steps,
        lr=lr,
        decay_at=None,
        seed=seed,
        progress=progress,
    )
    return model.prior.hard_round(latents["y"]), history


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
    return quantization.sga_temperature(
        t, decay=PAPER_TAU_DECAY, warmup=PAPER_TAU_WARMUP
    )


def sga_encode_hyperprior(
    model,
    x: torch.Tensor,
    lmbda: float,
    *,
    steps: int = PAPER_SGA_STEPS,
    lr: float = PAPER_SGA_LR,
    seed: int = 0,
    progress: bool = True,
):
    """Latents ``(y, z)`` of a hyperprior model (``ScaleHyperprior`` and its subclasses)
    for image ``x`` ``[1, 3, H, W]`` (any size), optimized from ``g_a`` and ``h_a`` for
    ``lambda * 255^2 * MSE + bpp`` by SGA of both (Yang and Mandt 2023): Adam at ``lr``,
    a tenth of it for the last tenth of the steps (``train.DECAY_AT``), and
    :func:`paper_temperature`.

    Returns ``(y, z, history)``: the continuous latents (``model.compress_latents``
    rounds them as the coder does) and, per step, ``tau`` and the ``loss``, ``bpp`` and
    ``psnr`` of hard rounding (step 0: the amortized encoder's)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    latents, history = _sga(
        model,
        x,
        lmbda,
        _hyperprior_cost,
        paper_temperature,
        steps=steps,
        lr=lr,
        decay_at=train.DECAY_AT,
        seed=seed,
        progress=progress,
    )
    return latents["y"], latents["z"], history


def sga_compress(model, x: torch.Tensor, lmbda: float, coder: str = "ans", **sga):
    """``model.compress(x)`` with the latents found by :func:`sga_encode_hyperprior`
    (``sga``: its ``steps``, ``lr``, ``seed``, ``progress``; no progress bar unless
    asked): the same decoder and bitstream (``model.compress_latents``), a slower and
    better encoder."""
    x = as_batch(x)
    y, z, _ = sga_encode_hyperprior(model, x, lmbda, **{"progress": False, **sga})
    return model.compress_latents({"y": y, "z": z}, x.shape[-2], x.shape[-1], coder)


def amortized_and_sga(
    model,
    images,
    lmbda: float,
    *,
    steps: int = PAPER_SGA_STEPS,
    lr: float = PAPER_SGA_LR,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """What iterative encoding buys a hyperprior ``model`` on ``images`` (``{name: [3,
    H, W]}`` or a list), from real bitstreams: ``{"amortized": point, "sga": point}``,
    each point the mean ``bpp``, ``psnr`` and R-D ``cost`` (:func:`train.rd_loss` of the
    image's MSE and bpp) over the images, each image measured by the one measurement,
    :func:`evaluate.measure`. The difference of the costs is a lower bound on the
    model's inference gap (Yang and Mandt 2023, sec. 3.1): SGA is a better encoder than
    ``g_a``, not the best one."""
    model.eval()
    encoders = {
        "amortized": model.compress,
        "sga": functools.partial(
            sga_compress, model, lmbda=lmbda, steps=steps, lr=lr, seed=seed
        ),
    }
    points = {label: [] for label in encoders}
    device = next(model.parameters()).device
    for x in tqdm(
        image_list(images),
        desc="amortized and SGA encoding",
        disable=not progress,
        leave=False,
    ):
        for label, encode in encoders.items():
            row = evaluate.measure(
                x.to(device), encode, model.decompress, with_ms_ssim=False
            )
            mse = 10 ** (-row["psnr"] / 10)
            cost = train.rd_loss(lmbda, mse, row["bpp"])
            points[label].append({"bpp": row["bpp"], "psnr": row["psnr"], "cost": cost})
    return {label: metrics.mean_point(rows) for label, rows in points.items()}
