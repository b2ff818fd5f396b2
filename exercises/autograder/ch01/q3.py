from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_psnr_examples(psnr):
    import numpy as np
    assert callable(psnr), 'define a function psnr(x, x_hat)'
    x = np.zeros((4, 4))
    value = psnr(x, x + 0.1)
    assert abs(value - 20.0) < 1e-06, f'an error of 0.1 everywhere is 20 dB, got {value}'
    assert psnr(x, x) == float('inf'), 'identical images should give inf'

@test_case(points=None, hidden=True)
def test_psnr_matches_reference(psnr):
    import numpy as np
    import torch
    from lic_teach.metrics import psnr as reference
    rng = np.random.default_rng(5)
    x = rng.random((3, 17, 9))
    x_hat = np.clip(x + rng.normal(scale=0.03, size=x.shape), 0, 1)
    value = psnr(x, x_hat)
    expected = reference(torch.from_numpy(x), torch.from_numpy(x_hat))
    assert abs(value - expected) < 1e-06, f'psnr of a noisy image: expected about {expected:.3f}, got {value}'

