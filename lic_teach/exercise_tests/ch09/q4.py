from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_gap_measured(gap, gap_percent):
    for name, value in [('gap', gap), ('gap_percent', gap_percent)]:
        assert isinstance(value, (int, float)), f'{name} should be a number, got {value!r}'
    assert 0 < gap_percent < 100, 'SGA should lower the cost, by less than all of it'

