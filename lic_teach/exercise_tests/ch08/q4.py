from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_macs_measured(teacher_macs, student_macs, saving):
    for name, value in [('teacher_macs', teacher_macs), ('student_macs', student_macs), ('saving', saving)]:
        assert isinstance(value, (int, float)) and value > 0, f'{name} should be a positive number, got {value!r}'
    assert abs(saving - teacher_macs / student_macs) < 1e-06, 'saving must be teacher_macs / student_macs'

