from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_decoder_gain_numbers(bpp_before, bpp_after, psnr_before, psnr_after, psnr_gain):
    values = dict(bpp_before=bpp_before, bpp_after=bpp_after, psnr_before=psnr_before, psnr_after=psnr_after, psnr_gain=psnr_gain)
    for name, value in values.items():
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert bpp_after == bpp_before, 'the encoder and entropy model are frozen: the bitstream cannot change'
    assert abs(psnr_gain - (psnr_after - psnr_before)) < 1e-09, 'psnr_gain must be psnr_after - psnr_before'

