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

@test_case(points=None, hidden=True)
def test_likelihood_reference(gaussian_likelihood):
    import torch
    from lic_teach.entropy_models import GaussianConditional
    torch.manual_seed(7)
    y_hat = torch.round(torch.randn(500) * 4)
    means, scales = (torch.randn(500), torch.rand(500) * 5)
    scales[:20] = 0.0
    expected = GaussianConditional().likelihood(y_hat, scales, means)
    assert torch.allclose(gaussian_likelihood(y_hat, scales, means), expected, rtol=0.0001, atol=1e-09), 'differs from GaussianConditional'

