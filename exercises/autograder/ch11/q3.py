from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_second_moment_example(second_moment):
    import torch
    assert callable(second_moment), 'define second_moment(basis, quantize, count, generator)'
    g = second_moment(torch.eye(3, dtype=torch.float64), torch.round, 50000, torch.Generator().manual_seed(0))
    assert isinstance(g, float), 'return a float'
    assert abs(g - 1 / 12) < 0.002, f"the cube's G is 1/12 = 0.0833, got {g:.4f}"

@test_case(points=None, hidden=True)
def test_second_moment_of_the_classical_lattices(second_moment):
    import torch
    from lic_teach import lattices
    for name in ('A2', 'D4', 'E8'):
        lattice = lattices.CLASSICAL[name]().scaled(1.7)
        g = second_moment(lattice.basis, lattice.quantize, 100000, torch.Generator().manual_seed(1))
        assert abs(g - lattices.KNOWN_G[name]) < 0.0006, f'{name} (scaled by 1.7): G is {lattices.KNOWN_G[name]:.5f}, got {g:.5f}'

