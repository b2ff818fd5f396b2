from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_soft_round_examples(soft_round):
    import torch
    assert callable(soft_round), 'define a function soft_round(y, alpha)'
    k = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(soft_round(k, 4.0), k, atol=1e-05), 's(k) must equal k at integers'
    assert torch.allclose(soft_round(torch.tensor([0.5]), 4.0), torch.tensor([0.5])), 's(1/2) must be 1/2'
    y = torch.tensor([0.2, 0.8, -1.3])
    assert torch.allclose(soft_round(y, 50.0), torch.round(y), atol=0.001), 'large alpha must round'

