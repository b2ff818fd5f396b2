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

@test_case(points=None, hidden=True)
def test_measured_values(bpp_saved, psnr_with, psnr_without):
    from lic_teach.data import center_crop, sample_images
    from lic_teach.transform_coding import transform_code
    x = center_crop(sample_images('test')['astronaut'], 128)
    a, b = (transform_code(x, step=0.1), transform_code(x, step=0.1, transform='none'))
    assert abs(bpp_saved - (b.bpp - a.bpp)) < 0.001, 'bpp_saved is not what the coder measures at step 0.1'
    assert abs(psnr_with - a.psnr) < 0.001 and abs(psnr_without - b.psnr) < 0.001, "the PSNRs are not the coder's"

