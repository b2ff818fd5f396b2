import math

import numpy as np
import pytest
import torch

from lic_teach import data, metrics
from lic_teach import rate_distortion as rd
from lic_teach import transform_coding as tc


def test_empirical_entropy():
    assert rd.empirical_entropy([1, 1, 2, 2]) == pytest.approx(1.0)
    assert rd.empirical_entropy(torch.arange(8)) == pytest.approx(3.0)
    assert rd.empirical_entropy([5, 5, 5]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        rd.empirical_entropy([])


@pytest.mark.parametrize("source", ["gaussian", "laplacian"])
def test_quantized_entropy_matches_samples_and_high_rate_limit(source):
    generator = np.random.default_rng(0)
    samples = (
        generator.normal(size=400_000)
        if source == "gaussian"
        else generator.laplace(scale=1 / math.sqrt(2), size=400_000)
    )
    for step in (0.25, 1.0, 2.0):
        measured = rd.empirical_entropy(
            torch.from_numpy(np.round(samples / step)).long()
        )
        assert rd.quantized_entropy(step, source) == pytest.approx(measured, abs=0.01)
    fine = 0.02
    assert rd.quantized_entropy(fine, source) == pytest.approx(
        rd.high_rate_entropy(fine, source), abs=1e-3
    )
    assert rd.differential_entropy("gaussian") == pytest.approx(
        0.5 * math.log2(2 * math.pi * math.e)
    )


def test_rate_distortion_bad_inputs_and_values():
    assert rd.gaussian_rate_distortion([0.25, 1.0, 4.0]).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        rd.quantized_entropy(0)
    with pytest.raises(ValueError, match="gaussian"):
        rd.quantized_entropy(1.0, "uniform")


def test_dct_is_orthonormal_and_compacts_a_flat_block():
    C = tc.dct_matrix(8)
    assert torch.allclose(C @ C.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    flat = torch.full((1, 8, 8), 0.25, dtype=torch.float64)
    coefficients = tc.block_dct(flat)[0, 0, 0]
    assert coefficients[0, 0] == pytest.approx(0.25 * 8)
    assert coefficients.flatten()[1:].abs().max() < 1e-12


def test_block_dct_inverts_and_keeps_energy():
    x = torch.rand(3, 16, 24, dtype=torch.float64)
    coefficients = tc.block_dct(x)
    assert coefficients.shape == (3, 2, 3, 8, 8)
    assert torch.allclose(tc.block_idct(coefficients), x, atol=1e-12)
    assert float((coefficients**2).sum()) == pytest.approx(float((x**2).sum()))
    assert torch.equal(tc.from_blocks(tc.as_blocks(x, 8)), x)
    with pytest.raises(ValueError, match="multiples"):
        tc.block_dct(torch.rand(3, 10, 16))


def test_ycbcr_roundtrip_and_gray_has_no_chroma():
    x = torch.rand(3, 5, 7, dtype=torch.float64)
    assert torch.allclose(tc.ycbcr_to_rgb(tc.rgb_to_ycbcr(x)), x, atol=1e-6)
    gray = torch.full((3, 2, 2), 0.3, dtype=torch.float64)
    assert torch.allclose(
        tc.rgb_to_ycbcr(gray)[1:],
        torch.full((2, 2, 2), 0.5, dtype=torch.float64),
        atol=1e-6,
    )


def test_per_frequency_entropy_equals_sum_of_histogram_entropies():
    symbols = torch.randint(
        -3, 4, (3, 4, 5, 8, 8), generator=torch.Generator().manual_seed(0)
    )
    expected = sum(
        20 * rd.empirical_entropy(symbols[c, :, :, u, v])
        for c in range(3)
        for u in range(8)
        for v in range(8)
    )
    assert tc.per_frequency_entropy_bits(symbols) == pytest.approx(expected)


def test_transform_code_any_size_and_rate_falls_with_step():
    x = data.sample_images("test")["astronaut"][:, 100:137, 200:253]  # 37 x 53
    results = [tc.transform_code(x, step) for step in (0.01, 0.05, 0.2)]
    for result in results:
        assert result.x_hat.shape == x.shape
        assert 0 <= result.x_hat.min()
        assert result.x_hat.max() <= 1
        assert result.psnr == pytest.approx(metrics.psnr(x, result.x_hat))
        assert result.bpp == pytest.approx(result.bits / (37 * 53))
    assert results[0].bpp > results[1].bpp > results[2].bpp
    assert results[0].psnr > results[1].psnr > results[2].psnr
    assert results[0].psnr > 40


def test_transform_beats_no_transform_at_equal_step():
    x = data.center_crop(data.sample_images("test")["flower"], 128)
    dct, raw = tc.transform_code(x, 0.05), tc.transform_code(x, 0.05, transform="none")
    assert dct.bpp < 0.75 * raw.bpp
    assert dct.psnr > raw.psnr - 0.5


def test_transform_code_bad_inputs():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        tc.transform_code(torch.rand(1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="positive"):
        tc.transform_code(torch.rand(3, 8, 8), 0)
    with pytest.raises(ValueError):
        tc.transform_code(torch.rand(3, 8, 8), 0.1, transform="wavelet")
