from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_mean_psnr_example(mean_psnr):
    import torch
    assert callable(mean_psnr), 'define mean_psnr(originals, decoded)'
    originals = [torch.zeros(3, 2, 2), torch.zeros(3, 4, 6)]
    decoded = [torch.full((3, 2, 2), 0.1), torch.full((3, 4, 6), 0.001)]
    value = mean_psnr(originals, decoded)
    assert isinstance(value, float), 'return a float'
    assert abs(value - 40.0) < 0.0001, f'20 dB and 60 dB average to 40 dB, got {value:.3f}'

