from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_scale_table_example(scale_table):
    import torch
    assert callable(scale_table), 'define a function scale_table(minimum, maximum, levels)'
    table = scale_table(1.0, 100.0, 3)
    assert torch.is_tensor(table), 'return a tensor'
    assert torch.allclose(table.float(), torch.tensor([1.0, 10.0, 100.0]), rtol=1e-05), f'expected 1, 10, 100, got {table}'

