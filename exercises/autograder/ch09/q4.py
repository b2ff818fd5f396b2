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

@test_case(points=None, hidden=True)
def test_gap_is_the_models(gap, gap_percent):
    from lic_teach import data, iterative_encoding, zoo
    model = zoo.load('jpeg-like', 2)
    lmbda = next((m['lambda'] for m in zoo.manifests() if m['family'] == 'jpeg-like' and m['quality'] == 2))
    crop = data.center_crop(data.held_out()['flower'], 64)
    result = iterative_encoding.amortized_and_sga(model, [crop], lmbda, steps=20, progress=False)
    expected = result['amortized']['cost'] - result['sga']['cost']
    percent = 100 * expected / result['amortized']['cost']
    assert abs(gap - expected) <= 1e-09 * abs(expected), f'expected a gap of {expected:.6f}'
    assert abs(gap_percent - percent) <= 1e-09 * abs(percent), 'gap_percent: the gap over the amortized cost, in %'

