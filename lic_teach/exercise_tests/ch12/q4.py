from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_bd_rate_444_measured(bd_rate_444):
    import math
    assert isinstance(bd_rate_444, (int, float)), f'bd_rate_444 should be a number, got {bd_rate_444!r}'
    assert math.isfinite(bd_rate_444), 'a finite percentage'

