"""A powerful analysis transform: ELIC's, with residual bottlenecks and attention.

He et al., "ELIC: Efficient learned image compression with unevenly grouped
space-channel contextual adaptive coding" (CVPR 2022, fig. 7) make the analysis
transform of the mean-scale hyperprior deeper: after each of its first three strided
convolutions come three *residual bottleneck* blocks (He et al., "Deep residual
learning", CVPR 2016: a 1x1 convolution halves the channels, a 3x3 one mixes neighbours,
a 1x1 one restores the channels, and the input is added back), and two *attention*
blocks weight the features (Cheng et al., "Learned image compression with discretized
Gaussian mixture likelihoods and attention modules", CVPR 2020, sec. 3.3, simplified: no
non-local part). Yang and Mandt (ICCV 2023) pair this encoder with shallow decoders: its
cost is paid once, by the sender.

Built with ``blocks=3`` and ``N=192, M=320`` it is ELIC's transform, and CompressAI's
``Elic2022Official.g_a`` weights load into it in order (``tests/test_shallow.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .factorized import conv


class ResidualBottleneck(nn.Module):
    """``x + expand(relu(spatial(relu(reduce(x)))))``: 1x1 to ``channels // 2``, 3x3,
    1x1 back (He et al. 2016, fig. 5 right; no activation after the sum, as in ELIC)."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = channels // 2
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.spatial = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.spatial(torch.relu(self.reduce(x))))
        return x + self.expand(hidden)


class _ResidualUnit(ResidualBottleneck):
    """A residual bottleneck followed by a ReLU: the unit of Cheng's attention block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class AttentionBlock(nn.Module):
    """``x + trunk(x) * sigmoid(mask(x))`` (Cheng et al. 2020, fig. 3, without the
    non-local block): both branches are three residual units; the mask ends in a 1x1
    convolution, so each feature is scaled by a weight in (0, 1), computed from the
    input, before it is added back."""

    def __init__(self, channels: int):
        super().__init__()
        self.trunk = nn.Sequential(*(_ResidualUnit(channels) for _ in range(3)))
        self.mask = nn.Sequential(
            *(_ResidualUnit(channels) for _ in range(3)),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.mask(x))


def elic_analysis(N: int, M: int, blocks: int = 3) -> nn.Sequential:
    """``[B, 3, H, W] -> [B, M, H/16, W/16]``: four 5x5 convolutions of stride 2, the
    first three each followed by ``blocks`` residual bottlenecks, with attention after
    the second stage (``N`` channels) and on the latent (``M``) (He et al. 2022, fig.
    7)."""

    def stage(*layers):
        return [*layers, *(ResidualBottleneck(N) for _ in range(blocks))]

    return nn.Sequential(
        *stage(conv(3, N)),
        *stage(conv(N, N)),
        AttentionBlock(N),
        *stage(conv(N, N)),
        conv(N, M),
        AttentionBlock(M),
    )
