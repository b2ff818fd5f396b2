from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_side_percent_range(side_percent):
    assert isinstance(side_percent, (int, float)), f'side_percent should be a number you measured, got {side_percent!r}'
    assert 0 < side_percent < 100, f'a share of the bytes lies between 0 and 100%, got {side_percent}'

