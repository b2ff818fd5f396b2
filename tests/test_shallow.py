"""Yang and Mandt's shallow synthesis transforms: any image size, the JPEG-like one is
affine with overlapping 18x18 patches, and their cost matches the paper's FLOPs."""

import pytest
import torch

from lic_teach import complexity, crosscheck, iterative_encoding, metrics, zoo
from lic_teach.data import pad_to, quantize_8bit
from lic_teach.models import (
    JPEGLikeHyperprior,
    MeanScaleHyperprior,
    TwoLayerHyperprior,
    registry,
)
from lic_teach.models.elic import elic_analysis
from lic_teach.models.shallow import TwoLayerSynthesis, jpeg_like_synthesis


@pytest.mark.parametrize(
    "make", [jpeg_like_synthesis, TwoLayerSynthesis], ids=["jpeg-like", "two-layer"]
)
def test_shallow_synthesis_makes_the_image_16_times_the_latent(make):
    torch.manual_seed(0)
    assert make(8)(torch.randn(2, 8, 3, 5)).shape == (2, 3, 48, 80)


def test_the_jpeg_like_synthesis_is_affine_with_overlapping_patches():
    torch.manual_seed(1)
    g = jpeg_like_synthesis(4)
    a, b, zero = (
        torch.randn(1, 4, 3, 3),
        torch.randn(1, 4, 3, 3),
        torch.zeros(1, 4, 3, 3),
    )
    with torch.no_grad():
        assert torch.allclose(
            g(a + b) - g(zero), (g(a) - g(zero)) + (g(b) - g(zero)), atol=1e-5
        )
        impulse = zero.clone()
        impulse[0, 0, 1, 1] = 1.0
        touched = (g(impulse) - g(zero)).abs().sum(dim=1)[0] > 0
    rows, cols = torch.nonzero(touched, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (
        15,
        32,
        15,
        32,
    )  # 18 x 18, one pixel over each side


@pytest.mark.parametrize(
    "name, make, published",
    [
        ("JPEG-like", lambda: jpeg_like_synthesis(320), 2_433),
        ("two-layer", lambda: TwoLayerSynthesis(320), 10_677),
        ("mean-scale hyperprior", lambda: MeanScaleHyperprior(192, 320).g_s, 187_585),
    ],
)
def test_synthesis_flops_match_the_published_counts(name, make, published):
    """Yang and Mandt's table of synthesis FLOPs per pixel (M = 320, a 512 x 768 input;
    their count adds biases and element-wise work, which ours leaves out)."""
    flops = 2 * complexity.macs_per_pixel(make(), (1, 320, 32, 48))
    assert flops == pytest.approx(published, rel=0.01), name


def test_the_hyper_transforms_cost_what_the_paper_counts():
    """Yang and Mandt's hyperprior has as many channels in z as in y (N = M = 320), so
    the mean-scale hyperprior's h_s at (320, 320) is theirs: 30,355 FLOPs per pixel,
    and h_a 13,452 (their table, results/flops_per_pixel.csv; a 512 x 768 input)."""
    model = MeanScaleHyperprior(320, 320)
    h_s = 2 * complexity.macs_per_pixel(model.h_s, (1, 320, 8, 12), pixels=512 * 768)
    h_a = 2 * complexity.macs(model.h_a, torch.zeros(1, 320, 32, 48)) / (512 * 768)
    assert (h_s, h_a) == pytest.approx((30_355, 13_452), rel=0.01)


def test_elic_analysis_costs_what_the_paper_counts():
    """ELIC's analysis transform at N = 192, M = 320: 510,846 FLOPs per pixel in their
    table."""
    flops = (
        2
        * complexity.macs(elic_analysis(192, 320), torch.zeros(1, 3, 128, 192))
        / (128 * 192)
    )
    assert flops == pytest.approx(510_846, rel=0.01)


def test_elic_analysis_is_compressai_elic_analysis_both_ways():
    """With three blocks a stage it is CompressAI's Elic2022Official.g_a: the weights
    move across in order, both ways, and both give the same latents."""
    from compressai.models import Elic2022Official

    torch.manual_seed(2)
    ours, theirs = (
        elic_analysis(16, 24),
        Elic2022Official(N=16, M=24, groups=[8, 16]).g_a,
    )
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert [v.shape for v in ours_state.values()] == [
        v.shape for v in their_state.values()
    ]
    theirs.load_state_dict(dict(zip(their_state, ours_state.values())))
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        for parameter in theirs.parameters():
            parameter.mul_(1.1)
        ours.load_state_dict(dict(zip(ours_state, theirs.state_dict().values())))
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


@pytest.mark.parametrize("model_class", [JPEGLikeHyperprior, TwoLayerHyperprior])
def test_shallow_models_keep_the_contract_and_code_like_compressai(model_class, photo):
    """Any image size in and out, a bitstream that decodes to what forward predicts, and
    the same bytes as CompressAI's mean-scale codec around the same transforms."""
    torch.manual_seed(3)
    model = model_class(8, 12).eval()
    x = photo[:, :40, :72]
    data = model.compress(x)
    decoded = model.decompress(data)
    assert decoded.shape == x.shape
    forward = model(pad_to(x[None], 64))["x_hat"][0, :, :40, :72].clamp(0, 1)
    assert torch.allclose(decoded, forward, atol=1e-5)
    report = crosscheck.crosscheck(model, photo[:, :64, :128])
    assert report["same_bitstream"], report
    assert report["max_diff_decoded"] < 1e-5, report
    back = crosscheck.from_compressai(crosscheck.to_compressai(model), model_class)
    with pytest.raises(ValueError, match="name its lic_teach class"):
        crosscheck.from_compressai(crosscheck.to_compressai(model))
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    entry, params, _ = registry.writer_of(data)
    assert entry.model_class is model_class
    assert params == (8, 12)
    with pytest.raises(ValueError, match="CompressAI has no"):
        crosscheck.load_checkpoint("missing.pth", entry.name)


@pytest.mark.parametrize("family", ["mean-scale", "scale"])
def test_sga_of_y_and_z_lowers_the_cost_and_writes_the_models_own_bitstream(
    family, photo
):
    """Step 0 is the amortized encoder (its estimated rate is the forward pass's), the
    cost falls, and the bytes decode with the unchanged decoder to the PSNR and close to
    the rate change the steps predict, for a size that is not a multiple of 64."""
    model, lmbda = zoo.load(family, 2), zoo.lambda_of(family, 2)
    x = photo[None, :, 200:272, 180:236]
    y, z, history = iterative_encoding.sga_encode_hyperprior(
        model, x, lmbda, steps=40, progress=False
    )
    with torch.no_grad():
        likelihoods = model(pad_to(x, 64))["likelihoods"]
    assert history[0]["bpp"] == pytest.approx(
        float(metrics.bits(likelihoods)) / (72 * 56), rel=1e-4
    )
    assert history[-1]["loss"] < 0.97 * history[0]["loss"]
    assert [h["tau"] for h in history[:3]] == [0.5, 0.5, 0.5]
    assert history[-1]["tau"] < 0.15
    data = model.compress_latents({"y": y, "z": z}, 72, 56)
    assert data == iterative_encoding.sga_compress(model, x, lmbda, steps=40)
    decoded = model.decompress(data)
    assert metrics.psnr(x[0], decoded) == pytest.approx(history[-1]["psnr"], abs=0.02)
    predicted_change = (history[-1]["bpp"] - history[0]["bpp"]) * 72 * 56 / 8  # bytes
    assert len(data) - len(model.compress(x[0])) == pytest.approx(
        predicted_change, abs=6
    )
    with pytest.raises(ValueError, match="does not belong to a 64x64 image"):
        model.compress_latents({"y": y, "z": z}, 64, 64)
    with pytest.raises(ValueError, match="does not belong to a 72x56 image"):
        model.compress_latents({"y": y[..., :2], "z": z}, 72, 56)
    with pytest.raises(ValueError, match="codes the latents"):
        model.compress_latents({"y": y}, 72, 56)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        iterative_encoding.sga_encode_hyperprior(model, x, lmbda, steps=0)


def test_amortized_and_sga_reports_both_encoders_from_real_bytes(photo):
    model, lmbda = zoo.load("mean-scale", 1), zoo.lambda_of("mean-scale", 1)
    crops = [photo[:, 64:128, 64:128], photo[:, 300:364, 200:264]]
    result = iterative_encoding.amortized_and_sga(
        model, crops, lmbda, steps=15, progress=False
    )
    rates, psnrs, costs = [], [], []
    for x in crops:  # the amortized encoder's bytes, decoded and written to 8 bits
        data = model.compress(x)
        x_hat = quantize_8bit(model.decompress(data))
        mse = float((x_hat - quantize_8bit(x)).square().mean())
        rates.append(8 * len(data) / 64**2)
        psnrs.append(metrics.psnr_from_mse(mse))
        costs.append(lmbda * 255**2 * mse + rates[-1])
    assert result["amortized"]["bpp"] == pytest.approx(sum(rates) / 2, abs=1e-9)
    assert result["amortized"]["psnr"] == pytest.approx(sum(psnrs) / 2, abs=1e-6)
    assert result["amortized"]["cost"] == pytest.approx(sum(costs) / 2, rel=1e-6)
    assert result["sga"]["cost"] < result["amortized"]["cost"]
