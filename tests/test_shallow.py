"""Yang and Mandt's shallow synthesis transforms: any image size, the JPEG-like one is
affine with overlapping 18x18 patches, and their cost matches the paper's FLOPs."""
import pytest
import torch

from lic_teach import complexity
from lic_teach.models import MeanScaleHyperprior
from lic_teach.models.shallow import TwoLayerSynthesis, jpeg_like_synthesis


@pytest.mark.parametrize("make", [jpeg_like_synthesis, TwoLayerSynthesis], ids=["jpeg-like", "two-layer"])
def test_shallow_synthesis_makes_the_image_16_times_the_latent(make):
    torch.manual_seed(0)
    assert make(8)(torch.randn(2, 8, 3, 5)).shape == (2, 3, 48, 80)


def test_the_jpeg_like_synthesis_is_affine_with_overlapping_patches():
    torch.manual_seed(1)
    g = jpeg_like_synthesis(4)
    a, b, zero = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.zeros(1, 4, 3, 3)
    with torch.no_grad():
        assert torch.allclose(g(a + b) - g(zero), (g(a) - g(zero)) + (g(b) - g(zero)), atol=1e-5)
        impulse = zero.clone()
        impulse[0, 0, 1, 1] = 1.0
        touched = (g(impulse) - g(zero)).abs().sum(dim=1)[0] > 0
    rows, cols = torch.nonzero(touched, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (15, 32, 15, 32)   # 18 x 18, one pixel over each side


@pytest.mark.parametrize("name, make, published", [
    ("JPEG-like", lambda: jpeg_like_synthesis(320), 2_433),
    ("two-layer", lambda: TwoLayerSynthesis(320), 10_677),
    ("mean-scale hyperprior", lambda: MeanScaleHyperprior(192, 320).g_s, 187_585),
])
def test_synthesis_flops_match_the_published_counts(name, make, published):
    """Yang and Mandt's table of synthesis FLOPs per pixel (M = 320, a 512 x 768 input;
    their count adds biases and element-wise work, which ours leaves out)."""
    flops = 2 * complexity.macs_per_pixel(make(), (1, 320, 32, 48))
    assert flops == pytest.approx(published, rel=0.01), name
