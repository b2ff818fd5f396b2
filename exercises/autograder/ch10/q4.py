from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_recovered_measured(recovered_percent):
    assert isinstance(recovered_percent, (int, float)), f'recovered_percent should be a number, got {recovered_percent!r}'
    assert -100 < recovered_percent < 100, 'a share of the rounding error, in percent'

@test_case(points=None, hidden=True)
def test_recovered_is_the_codecs(recovered_percent):
    from lic_teach import data, rectifier
    from lic_teach.experiments import rectification
    errors = rectifier.rounding_error(rectification.trained('factorized'), data.center_crop(data.held_out()['astronaut'], 256)[None])
    expected = 100 * (1 - errors['rectified'].sum().item() / errors['rounded'].sum().item())
    assert abs(recovered_percent - expected) < 1e-06, f'expected {expected:.3f}%'

