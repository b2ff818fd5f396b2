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

@test_case(points=None, hidden=True)
def test_bd_rate_is_the_books(bd_rate):
    import numpy as np
    from lic_teach import metrics
    generator = np.random.default_rng(12)
    for trial in range(8):
        curves = []
        for _ in range(2):
            n = int(generator.integers(4, 7))
            psnr = 27 + generator.uniform(-1.5, 1.5) + np.cumsum(generator.uniform(0.5, 3.0, n))
            rate = np.exp(np.cumsum(generator.uniform(0.1, 0.9, n)) - 2.5 + generator.uniform(-0.3, 0.3))
            shuffle = generator.permutation(n)
            curves += [list(rate[shuffle]), list(psnr[shuffle])]
        mine, expected = (bd_rate(*curves), metrics.bd_rate(*curves))
        assert np.isclose(mine, expected, rtol=1e-06, atol=1e-09), f'curves {trial}: expected {expected:.4f}%, got {mine:.4f}%'
    ra = [0.31, 0.52, 0.97, 1.61, 2.7]
    qa = [27.2, 30.1, 33.4, 35.9, 38.3]
    mine = bd_rate(ra, qa, [0.8 * r for r in ra], qa)
    assert abs(mine + 20) < 1e-06, f"0.8 times the anchor's rate at every PSNR is -20%, got {mine:.3f}% (exp of the mean log gap)"

