"""The classical codecs of ``baselines.CLASSICAL`` and the cached evaluation of many
codecs on many images (``evaluate.evaluate_codecs``): real bytes that decode to the
measured image, sweeps that span the usual rates, missing libraries reported, bad bytes
refused, rows cached by content, and the curves, BD-rates and YCbCr PSNR built from
them."""

import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lic_teach import baselines, complexity, data, evaluate, metrics, plots
from lic_teach.experiments import evaluation
from lic_teach.models import CheckerboardContext, FactorizedPrior, ScaleHyperprior

RUNNABLE, MISSING = baselines.available_codecs()


@pytest.fixture(scope="module")
def photo():
    return data.quantize_8bit(
        data.center_crop(data.sample_images("test")["astronaut"], 256)
    )


def test_every_codec_is_installed_here():
    """pyproject.toml declares imagecodecs and pillow-heif: on the test machine nothing
    is missing."""
    assert not MISSING, MISSING
    assert len(RUNNABLE) == 8


@pytest.mark.parametrize("key", list(baselines.CLASSICAL))
def test_the_bytes_decode_to_the_measured_image(key, photo):
    """The row's PSNR is that of what the library decodes from the bytes, decoded again
    in a fresh call; an odd-sized image keeps its size."""
    codec = evaluate.classical(RUNNABLE[key])
    odd = photo[:, :67, :45]
    for x in (photo, odd):
        for setting in (codec.settings[0], codec.settings[-1]):
            row = evaluate.run_point(codec, x, setting)
            content = codec.compress(x, setting)
            again = RUNNABLE[key].decompress(content)
            assert again.shape == x.shape
            assert row["bytes"] == len(content) > 0
            assert row["psnr"] == pytest.approx(metrics.psnr(x, again), abs=1e-9)
            assert row["bpp"] == pytest.approx(
                8 * len(content) / (x.shape[1] * x.shape[2])
            )


@pytest.mark.parametrize("key", list(baselines.CLASSICAL))
def test_each_sweep_spans_low_to_high_rates(key, photo):
    codec = RUNNABLE[key]
    rows = [
        evaluate.run_point(evaluate.classical(codec), photo, s)
        for s in (codec.settings[0], codec.settings[-1])
    ]
    assert rows[0]["bpp"] < 0.45, [r["bpp"] for r in rows]
    assert rows[-1]["bpp"] > 1.3, [r["bpp"] for r in rows]
    assert rows[0]["psnr"] < rows[-1]["psnr"]


@pytest.mark.parametrize("key", list(baselines.CLASSICAL))
def test_damaged_bytes_raise_a_clear_error(key, photo):
    codec = RUNNABLE[key]
    content = codec.compress(photo, codec.settings[2])
    for bad in (b"", b"not an image at all", content[:20]):
        with pytest.raises(ValueError, match=codec.name.split(" ")[0]):
            codec.decompress(bad)


def test_an_image_a_library_cannot_code_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"WebP \(libwebp\) could not code a 16400x2 image"
    ):
        RUNNABLE["webp"].compress(torch.rand(3, 2, 16400), 50)


@pytest.mark.parametrize("key", list(baselines.CLASSICAL))
def test_every_codec_codes_a_single_pixel(key):
    x = data.quantize_8bit(torch.rand(3, 1, 1))
    assert RUNNABLE[key].decompress(
        RUNNABLE[key].compress(x, RUNNABLE[key].settings[-1])
    ).shape == (3, 1, 1)


def test_a_missing_library_is_reported_not_dropped(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "imagecodecs", None
    )  # import imagecodecs now raises ImportError
    runnable, missing = baselines.available_codecs()
    assert set(runnable) == {"jpeg", "heic"}
    assert len(missing) == 6
    assert all("pip install imagecodecs" in why for why in missing.values())
    codecs, missing_here = evaluation.classical_codecs()
    assert [c.name for c in codecs] == [
        "JPEG (Pillow)",
        "HEIC (x265, HEVC intra)",
    ]
    assert missing_here == missing
    with pytest.raises(KeyError, match="no classical codec 'bpg'"):
        baselines.available_codecs(["bpg"])


def test_grey_and_rgba_images_come_in_as_rgb(tmp_path, photo):
    """Grey and RGBA files are loaded as RGB (data.load_image) before any codec sees
    them; a codec given anything but [3, H, W] refuses it."""
    grey, rgba = tmp_path / "grey.png", tmp_path / "rgba.png"
    Image.fromarray((photo[0] * 255).round().byte().numpy()).save(grey)
    Image.fromarray(
        np.dstack(
            [
                (photo * 255).round().byte().permute(1, 2, 0).numpy(),
                np.full(photo.shape[1:], 128, np.uint8),
            ]
        )
    ).save(rgba)
    for path in (grey, rgba):
        x = data.load_image(path)
        assert x.shape == photo.shape
        assert (
            RUNNABLE["webp"].decompress(RUNNABLE["webp"].compress(x, 50)).shape
            == x.shape
        )
    with pytest.raises(ValueError, match=r"RGB image \[3, H, W\]"):
        RUNNABLE["jpeg"].compress(photo[:1], 50)


# ------------------------------------------------------------------ evaluate_codecs


def _counting(name="counting JPEG"):
    """Pillow's JPEG as a Codec that counts its encodes."""
    calls = []
    jpeg = baselines.CLASSICAL["jpeg"]

    def compress(x, setting):
        calls.append(setting)
        return jpeg.compress(x, setting)

    return evaluate.Codec(
        name,
        "classical",
        (20, 50, 80),
        compress,
        lambda data, _: jpeg.decompress(data),
        fingerprint="counting-jpeg-1",
    ), calls


def test_rows_are_cached_by_content(tmp_path, photo):
    codec, calls = _counting()
    images = {"a": photo[:, :96, :96], "b": photo[:, 96:192, :96]}
    first = evaluate.evaluate_codecs(
        [codec], images, cache_dir=tmp_path, progress=False
    )
    assert len(first.rows) == 6
    assert len(calls) == 7
    again = evaluate.evaluate_codecs(
        [codec], images, cache_dir=tmp_path, progress=False
    )
    assert len(calls) == 7
    assert again.rows == first.rows
    changed = {"a": images["a"], "b": images["b"].flip(-1)}
    evaluate.evaluate_codecs([codec], changed, cache_dir=tmp_path, progress=False)
    assert len(calls) == 11  # new pixels, new rows
    for index, path in enumerate(sorted((tmp_path / "evaluations").glob("*.json"))):
        path.write_text(["{damaged", "[1, 2]", '{"bpp": 1}'][index % 3])
    evaluate.evaluate_codecs([codec], images, cache_dir=tmp_path, progress=False)
    assert len(calls) == 18  # damaged rows measured again
    assert not list((tmp_path / "evaluations").glob("*.partial"))


def test_a_learned_codec_writes_real_bitstreams(tmp_path, photo):
    torch.manual_seed(0)
    models = {q: FactorizedPrior(8, 12) for q in (1, 2)}
    codec = evaluate.learned("tiny", models)
    result = evaluate.evaluate_codecs(
        [codec], {"a": photo[:, :64, :80]}, cache_dir=False, progress=False
    )
    for row, model in zip(result.rows, models.values()):
        content = model.compress(photo[None, :, :64, :80])
        assert row["bytes"] == len(content)
        decoded = data.quantize_8bit(
            model.decompress(content)
        )  # what a decoder writes to a file
        assert row["psnr"] == pytest.approx(metrics.psnr(photo[:, :64, :80], decoded))
    assert codec.decoder_macs_per_pixel == pytest.approx(
        complexity.macs_per_pixel(models[1].g_s, (1, 12, 16, 16)), rel=0.02
    )
    with pytest.raises(ValueError, match="share a name"):
        evaluate.evaluate_codecs(
            [codec, codec], {"a": photo}, cache_dir=False, progress=False
        )
    with pytest.raises(ValueError, match="has no models"):
        evaluate.learned("empty", {})


def test_new_weights_are_measured_again(tmp_path, photo):
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    image = {"a": photo[:, :64, :64]}
    before = evaluate.learned("m", {1: model})
    evaluate.evaluate_codecs([before], image, cache_dir=tmp_path, progress=False)
    with torch.no_grad():
        model.g_s[0].weight.mul_(0.5)
    after = evaluate.learned("m", {1: model})
    evaluate.evaluate_codecs([after], image, cache_dir=tmp_path, progress=False)
    assert after.fingerprint != before.fingerprint
    assert len(list((tmp_path / "evaluations").glob("*.json"))) == 2


def test_an_unwritable_cache_is_warned_about_not_fatal(tmp_path, photo):
    codec, calls = _counting()
    (tmp_path / "evaluations").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not cache an evaluation row"):
        result = evaluate.evaluate_codecs(
            [codec], {"a": photo[:, :64, :64]}, cache_dir=tmp_path, progress=False
        )
    assert len(result.rows) == 3


def test_decoder_macs_count_what_the_decoder_runs():
    hyperprior, context = ScaleHyperprior(8, 12), CheckerboardContext(8, 12)
    transforms = complexity.macs_per_pixel(
        hyperprior.g_s, (1, 12, 16, 16)
    ) + complexity.macs_per_pixel(hyperprior.h_s, (1, 8, 4, 4), pixels=256 * 256)
    assert complexity.decoder_macs_per_pixel(hyperprior) == pytest.approx(
        transforms, rel=0.02
    )
    prediction = complexity.macs_per_pixel(
        context.context_prediction, (1, 12, 16, 16), pixels=256 * 256
    )
    assert (
        complexity.decoder_macs_per_pixel(context)
        > complexity.decoder_macs_per_pixel(hyperprior) + prediction / 2
    )


def _synthetic(per_image):
    """An Evaluation from ``{codec: [(rates, psnrs) per image]}``."""
    rows, codecs = [], {}
    for name, curves in per_image.items():
        settings = tuple(range(len(curves[0][0])))
        codecs[name] = evaluate.Codec(name, "classical", settings, None, None, name)
        for index, (rates, psnrs) in enumerate(curves):
            for setting, rate, value in zip(settings, rates, psnrs):
                rows.append(
                    {
                        "codec": name,
                        "kind": "classical",
                        "setting": str(setting),
                        "image": f"i{index}",
                        "pixels": 10**6,
                        "bpp": rate,
                        "psnr": value,
                        "psnr_y": value,
                        "psnr_ycbcr": value,
                        "ms_ssim": None,
                        "encode_s": 0.1,
                        "decode_s": 0.01,
                    }
                )
    return evaluate.Evaluation(
        rows, codecs, [f"i{i}" for i in range(len(next(iter(per_image.values()))))]
    )


def test_curves_and_bd_rates_of_an_evaluation():
    generator = np.random.default_rng(3)
    anchor, test = [], []
    for _ in range(12):
        psnrs = np.array([26.0, 29.0, 32.0, 35.0]) + generator.normal(0, 2)
        rates = 0.5 * 2 ** ((psnrs - 30) / 6) * math.exp(generator.normal(0, 0.2))
        anchor.append((rates.tolist(), psnrs.tolist()))
        test.append(
            (
                (0.8 * rates * math.exp(generator.normal(0, 0.05))).tolist(),
                psnrs.tolist(),
            )
        )
    result = _synthetic({"anchor": anchor, "test": test})
    interval = result.bd_rate("anchor", "test", resamples=300)
    assert interval["error"] is None
    assert interval["low"] < -20 < interval["high"]
    assert interval["high"] - interval["low"] < 10
    by_mse = result.curve("anchor", average="mse")
    assert all(
        m < p for m, p in zip(by_mse.psnr, result.curve("anchor").psnr)
    )  # Jensen: mean PSNR >= PSNR of mean MSE
    assert result.seconds_per_megapixel("test") == {
        "encode": pytest.approx(0.1),
        "decode": pytest.approx(0.01),
    }
    far = _synthetic(
        {"anchor": anchor, "test": [(r, [q + 30 for q in p]) for r, p in test]}
    )
    assert "share" in far.bd_rate("anchor", "test")["error"]
    with pytest.raises(KeyError, match="was not evaluated"):
        result.curve("WebP")
    assert "no MS-SSIM" in result.bd_rate("anchor", "test", "ms_ssim_db")["error"]


def test_the_table_names_missing_codecs():
    generator = np.random.default_rng(0)
    curves = [
        (
            [0.2, 0.4, 0.8],
            (np.array([27.0, 30.0, 33.0]) + generator.normal(0, 1)).tolist(),
        )
        for _ in range(4)
    ]
    result = _synthetic(
        {
            evaluation.ANCHOR: curves,
            "other": [([r * 0.9 for r in c[0]], c[1]) for c in curves],
        }
    )
    rows = evaluation.bd_rows(result, resamples=50)
    table = evaluation.bd_table(
        rows,
        {"HEIC (x265, HEVC intra)": "pillow-heif is not installed"},
        "A table.",
        "tbl-x",
    )
    assert table.rows[-1][:2] == [
        "HEIC (x265, HEVC intra)",
        "missing: pillow-heif is not installed",
    ]
    assert table.rows[1][1].startswith("-10.0%")
    assert "unreliable" not in table.rows[1][3]
    flat = _synthetic(
        {
            evaluation.ANCHOR: curves,
            "flat": [(c[0], [c[1][0], c[1][1], c[1][1] + 0.2]) for c in curves],
        }
    )
    row = evaluation.bd_table(
        evaluation.bd_rows(flat, resamples=50), {}, "A table.", "tbl-x"
    ).rows[1]
    assert "unreliable: the test gains 0.20 dB per doubling" in row[3]


def test_bd_figure_draws_the_gap_over_the_common_range():
    anchor = metrics.RDCurve("a", [0.2, 0.4, 0.8, 1.6], [26.0, 29.0, 32.0, 35.0])
    test = metrics.RDCurve("t", [0.18, 0.36, 0.72], [27.0, 30.0, 33.0])
    figure = plots.bd_figure(anchor, test)
    gap = [trace for trace in figure.data if trace.fill == "toself"][0]
    assert min(gap.x) == pytest.approx(27.0)
    assert max(gap.x) == pytest.approx(33.0)
    with pytest.raises(ValueError, match="increase strictly"):
        plots.bd_figure(
            anchor, metrics.RDCurve("flat", [0.2, 0.4, 0.8], [27.0, 27.0, 30.0])
        )


def test_header_overhead_is_the_part_that_is_not_coded_data(photo):
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12).eval()
    rows = evaluation.header_overhead(photo, model, sides=(32, 128))
    assert [r["jpeg_header"] for r in rows] == [
        baselines.jpeg_header_bytes(data.center_crop(photo, s), 50) for s in (32, 128)
    ]
    assert (
        rows[0]["model_header"] == rows[1]["model_header"] < rows[1]["model_bytes"]
    )  # a fixed-size header
    assert rows[0]["jpeg_header_bpp"] == pytest.approx(16 * rows[1]["jpeg_header_bpp"])


# ------------------------------------------------------------------------ YCbCr PSNR


def test_psnr_ycbcr():
    torch.manual_seed(0)
    x = torch.rand(3, 32, 32)
    white = metrics.to_ycbcr(torch.ones(3, 1, 1))[:, 0, 0]
    assert torch.allclose(
        white, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6
    )
    grey_error = x + 0.01  # the same error in R, G and B
    planes = metrics.psnr_ycbcr(x, grey_error)
    assert planes["y"] == pytest.approx(40.0)
    assert planes["cb"] > 100
    assert planes["cr"] > 100
    assert planes["ycbcr"] == pytest.approx(
        (6 * planes["y"] + planes["cb"] + planes["cr"]) / 8
    )
    assert metrics.psnr_ycbcr(x, x)["ycbcr"] == math.inf


def test_without_kodak_the_chapter_says_so_and_uses_the_bundled_images(tmp_path):
    from lic_teach.budget import budget

    images, where = evaluation.evaluation_images(budget("smoke"), tmp_path / "no-kodak")
    assert where.startswith(f"Kodak is not in {tmp_path / 'no-kodak'}")
    assert "192x192" in where
    assert len(images) == evaluation.COUNT["smoke"]
    assert all(x.shape == (3, 192, 192) for x in images.values())
    assert not set(images) & set(
        data.sample_images("train")
    )  # nothing the zoo trained on
    assert "grass" in where
    assert not any(evaluation.is_grey(x) for x in images.values())
    (tmp_path / "damaged").mkdir()
    for name in data.kodak_checksums():
        (tmp_path / "damaged" / name).write_bytes(b"not a PNG")
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        evaluation.evaluation_images(budget("smoke"), tmp_path / "damaged")


def test_with_kodak_the_chapter_uses_it(monkeypatch, tmp_path):
    from lic_teach.budget import budget

    fake = {f"kodim{i:02d}": torch.rand(3, 512, 768) for i in range(1, 25)}
    monkeypatch.setattr(data, "kodak", lambda root, download: fake)
    images, where = evaluation.evaluation_images(budget("cpu"), tmp_path)
    assert where.startswith("the 24 Kodak images")
    assert len(images) == 24
    assert all(x.shape == (3, 384, 384) for x in images.values())
    with pytest.warns(UserWarning, match="CUDA is not available"):
        gpu = budget("gpu")
    images, _ = evaluation.evaluation_images(gpu, tmp_path)
    assert all(x.shape == (3, 512, 768) for x in images.values())


def test_median_seconds_takes_turns_after_a_warm_up():
    order = []
    seconds = complexity.median_seconds(
        [lambda: order.append("a"), lambda: order.append("b")], repeats=3
    )
    assert order == ["a", "b"] * 4
    assert len(seconds) == 2
    assert all(s >= 0 for s in seconds)
    with pytest.raises(ValueError, match="repeats must be positive"):
        complexity.median_seconds([lambda: None], repeats=0)
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12).eval()
    (spent,) = evaluate.decode_seconds([model], torch.rand(3, 32, 32), repeats=2)
    assert spent > 0


def _ladder_curves(factors, generator):
    """Per-image curves of codecs that need ``factor`` times the anchor's rate."""
    anchor = []
    for _ in range(5):
        psnrs = np.array([27.0, 30.0, 33.0, 36.0]) + generator.normal(0, 1)
        anchor.append(((0.4 * 2 ** ((psnrs - 30) / 4)).tolist(), psnrs.tolist()))
    codecs = {evaluation.ANCHOR: anchor}
    for name, factor in factors.items():
        codecs[name] = [([factor * r for r in rates], p) for rates, p in anchor]
    return codecs


def test_the_ladder_reads_each_rung_against_jpeg_and_the_rung_before():
    generator = np.random.default_rng(1)
    result = _synthetic(_ladder_curves({"a": 0.8, "b": 0.7, "c": 0.75}, generator))
    entries = evaluation.ladder(result, ["a", "b", "c"], resamples=100)
    assert [e["codec"] for e in entries] == ["a", "b", "c"]
    assert entries[0]["against_anchor"]["bd_rate"] == pytest.approx(-20, abs=0.1)
    assert entries[0]["against_previous"] is None
    assert entries[1]["against_previous"]["bd_rate"] == pytest.approx(-12.5, abs=0.1)
    assert entries[2]["against_previous"]["bd_rate"] == pytest.approx(100 / 14, abs=0.1)
    assert entries[0]["top_slope_db"] == pytest.approx(4.0, abs=1e-6)
    holds = evaluation.ladder_holds(entries)
    assert holds == {"first_beats_anchor": True, "ordered": False, "no_flat_top": True}
    assert evaluation.ladder_holds(entries[:2])["ordered"]
    flat = _synthetic(
        {
            **_ladder_curves({"a": 0.8}, generator),
            "flat": [
                ([0.2, 0.4, 0.8, 1.6], [27.0, 30.0, 32.0, 32.5]) for _ in range(5)
            ],
        }
    )
    topped = evaluation.ladder(flat, ["a", "flat"], resamples=50)
    assert topped[1]["top_slope_db"] == pytest.approx(0.5)
    assert not evaluation.ladder_holds(topped)["no_flat_top"]
    table = evaluation.ladder_table(entries, "The ladder.", "tbl-ladder")
    assert table.rows[1][4].startswith("-12.5%")
    assert table.rows[0][4] == ""
