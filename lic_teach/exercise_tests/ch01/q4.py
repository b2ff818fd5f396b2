from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_measured_types(bpp_saved, psnr_with, psnr_without):
    for name, value in [('bpp_saved', bpp_saved), ('psnr_with', psnr_with), ('psnr_without', psnr_without)]:
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert bpp_saved > 0, 'with the same step, the DCT should need fewer bits than raw pixels'

