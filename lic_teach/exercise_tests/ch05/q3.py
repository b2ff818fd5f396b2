from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_decoder_parameters(decoder_parameters):
    from lic_teach.models import FactorizedPrior
    assert callable(decoder_parameters), 'define a function decoder_parameters(model)'
    model = FactorizedPrior(N=8, M=8)
    chosen = decoder_parameters(model)
    assert {id(p) for p in chosen} == {id(p) for p in model.g_s.parameters()}, "return exactly g_s's parameters"
    assert not any((p.requires_grad for p in model.g_a.parameters())), 'the encoder g_a must be frozen'

