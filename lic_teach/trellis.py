"""Dependent (trellis-coded) quantization of a trained model's latents (the
decoder-training chapter), as in VVC (Schwarz et al., "Hybrid video coding with
trellis-coded quantization", DCC 2019), applied to learned codecs by Borzechowski et al.
("Optimizing learned image compression on scalar and entropy-constraint quantization",
2024).

Two scalar quantizers ``Q0`` (reconstruction levels ``k``) and ``Q1`` (``0`` and the
half integers ``k - sign(k) / 2``) are chosen for each latent by a four-state machine
driven by the parity of the previous index. A Viterbi search over each channel's latents
(in raster order) finds the indices of least total cost ``w_c (y - y_hat)^2 + bits``,
with the weights of ``rdoq.distortion_weights`` (:func:`trellis_quantize`).
:func:`compress_trellis` codes them with one table per channel and quantizer;
:func:`decompress_trellis` tracks the states while it decodes.

For ``FactorizedPrior``, whose latents are coded independently.
"""

from __future__ import annotations

import torch

from . import bitstream, coding
from .entropy_models import LIKELIHOOD_BOUND
from .rdoq import check_factorized, per_channel

# Dependent quantization's state machine: NEXT_STATE[state][parity of the index];
# states 0 and 1 use Q0, states 2 and 3 use Q1.
NEXT_STATE = ((0, 2), (2, 0), (1, 3), (3, 1))


def dq_levels(k: torch.Tensor, quantizer) -> torch.Tensor:
    """Reconstruction of index ``k`` (offset from the median): ``k`` in ``Q0``, ``k -
    sign(k) / 2`` in ``Q1``; ``quantizer``: 0, 1, or a tensor of them per index."""
    return torch.where(torch.as_tensor(quantizer) == 0, k, k - torch.sign(k) / 2)


def _dq_cell(k: torch.Tensor, quantizer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of the cell of index ``k``: the values nearer to its level than to its
    neighbours' (``Q1``: ``[-1/4, 1/4]`` for 0, ``[1/4, 1]`` for 1, ``[k-1, k]`` above).
    """
    if quantizer == 0:
        return k - 0.5, k + 0.5
    magnitude, sign = k.abs(), torch.sign(k)
    inner = torch.where(
        magnitude == 0,
        torch.full_like(k, -0.25),
        torch.where(magnitude == 1, torch.full_like(k, 0.25), magnitude - 1),
    )
    outer = torch.where(magnitude == 0, torch.full_like(k, 0.25), magnitude)
    lower = torch.where(sign < 0, -outer, inner)
    upper = torch.where(sign < 0, -inner, outer)
    return lower, upper


def dq_bits(
    model, k: torch.Tensor, medians: torch.Tensor, quantizer: int
) -> torch.Tensor:
    """``-log2`` of the prior's probability of index ``k``'s cell in ``quantizer``: the
    code length of ``k`` with one table per channel and quantizer."""
    lower, upper = _dq_cell(k, quantizer)
    probability = (
        model.prior.cdf(upper + medians) - model.prior.cdf(lower + medians)
    ).clamp_min(LIKELIHOOD_BOUND)
    return -torch.log2(probability)


def _dq_candidates(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2, 3, ...]`` candidate indices (two nearest levels and zero) per quantizer."""
    floor = torch.floor(v)
    q0 = torch.stack([floor, floor + 1, torch.zeros_like(v)])
    sign = torch.where(v < 0, -torch.ones_like(v), torch.ones_like(v))
    near = sign * torch.floor(
        v.abs() + 0.5
    )  # |level| = |k| - 1/2 just below |v| (or 0)
    q1 = torch.stack([near, near + sign, torch.zeros_like(v)])
    return torch.stack([q0, q1])


@torch.no_grad()
def trellis_quantize(
    model, y: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dependent quantization of ``y`` ``[B, M, h, w]``: ``(y_hat, bits)``, the
    reconstructions and each latent's code length, minimizing the total
    ``w_c (y - y_hat)^2 + bits`` along every channel's raster order (Viterbi, 4 states,
    starting in state 0). :func:`compress_trellis` writes them into a bitstream."""
    _, _, y_hat, bits = _trellis(model, y, weights)
    return y_hat, bits


def _trellis(model, y, weights):
    """``(indices, quantizers, y_hat, bits)``, each ``[B, M, h, w]``."""
    check_factorized(model)
    medians = model.prior.medians_like(y)
    v = y - medians
    candidates = _dq_candidates(v)  # [2, 3, B, M, h, w]
    w = per_channel(weights, y)
    costs, lengths = torch.empty_like(candidates), torch.empty_like(candidates)
    for q in (0, 1):
        for j in range(3):
            lengths[q, j] = dq_bits(model, candidates[q, j], medians, q)
            costs[q, j] = w * (v - dq_levels(candidates[q, j], q)) ** 2 + lengths[q, j]
    batch, channels, height, width = y.shape

    def sequences(t):  # [2, 3, B, M, h, w] -> [B*M, n, 2, 3]
        return t.reshape(2, 3, batch * channels, height * width).permute(2, 3, 0, 1)

    choice, quantizer = _viterbi(sequences(candidates), sequences(costs))
    pick = (quantizer * 3 + choice)[..., None]

    def chosen(t):
        return torch.gather(sequences(t).flatten(2), 2, pick)[..., 0].reshape(
            batch, channels, height, width
        )

    k, quantizer = chosen(candidates), quantizer.reshape(batch, channels, height, width)
    return k, quantizer, dq_levels(k, quantizer) + medians, chosen(lengths)


def _viterbi(
    candidates: torch.Tensor, costs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-cost path through the four-state trellis for ``S`` sequences of ``n``
    latents (``candidates``, ``costs``: ``[S, n, 2, 3]``): per latent, the chosen
    candidate (0-2) and the quantizer used (0 or 1)."""
    sequences, length = candidates.shape[:2]
    device = candidates.device
    next_state = torch.tensor(NEXT_STATE, device=device)
    # 12 transitions: (state, candidate)
    from_state = torch.arange(4, device=device).repeat_interleave(3)
    candidate = torch.arange(3, device=device).repeat(4)
    total = torch.full((sequences, 4), float("inf"), device=device)
    total[:, 0] = 0.0
    back = torch.empty(sequences, length, 4, dtype=torch.long, device=device)
    for t in range(length):
        k = candidates[:, t][:, from_state // 2, candidate]  # [S, 12]
        target = next_state[from_state, torch.remainder(k, 2).long()]  # [S, 12]
        cost = total[:, from_state] + costs[:, t][:, from_state // 2, candidate]
        for state in range(4):
            masked = torch.where(
                target == state, cost, torch.full_like(cost, float("inf"))
            )
            total[:, state], back[:, t, state] = masked.min(dim=1)
    state = total.argmin(dim=1)
    choice = torch.empty(sequences, length, dtype=torch.long, device=device)
    quantizer = torch.empty(sequences, length, dtype=torch.long, device=device)
    rows = torch.arange(sequences, device=device)
    for t in range(length - 1, -1, -1):
        transition = back[rows, t, state]
        choice[:, t], state = candidate[transition], from_state[transition]
        quantizer[:, t] = state // 2
    return choice, quantizer


# -- a bitstream for dependent quantization
# ---------------------------------------------

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
    medians = prior.medians().detach().reshape(-1, 1)
    k = (
        torch.arange(reach, dtype=torch.float32, device=medians.device)[None, :]
        - torch.tensor(below, dtype=torch.float32, device=medians.device)[:, None]
    )
    lower, upper = _dq_cell(k, 1)
    with torch.no_grad():  # [M, n] as a batch of one
        low, high = (
            prior.cdf((lower + medians)[None])[0],
            prior.cdf((upper + medians)[None])[0],
        )
    pmfs = [row[: n - 2] for row, n in zip((high - low).tolist(), lengths)]
    tails = [float(low[c, 0] + 1 - high[c, n - 3]) for c, n in enumerate(lengths)]
    q1_cdfs, q1_lengths = coding.build_cdf_tables(pmfs, tails)
    width = max(len(cdfs[0]), len(q1_cdfs[0]))
    return (
        [row + [0] * (width - len(row)) for row in cdfs + q1_cdfs],
        lengths + q1_lengths,
        offsets + offsets,
    )


@torch.no_grad()
def compress_trellis(
    model,
    y: torch.Tensor,
    weights: torch.Tensor,
    height: int,
    width: int,
    coder: str = "ans",
) -> bytes:
    """A bitstream of the trellis indices of latents ``y`` ``[1, M, h, w]`` of an image
    of ``height x width`` (checked as ``model.compress_latents`` checks them), in the
    model's container with the layout ``+DQ``. Indices are coded position by position,
    all channels of a position together, each with its channel's table for the
    quantizer its state selects; :func:`decompress_trellis` follows the same states."""
    check_factorized(model)
    model.check_latents({"y": y}, height, width)
    k, quantizer, _, _ = _trellis(model, y, weights)
    channels = y.shape[1]
    rows = torch.arange(channels, device=y.device).reshape(1, -1, 1, 1)
    rows = rows + channels * quantizer
    symbols = k[0].permute(1, 2, 0).reshape(-1).int().tolist()
    indexes = rows[0].permute(1, 2, 0).reshape(-1).int().tolist()
    tables = dq_tables(model)
    string = coding.get_coder(coder).encode_with_indexes(symbols, indexes, *tables)
    with bitstream.index_digest("encode") as digest:
        _note_tables(tables, "encode")
        bitstream.note_indexes(indexes, "encode")
    return model.write_bitstream([string], height, width, coder, DQ_SUFFIX, digest[0])


def _note_tables(tables: tuple[list, list, list], side: str) -> None:
    """Fold ``dq_tables``'s integers into the bitstream's index digest: ``Q1``'s rows
    are computed from the prior's float CDF on the model's device, so another device
    may round one of them otherwise, and the fingerprint covers only the prior's own
    tables."""
    cdfs, lengths, offsets = tables
    bitstream.note_indexes([v for row in cdfs for v in row] + lengths + offsets, side)


@torch.no_grad()
def decompress_trellis(model, data: bytes) -> torch.Tensor:
    """The image ``[3, H, W]`` of :func:`compress_trellis`'s bytes, decoded with
    ``model``; ``ValueError`` for bytes that are damaged or not such a bitstream."""
    header, strings, size = model.read_bitstream(data, DQ_SUFFIX)
    channels = model.prior.channels
    tables = dq_tables(model)
    stream = coding.get_coder(header.coder).stream_decoder(strings[0])
    state = torch.zeros(channels, dtype=torch.long)
    next_state = torch.tensor(NEXT_STATE)
    k = torch.empty(size[0] * size[1], channels)
    quantizer = torch.empty(size[0] * size[1], channels)
    with bitstream.index_digest("decode") as digest:
        _note_tables(tables, "decode")
        for position in range(size[0] * size[1]):
            quantizer[position] = state // 2
            rows = (torch.arange(channels) + channels * (state // 2)).tolist()
            bitstream.note_indexes(rows, "decode")
            decoded = stream.decode(rows, *tables)
            k[position] = torch.tensor(decoded, dtype=torch.float32)
            state = next_state[state, torch.remainder(k[position], 2).long()]
    bitstream.check_index_digest(header, digest[0])  # before the coder's own check
    stream.finish()

    def latent(t):
        return t.reshape(*size, channels).permute(2, 0, 1)[None]

    # the states were followed on the CPU; the model decodes on its own device
    levels = dq_levels(latent(k), latent(quantizer)).to(next(model.parameters()).device)
    x_hat = model.g_s(levels + model.prior.medians_like(levels))
    return x_hat[0, :, : header.height, : header.width].clamp(0, 1)
