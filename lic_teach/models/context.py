"""Context models: predicting each latent's Gaussian from latents already decoded.

Minnen, Ballé & Toderici, "Joint autoregressive and hierarchical priors for learned
image compression" (NeurIPS 2018), sec. 3 and fig. 4: the mean-scale hyperprior (the
hyperprior chapter) plus a *context model*, a 5x5 convolution masked so that position
``(i, j)`` sees only the latents above it and to its left (the type-A mask of van den
Oord et al., "Pixel recurrent neural networks", 2016). An *entropy-parameter* network of
1x1 convolutions merges this context with the hyperprior's output into ``(sigma, mu)``
for every latent. The decoder must then decode the latents one position at a time, in
raster order: ``H/16 * W/16`` small network evaluations in series.

He, Zheng, Sun, Wang & Qin, "Checkerboard context model for efficient learned image
compression" (CVPR 2021), sec. 3: split the latent positions like a checkerboard. The
*anchors* (``i + j`` even) are coded first, with no spatial context, from the
hyperprior alone; the *non-anchors* (``i + j`` odd) are then coded with a context
computed from the anchors around them (eq. 4-6). Decoding takes two parallel passes
instead of one per position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantization import hard_round, uniform_noise
from .hyperprior import MeanScaleHyperprior
from .registry import register_model


class MaskedConv2d(nn.Conv2d):
    """A "same"-padded convolution that sees only the neighbours already decoded.

    ``pattern="raster"``: the type-A mask of Minnen et al. (2018): every row above the
    centre, and the positions left of the centre on its row.
    ``pattern="checkerboard"``: He et al. (2021): the positions whose offset from the
    centre ``(di, dj)`` has ``di + dj`` odd, i.e. the anchors around a non-anchor.
    The centre itself is never seen.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        pattern: str = "raster",
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2
        )
        self.register_buffer(
            "mask", context_mask(kernel_size, pattern)[None, None], persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def context_mask(kernel_size: int, pattern: str) -> torch.Tensor:
    """The ``kernel_size x kernel_size`` 0/1 mask of :class:`MaskedConv2d`."""
    rows, cols = torch.meshgrid(
        torch.arange(kernel_size), torch.arange(kernel_size), indexing="ij"
    )
    centre = kernel_size // 2
    if pattern == "raster":
        seen = (rows < centre) | ((rows == centre) & (cols < centre))
    elif pattern == "checkerboard":
        seen = (rows + cols) % 2 == 1
    else:
        raise ValueError(
            f"unknown context pattern {pattern!r}; choose 'raster' or 'checkerboard'"
        )
    return seen.float()


def entropy_parameters(M: int) -> nn.Sequential:
    """1x1 convolutions ``4M -> 10M/3 -> 8M/3 -> 2M`` (Minnen et al. 2018, table 1):
    hyperprior output and context in, ``(scales, means)`` out."""
    return nn.Sequential(
        nn.Conv2d(M * 12 // 3, M * 10 // 3, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(M * 10 // 3, M * 8 // 3, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(M * 8 // 3, M * 6 // 3, 1),
    )


class ContextModel(MeanScaleHyperprior):
    """What both context models add to the mean-scale hyperprior: a masked 5x5 context
    convolution ``g_cm`` (mask ``pattern``) and the entropy-parameter network ``e``.
    ``context_first`` is the order of ``e``'s inputs, which differs between the two
    CompressAI twins (so that weights move unchanged)."""

    context_size = 5
    pattern = "raster"
    context_first = False

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__(N, M)
        self.context_prediction = MaskedConv2d(
            self.M, 2 * self.M, self.context_size, self.pattern
        )
        self.entropy_parameters = entropy_parameters(self.M)

    def gaussian_parameters_with_context(self, hyper_params, context):
        """``(scales, means)`` from the hyper-decoder's output ``h_s(z_hat)`` and the
        context."""
        inputs = (
            (context, hyper_params) if self.context_first else (hyper_params, context)
        )
        scales, means = self.entropy_parameters(torch.cat(inputs, dim=1)).chunk(2, 1)
        return scales, means


@register_model(
    "mbt2018",
    compressai_class="JointAutoregressiveHierarchicalPriors",
    compressai_zoo="mbt2018",
)
class JointAutoregressive(ContextModel):
    """Mean-scale hyperprior + raster-order context model (Minnen et al. 2018).

    Twin: ``compressai.models.JointAutoregressiveHierarchicalPriors`` (zoo name
    ``mbt2018``). ``forward`` in eval mode follows CompressAI: the context is computed
    from ``round(y)``, because the means that ``compress`` rounds around depend on the
    latents themselves and exist only inside the serial loop; the likelihoods are those
    of ``round(y - mu)``, the symbols really coded. ``compress``/``decompress`` run the
    exact serial loop. In training one noisy ``y + u`` feeds the context, the
    likelihoods and ``g_s`` (CompressAI draws a second noise sample for the
    likelihoods).
    """

    pattern = "raster"

    def entropy(self, y):
        """``(y_hat, {"y", "z": likelihoods})``; ``y + u`` in training, ``round(y)`` in
        eval."""
        z_hat, z_likelihoods = self.hyperprior(self.hyper_analysis(y))
        hyper_params = self.h_s(z_hat)
        y_hat = uniform_noise(y) if self.training else torch.round(y)
        scales, means = self.gaussian_parameters_with_context(
            hyper_params, self.context_prediction(y_hat)
        )
        coded = y_hat if self.training else hard_round(y, means)
        return y_hat, {
            "y": self.conditional.likelihood(coded, scales, means),
            "z": z_likelihoods,
        }

    def _serial(self, hyper_params: torch.Tensor, next_latents) -> torch.Tensor:
        """The loop that encoder and decoder share. Visit every latent position in
        raster order; predict its ``(scales, means)`` from the hyperprior and from the
        5x5 window of latents decoded so far; ``next_latents(i, j, scales, means)``
        returns its decoded values ``[1, M]``. Returns ``y_hat`` ``[1, M, h, w]``."""
        k, pad = self.context_size, self.context_size // 2
        height, width = hyper_params.shape[-2:]
        y_hat = hyper_params.new_zeros(1, self.M, height + 2 * pad, width + 2 * pad)
        weight = self.context_prediction.weight * self.context_prediction.mask
        for i in range(height):
            for j in range(width):
                window = y_hat[:, :, i : i + k, j : j + k]
                context = F.conv2d(
                    window, weight, self.context_prediction.bias
                )  # [1, 2M, 1, 1]
                scales, means = self.gaussian_parameters_with_context(
                    hyper_params[:, :, i : i + 1, j : j + 1], context
                )
                y_hat[:, :, i + pad, j + pad] = next_latents(
                    i, j, scales[..., 0, 0], means[..., 0, 0]
                )
        return y_hat[:, :, pad : height + pad, pad : width + pad]

    def latents_to_strings(self, latents, coder):
        """Strings ``[y, z]``. The encoder runs the decoder's serial loop, so that each
        position's means come from exactly the latents the decoder will have."""
        y = latents["y"]
        if y.shape[0] != 1:
            raise ValueError("the serial coder codes one image at a time")
        z_strings, z_hat = self.code_hyper_latent(latents["z"], coder)
        hyper_params = self.h_s(z_hat)
        coded = {"y": [], "scales": [], "means": []}

        def quantize(i, j, scales, means):
            coded["y"].append(y[:, :, i, j])
            coded["scales"].append(scales)
            coded["means"].append(means)
            return hard_round(y[:, :, i, j], means)

        self._serial(hyper_params, quantize)
        # code position by position, M channels each: [1, positions, M]
        y_strings = self.conditional.compress(
            *(torch.stack(coded[k], dim=1) for k in ("y", "scales", "means")),
            coder=coder,
        )
        return y_strings + z_strings

    def strings_to_latents(self, strings, latent_size, coder):
        z_hat = self.hyperprior.decompress(strings[1:], latent_size, coder)
        stream = self.conditional.stream_decoder(strings[0], coder)
        y_hat = self._serial(
            self.h_s(z_hat), lambda i, j, scales, means: stream.decode(scales, means)
        )
        stream.finish()
        return y_hat


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """``True`` at the anchors, the positions with ``i + j`` even (He et al. 2021, fig.
    3)."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return (rows + cols) % 2 == 0


def checkerboard_split(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(anchors, non_anchors)``, each ``[B, C, H, W/2]``: row ``i`` holds the anchors
    (non-anchors) of row ``i`` in order, so each half is a dense tensor. ``W`` is even.
    """
    batch, channels, height, width = y.shape
    if width % 2:
        raise ValueError(
            f"the checkerboard needs latents of even width, got {width}: pad the image "
            f"to a multiple of 32 pixels (compress pads to the model's downsampling)"
        )
    anchors = anchor_mask(height, width, y.device)
    return (
        y[..., anchors].reshape(batch, channels, height, width // 2),
        y[..., ~anchors].reshape(batch, channels, height, width // 2),
    )


def checkerboard_merge(
    anchors: torch.Tensor, non_anchors: torch.Tensor
) -> torch.Tensor:
    """The inverse of :func:`checkerboard_split`."""
    batch, channels, height, half = anchors.shape
    mask = anchor_mask(height, 2 * half, anchors.device)
    y = anchors.new_zeros(batch, channels, height, 2 * half)
    y[..., mask] = anchors.reshape(batch, channels, -1)
    y[..., ~mask] = non_anchors.reshape(batch, channels, -1)
    return y


@register_model("checkerboard-mean-scale", compressai_class="CheckerboardMeanScale")
class CheckerboardContext(ContextModel):
    """Mean-scale hyperprior + checkerboard context model (He et al. 2021).

    Anchors: ``(sigma, mu) = e(0, psi)``, from the hyperprior ``psi`` alone.
    Non-anchors: ``(sigma, mu) = e(g_cm(y_hat_anchors), psi)``, with ``g_cm`` a 5x5
    convolution that sees only anchors (:class:`MaskedConv2d`, ``"checkerboard"``).
    Training: one parallel pass on ``y + u``, the context of anchors set to zero.
    Eval and coding: two passes, each rounding around its predicted means.

    Twin: CompressAI's ``CheckerboardLatentCodec`` inside a ``HyperpriorLatentCodec``,
    with the transforms of ``mbt2018-mean`` (built in ``lic_teach.crosscheck``).
    """

    pattern = "checkerboard"
    context_first = True
    string_names = ("y anchors", "y non-anchors", "z")

    def entropy(self, y):
        """``(y_hat, {"y", "z": likelihoods})``: noise in training, two passes in
        eval."""
        z_hat, z_likelihoods = self.hyperprior(self.hyper_analysis(y))
        hyper_params = self.h_s(z_hat)
        if self.training:
            y_hat = uniform_noise(y)
            anchors = anchor_mask(*y.shape[-2:], device=y.device)
            context = self.context_prediction(y_hat).masked_fill(anchors, 0.0)
            scales, means = self.gaussian_parameters_with_context(hyper_params, context)
        else:
            passes = self._two_passes(y, hyper_params)
            y_hat, scales, means = (
                checkerboard_merge(*halves)
                for halves in zip(
                    *(
                        (hard_round(y_half, means), scales, means)
                        for y_half, scales, means in passes
                    )
                )
            )
        return y_hat, {
            "y": self.conditional.likelihood(y_hat, scales, means),
            "z": z_likelihoods,
        }

    def _two_passes(self, y, hyper_params):
        """Eval and encoding: ``[(y_half, scales, means)]`` of the anchors, then of the
        non-anchors (dense half-width tensors): the anchors' parameters come without
        context, the non-anchors' from the anchors rounded around their means. The
        decoder computes the very same parameters from the very same tensors."""
        hyper_halves, y_halves = checkerboard_split(hyper_params), checkerboard_split(y)
        scales_a, means_a = self._pass_parameters(hyper_halves)
        scales_n, means_n = self._pass_parameters(
            hyper_halves, hard_round(y_halves[0], means_a)
        )
        return [(y_halves[0], scales_a, means_a), (y_halves[1], scales_n, means_n)]

    def _pass_parameters(self, hyper_halves, y_hat_anchors=None):
        """``(scales, means)`` of one pass, on the dense half-width tensors: the anchors
        (no context) if ``y_hat_anchors`` is None, else the non-anchors."""
        if y_hat_anchors is None:
            context = hyper_halves[0].new_zeros(hyper_halves[0].shape)
            return self.gaussian_parameters_with_context(hyper_halves[0], context)
        full = checkerboard_merge(y_hat_anchors, torch.zeros_like(y_hat_anchors))
        context = checkerboard_split(self.context_prediction(full))[1]
        return self.gaussian_parameters_with_context(hyper_halves[1], context)

    def latents_to_strings(self, latents, coder):
        """Strings ``[anchors, non-anchors, z]``."""
        z_strings, z_hat = self.code_hyper_latent(latents["z"], coder)
        y_strings = []
        for y_half, scales, means in self._two_passes(latents["y"], self.h_s(z_hat)):
            y_strings += self.conditional.compress(y_half, scales, means, coder)
        return y_strings + z_strings

    def strings_to_latents(self, strings, latent_size, coder):
        """The anchors from the hyperprior alone, then the non-anchors with the context
        of the decoded anchors: two parallel passes."""
        z_hat = self.hyperprior.decompress(strings[2:], latent_size, coder)
        hyper_halves = checkerboard_split(self.h_s(z_hat))
        scales, means = self._pass_parameters(hyper_halves)
        y_hat_anchors = self.conditional.decompress(strings[:1], scales, means, coder)
        scales, means = self._pass_parameters(hyper_halves, y_hat_anchors)
        y_hat_non_anchors = self.conditional.decompress(
            strings[1:2], scales, means, coder
        )
        return checkerboard_merge(y_hat_anchors, y_hat_non_anchors)
