"""Entropy-constrained quantization of a trained model's latents (the decoder-training
chapter).

The encoder of a learned codec may send any integers it likes: the decoder only reads
them. Rounding each latent to the nearest integer minimizes the latent error, not the
rate-distortion cost ``D + lambda R`` the model was trained for. Borzechowski, Schäfer,
Schwarz, Pfaff, Marpe and Wiegand ("Optimizing learned image compression on scalar and
entropy-constraint quantization", 2024) replace rounding by two encoder-side searches
known from video coding, and retrain the decoder on what they produce:

- :func:`rdo_round`: rate-distortion optimized rounding. Each latent picks, among the
  integers just below and just above it and zero, the one of least
  ``w * (y - y_hat)^2 + bits(y_hat)``.
- :func:`trellis_quantize`: dependent (trellis-coded) quantization as in VVC (Schwarz
  et al., "Hybrid video coding with trellis-coded quantization", DCC 2019): two scalar
  quantizers ``Q0`` (reconstruction levels ``k``) and ``Q1`` (``0`` and the half
  integers ``k - sign(k) / 2``), chosen for each latent by a four-state machine driven
  by the parity of the previous index. A Viterbi search over each channel's latents (in
  raster order) finds the indices of least total cost. :func:`compress_trellis` codes
  them with one table per channel and quantizer; :func:`decompress_trellis` tracks the
  states while it decodes.

The distortion of a latent error is measured where it matters, in the image: with
``g_s`` linearized, an error ``e`` in channel ``c`` adds about ``gain_c * e^2`` to the
squared image error (:func:`channel_gains`). With the training loss
``lambda * 255^2 * MSE + bpp``, the weight of a squared latent error against one bit is
``w_c = lambda * 255^2 * gain_c / 3`` (:func:`distortion_weights`).

Everything here is for ``FactorizedPrior``, whose latents are coded independently: the
rate of a latent depends on its own value only.
"""
from __future__ import annotations

import time

import torch

from . import bitstream, coding
from .entropy_models import LIKELIHOOD_BOUND

# Dependent quantization's state machine: NEXT_STATE[state][parity of the index];
# states 0 and 1 use Q0, states 2 and 3 use Q1.
NEXT_STATE = ((0, 2), (2, 0), (1, 3), (3, 1))


def _check_model(model) -> None:
    if not hasattr(model, "prior") or not hasattr(model, "g_s"):
        raise ValueError(f"entropy-constrained quantization needs a FactorizedPrior (a model with g_s and a "
                         f"factorized prior), got {type(model).__name__}")


def _per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[M]`` values shaped to broadcast over latents ``like`` ``[B, M, ...]``."""
    return values.detach().to(like).reshape(1, -1, *([1] * (like.dim() - 2)))


def _medians(model, y: torch.Tensor) -> torch.Tensor:
    return _per_channel(model.prior.medians(), y)


@torch.no_grad()
def channel_gains(model, y_hat: torch.Tensor, probes: int = 2, seed: int = 0) -> torch.Tensor:
    """``[M]``: for each latent channel ``c``, the squared image error that ``g_s`` makes
    of a squared latent error there, ``||g_s(y_hat + e_c) - g_s(y_hat)||^2 / ||e_c||^2``,
    with ``e_c`` uniform on ``(-1/2, 1/2)`` in channel ``c`` only (the size of a
    quantization error), averaged over ``probes`` draws and the batch."""
    _check_model(model)
    generator = torch.Generator().manual_seed(seed)
    reference = model.g_s(y_hat)
    gains = torch.zeros(y_hat.shape[1])
    for channel in range(y_hat.shape[1]):
        for _ in range(probes):
            error = torch.zeros_like(y_hat)
            error[:, channel] = torch.rand(error[:, channel].shape, generator=generator).to(y_hat) - 0.5
            change = model.g_s(y_hat + error) - reference
            gains[channel] += float(change.pow(2).sum() / error.pow(2).sum()) / probes
    return gains


def distortion_weights(gains: torch.Tensor, lmbda: float) -> torch.Tensor:
    """``lambda * 255^2 * gain_c / 3`` per channel: the cost of a unit squared latent error
    in bits, under the loss ``lambda * 255^2 * MSE + bpp`` (MSE over 3 colour channels)."""
    return lmbda * 255 ** 2 * gains / 3


def latent_bits(model, y_hat: torch.Tensor) -> torch.Tensor:
    """``-log2 P(y_hat)`` per latent under the factorized prior (integer grid)."""
    return -torch.log2(model.prior.likelihood(y_hat))


@torch.no_grad()
def rdo_round(model, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Latents ``y_hat`` on the coder's grid (median + integer) chosen per latent among
    ``floor``, ``ceil`` (around the median) and the median itself (symbol 0) to minimize
    ``w_c (y - y_hat)^2 + bits(y_hat)``; ``weights``: ``[M]`` (:func:`distortion_weights`).
    The result is coded as usual (:func:`compress_latents`) and decoded by ``model``."""
    _check_model(model)
    medians = _medians(model, y)
    v = y - medians
    candidates = torch.stack([torch.floor(v), torch.floor(v) + 1, torch.zeros_like(v)])
    w = _per_channel(weights, y)
    costs = torch.stack([w * (v - k) ** 2 + latent_bits(model, k + medians) for k in candidates])
    best = costs.argmin(dim=0, keepdim=True)
    return torch.gather(candidates, 0, best)[0] + medians


# -- dependent (trellis-coded) quantization ---------------------------------------------

def dq_levels(k: torch.Tensor, quantizer) -> torch.Tensor:
    """Reconstruction of index ``k`` (offset from the median): ``k`` in ``Q0``,
    ``k - sign(k) / 2`` in ``Q1``; ``quantizer``: 0, 1, or a tensor of them per index."""
    return torch.where(torch.as_tensor(quantizer) == 0, k, k - torch.sign(k) / 2)


def _dq_cell(k: torch.Tensor, quantizer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of the cell of index ``k``: the values nearer to its level than to its
    neighbours' (``Q1``: ``[-1/4, 1/4]`` for 0, ``[1/4, 1]`` for 1, ``[k-1, k]`` above)."""
    if quantizer == 0:
        return k - 0.5, k + 0.5
    magnitude, sign = k.abs(), torch.sign(k)
    inner = torch.where(magnitude == 0, torch.full_like(k, -0.25),
                        torch.where(magnitude == 1, torch.full_like(k, 0.25), magnitude - 1))
    outer = torch.where(magnitude == 0, torch.full_like(k, 0.25), magnitude)
    lower = torch.where(sign < 0, -outer, inner)
    upper = torch.where(sign < 0, -inner, outer)
    return lower, upper


def dq_bits(model, k: torch.Tensor, medians: torch.Tensor, quantizer: int) -> torch.Tensor:
    """``-log2`` of the prior's probability of index ``k``'s cell in ``quantizer``: the
    code length of ``k`` with one table per channel and quantizer."""
    lower, upper = _dq_cell(k, quantizer)
    probability = (model.prior.cdf(upper + medians) - model.prior.cdf(lower + medians)).clamp_min(LIKELIHOOD_BOUND)
    return -torch.log2(probability)


def _dq_candidates(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2, 3, ...]`` candidate indices (two nearest levels and zero) per quantizer."""
    floor = torch.floor(v)
    q0 = torch.stack([floor, floor + 1, torch.zeros_like(v)])
    sign = torch.where(v < 0, -torch.ones_like(v), torch.ones_like(v))
    near = sign * torch.floor(v.abs() + 0.5)      # |level| = |k| - 1/2 just below |v| (or 0)
    q1 = torch.stack([near, near + sign, torch.zeros_like(v)])
    return torch.stack([q0, q1])


@torch.no_grad()
def trellis_quantize(model, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dependent quantization of ``y`` ``[B, M, h, w]``: ``(y_hat, bits)``, the
    reconstructions and each latent's code length, minimizing the total
    ``w_c (y - y_hat)^2 + bits`` along every channel's raster order (Viterbi, 4 states,
    starting in state 0). :func:`compress_trellis` writes them into a bitstream."""
    _, _, y_hat, bits = _trellis(model, y, weights)
    return y_hat, bits


def _trellis(model, y, weights):
    """``(indices, quantizers, y_hat, bits)``, each ``[B, M, h, w]``."""
    _check_model(model)
    medians = _medians(model, y)
    v = y - medians
    candidates = _dq_candidates(v)                                        # [2, 3, B, M, h, w]
    w = _per_channel(weights, y)
    costs, lengths = torch.empty_like(candidates), torch.empty_like(candidates)
    for q in (0, 1):
        for j in range(3):
            lengths[q, j] = dq_bits(model, candidates[q, j], medians, q)
            costs[q, j] = w * (v - dq_levels(candidates[q, j], q)) ** 2 + lengths[q, j]
    batch, channels, height, width = y.shape

    def sequences(t):                                                      # [2, 3, B, M, h, w] -> [B*M, n, 2, 3]
        return t.reshape(2, 3, batch * channels, height * width).permute(2, 3, 0, 1)

    choice, quantizer = _viterbi(sequences(candidates), sequences(costs))
    pick = (quantizer * 3 + choice)[..., None]

    def chosen(t):
        return torch.gather(sequences(t).flatten(2), 2, pick)[..., 0].reshape(batch, channels, height, width)

    k, quantizer = chosen(candidates), quantizer.reshape(batch, channels, height, width)
    return k, quantizer, dq_levels(k, quantizer) + medians, chosen(lengths)


def _viterbi(candidates: torch.Tensor, costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-cost path through the four-state trellis for ``S`` sequences of ``n``
    latents (``candidates``, ``costs``: ``[S, n, 2, 3]``): per latent, the chosen
    candidate (0-2) and the quantizer used (0 or 1)."""
    sequences, length = candidates.shape[:2]
    next_state = torch.tensor(NEXT_STATE)
    from_state = torch.arange(4).repeat_interleave(3)                      # 12 transitions: (state, candidate)
    candidate = torch.arange(3).repeat(4)
    total = torch.full((sequences, 4), float("inf"))
    total[:, 0] = 0.0
    back = torch.empty(sequences, length, 4, dtype=torch.long)
    for t in range(length):
        k = candidates[:, t][:, from_state // 2, candidate]                 # [S, 12]
        target = next_state[from_state, torch.remainder(k, 2).long()]      # [S, 12]
        cost = total[:, from_state] + costs[:, t][:, from_state // 2, candidate]
        for state in range(4):
            masked = torch.where(target == state, cost, torch.full_like(cost, float("inf")))
            total[:, state], back[:, t, state] = masked.min(dim=1)
    state = total.argmin(dim=1)
    choice = torch.empty(sequences, length, dtype=torch.long)
    quantizer = torch.empty(sequences, length, dtype=torch.long)
    rows = torch.arange(sequences)
    for t in range(length - 1, -1, -1):
        transition = back[rows, t, state]
        choice[:, t], state = candidate[transition], from_state[transition]
        quantizer[:, t] = state // 2
    return choice, quantizer


# -- coding chosen latents ----------------------------------------------------------------

@torch.no_grad()
def compress_latents(model, y_hat: torch.Tensor, height: int, width: int, coder: str = "ans") -> bytes:
    """A bitstream of ``model``'s format for latents ``y_hat`` chosen by the encoder (on
    the median-plus-integer grid, e.g. from :func:`rdo_round`) of an image of
    ``height x width``; ``model.decompress`` decodes it."""
    _check_model(model)
    if y_hat.dim() != 4 or y_hat.shape[0] != 1:
        raise ValueError(f"expected latents [1, M, h, w], got {tuple(y_hat.shape)}")
    expected = (-(-height // model.downsampling), -(-width // model.downsampling))
    if tuple(y_hat.shape[-2:]) != expected:
        raise ValueError(f"latents of size {tuple(y_hat.shape[-2:])} do not belong to a {height}x{width} image "
                         f"(expected {expected})")
    offsets = y_hat - _medians(model, y_hat)
    if (offsets - torch.round(offsets)).abs().max() > 1e-3:
        raise ValueError("these latents are not on the coder's grid (median + integer)")
    model.update()
    return bitstream.pack(model.bitstream_header(height, width, coder), model.prior.compress(y_hat, coder))


METHODS = ("rounding", "RDOQ", "trellis")


@torch.no_grad()
def rd_point(model, images, method: str, weights: torch.Tensor | None = None, coder: str = "ans") -> dict:
    """Average ``bpp``, ``psnr`` and ``encode_s`` (``g_a``, quantization and coding) of
    ``model`` over ``images`` with its latents quantized by ``method`` (one of
    :data:`METHODS`; ``weights`` as for :func:`rdo_round`), from real bitstreams:
    ``rounding`` and ``RDOQ`` decoded by ``model.decompress``, ``trellis`` by
    :func:`decompress_trellis`."""
    from .metrics import psnr
    from .models.base import as_batch, pad_to
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method != "rounding" and weights is None:
        raise ValueError(f"{method} needs the distortion weights (see distortion_weights)")
    _check_model(model)
    model.eval().update()
    images = list(images.values()) if isinstance(images, dict) else list(images)
    totals = {"bpp": 0.0, "psnr": 0.0, "encode_s": 0.0}
    for x in images:
        x = as_batch(x).to(next(model.parameters()).device)
        height, width = x.shape[-2:]
        start = time.perf_counter()
        y = model.g_a(pad_to(x, model.downsampling))
        if method == "trellis":
            data = compress_trellis(model, y, weights, height, width, coder)
        else:
            y_hat = rdo_round(model, y, weights) if method == "RDOQ" else model.prior.dequantize(model.prior.quantize(y))
            data = compress_latents(model, y_hat, height, width, coder)
        totals["encode_s"] += time.perf_counter() - start
        total_bits = 8 * len(data)
        x_hat = decompress_trellis(model, data) if method == "trellis" else model.decompress(data)
        totals["bpp"] += total_bits / (height * width)
        totals["psnr"] += psnr(x[0].cpu(), x_hat.cpu())
    return {key: value / len(images) for key, value in totals.items()}


# -- a bitstream for dependent quantization ---------------------------------------------

DQ_SUFFIX = "+DQ"


def dq_tables(model) -> tuple[list, list, list]:
    """Coding tables for the indices of both quantizers: rows ``0..M-1`` are the prior's
    own (``Q0``: the usual integer cells), rows ``M..2M-1`` hold, per channel, the
    probabilities of ``Q1``'s cells over the same index range, plus the escape."""
    prior = model.prior
    prior.update()
    cdfs, lengths, offsets = prior.tables()
    below = [-offset for offset in offsets]
    reach = max(lengths) - 2
    k = torch.arange(reach, dtype=torch.float32)[None, :] - torch.tensor(below, dtype=torch.float32)[:, None]
    medians = prior.medians().detach().reshape(-1, 1)
    lower, upper = _dq_cell(k, 1)
    with torch.no_grad():                                   # [M, n] as a batch of one
        low, high = prior.cdf((lower + medians)[None])[0], prior.cdf((upper + medians)[None])[0]
    pmfs = [row[:n - 2] for row, n in zip((high - low).tolist(), lengths)]
    tails = [float(low[c, 0] + 1 - high[c, n - 3]) for c, n in enumerate(lengths)]
    q1_cdfs, q1_lengths = coding.build_cdf_tables(pmfs, tails)
    width = max(len(cdfs[0]), len(q1_cdfs[0]))
    return ([row + [0] * (width - len(row)) for row in cdfs + q1_cdfs], lengths + q1_lengths, offsets + offsets)


@torch.no_grad()
def compress_trellis(model, y: torch.Tensor, weights: torch.Tensor, height: int, width: int,
                     coder: str = "ans") -> bytes:
    """A bitstream of the trellis indices of latents ``y`` ``[1, M, h, w]`` (of an image
    of ``height x width``). Indices are coded position by position, all channels of a
    position together, each with its channel's table for the quantizer its state
    selects; :func:`decompress_trellis` follows the same states."""
    if y.dim() != 4 or y.shape[0] != 1:
        raise ValueError(f"expected latents [1, M, h, w], got {tuple(y.shape)}")
    k, quantizer, _, _ = _trellis(model, y, weights)
    channels = y.shape[1]
    rows = torch.arange(channels).reshape(1, -1, 1, 1) + channels * quantizer
    symbols = k[0].permute(1, 2, 0).reshape(-1).int().tolist()
    indexes = rows[0].permute(1, 2, 0).reshape(-1).int().tolist()
    string = coding.get_coder(coder).encode_with_indexes(symbols, indexes, *dq_tables(model))
    return bitstream.pack(model.bitstream_header(height, width, coder, DQ_SUFFIX), [string])


@torch.no_grad()
def decompress_trellis(model, data: bytes) -> torch.Tensor:
    """The image ``[3, H, W]`` of :func:`compress_trellis`'s bytes, decoded with
    ``model``; ``ValueError`` for bytes that are damaged or not such a bitstream."""
    header, strings, size = model.read_bitstream(data, DQ_SUFFIX)
    if len(strings) != 1:
        raise ValueError(f"a bitstream of trellis indices holds one string, this one {len(strings)}")
    channels = model.prior.channels
    tables = dq_tables(model)
    stream = coding.get_coder(header.coder).stream_decoder(strings[0])
    state = torch.zeros(channels, dtype=torch.long)
    next_state = torch.tensor(NEXT_STATE)
    k = torch.empty(size[0] * size[1], channels)
    quantizer = torch.empty(size[0] * size[1], channels)
    for position in range(size[0] * size[1]):
        quantizer[position] = state // 2
        rows = (torch.arange(channels) + channels * (state // 2)).tolist()
        k[position] = torch.tensor(stream.decode(rows, *tables), dtype=torch.float32)
        state = next_state[state, torch.remainder(k[position], 2).long()]
    stream.finish()

    def latent(t):
        return t.reshape(*size, channels).permute(2, 0, 1)[None]

    y_hat = dq_levels(latent(k), latent(quantizer)) + _medians(model, latent(k))
    x_hat = model.g_s(y_hat.to(next(model.parameters()).device))
    return x_hat[0, :, :header.height, :header.width].clamp(0, 1)
