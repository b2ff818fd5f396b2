from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_distillation_loss_example(distillation_loss):
    import torch
    assert callable(distillation_loss), 'define a function distillation_loss(x_hat_student, x_hat_teacher, x, alpha)'
    student = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = distillation_loss(student, torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), 2.0), 0.25)
    assert torch.is_tensor(loss) and loss.dim() == 0, 'return one number, as a tensor'
    assert abs(float(loss) - (0.25 * 1.0 + 0.75 * 4.0)) < 1e-06, f'expected 3.25, got {float(loss)}'

