from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_rdo_examples(rdo_choice):
    import torch
    assert callable(rdo_choice), 'define a function rdo_choice(y, bits_floor, bits_ceil, weight)'
    y = torch.tensor([0.6, 0.6, 2.2])
    zero = torch.zeros(3)
    out = rdo_choice(y, zero, zero, 1.0)
    assert torch.is_tensor(out) and torch.equal(out, torch.tensor([1.0, 1.0, 2.0])), f'equal bits: round, got {out}'
    out = rdo_choice(y, torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.1, 5.0, 0.0]), 1.0)
    assert torch.equal(out, torch.tensor([1.0, 0.0, 2.0])), f'an expensive ceil should lose, got {out}'

@test_case(points=None, hidden=True)
def test_rdo_weight_matters(rdo_choice):
    import torch
    torch.manual_seed(3)
    y = torch.randn(2000) * 3
    bits_floor, bits_ceil = (torch.rand(2000) * 4, torch.rand(2000) * 4)
    for weight in (0.2, 30.0):
        floor = torch.floor(y)
        costs = torch.stack([weight * (y - floor) ** 2 + bits_floor, weight * (y - floor - 1) ** 2 + bits_ceil])
        expected = floor + (costs[1] < costs[0]).float()
        assert torch.equal(rdo_choice(y, bits_floor, bits_ceil, weight), expected), f'wrong choices at weight {weight}'

