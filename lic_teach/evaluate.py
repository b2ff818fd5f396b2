"""Evaluating a learned codec the honest way: real bitstreams, decoded images.

``codec_point`` compresses each image with ``model.compress`` (real bytes), decodes it
with ``model.decompress``, and reports the averages over images of the real bits per
pixel and the PSNR, beside the rate the likelihoods promise (``estimated_bpp``), so the
two can be compared.
"""
from __future__ import annotations

import functools
import time

import torch

from .baselines import RDCurve
from .metrics import bpp, ms_ssim, psnr
from .data import as_batch, image_list, pad_to


@torch.no_grad()
def codec_point(model, images, coder: str = "ans", with_ms_ssim: bool = False,
                encode=None, decode=None, warm_up: bool = True) -> dict:
    """Average real ``bpp`` and ``psnr`` (and ``ms_ssim``) of ``model`` over ``images``.

    Also returns ``estimated_bpp`` (from the likelihoods of the padded image, over the
    original pixel count) and the mean ``encode_s`` and ``decode_s`` per image.

    ``encode(x [1, 3, H, W]) -> bytes`` and ``decode(bytes) -> [3, H, W]`` replace
    ``model.compress`` and ``model.decompress`` for an encoder that chooses its own
    latents (``rdoq``, ``trellis``); ``estimated_bpp``, the rate of rounding, is then
    left out. Times are taken after one untimed encode and decode of the first image
    (``warm_up``), so the first call's one-off costs (allocations, kernel selection, the
    coder's tables) do not land on one model's figures.
    """
    images = image_list(images)
    if not images:
        raise ValueError("codec_point needs at least one image")
    model.eval()
    model.update()
    device = next(model.parameters()).device
    rounding = encode is None
    encode = encode or functools.partial(model.compress, coder=coder)
    decode = decode or model.decompress
    totals = {"bpp": 0.0, "psnr": 0.0, "encode_s": 0.0, "decode_s": 0.0}
    if rounding:
        totals["estimated_bpp"] = 0.0
    if with_ms_ssim:
        totals["ms_ssim"] = 0.0
    if warm_up:
        decode(encode(as_batch(images[0]).to(device)))
    for x in images:
        x = as_batch(x).to(device)
        pixels = x.shape[-2] * x.shape[-1]
        start = time.perf_counter()
        data = encode(x)
        totals["encode_s"] += time.perf_counter() - start
        start = time.perf_counter()
        x_hat = decode(data)
        totals["decode_s"] += time.perf_counter() - start
        totals["bpp"] += bpp(data, pixels)
        totals["psnr"] += psnr(x[0].cpu(), x_hat.cpu())
        if rounding:
            totals["estimated_bpp"] += bpp(model(pad_to(x, model.downsampling))["likelihoods"], pixels)
        if with_ms_ssim:
            totals["ms_ssim"] += ms_ssim(x[0].cpu(), x_hat.cpu())
    return {key: value / len(images) for key, value in totals.items()}


def rd_curve(models, images, name: str, params=None, coder: str = "ans") -> RDCurve:
    """An ``RDCurve`` with one real-bitstream point per model (e.g. one per lambda)."""
    points = [codec_point(model, images, coder) for model in models]
    order = sorted(range(len(points)), key=lambda i: points[i]["bpp"])
    return RDCurve(name=name, bpp=[points[i]["bpp"] for i in order],
                   psnr=[points[i]["psnr"] for i in order],
                   params=[(params[i] if params is not None else i) for i in order],
                   source="real bitstreams, measured by this notebook")
