"""Shallow synthesis transforms: Yang and Mandt, "Asymmetrically-powered neural image
compression with shallow decoders" (ICCV 2023, sec. 3.2).

The decoder is where a codec's compute hurts, so they make it as shallow as JPEG's and
win the rate-distortion loss back with a stronger encoder and iterative encoding.

- :func:`jpeg_like_synthesis`: one transposed convolution from the latent at 1/16
  resolution to RGB, kernel 18 and stride 16. Every latent vector becomes an 18x18 patch
  of pixels, and neighbouring patches overlap by 2 pixels. JPEG's inverse DCT is the
  same kind of layer: 64 coefficients at 1/8 resolution, kernel 8, stride 8, no overlap.
- :class:`TwoLayerSynthesis`: a transposed convolution to 12 channels at 1/2 resolution
  (kernel 13, stride 8), a simplified inverse GDN, plus a linear branch of the same
  shape, then a transposed convolution to RGB (kernel 5, stride 2).

Both models pair them with ELIC's analysis transform (:mod:`.elic`) and the mean-scale
hyperprior of Minnen et al. 2018 (:class:`.MeanScaleHyperprior`): only ``g_a`` and
``g_s`` differ from that model, so the entropy model, the bitstream and the hyper
transforms are the same code. CompressAI has neither model; their twin is CompressAI's
``MeanScaleHyperprior`` with these ``g_a`` and ``g_s`` put in (``twin_transforms``),
which cross-checks the entropy model and the bitstream, and ELIC's ``g_a`` is
cross-checked against CompressAI's ``Elic2022Official`` on its own.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import from_stored, to_stored
from .elic import elic_analysis
from .hyperprior import MeanScaleHyperprior
from .registry import register_model


def jpeg_like_synthesis(M: int) -> nn.ConvTranspose2d:
    """``[B, M, h, w] -> [B, 3, 16h, 16w]``: kernel 18, stride 16, padding 1, so each
    latent's 18x18 patch overlaps its neighbours' by 2 pixels (Yang and Mandt 2023)."""
    return nn.ConvTranspose2d(M, 3, 18, stride=16, padding=1)


class SimplifiedInverseGDN(nn.Module):
    """``y_i = x_i (beta_i + sum_j gamma_ij |x_j|)``: inverse GDN with an absolute value
    for the square and no square root (Johnston et al., "Computationally efficient
    neural image compression", 2019, sec. 3.1), as in Yang and Mandt's two-layer
    decoder. ``beta`` and ``gamma`` are kept non-negative with GDN's
    reparameterization."""

    def __init__(self, channels: int, gamma_init: float = 0.1):
        super().__init__()
        self.beta = nn.Parameter(to_stored(torch.ones(channels)))
        self.gamma = nn.Parameter(to_stored(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = from_stored(self.beta, 1e-6)
        gamma = from_stored(self.gamma).reshape(channels, channels, 1, 1)
        return x * torch.nn.functional.conv2d(x.abs(), gamma, beta)


class TwoLayerSynthesis(nn.Module):
    """``[B, M, h, w] -> [B, 3, 16h, 16w]`` in two layers (Yang and Mandt 2023, sec.
    3.2): ``up`` (transposed convolution ``M -> hidden``, kernel 13, stride 8) and a
    simplified inverse GDN, plus the linear ``residual`` branch of the same shape, then
    ``out`` (``hidden -> 3``, kernel 5, stride 2)."""

    def __init__(self, M: int, hidden: int = 12):
        super().__init__()
        self.up = nn.ConvTranspose2d(
            M, hidden, 13, stride=8, padding=3, output_padding=1
        )
        self.nonlinearity = SimplifiedInverseGDN(hidden)
        self.residual = nn.ConvTranspose2d(
            M, hidden, 13, stride=8, padding=3, output_padding=1
        )
        self.out = nn.ConvTranspose2d(
            hidden, 3, 5, stride=2, padding=2, output_padding=1
        )

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.out(self.nonlinearity(self.up(y_hat)) + self.residual(y_hat))


class ShallowHyperprior(MeanScaleHyperprior):
    """A mean-scale hyperprior with ELIC's analysis transform and a shallow synthesis
    (Yang and Mandt 2023, sec. 3): subclasses choose :meth:`shallow_synthesis`.

    One ``N`` sets the width of ``g_a`` and of the hyper transforms and ``z``, as in
    :class:`.MeanScaleHyperprior`, so the zoo compares like with like. The paper's model
    is wider in the hyperprior than in the encoder (ELIC at 192 channels, ``z`` and the
    hyper transforms at ``N = M = 320``), which one ``N`` cannot express."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__(N, M)
        self.g_a = elic_analysis(self.N, self.M)
        self.g_s = self.shallow_synthesis(self.M)

    def shallow_synthesis(self, M: int) -> nn.Module:
        raise NotImplementedError


@register_model(
    "ym2023-jpeg-like",
    compressai_class="MeanScaleHyperprior",
    twin_transforms=("g_a", "g_s"),
)
class JPEGLikeHyperprior(ShallowHyperprior):
    """The JPEG-like synthesis (one transposed convolution) behind a powerful
    encoder."""

    def shallow_synthesis(self, M: int) -> nn.Module:
        return jpeg_like_synthesis(M)


@register_model(
    "ym2023-two-layer",
    compressai_class="MeanScaleHyperprior",
    twin_transforms=("g_a", "g_s"),
)
class TwoLayerHyperprior(ShallowHyperprior):
    """The two-layer synthesis behind a powerful encoder (Yang and Mandt's main
    model)."""

    def shallow_synthesis(self, M: int) -> nn.Module:
        return TwoLayerSynthesis(M)
