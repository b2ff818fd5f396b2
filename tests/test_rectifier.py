"""The quantization rectifier: the base model's bytes unchanged, only the decoder side
trained in STP phase 2, QR starting as the identity, and windowed attention on any
latent size. The alpha search is tested with its study (test_rectification_study.py)."""

import pytest
import torch

from lic_teach import data, rectifier
from lic_teach.models import FactorizedPrior, MeanScaleHyperprior

N, M = 8, 12


@pytest.fixture(scope="module", params=["factorized", "mean-scale"])
def base(request):
    torch.manual_seed(0)
    model = (FactorizedPrior if request.param == "factorized" else MeanScaleHyperprior)(
        N, M
    ).eval()
    model.update()
    return model


@pytest.fixture(scope="module")
def image():
    return data.sample_images("test")["astronaut"][
        :, 100:150, 60:117
    ]  # 50 x 57: padded


@pytest.fixture(scope="module")
def crops():
    torch.manual_seed(0)
    return [
        torch.stack(
            [data.center_crop(x, 64) for x in data.sample_images("train").values()][:4]
        )
    ]


def test_qr_starts_as_the_identity_and_keeps_any_latent_size():
    torch.manual_seed(0)
    qr = rectifier.QuantizationRectifier(M, width=16, blocks=1, heads=4, window=4)
    for shape in [(1, M, 4, 4), (2, M, 5, 7), (1, M, 1, 1)]:
        y_hat = torch.randn(shape).round()
        assert torch.equal(qr(y_hat), y_hat)
    torch.nn.init.normal_(qr.project.weight, std=0.1)
    assert qr(torch.randn(2, M, 5, 7)).shape == (2, M, 5, 7)
    with pytest.raises(ValueError, match="multiple of the heads"):
        rectifier.QuantizationRectifier(M, width=10, heads=4)


def test_window_attention_sees_only_its_window_and_ignores_padding():
    torch.manual_seed(0)
    attention = rectifier.WindowAttention(8, heads=2, window=4).eval()
    f = torch.randn(1, 8, 6, 6)  # windows [0:4, 0:4], [0:4, 4:6], ... (padded)
    changed = f.clone()
    changed[..., 5, 5] += 10  # in the bottom-right window only
    difference = (attention(changed) - attention(f)).abs().sum(dim=1)[0]
    assert difference[4:, 4:].gt(0).all()
    assert difference[:4].eq(0).all()
    assert difference[:, :4].eq(0).all()
    # the same window content gives the same output whatever the padding around it holds
    inner = attention(f[..., 4:, 4:])
    assert torch.allclose(attention(f)[..., 4:, 4:], inner, atol=1e-6)


def test_a_rectified_codec_writes_the_base_models_bytes_and_reads_them(base, image):
    torch.manual_seed(1)
    qr = rectifier.QuantizationRectifier(M, width=16, blocks=1, heads=4, window=4)
    torch.nn.init.normal_(qr.project.weight, std=0.1)
    codec = rectifier.rectified(base, qr)
    data_base = base.compress(image)
    assert codec.compress(image) == data_base
    decoded = codec.decompress(data_base)
    assert decoded.shape == image.shape
    assert not torch.equal(decoded, base.decompress(data_base))
    y_hat = rectifier.hard_latents(base, image[None])[1]
    assert torch.allclose(codec.g_s(y_hat), base.g_s(qr(y_hat)))
    with pytest.raises(ValueError, match="takes 16 channels"):
        rectifier.rectified(base, rectifier.QuantizationRectifier(16, width=8, heads=2))


def test_stp_phase2_trains_only_the_decoder_side(base, crops, image):
    torch.manual_seed(2)
    codec = rectifier.rectified(
        base, rectifier.QuantizationRectifier(M, width=16, blocks=1, heads=4, window=4)
    )
    before = {name: p.detach().clone() for name, p in codec.named_parameters()}
    history = rectifier.stp_phase2(
        codec,
        crops,
        steps=3,
        lmbda=0.01,
        alpha=0.5,
        batch_size=4,
        lr=1e-3,
        progress=False,
    )
    assert len(history) == 3
    assert all(
        h["loss"] == pytest.approx(0.01 * 255**2 * h["mse"] + 0.5 * h["rectified"])
        for h in history
    ), "each step's loss is stp_loss at lmbda=0.01, alpha=0.5"
    changed = {
        name for name, p in codec.named_parameters() if not torch.equal(p, before[name])
    }
    assert changed
    assert all(name.startswith("g_s.") for name in changed)
    assert any(name.startswith("g_s.rectifier.") for name in changed)
    assert any(name.startswith("g_s.synthesis.") for name in changed)
    assert codec.compress(image) == base.compress(image), (
        "the bitstream cannot change in phase 2"
    )
    with pytest.raises(ValueError, match="without a rectifier takes alpha=0"):
        rectifier.stp_phase2(
            FactorizedPrior(N, M), crops, steps=1, lmbda=0.01, alpha=1.0, progress=False
        )


def test_stp_loss_is_distortion_plus_alpha_times_the_latent_distance():
    x, x_hat = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)
    y, y_rectified = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 2.0)
    loss, entry = rectifier.stp_loss(x, x_hat, y, y_rectified, lmbda=0.01, alpha=0.25)
    assert loss.item() == pytest.approx(0.01 * 255**2 * 0.01 + 0.25 * 4.0)
    assert entry["rectified"] == pytest.approx(4.0)
    assert entry["psnr"] == pytest.approx(20.0)


def test_rounding_error_per_channel(base, image):
    codec = rectifier.rectified(
        base, rectifier.QuantizationRectifier(M, width=16, heads=4)
    )
    errors = rectifier.rounding_error(codec, image[None])
    assert errors["rounded"].shape == errors["rectified"].shape == (M,)
    assert torch.allclose(
        errors["rounded"], errors["rectified"]
    )  # QR starts as the identity
    assert errors["rounded"].max() <= 0.25 + 1e-6  # rounding error is at most 1/2
    with pytest.raises(ValueError, match="no rectifier"):
        rectifier.rounding_error(base, image[None])


def test_frozen_latents_are_each_crops_own_latents(base):
    photo = data.sample_images("train")["coffee"][:, :200, :260]
    torch.manual_seed(0)
    latents = rectifier.FrozenLatents(
        base, [photo], patch_size=64, length=5, batch_size=2
    )
    assert len(latents) == 5
    for index in range(len(latents)):
        x, y, y_hat = latents[index]
        assert x.shape == (3, 64, 64)
        assert y.shape == y_hat.shape == (M, 4, 4)
        windows = photo.unfold(1, 64, 1).unfold(2, 64, 1)  # [3, rows, cols, 64, 64]
        assert any(
            torch.equal(windows[:, r, c], x)
            or torch.equal(windows[:, r, c], x.flip(-1))
            for r in range(windows.shape[1])
            for c in range(windows.shape[2])
        ), "a crop of the photo"
        alone_y, alone_y_hat = rectifier.hard_latents(base, x[None])
        assert torch.allclose(y, alone_y[0], atol=1e-4), (
            "the crop's own latents, as the coder computes them"
        )
        assert ((y_hat - alone_y_hat[0]).abs() > 1e-3).float().mean() < 0.01, (
            "rounded alike, but for ties"
        )
    with pytest.raises(ValueError, match="smaller"):
        rectifier.FrozenLatents(base, [photo[:, :100, :100]], patch_size=128, length=5)


def test_the_warm_start_trains_qr_alone_and_phase2_takes_qr_s_own_learning_rate(base):
    torch.manual_seed(3)
    photos = [data.center_crop(x, 128) for x in data.sample_images("train").values()]
    latents = rectifier.FrozenLatents(base, photos, patch_size=64, length=40)
    codec = rectifier.rectified(
        base, rectifier.QuantizationRectifier(M, width=16, blocks=1, heads=4, window=4)
    )
    before = {name: p.detach().clone() for name, p in codec.named_parameters()}
    history = rectifier.pretrain_rectifier(
        codec, latents, steps=30, lr=3e-3, batch_size=4, progress=False
    )
    changed = {
        name for name, p in codec.named_parameters() if not torch.equal(p, before[name])
    }
    assert changed
    assert all(name.startswith("g_s.rectifier.") for name in changed)
    first, last = (
        sum(h["rectified"] for h in part) / 5 for part in (history[:5], history[-5:])
    )
    assert last < first, "the warm start lowers the latent distance"
    with pytest.raises(ValueError, match="no rectifier"):
        rectifier.pretrain_rectifier(base, latents, steps=1, progress=False)

    before = {name: p.detach().clone() for name, p in codec.named_parameters()}
    rectifier.stp_phase2(
        codec,
        latents,
        steps=2,
        lmbda=0.01,
        alpha=1.0,
        batch_size=4,
        lr=1e-3,
        rectifier_lr=0.0,
        progress=False,
    )
    changed = {
        name for name, p in codec.named_parameters() if not torch.equal(p, before[name])
    }
    assert changed
    assert all(name.startswith("g_s.synthesis.") for name in changed), (
        "QR at learning rate 0 stays"
    )


def test_the_rectifiers_attention_is_counted_as_its_matrix_products():
    from lic_teach import complexity

    width, tokens = 16, 4 * 4
    qr = rectifier.QuantizationRectifier(
        M, width=width, blocks=1, heads=4, window=4
    ).eval()
    latent = torch.zeros(1, M, 8, 8)  # 4 windows of 4 x 4
    with_attention = complexity.macs(qr, latent)
    qr.attention = torch.nn.Identity()
    positions = 8 * 8
    projections = positions * (3 * width * width + width * width)  # q, k, v in; out
    scores = positions * tokens * width * 2  # q k^T and the weighted sum of v
    assert with_attention - complexity.macs(qr, latent) == projections + scores
    assert torch.backends.mha.get_fastpath_enabled(), (
        "the counter leaves PyTorch's settings as they were"
    )
