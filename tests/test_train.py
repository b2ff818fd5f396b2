import math

import pytest
import torch
from compressai.models import FactorizedPrior

from lic_teach import data, train


def _tiny_model():
    torch.manual_seed(0)
    return FactorizedPrior(N=8, M=8)


def _patches():
    images = [data.center_crop(x, 256) for x in data.sample_images("train").values()]
    return data.RandomCropDataset(images, patch_size=32, length=64)


def test_loss_follows_compressai_convention():
    x = torch.rand(2, 3, 8, 8)
    x_hat = x + 0.01
    likelihoods = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.full((2, 2, 1, 1), 0.25)}
    losses = train.RateDistortionLoss(lmbda=0.01)({"x_hat": x_hat, "likelihoods": likelihoods}, x)
    bpp = (2 * 4 * 2 * 2 * 1 + 2 * 2 * 2) / (2 * 8 * 8)
    assert losses["bpp_loss"].item() == pytest.approx(bpp)
    assert losses["mse_loss"].item() == pytest.approx(1e-4, rel=1e-4)
    assert losses["loss"].item() == pytest.approx(0.01 * 255**2 * 1e-4 + bpp, rel=1e-4)


def test_loss_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        train.RateDistortionLoss(metric="l1")
    with pytest.raises(ValueError, match="positive"):
        train.RateDistortionLoss(lmbda=0)


def test_quantiles_go_to_the_aux_optimizer_only():
    main, aux = train.split_parameters(_tiny_model())
    assert len(aux) == 1 and aux[0].shape[-1] == 3
    assert all(p is not aux[0] for p in main)


def test_fit_lowers_the_loss_and_trains_quantiles():
    model = _tiny_model()
    quantiles = model.entropy_bottleneck.quantiles.detach().clone()
    history = train.fit(model, _patches(), steps=40, lmbda=0.01, lr=1e-3, batch_size=4,
                        progress=False)
    assert len(history) == 40 and {"loss", "bpp", "mse", "psnr", "aux"} <= set(history[0])
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < 0.8 * first
    assert not torch.equal(quantiles, model.entropy_bottleneck.quantiles.detach())


def test_fit_is_reproducible_with_a_seed():
    runs = [train.fit(_tiny_model(), _patches(), steps=5, seed=3, progress=False) for _ in range(2)]
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


def test_fit_clips_gradients(monkeypatch):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm):
        calls.append(max_norm)
        return original(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train.fit(_tiny_model(), _patches(), steps=3, clip_max_norm=0.5, progress=False)
    train.fit(_tiny_model(), _patches(), steps=3, clip_max_norm=0, progress=False)
    assert calls == [0.5, 0.5, 0.5]


def test_fit_accepts_batches_and_stops_on_nan():
    batches = [torch.rand(2, 3, 32, 32)]
    assert len(train.fit(_tiny_model(), batches, steps=3, progress=False)) == 3
    model = _tiny_model()
    with torch.no_grad():
        model.g_s[0].weight.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="step 1"):
        train.fit(model, batches, steps=3, progress=False)
    with pytest.raises(ValueError):
        train.fit(model, batches, steps=0)
