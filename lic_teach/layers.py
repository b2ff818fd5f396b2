"""Generalized divisive normalization (GDN) and its inverse.

GDN (Ballé, Laparra & Simoncelli, ICLR 2016, eq. 6; used as the nonlinearity of the
transforms in Ballé et al., ICLR 2017, eq. 3) divides each channel by a learned norm
of all channels at the same position:

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)

and the inverse GDN of the synthesis transform multiplies instead (eq. 8 there).

``beta`` must stay positive and ``gamma`` non-negative. As in Ballé's code and in
CompressAI, both are stored reparameterized: the tensor kept is ``sqrt(value + p)`` with
a tiny pedestal ``p = 2^-36``, and the value is recovered as ``max(stored, bound)^2 -
p``. Gradients that would push a stored value below its bound are blocked, while those
that pull it back up pass. The stored tensors therefore equal CompressAI's, and its
weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PEDESTAL = 2.0**-36  # (2^-18)^2, the reparameterization offset


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` whose gradient passes wherever it moves ``x`` up from the
    bound."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)``, letting through the gradients that raise ``x`` (see module
    doc)."""
    return _LowerBound.apply(x, bound)


def to_stored(value: torch.Tensor) -> torch.Tensor:
    """The stored form ``sqrt(max(value + p, p))`` of a non-negative parameter."""
    return torch.sqrt(torch.clamp_min(value + PEDESTAL, PEDESTAL))


def from_stored(stored: torch.Tensor, minimum: float = 0.0) -> torch.Tensor:
    """The parameter value ``max(stored, sqrt(minimum + p))^2 - p``, at least
    ``minimum``."""
    return lower_bound(stored, (minimum + PEDESTAL) ** 0.5) ** 2 - PEDESTAL


class GDN(nn.Module):
    """GDN over the channels of ``[B, C, H, W]``; ``inverse=True`` gives inverse GDN.

    Initialization as in Ballé et al. 2017: ``beta = 1`` and ``gamma = 0.1 I``.
    """

    def __init__(
        self,
        channels: int,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
    ):
        super().__init__()
        self.inverse, self.beta_min = inverse, float(beta_min)
        self.beta = nn.Parameter(to_stored(torch.ones(channels)))
        self.gamma = nn.Parameter(to_stored(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = from_stored(self.beta, self.beta_min)
        gamma = from_stored(self.gamma).reshape(channels, channels, 1, 1)
        norm_squared = F.conv2d(x * x, gamma, beta)  # beta_i + sum_j gamma_ij x_j^2
        return (
            x * torch.sqrt(norm_squared)
            if self.inverse
            else x * torch.rsqrt(norm_squared)
        )

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"
