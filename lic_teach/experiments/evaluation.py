"""The evaluation chapter's recipe: every model of the book and of the zoo against the
real classical encoders of ``baselines.CLASSICAL``, on the same images, with BD-rates
and their intervals over images (:func:`run`, :func:`bd_table`), and the measurements
behind its list of evaluation pitfalls (:func:`header_overhead`, :func:`leakage`)."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import baselines, bitstream, data, evaluate, metrics, tables, zoo
from ..budget import Budget
from ..models import CheckerboardContext, MeanScaleHyperprior
from .architectures import train_architectures

ANCHOR = "JPEG (Pillow)"
KODAK_ROOT = Path("data/kodak")
# Centre crops (None: whole images; MS-SSIM needs more than 160 pixels a side) and how
# many images (None: all). At 'cpu', Kodak's 24 images at 384 are 2.6 times as many
# pixels as the 5 bundled ones at 512.
SIDE = {"smoke": 192, "cpu": 512, "gpu": None}
KODAK_SIDE = {"smoke": 192, "cpu": 384, "gpu": None}
COUNT = {"smoke": 3, "cpu": None, "gpu": None}


def evaluation_images(B: Budget, kodak_root: Path = KODAK_ROOT) -> tuple[dict, str]:
    """``(images, description)``: the 24 Kodak images if they are in ``kodak_root``
    (nothing is downloaded here: ``data.kodak(root, download=True)`` fetches them), else
    the images no model of the book trains on, the held-out photos and the colour
    transfer images, cropped to the budget's size."""
    try:
        images, where = (
            data.kodak(kodak_root, download=False),
            f"the 24 Kodak images (from {kodak_root})",
        )
        side = KODAK_SIDE[B.name]
    except FileNotFoundError:
        side = SIDE[B.name]
        bundled = {**data.sample_images("test"), **data.sample_images("transfer")}
        grey = [name for name, x in bundled.items() if is_grey(x)]
        images = {name: x for name, x in bundled.items() if name not in grey}
        where = (
            f"Kodak is not in {kodak_root}, so the {len(images)} bundled colour "
            f"images no model trains on ({', '.join(images)}: the held-out photos and "
            f"the transfer images; the grey ones, {', '.join(grey)}, are left out, "
            "since their chroma decodes exactly and PSNR in YCbCr is infinite)"
        )
    count = COUNT[B.name]
    if side:
        images = {
            name: data.center_crop(x, min(side, *x.shape[-2:]))
            for name, x in images.items()
        }
        where += f", centre crops of up to {side}x{side}"
    chosen = dict(list(images.items())[:count])
    if len(chosen) < len(images):
        where += f", the first {len(chosen)}"
    return chosen, where


def is_grey(x: torch.Tensor) -> bool:
    """Whether an RGB image's three channels are equal (a grey image loaded as RGB)."""
    return bool(torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]))


def zoo_codecs(families=None) -> list[evaluate.Codec]:
    """Each zoo family (all its qualities) as a codec."""
    codecs = []
    for family in families or zoo.FAMILIES:
        found = [m for m in zoo.manifests() if m["family"] == family]
        if not found:
            raise ValueError(
                f"the zoo has no {family} models; train them with "
                f"make zoo FAMILIES={family}"
            )
        codecs.append(
            evaluate.learned(
                f"zoo {family}",
                {m["quality"]: zoo.load(family, m["quality"]) for m in found},
                f"the shipped zoo, {zoo.FAMILIES[family]} architecture, "
                f"trained {found[-1]['steps']} steps by make zoo",
            )
        )
    return codecs


def book_codecs(B: Budget) -> list[evaluate.Codec]:
    """The models trained live at budget ``B`` (from the cache when an earlier chapter
    trained them): the hyperprior chapter's mean-scale hyperprior and the
    context-model chapter's checkerboard model, each an entropy model trained on the
    zoo's factorized transforms (``train_architectures``), as those chapters train
    them. The end-to-end chapter's own live family is not among them: it would be
    trained again here on a fresh machine, and the zoo's factorized family is its
    architecture trained for longer."""
    families = train_architectures(
        {
            "mean-scale hyperprior": MeanScaleHyperprior,
            "checkerboard context": CheckerboardContext,
        },
        B,
        progress=False,
    )
    where = f"trained live at the '{B.name}' budget on the zoo's factorized transforms"
    return [
        evaluate.learned(
            "book mean-scale",
            families["mean-scale hyperprior"][0],
            f"the hyperprior chapter's models, {where}",
        ),
        evaluate.learned(
            "book checkerboard",
            families["checkerboard context"][0],
            f"the context-model chapter's checkerboard models, {where}",
        ),
    ]


def classical_codecs() -> tuple[list[evaluate.Codec], dict[str, str]]:
    """``(codecs, missing)``: every classical codec this machine runs, and why the
    others do not."""
    runnable, missing = baselines.available_codecs()
    return [evaluate.classical(codec) for codec in runnable.values()], missing


def run(B: Budget, images: dict, progress: bool = True) -> evaluate.Evaluation:
    """Every classical, book and zoo codec on ``images`` (cached row by row)."""
    classical, missing = classical_codecs()
    return evaluate.evaluate_codecs(
        classical + book_codecs(B) + zoo_codecs(), images, missing, progress=progress
    )


def _interval(result: dict) -> str:
    if result["error"]:
        return "not defined"
    return f"{result['bd_rate']:+.1f}% [{result['low']:+.1f}, {result['high']:+.1f}]"


def bd_rows(
    evaluation: evaluate.Evaluation, anchor: str = ANCHOR, resamples: int = 1000
) -> list[dict]:
    """For each codec: BD-rate against ``anchor`` in PSNR and in MS-SSIM (dB) with 95%
    bootstrap intervals over images, the BD-PSNR and PSNR range of the mean curves, and
    the median encode and decode time per megapixel and the decoder's MACs per pixel."""
    rows = []
    with_ms_ssim = all(row["ms_ssim"] is not None for row in evaluation.rows)
    anchor_curve = evaluation.curve(anchor)
    for name, codec in evaluation.codecs.items():
        comparison = metrics.bd_comparison(anchor_curve, evaluation.curve(name))
        rows.append(
            {
                "codec": name,
                "kind": codec.kind,
                "psnr": evaluation.bd_rate(anchor, name, resamples=resamples),
                "ms_ssim": (
                    evaluation.bd_rate(anchor, name, "ms_ssim_db", resamples=resamples)
                    if with_ms_ssim
                    else {"error": "images too small"}
                ),
                "comparison": comparison,
                **evaluation.seconds_per_megapixel(name),
                "macs": codec.decoder_macs_per_pixel,
            }
        )
    return rows


def bd_table(rows: list[dict], missing: dict, caption: str, name: str) -> tables.Table:
    """:func:`bd_rows` as a table; a curve too flat at its top to trust is flagged, and
    codecs that could not run get a row saying why."""
    body = []
    for row in rows:
        c = row["comparison"]
        body.append(
            [
                row["codec"],
                _interval(row["psnr"]),
                _interval(row["ms_ssim"]),
                "not defined"
                if c["error"]
                else f"{c['bd_psnr']:+.2f} dB over {c['low']:.1f}-{c['high']:.1f} dB"
                + (f" ({metrics.bd_caveat(c)})" if c["flat"] else ""),
                f"{1000 * row['encode']:.0f}",
                f"{1000 * row['decode']:.0f}",
                "" if row["macs"] is None else f"{row['macs']:,.0f}",
            ]
        )
    for codec, why in missing.items():
        body.append([codec, f"missing: {why}", "", "", "", "", ""])
    return tables.Table(
        [
            "codec",
            "BD-rate, PSNR [95% interval]",
            "BD-rate, MS-SSIM [95% interval]",
            "BD-PSNR over the common range",
            "encode (ms/MP)",
            "decode (ms/MP)",
            "decoder MACs/pixel",
        ],
        body,
        caption,
        name,
    )


# --------------------------------------------------------------------------- the ladder

# The literature's order of the entropy models, fewest bits at equal quality last:
# Ballé et al. 2017 (factorized), Ballé et al. 2018 (scale hyperprior), Minnen et al.
# 2018 (mean-scale), He et al. 2021 (checkerboard context).
LADDER = ("factorized", "scale", "mean-scale", "checkerboard")
MIN_TOP_SLOPE = 1.0  # dB per doubling of rate at a curve's top: less is a flat top


def ladder(
    evaluation: evaluate.Evaluation,
    rungs: list[str],
    anchor: str = ANCHOR,
    resamples: int = 1000,
) -> list[dict]:
    """One entry per codec of ``rungs`` (names in ``evaluation``, in the ladder's
    order): its BD-rate against ``anchor`` and against the rung before it (each with
    its 95% bootstrap interval over images, :meth:`evaluate.Evaluation.bd_rate`), the
    rates its settings span (bpp of the image-averaged curve) and the PSNR it gains per
    doubling of rate at its top (:func:`metrics.top_slope`)."""
    entries = []
    for number, name in enumerate(rungs):
        curve = evaluation.curve(name)
        below = rungs[number - 1] if number else None
        entries.append(
            {
                "codec": name,
                "bpp_span": [min(curve.bpp), max(curve.bpp)],
                "top_slope_db": metrics.top_slope(curve.bpp, curve.psnr),
                "against_anchor": evaluation.bd_rate(anchor, name, resamples=resamples),
                "against_previous": (
                    None
                    if below is None
                    else evaluation.bd_rate(below, name, resamples=resamples)
                ),
            }
        )
    return entries


def ladder_holds(entries: list[dict]) -> dict[str, bool]:
    """The ladder's targets (issue 34), each ``True`` where it holds: the first rung
    beats the anchor with its whole interval below 0 (``first_beats_anchor``); each
    rung after it has a BD-rate below 0 against the one before (``ordered``); every
    curve gains at least :data:`MIN_TOP_SLOPE` dB per doubling at its top
    (``no_flat_top``)."""
    first = entries[0]["against_anchor"]
    return {
        "first_beats_anchor": not first["error"] and first["high"] < 0,
        "ordered": all(
            not e["against_previous"]["error"] and e["against_previous"]["bd_rate"] < 0
            for e in entries[1:]
        ),
        "no_flat_top": all(e["top_slope_db"] >= MIN_TOP_SLOPE for e in entries),
    }


def ladder_table(entries: list[dict], caption: str, name: str) -> tables.Table:
    """:func:`ladder` as a table, one row a rung."""
    return tables.Table(
        [
            "codec",
            "rates (bpp)",
            "top slope (dB per doubling)",
            "BD-rate against JPEG [95% interval]",
            "BD-rate against the rung before [95% interval]",
        ],
        [
            [
                e["codec"],
                f"{e['bpp_span'][0]:.2f}-{e['bpp_span'][1]:.2f}",
                f"{e['top_slope_db']:.2f}",
                _interval(e["against_anchor"]),
                ""
                if e["against_previous"] is None
                else _interval(e["against_previous"]),
            ]
            for e in entries
        ],
        caption,
        name,
    )


# ------------------------------------------------------------------ evaluation pitfalls


def header_overhead(
    x: torch.Tensor, model, sides=(32, 64, 128, 256, 512), quality: int = 50
) -> list[dict]:
    """For centre crops of ``x`` of each side: the bytes of Pillow's JPEG
    (``CLASSICAL["jpeg"]``) at ``quality`` that are headers (markers and tables,
    :func:`baselines.jpeg_header_bytes`) and those of ``model``'s bitstream that are not
    entropy-coded strings, each with its share of the file and the bits per pixel it
    costs."""
    rows = []
    for side in sides:
        crop = data.center_crop(x, side)
        jpeg_total = len(baselines.CLASSICAL["jpeg"].compress(crop, quality))
        jpeg_header = baselines.jpeg_header_bytes(crop, quality)
        stream = model.compress(data.as_batch(crop))
        _, strings = bitstream.unpack(stream)
        ours_header = len(stream) - sum(len(s) for s in strings)
        rows.append(
            {
                "side": side,
                "jpeg_bytes": jpeg_total,
                "jpeg_header": jpeg_header,
                "jpeg_header_bpp": 8 * jpeg_header / side**2,
                "model_bytes": len(stream),
                "model_header": ours_header,
                "model_header_bpp": 8 * ours_header / side**2,
            }
        )
    return rows


def leakage(
    evaluation: evaluate.Evaluation, codec: str, side: int, anchor: str = ANCHOR
) -> dict:
    """BD-rate of ``codec`` against ``anchor`` on the photos the zoo trained on (centre
    crops of ``side``, at most the photo's size: give the evaluation images' side)
    beside the same on the evaluation images: how much a test set that leaked into
    training flatters a learned codec."""
    train = {
        name: data.center_crop(x, min(side, *x.shape[-2:]))
        for name, x in data.sample_images("train").items()
    }
    chosen = [evaluation.codecs[anchor], evaluation.codecs[codec]]
    seen = evaluate.evaluate_codecs(chosen, train, progress=False)
    return {
        "trained on": seen.bd_rate(anchor, codec, resamples=300),
        "never seen": evaluation.bd_rate(anchor, codec, resamples=300),
        "images": list(train),
    }
