from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_causal_mask_example(causal_mask):
    import torch
    assert callable(causal_mask), 'define a function causal_mask(kernel_size)'
    expected = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = causal_mask(3)
    assert torch.is_tensor(mask) and torch.equal(mask.float(), expected), f'expected\n{expected}\ngot\n{mask}'

@test_case(points=None, hidden=True)
def test_causal_mask_reference(causal_mask):
    import torch
    from lic_teach.models.context import context_mask
    for k in (5, 7):
        assert torch.equal(causal_mask(k).float(), context_mask(k, 'raster')), f'wrong mask for kernel_size={k}'

