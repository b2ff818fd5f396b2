import math

import pytest
import torch

from lic_teach import quantization as q


@pytest.fixture
def y():
    torch.manual_seed(0)
    return (4 * torch.randn(2000)).requires_grad_()


def test_hard_round_around_means(y):
    means = torch.full_like(y, 0.3)
    out = q.hard_round(y, means)
    assert torch.allclose(out - means, torch.round(y - means))
    assert torch.equal(q.hard_round(y), torch.round(y))
    out.sum().backward()
    assert torch.count_nonzero(y.grad) == 0  # rounding has no useful gradient


def test_uniform_noise_statistics_and_gradient(y):
    out = q.uniform_noise(y)
    error = (out - y).detach()
    assert error.abs().max() <= 0.5
    assert abs(float(error.mean())) < 0.03
    assert abs(float(error.var()) - 1 / 12) < 0.01
    out.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))


def test_uniform_noise_draws_what_compressai_draws(y):
    from compressai.entropy_models import EntropyBottleneck

    bottleneck = EntropyBottleneck(1)
    torch.manual_seed(11)
    theirs = bottleneck.quantize(y.detach(), "noise")
    torch.manual_seed(11)
    assert torch.equal(q.uniform_noise(y.detach()), theirs)


def test_straight_through_rounds_forward_and_passes_gradient(y):
    means = torch.linspace(-0.5, 0.5, y.numel())
    out = q.straight_through(y, means)
    assert torch.allclose(out - means, torch.round(y - means), atol=1e-5)
    (3 * out).sum().backward()
    assert torch.allclose(y.grad, torch.full_like(y, 3.0))


def test_mixed_gives_noise_to_the_rate_and_rounding_to_the_decoder(y):
    for_rate, for_decoder = q.relax(y, "mixed", torch.full_like(y, 0.25))
    assert not torch.equal(for_rate, for_decoder)
    assert (for_rate - y).abs().max() <= 0.5
    assert torch.allclose(for_decoder - 0.25, torch.round(y - 0.25), atol=1e-5)


def test_universal_error_is_uniform_and_independent_of_y():
    y = torch.full((20000,), 0.3)  # rounding alone would always err by -0.3
    out = q.universal(y, seed=7)
    error = out - y
    assert error.abs().max() <= 0.5 + 1e-6
    assert abs(float(error.mean())) < 0.01
    assert abs(float(error.var()) - 1 / 12) < 0.003
    u = q.dither(y.shape, seed=7)
    symbols = torch.round(y - u)  # what the encoder codes
    assert torch.equal(symbols + u, out)  # what the decoder rebuilds
    assert torch.equal(q.universal(y, seed=7), out)
    assert not torch.equal(q.universal(y, seed=8), out)
    means = torch.full_like(y, 0.1)
    assert torch.allclose(
        q.universal(y, seed=7, means=means) - means - u,
        torch.round(y - means - u),
        atol=1e-6,
    )


def test_universal_passes_the_gradient(y):
    q.universal(y, seed=1).sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))


def test_soft_round_between_identity_and_rounding(y):
    detached = y.detach()
    assert torch.allclose(q.soft_round(detached, alpha=1e-3), detached, atol=1e-3)
    far_from_half = (detached - torch.floor(detached) - 0.5).abs() > 0.1
    sharp = q.soft_round(detached, alpha=60.0)
    assert torch.allclose(
        sharp[far_from_half], torch.round(detached)[far_from_half], atol=1e-3
    )
    grid = torch.linspace(-3, 3, 6001)
    values = q.soft_round(grid, alpha=5.0)
    assert (values[1:] >= values[:-1]).all()  # increasing
    assert (
        values[1:] - values[:-1]
    ).abs().max() < 0.01  # continuous, also across integers
    assert torch.allclose(
        q.soft_round(torch.tensor([1.5, -0.5]), alpha=5.0), torch.tensor([1.5, -0.5])
    )
    q.soft_round(y, alpha=5.0, means=torch.zeros_like(y)).sum().backward()
    assert (y.grad > 0).all()
    with pytest.raises(ValueError, match="alpha"):
        q.soft_round(detached, alpha=0.0)


def test_soft_round_schedule():
    assert q.soft_round_alpha(0, 100) == pytest.approx(1.0)
    assert q.soft_round_alpha(100, 100) == pytest.approx(16.0)
    assert q.soft_round_alpha(50, 100) == pytest.approx(4.0)
    assert q.soft_round_alpha(500, 100) == pytest.approx(16.0)


def test_sga_samples_between_neighbours_and_hardens_as_tau_falls(y):
    generator = torch.Generator().manual_seed(0)
    warm = q.sga(y, tau=0.5, generator=generator)
    assert ((warm >= torch.floor(y) - 1e-5) & (warm <= torch.ceil(y) + 1e-5)).all()
    warm.sum().backward()
    assert y.grad.abs().sum() > 0  # differentiable in y
    cold = q.sga(y.detach(), tau=1e-3, generator=generator)
    assert torch.allclose(cold, torch.round(cold), atol=1e-3)  # (almost) integers
    near = torch.full((5000,), 2.1)  # 2 is far likelier than 3
    picks = torch.round(q.sga(near, tau=0.3, generator=generator))
    assert 0.6 < float((picks == 2).float().mean()) < 1.0
    assert torch.allclose(
        q.sga(near, tau=1e-3, generator=generator, means=torch.full_like(near, 0.1)),
        torch.full_like(near, 2.1),
        atol=1e-3,
    )  # on the shifted grid
    with pytest.raises(ValueError, match="tau"):
        q.sga(near, tau=0.0)


def test_sga_temperature_schedule():
    assert q.sga_temperature(0) == 0.5
    assert q.sga_temperature(700) == 0.5
    assert q.sga_temperature(1700) == pytest.approx(0.5 * math.exp(-1.0))
    assert q.sga_temperature(10**6) == 1e-8
