from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_recovered_measured(recovered_percent):
    assert isinstance(recovered_percent, (int, float)), f'recovered_percent should be a number, got {recovered_percent!r}'
    assert -100 < recovered_percent < 100, 'a share of the rounding error, in percent'

