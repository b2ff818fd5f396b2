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

@test_case(points=None, hidden=True)
def test_measured_from_bitstream(measured_bpp, measured_psnr, model):
    import torch
    from lic_teach.data import center_crop, sample_images
    from lic_teach.metrics import psnr
    x = center_crop(sample_images('test')['astronaut'], 128)
    data = model.compress(x)
    assert abs(measured_bpp - 8 * len(data) / 128 ** 2) < 1e-06, 'measured_bpp is not 8 * bytes / pixels of compress(x)'
    assert abs(measured_psnr - psnr(x, model.decompress(data))) < 0.001, "measured_psnr is not the decoded image's PSNR"

