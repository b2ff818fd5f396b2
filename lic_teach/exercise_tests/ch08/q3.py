from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_student_codec_example(student_codec):
    import torch
    from lic_teach.data import sample_images
    from lic_teach.distillation import student_synthesis
    from lic_teach.models import FactorizedPrior
    assert callable(student_codec), 'define a function student_codec(teacher, g_s)'
    torch.manual_seed(0)
    teacher = FactorizedPrior(8, 12).eval()
    x = sample_images('test')['flower'][:, :32, :32]
    codec = student_codec(teacher, student_synthesis(12, (4,), (8, 2)).eval())
    assert codec.compress(x) == teacher.compress(x), "the student's codec must write the teacher's bytes"

