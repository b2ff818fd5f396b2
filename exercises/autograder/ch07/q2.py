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

@test_case(points=None, hidden=True)
def test_anchor_properties(anchor_positions):
    import torch
    from lic_teach.models.context import anchor_mask
    for height, width in [(5, 4), (8, 8), (1, 7), (7, 1)]:
        anchors = anchor_positions(height, width).bool()
        assert torch.equal(anchors, anchor_mask(height, width)), f'wrong anchors for {height}x{width}'

