"""Evaluating codecs the honest way: real bitstreams, decoded images.

:func:`measure` is the one measurement of a codec on one image, behind the
real-bitstream figures that the chapters, the zoo's manifests, the studies and
``lic-teach eval`` report (as CompressAI's ``eval_model`` has one ``inference``): the
image is taken to 8 bits (what a codec is given in a file), encoded into real bytes and
decoded; the rate is the bytes, the distortion that of the decoded image taken to 8 bits
(what a decoder writes to a file), and the times are those of the encode and the decode.
:func:`codec_point` averages it over images for an image model, :func:`rd_curve` makes a
curve of such points, and :func:`classical_curve` one of a classical codec's settings.

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
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import cache, complexity
from .baselines import CLASSICAL, ClassicalCodec
from .data import as_batch, image_list, pad_to, quantize_8bit
from .metrics import (
    RDCurve,
    bd_rate_interval,
    bpp,
    mean_point,
    ms_ssim,
    psnr,
    psnr_ycbcr,
)

ROW_FIELDS = (
    "bytes",
    "bpp",
    "psnr",
    "psnr_y",
    "psnr_ycbcr",
    "ms_ssim",
    "encode_s",
    "decode_s",
)


def distortion(x: torch.Tensor, x_hat: torch.Tensor, with_ms_ssim: bool = True) -> dict:
    """The distortion of a decoded image ``x_hat`` against ``x`` (both ``[3, H, W]``),
    ``x_hat`` taken to 8 bits first, as a decoder writes it to a file: ``psnr`` in RGB,
    ``psnr_y`` of the luma and ``psnr_ycbcr`` the 6:1:1 YCbCr mean
    (:func:`metrics.psnr_ycbcr`), and ``ms_ssim`` (``None`` on images of 160 pixels a
    side or fewer, or unless ``with_ms_ssim``)."""
    if x_hat.shape != x.shape:
        raise ValueError(
            f"the codec decoded an image of shape {tuple(x_hat.shape)}, "
            f"expected {tuple(x.shape)}"
        )
    x, x_hat = x.detach().cpu(), quantize_8bit(x_hat.detach().cpu())
    planes = psnr_ycbcr(x, x_hat)
    return {
        "psnr": psnr(x, x_hat),
        "psnr_y": planes["y"],
        "psnr_ycbcr": planes["ycbcr"],
        "ms_ssim": (
            ms_ssim(x, x_hat) if with_ms_ssim and min(x.shape[-2:]) > 160 else None
        ),
    }


def measure(
    x: torch.Tensor,
    encode: Callable[[torch.Tensor], bytes],
    decode: Callable[[bytes], torch.Tensor],
    with_ms_ssim: bool = True,
) -> dict:
    """The one measurement of a codec on one image ``x`` (``[3, H, W]`` or ``[1, 3, H,
    W]``, on any device): ``x`` is taken to 8 bits (what a codec is given in a file) and
    coded by ``encode(x [3, H, W]) -> bytes`` (the whole file) and ``decode(bytes) ->
    [3, H, W]``. Returns the fields of :data:`ROW_FIELDS`: ``bytes``, ``bpp`` (8 bits a
    byte over the ``H x W`` pixels), the :func:`distortion` of the decoded image (taken
    to 8 bits), and ``encode_s`` and ``decode_s``, the seconds of this one encode and of
    this one decode (bringing the image to the CPU included), each clock read once the
    GPU's queued work is done (:func:`complexity.clock`). The caller warms the codec up:
    one untimed call on any image first, so that one-off costs (allocations, kernel
    selection, the coder's tables) do not land on the times, as :func:`codec_point` and
    :func:`evaluate_codecs` do."""
    x = quantize_8bit(as_batch(x)[0])
    start = complexity.clock()
    data = encode(x)
    encoded = complexity.clock()
    x_hat = decode(data).detach().cpu()
    decoded = complexity.clock()
    return {
        "bytes": len(data),
        "bpp": bpp(data, x.shape[-2] * x.shape[-1]),
        **distortion(x, x_hat, with_ms_ssim),
        "encode_s": encoded - start,
        "decode_s": decoded - encoded,
    }


@torch.no_grad()
def codec_point(
    model,
    images,
    coder: str = "ans",
    with_ms_ssim: bool = False,
    encode=None,
    decode=None,
    warm_up: bool = True,
) -> dict:
    """The mean over ``images`` of :func:`measure` of ``model`` (``metrics.mean_point``:
    ``bpp``, ``psnr``, ``ms_ssim`` if ``with_ms_ssim``, else ``None``, the times...),
    with ``model.compress`` and ``model.decompress`` on ``model``'s device, and
    ``estimated_bpp``: the rate the likelihoods promise for the padded image, over the
    image's own pixel count.

    ``encode(x [1, 3, H, W]) -> bytes`` and ``decode(bytes) -> [3, H, W]`` replace
    ``model.compress`` and ``model.decompress`` for an encoder that chooses its own
    latents (``rdoq``, ``trellis``); ``estimated_bpp``, the rate of rounding, is then
    left out. With ``warm_up``, the first image is coded once untimed before the
    measured pass (see :func:`measure`).
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

    def encode_here(x):
        return encode(as_batch(x).to(device))

    if warm_up:
        measure(images[0], encode_here, decode, with_ms_ssim=False)
    points = []
    for x in images:
        point = measure(x, encode_here, decode, with_ms_ssim)
        if rounding:
            point["estimated_bpp"] = estimated_bpp(model, x)
        points.append(point)
    return mean_point(points)


def estimated_bpp(model, x: torch.Tensor) -> float:
    """The rate ``model``'s likelihoods promise for ``x`` taken to 8 bits and padded to
    its downsampling, in bits over ``x``'s own pixels (those of the real bitstream)."""
    x = as_batch(quantize_8bit(x)).to(next(model.parameters()).device)
    likelihoods = model(pad_to(x, model.downsampling))["likelihoods"]
    return bpp(likelihoods, x.shape[-2] * x.shape[-1])


@torch.no_grad()
def ceiling(model, images) -> float:
    """The transforms' *ceiling*: the mean PSNR over ``images`` of ``g_s(g_a(x))``
    with ``y`` left continuous, so without quantization or entropy coding (each image
    taken to 8 bits and padded to ``model.downsampling``, the output cropped and taken
    to 8 bits as a decoder's). A model's coded PSNR lies below it at every rate, so a
    ceiling below a classical codec's PSNR at the model's rate says the transforms,
    not the entropy model, hold its curve down (issue 34)."""
    model.eval()
    device = next(model.parameters()).device
    values = []
    for x in image_list(images):
        x = quantize_8bit(as_batch(x)[0])  # as measure() gives it to a codec
        height, width = x.shape[-2:]
        padded = pad_to(x[None].to(device), model.downsampling)
        x_hat = model.g_s(model.g_a(padded))[0, :, :height, :width].clamp(0, 1)
        values.append(distortion(x, x_hat, with_ms_ssim=False)["psnr"])
    return float(sum(values) / len(values))


@torch.no_grad()
def hyper_synthesis_range(model, images) -> float | None:
    """The largest ``|h_s(z_hat)|`` over ``images``: the hyper-synthesis output from
    which the Gaussian parameters of ``y`` are predicted (Ballé et al. 2018, eq. 8;
    Minnen et al. 2018), with ``z_hat`` rounded around the hyperprior's medians as the
    coder does. Far above its value on the training photos, ``h_s`` extrapolates and
    its predictions are wrong for the whole image (issue 34 found a mean-scale model
    at 594 on one held-out photo and at most 40 on its training photos). ``None`` for
    a model without a hyperprior."""
    if not hasattr(model, "h_s"):
        return None
    model.eval()
    device = next(model.parameters()).device
    largest = 0.0
    for x in image_list(images):
        padded = pad_to(as_batch(x).to(device), model.downsampling)
        z = model.hyper_analysis(model.g_a(padded))
        output = model.h_s(model.hyperprior.hard_round(z))
        largest = max(largest, float(output.abs().max()))
    return largest


@torch.no_grad()
def decode_seconds(models, image: torch.Tensor, repeats: int = 5) -> list[float]:
    """The median seconds each of ``models`` takes to decompress its own bitstream of
    ``image``, entropy decoding included (:func:`complexity.median_seconds`: a warm-up,
    then the models in turn)."""
    streams = [model.compress(as_batch(image)) for model in models]
    return complexity.median_seconds(
        [
            functools.partial(model.decompress, data)
            for model, data in zip(models, streams)
        ],
        repeats,
    )


def rd_curve(models, images, name: str, params=None, coder: str = "ans") -> RDCurve:
    """An ``RDCurve`` with one :func:`codec_point` per model (e.g. one per lambda),
    sorted by rate; ``params`` are the models' settings (default: their positions)."""
    return RDCurve.from_points(
        name,
        [codec_point(model, images, coder) for model in models],
        params,
        source="real bitstreams, measured by this notebook",
    )


def classical_curve(
    key: str,
    images,
    settings=None,
    name: str | None = None,
    with_ms_ssim: bool = False,
) -> RDCurve:
    """The R-D curve of the classical codec ``baselines.CLASSICAL[key]`` over
    ``images`` (a list or dict of ``[3, H, W]``) at each of ``settings`` (default: its
    own sweep), sorted by rate: each point the mean over images of :func:`measure`
    (its times are not kept, so there is no warm-up)."""
    codec = CLASSICAL[key]
    images = image_list(images)
    if not images:
        raise ValueError("classical_curve needs at least one image")
    settings = list(codec.settings if settings is None else settings)
    points = [
        mean_point(
            [
                measure(
                    x,
                    functools.partial(codec.compress, setting=s),
                    codec.decompress,
                    with_ms_ssim,
                )
                for x in images
            ]
        )
        for s in settings
    ]
    return RDCurve.from_points(
        name or codec.name,
        points,
        settings,
        source=f"{codec.library} {codec.version()}, measured by this notebook",
    )


# ---------------------------------------------------- many codecs on many images,
# cached


@dataclass(frozen=True)
class Codec:
    """What :func:`evaluate_codecs` runs: ``compress(x [3, H, W], setting) -> bytes``
    and ``decompress(bytes, setting) -> [3, H, W]``, at each of ``settings`` (lowest
    quality first). ``fingerprint`` changes whenever the codec's output could (weights,
    library version, options); it keys the cache."""

    name: str
    kind: str  # "classical" or "learned"
    settings: tuple
    compress: Callable[[torch.Tensor, object], bytes]
    decompress: Callable[[bytes, object], torch.Tensor]
    fingerprint: str
    source: str = ""
    decoder_macs_per_pixel: float | None = None


def classical(codec: ClassicalCodec) -> Codec:
    """A classical codec of ``baselines.CLASSICAL`` as a :class:`Codec`. Its fingerprint
    has the library's version and the source of ``baselines`` (where its options are
    set)."""
    return Codec(
        codec.name,
        "classical",
        codec.settings,
        codec.compress,
        lambda data, _: codec.decompress(data),
        cache.settings_hash(
            [
                codec.name,
                codec.library,
                codec.version(),
                cache.source_fingerprint("lic_teach.baselines"),
            ]
        ),
        f"{codec.library} {codec.version()}: {codec.parameter} "
        f"{', '.join(map(str, codec.settings))}"
        + (f"; {codec.options}" if codec.options else ""),
    )


def learned(name: str, models: dict, source: str = "", coder: str = "ans") -> Codec:
    """A family of image models ``{setting: model}`` (one per lambda or quality, lowest
    rate first) as a :class:`Codec` that writes real bitstreams with ``coder``. Its
    fingerprint has the weights, the source of the models' code (and of the entropy
    coder and bitstream it imports) and the device."""
    models = dict(models)
    if not models:
        raise ValueError(f"the learned codec {name!r} has no models")
    for model in models.values():
        model.eval()
        model.update()
    first = next(iter(models.values()))
    device = next(first.parameters()).device
    fingerprint = cache.settings_hash(
        [
            name,
            coder,
            device.type,
            *[
                (
                    type(m).__name__,
                    m.hyperparameters(),
                    cache.tensors_fingerprint(m.state_dict()),
                    cache.source_fingerprint(type(m).__module__),
                )
                for m in models.values()
            ],
        ]
    )
    return Codec(
        name,
        "learned",
        tuple(models),
        lambda x, s: models[s].compress(as_batch(x), coder=coder),
        lambda data, s: models[s].decompress(data),
        fingerprint,
        source,
        complexity.decoder_macs_per_pixel(first),
    )


def image_fingerprint(x: torch.Tensor) -> str:
    """A hash of an image's 8-bit pixels and shape."""
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous().numpy()
    digest = hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes())
    return digest.hexdigest()[: cache.HASH_LENGTH]


def run_point(codec: Codec, x: torch.Tensor, setting) -> dict:
    """:func:`measure` of ``codec`` at ``setting`` on ``x``: one row (no names)."""
    return measure(
        x,
        lambda image: codec.compress(image, setting),
        lambda data: codec.decompress(data, setting),
    )


def _write_json(path: Path, record: dict) -> None:
    """``record`` into ``path`` (``cache.atomic_write``); a cache that cannot be written
    is warned about, not fatal (the row itself is measured)."""
    try:
        cache.atomic_write(path, json.dumps(record))
    except OSError as error:
        warnings.warn(
            f"could not cache an evaluation row in {path.parent} ({error}); "
            "measuring without a cache",
            stacklevel=3,
        )


def _cached_row(path: Path) -> dict | None:
    """The row in ``path``, or None if it is absent, damaged or of another shape."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and set(row) == set(ROW_FIELDS) else None


@dataclass
class Evaluation:
    """Rows ``{codec, kind, setting, image, pixels, bytes, bpp, psnr, psnr_y,
    psnr_ycbcr, ms_ssim, encode_s, decode_s}``, one per codec, setting and image;
    ``missing`` holds ``{codec name: why it did not run}``."""

    rows: list[dict]
    codecs: dict[str, Codec]
    images: list[str]
    missing: dict[str, str] = field(default_factory=dict)

    def _rows(self, name: str) -> list[dict]:
        if name not in self.codecs:
            raise KeyError(
                f"{name!r} was not evaluated"
                + (f": {self.missing[name]}" if name in self.missing else "")
            )
        return [row for row in self.rows if row["codec"] == name]

    def per_image(
        self, name: str, metric: str = "psnr"
    ) -> list[tuple[list[float], list[float]]]:
        """``[(rates, qualities)]`` per image (in :attr:`images` order), one entry per
        setting."""
        rows = self._rows(name)
        settings = self.codecs[name].settings
        table = {(row["image"], row["setting"]): row for row in rows}
        return [
            (
                [table[image, str(s)]["bpp"] for s in settings],
                [quality(table[image, str(s)], metric) for s in settings],
            )
            for image in self.images
        ]

    def curve(
        self, name: str, metric: str = "psnr", average: str = "quality"
    ) -> RDCurve:
        """The image-averaged curve: rate and ``metric`` (in the curve's ``psnr`` field)
        averaged setting by setting, and the mean MS-SSIM where every row has one.
        ``average="mse"`` gives instead the PSNR of the mean squared error (``metric``
        "psnr")."""
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
            ms_ssim_values = [
                float(
                    np.mean(
                        [row["ms_ssim"] for row in rows if row["setting"] == str(s)]
                    )
                )
                for s in self.codecs[name].settings
            ]
        return RDCurve(
            name=name,
            bpp=rates.tolist(),
            psnr=qualities.tolist(),
            ms_ssim=ms_ssim_values,
            params=list(self.codecs[name].settings),
            source=self.codecs[name].source,
        )

    def bd_rate(self, anchor: str, test: str, metric: str = "psnr", **options) -> dict:
        """:func:`metrics.bd_rate_interval` of ``test`` against ``anchor`` over the
        images, or ``{"error": why}`` when the curves cannot be compared."""
        try:
            return {
                **bd_rate_interval(
                    self.per_image(anchor, metric),
                    self.per_image(test, metric),
                    **options,
                ),
                "error": None,
            }
        except ValueError as error:
            return {"error": str(error)}

    def seconds_per_megapixel(self, name: str) -> dict[str, float]:
        """Median encode and decode seconds per million pixels over the codec's rows."""
        rows = self._rows(name)
        return {
            kind: statistics.median(
                row[f"{kind}_s"] / row["pixels"] * 1e6 for row in rows
            )
            for kind in ("encode", "decode")
        }


QUALITY_METRICS = ("psnr", "psnr_y", "psnr_ycbcr", "ms_ssim", "ms_ssim_db")


def quality(row: dict, metric: str) -> float:
    """A row's ``metric``; ``"ms_ssim_db"`` is ``-10 log10(1 - MS-SSIM)``, the scale on
    which MS-SSIM curves are compared."""
    if metric not in QUALITY_METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; choose one of {', '.join(QUALITY_METRICS)}"
        )
    if metric.startswith("ms_ssim") and row["ms_ssim"] is None:
        raise ValueError(
            f"no MS-SSIM for {row['image']}: images must be larger than 160 pixels "
            "a side"
        )
    if metric == "ms_ssim_db":
        return -10 * math.log10(max(1e-12, 1 - row["ms_ssim"]))
    return row[metric]


def evaluate_codecs(
    codecs,
    images: dict,
    missing: dict | None = None,
    cache_dir=None,
    progress: bool = True,
) -> Evaluation:
    """Run every codec of ``codecs`` (a list of :class:`Codec`) at every setting on
    every image of ``images`` (``{name: [3, H, W]}``, taken to 8 bits first): real
    bytes, decoded and measured. Rows found in ``cache_dir`` (default: the book's cache,
    folder ``evaluations``; ``False``: none) under the same codec, setting and pixels
    are reused, timings included (they were measured when the row was first made). Each
    codec codes one image untimed before its first timed one (allocations, thread pools,
    a library's first call)."""
    images = {name: quantize_8bit(as_batch(x)[0].cpu()) for name, x in images.items()}
    if not images:
        raise ValueError("evaluate_codecs needs at least one image")
    names = [codec.name for codec in codecs]
    if len(set(names)) != len(names):
        raise ValueError(f"two codecs share a name: {names}")
    folder = (
        None
        if cache_dir is False
        else Path(cache_dir or cache.default_cache_dir()) / "evaluations"
    )
    version = cache.source_fingerprint("lic_teach.evaluate")  # how rows are measured
    keys = {name: image_fingerprint(x) for name, x in images.items()}
    rows, warm = [], set()
    jobs = [
        (codec, setting, name)
        for codec in codecs
        for setting in codec.settings
        for name in images
    ]
    for codec, setting, name in tqdm(
        jobs, desc="evaluating", disable=not progress, leave=False
    ):
        key = cache.settings_hash([version, codec.fingerprint, setting, keys[name]])
        path = folder / f"{key}.json" if folder else None
        row = _cached_row(path) if path else None
        if row is None:
            if codec.name not in warm:
                run_point(codec, images[name], setting)
                warm.add(codec.name)
            row = run_point(codec, images[name], setting)
            if path:
                _write_json(path, row)
        rows.append(
            {
                "codec": codec.name,
                "kind": codec.kind,
                "setting": str(setting),
                "image": name,
                "pixels": images[name].shape[-2] * images[name].shape[-1],
                **row,
            }
        )
    return Evaluation(
        rows, {codec.name: codec for codec in codecs}, list(images), dict(missing or {})
    )
