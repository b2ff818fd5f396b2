import pytest
import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.entropy_models import GaussianConditional as CompressAIGaussian
from compressai.models.base import get_scale_table

from lic_teach.entropy_models import FactorizedDensity, GaussianConditional, scale_table


def _perturbed_pair(channels=5, seed=0):
    torch.manual_seed(seed)
    theirs = EntropyBottleneck(channels)
    with torch.no_grad():
        for parameter in theirs.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    ours = FactorizedDensity(channels)
    names = ("matrices", "biases", "factors", "quantiles")
    ours.load_state_dict(
        {k: v for k, v in theirs.state_dict().items() if k.split(".")[0] in names},
        strict=False,
    )
    return ours, theirs


def test_factorized_density_equals_entropy_bottleneck():
    ours, theirs = _perturbed_pair()
    y = 3 * torch.randn(2, 5, 6, 7)
    ours.eval(), theirs.eval()
    for a, b in zip(ours(y), theirs(y)):
        assert torch.equal(a, b)
    assert ours.aux_loss().item() == pytest.approx(theirs.loss().item(), rel=1e-6)
    ours.update(), theirs.update(force=True)
    assert torch.equal(ours.quantized_cdf, theirs._quantized_cdf)
    assert torch.equal(ours.cdf_offset, theirs._offset)
    assert torch.equal(ours.cdf_length, theirs._cdf_length)
    assert ours.compress(y) == theirs.compress(y)


def test_factorized_density_is_a_distribution():
    density = FactorizedDensity(3)
    values = (
        torch.arange(-3000.0, 3001.0).reshape(1, 1, -1).expand(1, 3, -1)
    )  # wide at init
    total = density.likelihood(values.unsqueeze(-1)).sum(dim=2)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-4)


def test_training_adds_noise_and_eval_rounds_around_the_median():
    density = FactorizedDensity(2)
    with torch.no_grad():
        density.quantiles[:, 0, 1] = torch.tensor([0.3, -0.2])
    y = torch.full((1, 2, 50, 50), 1.1)
    noisy, _ = density(y, training=True)
    assert 0.4 < (noisy - y).abs().max() <= 0.5
    assert abs(float((noisy - y).mean())) < 0.05
    rounded, _ = density(y, training=False)
    assert torch.allclose(rounded[0, :, 0, 0], torch.tensor([1.3, 0.8]))


def test_aux_loss_moves_the_quantiles_to_the_tails():
    torch.manual_seed(0)
    density = FactorizedDensity(1)
    optimizer = torch.optim.Adam([density.quantiles], lr=0.1)
    for _ in range(2000):
        optimizer.zero_grad()
        density.aux_loss().backward()
        optimizer.step()
    low, median, high = density.quantiles[0, 0].tolist()
    cdf = torch.sigmoid(
        density.cumulative_logits(torch.tensor([[[low, median, high]]]))
    )[0, 0]
    assert cdf[1].item() == pytest.approx(0.5, abs=0.02)
    assert cdf[0].item() < 1e-6
    assert cdf[2].item() > 1 - 1e-6


def test_factorized_coding_round_trip_with_both_coders_and_escapes():
    ours, _ = _perturbed_pair(channels=3, seed=1)
    ours.eval()
    y = 2 * torch.randn(1, 3, 8, 9)
    y[0, 0, 0, 0] = 1e4  # far outside the table: escaped
    ours.update()
    expected = ours.dequantize(ours.quantize(y))
    for coder in ("ans", "readable"):
        strings = ours.compress(y, coder=coder)
        assert torch.equal(ours.decompress(strings, (8, 9), coder=coder), expected)


def test_gaussian_conditional_equals_compressai():
    theirs = CompressAIGaussian(None)
    theirs.update_scale_table(get_scale_table())
    ours = GaussianConditional()
    ours.update()
    assert torch.equal(ours.scale_table, theirs.scale_table)
    assert torch.equal(ours.quantized_cdf, theirs._quantized_cdf)
    assert torch.equal(ours.cdf_offset, theirs._offset)
    torch.manual_seed(0)
    y, scales, means = (
        4 * torch.randn(2, 4, 5, 6),
        10 * torch.rand(2, 4, 5, 6),
        torch.randn(2, 4, 5, 6),
    )
    ours.eval(), theirs.eval()
    for a, b in zip(ours(y, scales, means), theirs(y, scales, means)):
        assert torch.equal(a, b)
    assert torch.equal(ours.build_indexes(scales), theirs.build_indexes(scales))
    strings = ours.compress(y, scales, means)
    assert strings == theirs.compress(y, theirs.build_indexes(scales), means)
    assert torch.equal(
        ours.decompress(strings, scales, means), ours(y, scales, means)[0]
    )
    readable = ours.compress(y, scales, means, coder="readable")
    assert torch.equal(
        ours.decompress(readable, scales, means, coder="readable"),
        ours(y, scales, means)[0],
    )


def test_gaussian_likelihood_is_a_distribution_and_bounded():
    gaussian = GaussianConditional()
    values = torch.arange(-40.0, 41.0).reshape(-1, 1, 1, 1)
    for scale in (0.05, 1.0, 7.0):
        total = gaussian.likelihood(values, torch.full_like(values, scale)).sum()
        assert total.item() == pytest.approx(1.0, abs=1e-4)
    far = gaussian.likelihood(torch.tensor([100.0]), torch.tensor([0.11]))
    assert far.item() == pytest.approx(1e-9)
    assert scale_table()[0].item() == pytest.approx(0.11)
    assert len(scale_table()) == 64


def test_coding_without_tables_is_a_clear_error():
    with pytest.raises(RuntimeError, match="update"):
        FactorizedDensity(2).compress(torch.zeros(1, 2, 3, 3))
