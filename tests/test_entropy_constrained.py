"""Entropy-constrained quantization: RDOQ picks the cheaper of its candidates, the
trellis search is the least-cost path (checked by brute force), its cells tile the
line, and RDOQ latents make a real bitstream the model decodes."""

import itertools

import pytest
import torch

from lic_teach import entropy_constrained as ec
from lic_teach import evaluate, rdoq, train, trellis
from lic_teach.models import FactorizedPrior, MeanScaleHyperprior


@pytest.fixture(scope="module")
def model(photo):
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    crops = torch.stack(
        [photo[:, i : i + 64, j : j + 64] for i in (0, 200, 400) for j in (0, 300)]
    )
    train.fit(model, [crops], steps=80, lmbda=0.01, lr=3e-3, progress=False)
    return model.eval()


def _medians(model):
    return model.prior.medians().detach().reshape(1, -1, 1, 1)


def _cost(model, y, y_hat, weights):
    return (
        weights.reshape(1, -1, 1, 1) * (y - y_hat) ** 2 + rdoq.latent_bits(model, y_hat)
    ).sum()


def test_rdo_round_never_costs_more_than_rounding(model, photo):
    with torch.no_grad():
        y = (
            model.g_a(photo[None, :, :128, :128]) * 3
        )  # spread the latents over many integers
    plain = model.prior.dequantize(model.prior.quantize(y))
    weights = torch.full((12,), 0.5)
    chosen = rdoq.rdo_round(model, y, weights)
    offsets = chosen - _medians(model)
    assert torch.allclose(offsets, offsets.round(), atol=1e-5)  # on the coder's grid
    assert _cost(model, y, chosen, weights) < _cost(model, y, plain, weights)
    assert (chosen != plain).any()
    assert torch.equal(
        rdoq.rdo_round(model, y, torch.full((12,), 1e6)), plain
    )  # distortion only: rounding
    cheapest = rdoq.rdo_round(model, y, torch.zeros(12))  # rate only
    assert (
        rdoq.latent_bits(model, cheapest).sum() < rdoq.latent_bits(model, plain).sum()
    )


def test_dq_cells_tile_the_line(model):
    k = (
        torch.arange(-300, 301, dtype=torch.float32)
        .reshape(1, 1, 1, -1)
        .expand(1, 12, 1, 601)
    )
    medians = _medians(model)
    for quantizer in (0, 1):
        probability = torch.exp2(-trellis.dq_bits(model, k, medians, quantizer)).sum(
            dim=-1
        )
        assert torch.allclose(probability, torch.ones_like(probability), atol=1e-3), (
            quantizer
        )
    levels = trellis.dq_levels(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0]), 1)
    assert levels.tolist() == [-2.5, -0.5, 0.0, 0.5, 1.5]


def _brute_force(model, y, weights):
    """Least total cost of channel 0 over every index path the state machine allows."""
    medians = _medians(model)
    candidates = trellis._dq_candidates(y - medians)  # [2, 3, 1, M, 1, n]
    bits = torch.stack(
        [
            torch.stack(
                [trellis.dq_bits(model, candidates[q, j], medians, q) for j in range(3)]
            )
            for q in (0, 1)
        ]
    )[:, :, 0, 0, 0]  # [2, 3, n], channel 0
    v, candidates = (y - medians)[0, 0, 0], candidates[:, :, 0, 0, 0]
    best = float("inf")
    for choice in itertools.product(range(3), repeat=v.numel()):
        state, cost = 0, 0.0
        for t, j in enumerate(choice):
            q = state // 2
            k = candidates[q, j, t]
            cost += float(weights[0]) * (
                float(v[t]) - float(trellis.dq_levels(k, q))
            ) ** 2 + float(bits[q, j, t])
            state = trellis.NEXT_STATE[state][int(k) % 2]
        best = min(best, cost)
    return best


def test_trellis_finds_the_least_cost_path(model):
    torch.manual_seed(1)
    y = _medians(model) + 2.5 * torch.randn(1, 12, 1, 6)
    weights = torch.full((12,), 0.8)
    y_hat, bits = trellis.trellis_quantize(model, y, weights)
    found = float((weights.reshape(1, -1, 1, 1) * (y - y_hat) ** 2 + bits)[:, :1].sum())
    assert found == pytest.approx(_brute_force(model, y, weights), rel=1e-5)


def test_trellis_reaches_half_integers_and_its_rate_is_priced(model, photo):
    with torch.no_grad():
        y = model.g_a(photo[None, :, :128, :128]) * 3
    plain = model.prior.dequantize(model.prior.quantize(y))
    fine, _ = trellis.trellis_quantize(model, y, torch.full((12,), 1e4))
    assert ((fine - y) ** 2).mean() < 0.8 * (
        (plain - y) ** 2
    ).mean()  # the union of Q0 and Q1 is denser
    weights = torch.full((12,), 0.5)
    y_hat, bits = trellis.trellis_quantize(model, y, weights)
    assert (bits > 0).all()
    assert y_hat.shape == y.shape
    offsets = (y_hat - _medians(model)) * 2
    assert torch.allclose(
        offsets, offsets.round(), atol=1e-4
    )  # levels on the half-integer grid


def test_rdoq_latents_make_a_real_bitstream(model, photo):
    x = photo[:, 3:70, 10:59]  # 67 x 49: padded inside
    with torch.no_grad():
        y = model.g_a(
            torch.nn.functional.pad(x[None], (0, 15, 0, 13), mode="replicate")
        )
    y_hat = rdoq.rdo_round(model, y, torch.full((12,), 0.3))
    data = rdoq.compress_latents(model, y_hat, 67, 49)
    decoded = model.decompress(data)
    assert decoded.shape == x.shape
    assert torch.allclose(
        decoded, model.g_s(y_hat)[0, :, :67, :49].clamp(0, 1), atol=1e-6
    )
    with pytest.raises(ValueError, match="grid"):
        rdoq.compress_latents(model, y_hat + 0.3, 67, 49)
    with pytest.raises(ValueError, match="does not belong to a 200x49 image"):
        rdoq.compress_latents(model, y_hat, 200, 49)
    assert data == model.compress_latents({"y": y_hat}, 67, 49)  # the model's packing
    with pytest.raises(ValueError, match="FactorizedPrior"):
        rdoq.rdo_round(MeanScaleHyperprior(8, 12), y, torch.ones(12))


def test_rd_point_rounding_is_the_codec(model, photo):
    images = [photo[:, :64, :96]]
    point = ec.rd_point(model, images, "rounding")
    reference = evaluate.codec_point(model, images)
    assert point["bpp"] == pytest.approx(reference["bpp"])
    assert point["psnr"] == pytest.approx(reference["psnr"])
    with pytest.raises(ValueError, match="weights"):
        ec.rd_point(model, images, "RDOQ")
    with pytest.raises(ValueError, match="unknown method"):
        ec.rd_point(model, images, "rdoq")


@pytest.mark.parametrize("coder", ["ans", "readable"])
def test_trellis_bitstream_decodes_to_its_reconstructions(model, photo, coder):
    x = photo[None, :, 100:161, 200:250]  # 61 x 50: padded inside
    with torch.no_grad():
        y = model.g_a(torch.nn.functional.pad(x, (0, 14, 0, 3), mode="replicate")) * 3
    weights = torch.full((12,), 0.5)
    y_hat, bits = trellis.trellis_quantize(model, y, weights)
    data = trellis.compress_trellis(model, y, weights, 61, 50, coder)
    decoded = trellis.decompress_trellis(model, data)
    assert torch.allclose(
        decoded, model.g_s(y_hat)[0, :, :61, :50].clamp(0, 1), atol=1e-6
    )
    # + the container's 59 bytes around the string, and rANS's 4-byte final state
    extra = 8 * (59 + 4)
    assert float(bits.sum()) < 8 * len(data) < 1.05 * float(bits.sum()) + extra
    with pytest.raises(ValueError, match="written by"):
        model.decompress(data)  # not a plain bitstream
    with pytest.raises(ValueError, match="written by"):
        trellis.decompress_trellis(model, model.compress(x[0]))
    with pytest.raises(ValueError):
        trellis.decompress_trellis(model, data[:-5])
    with pytest.raises(ValueError, match="does not belong to a 90x50 image"):
        trellis.compress_trellis(model, y, weights, 90, 50, coder)


def test_dq_tables_hold_both_quantizers(model):
    cdfs, lengths, offsets = trellis.dq_tables(model)
    prior_cdfs, prior_lengths, prior_offsets = model.prior.tables()
    assert len(cdfs) == 24
    assert lengths[:12] == prior_lengths
    assert offsets == prior_offsets * 2
    assert [row[:n] for row, n in zip(cdfs[:12], lengths)] == [
        row[:n] for row, n in zip(prior_cdfs, prior_lengths)
    ]
    assert all(
        row[n - 1] == 1 << 16 for row, n in zip(cdfs, lengths)
    )  # every CDF ends at full precision


def test_channel_gains_follow_the_synthesis_transform(model, photo):
    with torch.no_grad():
        y_hat = model.prior.dequantize(
            model.prior.quantize(model.g_a(photo[None, :, :64, :64]))
        )
        gains = rdoq.channel_gains(model, y_hat)
        scaled = FactorizedPrior(8, 12)
        scaled.load_state_dict(model.state_dict())
        scaled.g_s[-1].weight.mul_(2)
        scaled.g_s[-1].bias.mul_(2)
        assert (gains > 0).all()
        assert torch.allclose(rdoq.channel_gains(scaled, y_hat), 4 * gains, rtol=1e-4)
    assert torch.allclose(
        rdoq.distortion_weights(gains, 0.01), 0.01 * 255**2 * gains / 3
    )
