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

