from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_side_percent_range(side_percent):
    assert isinstance(side_percent, (int, float)), f'side_percent should be a number you measured, got {side_percent!r}'
    assert 0 < side_percent < 100, f'a share of the bytes lies between 0 and 100%, got {side_percent}'

@test_case(points=None, hidden=True)
def test_side_percent_measured(side_percent, model):
    from lic_teach.data import center_crop, sample_images
    x = center_crop(sample_images('test')['astronaut'], 128)
    from lic_teach import bitstream
    _, (y_string, z_string) = bitstream.unpack(model.compress(x))
    y_bytes, z_bytes = (len(y_string), len(z_string))
    assert abs(side_percent - 100 * z_bytes / (y_bytes + z_bytes)) < 1e-06, "not the share of z's bytes"

