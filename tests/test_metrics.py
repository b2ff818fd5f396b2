import math

import numpy as np
import pytest
import torch

from lic_teach import metrics
from lic_teach.metrics import RDCurve


def test_psnr_known_values():
    x = torch.zeros(3, 8, 8)
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0)
    assert metrics.psnr(x, x + 25.5, max_val=255.0) == pytest.approx(20.0)
    assert metrics.psnr(x, x) == math.inf
    batch = torch.zeros(2, 3, 4, 4)
    noisy = batch.clone()
    noisy[0] += 0.1  # MSE over the batch: 0.005
    assert metrics.psnr(batch, noisy) == pytest.approx(10 * math.log10(1 / 0.005))


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError):
        metrics.psnr(torch.zeros(8), torch.zeros(8))


def test_ms_ssim_orders_distortions():
    x = torch.rand(3, 192, 200, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    slightly = metrics.ms_ssim(x, (x + 0.02 * noise).clamp(0, 1))
    badly = metrics.ms_ssim(x, (x + 0.2 * noise).clamp(0, 1))
    assert 1 > slightly > badly > 0


def test_ms_ssim_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match="larger than 160"):
        metrics.ms_ssim(torch.rand(3, 128, 128), torch.rand(3, 128, 128))


def test_bpp_from_bytes_and_counts():
    assert metrics.bpp(b"\x00" * 100, 800) == pytest.approx(1.0)
    assert metrics.bpp(100, 800) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.bpp(100, 0)
    with pytest.raises(ValueError):
        metrics.bpp(-1, 10)


def test_bpp_from_likelihoods():
    y = torch.full((1, 4, 2, 2), 0.5)  # 16 symbols of 1 bit
    z = torch.full((1, 2, 1, 1), 0.25)  # 2 symbols of 2 bits
    assert metrics.bpp({"y": y, "z": z}, 20) == pytest.approx(20 / 20)
    assert metrics.bpp([y, z], 10) == pytest.approx(2.0)
    assert metrics.bpp(y, 16) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        metrics.bpp(torch.tensor([0.0, 0.5]), 4)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        metrics.bpp(torch.tensor([1.5]), 4)


ANCHOR_RATE = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
ANCHOR_PSNR = (
    30 + 4 * np.log2(ANCHOR_RATE / 0.1) - 0.1 * np.log2(ANCHOR_RATE / 0.1) ** 2
)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_known_answer(method):
    # The test codec needs exactly 10% fewer bits at every PSNR.
    assert metrics.bd_rate(
        ANCHOR_RATE, ANCHOR_PSNR, 0.9 * ANCHOR_RATE, ANCHOR_PSNR, method=method
    ) == pytest.approx(-10.0, abs=1e-9)
    assert metrics.bd_rate(
        ANCHOR_RATE, ANCHOR_PSNR, ANCHOR_RATE, ANCHOR_PSNR, method=method
    ) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_psnr_known_answer(method):
    assert metrics.bd_psnr(
        ANCHOR_RATE, ANCHOR_PSNR, ANCHOR_RATE, ANCHOR_PSNR + 1.0, method=method
    ) == pytest.approx(1.0, abs=1e-9)


def test_bd_rate_matches_exact_integral_on_a_known_curve():
    # Anchor: PSNR = 10 log10(rate) + 40. Test: log-rate shifted by 0.1 sin(PSNR / 3),
    # so the mean log-rate gap over [low, high] is 0.3 (cos(low/3) - cos(high/3)) /
    # (high - low).
    anchor_rate = np.geomspace(0.05, 2.0, 40)
    psnr = 10 * np.log10(anchor_rate) + 40
    test_rate = anchor_rate * np.exp(0.1 * np.sin(psnr / 3))
    low, high = psnr[0], psnr[-1]
    mean_log = 0.3 * (np.cos(low / 3) - np.cos(high / 3)) / (high - low)
    expected = 100 * (math.exp(mean_log) - 1)
    assert abs(expected) > 1  # not a trivial zero
    assert metrics.bd_rate(anchor_rate, psnr, test_rate, psnr) == pytest.approx(
        expected, abs=0.02
    )


def test_two_methods_agree_on_published_curves():
    from lic_teach.baselines import reference_curves

    curves = reference_curves(
        [
            "jpeg",
            "webp",
            "compressai-bmshj2018-factorized_mse_cpu",
            "compressai-bmshj2018-hyperprior_mse_cpu",
        ]
    )
    jpeg = curves["jpeg"]
    for key in (
        "webp",
        "compressai-bmshj2018-factorized_mse_cpu",
        "compressai-bmshj2018-hyperprior_mse_cpu",
    ):
        other = curves[key]
        pchip = metrics.bd_rate(jpeg.bpp, jpeg.psnr, other.bpp, other.psnr)
        cubic = metrics.bd_rate(
            jpeg.bpp, jpeg.psnr, other.bpp, other.psnr, method="cubic"
        )
        assert pchip < 0, (key, pchip)
        assert abs(pchip - cubic) < 3.0, (key, pchip, cubic)
    factorized = curves["compressai-bmshj2018-factorized_mse_cpu"]
    hyperprior = curves["compressai-bmshj2018-hyperprior_mse_cpu"]
    assert (
        metrics.bd_rate(
            factorized.bpp, factorized.psnr, hyperprior.bpp, hyperprior.psnr
        )
        < -10
    )


def test_bd_is_antisymmetric():
    forward = metrics.bd_rate(
        ANCHOR_RATE, ANCHOR_PSNR, 0.7 * ANCHOR_RATE, ANCHOR_PSNR + 0.2
    )
    backward = metrics.bd_rate(
        0.7 * ANCHOR_RATE, ANCHOR_PSNR + 0.2, ANCHOR_RATE, ANCHOR_PSNR
    )
    assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1.0, abs=0.01)


def test_bd_bad_inputs():
    with pytest.raises(ValueError, match="do not overlap"):
        metrics.bd_rate(ANCHOR_RATE, ANCHOR_PSNR, ANCHOR_RATE, ANCHOR_PSNR + 100)
    with pytest.raises(ValueError, match="increase"):
        metrics.bd_rate([0.1, 0.2, 0.3], [30, 29, 31], ANCHOR_RATE, ANCHOR_PSNR)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.bd_rate([0.1], [30], ANCHOR_RATE, ANCHOR_PSNR)
    with pytest.raises(ValueError, match="4 points"):
        metrics.bd_rate(
            ANCHOR_RATE[:3], ANCHOR_PSNR[:3], ANCHOR_RATE, ANCHOR_PSNR, method="cubic"
        )
    with pytest.raises(ValueError, match="positive"):
        metrics.bd_rate([0, 0.2], [30, 31], ANCHOR_RATE, ANCHOR_PSNR)
    with pytest.raises(ValueError, match="method"):
        metrics.bd_rate(
            ANCHOR_RATE, ANCHOR_PSNR, ANCHOR_RATE, ANCHOR_PSNR, method="linear"
        )


def test_bits_is_differentiable_and_agrees_with_bpp():
    p = {
        "y": torch.tensor([0.5, 0.25], requires_grad=True),
        "z": torch.tensor([[0.125]]),
    }
    bits = metrics.bits(p)
    assert math.isclose(float(bits.detach()), 1 + 2 + 3, rel_tol=1e-6)
    assert math.isclose(float(bits.detach()) / 6, metrics.bpp(p, 6), rel_tol=1e-6)
    assert float(metrics.bits([p["z"]])) == float(metrics.bits(p["z"])) == 3.0
    bits.backward()
    assert torch.allclose(p["y"].grad, -1 / (math.log(2) * p["y"].detach()))


def test_training_log_psnr_is_floored_not_infinite():
    assert math.isclose(metrics.psnr_from_mse(1e-4), 40.0)
    assert metrics.psnr_from_mse(0.0) == 120.0
    assert math.isclose(
        metrics.psnr_from_mse(1e-4, max_val=255), 40 + 20 * math.log10(255)
    )


def test_bd_summary_gives_the_range_and_both_deltas_or_why_not():
    from types import SimpleNamespace as Curve

    anchor = Curve(bpp=list(ANCHOR_RATE), psnr=list(ANCHOR_PSNR))
    test = Curve(bpp=list(0.9 * ANCHOR_RATE[1:]), psnr=list(ANCHOR_PSNR[1:]))
    line = metrics.bd_summary(anchor, test)
    assert line.startswith("BD-rate -10.0% over ")
    assert f"{ANCHOR_PSNR[1]:.2f}-{ANCHOR_PSNR[-1]:.2f} dB" in line
    assert "BD-PSNR +" in line
    apart = Curve(bpp=[3.0, 4.0], psnr=[50.0, 51.0])
    assert metrics.bd_summary(anchor, apart).startswith(
        "not defined: the two curves do not overlap"
    )
    flat = Curve(bpp=[0.2, 0.4, 0.8], psnr=[31.0, 32.0, 31.9])
    assert "must both increase" in metrics.bd_summary(anchor, flat)


def test_bd_summary_flags_a_curve_that_is_flat_at_its_top():
    """The chapters' tiny models flatten at their highest lambda (+0.1 dB for +28%
    rate): a BD-rate there swings by tens of percent, and the line says so."""
    anchor = RDCurve(name="a", bpp=[0.2, 0.4, 0.8], psnr=[26.0, 29.0, 32.0])
    flat = RDCurve(name="f", bpp=[0.2, 0.38, 0.49], psnr=[25.3, 27.35, 27.47])
    assert metrics.top_slope(anchor.bpp, anchor.psnr) == pytest.approx(3.0)
    assert metrics.top_slope(flat.bpp, flat.psnr) == pytest.approx(
        0.12 / math.log2(0.49 / 0.38)
    )
    assert "unreliable: the test gains 0.33 dB per doubling" in metrics.bd_summary(
        anchor, flat
    )
    assert "unreliable" not in metrics.bd_summary(
        anchor, RDCurve(name="b", bpp=[0.25, 0.5], psnr=[26.5, 29.0])
    )


def _image_curves(seed, images, factor_spread):
    """Per image: an anchor with PSNR = a + 6 log2(bpp), and a test that needs
    ``factor`` times the anchor's rate at equal PSNR, ``factor`` drawn around 0.9 per
    image."""
    generator = np.random.default_rng(seed)
    anchor, test, factors = [], [], []
    for _ in range(images):
        rates = np.array([0.1, 0.2, 0.4, 0.8]) * generator.uniform(0.8, 1.25)
        psnr = generator.uniform(28, 34) + 6 * np.log2(rates)
        factor = 0.9 * np.exp(generator.normal(0, factor_spread))
        anchor.append((rates, psnr))
        test.append((rates * factor, psnr))
        factors.append(factor)
    return anchor, test, factors


def test_bd_rate_interval_covers_the_known_answer_and_narrows_with_more_images():
    anchor, test, _ = _image_curves(0, 12, 0.0)
    exact = metrics.bd_rate_interval(anchor, test, resamples=200)
    assert exact["bd_rate"] == pytest.approx(-10.0, abs=1e-6)  # every image saves 10%
    assert exact["high"] - exact["low"] < 1e-6
    covered, widths = 0, {}
    for seed in range(20):
        anchor, test, _ = _image_curves(seed, 12, 0.1)
        result = metrics.bd_rate_interval(anchor, test, resamples=300, seed=seed)
        covered += result["low"] < -10.0 < result["high"]
        widths.setdefault(12, []).append(result["high"] - result["low"])
        anchor, test, _ = _image_curves(seed, 48, 0.1)
        result = metrics.bd_rate_interval(anchor, test, resamples=300, seed=seed)
        widths.setdefault(48, []).append(result["high"] - result["low"])
    assert covered >= 15  # a 95% interval: about 19 of 20
    assert np.mean(widths[48]) < 0.7 * np.mean(
        widths[12]
    )  # four times the images: about half the width


def test_bd_rate_interval_refuses_curves_that_barely_overlap():
    anchor = [(np.array([0.1, 0.2, 0.4]), np.array([28.0, 31.0, 34.0]))]
    shifted = [(np.array([0.1, 0.2, 0.4]), np.array([33.5, 36.5, 39.5]))]
    with pytest.raises(ValueError, match="share 8% of the narrower quality range"):
        metrics.bd_rate_interval(anchor, shifted)
    with pytest.raises(ValueError, match="same images"):
        metrics.bd_rate_interval(anchor, shifted + shifted)
    assert metrics.overlap_fraction([28, 34], [31, 40]) == pytest.approx(0.5)


def test_bd_rate_interval_refuses_infinite_quality():
    anchor = [([0.2, 0.4, 0.8], [28.0, 31.0, 34.0])] * 3
    lossless = [([0.2, 0.4, 0.8], [28.0, 31.0, math.inf])] * 3
    with pytest.raises(ValueError, match="infinite PSNR"):
        metrics.bd_rate_interval(anchor, lossless)


def test_mean_point_averages_key_by_key_and_keeps_a_missing_value_missing():
    rows = [
        {"bpp": 0.2, "psnr": 30.0, "ms_ssim": 0.9},
        {"bpp": 0.4, "psnr": 34.0, "ms_ssim": None},
    ]
    point = metrics.mean_point(rows)
    assert point["bpp"] == pytest.approx(0.3)
    assert point["psnr"] == pytest.approx(32.0)  # per-image PSNR averaged
    assert point["ms_ssim"] is None
    with pytest.raises(ValueError, match="at least one"):
        metrics.mean_point([])


def test_a_curve_from_points_is_sorted_by_rate_with_its_params():
    points = [
        {"bpp": 0.8, "psnr": 33.0, "ms_ssim": 0.98},
        {"bpp": 0.2, "psnr": 27.0, "ms_ssim": 0.90},
    ]
    curve = RDCurve.from_points("c", points, params=["high", "low"], source="here")
    assert curve.bpp == [0.2, 0.8]
    assert curve.psnr == [27.0, 33.0]
    assert curve.ms_ssim == [0.90, 0.98]
    assert curve.params == ["low", "high"]
    assert curve.source == "here"
    points[0]["ms_ssim"] = None
    assert RDCurve.from_points("c", points).ms_ssim == []
    assert RDCurve.from_points("c", points).params == [1, 0]
    with pytest.raises(ValueError, match="2 points but 1 params"):
        RDCurve.from_points("c", points, params=[1])
