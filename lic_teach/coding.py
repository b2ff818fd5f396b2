"""From probabilities to bits: quantized CDFs and a readable rANS entropy coder.

An entropy coder needs each distribution as integer frequencies that sum to
``2^precision`` and that are all at least 1, so that every symbol stays codable. This is
the *quantized CDF*. ``pmf_to_quantized_cdf`` builds it the way CompressAI does, and its
tables are equal to CompressAI's. The tables are then coded with range asymmetric
numeral systems (rANS, Duda 2013, "Asymmetric numeral systems", sec. 4), written here
for reading rather than speed: a 31-bit state and byte-wise renormalization, as in F.
Giesen's public-domain ryg_rans.

Symbols outside a table's range are coded as *escapes*: first the table's last symbol,
then the excess value, sign-folded, in 4-bit pieces of uniform probability (the same
idea as CompressAI's bypass coding). ``ReadableRansCoder`` has the interface of
CompressAI's ``ans.RansEncoder`` / ``RansDecoder`` (``encode_with_indexes`` /
``decode_with_indexes``), so either can code a model's latents.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from . import native_rans

PRECISION = 16  # frequencies sum to 2^16
STATE_LOWER = 1 << 23  # the coder state stays in [2^23, 2^31)
ESCAPE_BITS = 4  # escaped values are sent 4 bits at a time
ESCAPE_MAX = (1 << ESCAPE_BITS) - 1
MAX_ESCAPE_PIECES = (
    32 // ESCAPE_BITS + 1
)  # pieces of the largest excess an int32 value gives


# ------------------------------------------------------------------- quantized CDFs


def pmf_to_quantized_cdf(pmf, precision: int = PRECISION) -> list[int]:
    """Integer CDF ``[0, ..., 2^precision]`` of a pmf, every symbol with frequency >= 1.

    1. scale each probability to an integer count: ``round(p * 2^precision)``;
    2. renormalize the counts so they sum to ``2^precision`` (integer division) and
       accumulate them into a CDF;
    3. a symbol left with frequency 0 takes one unit from the symbol with the smallest
       frequency above 1, shifting the CDF entries between the two.
    """
    pmf = [float(p) for p in pmf]
    if not pmf or any(not math.isfinite(p) or p < 0 for p in pmf):
        raise ValueError(
            "a pmf must be a non-empty list of finite, non-negative numbers"
        )
    total = 1 << precision
    counts = [math.floor(p * total + 0.5) for p in pmf]
    count_sum = sum(counts)
    if count_sum == 0:
        raise ValueError("the pmf has no mass at this precision")
    cdf = [0]
    for count in counts:
        cdf.append(cdf[-1] + total * count // count_sum)
    cdf[-1] = total
    frequencies = np.diff(np.asarray(cdf, dtype=np.int64))
    for empty in np.flatnonzero(
        frequencies == 0
    ):  # a steal never empties another symbol
        _steal_one(frequencies, int(empty))
    return [0] + np.cumsum(frequencies).tolist()


def _steal_one(frequencies: np.ndarray, empty: int) -> None:
    """Give symbol ``empty`` one unit from the symbol with the smallest frequency > 1
    (the first of them on a tie), shifting the CDF entries between the two."""
    spare = np.where(frequencies > 1, frequencies, np.iinfo(np.int64).max)
    donor = int(np.argmin(spare))
    if frequencies[donor] <= 1:
        raise ValueError("too many symbols for this precision")
    frequencies[donor] -= 1
    frequencies[empty] += 1


def build_cdf_tables(pmfs, tail_masses, precision: int = PRECISION):
    """Tables for a list of distributions, in CompressAI's layout.

    Each pmf gets its tail mass appended as a last (escape) symbol and becomes a
    quantized CDF. Returns ``(cdfs, cdf_lengths)``: ``cdfs`` is a list of integer lists
    padded with zeros to one length, and ``cdf_lengths[i] = len(pmfs[i]) + 2``.
    """
    cdfs = [
        pmf_to_quantized_cdf(list(pmf) + [tail], precision)
        for pmf, tail in zip(pmfs, tail_masses)
    ]
    width = max(len(cdf) for cdf in cdfs)
    return [cdf + [0] * (width - len(cdf)) for cdf in cdfs], [len(cdf) for cdf in cdfs]


# ------------------------------------------------------------------------------- rANS


def rans_encode(intervals, precision: int = PRECISION) -> bytes:
    """Code a sequence of ``(start, frequency)`` intervals; returns the bytes.

    rANS is last-in first-out, so intervals are pushed in reverse. Each step first
    moves low bytes of the state out until the new state will fit in 31 bits, then
    ``state <- (state // f) * 2^precision + start + state % f``.
    """
    state, pushed = STATE_LOWER, bytearray()
    for start, frequency in reversed(intervals):
        limit = ((STATE_LOWER >> precision) << 8) * frequency
        while state >= limit:
            pushed.append(state & 0xFF)
            state >>= 8
        state = (state // frequency << precision) + start + state % frequency
    pushed += state.to_bytes(4, "little")
    return bytes(reversed(pushed))  # the decoder reads front to back


class RansDecoder:
    """Reads intervals back in the order they were given to :func:`rans_encode`."""

    def __init__(self, data: bytes, precision: int = PRECISION):
        if len(data) < 4:
            raise ValueError("rANS data is shorter than its 4-byte state: truncated")
        self.data, self.position, self.precision = data, 4, precision
        self.state = int.from_bytes(data[:4], "big")
        if not STATE_LOWER <= self.state < STATE_LOWER << 8:
            raise ValueError(
                "rANS data starts in a state no encoder ends in: corrupted"
            )

    def slot(self) -> int:
        """The low ``precision`` bits of the state: where in [0, 2^precision) we are."""
        return self.state & ((1 << self.precision) - 1)

    def advance(self, start: int, frequency: int) -> None:
        """Remove the interval just identified, then read bytes back into the state."""
        self.state = frequency * (self.state >> self.precision) + self.slot() - start
        while self.state < STATE_LOWER:
            if self.position >= len(self.data):
                raise ValueError("rANS data ended early: truncated or corrupted")
            self.state = (self.state << 8) | self.data[self.position]
            self.position += 1

    def check_finished(self) -> None:
        """A stream that decoded correctly ends exactly at the initial state."""
        if self.state != STATE_LOWER or self.position != len(self.data):
            raise ValueError(
                "rANS data did not decode cleanly: corrupted or wrong tables"
            )


def _uniform(value: int, precision: int) -> tuple[int, int]:
    width = 1 << (precision - ESCAPE_BITS)
    return value * width, width


def _symbol_intervals(value: int, cdf, cdf_length: int, offset: int, precision: int):
    """Intervals coding one value: its table entry, or an escape and its excess."""
    escape = cdf_length - 2  # index of the tail-mass symbol
    index = value - offset
    if 0 <= index < escape:
        return [(cdf[index], cdf[index + 1] - cdf[index])]
    excess = -2 * index - 1 if index < 0 else 2 * (index - escape)  # sign folded, >= 0
    pieces = []
    while True:
        pieces.append(excess & ESCAPE_MAX)
        excess >>= ESCAPE_BITS
        if excess == 0:
            break
    intervals = [(cdf[escape], cdf[escape + 1] - cdf[escape])]
    count = len(pieces) - 1
    while count >= ESCAPE_MAX:  # the number of pieces, 15 at a time
        intervals.append(_uniform(ESCAPE_MAX, precision))
        count -= ESCAPE_MAX
    intervals.append(_uniform(count, precision))
    return intervals + [_uniform(piece, precision) for piece in pieces]


def _decode_symbol(decoder: RansDecoder, cdf, cdf_length: int, offset: int) -> int:
    slot = decoder.slot()
    index = bisect.bisect_right(cdf, slot, 0, cdf_length) - 1
    decoder.advance(cdf[index], cdf[index + 1] - cdf[index])
    escape = cdf_length - 2
    if index < escape:
        return index + offset
    width = 1 << (decoder.precision - ESCAPE_BITS)
    count = 0
    while True:
        piece = decoder.slot() // width
        decoder.advance(piece * width, width)
        count += piece
        if piece < ESCAPE_MAX:
            break
    if count >= MAX_ESCAPE_PIECES:  # more than an int32's pieces: not ours
        raise ValueError(
            "rANS data escapes a value too large for any latent: corrupted"
        )
    excess = 0
    for shift in range(count + 1):
        piece = decoder.slot() // width
        decoder.advance(piece * width, width)
        excess |= piece << (ESCAPE_BITS * shift)
    index = -(excess + 1) // 2 if excess % 2 else excess // 2 + escape
    return index + offset


class ReadableRansCoder:
    """rANS in plain Python with CompressAI's table interface.

    ``symbols[i]`` is coded with table ``indexes[i]``: CDF ``cdfs[k]`` of length
    ``cdf_lengths[k]``, whose first entry stands for the value ``offsets[k]``.
    """

    bitstream_id = 1  # its number in a bitstream's header (``lic_teach.bitstream``)

    def __init__(self, precision: int = PRECISION):
        self.precision = precision

    def encode_with_indexes(
        self, symbols, indexes, cdfs, cdf_lengths, offsets
    ) -> bytes:
        if len(symbols) != len(indexes):
            raise ValueError("symbols and indexes must have the same length")
        intervals = []
        for value, k in zip(symbols, indexes):
            intervals += _symbol_intervals(
                int(value), cdfs[k], cdf_lengths[k], offsets[k], self.precision
            )
        return rans_encode(intervals, self.precision)

    def decode_with_indexes(
        self, data: bytes, indexes, cdfs, cdf_lengths, offsets
    ) -> list[int]:
        stream = self.stream_decoder(data)
        values = stream.decode(indexes, cdfs, cdf_lengths, offsets)
        stream.finish()
        return values

    def stream_decoder(self, data: bytes) -> ReadableStreamDecoder:
        return ReadableStreamDecoder(data, self.precision)


class ReadableStreamDecoder:
    """Decodes one string a few symbols at a time, as a serial (autoregressive) decoder
    needs: ``decode(indexes, ...)`` as often as needed, then ``finish()``."""

    def __init__(self, data: bytes, precision: int = PRECISION):
        self.decoder = RansDecoder(bytes(data), precision)

    def decode(self, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
        return [
            _decode_symbol(self.decoder, cdfs[k], cdf_lengths[k], offsets[k])
            for k in indexes
        ]

    def finish(self) -> None:
        self.decoder.check_finished()


class CompressAIRansCoder:
    """CompressAI's C++ rANS (``compressai.ans``) behind the same methods, guarded so
    that no string makes it read or write outside its buffers
    (:mod:`lic_teach.native_rans`)."""

    bitstream_id = 0  # its number in a bitstream's header (``lic_teach.bitstream``)

    def encode_with_indexes(
        self, symbols, indexes, cdfs, cdf_lengths, offsets
    ) -> bytes:
        if len(symbols) != len(indexes):
            raise ValueError("symbols and indexes must have the same length")
        return native_rans.encode(symbols, indexes, cdfs, cdf_lengths, offsets)

    def decode_with_indexes(
        self, data: bytes, indexes, cdfs, cdf_lengths, offsets
    ) -> list[int]:
        return native_rans.decode(data, indexes, cdfs, cdf_lengths, offsets)

    def stream_decoder(self, data: bytes) -> native_rans.GuardedStreamDecoder:
        return native_rans.GuardedStreamDecoder(data)


CODERS = {
    "ans": CompressAIRansCoder,
    "readable": ReadableRansCoder,
}  # the one table of coders


def get_coder(name: str = "ans"):
    """``"ans"``: CompressAI's C++ rANS (fast); ``"readable"``: the Python rANS
    above."""
    if name not in CODERS:
        raise ValueError(f"unknown coder {name!r}; choose one of {', '.join(CODERS)}")
    return CODERS[name]()
