"""Classical codecs as baselines, and published reference curves.

``jpeg_curve`` and ``webp_curve`` code real files through Pillow and measure real
bytes; ``reference_curves`` returns published Kodak results (CompressAI's
``results/image/kodak`` at v1.2.8, shipped as package data) to plot beside ours.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch
from PIL import Image, features

from .data import image_list, pil_to_tensor, to_pil
from .metrics import bpp, ms_ssim, psnr


@dataclass
class RDCurve:
    """A rate-distortion curve: one entry per operating point.

    ``bpp`` and ``psnr`` are averages over the images coded (per-image PSNR averaged,
    as CompressAI's evaluation does); ``ms_ssim`` is empty when not measured;
    ``params`` holds the codec setting of each point (quality, step, lambda...).
    """

    name: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] = field(default_factory=list)
    params: list = field(default_factory=list)
    source: str = "measured by this notebook"


def pillow_roundtrip(x: torch.Tensor, format: str, quality: int, **options) -> tuple[torch.Tensor, int]:
    """Code an image ``[3, H, W]`` with Pillow; return (decoded image, bytes written)."""
    if format.upper() == "WEBP" and not features.check("webp"):
        raise RuntimeError("this Pillow was built without WebP support")
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format=format, quality=int(quality), **options)
    size = buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return pil_to_tensor(decoded), size


def jpeg_header_bytes(x: torch.Tensor, quality: int = 75) -> int:
    """Bytes of Pillow's JPEG of ``x`` that are not entropy-coded data: everything up to the
    end of the first start-of-scan (SOS) segment (markers, quantization and Huffman
    tables), plus the end-of-image marker. The JPEG standard (ITU-T T.81, annex B)
    defines the segments; a baseline file has one scan."""
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format="JPEG", quality=int(quality))
    data = buffer.getvalue()
    start = data.find(b"\xff\xda")
    if start < 0:
        raise ValueError("no start-of-scan marker in this JPEG")
    sos_length = int.from_bytes(data[start + 2:start + 4], "big")
    return start + 2 + sos_length + 2


def codec_curve(images, format: str, qualities, name: str | None = None,
                with_ms_ssim: bool = False, **options) -> RDCurve:
    """R-D curve of a Pillow codec over ``images`` (a list or dict of ``[3, H, W]``).

    PSNR is measured against the 8-bit version of each image (what the codec is given).
    """
    images = image_list(images)
    if not images:
        raise ValueError("codec_curve needs at least one image")
    curve = RDCurve(name=name or format.upper(), bpp=[], psnr=[], params=list(qualities),
                    source=f"Pillow {format.upper()}, measured by this notebook")
    for quality in qualities:
        rates, psnrs, ssims = [], [], []
        for x in images:
            x8 = (x.clamp(0, 1) * 255).round() / 255
            x_hat, size = pillow_roundtrip(x8, format, quality, **options)
            rates.append(bpp(size, x.shape[-2] * x.shape[-1]))
            psnrs.append(psnr(x8, x_hat))
            if with_ms_ssim:
                ssims.append(ms_ssim(x8, x_hat))
        curve.bpp.append(sum(rates) / len(rates))
        curve.psnr.append(sum(psnrs) / len(psnrs))
        if with_ms_ssim:
            curve.ms_ssim.append(sum(ssims) / len(ssims))
    return curve


def jpeg_curve(images, qualities=(10, 20, 30, 50, 70, 85, 95), **kwargs) -> RDCurve:
    """JPEG through Pillow (libjpeg, 4:2:0 chroma subsampling by default)."""
    return codec_curve(images, "JPEG", qualities, **kwargs)


def psnr_at_rate(curve: RDCurve, rate: float) -> float:
    """The PSNR ``curve`` reaches at ``rate`` bpp, linear between its neighbouring points:
    what "at equal rate" compares with. ``ValueError`` outside the curve's rates."""
    if not curve.bpp[0] <= rate <= curve.bpp[-1]:
        raise ValueError(f"{rate:.3f} bpp is outside the range of {curve.name} here "
                         f"({curve.bpp[0]:.3f}-{curve.bpp[-1]:.3f} bpp)")
    return float(np.interp(rate, curve.bpp, curve.psnr))


DENSE_QUALITIES = tuple(range(5, 96, 5))     # a JPEG curve dense enough to read at any rate


def webp_curve(images, qualities=(10, 20, 30, 50, 70, 85, 95), **kwargs) -> RDCurve:
    """WebP (lossy) through Pillow (libwebp)."""
    return codec_curve(images, "WEBP", qualities, **kwargs)


REFERENCE_SOURCE = ("CompressAI v1.2.8, results/image/kodak (InterDigital, BSD 3-Clause Clear): "
                    "published Kodak figures, not measured here")


def _ms_ssim_values(results: dict) -> list[float]:
    """MS-SSIM values of a published record; those given in dB, ``-10 log10(1 - MS-SSIM)``,
    are converted back."""
    if "ms-ssim-rgb" in results:
        return [float(v) for v in results["ms-ssim-rgb"]]
    return [1.0 - 10.0 ** (-float(v) / 10.0) for v in results.get("ms-ssim-db-rgb", [])]


def reference_names() -> list[str]:
    """Names of the published curves shipped with the package (file stems)."""
    folder = resources.files("lic_teach").joinpath("reference")
    return sorted(item.name[:-5] for item in folder.iterdir() if item.name.endswith(".json"))


def reference_curves(names=None) -> dict[str, RDCurve]:
    """Published Kodak R-D curves (24 images), as ``{file stem: RDCurve}``.

    ``names`` picks some (e.g. ``["jpeg", "compressai-bmshj2018-factorized_mse_cpu"]``);
    by default all are returned. Sources: ``lic_teach/reference/README.md``.
    """
    available = reference_names()
    chosen = available if names is None else list(names)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise KeyError(f"no reference curve named {unknown[0]!r}; available: {', '.join(available)}")
    folder = resources.files("lic_teach").joinpath("reference")
    curves = {}
    for stem in chosen:
        record = json.loads(folder.joinpath(f"{stem}.json").read_text())
        results = record["results"]
        curves[stem] = RDCurve(
            name=f"{record.get('name', stem)} (published)",
            bpp=[float(v) for v in results["bpp"]],
            psnr=[float(v) for v in results.get("psnr-rgb", results.get("psnr", []))],
            ms_ssim=_ms_ssim_values(results),
            source=f"{REFERENCE_SOURCE}; {record.get('description', '')}".strip("; "),
        )
    return curves
