from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_two_layer_macs_example(two_layer_macs_per_pixel):
    assert callable(two_layer_macs_per_pixel), 'define two_layer_macs_per_pixel(M, hidden)'
    value = two_layer_macs_per_pixel(256, 1)
    assert abs(value - (2 * 256 * 169 / 256 + 1 / 4 + 75 / 4)) < 1e-06, f'expected 357.0 MACs per pixel, got {value}'

