from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_interval_examples(arithmetic_interval):
    from fractions import Fraction
    assert callable(arithmetic_interval), 'define a function arithmetic_interval(cdf, symbols)'
    cdf = [0, 1, 4]
    result = arithmetic_interval(cdf, [1])
    assert tuple(result) == (Fraction(1, 4), Fraction(3, 4)), f'symbol 1 alone: expected (1/4, 3/4), got {result}'
    result = arithmetic_interval(cdf, [0, 1])
    assert tuple(result) == (Fraction(1, 16), Fraction(3, 16)), f'symbols 0, 1: expected (1/16, 3/16), got {result}'

