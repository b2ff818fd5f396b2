from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_freeze_example(freeze_encoder_side):
    import torch
    from lic_teach import rectifier
    from lic_teach.models import FactorizedPrior
    assert callable(freeze_encoder_side), 'define freeze_encoder_side(codec)'
    torch.manual_seed(0)
    codec = rectifier.rectified(FactorizedPrior(8, 12), rectifier.QuantizationRectifier(12, width=8, blocks=1, heads=2))
    trained = freeze_encoder_side(codec)
    assert all((not p.requires_grad for p in codec.g_a.parameters())), 'g_a must be frozen'
    assert all((p.requires_grad for p in codec.g_s.parameters())), 'QR and the synthesis must learn'
    assert len(trained) == len(list(codec.g_s.parameters())), 'return the parameters of g_s'

@test_case(points=None, hidden=True)
def test_freeze_keeps_the_bitstream(freeze_encoder_side):
    import torch
    from lic_teach import data, rectifier
    from lic_teach.models import MeanScaleHyperprior
    torch.manual_seed(1)
    base = MeanScaleHyperprior(8, 12).eval()
    base.update()
    codec = rectifier.rectified(base, rectifier.QuantizationRectifier(12, width=8, blocks=1, heads=2))
    for p in codec.parameters():
        p.requires_grad_(False)
    trained = freeze_encoder_side(codec)
    names = {name for name, p in codec.named_parameters() if p.requires_grad}
    assert names == {name for name, _ in codec.named_parameters() if name.startswith('g_s.')}, 'exactly the parameters of g_s learn (not h_a, h_s or the entropy model)'
    assert {id(p) for p in trained} == {id(p) for p in codec.g_s.parameters()}
    x = data.center_crop(data.held_out()['astronaut'], 64)
    before = codec.compress(x)
    optimizer = torch.optim.Adam([p for p in codec.parameters() if p.requires_grad], lr=0.1)
    loss = codec(x[None])['x_hat'].mean() + sum((-torch.log2(l).sum() for l in codec(x[None])['likelihoods'].values()))
    loss.backward()
    optimizer.step()
    codec.update(force=True)
    assert codec.compress(x) == before, 'after a step of phase 2 the bytes must be the same'

