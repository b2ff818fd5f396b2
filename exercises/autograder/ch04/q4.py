from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_measured_gap_types(real_bits, noise_bits, gap_percent):
    for name, value in [('real_bits', real_bits), ('noise_bits', noise_bits), ('gap_percent', gap_percent)]:
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert abs(gap_percent - 100 * (noise_bits - real_bits) / real_bits) < 1e-06, 'gap_percent must follow from the two rates'

@test_case(points=None, hidden=True)
def test_measured_gap_values(real_bits, noise_bits):
    import numpy as np
    from scipy import stats
    laplace = stats.laplace(scale=1.5)
    y = laplace.rvs(size=20000, random_state=0)
    p = lambda v: laplace.cdf(v + 0.5) - laplace.cdf(v - 0.5)
    assert abs(real_bits - float(-np.log2(p(np.round(y))).mean())) < 1e-06, 'real_bits is not the cost of round(y)'
    u = np.random.default_rng(1).uniform(-0.5, 0.5, size=(5, y.size))
    expected = float(-np.log2(p(y + u)).mean())
    assert abs(noise_bits - expected) < 0.02, f'noise_bits should be about {expected:.3f} bits'

