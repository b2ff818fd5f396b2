from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_block_example(ResidualBlock):
    import torch
    block = ResidualBlock(6)
    assert isinstance(block, torch.nn.Module), 'ResidualBlock should be a torch.nn.Module'
    f = torch.randn(2, 6, 5, 7)
    assert block(f).shape == f.shape, 'the block keeps the channels and the size'

