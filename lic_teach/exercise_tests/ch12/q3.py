from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_bootstrap_interval_example(bootstrap_interval):
    import numpy as np
    assert callable(bootstrap_interval), 'define bootstrap_interval(values, statistic, confidence, resamples, seed)'
    values = np.arange(20.0)
    low, high = bootstrap_interval(values, np.mean, confidence=0.9, resamples=500, seed=1)
    assert low < values.mean() < high, f'the interval ({low:.2f}, {high:.2f}) should hold the sample mean 9.5'
    assert 1 < high - low < 6, f'the interval ({low:.2f}, {high:.2f}) has an unlikely width'

