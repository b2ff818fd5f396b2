from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_bpp_examples(bpp_from_likelihoods):
    import torch
    assert callable(bpp_from_likelihoods), 'define a function bpp_from_likelihoods(likelihoods, num_pixels)'
    bpp = bpp_from_likelihoods({'y': torch.full((1, 2, 2, 2), 0.5)}, 4)
    assert abs(float(bpp) - 2.0) < 1e-06, f'8 latents of probability 1/2 over 4 pixels: 2 bpp, got {bpp}'

@test_case(points=None, hidden=True)
def test_bpp_two_latents(bpp_from_likelihoods):
    import torch
    from lic_teach.metrics import bpp
    torch.manual_seed(2)
    likelihoods = {'y': torch.rand(2, 8, 4, 4) * 0.9 + 0.05, 'z': torch.rand(2, 4, 1, 1) * 0.9 + 0.05}
    value = float(bpp_from_likelihoods(likelihoods, 2 * 64 * 64))
    assert abs(value - bpp(likelihoods, 2 * 64 * 64)) < 1e-05, 'both y and z must be counted, in bits'

