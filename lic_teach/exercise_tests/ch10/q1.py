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

