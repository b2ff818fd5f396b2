from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_dq_examples(dq_reconstruction):
    import torch
    assert callable(dq_reconstruction), 'define a function dq_reconstruction(k, quantizer)'
    k = torch.tensor([0.0, 1.0, 2.0])
    assert torch.equal(dq_reconstruction(k, 0), k), 'Q0 reconstructs k at k'
    assert torch.equal(dq_reconstruction(k, 1), torch.tensor([0.0, 0.5, 1.5])), 'Q1: 0 -> 0, 1 -> 1/2, 2 -> 3/2'

@test_case(points=None, hidden=True)
def test_dq_matches_reference(dq_reconstruction):
    import torch
    from lic_teach.trellis import dq_levels
    k = torch.arange(-6.0, 7.0)
    for quantizer in (0, 1):
        assert torch.equal(dq_reconstruction(k, quantizer), dq_levels(k, quantizer)), f'Q{quantizer} wrong for negative k?'

