from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_timings(serial_seconds, checkerboard_seconds, slowdown):
    for name, value in [('serial_seconds', serial_seconds), ('checkerboard_seconds', checkerboard_seconds), ('slowdown', slowdown)]:
        assert isinstance(value, (int, float)) and value > 0, f'{name} should be a positive number, got {value!r}'
    assert abs(slowdown - serial_seconds / checkerboard_seconds) < 1e-06, 'slowdown must be serial / checkerboard'

@test_case(points=None, hidden=True)
def test_timings_plausible(serial_seconds, checkerboard_seconds, slowdown, serial, serial_data, checkerboard, checkerboard_data):
    import time
    for name, value, model, data in [('serial_seconds', serial_seconds, serial, serial_data), ('checkerboard_seconds', checkerboard_seconds, checkerboard, checkerboard_data)]:
        start = time.perf_counter()
        model.decompress(data)
        once = time.perf_counter() - start
        assert once / 20 < value < 20 * once, f'{name}: {value:.4g}, but one decode takes {once:.4g} s (seconds, please)'
    assert slowdown > 1.5, '256 positions one after another should be much slower than two passes'

