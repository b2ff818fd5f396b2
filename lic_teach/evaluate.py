"""Evaluating codecs the honest way: real bitstreams, decoded images.

``codec_point`` compresses each image with ``model.compress`` (real bytes), decodes it
with ``model.decompress``, and reports the averages over images of the real bits per
pixel and the PSNR, beside the rate the likelihoods promise (``estimated_bpp``), so the
two can be compared.

:func:`evaluate_codecs` runs any set of codecs, learned (:func:`learned`) or classical
(:func:`classical`), on any set of images and keeps one row per codec, setting and
image (an R-D point per image, which :class:`Evaluation` turns into curves and
BD-rates with intervals over images). Each row is cached on disk under a hash of the
codec's content (weights, or library version and options), the setting and the image's
pixels, so a rerun costs nothing.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import cache, complexity
from .baselines import ClassicalCodec, RDCurve
from .metrics import bd_rate_interval, bpp, ms_ssim, psnr, psnr_ycbcr
from .data import as_batch, image_list, pad_to, quantize_8bit


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


@torch.no_grad()
def decode_seconds(models, image: torch.Tensor, repeats: int = 5) -> list[float]:
    """The median seconds each of ``models`` takes to decompress its own bitstream of
    ``image``, entropy decoding included (:func:`complexity.median_seconds`: a warm-up, then
    the models in turn)."""
    streams = [model.compress(as_batch(image)) for model in models]
    return complexity.median_seconds([functools.partial(model.decompress, data) for model, data in zip(models, streams)],
                                     repeats)


def rd_curve(models, images, name: str, params=None, coder: str = "ans") -> RDCurve:
    """An ``RDCurve`` with one real-bitstream point per model (e.g. one per lambda)."""
    points = [codec_point(model, images, coder) for model in models]
    order = sorted(range(len(points)), key=lambda i: points[i]["bpp"])
    return RDCurve(name=name, bpp=[points[i]["bpp"] for i in order],
                   psnr=[points[i]["psnr"] for i in order],
                   params=[(params[i] if params is not None else i) for i in order],
                   source="real bitstreams, measured by this notebook")


# ---------------------------------------------------- many codecs on many images, cached


@dataclass(frozen=True)
class Codec:
    """What :func:`evaluate_codecs` runs: ``compress(x [3, H, W], setting) -> bytes`` and
    ``decompress(bytes, setting) -> [3, H, W]``, at each of ``settings`` (lowest quality
    first). ``fingerprint`` changes whenever the codec's output could (weights, library
    version, options); it keys the cache."""

    name: str
    kind: str                                   # "classical" or "learned"
    settings: tuple
    compress: Callable[[torch.Tensor, object], bytes]
    decompress: Callable[[bytes, object], torch.Tensor]
    fingerprint: str
    source: str = ""
    decoder_macs_per_pixel: float | None = None


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:24]


def classical(codec: ClassicalCodec) -> Codec:
    """A classical codec of ``baselines.CLASSICAL`` as a :class:`Codec`. Its fingerprint has
    the library's version and the source of ``baselines`` (where its options are set)."""
    return Codec(codec.name, "classical", codec.settings, codec.compress, lambda data, _: codec.decompress(data),
                 _hash(codec.name, codec.library, codec.version(), cache.source_fingerprint("lic_teach.baselines")),
                 f"{codec.library} {codec.version()}: {codec.parameter} {', '.join(map(str, codec.settings))}"
                 + (f"; {codec.options}" if codec.options else ""))


def learned(name: str, models: dict, source: str = "", coder: str = "ans") -> Codec:
    """A family of image models ``{setting: model}`` (one per lambda or quality, lowest
    rate first) as a :class:`Codec` that writes real bitstreams with ``coder``. Its
    fingerprint has the weights, the source of the models' code (and of the entropy coder
    and bitstream it imports) and the device."""
    models = dict(models)
    if not models:
        raise ValueError(f"the learned codec {name!r} has no models")
    for model in models.values():
        model.eval()
        model.update()
    first = next(iter(models.values()))
    device = next(first.parameters()).device
    fingerprint = _hash(name, coder, device.type, *[
        (type(m).__name__, m.hyperparameters(), cache.tensors_fingerprint(m.state_dict()),
         cache.source_fingerprint(type(m).__module__)) for m in models.values()])
    return Codec(name, "learned", tuple(models), lambda x, s: models[s].compress(as_batch(x), coder=coder),
                 lambda data, s: models[s].decompress(data), fingerprint, source,
                 complexity.decoder_macs_per_pixel(first))


ROW_FIELDS = ("bytes", "bpp", "psnr", "psnr_y", "psnr_ycbcr", "ms_ssim", "encode_s", "decode_s")


def image_fingerprint(x: torch.Tensor) -> str:
    """A hash of an image's 8-bit pixels and shape."""
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous().numpy()
    return hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()[:24]


def measure(x: torch.Tensor, data: bytes, x_hat: torch.Tensor) -> dict:
    """The R-D figures of one decoded image: bytes, bpp, PSNR in RGB, PSNR of Y and the
    6:1:1 YCbCr mean, MS-SSIM (None under 161 pixels a side)."""
    if x_hat.shape != x.shape:
        raise ValueError(f"the codec decoded an image of shape {tuple(x_hat.shape)}, expected {tuple(x.shape)}")
    planes = psnr_ycbcr(x, x_hat)
    return {"bytes": len(data), "bpp": bpp(data, x.shape[-2] * x.shape[-1]), "psnr": psnr(x, x_hat),
            "psnr_y": planes["y"], "psnr_ycbcr": planes["ycbcr"],
            "ms_ssim": ms_ssim(x, x_hat) if min(x.shape[-2:]) > 160 else None}


def _timed(function, *arguments):
    start = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - start


def run_point(codec: Codec, x: torch.Tensor, setting) -> dict:
    """Compress ``x`` at ``setting``, decompress the bytes, measure: one row (no names).
    The decoded image is taken to 8 bits, what a decoder writes to a file (classical
    codecs decode to 8 bits anyway); the decode time includes bringing it to the CPU."""
    data, encode_s = _timed(codec.compress, x, setting)
    x_hat, decode_s = _timed(lambda: codec.decompress(data, setting).detach().cpu())
    return {**measure(x, data, quantize_8bit(x_hat)), "encode_s": encode_s, "decode_s": decode_s}


def _write_json(path: Path, record: dict) -> None:
    """``record`` into ``path`` atomically; a cache that cannot be written is warned about,
    not fatal (the row itself is measured)."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(handle, "w") as out:
            json.dump(record, out)
        os.replace(temporary, path)
    except OSError as error:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        warnings.warn(f"could not cache an evaluation row in {path.parent} ({error}); measuring without a cache",
                      stacklevel=3)


def _cached_row(path: Path) -> dict | None:
    """The row in ``path``, or None if it is absent, damaged or of another shape."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and set(row) == set(ROW_FIELDS) else None


@dataclass
class Evaluation:
    """Rows ``{codec, kind, setting, image, pixels, bytes, bpp, psnr, psnr_y, psnr_ycbcr,
    ms_ssim, encode_s, decode_s}``, one per codec, setting and image; ``missing`` holds
    ``{codec name: why it did not run}``."""

    rows: list[dict]
    codecs: dict[str, Codec]
    images: list[str]
    missing: dict[str, str] = field(default_factory=dict)

    def _rows(self, name: str) -> list[dict]:
        if name not in self.codecs:
            raise KeyError(f"{name!r} was not evaluated" + (f": {self.missing[name]}" if name in self.missing else ""))
        return [row for row in self.rows if row["codec"] == name]

    def per_image(self, name: str, metric: str = "psnr") -> list[tuple[list[float], list[float]]]:
        """``[(rates, qualities)]`` per image (in :attr:`images` order), one entry per setting."""
        rows = self._rows(name)
        settings = self.codecs[name].settings
        table = {(row["image"], row["setting"]): row for row in rows}
        return [([table[image, str(s)]["bpp"] for s in settings], [quality(table[image, str(s)], metric) for s in settings])
                for image in self.images]

    def curve(self, name: str, metric: str = "psnr", average: str = "quality") -> RDCurve:
        """The image-averaged curve: rate and ``metric`` (in the curve's ``psnr`` field) averaged
        setting by setting, and the mean MS-SSIM where every row has one. ``average="mse"``
        gives instead the PSNR of the mean squared error (``metric`` "psnr")."""
        curves = self.per_image(name, metric)
        rates = np.mean([c[0] for c in curves], axis=0)
        if average == "mse":
            if metric != "psnr":
                raise ValueError("average='mse' applies to the metric 'psnr'")
            errors = np.mean([10.0 ** (-np.asarray(c[1]) / 10) for c in curves], axis=0)
            qualities = -10 * np.log10(errors)
        elif average == "quality":
            qualities = np.mean([c[1] for c in curves], axis=0)
        else:
            raise ValueError(f"average must be 'quality' or 'mse', got {average!r}")
        rows = self._rows(name)
        ms_ssim_values = []
        if all(row["ms_ssim"] is not None for row in rows):
            ms_ssim_values = [float(np.mean([row["ms_ssim"] for row in rows if row["setting"] == str(s)]))
                              for s in self.codecs[name].settings]
        return RDCurve(name=name, bpp=rates.tolist(), psnr=qualities.tolist(), ms_ssim=ms_ssim_values,
                       params=list(self.codecs[name].settings), source=self.codecs[name].source)

    def bd_rate(self, anchor: str, test: str, metric: str = "psnr", **options) -> dict:
        """:func:`metrics.bd_rate_interval` of ``test`` against ``anchor`` over the images,
        or ``{"error": why}`` when the curves cannot be compared."""
        try:
            return {**bd_rate_interval(self.per_image(anchor, metric), self.per_image(test, metric), **options),
                    "error": None}
        except ValueError as error:
            return {"error": str(error)}

    def seconds_per_megapixel(self, name: str) -> dict[str, float]:
        """Median encode and decode seconds per million pixels over the codec's rows."""
        rows = self._rows(name)
        return {kind: statistics.median(row[f"{kind}_s"] / row["pixels"] * 1e6 for row in rows)
                for kind in ("encode", "decode")}


QUALITY_METRICS = ("psnr", "psnr_y", "psnr_ycbcr", "ms_ssim", "ms_ssim_db")


def quality(row: dict, metric: str) -> float:
    """A row's ``metric``; ``"ms_ssim_db"`` is ``-10 log10(1 - MS-SSIM)``, the scale on
    which MS-SSIM curves are compared."""
    if metric not in QUALITY_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(QUALITY_METRICS)}")
    if metric.startswith("ms_ssim") and row["ms_ssim"] is None:
        raise ValueError(f"no MS-SSIM for {row['image']}: images must be larger than 160 pixels a side")
    if metric == "ms_ssim_db":
        return -10 * math.log10(max(1e-12, 1 - row["ms_ssim"]))
    return row[metric]


def evaluate_codecs(codecs, images: dict, missing: dict | None = None, cache_dir=None,
                    progress: bool = True) -> Evaluation:
    """Run every codec of ``codecs`` (a list of :class:`Codec`) at every setting on every
    image of ``images`` (``{name: [3, H, W]}``, taken to 8 bits first): real bytes,
    decoded and measured. Rows found in ``cache_dir`` (default: the book's cache, folder
    ``evaluations``; ``False``: none) under the same codec, setting and pixels are
    reused, timings included (they were measured when the row was first made). Each codec
    codes one image untimed before its first timed one (allocations, thread pools, a
    library's first call)."""
    images = {name: quantize_8bit(as_batch(x)[0].cpu()) for name, x in images.items()}
    if not images:
        raise ValueError("evaluate_codecs needs at least one image")
    names = [codec.name for codec in codecs]
    if len(set(names)) != len(names):
        raise ValueError(f"two codecs share a name: {names}")
    folder = None if cache_dir is False else Path(cache_dir or cache.default_cache_dir()) / "evaluations"
    version = cache.source_fingerprint("lic_teach.evaluate")       # how rows are measured
    keys = {name: image_fingerprint(x) for name, x in images.items()}
    rows, warm = [], set()
    jobs = [(codec, setting, name) for codec in codecs for setting in codec.settings for name in images]
    for codec, setting, name in tqdm(jobs, desc="evaluating", disable=not progress, leave=False):
        path = folder / f"{_hash(version, codec.fingerprint, setting, keys[name])}.json" if folder else None
        row = _cached_row(path) if path else None
        if row is None:
            if codec.name not in warm:
                run_point(codec, images[name], setting)
                warm.add(codec.name)
            row = run_point(codec, images[name], setting)
            if path:
                _write_json(path, row)
        rows.append({"codec": codec.name, "kind": codec.kind, "setting": str(setting), "image": name,
                     "pixels": images[name].shape[-2] * images[name].shape[-1], **row})
    return Evaluation(rows, {codec.name: codec for codec in codecs}, list(images), dict(missing or {}))
