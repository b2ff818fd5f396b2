"""Measuring a codec: distortion (PSNR, MS-SSIM), rate (bits per pixel), the
rate-distortion curve they make (:class:`RDCurve`), and the Bjøntegaard deltas that
summarise how far apart two curves are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim


def _batched(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(
            f"expected an image [C, H, W] or a batch [B, C, H, W], got {tuple(x.shape)}"
        )
    return x


def _check_pair(
    x: torch.Tensor, x_hat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != x_hat.shape:
        raise ValueError(
            f"images differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}"
        )
    # one device: a decoder's output may be on the model's device, the original not
    return _batched(x).double(), _batched(x_hat).to(x.device).double()


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean squared error over all pixels and channels."""
    x, x_hat = _check_pair(x, x_hat)
    return float(((x - x_hat) ** 2).mean())


def psnr(x: torch.Tensor, x_hat: torch.Tensor, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(max_val^2 / MSE)``.

    The MSE is taken over every pixel and channel of the image (or batch), as in
    CompressAI's evaluation; identical images give ``inf``.
    """
    error = mse(x, x_hat)
    return math.inf if error == 0 else 10.0 * math.log10(max_val**2 / error)


def ms_ssim(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0) -> float:
    """Multi-scale SSIM (Wang et al. 2003) with the usual 5 scales and 11x11 window.

    Both sides of the image must be larger than 160 pixels (the window must fit at the
    coarsest of the five scales); smaller images raise ``ValueError``.
    """
    x, x_hat = _check_pair(x, x_hat)
    if min(x.shape[-2:]) <= 160:
        raise ValueError(
            f"MS-SSIM needs images larger than 160x160 pixels, got "
            f"{x.shape[-2]}x{x.shape[-1]}; use psnr() for small crops"
        )
    return float(
        _ms_ssim(x.float(), x_hat.float(), data_range=data_range, size_average=True)
    )


# ITU-R BT.601 luma and colour differences at full range, as JPEG's JFIF files define
# them (ITU-T T.871, section 7): rows give Y, Cb, Cr from R, G, B (Cb and Cr centred on
# 0 here).
YCBCR_FROM_RGB = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=torch.float64,
)


def to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` in [0, 1] as full-range BT.601 YCbCr (Cb, Cr in [-0.5,
    0.5])."""
    return torch.einsum("ij,...jhw->...ihw", YCBCR_FROM_RGB.to(x.device), x.double())


def psnr_ycbcr(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, float]:
    """PSNR of each of the Y, Cb and Cr planes (:func:`to_ycbcr`), and ``"ycbcr"``,
    their 6:1:1 weighted mean ``(6 Y + Cb + Cr) / 8``, the average video coding reports
    (Ohm et al., IEEE TCSVT 22(12), 2012), which counts luma six times as much as each
    chroma plane."""
    x, x_hat = _check_pair(x, x_hat)
    squared = (to_ycbcr(x) - to_ycbcr(x_hat)) ** 2  # [B, 3, H, W]
    planes = {}
    for index, name in enumerate(("y", "cb", "cr")):
        error = float(squared[:, index].mean())
        planes[name] = math.inf if error == 0 else 10.0 * math.log10(1.0 / error)
    planes["ycbcr"] = (6 * planes["y"] + planes["cb"] + planes["cr"]) / 8
    return planes


def psnr_from_mse(error: float, max_val: float = 1.0) -> float:
    """``10 log10(max_val^2 / error)`` for a training log: the MSE is floored at 1e-12,
    so a perfect batch reads 120 dB, not ``inf``."""
    return 10.0 * math.log10(max_val**2 / max(error, 1e-12))


def _likelihood_tensors(likelihoods) -> list[torch.Tensor]:
    if isinstance(likelihoods, torch.Tensor):
        return [likelihoods]
    if isinstance(likelihoods, Mapping):
        return list(likelihoods.values())
    if isinstance(likelihoods, Sequence):
        return list(likelihoods)
    raise TypeError(f"cannot take a rate from {type(likelihoods).__name__}")


def bits(likelihoods) -> torch.Tensor:
    """The ideal code length ``sum(-log2 p)`` in bits (Shannon 1948) of a likelihood
    tensor or a dict or list of them, as a tensor that gradients flow through: the rate
    term a training loss minimizes. :func:`bpp` gives the checked number for a report.
    """
    return sum(-torch.log2(p).sum() for p in _likelihood_tensors(likelihoods))


def _likelihood_bits(likelihoods) -> float:
    bits = 0.0
    for p in _likelihood_tensors(likelihoods):
        p = p.detach().double()
        if not torch.all((p > 0) & (p <= 1 + 1e-6)):
            raise ValueError(
                "likelihoods must lie in (0, 1]; got values outside that range"
            )
        bits += float(-torch.log2(p).sum())
    return bits


def bpp(rate, num_pixels: int) -> float:
    """Bits per pixel, from likelihoods or from a real bitstream.

    Args: rate: either what a model estimates (a likelihood tensor, or a dict or list of
    them, as in ``model(x)["likelihoods"]``: bits are ``sum(-log2 p)``), or what a codec
    wrote (``bytes``, or a byte count as ``int``: bits are ``8 * bytes``). num_pixels:
    pixels of the image (``H * W``, times the batch size for a batch).
    """
    if not isinstance(num_pixels, (int, np.integer)) or num_pixels <= 0:
        raise ValueError(f"num_pixels must be a positive integer, got {num_pixels!r}")
    if isinstance(rate, (bytes, bytearray, memoryview)):
        bits = 8.0 * len(rate)
    elif isinstance(rate, (int, np.integer)) and not isinstance(rate, bool):
        if rate < 0:
            raise ValueError(f"a byte count cannot be negative, got {rate}")
        bits = 8.0 * rate
    else:
        bits = _likelihood_bits(rate)
    return bits / num_pixels


# --------------------------------------------------------------- rate-distortion curves


def mean_point(points: Sequence[Mapping]) -> dict:
    """The mean over images of per-image figures (``{"bpp", "psnr", ...}``), key by key:
    per-image PSNR averaged, as CompressAI's evaluation does; a key that some image
    lacks a value for (``None``, such as MS-SSIM on a small crop) is ``None``."""
    if not points:
        raise ValueError("a mean point needs at least one image's figures")
    return {
        key: (
            None
            if any(point[key] is None for point in points)
            else float(np.mean([point[key] for point in points]))
        )
        for key in points[0]
    }


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

    @classmethod
    def from_points(
        cls,
        name: str,
        points: Sequence[Mapping],
        params: Sequence | None = None,
        source: str = "measured by this notebook",
    ) -> RDCurve:
        """The curve through ``points`` (one ``{"bpp", "psnr"}`` mapping per setting,
        with ``"ms_ssim"`` where measured), sorted by rate; ``params`` (one per point,
        default their positions) are sorted with them. ``ms_ssim`` is filled only where
        every point has one."""
        params = list(range(len(points)) if params is None else params)
        if len(params) != len(points):
            raise ValueError(f"{len(points)} points but {len(params)} params")
        order = sorted(range(len(points)), key=lambda i: points[i]["bpp"])
        with_ms_ssim = all(points[i].get("ms_ssim") is not None for i in order)
        return cls(
            name=name,
            bpp=[float(points[i]["bpp"]) for i in order],
            psnr=[float(points[i]["psnr"]) for i in order],
            ms_ssim=[float(points[i]["ms_ssim"]) for i in order]
            if with_ms_ssim
            else [],
            params=[params[i] for i in order],
            source=source,
        )


# ------------------------------------------------------------------ Bjøntegaard deltas


def _curve(rate, quality, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (log-rate, quality) arrays, sorted by quality."""
    rate = np.asarray(rate, dtype=np.float64).ravel()
    quality = np.asarray(quality, dtype=np.float64).ravel()
    if rate.shape != quality.shape:
        raise ValueError(f"{name}: {rate.size} rates but {quality.size} quality values")
    if rate.size < 2:
        raise ValueError(f"{name}: a curve needs at least 2 points, got {rate.size}")
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(quality))) or np.any(
        rate <= 0
    ):
        raise ValueError(f"{name}: rates must be positive and all values finite")
    order = np.argsort(quality)
    log_rate, quality = np.log(rate[order]), quality[order]
    if np.any(np.diff(quality) <= 0) or np.any(np.diff(log_rate) <= 0):
        raise ValueError(
            f"{name}: rate and quality must both increase strictly along the curve"
        )
    return log_rate, quality


def _mean_over(x_a, y_a, x_b, y_b, method: str) -> float:
    """Mean of ``y_b(x) - y_a(x)`` over the overlap of the two x ranges."""
    low, high = max(x_a[0], x_b[0]), min(x_a[-1], x_b[-1])
    if low >= high:
        raise ValueError(
            "the two curves do not overlap: the Bjøntegaard delta is undefined"
        )
    if method == "pchip":  # piecewise cubic Hermite, as in current JVET/VCEG practice
        from scipy.interpolate import PchipInterpolator  # scipy takes ~1 s to import

        integral = [
            PchipInterpolator(x, y).integrate(low, high)
            for x, y in ((x_a, y_a), (x_b, y_b))
        ]
    elif method == "cubic":  # Bjøntegaard's original: one cubic polynomial per curve
        if len(x_a) < 4 or len(x_b) < 4:
            raise ValueError("method 'cubic' needs at least 4 points per curve")
        integral = []
        for x, y in ((x_a, y_a), (x_b, y_b)):
            primitive = np.polyint(np.polyfit(x, y, 3))
            integral.append(np.polyval(primitive, high) - np.polyval(primitive, low))
    else:
        raise ValueError(f"unknown method {method!r}; choose 'pchip' or 'cubic'")
    return float((integral[1] - integral[0]) / (high - low))


def bd_rate(
    rate_anchor, quality_anchor, rate_test, quality_test, method: str = "pchip"
) -> float:
    """Bjøntegaard delta rate (VCEG-M33, 2001), in percent.

    The average rate difference of the test codec against the anchor at equal quality
    (PSNR in dB, or any quality measure): log-rate is interpolated as a function of
    quality for each curve, the gap is averaged over the quality range both curves
    cover, and ``100 * (exp(gap) - 1)`` is returned. Negative means the test codec
    needs fewer bits. ``method="pchip"`` (default) interpolates piecewise cubically,
    ``"cubic"`` fits one cubic polynomial per curve as in the original proposal.
    """
    log_a, q_a = _curve(rate_anchor, quality_anchor, "anchor")
    log_t, q_t = _curve(rate_test, quality_test, "test")
    return 100.0 * (math.exp(_mean_over(q_a, log_a, q_t, log_t, method)) - 1.0)


def bd_psnr(
    rate_anchor, psnr_anchor, rate_test, psnr_test, method: str = "pchip"
) -> float:
    """Bjøntegaard delta PSNR in dB: the average quality gain of the test codec at equal
    rate, over the log-rate range both curves cover. Positive means the test is better.
    """
    log_a, q_a = _curve(rate_anchor, psnr_anchor, "anchor")
    log_t, q_t = _curve(rate_test, psnr_test, "test")
    return _mean_over(log_a, q_a, log_t, q_t, method)


def overlap_fraction(quality_a, quality_b) -> float:
    """The share of the narrower of two quality ranges that both curves cover (0 to
    1)."""
    low, high = max(min(quality_a), min(quality_b)), min(max(quality_a), max(quality_b))
    narrower = min(max(quality_a) - min(quality_a), max(quality_b) - min(quality_b))
    return max(0.0, high - low) / narrower if narrower > 0 else 0.0


def _mean_curve(curves, images) -> tuple[np.ndarray, np.ndarray]:
    """The rate and quality of each codec setting averaged over ``images`` (indices into
    ``curves``, a list of per-image ``(rates, qualities)``; repeats allowed)."""
    rates = np.mean(
        [np.asarray(curves[i][0], dtype=np.float64) for i in images], axis=0
    )
    qualities = np.mean(
        [np.asarray(curves[i][1], dtype=np.float64) for i in images], axis=0
    )
    return rates, qualities


def bd_rate_interval(
    anchor_per_image,
    test_per_image,
    confidence: float = 0.95,
    resamples: int = 1000,
    min_overlap: float = 0.5,
    seed: int = 0,
) -> dict:
    """The BD-rate of the image-averaged curves with a bootstrap confidence interval
    over images (Efron and Tibshirani, "An introduction to the bootstrap", 1993, ch. 13:
    the percentile interval): the images are drawn again with replacement ``resamples``
    times, each draw's curves averaged setting by setting, and the BD-rate recomputed.
    ``anchor_per_image`` and ``test_per_image`` hold one ``(rates, qualities)`` pair per
    image, the same images in the same order. Returns ``{"bd_rate", "low", "high",
    "confidence", "images", "overlap"}``. Curves whose quality ranges share less than
    ``min_overlap`` of the narrower one are refused with a ``ValueError``: the integral
    would rest on a sliver of the range, or on extrapolation."""
    if len(anchor_per_image) != len(test_per_image) or not anchor_per_image:
        raise ValueError(
            f"need the same images for both codecs, got {len(anchor_per_image)} and "
            f"{len(test_per_image)} curves"
        )
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError("confidence must lie in (0, 1) and resamples be positive")
    for name, curves in (("anchor", anchor_per_image), ("test", test_per_image)):
        if not all(
            np.all(np.isfinite(np.asarray(c, dtype=np.float64)))
            for curve in curves
            for c in curve
        ):
            raise ValueError(
                f"the {name} has an infinite or undefined value (an image decoded "
                "exactly has an infinite PSNR): its curve cannot be integrated"
            )
    everyone = range(len(anchor_per_image))
    rate_a, quality_a = _mean_curve(anchor_per_image, everyone)
    rate_t, quality_t = _mean_curve(test_per_image, everyone)
    overlap = overlap_fraction(quality_a, quality_t)
    if overlap < min_overlap:
        raise ValueError(
            f"the curves share {100 * overlap:.0f}% of the narrower quality range "
            f"({min(quality_a):.2f}-{max(quality_a):.2f} against {min(quality_t):.2f}-"
            f"{max(quality_t):.2f}); at least {100 * min_overlap:.0f}% is needed for a "
            "BD-rate"
        )
    estimate = bd_rate(rate_a, quality_a, rate_t, quality_t)
    generator = np.random.default_rng(seed)
    draws, known = [], {}
    for _ in range(resamples):
        # a draw is a multiset of images: with few images most draws repeat one
        # already computed (4 images have 35 multisets), so each is computed once, on
        # the images in sorted order (the same BD-rate up to the rounding of the mean)
        images = tuple(
            sorted(generator.integers(0, len(anchor_per_image), len(anchor_per_image)))
        )
        if images not in known:
            try:
                known[images] = bd_rate(
                    *_mean_curve(anchor_per_image, images),
                    *_mean_curve(test_per_image, images),
                )
            except ValueError:  # curves that do not overlap or do not increase
                known[images] = None  # left out
        if known[images] is not None:
            draws.append(known[images])
    if len(draws) < resamples / 2:
        raise ValueError(
            f"only {len(draws)} of {resamples} resampled curves gave a BD-rate: the "
            "images disagree too much"
        )
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {
        "bd_rate": estimate,
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "images": len(anchor_per_image),
        "overlap": overlap,
    }


# real codecs gain several dB per doubling of rate; a curve below this is flat
FLAT_DB_PER_DOUBLING = 1.0


def bd_comparison(anchor, test) -> dict:
    """Curve ``test`` against ``anchor`` (anything with ``bpp`` and ``psnr`` lists), as
    the fields of :func:`bd_summary`: ``bd_rate`` (%), ``bd_psnr`` (dB), the PSNR range
    ``low`` to ``high`` they average over, ``flat`` (``{"anchor" or "test": dB per
    doubling of rate}`` for a curve gaining under ``FLAT_DB_PER_DOUBLING`` at its top,
    which makes the numbers unreliable; empty if none), or ``error`` (why it is not
    defined: no overlap, or a curve whose rate and PSNR do not both increase)."""
    try:
        rate = bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr)
        gain = bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr)
    except ValueError as error:
        return {"error": str(error)}
    flat = {
        name: slope
        for name, curve in (("anchor", anchor), ("test", test))
        for slope in [top_slope(curve.bpp, curve.psnr)]
        if slope < FLAT_DB_PER_DOUBLING
    }
    return {
        "bd_rate": rate,
        "bd_psnr": gain,
        "low": max(min(anchor.psnr), min(test.psnr)),
        "high": min(max(anchor.psnr), max(test.psnr)),
        "flat": flat,
        "error": None,
    }


def bd_caveat(comparison: dict) -> str:
    """Why a :func:`bd_comparison` says little, in words; empty if nothing is wrong."""
    if comparison["error"]:
        return f"not defined: {comparison['error']}"
    if comparison["flat"]:
        gains = " and ".join(
            f"the {name} gains {slope:.2f} dB"
            for name, slope in comparison["flat"].items()
        )
        return (
            f"unreliable: {gains} per doubling of rate at its top, "
            f"under {FLAT_DB_PER_DOUBLING:g}"
        )
    return ""


def bd_summary(anchor, test) -> str:
    """One line comparing R-D curve ``test`` with ``anchor``: the BD-rate with the PSNR
    range it averages over, and the BD-PSNR. A BD-rate over a narrow range, or on a
    curve that is nearly flat there, can swing by tens of percent, so the range always
    goes with the number, and a flat curve is flagged. Says why instead where a delta is
    undefined."""
    c = bd_comparison(anchor, test)
    if c["error"]:
        return bd_caveat(c)
    line = (
        f"BD-rate {c['bd_rate']:+.1f}% over {c['low']:.2f}-{c['high']:.2f} dB, "
        f"BD-PSNR {c['bd_psnr']:+.2f} dB"
    )
    return line + (f" ({bd_caveat(c)})" if c["flat"] else "")


def top_slope(rate, psnr) -> float:
    """PSNR gained per doubling of rate between the two highest-rate points of a curve.
    Codecs gain several dB there (high-rate theory: about 6 dB per extra bit per
    sample); a curve that gains under a dB is nearly flat, and a BD-rate over its top
    says little."""
    points = sorted(zip(rate, psnr))
    (r0, q0), (r1, q1) = points[-2], points[-1]
    return (q1 - q0) / math.log2(r1 / r0)
