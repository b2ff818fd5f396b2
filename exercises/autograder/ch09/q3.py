from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_sga_sample_example(sga_sample):
    import torch
    assert callable(sga_sample), 'define sga_sample(y, tau, u)'
    y = torch.tensor([0.2, 1.9, -0.7], requires_grad=True)
    u = torch.full((3, 2), 0.5)
    sample = sga_sample(y, 0.5, u)
    assert sample.shape == y.shape, 'one sample per latent value'
    assert ((sample >= torch.floor(y)) & (sample <= torch.floor(y) + 1)).all(), 'a sample lies between floor(y) and floor(y) + 1'
    assert torch.allclose(torch.round(sample), torch.round(y.detach())), 'with equal noise the nearer integer weighs more'
    sample.sum().backward()
    assert y.grad is not None, 'gradients must flow to y'

@test_case(points=None, hidden=True)
def test_sga_sample_is_the_books(sga_sample):
    import torch
    from lic_teach import quantization
    torch.manual_seed(4)
    y = 3 * torch.randn(2, 5, 4, 4)
    for tau in (0.5, 0.1):
        generator = torch.Generator().manual_seed(7)
        expected = quantization.sga(y, tau, generator=generator)
        u = torch.rand(y.shape + (2,), generator=torch.Generator().manual_seed(7)).clamp_min(1e-20)
        assert torch.allclose(sga_sample(y, tau, u), expected, atol=1e-05), f'wrong sample at tau={tau}'

