from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_miss_measured(miss_percent):
    assert isinstance(miss_percent, (int, float)), f'miss_percent should be a number, got {miss_percent!r}'
    assert 0 <= miss_percent <= 100, 'a share of the points, in percent'

@test_case(points=None, hidden=True)
def test_miss_is_the_books(miss_percent):
    from lic_teach import lattices
    expected = 100 * lattices.babai_miss_rate(lattices.gosset().basis, count=2000, seed=0)['rate']
    assert abs(miss_percent - expected) < 1e-09, f'expected {expected:.2f}% (in percent, not a fraction)'

