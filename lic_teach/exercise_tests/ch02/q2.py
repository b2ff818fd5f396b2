from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_quantized_cdf_examples(quantized_cdf):
    assert callable(quantized_cdf), 'define a function quantized_cdf(pmf, precision)'
    cdf = list(quantized_cdf([0.5, 0.25, 0.25], 4))
    assert cdf == [0, 8, 12, 16], f'expected [0, 8, 12, 16], got {cdf}'
    cdf = list(quantized_cdf([0.999, 0.0001, 0.0009], 8))
    frequencies = [b - a for a, b in zip(cdf, cdf[1:])]
    assert min(frequencies) >= 1, f'every symbol needs a frequency of at least 1, got {frequencies}'
    assert cdf[0] == 0 and cdf[-1] == 256, f'the CDF must run from 0 to 2**precision, got {cdf}'

