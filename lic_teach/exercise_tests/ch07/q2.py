from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_anchor_example(anchor_positions):
    import torch
    assert callable(anchor_positions), 'define a function anchor_positions(height, width)'
    anchors = anchor_positions(2, 3)
    expected = torch.tensor([[True, False, True], [False, True, False]])
    assert torch.is_tensor(anchors) and torch.equal(anchors.bool(), expected), f'expected\n{expected}\ngot\n{anchors}'

