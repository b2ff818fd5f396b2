from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_straight_through_example(straight_through_round):
    import torch
    assert callable(straight_through_round), 'define a function straight_through_round(y)'
    y = torch.tensor([0.2, 1.7, -2.4], requires_grad=True)
    out = straight_through_round(y)
    assert torch.is_tensor(out) and torch.equal(out.detach(), torch.round(y.detach())), 'the values must be rounded'
    out.sum().backward()
    assert y.grad is not None and torch.allclose(y.grad, torch.ones(3)), f'the gradient must be 1, got {y.grad}'

