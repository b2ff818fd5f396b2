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
def test_timings_plausible(serial_seconds, checkerboard_seconds, slowdown):
    assert serial_seconds < 60 and checkerboard_seconds < 60, 'seconds, not milliseconds, please'
    assert slowdown > 1.5, '256 positions one after another should be much slower than two passes'

