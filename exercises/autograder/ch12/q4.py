from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_bd_rate_444_measured(bd_rate_444):
    import math
    assert isinstance(bd_rate_444, (int, float)), f'bd_rate_444 should be a number, got {bd_rate_444!r}'
    assert math.isfinite(bd_rate_444), 'a finite percentage'

@test_case(points=None, hidden=True)
def test_bd_rate_444_is_the_books(bd_rate_444):
    from lic_teach import baselines, data, metrics
    curves = {}
    for subsampling in (0, 2):
        bpp = {q: 0.0 for q in (20, 40, 60, 80, 90)}
        psnr = dict(bpp)
        originals = list(data.held_out(size=256).values())
        for x in originals:
            x8 = (x.clamp(0, 1) * 255).round() / 255
            for q in bpp:
                decoded, size = baselines.pillow_roundtrip(x8, 'JPEG', q, subsampling=subsampling)
                bpp[q] += metrics.bpp(size, x8.shape[-2] * x8.shape[-1]) / len(originals)
                psnr[q] += metrics.psnr(x8, decoded) / len(originals)
        curves[subsampling] = (list(bpp.values()), list(psnr.values()))
    expected = metrics.bd_rate(*curves[2], *curves[0])
    assert abs(bd_rate_444 - expected) < 0.5, f'expected {expected:+.2f}% (4:4:4 the test, 4:2:0 the anchor, in percent), got {bd_rate_444:+.2f}%'

