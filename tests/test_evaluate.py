import pytest
import torch

from lic_teach import data, evaluate, metrics
from lic_teach.models import FactorizedPrior


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FactorizedPrior(8, 12).eval()


def test_codec_point_uses_real_bytes(model):
    images = [data.sample_images("test")["astronaut"][:, :40, :56]]
    point = evaluate.codec_point(model, images)
    data_ = model.compress(images[0])
    assert point["bpp"] == pytest.approx(8 * len(data_) / (40 * 56))
    assert point["psnr"] == pytest.approx(metrics.psnr(images[0], model.decompress(data_)))
    assert point["estimated_bpp"] > 0 and point["encode_s"] > 0 and point["decode_s"] > 0
    assert point["bpp"] > point["estimated_bpp"]                 # header and stream overhead


def test_codec_point_times_after_an_untimed_warm_up(model, monkeypatch):
    """The first encode and decode pay one-off costs; they are run once, untimed."""
    images = [data.sample_images("test")["astronaut"][:, :32, :32]] * 2
    calls, clock = [], iter(range(100))
    monkeypatch.setattr(evaluate.time, "perf_counter", lambda: float(next(clock)))
    point = evaluate.codec_point(model, images, encode=lambda x: calls.append("e") or model.compress(x[0]),
                                 decode=lambda d: calls.append("d") or model.decompress(d))
    assert calls == ["e", "d"] * 3                         # a warm-up, then one pass an image
    assert point["encode_s"] == 1.0 and point["decode_s"] == 1.0
    calls.clear()
    evaluate.codec_point(model, images, encode=lambda x: calls.append("e") or model.compress(x[0]),
                         decode=lambda d: calls.append("d") or model.decompress(d), warm_up=False)
    assert calls == ["e", "d"] * 2


def test_rd_curve_sorts_points_by_rate(model):
    torch.manual_seed(1)
    other = FactorizedPrior(8, 12).eval()
    with torch.no_grad():
        other.g_a[-1].weight.mul_(1000)        # latents beyond the table: escapes, more bits
    images = {"a": data.sample_images("test")["flower"][:, 100:164, 100:164]}
    curve = evaluate.rd_curve([other, model], images, "two", params=["big", "small"])
    assert curve.bpp == sorted(curve.bpp) and curve.params == ["small", "big"]
    with pytest.raises(ValueError):
        evaluate.codec_point(model, [])
