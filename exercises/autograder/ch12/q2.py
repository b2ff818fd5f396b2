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

@test_case(points=None, hidden=True)
def test_mean_psnr_is_the_books(mean_psnr):
    import torch
    from lic_teach import metrics
    generator = torch.Generator().manual_seed(5)
    originals, decoded = ([], [])
    for (height, width), noise in (((16, 24), 0.3), ((40, 8), 0.002), ((32, 32), 0.05), ((7, 13), 0.0004)):
        x = torch.rand(3, height, width, generator=generator)
        originals.append(x)
        decoded.append((x + noise * torch.randn(x.shape, generator=generator)).clamp(0, 1))
    expected = sum((metrics.psnr(x, y) for x, y in zip(originals, decoded))) / len(originals)
    mine = mean_psnr(originals, decoded)
    assert abs(mine - expected) < 0.0001, f"expected {expected:.4f} dB (the mean of the images' PSNRs), got {mine:.4f}"

