"""An image model whose latents are quantized to a lattice, ``n`` channels at a time
(Zhang and Wu, "Learning optimal lattice vector quantizers for end-to-end neural image
compression", NeurIPS 2024, sec. 3).

The latent ``y`` of a factorized-prior model, less its channels' medians, is cut into
vectors of ``n`` consecutive channels at each position. Training adds noise uniform over
the lattice's cell (:func:`lic_teach.lattices.cell_noise`, the lattice form of uniform
noise), evaluation quantizes to the lattice; the likelihood of a vector is its cell's
mass under the product of the ``n`` channels' densities (sec. 3.3,
:func:`lic_teach.lattices.cell_log_mass`), exact for ``D_n``
(:func:`lic_teach.lattices.dn_cell_log_mass`). A channel's density is the derivative of
its learned cumulative (Ballé et al., "Variational image compression with a scale
hyperprior", ICLR 2018, appendix 6.1), taken by automatic differentiation. A learned
basis is trained with the model under the orthogonality penalty of sec. 3.2
(:class:`LatticeLoss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .lattices import (
    Lattice,
    LearnedLattice,
    cell_log_mass,
    cell_noise,
    dn_cell_log_mass,
)
from .train import RateDistortionLoss


def factorized_log_density(prior, values: torch.Tensor) -> torch.Tensor:
    """``log p_c(v)`` of each channel's continuous density under a factorized prior
    (``lic_teach.entropy_models.FactorizedDensity``), for ``values`` ``[C, ...]``
    (channel first): with ``F = sigmoid(c)``, ``p = F (1 - F) c'``, and ``c'`` by
    automatic differentiation (``c`` acts on each value alone, so the gradient of the
    sum is it)."""
    flat = values.reshape(prior.channels, 1, -1)
    with torch.enable_grad():
        if not flat.requires_grad:
            flat = flat.detach().requires_grad_(True)
        logits = prior.cumulative_logits(flat)
        (slope,) = torch.autograd.grad(
            logits.sum(), flat, create_graph=torch.is_grad_enabled() and prior.training
        )
    log_p = (
        F.logsigmoid(logits) + F.logsigmoid(-logits) + torch.log(slope.clamp_min(1e-12))
    )
    return log_p.reshape(values.shape)


def _channel_logits(prior, values: torch.Tensor) -> torch.Tensor:
    """``c(v)`` of each channel for ``values`` ``[C, ...]`` (channel first)."""
    return prior.cumulative_logits(values.reshape(prior.channels, 1, -1)).reshape(
        values.shape
    )


def box_log_mass(prior, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``log P(low < v <= high)`` of each channel's density for boxes ``[C, ...]``. In
    the upper tail, ``F(high) - F(low)`` would lose its digits to those of ``F``: there
    the survival function ``1 - F = sigmoid(-c)`` is used instead, as CompressAI does.
    """
    lower, upper = _channel_logits(prior, low), _channel_logits(prior, high)
    side = -torch.sign(lower + upper).detach()
    side = torch.where(side == 0, torch.ones_like(side), side)
    mass = (torch.sigmoid(side * upper) - torch.sigmoid(side * lower)).abs()
    return torch.log(mass.clamp_min(1e-30))


class LatticeQuantized(nn.Module):
    """An image model with a factorized prior whose latents are quantized to a lattice,
    ``n`` channels at a time (Zhang and Wu, sec. 3): ``y - median`` is cut into vectors
    of ``n`` consecutive channels at each position; training adds noise uniform over the
    lattice's cell, evaluation quantizes; the likelihood of a vector is its cell's mass
    under the product of the channels' densities (:func:`cell_log_mass`, ``samples``
    points). The output is the model contract's ``{"x_hat", "likelihoods": {"y"}}``,
    with one likelihood per vector, so the book's training loop trains it as it is.

    Args:
        model: a model with ``g_a``, ``g_s`` and a ``FactorizedDensity`` ``prior``.
        lattice: a :class:`Lattice` or a :class:`LearnedLattice` (trained with the
            model).
        samples: Monte Carlo points per cell.
    """

    def __init__(self, model, lattice, samples: int = 8):
        super().__init__()
        if model.M % lattice.n:
            raise ValueError(
                f"{model.M} latent channels do not split into vectors of {lattice.n}"
            )
        self.model, self.lattice, self.samples = model, lattice, int(samples)
        self.g_a, self.g_s, self.prior = model.g_a, model.g_s, model.prior

    @property
    def basis(self) -> torch.Tensor:
        return self.lattice.basis

    def group(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, M, h, w]`` -> ``[B, M/n, h, w, n]``: vectors of ``n`` consecutive
        channels."""
        b, m, h, w = y.shape
        return y.reshape(b, m // self.lattice.n, self.lattice.n, h, w).permute(
            0, 1, 3, 4, 2
        )

    def ungroup(self, v: torch.Tensor) -> torch.Tensor:
        b, g, h, w, n = v.shape
        return v.permute(0, 1, 4, 2, 3).reshape(b, g * n, h, w)

    def log_density(self, v: torch.Tensor, medians: torch.Tensor) -> torch.Tensor:
        """``log p(v)`` of vectors ``[B, G, h, w, S, n]`` (around the medians ``[G,
        n]``)."""
        channels_first = (v + medians[None, :, None, None, None, :]).permute(
            1, 5, 0, 2, 3, 4
        )
        log_p = factorized_log_density(
            self.prior,
            channels_first.reshape(self.model.M, *v.shape[:1], *v.shape[2:5]),
        )
        groups = log_p.reshape(v.shape[1], v.shape[5], v.shape[0], *v.shape[2:5])
        return groups.sum(dim=1).permute(1, 0, 2, 3, 4)

    def quantize(self, v: torch.Tensor) -> torch.Tensor:
        return self.lattice.quantize(v)

    def latent_vectors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v, medians)``: ``g_a(x) - median`` as vectors ``[B, G, h, w, n]``, and
        the medians ``[G, n]``."""
        medians = self.prior.medians().detach().reshape(-1, self.lattice.n)
        y = self.g_a(x)
        return self.group(y) - medians[None, :, None, None, :], medians

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict:
        v, medians = self.latent_vectors(x)
        basis = self.lattice.basis
        if self.training:
            # drawn where the basis is (a fixed lattice's stays on the CPU)
            noise = cell_noise(v.shape[:-1], basis, self.quantize, generator, v.dtype)
            v_hat = v + noise.to(v.device)
        else:
            v_hat = self.quantize(v)
        log_mass = cell_log_mass(
            lambda w: self.log_density(w, medians),
            v_hat,
            basis,
            self.quantize,
            self.samples,
            generator,
        )
        y_hat = self.ungroup(v_hat + medians[None, :, None, None, :])
        return {
            "x_hat": self.g_s(y_hat),
            "likelihoods": {"y": torch.exp(log_mass.double())},
        }

    def dn_log_mass(self, v_hat: torch.Tensor, medians: torch.Tensor) -> torch.Tensor:
        """``log P(cell)`` of points ``v_hat`` ``[B, G, h, w, n]`` of ``D_n`` scaled by
        ``a``, exactly (:func:`dn_cell_log_mass` on ``y / a``)."""
        a = self.lattice.scale
        centre = lambda t: a * t + medians[None, :, None, None, :]
        channels_first = lambda t: t.permute(1, 4, 0, 2, 3).reshape(
            self.model.M, *t.shape[:1], *t.shape[2:4]
        )
        back = lambda t, like: t.reshape(
            like.shape[1], like.shape[4], like.shape[0], *like.shape[2:4]
        ).permute(2, 0, 3, 4, 1)

        def log_bin(q, half):
            return back(
                box_log_mass(
                    self.prior,
                    channels_first(centre(q - half)),
                    channels_first(centre(q + half)),
                ),
                q,
            )

        def log_density(t):
            return math.log(a) + back(
                factorized_log_density(self.prior, channels_first(centre(t))), t
            )

        return dn_cell_log_mass(log_bin, log_density, v_hat / a)

    @torch.no_grad()
    def measured_bits(
        self,
        x: torch.Tensor,
        samples: int = 256,
        generator: torch.Generator | None = None,
        exact: bool = True,
    ):
        """``(bits, x_hat)`` of an image batch: the ideal code length of its quantized
        latents (for ``D_n`` and ``exact``, exact by :meth:`dn_log_mass`; otherwise by
        :func:`cell_log_mass` with ``samples`` points a cell), and the decoded image."""
        v, medians = self.latent_vectors(x)
        v_hat = self.quantize(v)
        if exact and self.exact_mass:
            log_mass = self.dn_log_mass(v_hat, medians)
        else:
            log_mass = cell_log_mass(
                lambda w: self.log_density(w, medians),
                v_hat,
                self.lattice.basis,
                self.quantize,
                samples,
                generator,
            )
        x_hat = self.g_s(self.ungroup(v_hat + medians[None, :, None, None, :]))
        return float(-log_mass.sum() / math.log(2)), x_hat

    @property
    def exact_mass(self) -> bool:
        """Whether the cells' masses are known exactly: a (scaled) ``D_n`` with its
        exact quantizer."""
        return (
            isinstance(self.lattice, Lattice)
            and self.lattice.name == f"D{self.lattice.n}"
            and self.lattice.closest is not None
        )

    def aux_loss(self) -> torch.Tensor:
        return self.model.aux_loss()

    def update(self, force: bool = False) -> bool:
        return self.model.update(force=force)


class LatticeLoss(nn.Module):
    """The rate-distortion loss plus ``beta`` times the learned basis's orthogonality
    penalty (Zhang and Wu, sec. 3.2); for a fixed lattice, the loss alone."""

    def __init__(self, codec: LatticeQuantized, lmbda: float, beta: float = 1.0):
        super().__init__()
        self.codec, self.beta, self.rate_distortion = (
            codec,
            float(beta),
            RateDistortionLoss(lmbda),
        )

    def forward(self, output: dict, target: torch.Tensor) -> dict:
        result = self.rate_distortion(output, target)
        if isinstance(self.codec.lattice, LearnedLattice):
            result["orthogonality"] = self.codec.lattice.orthogonality()
            result["loss"] = result["loss"] + self.beta * result["orthogonality"]
        return result
