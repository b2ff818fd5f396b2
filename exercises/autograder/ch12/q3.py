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

@test_case(points=None, hidden=True)
def test_bootstrap_interval_is_the_percentile_bootstrap(bootstrap_interval):
    import numpy as np

    def reference(values, statistic, confidence, resamples, seed):
        values = np.asarray(values)
        n = len(values)
        generator = np.random.default_rng(seed)
        draws = [statistic(values[generator.integers(0, n, n)]) for _ in range(resamples)]
        alpha = 1 - confidence
        return (np.percentile(draws, 100 * alpha / 2), np.percentile(draws, 100 * (1 - alpha / 2)))
    sample = np.random.default_rng(3).exponential(2.0, 25)
    for statistic in (np.mean, np.median):
        for confidence, resamples, seed in ((0.95, 2000, 0), (0.8, 700, 9)):
            mine = bootstrap_interval(sample, statistic, confidence=confidence, resamples=resamples, seed=seed)
            expected = reference(sample, statistic, confidence, resamples, seed)
            assert len(mine) == 2, 'return (low, high)'
            assert np.allclose(mine, expected, rtol=0, atol=1e-09), f'{statistic.__name__}, confidence {confidence}: expected {tuple(map(float, expected))}, got {mine}'
    generator = np.random.default_rng(4)
    covered = 0
    for trial in range(200):
        low, high = bootstrap_interval(generator.normal(1.5, 2.0, 30), np.mean, confidence=0.9, resamples=300, seed=trial)
        covered += low <= 1.5 <= high
    assert 160 <= covered <= 194, f'a 90% interval of the mean should hold the true mean about 90% of the time, held it {covered}/200 times'

