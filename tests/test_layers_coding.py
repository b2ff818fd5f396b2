import random

import pytest
import torch
from compressai._CXX import pmf_to_quantized_cdf as compressai_pmf_to_quantized_cdf
from compressai.layers import GDN as CompressAIGDN
from compressai.ops.parametrizers import NonNegativeParametrizer

from lic_teach import coding
from lic_teach.layers import GDN, PEDESTAL, from_stored, lower_bound, to_stored


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_equals_compressai_with_the_same_tensors(inverse):
    torch.manual_seed(0)
    theirs = CompressAIGDN(6, inverse=inverse)
    with torch.no_grad():
        theirs.beta.add_(0.3 * torch.rand(6))
        theirs.gamma.add_(0.2 * torch.rand(6, 6))
    ours = GDN(6, inverse=inverse)
    ours.load_state_dict({"beta": theirs.beta.detach(), "gamma": theirs.gamma.detach()})
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    assert torch.equal(ours(x), theirs(x))
    ours(x).sum().backward()
    g_ours = (ours.beta.grad.clone(), ours.gamma.grad.clone())
    theirs(x).sum().backward()
    assert torch.allclose(g_ours[0], theirs.beta.grad)
    assert torch.allclose(g_ours[1], theirs.gamma.grad)


def test_gdn_formula_and_inverse():
    gdn, igdn = GDN(3), GDN(3, inverse=True)
    x = torch.randn(1, 3, 4, 4)
    expected = x / torch.sqrt(1 + 0.1 * x**2)  # beta = 1, gamma = 0.1 I at init
    assert torch.allclose(gdn(x), expected, atol=1e-6)
    assert torch.allclose(
        igdn(gdn(x)),
        x * torch.sqrt((1 + 0.1 * expected**2) / (1 + 0.1 * x**2)),
        atol=1e-5,
    )


def test_reparameterization_keeps_values_non_negative():
    stored = to_stored(torch.tensor([0.0, 1.0, 4.0]))
    assert torch.allclose(from_stored(stored), torch.tensor([0.0, 1.0, 4.0]), atol=1e-6)
    assert from_stored(torch.tensor([-3.0]), minimum=1e-6).item() == pytest.approx(1e-6)
    assert float(from_stored(torch.tensor([0.0]))) >= 0
    assert float(NonNegativeParametrizer().pedestal) == PEDESTAL  # CompressAI's


def test_lower_bound_gradient_passes_only_upwards():
    x = torch.tensor([0.0, 2.0], requires_grad=True)
    lower_bound(x, 1.0).sum().backward()  # gradient +1: would push x down
    assert x.grad.tolist() == [0.0, 1.0]
    x.grad = None
    (-lower_bound(x, 1.0)).sum().backward()  # gradient -1: pushes x up, passes
    assert x.grad.tolist() == [-1.0, -1.0]


def test_quantized_cdf_equals_compressai_on_random_pmfs():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 80)
        pmf = torch.rand(n) ** rng.choice([1, 5, 15])
        if rng.random() < 0.3:
            pmf[torch.randint(0, n, (max(1, n // 3),))] = 0
        pmf[0] += 1e-3
        pmf = (pmf / pmf.sum() * rng.choice([1.0, 0.999])).float().tolist()
        assert coding.pmf_to_quantized_cdf(pmf) == list(
            compressai_pmf_to_quantized_cdf(pmf, 16)
        )


def test_quantized_cdf_equals_compressai_on_long_pmfs_with_many_steals():
    rng = random.Random(1)  # thousands of symbols, most below one count
    for _ in range(20):
        pmf = torch.rand(rng.randint(1000, 4000)) ** 30
        pmf = (pmf / pmf.sum()).tolist()
        assert coding.pmf_to_quantized_cdf(pmf) == list(
            compressai_pmf_to_quantized_cdf(pmf, 16)
        )
    with pytest.raises(ValueError, match="too many symbols"):
        coding.pmf_to_quantized_cdf(
            [1.0 / 20] * 20, precision=4
        )  # 20 symbols, 16 units


def test_quantized_cdf_properties_and_bad_inputs():
    cdf = coding.pmf_to_quantized_cdf([0.5, 0.0, 1e-9, 0.5])
    assert cdf[0] == 0
    assert cdf[-1] == 1 << 16
    assert all(b > a for a, b in zip(cdf, cdf[1:])), "every symbol keeps frequency >= 1"
    with pytest.raises(ValueError):
        coding.pmf_to_quantized_cdf([0.5, -0.1])
    with pytest.raises(ValueError):
        coding.pmf_to_quantized_cdf([float("nan")])
    with pytest.raises(ValueError):
        coding.pmf_to_quantized_cdf([])


def test_rans_round_trips_intervals_exactly():
    rng = random.Random(1)
    intervals = []
    for _ in range(3000):
        frequency = rng.choice([1, 2, 7, 300, 1 << 15])
        intervals.append((rng.randrange(0, (1 << 16) - frequency + 1), frequency))
    data = coding.rans_encode(intervals)
    decoder = coding.RansDecoder(data)
    for start, frequency in intervals:
        assert start <= decoder.slot() < start + frequency
        decoder.advance(start, frequency)
    decoder.check_finished()


def _tables():
    pmfs = [[0.05, 0.2, 0.5, 0.2, 0.05], [0.9, 0.1], [1.0]]
    cdfs, lengths = coding.build_cdf_tables(pmfs, [1e-3, 1e-4, 1e-2])
    return cdfs, lengths, [-2, 0, 7]


def test_readable_coder_round_trips_with_escapes():
    cdfs, lengths, offsets = _tables()
    rng = random.Random(2)
    symbols = [rng.randint(-6, 6) for _ in range(5000)] + [10**7, -(10**7), 0, 7, 8, 6]
    indexes = [rng.randrange(3) for _ in symbols]
    coder = coding.ReadableRansCoder()
    data = coder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    assert coder.decode_with_indexes(data, indexes, cdfs, lengths, offsets) == symbols


def test_readable_coder_size_matches_compressai_rans():
    cdfs, lengths, offsets = _tables()
    rng = random.Random(3)
    indexes = [rng.randrange(2) for _ in range(20000)]
    symbols = [
        rng.choices([-2, -1, 0, 1, 2], [0.05, 0.2, 0.5, 0.2, 0.05])[0]
        if k == 0
        else rng.choices([0, 1], [0.9, 0.1])[0]
        for k in indexes
    ]
    ours = coding.get_coder("readable").encode_with_indexes(
        symbols, indexes, cdfs, lengths, offsets
    )
    theirs = coding.get_coder("ans").encode_with_indexes(
        symbols, indexes, cdfs, lengths, offsets
    )
    assert abs(len(ours) - len(theirs)) <= 0.005 * len(theirs)
    decoded = coding.get_coder("ans").decode_with_indexes(
        theirs, indexes, cdfs, lengths, offsets
    )
    assert decoded == symbols


@pytest.mark.parametrize("name", ["readable", "ans"])
def test_stream_decoders_decode_piece_by_piece(name):
    cdfs, lengths, offsets = _tables()
    rng = random.Random(4)
    symbols = [rng.randint(-6, 6) for _ in range(3000)] + [40, -40]
    indexes = [rng.randrange(3) for _ in symbols]
    coder = coding.get_coder(name)
    data = coder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    stream = coder.stream_decoder(data)
    decoded = []
    for start in range(0, len(symbols), 7):  # 7 symbols at a time
        decoded += stream.decode(indexes[start : start + 7], cdfs, lengths, offsets)
    stream.finish()
    assert decoded == symbols


@pytest.mark.parametrize("name", ["readable", "ans"])
def test_stream_decoders_take_other_tables_on_each_call(name):
    """A serial decoder may bring its own tables to each call; CompressAI's guarded
    decoder must then check the string against all of them together (``finish``
    re-encodes)."""
    first, second = _tables(), coding.build_cdf_tables([[0.3, 0.4, 0.3]], [1e-3])
    second = (*second, [-1])
    combined = [
        a + b for a, b in zip(first, second)
    ]  # one encoder call, rows 0-2 and 3
    rng = random.Random(5)
    symbols = [rng.randint(-3, 3) for _ in range(400)] + [
        rng.randint(-2, 2) for _ in range(300)
    ]
    rows = [rng.randrange(3) for _ in range(400)] + [0] * 300
    coder = coding.get_coder(name)
    data = coder.encode_with_indexes(symbols, rows[:400] + [3] * 300, *combined)
    stream = coder.stream_decoder(data)
    decoded = stream.decode(rows[:400], *first) + stream.decode(rows[400:], *second)
    stream.finish()
    assert decoded == symbols
    altered = coder.stream_decoder(data)
    altered.decode(rows[:400], *first)
    with pytest.raises(ValueError):
        altered.decode(rows[400:], *first)  # the wrong tables for the rest
        altered.finish()


def test_readable_stream_decoder_notices_a_short_read():
    cdfs, lengths, offsets = _tables()
    coder = coding.ReadableRansCoder()
    data = coder.encode_with_indexes([1, 2, 3, 4], [0, 0, 0, 0], cdfs, lengths, offsets)
    stream = coder.stream_decoder(data)
    stream.decode([0, 0], cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="did not decode cleanly"):
        stream.finish()


def test_corrupted_or_truncated_rans_data_raises():
    cdfs, lengths, offsets = _tables()
    symbols, indexes = [0, 1, -1, 2] * 200, [0] * 800
    coder = coding.ReadableRansCoder()
    data = coder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError):
        coder.decode_with_indexes(data[:-20], indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError):
        coder.decode_with_indexes(data[:3], indexes, cdfs, lengths, offsets)
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0x5A
    try:
        decoded = coder.decode_with_indexes(
            bytes(altered), indexes, cdfs, lengths, offsets
        )
    except ValueError:
        return
    assert decoded != symbols


def test_unknown_coder():
    with pytest.raises(ValueError, match="readable"):
        coding.get_coder("huffman")
