from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_overhead_plausible(overhead_percent):
    assert isinstance(overhead_percent, (int, float)), f'overhead_percent should be a number, got {overhead_percent!r}'
    assert 0 < overhead_percent < 5, f'rANS should cost a little more than the ideal, not {overhead_percent}%'

@test_case(points=None, hidden=True)
def test_overhead_measured(overhead_percent):
    import numpy as np
    from scipy import stats
    from lic_teach import coding
    values = np.arange(-30, 31)
    pmf = stats.laplace(scale=2.0).cdf(values + 0.5) - stats.laplace(scale=2.0).cdf(values - 0.5)
    pmf = pmf / pmf.sum()
    cdfs, lengths = coding.build_cdf_tables([pmf.tolist()], [1e-09])
    symbols = np.random.default_rng(0).choice(values, size=5000, p=pmf)
    data = coding.get_coder('readable').encode_with_indexes(symbols.tolist(), [0] * 5000, cdfs, lengths, [-30])
    ideal = float(-np.log2(pmf[symbols + 30]).sum())
    expected = 100 * (8 * len(data) - ideal) / ideal
    assert abs(overhead_percent - expected) < 0.001, f'the overhead is not the one this coder measures'

