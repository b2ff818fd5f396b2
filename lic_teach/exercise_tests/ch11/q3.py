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

