from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_jpeg_like_synthesis_example(jpeg_like_synthesis):
    import torch
    assert callable(jpeg_like_synthesis), 'define a function jpeg_like_synthesis(M)'
    layer = jpeg_like_synthesis(8)
    assert isinstance(layer, torch.nn.ConvTranspose2d), 'return one torch.nn.ConvTranspose2d'
    assert layer(torch.zeros(1, 8, 2, 3)).shape == (1, 3, 32, 48), 'a 2x3 latent should decode to 32x48 pixels'

