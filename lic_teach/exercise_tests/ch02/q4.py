from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_overhead_plausible(overhead_percent):
    assert isinstance(overhead_percent, (int, float)), f'overhead_percent should be a number, got {overhead_percent!r}'
    assert 0 < overhead_percent < 5, f'rANS should cost a little more than the ideal, not {overhead_percent}%'

