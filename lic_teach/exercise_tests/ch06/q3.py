from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_likelihood_example(gaussian_likelihood):
    import torch
    assert callable(gaussian_likelihood), 'define a function gaussian_likelihood(y_hat, scales, means)'
    p = gaussian_likelihood(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0]))
    assert torch.is_tensor(p) and abs(float(p) - 0.3829) < 0.001, f'P(-1/2 < N(0, 1) < 1/2) = 0.3829, got {p}'
    p = gaussian_likelihood(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert torch.isfinite(p).all() and (p > 0).all(), f'a zero scale must not give nan or 0, got {p}'

