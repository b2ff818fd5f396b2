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

@test_case(points=None, hidden=True)
def test_closest_dn_is_exact(closest_dn):
    import itertools
    import torch
    from lic_teach import lattices
    generator = torch.Generator().manual_seed(11)
    for n in (2, 4, 5):
        y = 3 * torch.randn(300, n, generator=generator, dtype=torch.float64)
        mine = closest_dn(y)
        assert mine.shape == y.shape
        assert torch.equal(mine, mine.round()) and (mine.sum(dim=1) % 2 == 0).all(), 'points of D_n: even sums'
        assert torch.allclose(mine, lattices.closest_dn(y)), f'n={n}: not the nearest point of D_n'
        offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=n)), dtype=torch.float64)
        candidates = torch.round(y)[:, None, :] + offsets[None]
        even = candidates.sum(dim=2) % 2 == 0
        distance = ((candidates - y[:, None, :]) ** 2).sum(dim=2).masked_fill(~even, float('inf'))
        assert (((mine - y) ** 2).sum(dim=1) <= distance.min(dim=1).values + 1e-09).all(), 'a nearer point exists'

