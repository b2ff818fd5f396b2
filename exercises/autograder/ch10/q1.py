from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_stp_loss_example(stp_loss):
    import torch
    assert callable(stp_loss), 'define stp_loss(x, x_hat, y, y_rectified, lmbda, alpha)'
    x, x_hat = (torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))
    y, y_rectified = (torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 2.0))
    loss = stp_loss(x, x_hat, y, y_rectified, 0.01, 0.5)
    expected = 0.01 * 255 ** 2 * 0.01 + 0.5 * 4.0
    assert torch.is_tensor(loss) and loss.dim() == 0, 'return a scalar tensor'
    assert abs(loss.item() - expected) < 0.001, f'expected {expected:.4f}, got {loss.item():.4f}'

@test_case(points=None, hidden=True)
def test_stp_loss_is_the_books(stp_loss):
    import torch
    from lic_teach import rectifier
    torch.manual_seed(3)
    for shape, latent in [((2, 3, 32, 48), (2, 8, 2, 3)), ((1, 3, 16, 16), (1, 5, 1, 1))]:
        x, x_hat = (torch.rand(shape), torch.rand(shape))
        y = 3 * torch.randn(latent)
        y_rectified = torch.round(y).requires_grad_()
        for lmbda, alpha in [(0.0067, 0.0), (0.025, 10.0), (0.1, 0.3)]:
            expected, _ = rectifier.stp_loss(x, x_hat, y, y_rectified, lmbda, alpha)
            loss = stp_loss(x, x_hat, y, y_rectified, lmbda, alpha)
            assert torch.allclose(loss, expected, rtol=1e-05), f'lambda={lmbda}, alpha={alpha}: expected {expected.item():.5f}'
        loss.backward()
        assert y_rectified.grad is not None and y_rectified.grad.abs().sum() > 0, "gradients must reach QR's output"

