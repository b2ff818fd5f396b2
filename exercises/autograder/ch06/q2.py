from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_scale_indexes_example(scale_indexes):
    import torch
    assert callable(scale_indexes), 'define a function scale_indexes(scales, table)'
    table = torch.tensor([1.0, 2.0, 4.0])
    out = scale_indexes(torch.tensor([0.5, 1.0, 1.5, 3.9, 9.0]), table)
    assert torch.is_tensor(out), 'return a tensor of indexes'
    assert out.tolist() == [0, 0, 1, 2, 2], f'expected [0, 0, 1, 2, 2], got {out.tolist()}'

@test_case(points=None, hidden=True)
def test_scale_indexes_reference(scale_indexes):
    import torch
    from lic_teach.entropy_models import GaussianConditional
    torch.manual_seed(5)
    model = GaussianConditional()
    scales = torch.exp(torch.randn(2, 3, 5, 5) * 2).clamp_min(0.11)
    out = scale_indexes(scales, model.scale_table)
    assert out.shape == scales.shape, 'the indexes must be shaped like the scales'
    assert torch.equal(out.long(), model.build_indexes(scales).long()), "differs from the coder's lookup"

