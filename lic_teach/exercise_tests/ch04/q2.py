from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_noise_range(uniform_noise):
    import torch
    assert callable(uniform_noise), 'define a function uniform_noise(y)'
    y = torch.zeros(10000)
    u = uniform_noise(y)
    assert torch.is_tensor(u) and u.shape == y.shape, 'return a tensor shaped like y'
    assert u.min() >= -0.5 and u.max() <= 0.5, 'the noise must lie in (-1/2, 1/2)'

