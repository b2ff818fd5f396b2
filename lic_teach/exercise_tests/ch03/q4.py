from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_measured_numbers(measured_bpp, measured_psnr):
    for name, value in [('measured_bpp', measured_bpp), ('measured_psnr', measured_psnr)]:
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert 0 < measured_bpp < 24 and 5 < measured_psnr < 60, 'these do not look like bpp and PSNR in dB'

