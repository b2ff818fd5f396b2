from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_loss_example(rate_distortion_loss):
    import torch
    assert callable(rate_distortion_loss), 'define a function rate_distortion_loss(output, x, lmbda)'
    x = torch.zeros(1, 3, 2, 2)
    output = {'x_hat': x + 1 / 255, 'likelihoods': {'y': torch.full((1, 1, 1, 1), 0.25)}}
    loss = rate_distortion_loss(output, x, 0.5)
    assert torch.is_tensor(loss), 'return a tensor, so that the loss can be differentiated'
    assert abs(float(loss) - 1.0) < 1e-05, f'0.5 * 255^2 * (1/255)^2 + 2 bits / 4 pixels = 1.0, got {float(loss)}'

