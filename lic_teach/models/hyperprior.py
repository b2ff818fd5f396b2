"""Side information: the scale hyperprior and the mean-scale hyperprior.

Ballé et al., "Variational image compression with a scale hyperprior" (ICLR 2018):
a second, smaller autoencoder summarises the latent ``y`` in a hyper-latent
``z = h_a(|y|)``, coded first with a factorized density (the end-to-end chapter). Its
decoder predicts one scale per latent, ``sigma = h_s(z_hat)``, and ``y`` is coded under
``N(0, sigma^2)`` convolved with a unit uniform (eqs. 5-10). The bits spent on ``z`` buy
a prior fitted to each image region.

Minnen, Ballé & Toderici, "Joint autoregressive and hierarchical priors for learned
image compression" (NeurIPS 2018): the hyper-decoder predicts a mean as well as a scale,
``(sigma, mu) = h_s(z_hat)``, and ``y`` is rounded around ``mu`` (the "mean-scale"
hyperprior, CompressAI's ``mbt2018-mean``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..entropy_models import FactorizedDensity, GaussianConditional
from .base import ImageCodec
from .factorized import analysis_transform, conv, deconv, synthesis_transform
from .registry import register_model


@register_model(
    "bmshj2018-hyperprior",
    compressai_class="ScaleHyperprior",
    compressai_zoo="bmshj2018_hyperprior",
)
class ScaleHyperprior(ImageCodec):
    """``y = g_a(x)``, ``z = h_a(|y|)``, ``sigma = h_s(z_hat)``, ``y ~ N(0, sigma^2)``.

    Twin: ``compressai.models.ScaleHyperprior``. ``N`` channels in the transforms and
    in ``z``; ``M`` channels in ``y``.
    """

    downsampling = 64  # 16 in g_a, 4 more in h_a
    string_names = ("y", "z")

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = int(N), int(M)
        self.g_a = analysis_transform(self.N, self.M)
        self.g_s = synthesis_transform(self.N, self.M)
        self.h_a = nn.Sequential(
            conv(self.M, self.N, 3, 1),
            nn.ReLU(inplace=True),
            conv(self.N, self.N),
            nn.ReLU(inplace=True),
            conv(self.N, self.N),
        )
        self.h_s = nn.Sequential(
            deconv(self.N, self.N),
            nn.ReLU(inplace=True),
            deconv(self.N, self.N),
            nn.ReLU(inplace=True),
            conv(self.N, self.M, 3, 1),
            nn.ReLU(inplace=True),
        )
        self.hyperprior = FactorizedDensity(self.N)  # p(z_hat)
        self.conditional = GaussianConditional()  # p(y_hat | z_hat)

    def hyperparameters(self) -> tuple[int, ...]:
        return (self.N, self.M)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(torch.abs(y))

    def gaussian_parameters(self, z_hat: torch.Tensor):
        """``(scales, means)`` of ``y`` predicted from the hyper-latent (means:
        None)."""
        return self.h_s(z_hat), None

    def entropy(self, y):
        """The entropy model alone: ``(y_hat, {"y", "z": likelihoods})`` for latents
        ``y``."""
        z_hat, z_likelihoods = self.hyperprior(self.hyper_analysis(y))
        scales, means = self.gaussian_parameters(z_hat)
        y_hat, y_likelihoods = self.conditional(y, scales, means)
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """``y`` as for every model, and ``z``: ``N`` channels, one per 64 pixels."""
        return {
            **super().latent_shapes(height, width),
            "z": (self.N, *self.latent_size(height, width)),
        }

    def analysis(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"y": g_a(x), "z": h_a(y)}``: the amortized encoder's two latents."""
        y = self.g_a(x)
        return {"y": y, "z": self.hyper_analysis(y)}

    def code_hyper_latent(self, z: torch.Tensor, coder: str):
        """``(z_strings, z_hat)``: ``z`` is coded, then decoded, so that the encoder
        predicts ``y``'s parameters from exactly the ``z_hat`` the decoder will have."""
        z_strings = self.hyperprior.compress(z, coder)
        return z_strings, self.hyperprior.decompress(z_strings, z.shape[-2:], coder)

    def latents_to_strings(self, latents, coder):
        """Strings ``[y, z]``: ``z`` rounded around its medians, ``y`` around the means
        predicted from the decoded ``z_hat`` (CompressAI's ``HyperpriorLatentCodec``).
        """
        z_strings, z_hat = self.code_hyper_latent(latents["z"], coder)
        scales, means = self.gaussian_parameters(z_hat)
        return self.conditional.compress(latents["y"], scales, means, coder) + z_strings

    def strings_to_latents(self, strings, latent_size, coder):
        z_hat = self.hyperprior.decompress(strings[1:], latent_size, coder)
        scales, means = self.gaussian_parameters(z_hat)
        return self.conditional.decompress(strings[:1], scales, means, coder)


@register_model(
    "mbt2018-mean",
    compressai_class="MeanScaleHyperprior",
    compressai_zoo="mbt2018_mean",
)
class MeanScaleHyperprior(ScaleHyperprior):
    """As :class:`ScaleHyperprior`, but ``h_s`` predicts a mean and a scale per latent,
    ``z = h_a(y)`` sees the signs of ``y``, and the activations are leaky ReLUs
    (Minnen et al. 2018). Twin: ``compressai.models.MeanScaleHyperprior``."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__(N, M)
        N, M = self.N, self.M
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1),
            nn.LeakyReLU(inplace=True),
            conv(N, N),
            nn.LeakyReLU(inplace=True),
            conv(N, N),
        )
        self.h_s = nn.Sequential(
            deconv(N, M),
            nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2),
            nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, 2 * M, 3, 1),
        )

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y)

    def gaussian_parameters(self, z_hat: torch.Tensor):
        scales, means = self.h_s(z_hat).chunk(2, dim=1)
        return scales, means
