from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_measured_gap_types(real_bits, noise_bits, gap_percent):
    for name, value in [('real_bits', real_bits), ('noise_bits', noise_bits), ('gap_percent', gap_percent)]:
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert abs(gap_percent - 100 * (noise_bits - real_bits) / real_bits) < 1e-06, 'gap_percent must follow from the two rates'

