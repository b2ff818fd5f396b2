"""Image models trained with each relaxation, the training objective's own estimate,
and SGA iterative encoding."""

import pytest
import torch

from lic_teach import iterative_encoding, metrics, quantization, rdoq, train
from lic_teach.models import FactorizedPrior, MeanScaleHyperprior
from lic_teach.relaxed_training import Relaxed, relaxed_estimate, relaxed_outputs


@pytest.fixture(scope="module")
def crops(photo):
    return torch.stack(
        [photo[:, i : i + 64, j : j + 64] for i in (0, 200, 400) for j in (0, 300)]
    )


@pytest.fixture(scope="module")
def model(crops):
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    train.fit(model, [crops], steps=80, lmbda=0.01, lr=3e-3, progress=False)
    return model.eval()


def test_relax_gives_each_stand_in(crops):
    y = torch.randn(2, 4, 3, 3) * 3
    means = torch.rand(1, 4, 1, 1)
    for name in quantization.RELAXATIONS:
        rate, decoder = quantization.relax(y, name, means, alpha=4.0, seed=1)
        assert rate.shape == decoder.shape == y.shape, name
    rate, decoder = quantization.relax(y, "mixed", means)
    assert torch.allclose(decoder, quantization.hard_round(y, means))
    assert not torch.allclose(rate, decoder)
    rate, decoder = quantization.relax(y, "straight_through", means)
    assert torch.equal(rate, decoder)
    assert torch.allclose(rate, quantization.hard_round(y, means))
    with pytest.raises(ValueError, match="unknown relaxation"):
        quantization.relax(y, "gumbel")


@pytest.mark.parametrize("relaxation", quantization.RELAXATIONS)
def test_relaxed_model_trains_its_encoder(model, crops, relaxation):
    wrapped = Relaxed(FactorizedPrior(8, 12), relaxation, steps=10)
    wrapped.model.load_state_dict(model.state_dict())
    wrapped.train()
    out = wrapped(crops[:2])
    train.RateDistortionLoss(0.01)(out, crops[:2])["loss"].backward()
    assert wrapped.model.g_a[0].weight.grad.abs().sum() > 0, (
        relaxation
    )  # gradients reach the encoder
    assert wrapped.step == 1
    wrapped.eval()
    with torch.no_grad():
        assert torch.equal(wrapped(crops[:2])["x_hat"], model(crops[:2])["x_hat"])


def test_fit_trains_a_relaxed_model(model, crops):
    tuned = FactorizedPrior(8, 12)
    tuned.load_state_dict(model.state_dict())
    history = train.fit(
        Relaxed(tuned, "mixed", steps=30),
        [crops],
        steps=30,
        lmbda=0.01,
        lr=1e-3,
        progress=False,
    )
    assert len(history) == 30
    assert tuned.prior.has_tables()
    assert not torch.equal(tuned.g_a[0].weight, model.g_a[0].weight)
    with pytest.raises(ValueError, match="unknown relaxation"):
        Relaxed(tuned, "round")


def test_relaxed_estimate_is_the_training_objective(model, photo):
    images = {"crop": photo[:, :128, :128]}
    hard = relaxed_estimate(
        model, images, "straight_through", draws=2
    )  # forward = rounding
    with torch.no_grad():
        out = model(photo[None, :, :128, :128])
    bits = float(-torch.log2(out["likelihoods"]["y"]).sum())
    assert hard["bpp"] == pytest.approx(bits / 128**2, rel=1e-5)
    noisy = relaxed_estimate(model, images, "noise", draws=2)
    assert noisy["bpp"] != pytest.approx(hard["bpp"], rel=1e-6)
    with torch.no_grad():
        assert torch.allclose(
            relaxed_outputs(model, photo[None, :, :64, :64], "mixed")["x_hat"],
            model(photo[None, :, :64, :64])["x_hat"],
            atol=1e-5,
        )
    with pytest.raises(ValueError, match="multiples of 16"):
        relaxed_estimate(model, [photo[:, :50, :64]], "noise")


def test_sga_encoding_lowers_the_cost_of_the_coded_latents(model, photo):
    x = photo[None, :, 128:256, 128:256]
    before = {n: p.clone() for n, p in model.named_parameters()}
    y_hat, history = iterative_encoding.sga_encode(
        model, x, 0.01, steps=60, lr=2e-2, progress=False
    )
    assert len(history) == 61
    assert history[0]["tau"] == 0.5
    assert history[-1]["tau"] < 0.06
    assert history[-1]["loss"] < history[0]["loss"]  # better than the amortized encoder
    data = rdoq.compress_latents(model, y_hat, 128, 128)
    decoded = model.decompress(data)
    bpp = 8 * len(data) / 128**2
    assert (
        abs(bpp - history[-1]["bpp"]) < 0.05 * history[-1]["bpp"] + 0.04
    )  # + the container header
    mse = float(((decoded - x[0]) ** 2).mean())
    assert 0.01 * 255**2 * mse + bpp < history[0]["loss"]
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name])
        assert parameter.requires_grad


def test_sga_pads_an_image_of_any_size_as_compress_does(model, photo):
    x = photo[None, :, :50, :61]
    y_hat, history = iterative_encoding.sga_encode(
        model, x, 0.01, steps=2, progress=False
    )
    assert y_hat.shape == (1, 12, 4, 4)
    data = rdoq.compress_latents(model, y_hat, 50, 61)
    decoded = model.decompress(data)
    assert decoded.shape == x[0].shape
    assert metrics.psnr(x[0], decoded) == pytest.approx(history[-1]["psnr"], abs=1e-3)
    with pytest.raises(ValueError, match="FactorizedPrior"):
        iterative_encoding.sga_encode(MeanScaleHyperprior(8, 12), x, 0.01, steps=2)


def test_sga_leaves_what_its_caller_froze_frozen(model, photo):
    """SGA freezes the model while it runs, then gives every parameter its own
    ``requires_grad`` back: one the caller froze stays frozen."""
    frozen_by_caller = model.g_s[0].weight
    frozen_by_caller.requires_grad_(False)
    try:
        iterative_encoding.sga_encode(
            model, photo[None, :, :32, :32], 0.01, steps=2, progress=False
        )
        assert not frozen_by_caller.requires_grad
        assert model.g_s[0].bias.requires_grad
    finally:
        frozen_by_caller.requires_grad_(True)
