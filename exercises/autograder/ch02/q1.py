from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_ideal_bits_examples(ideal_bits):
    import numpy as np
    assert callable(ideal_bits), 'define a function ideal_bits(pmf, symbols)'
    bits = ideal_bits(np.array([0.5, 0.25, 0.25]), np.array([0, 1, 2]))
    assert isinstance(bits, float), f'return a float, got {type(bits).__name__}'
    assert abs(bits - 5.0) < 1e-09, f'1 + 2 + 2 = 5 bits expected, got {bits}'

@test_case(points=None, hidden=True)
def test_ideal_bits_random(ideal_bits):
    import numpy as np
    rng = np.random.default_rng(3)
    pmf = rng.dirichlet(np.ones(9))
    symbols = rng.choice(9, size=500, p=pmf)
    expected = float(-np.log2(pmf[symbols]).sum())
    assert abs(ideal_bits(pmf, symbols) - expected) < 1e-06, 'wrong total for a random message'

