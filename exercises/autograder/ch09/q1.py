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

@test_case(points=None, hidden=True)
def test_jpeg_like_synthesis_patches(jpeg_like_synthesis):
    import torch
    torch.manual_seed(0)
    for M in (4, 13):
        layer = jpeg_like_synthesis(M)
        with torch.no_grad():
            torch.nn.init.uniform_(layer.weight, 0.5, 1.0)
            zero = torch.zeros(1, M, 4, 5)
            impulse = zero.clone()
            impulse[0, M - 1, 2, 3] = 1.0
            touched = (layer(impulse) - layer(zero)).abs().sum(dim=1)[0] > 0
        rows, cols = torch.nonzero(touched, as_tuple=True)
        assert layer(zero).shape == (1, 3, 64, 80), f'M={M}: wrong output size'
        assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (31, 48, 47, 64), 'one latent vector should paint an 18x18 patch reaching one pixel past its 16x16 cell on each side'

