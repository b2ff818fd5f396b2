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

@test_case(points=None, hidden=True)
def test_babai_is_the_books(babai):
    import torch
    from lic_teach import lattices
    generator = torch.Generator().manual_seed(7)
    for n in (2, 3, 8):
        basis = torch.randn(n, n, generator=generator, dtype=torch.float64) + 2 * torch.eye(n, dtype=torch.float64)
        y = 4 * torch.randn(50, n, generator=generator, dtype=torch.float64)
        mine = babai(y, basis)
        assert mine.shape == y.shape, 'one lattice point per row'
        assert torch.allclose(mine, lattices.babai(y, basis)), f'n={n}: not round(y B^-1) B'

