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

@test_case(points=None, hidden=True)
def test_soft_round_matches_reference(soft_round):
    import torch
    from lic_teach.quantization import soft_round as reference
    torch.manual_seed(12)
    y = torch.randn(1000) * 4
    for alpha in (0.5, 2.0, 9.0):
        assert torch.allclose(soft_round(y, alpha), reference(y, alpha), atol=1e-05), f'wrong at alpha={alpha}'
    y = torch.tensor([1.0 - 0.0001, 1.0 + 0.0001])
    assert float((soft_round(y, 3.0)[1] - soft_round(y, 3.0)[0]).abs()) < 0.01, 's must be continuous at integers'

