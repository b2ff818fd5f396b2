"""Entropy models: the probability of each quantized latent, for training and coding.

``FactorizedDensity`` is the learned univariate density of Ballé et al., "Variational
image compression with a scale hyperprior" (ICLR 2018), appendix 6.1. Each channel has
its own density, modelled through its cumulative: a small monotone network
``c = f_K o ... o f_1`` with ``f_k(x) = g_k(softplus(H_k) x + b_k)`` and
``g_k(x) = x + tanh(a_k) * tanh(x)`` (eqs. 11-13). The probability of the unit bin
around ``y`` is ``sigmoid(c(y + 1/2)) - sigmoid(c(y - 1/2))``. CompressAI calls this
model ``EntropyBottleneck``.

``GaussianConditional`` gives each latent its own zero-mean (or shifted) Gaussian
convolved with a unit uniform, with scales predicted elsewhere (by the hyperprior).

Both add uniform noise in training (Ballé et al. 2017, sec. 3.1) and round at test
time: around the channel median for the factorized density, and around the mean for
the Gaussian. For coding they build integer CDF tables (``coding.build_cdf_tables``)
that are equal to CompressAI's for the same weights.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from . import bitstream, coding
from .layers import lower_bound
from .quantization import hard_round, uniform_noise

LIKELIHOOD_BOUND = 1e-9
TABLE_BUFFERS = (
    "quantized_cdf",
    "cdf_length",
    "cdf_offset",
)  # integer coding tables, per model


def per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[C]`` values (no gradient) shaped to broadcast over latents ``like`` ``[B, C,
    ...]``."""
    return values.detach().to(like).reshape(1, -1, *([1] * (like.dim() - 2)))


class _CodingTables(nn.Module):
    """Integer CDF tables kept as buffers, so a saved model carries the very tables its
    decoder must use (recomputing them elsewhere could differ in the last bit)."""

    TABLES = TABLE_BUFFERS

    def __init__(self):
        super().__init__()
        for name in self.TABLES:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32))

    def has_tables(self) -> bool:
        return self.quantized_cdf.numel() > 0

    def _set_tables(self, cdfs, lengths, offsets) -> None:
        device = self.quantized_cdf.device
        self.quantized_cdf = torch.tensor(cdfs, dtype=torch.int32, device=device)
        self.cdf_length = torch.tensor(lengths, dtype=torch.int32, device=device)
        self.cdf_offset = torch.as_tensor(offsets, dtype=torch.int32).to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for (
            name
        ) in self.TABLES:  # tables differ in size between models: take the saved size
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.has_tables():
            self.check_tables(prefix)

    def check_tables(self, name: str = "") -> None:
        """``ValueError`` unless the tables are CDFs a coder can use: each row starts at
        0, rises strictly to ``2^16`` over its length, and has an escape symbol. Saved
        tables come from files, and CompressAI's C++ coder trusts them blindly."""
        cdf, length, offset = (
            self.quantized_cdf,
            self.cdf_length.long(),
            self.cdf_offset,
        )
        rows, width = cdf.shape if cdf.dim() == 2 else (0, 0)
        if (
            cdf.dim() != 2
            or length.shape != (rows,)
            or offset.shape != (rows,)
            or not bool(((length >= 3) & (length <= width)).all())
        ):
            raise ValueError(
                f"the coding tables {name!r} have inconsistent shapes or lengths: "
                f"damaged weights"
            )
        within = torch.arange(width, device=length.device)[None, :] < length[:, None]
        steps = cdf[:, 1:] - cdf[:, :-1]
        last = cdf.gather(1, (length - 1)[:, None])[:, 0]
        if not (
            bool((cdf[:, 0] == 0).all())
            and bool((last == 1 << coding.PRECISION).all())
            and bool((steps > 0)[within[:, 1:]].all())
        ):
            raise ValueError(
                f"the coding tables {name!r} are not valid CDFs: damaged weights"
            )

    def tables(self) -> tuple[list, list, list]:
        """``(cdfs, cdf_lengths, offsets)`` as lists, in the coders' argument order."""
        if not self.has_tables():
            raise RuntimeError("no coding tables: call update() once training is done")
        return (
            self.quantized_cdf.tolist(),
            self.cdf_length.tolist(),
            self.cdf_offset.tolist(),
        )

    def _code(self, symbols: torch.Tensor, indexes: torch.Tensor, coder: str) -> bytes:
        indexes = indexes.reshape(-1).int().tolist()
        bitstream.note_indexes(indexes, "encode")
        return coding.get_coder(coder).encode_with_indexes(
            symbols.reshape(-1).int().tolist(), indexes, *self.tables()
        )

    def _decode(self, string: bytes, indexes: torch.Tensor, coder: str) -> torch.Tensor:
        flat = indexes.reshape(-1).int().tolist()
        bitstream.note_indexes(flat, "decode")
        values = coding.get_coder(coder).decode_with_indexes(
            string, flat, *self.tables()
        )
        return torch.tensor(values, dtype=torch.float32).reshape(indexes.shape)


class FactorizedDensity(_CodingTables):
    """Learned per-channel density (Ballé et al. 2018, appendix 6.1).

    Args:
        channels: number of channels of the latent.
        filters: widths of the hidden layers of the cumulative network (paper: 3, 3, 3).
        init_scale: initial spread of the density, in quantization bins.
        tail_mass: probability left outside ``[quantiles[0], quantiles[2]]``.
    """

    def __init__(
        self,
        channels: int,
        filters=(3, 3, 3, 3),
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
    ):
        super().__init__()
        self.channels, self.filters = int(channels), tuple(int(f) for f in filters)
        self.init_scale, self.tail_mass = float(init_scale), float(tail_mass)
        widths = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        self.matrices, self.biases, self.factors = (
            nn.ParameterList(),
            nn.ParameterList(),
            nn.ParameterList(),
        )
        for k in range(len(widths) - 1):
            # softplus(H) starts at 1 / (scale * width): the density starts wide
            start = math.log(math.expm1(1 / scale / widths[k + 1]))
            self.matrices.append(
                nn.Parameter(torch.full((channels, widths[k + 1], widths[k]), start))
            )
            self.biases.append(
                nn.Parameter(
                    torch.empty(channels, widths[k + 1], 1).uniform_(-0.5, 0.5)
                )
            )
            if k < len(widths) - 2:
                self.factors.append(
                    nn.Parameter(torch.zeros(channels, widths[k + 1], 1))
                )
        # quantiles[:, 0] = (lower tail, median, upper tail), learned by the auxiliary
        # loss
        self.quantiles = nn.Parameter(
            torch.tensor([-self.init_scale, 0.0, self.init_scale]).repeat(
                channels, 1, 1
            )
        )

    # -- the density ------------------------------------------------------------------
    def cumulative_logits(
        self, x: torch.Tensor, stop_gradient: bool = False
    ) -> torch.Tensor:
        """``c(x)``, the logit of the CDF, for ``x`` of shape ``[C, 1, n]`` (eqs.
        11-13)."""

        def maybe_detach(p):
            return p.detach() if stop_gradient else p

        logits = x
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(
                F.softplus(maybe_detach(matrix)), logits
            ) + maybe_detach(bias)
            if k < len(self.factors):
                logits = logits + torch.tanh(
                    maybe_detach(self.factors[k])
                ) * torch.tanh(logits)
        return logits

    def _bin_probability(self, values: torch.Tensor, stop_gradient: bool = False):
        lower = self.cumulative_logits(values - 0.5, stop_gradient)
        upper = self.cumulative_logits(values + 0.5, stop_gradient)
        return torch.sigmoid(upper) - torch.sigmoid(lower), lower, upper

    def cdf(self, values: torch.Tensor) -> torch.Tensor:
        """``P(Y <= v)`` of each channel's density, for ``values`` ``[B, C, ...]``."""
        flat = values.transpose(0, 1).reshape(self.channels, 1, -1)
        cdf = torch.sigmoid(self.cumulative_logits(flat))
        return cdf.reshape(values.transpose(0, 1).shape).transpose(0, 1)

    def medians(self) -> torch.Tensor:
        """The learned median of each channel, ``[C]``."""
        return self.quantiles[:, 0, 1]

    def likelihood(self, y_hat: torch.Tensor) -> torch.Tensor:
        """``P(y_hat)`` for a latent ``[B, C, ...]``, bounded below by 1e-9."""
        values = y_hat.transpose(0, 1).reshape(self.channels, 1, -1)
        probability, _, _ = self._bin_probability(values)
        probability = lower_bound(probability, LIKELIHOOD_BOUND)
        shape = y_hat.transpose(0, 1).shape
        return probability.reshape(shape).transpose(0, 1)

    def forward(self, y: torch.Tensor, training: bool | None = None):
        """``(y_hat, likelihoods)``: ``y`` plus noise in training, else rounded around
        the channel medians."""
        training = self.training if training is None else training
        y_hat = uniform_noise(y) if training else self.hard_round(y)
        return y_hat, self.likelihood(y_hat)

    def medians_like(self, y: torch.Tensor) -> torch.Tensor:
        """The channel medians (no gradient) shaped to broadcast over ``y`` ``[B, C,
        ...]``."""
        return per_channel(self.medians(), y)

    def hard_round(self, y: torch.Tensor) -> torch.Tensor:
        """``round(y - median) + median``: what the coder reconstructs."""
        return hard_round(y, self.medians_like(y))

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """Integer symbols ``round(y - median)``."""
        return torch.round(y - self.medians_like(y))

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        return symbols + self.medians_like(symbols)

    # -- the auxiliary loss ----------------------------------------------------------
    def target_logits(self) -> torch.Tensor:
        """Logits the quantiles must reach: ``logit(tail/2), 0, logit(1 - tail/2)``."""
        edge = math.log(2 / self.tail_mass - 1)
        return torch.tensor([-edge, 0.0, edge], device=self.quantiles.device)

    def aux_loss(self) -> torch.Tensor:
        """``sum |c(quantiles) - target|``: moves only the quantiles (density
        frozen), so they track the tails and the median of each channel's density."""
        logits = self.cumulative_logits(self.quantiles, stop_gradient=True)
        return (logits - self.target_logits()).abs().sum()

    # -- coding ----------------------------------------------------------------------
    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build the integer CDF tables from the current density (skipped if
        present)."""
        if self.has_tables() and not force:
            return False
        medians = self.quantiles[:, 0, 1]
        below = torch.ceil(medians - self.quantiles[:, 0, 0]).int().clamp_min(0)
        above = torch.ceil(self.quantiles[:, 0, 2] - medians).int().clamp_min(0)
        lengths = (below + above + 1).tolist()
        samples = (
            torch.arange(max(lengths), device=medians.device)[None, :]
            + (medians - below)[:, None]
        )
        pmf, lower, upper = self._bin_probability(
            samples[:, None, :], stop_gradient=True
        )
        tails = (
            torch.sigmoid(lower[:, 0, 0]) + torch.sigmoid(-upper[:, 0, -1])
        ).tolist()
        pmfs = [row[:n] for row, n in zip(pmf[:, 0, :].tolist(), lengths)]
        cdfs, cdf_lengths = coding.build_cdf_tables(pmfs, tails)
        self._set_tables(cdfs, cdf_lengths, (-below).tolist())
        return True

    def _indexes(self, shape) -> torch.Tensor:
        return (
            torch.arange(shape[1])
            .reshape(1, -1, *([1] * (len(shape) - 2)))
            .expand(shape)
        )

    def compress(self, y: torch.Tensor, coder: str = "ans") -> list[bytes]:
        """One string per batch item: ``round(y - median)`` coded with channel
        tables."""
        symbols = self.quantize(y)
        indexes = self._indexes(y.shape)
        return [self._code(symbols[i], indexes[i], coder) for i in range(y.shape[0])]

    def decompress(self, strings, size, coder: str = "ans") -> torch.Tensor:
        """Latents ``[len(strings), C, *size]`` back from :meth:`compress`'s strings."""
        indexes = self._indexes((1, self.channels, *size))[0]
        symbols = torch.stack([self._decode(s, indexes, coder) for s in strings])
        return self.dequantize(symbols.to(self.quantiles.device))


def scale_table(
    minimum: float = 0.11, maximum: float = 256.0, levels: int = 64
) -> torch.Tensor:
    """Log-spaced scales whose Gaussians get coding tables (CompressAI's default)."""
    return torch.exp(torch.linspace(math.log(minimum), math.log(maximum), levels))


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """``Phi(x) = erfc(-x / sqrt 2) / 2``, computed as ``erfc(x * -(2^-1/2)) / 2``: the
    same float32 operations as CompressAI, so tables and likelihoods agree to the last
    bit."""
    return 0.5 * torch.erfc(x * -(2**-0.5))


@functools.lru_cache(maxsize=8)
def gaussian_tables(scales: tuple[float, ...], tail_mass: float):
    """``(cdfs, cdf_lengths, offsets)`` for zero-mean Gaussians of the given scales,
    each cut where its tails hold ``tail_mass``. They depend on nothing else, so they
    are built once per scale table and reused."""
    sigma = torch.tensor(scales, dtype=torch.float32)
    reach = -NormalDist().inv_cdf(tail_mass / 2)
    centers = torch.ceil(sigma * reach).int()
    width = int(2 * centers.max() + 1)
    distance = (torch.arange(width)[None, :] - centers[:, None]).abs().float()
    upper = standard_normal_cdf((0.5 - distance) / sigma[:, None])
    lower = standard_normal_cdf((-0.5 - distance) / sigma[:, None])
    lengths = (2 * centers + 1).tolist()
    pmfs = [row[:n] for row, n in zip((upper - lower).tolist(), lengths)]
    tails = (2 * lower[:, 0]).tolist()
    cdfs, cdf_lengths = coding.build_cdf_tables(pmfs, tails)
    return cdfs, cdf_lengths, (-centers).tolist()


class GaussianConditional(_CodingTables):
    """``y ~ N(mean, scale^2)`` convolved with ``U(-1/2, 1/2)`` (Ballé et al. 2018, eq.
    7).

    Scales are bounded below by ``scale_bound`` (0.11); for coding, each latent uses the
    table of the smallest tabulated scale at least as large as its own.
    """

    def __init__(self, scales=None, scale_bound: float = 0.11, tail_mass: float = 1e-9):
        super().__init__()
        self.scale_bound, self.tail_mass = float(scale_bound), float(tail_mass)
        self.register_buffer(
            "scale_table",
            scale_table() if scales is None else torch.as_tensor(scales).float(),
        )

    def likelihood(
        self, y_hat: torch.Tensor, scales: torch.Tensor, means=None
    ) -> torch.Tensor:
        """``Phi((1/2 - |v|) / s) - Phi((-1/2 - |v|) / s)`` with ``v = y_hat - mean``,
        symmetric, so the far tail never loses precision; bounded below by 1e-9."""
        values = (y_hat - means if means is not None else y_hat).abs()
        scales = lower_bound(scales, self.scale_bound)
        probability = standard_normal_cdf(
            (0.5 - values) / scales
        ) - standard_normal_cdf((-0.5 - values) / scales)
        return lower_bound(probability, LIKELIHOOD_BOUND)

    def quantize(self, y: torch.Tensor, means=None) -> torch.Tensor:
        """Integer symbols ``round(y - mean)``."""
        return torch.round(y - means if means is not None else y)

    def dequantize(self, symbols: torch.Tensor, means=None) -> torch.Tensor:
        return symbols + means if means is not None else symbols

    def forward(
        self,
        y: torch.Tensor,
        scales: torch.Tensor,
        means=None,
        training: bool | None = None,
    ):
        """``(y_hat, likelihoods)``: noise in training, else rounding around the
        means."""
        training = self.training if training is None else training
        y_hat = uniform_noise(y) if training else hard_round(y, means)
        return y_hat, self.likelihood(y_hat, scales, means)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Tables for the Gaussians of ``scale_table``, each cut where its tails hold
        ``tail_mass`` (the cut mass becomes the escape symbol)."""
        if self.has_tables() and not force:
            return False
        scales = tuple(self.scale_table.cpu().tolist())
        self._set_tables(*gaussian_tables(scales, self.tail_mass))
        return True

    def build_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Table index per latent: how many tabulated scales are below its own scale."""
        scales = scales.clamp_min(self.scale_bound)
        table = self.scale_table.to(scales.device)
        below = (scales[..., None] > table[:-1]).sum(-1)
        return below.int()

    def compress(self, y, scales, means=None, coder: str = "ans") -> list[bytes]:
        symbols, indexes = self.quantize(y, means), self.build_indexes(scales)
        return [self._code(symbols[i], indexes[i], coder) for i in range(y.shape[0])]

    def decompress(
        self, strings, scales, means=None, coder: str = "ans"
    ) -> torch.Tensor:
        indexes = self.build_indexes(scales)
        symbols = torch.stack(
            [self._decode(s, indexes[i], coder) for i, s in enumerate(strings)]
        )
        return self.dequantize(symbols.to(scales.device), means)

    def stream_decoder(
        self, string: bytes, coder: str = "ans"
    ) -> GaussianStreamDecoder:
        """A decoder that returns the latents of ``string`` a few at a time, for models
        whose scales and means depend on latents decoded earlier (the context-model
        chapter)."""
        return GaussianStreamDecoder(self, string, coder)


class GaussianStreamDecoder:
    """The latents of one string, decoded in the order the encoder coded them:
    ``decode(scales, means)`` returns the next ``scales.numel()`` latents."""

    def __init__(self, conditional: GaussianConditional, string: bytes, coder: str):
        self.conditional = conditional
        self.tables = conditional.tables()  # converted to lists once, not per call
        self.stream = coding.get_coder(coder).stream_decoder(string)

    def decode(self, scales: torch.Tensor, means=None) -> torch.Tensor:
        indexes = self.conditional.build_indexes(scales).reshape(-1).tolist()
        bitstream.note_indexes(indexes, "decode")
        values = self.stream.decode(indexes, *self.tables)
        symbols = torch.tensor(values, dtype=torch.float32, device=scales.device)
        return self.conditional.dequantize(symbols.reshape(scales.shape), means)

    def finish(self) -> None:
        """Raise ``ValueError`` if the string did not end where it should (readable
        coder)."""
        self.stream.finish()
