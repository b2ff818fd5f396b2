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

