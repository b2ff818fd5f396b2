from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_transposed_conv_macs_example(transposed_conv_macs):
    assert callable(transposed_conv_macs), 'define transposed_conv_macs(in_channels, out_channels, kernel_size, height, width)'
    assert transposed_conv_macs(2, 3, 5, 4, 4) == 4 * 4 * 2 * 3 * 25, 'count input positions x in x out x kernel taps'

@test_case(points=None, hidden=True)
def test_transposed_conv_macs_counted(transposed_conv_macs):
    import torch
    from lic_teach.complexity import macs
    for cin, cout, k, stride, h, w in [(4, 3, 5, 2, 6, 7), (8, 2, 9, 4, 3, 5), (1, 1, 3, 1, 10, 2)]:
        layer = torch.nn.ConvTranspose2d(cin, cout, k, stride=stride)
        assert transposed_conv_macs(cin, cout, k, h, w) == macs(layer, torch.zeros(1, cin, h, w)), f'wrong count for {cin}->{cout}, kernel {k}, stride {stride}, input {h}x{w}'

