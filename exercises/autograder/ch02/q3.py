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

@test_case(points=None, hidden=True)
def test_intervals_tile_the_unit_interval(arithmetic_interval):
    from fractions import Fraction
    from itertools import product
    cdf = [0, 3, 4, 9, 16]
    intervals = sorted((tuple(arithmetic_interval(cdf, list(m))) for m in product(range(4), repeat=3)))
    position = Fraction(0)
    for low, width in intervals:
        assert low == position and width > 0, 'the intervals of all 3-symbol messages must tile [0, 1)'
        position = low + width
    assert position == 1, 'the intervals of all 3-symbol messages must cover [0, 1)'

