from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_entropy_examples(entropy_bits):
    import numpy as np
    assert callable(entropy_bits), 'define a function entropy_bits(symbols)'
    h = entropy_bits(np.array([0, 1, 0, 1]))
    assert abs(h - 1.0) < 1e-09, f'two equally likely symbols carry 1 bit each, got {h}'
    h = entropy_bits(np.array([7, 7, 7]))
    assert abs(h) < 1e-09, f'a constant sequence carries 0 bits, got {h}'

@test_case(points=None, hidden=True)
def test_entropy_matches_reference(entropy_bits):
    import numpy as np
    from lic_teach.rate_distortion import empirical_entropy
    rng = np.random.default_rng(11)
    for shape in [(1000,), (40, 25), (3, 8, 8)]:
        symbols = np.round(rng.laplace(scale=3.0, size=shape)).astype(int)
        h = entropy_bits(symbols)
        assert abs(h - empirical_entropy(symbols)) < 1e-06, f'wrong entropy for a {shape} array: {h}'
    h = entropy_bits(np.arange(-4, 4))
    assert abs(h - 3.0) < 1e-09, f'eight equally likely symbols (some negative) carry 3 bits, got {h}'

