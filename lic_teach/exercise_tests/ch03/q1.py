from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_gdn_examples(gdn):
    import torch
    assert callable(gdn), 'define a function gdn(x, beta, gamma)'
    x = torch.full((1, 2, 1, 1), 2.0)
    y = gdn(x, torch.tensor([1.0, 1.0]), torch.zeros(2, 2))
    assert torch.is_tensor(y) and y.shape == x.shape, 'gdn must return a tensor shaped like x'
    assert torch.allclose(y, x), 'with beta = 1 and gamma = 0, GDN is the identity'
    y = gdn(x, torch.tensor([0.0, 0.0]), torch.eye(2))
    assert torch.allclose(y, torch.ones_like(x)), 'with beta = 0 and gamma = I, each x_i is divided by |x_i|'

