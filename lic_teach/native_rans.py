"""CompressAI's C++ rANS coder behind :mod:`lic_teach.coding`'s interface, safe for
strings from anywhere.

CompressAI's decoder (``rans_interface.cpp``, built on F. Giesen's ``rans64.h``) keeps a
64-bit state and, whenever the state falls below 2^31, reads the next 32-bit word of its
string through a raw pointer, without ever checking where the string ends. It reads a
string correctly only when it is asked for exactly the symbols that were coded into it.
Asked for more (a header claiming a larger image than its strings hold) it reads on into
memory it does not own: it decodes whatever lies there, or the process dies of a
segmentation fault. Its encoder has the mirror problem: it reserves one word per symbol
and writes backwards from the end of that buffer without checking either.

The guard changes no byte of the format:

- **Reading never leaves the bytes given.** The decoder gets a copy of the string
  followed by zero words, and the symbols in chunks; before each chunk the padding must
  hold all it could read (:class:`ReadBound`), or the decoder starts again with more
  padding. A decoding step reads at most one word, and every word read adds 32 bits to a
  state that stays in [2^31, 2^63): a symbol of frequency ``f`` takes ``16 - log2 f``
  bits and each bypass nibble of an escaped value 4 more. Once the string is used up,
  the decoder reads only zeros, so an escaped value has at most 8 nonzero nibbles to
  take from the state, its payload stays below 2^28, and the symbols it returns show
  exactly which were escaped: their bits bound what it read past the end. A string
  certainly used up raises ``ValueError``.
- **A stream decodes to exactly what was coded, or fails.**
  :meth:`GuardedStreamDecoder.finish` encodes the decoded symbols again: the result must
  be the string, byte for byte.
- **Writing never leaves the encoder's buffer.** Symbols whose bits could overflow it
  are refused (:func:`encoded_words_bound`).
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import numpy as np

PRECISION = 16  # CompressAI's frequencies sum to 2^16
STATE_LOWER = 1 << 31  # RANS64_L: after each step the state is in [2^31, 2^63)
STATE_UPPER = 1 << 63
WORD_BITS = 32  # the state is refilled one 32-bit word at a time
NIBBLE_BITS = 4  # escaped values are sent in 4-bit bypass nibbles
ROUNDING_BITS = 1e-4  # per step: most that integer rounding adds to a step's bits
CHUNK = 1 << 14  # symbols per call into the C++ decoder
MIN_PADDING_WORDS = 64
MAX_PAYLOAD = (
    1 << 28
)  # escaped payloads below it take at most 7 nibbles: the encoder's digit
# loop would shift an int32 by 32 bits (undefined; on x86 it never ends)
MAX_PADDING_WORDS = 1 << 25  # 128 MiB of zeros at most


class Tables:
    """The coding tables as numpy arrays, to price decoded symbols in bits."""

    def __init__(self, cdfs, cdf_lengths, offsets):
        self.lists = (cdfs, cdf_lengths, offsets)
        self.length = np.asarray(cdf_lengths, dtype=np.int64)
        self.offset = np.asarray(offsets, dtype=np.int64)
        self.cdf = np.zeros(
            (len(cdfs), int(self.length.max(initial=2))), dtype=np.int64
        )
        for k, row in enumerate(cdfs):
            self.cdf[k, : self.length[k]] = row[: self.length[k]]

    def price(self, rows: np.ndarray, values: np.ndarray):
        """``(bits, raw)`` of each symbol: ``16 - log2 f`` for its table entry (the
        escape symbol's for an escaped value), and the escaped value's bypass payload
        (-1 if not escaped: CompressAI's sign folding, ``2 (s - escape)`` or ``-2 s -
        1``)."""
        escape = self.length[rows] - 2  # index of the escape symbol
        s = values - self.offset[rows]
        escaped = (s < 0) | (s >= escape)
        raw = np.where(s < 0, -2 * s - 1, 2 * (s - escape))
        s = np.where(escaped, escape, s)
        frequency = self.cdf[rows, s + 1] - self.cdf[rows, s]
        return PRECISION - np.log2(np.maximum(frequency, 1)), np.where(escaped, raw, -1)


def nibbles(raw: np.ndarray) -> np.ndarray:
    """Bypass nibbles the encoder writes for each payload: the value's 4-bit digits, and
    before them its digit count (15 + 15 + ... + a last nibble below 15)."""
    digits, rest = np.zeros_like(raw), raw.copy()
    while np.any(rest > 0):
        digits += rest > 0
        rest >>= NIBBLE_BITS
    return digits + digits // 15 + 1


def encoded_words_bound(bits: np.ndarray, raw: np.ndarray) -> float:
    """Most 32-bit words the encoder can write for symbols of these ``(bits, raw)``:
    each word it writes takes 32 bits off a state that starts at 2^31 and stays above
    it, so ``sum(bits) / 32``, plus the two words of the final state."""
    escaped = raw >= 0
    total = (
        bits.sum()
        + NIBBLE_BITS * nibbles(raw[escaped]).sum()
        + ROUNDING_BITS * bits.size
    )
    return total / WORD_BITS + 2


def escape_bits(fifteens: int) -> int:
    """The most bits one escaped symbol can take from the state when at most
    ``fifteens`` of the digit-count nibbles it reads can be 15 (the count is then at
    most ``15 * fifteens + 14`` value nibbles)."""
    return NIBBLE_BITS * ((fifteens + 1) + (15 * fifteens + 14))


# Count nibbles come from the state, at most 8 of them before it is refilled, then from
# the words it reads, low nibble first. Past the string's end those are zeros, which end
# the count.
PAST_END_ESCAPE_BITS = escape_bits(8)


def straddle_bits(data: bytes) -> int:
    """The most bits the symbol being decoded when ``data`` runs out can take: escaped,
    with every run of 0xF nibbles in ``data`` read as digit counts."""
    octets = np.frombuffer(data, dtype=np.uint8)
    nibble = np.stack([octets & 0xF, octets >> 4], axis=1).reshape(
        -1
    )  # low nibble first
    is_f = np.concatenate([[False], nibble == 0xF, [False]])
    edges = np.flatnonzero(np.diff(is_f.astype(np.int8)))
    longest_run = int((edges[1::2] - edges[0::2]).max(initial=0))
    return PRECISION + escape_bits(8 + longest_run)


def check_string(data: bytes) -> None:
    """``ValueError`` unless ``data`` could be a string of CompressAI's encoder: whole
    32-bit words, at least the two of the final state, and that state in [2^31, 2^63).
    """
    if len(data) < 8 or len(data) % 4:
        raise ValueError(
            f"a rANS string of CompressAI's coder is whole 32-bit words, at least 2; "
            f"this one has {len(data)} bytes: truncated or corrupted"
        )
    state = int.from_bytes(data[:8], "little")
    if not STATE_LOWER <= state < STATE_UPPER:
        raise ValueError(
            "this rANS string starts in a state no encoder ends in: corrupted"
        )


class ReadBound:
    """How far the decoder can have read, from the symbols it returned.

    Over any stretch of steps, ``32 * (words read) = bits taken + log2(state after) -
    log2(state before)``, both states in [2^31, 2^63): the words read are within one of
    ``bits / 32``. ``low`` prices each escaped symbol at one count nibble, so
    ``2 + low / 32 - 1`` words were surely read. Past the string's end the symbols are
    classified correctly (module docstring), so the words read past it are at most the
    straddling symbol's :func:`straddle_bits` plus ``high`` (all symbols so far, escaped
    ones at :data:`PAST_END_ESCAPE_BITS`), over 32, plus a word for each stretch."""

    def __init__(self, data: bytes):
        self.words = len(data) // 4
        self.straddle = straddle_bits(data)
        self.low = self.high = 0.0
        self.steps = 0

    def add(self, bits: np.ndarray, raw: np.ndarray) -> None:
        escapes = int((raw >= 0).sum())
        self.low += bits.sum() + NIBBLE_BITS * escapes
        self.high += bits.sum() + PAST_END_ESCAPE_BITS * escapes
        self.steps += bits.size

    def surely_read(self) -> float:
        return 2 + (self.low - ROUNDING_BITS * self.steps) / WORD_BITS - 1

    def padding_for(self, symbols: int) -> int:
        """Zero words after the string that hold all the decoder may read by the end of
        ``symbols`` more (each of them may escape)."""
        past_end = (
            self.straddle + self.high + symbols * (PRECISION + PAST_END_ESCAPE_BITS)
        )
        return int((past_end + ROUNDING_BITS * (self.steps + symbols)) / WORD_BITS) + 4


class GuardedStreamDecoder:
    """CompressAI's ``RansDecoder.decode_stream`` behind
    :class:`coding.ReadableStreamDecoder`'s interface (``decode`` as often as needed,
    then ``finish``), guarded as the module docstring says. The C++ binding converts the
    tables it is given on every call, so each call passes only the table rows its
    symbols use."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        check_string(self.data)
        self.bound = ReadBound(self.data)
        self.history = []  # (rows, values, tables) of every chunk, in order
        self.decoder, self.padding = None, 0

    def decode(self, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
        tables = self._tables(cdfs, cdf_lengths, offsets)
        values = []
        for start in range(0, len(indexes), CHUNK):
            rows = np.asarray(indexes[start : start + CHUNK], dtype=np.int64)
            self._make_room(rows.size)
            decoded = _decode_chunk(self.decoder, rows, tables)
            decoded_array = np.asarray(decoded, dtype=np.int64)
            self.bound.add(*tables.price(rows, decoded_array))
            self.history.append((rows, decoded_array, tables))
            self._check_not_used_up()
            values += decoded
        return values

    def finish(self) -> None:
        """``ValueError`` unless the string is exactly the encoding of the symbols
        decoded."""
        if self._reencode() != self.data:
            raise ValueError(
                "this rANS string does not hold exactly the symbols its header "
                "asks for: corrupted, or the header does not match its strings"
            )

    def _tables(self, cdfs, cdf_lengths, offsets) -> Tables:
        last = self.history[-1][2] if self.history else None
        if last is not None and last.lists[0] is cdfs:
            return last  # serial decoders pass the same tables every call
        return Tables(cdfs, cdf_lengths, offsets)

    def _make_room(self, symbols: int) -> None:
        """Start again with more padding unless it holds all the next chunk could
        read."""
        needed = self.bound.padding_for(symbols)
        if self.decoder is not None and needed <= self.padding:
            return
        self._check_not_used_up()
        # room for an honest string's own bits too, so that it rarely needs a restart
        padding = max(needed + self.bound.words + MIN_PADDING_WORDS, 2 * self.padding)
        if padding > MAX_PADDING_WORDS:
            raise ValueError(
                "this rANS string escapes too many values to decode safely"
            )
        self._start(padding)

    def _check_not_used_up(self) -> None:
        if self.bound.surely_read() > self.bound.words:
            raise ValueError(
                "the header asks for more latents than this rANS string holds"
            )

    def _start(self, padding: int) -> None:
        self.decoder, self.padding = compressai_ans().RansDecoder(), padding
        self.decoder.set_stream(self.data + bytes(4 * padding))
        for rows, _, tables in self.history:  # back to where the last decoder was
            _decode_chunk(self.decoder, rows, tables)

    def _reencode(self) -> bytes:
        groups = {}  # one encoder call over every table seen
        for _, _, tables in self.history:
            groups.setdefault(id(tables), tables)
        shift, start = {}, 0
        for key, tables in groups.items():
            shift[key], start = start, start + len(tables.length)
        if not self.history:
            return b""
        rows = np.concatenate([chunk + shift[id(t)] for chunk, _, t in self.history])
        values = np.concatenate([chunk for _, chunk, _ in self.history])
        cdfs, lengths, offsets = (
            [x for t in groups.values() for x in t.lists[i]] for i in range(3)
        )
        try:
            return encode(values, rows, cdfs, lengths, offsets)
        except ValueError:
            return b""  # symbols no encoder could have written


def _decode_chunk(decoder, rows: np.ndarray, tables: Tables) -> list[int]:
    cdfs, cdf_lengths, offsets = tables.lists
    used = np.unique(rows).tolist()
    local = np.searchsorted(used, rows).tolist()
    return decoder.decode_stream(
        local,
        [cdfs[r][: cdf_lengths[r]] for r in used],
        [cdf_lengths[r] for r in used],
        [offsets[r] for r in used],
    )


@functools.cache
def compressai_ans():
    """CompressAI's compiled ``ans`` extension, loaded by itself: ``from compressai
    import ans`` would first run CompressAI's package ``__init__`` (its models, zoo and
    torchvision), which coding does not need. Falls back to the plain import
    if it has run already or the extension cannot be found. The module is registered as
    ``compressai.ans``, so a later ``from compressai import ans`` gets this one instead
    of loading it a second time."""
    if "compressai.ans" in sys.modules:
        return sys.modules["compressai.ans"]
    package = importlib.util.find_spec("compressai")
    folders = package.submodule_search_locations or [] if package else []
    found = [
        path
        for folder in folders
        for path in Path(folder).glob("ans.*")
        if path.suffix in (".so", ".pyd")
    ]
    if not found:
        from compressai import ans

        return ans
    loader = importlib.machinery.ExtensionFileLoader("compressai.ans", str(found[0]))
    spec = importlib.util.spec_from_file_location(
        "compressai.ans", found[0], loader=loader
    )
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["compressai.ans"] = (
        module  # not every pybind11 registers it: later imports reuse it
    )
    return module


def encode(symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
    """CompressAI's ``encode_with_indexes``, refusing symbols its buffer might not
    hold."""
    tables = Tables(cdfs, cdf_lengths, offsets)
    symbols, indexes = (
        np.asarray(symbols, dtype=np.int64),
        np.asarray(indexes, dtype=np.int64),
    )
    bits, raw = tables.price(indexes, symbols)
    if raw.size and raw.max() >= MAX_PAYLOAD:
        raise ValueError(
            f"latent values this far from their tables (payload {raw.max()}) cannot "
            f"be coded: are the model's weights broken?"
        )
    words = encoded_words_bound(bits, raw)
    if int(words) > symbols.size:
        raise ValueError(
            f"these {symbols.size} symbols may need {int(words)} 32-bit words, more "
            f"than CompressAI's encoder reserves (one a symbol); use coder='readable'"
        )
    return (
        compressai_ans()
        .RansEncoder()
        .encode_with_indexes(
            symbols.tolist(), indexes.tolist(), cdfs, cdf_lengths, offsets
        )
    )


def decode(data: bytes, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
    """All symbols of one string, guarded and checked
    (:class:`GuardedStreamDecoder`)."""
    stream = GuardedStreamDecoder(data)
    values = stream.decode(indexes, cdfs, cdf_lengths, offsets)
    stream.finish()
    return values
