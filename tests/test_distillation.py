"""Small decoders taught by a large one: students that read the teacher's bytes, the
distillation losses on known inputs, and decoder cost counted against the analytic one.
"""

import math

import pytest
import torch
from torch import nn

from lic_teach import complexity, data, distillation
from lic_teach.models import FactorizedPrior
from lic_teach.models.factorized import synthesis_transform

M, N = 12, 8


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    model = FactorizedPrior(N, M).eval()
    model.update()
    return model


@pytest.fixture(scope="module")
def image():
    return data.sample_images("test")["astronaut"][
        :, 100:140, 60:108
    ]  # 40 x 48: padded to 48 x 48


def test_a_full_width_student_is_the_teachers_architecture():
    torch.manual_seed(1)
    student = distillation.student_synthesis(M, (N, N, N), (2, 2, 2, 2))
    reference = synthesis_transform(N, M)
    reference.load_state_dict(student.state_dict(), strict=True)
    latent = torch.randn(1, M, 3, 5)
    assert torch.equal(student(latent), reference(latent))
    two_layer = distillation.student_synthesis(M, (6,), (8, 2))
    assert two_layer(latent).shape == (1, 3, 48, 80)
    assert len(two_layer) == 3


@pytest.mark.parametrize(
    "channels, strides", [((8, 8), (2, 2, 2, 2)), ((8,), (4, 2)), ((0,), (8, 2))]
)
def test_a_student_that_cannot_make_the_image_is_refused(channels, strides):
    with pytest.raises(ValueError):
        distillation.student_synthesis(M, channels, strides)


def test_the_student_codec_writes_the_teachers_bytes_and_decodes_them_with_the_student(
    teacher, image
):
    torch.manual_seed(2)
    student = distillation.student_synthesis(M, (4,), (8, 2)).eval()
    codec = distillation.with_student(teacher, student)
    blob = teacher.compress(image)
    assert codec.compress(image) == blob
    y_hat, _, _ = distillation.teacher_targets(teacher, data.pad_to(image[None], 16))
    with torch.no_grad():
        expected = student(y_hat)[0, :, :40, :48].clamp(0, 1)
    assert torch.equal(codec.decompress(blob), expected)
    assert not torch.equal(codec.decompress(blob), teacher.decompress(blob))
    torch.manual_seed(3)
    other = FactorizedPrior(N, M).eval()  # same architecture, other weights and tables
    with pytest.raises(ValueError, match="other weights"):
        codec.decompress(other.compress(image))


def test_a_student_of_the_wrong_latent_width_is_a_clear_error(teacher):
    with pytest.raises(ValueError, match="12 latent channels"):
        distillation.with_student(
            teacher, distillation.student_synthesis(M + 1, (4,), (8, 2))
        )
    with pytest.raises(ValueError, match="not an image"):
        distillation.with_student(
            teacher, nn.Sequential(nn.ConvTranspose2d(M, 3, 4, stride=4))
        )


def test_distillation_loss_on_known_inputs():
    student, teacher_out, truth = (
        torch.zeros(1, 3, 4, 4),
        torch.ones(1, 3, 4, 4),
        torch.full((1, 3, 4, 4), 2.0),
    )
    assert distillation.distillation_loss(student, teacher_out).item() == pytest.approx(
        1.0
    )
    loss = distillation.distillation_loss(
        student,
        teacher_out,
        truth,
        teacher_weight=1.0,
        truth_weight=0.5,
        feature_loss=torch.tensor(3.0),
        feature_weight=2.0,
    )
    assert loss.item() == pytest.approx(1.0 + 0.5 * 4.0 + 2.0 * 3.0)
    with pytest.raises(ValueError, match="needs the ground-truth"):
        distillation.distillation_loss(student, teacher_out, truth_weight=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        distillation.distillation_loss(student, teacher_out, teacher_weight=-1.0)


def test_feature_adapters_pair_stages_of_equal_resolution(teacher):
    fewer = distillation.FeatureAdapters(
        distillation.student_synthesis(M, (4, 4), (4, 2, 2)), teacher.g_s, M
    )
    assert fewer.pairs == [
        (0, 1),
        (1, 2),
    ]  # 4x and 8x the latent: the teacher's 2nd and 3rd
    assert [a.weight.shape[:2] for a in fewer.adapters] == [(N, 4), (N, 4)]
    two_layer = distillation.FeatureAdapters(
        distillation.student_synthesis(M, (6,), (8, 2)), teacher.g_s, M
    )
    assert two_layer.pairs == [(0, 2)]
    zeroed = distillation.FeatureAdapters(teacher.g_s, teacher.g_s, M)
    for adapter in zeroed.adapters:  # each student feature adapted to zero
        nn.init.zeros_(adapter.weight)
        nn.init.zeros_(adapter.bias)
    ones = [torch.ones(1, N, 4, 4)] * 3
    targets = [k * torch.ones(1, N, 4, 4) for k in (1.0, 2.0, 3.0)]
    assert zeroed(ones, targets).item() == pytest.approx((1 + 4 + 9) / 3), (
        "the mean over the three stages of each stage's mean squared error"
    )


def test_distilling_brings_the_student_towards_the_teacher(teacher):
    images = data.sample_images("train")["chelsea"][:, :64, :64]
    crops = [
        images[:, :32, :32],
        images[:, 32:, 32:],
        images[:, :32, 32:],
        images[:, 32:, :32],
    ]
    torch.manual_seed(4)
    student = distillation.student_synthesis(M, (4, 4), (4, 2, 2))
    x = torch.stack(crops)
    y_hat, target, _ = distillation.teacher_targets(teacher, x)
    with torch.no_grad():
        before = torch.mean((student(y_hat) - target) ** 2).item()
    codec, history = distillation.distill(
        teacher,
        student,
        [x],
        steps=40,
        batch_size=4,
        feature_weight=0.1,
        progress=False,
    )
    with torch.no_grad():
        after = torch.mean((codec.g_s(y_hat) - target) ** 2).item()
    assert after < 0.5 * before
    assert len(history) == 40
    assert history[-1]["psnr"] > 0
    assert not any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.parameters()
    )


def test_macs_are_counted_as_the_analytic_formulas_say():
    x = torch.zeros(1, 4, 6, 7)
    conv = nn.Conv2d(4, 3, 5, stride=2, padding=2)  # output 3 x 4
    assert complexity.macs(conv, x) == 3 * 4 * 3 * 4 * 25
    deconv = nn.ConvTranspose2d(4, 3, 5, stride=2, padding=2, output_padding=1)
    assert (
        complexity.macs(deconv, x) == 6 * 7 * 4 * 3 * 25
    )  # every input pixel, every tap
    h, w = 3, 5
    per_latent = (
        M * N * 25
        + 4 * (N * N + N * N * 25)
        + 16 * (N * N + N * N * 25)
        + 64 * (N * N + N * 3 * 25)
    )
    assert complexity.macs_per_pixel(
        synthesis_transform(N, M), (1, M, h, w)
    ) == pytest.approx(per_latent / 256)
    with pytest.raises(ValueError, match="pixel count"):
        complexity.macs_per_pixel(
            nn.Sequential(nn.Conv2d(M, 2, 1), nn.Flatten()), (1, M, h, w)
        )


def test_symbol_pmf_is_the_coders_likelihood_with_the_tails_folded_in():
    from lic_teach.entropy_models import GaussianConditional

    scales = torch.tensor([0.05, 0.5, 3.0, 40.0])
    pmf = distillation.symbol_pmf(scales, reach=6)
    assert pmf.shape == (4, 13)
    assert torch.allclose(pmf.sum(-1), torch.ones(4), atol=1e-6)
    k = torch.arange(-5, 6, dtype=torch.float32)
    likelihood = GaussianConditional().likelihood(
        k.expand(4, -1), scales[:, None].expand(-1, 11)
    )
    assert torch.allclose(pmf[:, 1:-1], likelihood.clamp_min(1e-12), atol=1e-7)
    assert pmf[3, 0] > pmf[3, 1]  # a wide Gaussian's tail lands in the end bin


def test_soft_target_kl_is_zero_for_equal_scales_and_the_gaussian_kl_for_wide_ones():
    a, b = torch.full((100,), 4.0), torch.full((100,), 5.0)
    assert distillation.soft_target_kl(a, a).item() == pytest.approx(0.0, abs=1e-9)
    continuous = (math.log(5 / 4) + 16 / (2 * 25) - 0.5) / math.log(
        2
    )  # KL(N(0,16) || N(0,25)), bits
    assert distillation.soft_target_kl(a, b).item() == pytest.approx(
        continuous, rel=0.03
    )
    with pytest.raises(ValueError, match="shapes"):
        distillation.soft_target_kl(a, b[:10])


@pytest.fixture(scope="module")
def hyper_teacher():
    from lic_teach.models import ScaleHyperprior

    torch.manual_seed(5)
    model = ScaleHyperprior(8, 12).eval()
    with torch.no_grad():  # scales from about 1 to 4, varying with z, as after training
        model.h_s[-2].weight.mul_(20)
        model.h_s[-2].bias.fill_(2.0)
    model.update()
    return model


def test_a_student_hyper_synthesis_writes_its_own_bitstream(hyper_teacher, image):
    from lic_teach.models import MeanScaleHyperprior

    student = distillation.StudentHyperprior.from_teacher(hyper_teacher, width=4)
    assert torch.equal(student.g_a[0].weight, hyper_teacher.g_a[0].weight)
    assert student.h_s[0].weight.shape[1] == 4
    blob = student.compress(image)
    assert student.decompress(blob).shape == image.shape
    with pytest.raises(ValueError, match="written by StudentHyperprior"):
        hyper_teacher.decompress(blob)
    with pytest.raises(ValueError, match="must be a ScaleHyperprior"):
        distillation.StudentHyperprior.from_teacher(MeanScaleHyperprior(8, 12), width=4)


def test_a_student_with_the_teachers_h_s_costs_nothing_and_training_lowers_the_kl(
    hyper_teacher,
):
    x = data.pad_to(data.sample_images("train")["coffee"][None, :, :64, :128], 64)
    twin = distillation.StudentHyperprior.from_teacher(hyper_teacher, width=8)
    twin.h_s.load_state_dict(hyper_teacher.h_s.state_dict())
    twin.update(force=True)
    assert distillation.rate_excess(hyper_teacher, twin, x) == {
        "predicted": 0.0,
        "ideal": 0.0,
        "real": 0,
        "latents": 12 * 4 * 8,
    }
    torch.manual_seed(6)
    student = distillation.StudentHyperprior.from_teacher(hyper_teacher, width=4)
    crops = [x[0, :, :, i : i + 64] for i in (0, 32, 64)]
    z_hat, target = distillation.teacher_scales(hyper_teacher, torch.stack(crops))
    before = distillation.soft_target_kl(target, student.h_s(z_hat).detach()).item()
    history = distillation.distill_hyper_synthesis(
        hyper_teacher,
        student,
        [torch.stack(crops)],
        steps=30,
        batch_size=3,
        lr=1e-2,
        progress=False,
    )
    assert history[-1]["loss"] < 0.5 * before
    excess = distillation.rate_excess(hyper_teacher, student, x)
    assert excess["predicted"] >= 0
    assert abs(excess["real"] - excess["ideal"]) <= 64 + 0.05 * abs(excess["ideal"])


def test_pruning_removes_exactly_the_channels_it_zeroes_and_saves_macs():
    torch.manual_seed(7)
    g_s = distillation.student_synthesis(M, (6, 6, 6), (2, 2, 2, 2)).eval()
    y_hat = torch.round(3 * torch.randn(2, M, 2, 2))
    with torch.no_grad():
        target = g_s(y_hat) + 0.01 * torch.randn(2, 3, 32, 32)
        same, _ = distillation.prune_channels(g_s, y_hat, target, keep=1.0)
        assert torch.allclose(same(y_hat), g_s(y_hat))
        pruned, kept = distillation.prune_channels(g_s, y_hat, target, keep=0.5)
        assert sorted(kept) == distillation.hidden_stages(g_s) == [0, 2, 4]
        assert all(len(k) == 3 for k in kept.values())
        masks = {
            i: torch.zeros(6).index_fill_(0, torch.tensor(k), 1.0)
            for i, k in kept.items()
        }
        assert torch.allclose(
            pruned(y_hat), distillation._with_masks(g_s, y_hat, masks), atol=1e-6
        )
    importance = distillation.channel_importance(g_s, y_hat, target)
    for i, k in kept.items():  # the kept channels are the costliest to lose
        assert (
            importance[i][k].min()
            >= importance[i][[c for c in range(6) if c not in k]].max()
        )
    assert complexity.macs_per_pixel(
        pruned, (1, M, 2, 2)
    ) < 0.6 * complexity.macs_per_pixel(g_s, (1, M, 2, 2))
    with pytest.raises(ValueError, match="keep"):
        distillation.prune_channels(g_s, y_hat, target, keep=0.0)


def test_quantized_weights_take_their_bytes_and_stay_close():
    torch.manual_seed(8)
    g_s = distillation.student_synthesis(M, (4,), (8, 2))
    quantized, size = distillation.quantize_weights(g_s, bits=8)
    counts = [p.numel() for p in g_s.parameters()]
    assert size == sum(counts) + 4 * len(counts)
    for original, rounded in zip(g_s.parameters(), quantized.parameters()):
        assert len(torch.unique(rounded)) <= 255
        assert (original - rounded).abs().max() <= original.abs().max() / 127 / 2 + 1e-7
    assert next(g_s.parameters()).data_ptr() != next(quantized.parameters()).data_ptr()
    with pytest.raises(ValueError, match="bits"):
        distillation.quantize_weights(g_s, bits=1)
