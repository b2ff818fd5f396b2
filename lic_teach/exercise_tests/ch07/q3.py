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

