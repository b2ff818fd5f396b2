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

@test_case(points=None, hidden=True)
def test_macs_are_the_decoders(teacher_macs, student_macs, saving):
    from lic_teach import complexity, zoo
    from lic_teach.distillation import student_synthesis
    teacher = zoo.load('factorized', 2)
    expected_teacher = complexity.macs_per_pixel(teacher.g_s, (1, teacher.M, 16, 16))
    expected_student = complexity.macs_per_pixel(student_synthesis(teacher.M, (12,), (8, 2)), (1, teacher.M, 16, 16))
    assert abs(teacher_macs - expected_teacher) < 1e-06 * expected_teacher, "teacher_macs is not the teacher's g_s"
    assert abs(student_macs - expected_student) < 1e-06 * expected_student, "student_macs is not the student's"
    assert saving > 1, 'the student is the cheaper decoder'

