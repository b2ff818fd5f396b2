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

@test_case(points=None, hidden=True)
def test_block_is_the_books(ResidualBlock):
    import torch
    from lic_teach import rectifier
    torch.manual_seed(5)
    for channels in (4, 16):
        book = rectifier.ResidualBlock(channels)
        mine = ResidualBlock(channels)
        mine.load_state_dict(book.state_dict(), strict=True)
        f = torch.randn(3, channels, 6, 9)
        with torch.no_grad():
            assert torch.allclose(mine(f), book(f), atol=1e-06), f'{channels} channels: a different output'
            for conv in (book.conv1, book.conv2):
                conv.weight.zero_()
                conv.bias.zero_()
            mine.load_state_dict(book.state_dict())
            assert torch.equal(mine(f), f), 'with zero weights the block is the identity (the skip connection)'

