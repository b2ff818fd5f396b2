import itertools

import pytest
import torch

from lic_teach import baselines, data, evaluate, metrics
from lic_teach.models import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FactorizedPrior(8, 12).eval()


@pytest.fixture(scope="module")
def photo():
    return data.center_crop(data.sample_images("test")["astronaut"], 256)


def _ticking_clock(monkeypatch):
    """``complexity.clock`` made to read 0, 1, 2, ...: every timed span is 1 s."""
    ticks = itertools.count()
    monkeypatch.setattr(evaluate.complexity, "clock", lambda: float(next(ticks)))


def test_measure_reports_real_bytes_and_the_8_bit_decoded_image(photo, monkeypatch):
    """What a decoder writes to a file is 8-bit: the distortion is that of the decoded
    image rounded to 8 bits, not of the float output."""
    _ticking_clock(monkeypatch)
    offset = torch.full_like(photo, 0.3 / 255)  # a third of a level: rounds away

    def decode(stream):
        return (baselines.CLASSICAL["jpeg"].decompress(stream) + offset).clamp(0, 1)

    row = evaluate.measure(
        photo, lambda x: baselines.CLASSICAL["jpeg"].compress(x, 50), decode
    )
    stream = baselines.CLASSICAL["jpeg"].compress(photo, 50)
    decoded = baselines.CLASSICAL["jpeg"].decompress(stream)
    assert set(row) == set(evaluate.ROW_FIELDS)
    assert row["bytes"] == len(stream)
    assert row["bpp"] == pytest.approx(8 * len(stream) / 256**2)
    assert row["psnr"] == pytest.approx(metrics.psnr(photo, decoded))
    assert row["psnr_y"] == pytest.approx(metrics.psnr_ycbcr(photo, decoded)["y"])
    assert row["ms_ssim"] == pytest.approx(metrics.ms_ssim(photo, decoded))
    assert row["encode_s"] == 1.0
    assert row["decode_s"] == 1.0


def test_measure_codes_the_8_bit_image_and_checks_the_decoded_shape(photo):
    given = []

    def encode(x):
        given.append(x)
        return b"\x00" * 10

    noisy = photo + 0.4 / 255
    row = evaluate.measure(noisy, encode, lambda _: photo, with_ms_ssim=False)
    assert torch.equal(given[0], data.quantize_8bit(noisy))
    assert row["ms_ssim"] is None
    small = evaluate.measure(photo[:, :64, :64], encode, lambda _: photo[:, :64, :64])
    assert small["ms_ssim"] is None  # MS-SSIM needs more than 160 pixels a side
    with pytest.raises(ValueError, match="decoded an image of shape"):
        evaluate.measure(photo, encode, lambda _: photo[:, :8])


def test_codec_point_uses_real_bytes(model):
    images = [data.sample_images("test")["astronaut"][:, :40, :56]]
    point = evaluate.codec_point(model, images)
    data_ = model.compress(images[0])
    assert point["bpp"] == pytest.approx(8 * len(data_) / (40 * 56))
    assert point["psnr"] == pytest.approx(
        metrics.psnr(images[0], data.quantize_8bit(model.decompress(data_)))
    )
    assert point["estimated_bpp"] > 0
    assert point["encode_s"] > 0
    assert point["decode_s"] > 0
    assert point["bpp"] > point["estimated_bpp"]  # header and stream overhead


def test_codec_point_is_the_mean_of_measure_over_images(model):
    images = {
        name: x[:, 100:164, 100:164] for name, x in data.sample_images("test").items()
    }
    point = evaluate.codec_point(model, images, with_ms_ssim=True)
    rows = [
        evaluate.measure(x, model.compress, model.decompress) for x in images.values()
    ]
    for key in ("bpp", "psnr", "psnr_ycbcr"):
        assert point[key] == pytest.approx(sum(r[key] for r in rows) / len(rows))
    assert point["ms_ssim"] is None  # crops of 64: too small for MS-SSIM


def test_codec_point_times_after_an_untimed_warm_up(model, monkeypatch):
    """The first encode and decode pay one-off costs; they are run once, untimed."""
    images = [data.sample_images("test")["astronaut"][:, :32, :32]] * 2
    calls = []
    _ticking_clock(monkeypatch)
    point = evaluate.codec_point(
        model,
        images,
        encode=lambda x: calls.append("e") or model.compress(x[0]),
        decode=lambda d: calls.append("d") or model.decompress(d),
    )
    assert calls == ["e", "d"] * 3  # a warm-up, then one pass an image
    assert point["encode_s"] == 1.0
    assert point["decode_s"] == 1.0
    calls.clear()
    evaluate.codec_point(
        model,
        images,
        encode=lambda x: calls.append("e") or model.compress(x[0]),
        decode=lambda d: calls.append("d") or model.decompress(d),
        warm_up=False,
    )
    assert calls == ["e", "d"] * 2


def test_rd_curve_sorts_points_by_rate(model):
    torch.manual_seed(1)
    other = FactorizedPrior(8, 12).eval()
    with torch.no_grad():
        other.g_a[-1].weight.mul_(1000)  # latents beyond the table: escapes, more bits
    images = {"a": data.sample_images("test")["flower"][:, 100:164, 100:164]}
    curve = evaluate.rd_curve([other, model], images, "two", params=["big", "small"])
    assert curve.bpp == sorted(curve.bpp)
    assert curve.params == ["small", "big"]
    with pytest.raises(ValueError):
        evaluate.codec_point(model, [])


def test_classical_curve_measures_the_registry_codec(photo):
    curve = evaluate.classical_curve("jpeg", [photo], (95, 20, 60))
    assert curve.params == [20, 60, 95]
    assert curve.bpp == sorted(curve.bpp)
    assert curve.psnr == sorted(curve.psnr)
    stream = baselines.CLASSICAL["jpeg"].compress(photo, 60)
    assert curve.bpp[1] == pytest.approx(8 * len(stream) / 256**2)
    assert curve.ms_ssim == []
    assert 25 < curve.psnr[0]
    assert curve.psnr[2] < 50
    with pytest.raises(ValueError, match="at least one image"):
        evaluate.classical_curve("jpeg", [])


def test_classical_curve_averages_over_images_with_ms_ssim(photo):
    other = data.center_crop(data.sample_images("test")["flower"], 256)
    both = evaluate.classical_curve("webp", {"a": photo, "b": other}, (10,), None, True)
    one = evaluate.classical_curve("webp", [photo], (10,), with_ms_ssim=True)
    two = evaluate.classical_curve("webp", [other], (10,), with_ms_ssim=True)
    assert both.bpp[0] == pytest.approx((one.bpp[0] + two.bpp[0]) / 2)
    assert both.psnr[0] == pytest.approx((one.psnr[0] + two.psnr[0]) / 2)
    assert both.ms_ssim[0] == pytest.approx((one.ms_ssim[0] + two.ms_ssim[0]) / 2)
    assert both.name == "WebP (libwebp)"


def test_the_clock_waits_for_queued_cuda_work(monkeypatch):
    """CUDA runs kernels asynchronously: every clock reading first synchronizes, once
    CUDA is in use (and only then)."""
    waits = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: waits.append(1))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    evaluate.complexity.clock()
    assert waits == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    evaluate.complexity.clock()
    assert waits == [1]


def test_the_ceiling_is_the_transforms_psnr_without_quantization(model, photo):
    from lic_teach import zoo

    x = data.center_crop(photo, 64)  # a multiple of the downsampling: no padding
    with torch.no_grad():
        x_hat = data.quantize_8bit(model.g_s(model.g_a(x[None]))[0].clamp(0, 1))
    assert evaluate.ceiling(model, {"crop": x}) == pytest.approx(metrics.psnr(x, x_hat))
    odd = photo[:, :61, :75]  # padded, then cropped back
    assert 0 < evaluate.ceiling(model, [odd]) < 100
    # a trained model's transforms reconstruct better than its coded images, which
    # add the quantization's error
    shipped = zoo.load("factorized", 3)
    held_out = data.held_out(128)
    coded = evaluate.codec_point(shipped, held_out)["psnr"]
    assert evaluate.ceiling(shipped, held_out) > coded + 0.2


@pytest.mark.parametrize("model_class", [ScaleHyperprior, MeanScaleHyperprior])
def test_the_hyper_synthesis_range_is_the_largest_prediction_the_coder_would_use(
    model_class,
):
    """``max |h_s(z_hat)|`` with ``z_hat`` rounded around the medians, over every
    image; a hyper-synthesis whose output layer is ten times as strong reads ten
    times as far; ``None`` without a hyperprior."""
    torch.manual_seed(0)
    model = model_class(8, 12).eval()
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 80)]  # the second is padded
    with torch.no_grad():
        expected = max(
            model.h_s(
                model.hyperprior.hard_round(
                    model.hyper_analysis(model.g_a(data.pad_to(x[None], 64)))
                )
            )
            .abs()
            .max()
            .item()
            for x in images
        )
        assert evaluate.hyper_synthesis_range(model, images) == pytest.approx(expected)
        last = [m for m in model.h_s.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(10)
        last.bias.mul_(10)
    assert evaluate.hyper_synthesis_range(model, images) == pytest.approx(10 * expected)
    assert evaluate.hyper_synthesis_range(FactorizedPrior(8, 12), images) is None
