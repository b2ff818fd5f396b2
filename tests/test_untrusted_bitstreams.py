"""Decoding untrusted bytes: no crash, no hang, no read outside the bytes given, no
picture of a size its header does not state; every bad input ends in a ``ValueError``.
"""

import json
import random
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from lic_teach import bitstream, coding, crosscheck, native_rans
from lic_teach.models import FactorizedPrior, MeanScaleHyperprior

MASK64 = (1 << 64) - 1


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class CompressAIDecoderModel:
    """CompressAI's ``decode_stream`` step by step in Python, int32 wrap-around and
    x86's shift counts included, over a string followed by as many zero words as it
    reads; it counts the words read, which the C++ decoder cannot tell."""

    def __init__(self, data: bytes):
        self.words = list(struct.unpack(f"<{len(data) // 4}I", data))
        self.state, self.read = self.words[0] | self.words[1] << 32, 2

    def _refill(self, state: int) -> int:
        if state < 1 << 31:
            word = self.words[self.read] if self.read < len(self.words) else 0
            state, self.read = ((state << 32) | word) & MASK64, self.read + 1
        return state

    def _nibble(self) -> int:
        value = self.state & 15
        self.state = self._refill(self.state >> 4)
        return value

    def decode(self, indexes, cdfs, lengths, offsets) -> list[int]:
        out = []
        for k in indexes:
            cdf, escape = cdfs[k], lengths[k] - 2
            slot = self.state & 0xFFFF
            s = next(i for i in range(lengths[k]) if cdf[i] > slot) - 1
            self.state = self._refill(
                (cdf[s + 1] - cdf[s]) * (self.state >> 16) + slot - cdf[s]
            )
            value = s
            if s == escape:
                count = piece = self._nibble()
                while piece == 15:
                    piece = self._nibble()
                    count += piece
                raw = 0
                for j in range(count):
                    raw = _int32(raw | (self._nibble() << ((4 * j) & 31)))
                value = (
                    _int32(-(raw >> 1) - 1) if raw & 1 else _int32((raw >> 1) + escape)
                )
            out.append(_int32(value + offsets[k]))
        return out


def _random_tables(rng: random.Random, count: int = 4):
    """Peaked, flat and short pmfs with tail masses from 1e-9 to 0.3."""
    pmfs, tails = [], []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 9, 40])
        weights = [rng.random() ** rng.choice([1, 8]) for _ in range(n)]
        weights[rng.randrange(n)] += rng.choice([0, 50, 5000])
        pmfs.append([w / sum(weights) for w in weights])
        tails.append(rng.choice([1e-9, 1e-3, 0.3]))
    cdfs, lengths = coding.build_cdf_tables(pmfs, tails)
    return cdfs, lengths, [-rng.randrange(30) for _ in pmfs]


def _strings(rng: random.Random, tables):
    """Strings of every kind: honest, mutated, and random words in a valid first
    state."""
    cdfs, lengths, offsets = tables
    while (
        True
    ):  # CompressAI's encoder holds one word a symbol: retry if these need more
        symbols = [
            rng.choice([0, 1, -1, 2, 5, 40, -300, 70000])
            for _ in range(rng.randrange(1, 400))
        ]
        indexes = [rng.randrange(len(cdfs)) for _ in symbols]
        try:
            honest = native_rans.encode(symbols, indexes, *tables)
            break
        except ValueError:
            pass
    mutated = bytearray(honest)
    mutated[rng.randrange(8, len(mutated)) if len(mutated) > 8 else 4] ^= (
        1 << rng.randrange(8)
    )
    noise = (rng.randrange(1 << 31, 1 << 63)).to_bytes(8, "little") + bytes(
        rng.choice([0xFF, rng.randrange(256)]) for _ in range(4 * rng.randrange(0, 40))
    )
    return [
        (honest, symbols, indexes),
        (bytes(mutated), None, indexes),
        (noise, None, None),
    ]


def test_padding_holds_every_word_the_decoder_reads_past_the_end():
    """The bound behind the guard, checked against a step-by-step model of the C++
    decoder that counts the words it really reads: on honest, mutated and random strings
    asked for up to 20 times more symbols than they hold, no chunk reads beyond the
    padding ``ReadBound`` asked for before it; an honest string reads exactly its own
    words."""
    rng = random.Random(0)
    checked = Counter()
    for _ in range(60):
        tables = _random_tables(rng)
        for data, symbols, indexes in _strings(rng, tables):
            asked = indexes or [
                rng.randrange(len(tables[0])) for _ in range(rng.randrange(1, 300))
            ]
            asked = asked + [
                rng.randrange(len(tables[0]))
                for _ in range(len(asked) * rng.choice([0, 1, 20]))
            ]
            model, bound = CompressAIDecoderModel(data), native_rans.ReadBound(data)
            tables_np = native_rans.Tables(*tables)
            for start in range(0, len(asked), 97):
                chunk = asked[start : start + 97]
                room = bound.padding_for(len(chunk))
                values = model.decode(chunk, *tables)
                assert model.read - bound.words <= room, (model.read, bound.words, room)
                bound.add(
                    *tables_np.price(
                        torch.tensor(chunk).numpy(), torch.tensor(values).long().numpy()
                    )
                )
                assert bound.surely_read() <= model.read + 1e-9
                checked["past the end" if model.read > bound.words else "within"] += 1
            if symbols is not None and len(asked) == len(symbols):
                assert model.read == bound.words
                assert model.decode([], *tables) == []
    assert checked["past the end"] > 100, checked
    assert checked["within"] > 100, checked


def test_the_model_of_the_c_decoder_agrees_with_it():
    rng = random.Random(1)
    for _ in range(20):
        tables = _random_tables(rng)
        for data, symbols, indexes in _strings(rng, tables):
            indexes = indexes or [rng.randrange(len(tables[0])) for _ in range(50)]
            stream = native_rans.GuardedStreamDecoder(data)
            try:
                got = stream.decode(indexes, *tables)
            except ValueError:
                continue
            assert got == CompressAIDecoderModel(data).decode(indexes, *tables)
            if symbols is not None:
                assert got == symbols


def test_guarded_decoder_refuses_what_an_encoder_never_wrote():
    tables = ([[0, 65535, 65536]], [3], [0])  # one sure symbol and an escape
    decoder = coding.get_coder("ans")
    honest = decoder.encode_with_indexes([0] * 10, [0] * 10, *tables)
    assert decoder.decode_with_indexes(honest, [0] * 10, *tables) == [0] * 10
    for asked in (9, 11, 100_000):  # fewer or more symbols than coded
        with pytest.raises(ValueError):
            decoder.decode_with_indexes(honest, [0] * asked, *tables)
    for bad in (honest[:7], honest + b"\x00", bytes(8), b"\xff" * 8):
        with pytest.raises(ValueError, match="rANS string"):
            decoder.decode_with_indexes(bad, [0] * 10, *tables)


def test_escape_heavy_streams_restart_with_more_padding_and_decode():
    tables = ([[0, 65535, 65536]], [3], [0])
    rng = random.Random(3)
    symbols = [
        rng.choice([0, rng.randrange(-60, 60)]) for _ in range(20_000)
    ]  # about half escaped
    data = native_rans.encode(symbols, [0] * len(symbols), *tables)
    stream = native_rans.GuardedStreamDecoder(data)
    assert stream.decode([0] * len(symbols), *tables) == symbols
    stream.finish()
    assert stream.padding > len(data) // 4  # grown past an honest string's own size


def test_encoder_refuses_what_would_overflow_its_buffer_or_never_end():
    tables = ([[0, 1, 65535, 65536]], [4], [0])  # symbol 0 costs 16 bits
    coder = coding.get_coder("ans")
    with pytest.raises(ValueError, match="coder='readable'"):
        coder.encode_with_indexes(
            [0, 0], [0, 0], *tables
        )  # 3 words into a 2-word buffer
    readable = coding.get_coder("readable")
    assert readable.decode_with_indexes(
        readable.encode_with_indexes([0, 0], [0, 0], *tables), [0, 0], *tables
    ) == [0, 0]
    with pytest.raises(ValueError, match="weights broken"):
        coder.encode_with_indexes(
            [1 << 28] * 40, [0] * 40, *tables
        )  # its digit loop never ends


def test_readable_decoder_refuses_a_bad_first_state_and_endless_escapes():
    cdfs, lengths, offsets = ([[0, 1, 65536]], [3], [0])
    with pytest.raises(ValueError, match="state"):
        coding.ReadableRansCoder().decode_with_indexes(
            b"\xff" * 12, [0], cdfs, lengths, offsets
        )
    escape, piece = (
        (1, 65535),
        coding._uniform(15, coding.PRECISION),
    )  # 45 + 1 pieces follow
    data = coding.rans_encode(
        [escape, piece, piece, piece] + [coding._uniform(0, coding.PRECISION)] * 47
    )
    with pytest.raises(ValueError, match="too large"):
        coding.ReadableRansCoder().decode_with_indexes(
            data, [0], cdfs, lengths, offsets
        )


@pytest.fixture(scope="module")
def stream():
    torch.manual_seed(0)
    model = MeanScaleHyperprior(16, 24).eval()
    return model, model.compress(torch.rand(3, 48, 70))


def test_header_size_limits(stream, monkeypatch):
    model, data = stream
    header, strings = bitstream.unpack(data)
    for height, width in ((0, 70), (48, 0), (100_000, 100_000)):
        header.height, header.width = height, width
        with pytest.raises(ValueError, match="image"):
            model.decompress(bitstream.pack(header, strings))
    monkeypatch.setattr(bitstream, "MAX_IMAGE_PIXELS", 48 * 70 - 1)
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
        model.decompress(data)
    monkeypatch.setattr(bitstream, "MAX_IMAGE_PIXELS", None)
    assert model.decompress(data).shape == (3, 48, 70)


def test_string_count_must_match_the_model(stream):
    model, data = stream
    header, strings = bitstream.unpack(data)
    for wrong in ([], strings[:1], strings + strings[:1]):
        with pytest.raises(ValueError, match="holds 2 strings"):
            model.decompress(bitstream.pack(header, wrong))


def test_damaged_coding_tables_are_refused_on_load(tmp_path):
    model = FactorizedPrior(8, 12)
    model.update(force=True)
    state = model.state_dict()
    for name, damage in (
        ("quantized_cdf", lambda t: t.flip(1)),
        ("cdf_length", lambda t: t + 1000),
        ("cdf_offset", lambda t: t[:-1]),
    ):
        damaged = dict(state, **{f"prior.{name}": damage(state[f"prior.{name}"])})
        with pytest.raises(ValueError, match="coding tables 'prior.'"):
            FactorizedPrior(8, 12).load_state_dict(damaged)
    checkpoint = tmp_path / "model.pth.tar"
    checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(ValueError, match="model.pth.tar"):
        crosscheck.load_checkpoint(checkpoint)


FUZZ = Path(__file__).with_name("fuzz_bitstreams.py")
CASES_PER_STREAM = 50


def _fuzz(kinds: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FUZZ), str(CASES_PER_STREAM), *kinds],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_fuzzed_bitstreams_end_in_a_picture_of_the_header_size_or_a_value_error():
    """Every model kind, both coders and the trellis layout, in two child processes (one
    a core): a crash, a hang, more than 2 GiB or any other ending fails, naming its
    case."""
    children = [
        _fuzz(["FactorizedPrior", "JointAutoregressive"]),
        _fuzz(["ScaleHyperprior", "MeanScaleHyperprior", "CheckerboardContext"]),
    ]
    outcomes, peaks = Counter(), []
    for child in children:
        try:
            out, err = child.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        lines = [json.loads(line) for line in out.splitlines()]
        started = {line["start"]: line for line in lines if "start" in line}
        ended = {line["end"]: line for line in lines if "end" in line}
        unfinished = [started[n] for n in started if n not in ended]
        died = (
            f"the fuzzer died (exit {child.returncode}) in {unfinished}: {err[-2000:]}"
        )
        assert child.returncode == 0, died
        assert not unfinished, died
        for number, line in ended.items():
            outcomes[(started[number]["kind"], line["outcome"])] += 1
            assert line["outcome"] in ("decoded", "ValueError"), (started[number], line)
        peaks.append(lines[-1]["peak_mib"])
    print("\nfuzzed bitstreams:", dict(outcomes), "peak MiB per child:", peaks)
    per_kind = Counter(kind for kind, _ in outcomes.elements())
    assert len(per_kind) == 5, per_kind
    assert min(per_kind.values()) >= 2 * CASES_PER_STREAM, per_kind
    assert max(peaks) < 2048
