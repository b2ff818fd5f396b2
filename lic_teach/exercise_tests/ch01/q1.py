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

