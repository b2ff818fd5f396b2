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

@test_case(points=None, hidden=True)
def test_student_codec_decodes_with_the_student(student_codec):
    import torch
    from lic_teach.data import sample_images
    from lic_teach.distillation import student_synthesis, with_student
    from lic_teach.models import FactorizedPrior
    torch.manual_seed(3)
    teacher = FactorizedPrior(8, 12).eval()
    x = sample_images('test')['astronaut'][:, 40:88, 40:72]
    data = teacher.compress(x)
    before = teacher.decompress(data)
    g_s = student_synthesis(12, (6,), (8, 2)).eval()
    codec = student_codec(teacher, g_s)
    assert torch.equal(codec.decompress(data), with_student(teacher, g_s).decompress(data)), "decode with the student's g_s"
    assert torch.equal(teacher.decompress(data), before), 'the teacher must be left unchanged'

