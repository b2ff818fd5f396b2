"""Entropy-constrained quantization compared (the decoder-training chapter): the same
trained ``FactorizedPrior`` and decoder, with the encoder's latents chosen by rounding,
by rate-distortion optimized rounding (``lic_teach.rdoq``) or by dependent,
trellis-coded quantization (``lic_teach.trellis``), each measured on real bitstreams.
"""

from __future__ import annotations

import functools

import torch

from . import evaluate, rdoq, trellis
from .data import pad_to

METHODS = ("rounding", "RDOQ", "trellis")


@torch.no_grad()
def rd_point(
    model, images, method: str, weights: torch.Tensor | None = None, coder: str = "ans"
) -> dict:
    """``evaluate.codec_point`` of ``model`` over ``images`` with its latents quantized
    by ``method`` (one of :data:`METHODS`; ``weights`` as for ``rdoq.rdo_round``):
    average ``bpp`` and ``psnr`` from real bitstreams, ``encode_s`` (``g_a``,
    quantization and coding) and ``decode_s``. ``rounding`` and ``RDOQ`` are decoded by
    ``model.decompress``, ``trellis`` by ``trellis.decompress_trellis``."""
    if method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if method != "rounding" and weights is None:
        raise ValueError(
            f"{method} needs the distortion weights (see rdoq.distortion_weights)"
        )
    rdoq.check_factorized(model)

    def encode(x):  # [1, 3, H, W] -> bytes
        height, width = x.shape[-2:]
        y = model.g_a(pad_to(x, model.downsampling))
        if method == "trellis":
            return trellis.compress_trellis(model, y, weights, height, width, coder)
        y_hat = (
            rdoq.rdo_round(model, y, weights)
            if method == "RDOQ"
            else model.prior.hard_round(y)
        )
        return rdoq.compress_latents(model, y_hat, height, width, coder)

    decode = (
        functools.partial(trellis.decompress_trellis, model)
        if method == "trellis"
        else model.decompress
    )
    return evaluate.codec_point(model, images, coder, encode=encode, decode=decode)
