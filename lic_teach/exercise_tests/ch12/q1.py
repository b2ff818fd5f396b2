from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_bd_rate_example(bd_rate):
    assert callable(bd_rate), 'define bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test)'
    rates, psnrs = ([0.25, 0.5, 1.0, 2.0], [28.0, 31.0, 34.0, 37.0])
    same = bd_rate(rates, psnrs, rates, psnrs)
    assert isinstance(same, float), 'return a float'
    assert abs(same) < 1e-09, f'a curve against itself: 0%, got {same}'
    half = bd_rate(rates, psnrs, [r / 2 for r in rates], psnrs)
    assert abs(half + 50) < 1e-06, f'half the rate at every PSNR: -50%, got {half:.3f}%'

