"""Rate-distortion optimized rounding (RDOQ) of a trained model's latents (the
decoder-training chapter).

The encoder of a learned codec may send any integers it likes: the decoder only reads
them. Rounding each latent to the nearest integer minimizes the latent error, not the
rate-distortion cost ``D + lambda R`` the model was trained for. Borzechowski, Schäfer,
Schwarz, Pfaff, Marpe and Wiegand ("Optimizing learned image compression on scalar and
entropy-constraint quantization", 2024) replace rounding by encoder-side searches known
from video coding; the simplest is :func:`rdo_round`: each latent picks, among the
integers just below and just above it and zero, the one of least
``w * (y - y_hat)^2 + bits(y_hat)``. :func:`compress_latents` writes the chosen latents
into the model's own bitstream, so the unchanged decoder reads them.

The distortion of a latent error is measured where it matters, in the image: with
``g_s`` linearized, an error ``e`` in channel ``c`` adds about ``gain_c * e^2`` to the
squared image error (:func:`channel_gains`). With the training loss
``lambda * 255^2 * MSE + bpp``, the weight of a squared latent error against one bit is
``w_c = lambda * 255^2 * gain_c / 3`` (:func:`distortion_weights`).

Everything here is for ``FactorizedPrior``, whose latents are coded independently: the
rate of a latent depends on its own value only.
"""

from __future__ import annotations

import torch

from . import seeding
from .entropy_models import per_channel
from .train import MSE_SCALE


def check_factorized(model) -> None:
    """``ValueError`` unless ``model`` is a ``FactorizedPrior``-like model (``g_s`` and
    a factorized prior)."""
    if not hasattr(model, "prior") or not hasattr(model, "g_s"):
        raise ValueError(
            f"entropy-constrained quantization needs a FactorizedPrior (a model with "
            f"g_s and a factorized prior), got {type(model).__name__}"
        )


@torch.no_grad()
def channel_gains(
    model, y_hat: torch.Tensor, probes: int = 2, seed: int = 0
) -> torch.Tensor:
    """``[M]``: for each latent channel ``c``, the squared image error that ``g_s``
    makes of a squared latent error there,
    ``||g_s(y_hat + e_c) - g_s(y_hat)||^2 / ||e_c||^2``, with ``e_c`` uniform on
    ``(-1/2, 1/2)`` in channel ``c`` only (the size of a quantization error), averaged
    over ``probes`` draws and the batch."""
    check_factorized(model)
    generator = seeding.generator(y_hat.device, seed)
    reference = model.g_s(y_hat)
    gains = torch.zeros(y_hat.shape[1], device=y_hat.device)
    for channel in range(y_hat.shape[1]):
        for _ in range(probes):
            error = torch.zeros_like(y_hat)
            error[:, channel] = (
                torch.rand(
                    error[:, channel].shape,
                    generator=generator,
                    device=y_hat.device,
                    dtype=y_hat.dtype,
                )
                - 0.5
            )
            change = model.g_s(y_hat + error) - reference
            gains[channel] += float(change.pow(2).sum() / error.pow(2).sum()) / probes
    return gains


def distortion_weights(gains: torch.Tensor, lmbda: float) -> torch.Tensor:
    """``lambda * 255^2 * gain_c / 3`` per channel: the cost of a unit squared latent
    error in bits, under the loss ``lambda * 255^2 * MSE + bpp``
    (``train.rd_loss``; MSE over 3 colour channels)."""
    return lmbda * MSE_SCALE * gains / 3


def latent_bits(model, y_hat: torch.Tensor) -> torch.Tensor:
    """``-log2 P(y_hat)`` per latent under the factorized prior (integer grid)."""
    return -torch.log2(model.prior.likelihood(y_hat))


@torch.no_grad()
def rdo_round(model, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Latents ``y_hat`` on the coder's grid (median + integer) chosen per latent among
    ``floor``, ``ceil`` (around the median) and the median itself (symbol 0) to minimize
    ``w_c (y - y_hat)^2 + bits(y_hat)``; ``weights``: ``[M]``
    (:func:`distortion_weights`). The result is coded as usual
    (:func:`compress_latents`) and decoded by ``model``."""
    check_factorized(model)
    medians = model.prior.medians_like(y)
    v = y - medians
    candidates = torch.stack([torch.floor(v), torch.floor(v) + 1, torch.zeros_like(v)])
    w = per_channel(weights, y)
    costs = torch.stack(
        [w * (v - k) ** 2 + latent_bits(model, k + medians) for k in candidates]
    )
    best = costs.argmin(dim=0, keepdim=True)
    return torch.gather(candidates, 0, best)[0] + medians


@torch.no_grad()
def compress_latents(
    model, y_hat: torch.Tensor, height: int, width: int, coder: str = "ans"
) -> bytes:
    """``model.compress_latents`` of latents ``y_hat`` ``[1, M, h, w]`` chosen by the
    encoder (e.g. :func:`rdo_round`) for an image of ``height x width``, checked first
    to lie on the coder's grid (median + integer), so that the decoder reads exactly
    the chosen latents; ``model.decompress`` decodes the bytes."""
    check_factorized(model)
    offsets = y_hat - model.prior.medians_like(y_hat)
    if not ((offsets - torch.round(offsets)).abs() <= 1e-3).all():  # NaN too
        raise ValueError("these latents are not on the coder's grid (median + integer)")
    return model.compress_latents({"y": y_hat}, height, width, coder)
