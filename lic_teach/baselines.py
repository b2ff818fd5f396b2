"""Classical codecs as baselines, and published reference curves.

``CLASSICAL`` is the registry of real classical encoders that install from PyPI
(Pillow's JPEG, libjpeg-turbo, OpenJPEG, libwebp, libavif, libjxl through
``imagecodecs``; x265 through ``pillow-heif``), each with a sweep of its quality
setting; :func:`available_codecs` says which of them this machine can run and why the
others cannot. Their R-D curves are measured by ``evaluate.classical_curve`` (real
bytes, the decoded image). ``reference_curves`` returns published Kodak results
(CompressAI's ``results/image/kodak`` at v1.2.8, shipped as package data) to plot
beside ours. ``RDCurve`` lives in :mod:`lic_teach.metrics`; it is imported here too, so
``from lic_teach.baselines import RDCurve`` keeps working.
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources

import numpy as np
import torch
from PIL import Image, features

from .data import to_pil
from .metrics import RDCurve  # its home is metrics; students import it from here


def pillow_roundtrip(
    x: torch.Tensor, format: str, quality: int, **options
) -> tuple[torch.Tensor, int]:
    """Code an image ``[3, H, W]`` with Pillow in ``format`` (``"JPEG"``, ``"WEBP"``)
    with the encoder options ``options`` (as ``subsampling=0``), by the same encoder and
    decoder as ``CLASSICAL["jpeg"]``; return (decoded image, bytes written)."""
    if format.upper() == "WEBP" and not features.check("webp"):
        raise RuntimeError("this Pillow was built without WebP support")
    data = _pillow_encode(format, **options)(_rgb8(x), quality)
    return _from_rgb8(_pillow_decode(data)), len(data)


def jpeg_header_bytes(x: torch.Tensor, quality: int = 75) -> int:
    """Bytes of ``CLASSICAL["jpeg"]``'s file of ``x`` that are not entropy-coded data:
    everything up to the end of the first start-of-scan (SOS) segment (markers,
    quantization and Huffman tables), plus the end-of-image marker. The JPEG standard
    (ITU-T T.81, annex B) defines the segments; a baseline file has one scan."""
    data = CLASSICAL["jpeg"].compress(x, quality)
    start = data.find(b"\xff\xda")
    if start < 0:
        raise ValueError("no start-of-scan marker in this JPEG")
    sos_length = int.from_bytes(data[start + 2 : start + 4], "big")
    return start + 2 + sos_length + 2


def psnr_at_rate(curve: RDCurve, rate: float) -> float:
    """The PSNR ``curve`` reaches at ``rate`` bpp, linear between its neighbouring
    points: what "at equal rate" compares with. ``ValueError`` outside the curve's
    rates."""
    if not curve.bpp[0] <= rate <= curve.bpp[-1]:
        raise ValueError(
            f"{rate:.3f} bpp is outside the range of {curve.name} here "
            f"({curve.bpp[0]:.3f}-{curve.bpp[-1]:.3f} bpp)"
        )
    return float(np.interp(rate, curve.bpp, curve.psnr))


# JPEG qualities dense enough to read its curve at any rate (:func:`psnr_at_rate`)
DENSE_QUALITIES = tuple(range(5, 96, 5))


REFERENCE_SOURCE = (
    "CompressAI v1.2.8, results/image/kodak (InterDigital, BSD 3-Clause Clear): "
    "published Kodak figures, not measured here"
)


def _ms_ssim_values(results: dict) -> list[float]:
    """MS-SSIM values of a published record; those given in dB, ``-10 log10(1 -
    MS-SSIM)``, are converted back."""
    if "ms-ssim-rgb" in results:
        return [float(v) for v in results["ms-ssim-rgb"]]
    return [1.0 - 10.0 ** (-float(v) / 10.0) for v in results.get("ms-ssim-db-rgb", [])]


def reference_names() -> list[str]:
    """Names of the published curves shipped with the package (file stems)."""
    folder = resources.files("lic_teach").joinpath("reference")
    return sorted(
        item.name[:-5] for item in folder.iterdir() if item.name.endswith(".json")
    )


def reference_curves(names=None) -> dict[str, RDCurve]:
    """Published Kodak R-D curves (24 images), as ``{file stem: RDCurve}``.

    ``names`` picks some (e.g. ``["jpeg", "compressai-bmshj2018-factorized_mse_cpu"]``);
    by default all are returned. Sources: ``lic_teach/reference/README.md``.
    """
    available = reference_names()
    chosen = available if names is None else list(names)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise KeyError(
            f"no reference curve named {unknown[0]!r}; "
            f"available: {', '.join(available)}"
        )
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


# ------------------------------------------------------------ classical codecs, real
# bytes


@dataclass(frozen=True)
class ClassicalCodec:
    """A classical image codec run on 8-bit RGB pixels through a Python binding.

    ``encode(pixels [H, W, 3] uint8, setting) -> bytes`` is the whole file the codec
    writes (headers included); ``decode(bytes) -> [H, W, 3] uint8`` is the library's own
    decoder. ``settings`` sweep ``parameter`` from the lowest quality to the highest,
    chosen to span about 0.1 to 1.5 bits per pixel on natural photos. ``requires``
    names the Python module and, optionally, the codec flag of ``imagecodecs`` that must
    be present (:meth:`missing`).
    """

    key: str  # a short name for the command line: "jpeg-420", "avif"...
    name: str
    library: str  # the PyPI package that provides the encoder
    parameter: str
    settings: tuple
    encode: Callable[[np.ndarray, object], bytes]
    decode: Callable[[bytes], np.ndarray]
    requires: tuple[str, str | None]
    options: str = ""  # the encoder options that are not the default, for captions

    def missing(self) -> str | None:
        """Why this codec cannot run here (the package or its codec is absent), or
        None."""
        module_name, flag = self.requires
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            return (
                f"{self.library} is not installed ({error}); pip install {self.library}"
            )
        if module_name == "PIL" and flag and not features.check(flag):
            return f"this Pillow was built without {flag}"
        if (
            module_name == "imagecodecs"
            and flag
            and not getattr(getattr(module, flag, None), "available", False)
        ):
            return f"this build of imagecodecs has no {flag} codec"
        return None

    def version(self) -> str:
        """The installed version of :attr:`library` (part of the evaluation cache
        key)."""
        try:
            return metadata.version(self.library)
        except metadata.PackageNotFoundError:
            return "not installed"

    def compress(self, x: torch.Tensor, setting) -> bytes:
        """The file this codec writes for ``x`` (``[3, H, W]`` in [0, 1], taken to 8
        bits); ``ValueError`` with the library's reason for an image it cannot code
        (WebP's sides stop at 16383 pixels)."""
        pixels = _rgb8(x)
        try:
            return bytes(self.encode(pixels, setting))
        except Exception as error:  # each library raises its own kind
            raise ValueError(
                f"{self.name} could not code a {pixels.shape[1]}x{pixels.shape[0]} "
                f"image at {self.parameter} {setting}: {error}"
            ) from error

    def decompress(self, data: bytes) -> torch.Tensor:
        """The image ``[3, H, W]`` the library decodes from ``data``; ``ValueError`` for
        bytes it cannot decode into 8-bit RGB."""
        try:
            decoded = np.asarray(self.decode(bytes(data)))
        except Exception as error:  # each library raises its own kind
            raise ValueError(
                f"{self.name} could not decode these bytes: {error}"
            ) from error
        if decoded.ndim != 3 or decoded.shape[-1] != 3 or decoded.dtype != np.uint8:
            raise ValueError(
                f"{self.name} decoded a {decoded.dtype} image of shape "
                f"{decoded.shape}, not 8-bit RGB"
            )
        return _from_rgb8(decoded)


def _from_rgb8(pixels: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 pixels as an image ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)


def _rgb8(x: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] as a fresh ``[H, W, 3]`` uint8 array, rounded as
    ``data.to_pil`` rounds. (A permuted tensor's array keeps odd strides on sides of 1
    pixel, which numpy still calls contiguous and imagecodecs refuses: a 1x1 image
    failed that way.)"""
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an RGB image [3, H, W], got {tuple(x.shape)}")
    return np.array(to_pil(x))


def _pillow_encode(format: str, **options):
    def encode(pixels: np.ndarray, quality) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(
            buffer, format=format, quality=int(quality), **options
        )
        return buffer.getvalue()

    return encode


def _pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _imagecodecs_encoder(function: str, setting_keyword: str = "level", **options):
    """``imagecodecs.<function>(pixels, setting_keyword=setting, **options)``;
    imagecodecs is imported when first called, so a machine without it can still list
    the codec as missing."""

    def encode(pixels: np.ndarray, setting) -> bytes:
        return getattr(importlib.import_module("imagecodecs"), function)(
            pixels, **options, **{setting_keyword: setting}
        )

    return encode


def _imagecodecs_decoder(function: str):
    """``imagecodecs.<function>(data)``, imported when first called."""
    return lambda data: getattr(importlib.import_module("imagecodecs"), function)(data)


def _avif_encode(pixels: np.ndarray, quality) -> bytes:
    """AV1 intra through libavif at 4:4:4 (the pixel format given as the library's own
    enum: its string spellings changed between imagecodecs releases)."""
    imagecodecs = importlib.import_module("imagecodecs")
    return imagecodecs.avif_encode(
        pixels,
        level=int(quality),
        speed=6,
        pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444,
    )


def _heic_encode(pixels: np.ndarray, quality) -> bytes:
    import pillow_heif

    image = pillow_heif.from_bytes(
        "RGB", (pixels.shape[1], pixels.shape[0]), pixels.tobytes()
    )
    buffer = io.BytesIO()
    image.save(buffer, quality=int(quality), chroma=444)
    return buffer.getvalue()


def _heic_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True))


JPEG_SETTINGS = (5, 10, 20, 35, 50, 70, 85)

CLASSICAL = {
    codec.key: codec
    for codec in [
        ClassicalCodec(
            "jpeg",
            "JPEG (Pillow)",
            "pillow",
            "quality",
            JPEG_SETTINGS,
            _pillow_encode("JPEG"),
            _pillow_decode,
            ("PIL", "jpg"),
            "libjpeg defaults: 4:2:0, Huffman tables of the standard",
        ),
        ClassicalCodec(
            "jpeg-444",
            "JPEG 4:4:4 (libjpeg-turbo)",
            "imagecodecs",
            "quality",
            JPEG_SETTINGS,
            _imagecodecs_encoder("jpeg8_encode", subsampling="444", optimize=True),
            _imagecodecs_decoder("jpeg8_decode"),
            ("imagecodecs", "JPEG8"),
            "no chroma subsampling, optimized Huffman tables",
        ),
        ClassicalCodec(
            "jpeg-420",
            "JPEG 4:2:0 (libjpeg-turbo)",
            "imagecodecs",
            "quality",
            JPEG_SETTINGS,
            _imagecodecs_encoder("jpeg8_encode", subsampling="420", optimize=True),
            _imagecodecs_decoder("jpeg8_decode"),
            ("imagecodecs", "JPEG8"),
            "chroma subsampled 2x2, optimized Huffman tables",
        ),
        ClassicalCodec(
            "jpeg2000",
            "JPEG 2000 (OpenJPEG)",
            "imagecodecs",
            "target PSNR (dB)",
            (24, 27, 30, 33, 36, 39),
            _imagecodecs_encoder("jpeg2k_encode"),
            _imagecodecs_decoder("jpeg2k_decode"),
            ("imagecodecs", "JPEG2K"),
            "one quality layer at the target PSNR",
        ),
        ClassicalCodec(
            "webp",
            "WebP (libwebp)",
            "imagecodecs",
            "quality",
            (0, 10, 30, 50, 70, 85),
            _imagecodecs_encoder("webp_encode", lossless=False),
            _imagecodecs_decoder("webp_decode"),
            ("imagecodecs", "WEBP"),
            "lossy, 4:2:0",
        ),
        ClassicalCodec(
            "avif",
            "AVIF (libavif, AV1 intra)",
            "imagecodecs",
            "quality",
            (10, 25, 40, 50, 60, 70, 80),
            _avif_encode,
            _imagecodecs_decoder("avif_decode"),
            ("imagecodecs", "AVIF"),
            "4:4:4, speed 6",
        ),
        ClassicalCodec(
            "heic",
            "HEIC (x265, HEVC intra)",
            "pillow-heif",
            "quality",
            (10, 20, 30, 40, 50, 60),
            _heic_encode,
            _heic_decode,
            ("pillow_heif", None),
            "4:4:4 as in CompressAI's BPG curve, x265's default preset",
        ),
        ClassicalCodec(
            "jpegxl",
            "JPEG XL (libjxl)",
            "imagecodecs",
            "distance (lower is better)",
            (15.0, 10.0, 6.0, 4.0, 2.5, 1.5, 1.0),
            _imagecodecs_encoder("jpegxl_encode", "distance"),
            _imagecodecs_decoder("jpegxl_decode"),
            ("imagecodecs", "JPEGXL"),
            "libjxl's default effort",
        ),
    ]
}


def available_codecs(keys=None) -> tuple[dict[str, ClassicalCodec], dict[str, str]]:
    """``(runnable, missing)``: the codecs of ``CLASSICAL`` (or those of ``keys``) this
    machine can run, as ``{key: codec}``, and ``{codec name: why not}`` for the others,
    so a table can say what it left out."""
    chosen = list(CLASSICAL) if keys is None else list(keys)
    unknown = [key for key in chosen if key not in CLASSICAL]
    if unknown:
        raise KeyError(
            f"no classical codec {unknown[0]!r}; known: {', '.join(CLASSICAL)}"
        )
    runnable, missing = {}, {}
    for key in chosen:
        reason = CLASSICAL[key].missing()
        if reason:
            missing[CLASSICAL[key].name] = reason
        else:
            runnable[key] = CLASSICAL[key]
    return runnable, missing
