"""The factorized-prior model: Ballé et al., "End-to-end optimized image compression"
(ICLR 2017), in the form of the baseline of Ballé et al., "Variational image compression
with a scale hyperprior" (ICLR 2018, sec. 4): four 5x5 stride-2 convolutions with GDN
for the analysis transform ``g_a``, their transposes with inverse GDN for the synthesis
transform ``g_s``, and the learned factorized density of appendix 6.1 as the prior.
The loss is ``R + lambda D`` (2017, eq. 2); see ``lic_teach.train``.
"""

from __future__ import annotations

from torch import nn

from ..entropy_models import FactorizedDensity
from ..layers import GDN
from .base import ImageCodec
from .registry import register_model


def conv(
    in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2
) -> nn.Conv2d:
    """Convolution with "same" padding; stride 2 halves height and width."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
    )


def deconv(
    in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2
) -> nn.ConvTranspose2d:
    """Transposed convolution; stride 2 doubles height and width exactly."""
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        output_padding=stride - 1,
    )


def analysis_transform(N: int, M: int) -> nn.Sequential:
    """``g_a``: image ``[B, 3, H, W]`` -> latent ``[B, M, H/16, W/16]``."""
    return nn.Sequential(
        conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
    )


def synthesis_transform(N: int, M: int) -> nn.Sequential:
    """``g_s``: latent ``[B, M, h, w]`` -> image ``[B, 3, 16h, 16w]``."""
    return nn.Sequential(
        deconv(M, N),
        GDN(N, inverse=True),
        deconv(N, N),
        GDN(N, inverse=True),
        deconv(N, N),
        GDN(N, inverse=True),
        deconv(N, 3),
    )


@register_model(
    "bmshj2018-factorized",
    compressai_class="FactorizedPrior",
    compressai_zoo="bmshj2018_factorized",
)
class FactorizedPrior(ImageCodec):
    """``x -> g_a -> y -> Q -> y_hat -> g_s -> x_hat``, with ``y_hat`` coded under a
    learned factorized density (CompressAI's twin:
    ``compressai.models.FactorizedPrior``).

    Args:
        N: channels of the hidden layers (paper: 128, or 192 at high rates).
        M: channels of the latent ``y`` (paper: 192, or 320 at high rates).
    """

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = int(N), int(M)
        self.g_a = analysis_transform(self.N, self.M)
        self.g_s = synthesis_transform(self.N, self.M)
        self.prior = FactorizedDensity(self.M)

    def hyperparameters(self) -> tuple[int, ...]:
        return (self.N, self.M)

    def entropy(self, y):
        """The entropy model alone: ``(y_hat, {"y": likelihoods})`` for latents
        ``y``."""
        y_hat, y_likelihoods = self.prior(y)
        return y_hat, {"y": y_likelihoods}

    def latents_to_strings(self, latents, coder):
        """One string: ``y`` rounded around the channel medians, coded under the
        prior."""
        return self.prior.compress(latents["y"], coder)

    def strings_to_latents(self, strings, latent_size, coder):
        return self.prior.decompress(strings, latent_size, coder)
