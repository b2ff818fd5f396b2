from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_transposed_conv_macs_example(transposed_conv_macs):
    assert callable(transposed_conv_macs), 'define transposed_conv_macs(in_channels, out_channels, kernel_size, height, width)'
    assert transposed_conv_macs(2, 3, 5, 4, 4) == 4 * 4 * 2 * 3 * 25, 'count input positions x in x out x kernel taps'

