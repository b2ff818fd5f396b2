from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_closest_dn_example(closest_dn):
    import torch
    assert callable(closest_dn), 'define closest_dn(y)'
    y = torch.tensor([[0.6, 0.1, 0.0, 0.0], [0.9, 1.2, 0.4, 0.0]])
    expected = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert torch.equal(closest_dn(y), expected), f'expected {expected.tolist()}'

