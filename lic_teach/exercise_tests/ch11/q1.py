from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_babai_example(babai):
    import torch
    assert callable(babai), 'define babai(y, basis)'
    basis = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    y = torch.tensor([[0.9, 0.2], [-3.2, 0.3]])
    expected = torch.tensor([[0.0, 0.0], [-4.0, 0.5]])
    assert torch.allclose(babai(y, basis), expected), f'expected {expected.tolist()}'

