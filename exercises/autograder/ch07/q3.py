from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_masked_context_shape(masked_context):
    import torch
    assert callable(masked_context), 'define a function masked_context(y_hat, weight)'
    out = masked_context(torch.ones(1, 2, 4, 4), torch.ones(3, 2, 5, 5))
    assert torch.is_tensor(out) and out.shape == (1, 3, 4, 4), f"expected shape (1, 3, 4, 4), got {getattr(out, 'shape', out)}"
    assert float(out[0, 0, 0, 0]) == 0.0, 'the first latent in raster order has no context: its output must be 0'

@test_case(points=None, hidden=True)
def test_masked_context_is_causal(masked_context):
    import torch
    torch.manual_seed(2)
    weight = torch.randn(4, 3, 5, 5)
    y = torch.randn(1, 3, 6, 6)
    base = masked_context(y, weight)
    changed = y.clone()
    changed[..., 3, 2] += 10.0
    diff = (masked_context(changed, weight) - base).abs().sum(dim=(0, 1))
    order = torch.arange(36).reshape(6, 6)
    assert diff[order <= order[3, 2]].max() < 0.0001, 'outputs at or before (3, 2) must not see the latent at (3, 2)'
    assert diff[order > order[3, 2]].max() > 0.001, 'later outputs should use the latent at (3, 2) as context'

