"""The CPU's stand-in for a second device (``lic_teach.device_check``): models train
and code on it, and each kind of device mistake raises an error that names it."""

import numpy as np
import pytest
import torch

from lic_teach import bitstream, budget, cache, device_check, metrics, seeding
from lic_teach.device_check import DeviceMixError, StandInTensor
from lic_teach.models import FactorizedPrior


@pytest.fixture
def stand_in():
    with device_check.stand_in() as device:
        yield device


def _model(device):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return FactorizedPrior(8, 12).to(device)


def test_a_model_trains_and_codes_on_the_stand_in_as_on_the_cpu(stand_in):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    on_cpu, moved = _model("cpu"), _model(stand_in)
    assert all(isinstance(p, StandInTensor) for p in moved.parameters())
    assert all(
        isinstance(p, torch.nn.Parameter) or p._is_param for p in moved.parameters()
    )
    for model, image in ((on_cpu, x), (moved, x.to(stand_in))):
        # one implementation of Adam on both (PyTorch picks by device)
        optimizer = torch.optim.Adam(model.parameters(), 1e-2, foreach=False)
        torch.manual_seed(2)  # the same training noise
        out = model(image)
        loss = (out["x_hat"] - image).pow(2).mean() - 1e-3 * out["likelihoods"][
            "y"
        ].log().mean()
        loss.backward()
        optimizer.step()
    for a, b in zip(on_cpu.parameters(), moved.parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach().cpu())
    on_cpu.eval().update(force=True)
    moved.eval().update(force=True)
    assert moved.compress(x.to(stand_in)) == on_cpu.compress(x)


def test_mixing_the_devices_in_an_operation_names_it(stand_in):
    model = _model(stand_in)
    with pytest.raises(DeviceMixError, match="aten.convolution"):
        model.g_a(torch.rand(1, 3, 32, 32))  # the image left on the CPU
    with pytest.raises(DeviceMixError, match="aten.add"):
        torch.ones(3, device=stand_in) + torch.ones(3)
    # as on CUDA: CPU scalars, copies between devices and CPU indices are allowed
    on = torch.arange(4.0, device=stand_in)
    assert float((on * torch.tensor(2.0)).sum().cpu()) == 12.0
    on.copy_(torch.zeros(4))
    assert on[torch.tensor([1, 2])].cpu().tolist() == [0.0, 0.0]


def test_numpy_of_a_stand_in_tensor_raises_and_cpu_brings_it_back(stand_in):
    on = torch.arange(3.0).to(stand_in)
    with pytest.raises(DeviceMixError, match="numpy"):
        on.numpy()
    with pytest.raises(DeviceMixError, match="numpy"):
        np.asarray(on)
    back = on.cpu()
    assert type(back) is torch.Tensor
    assert back.numpy().tolist() == [0.0, 1.0, 2.0]
    assert on.tolist() == [0.0, 1.0, 2.0]  # as CUDA allows
    assert float(on.sum()) == 3.0


def test_random_draws_need_a_generator_of_their_device(stand_in):
    with pytest.raises(DeviceMixError, match="CPU torch.Generator"):
        torch.rand(3, device=stand_in, generator=torch.Generator().manual_seed(0))
    own = seeding.generator(stand_in, 0)
    drawn = torch.rand(3, device=stand_in, generator=own)
    assert isinstance(drawn, StandInTensor)
    assert torch.equal(
        drawn.cpu(), torch.rand(3, generator=torch.Generator().manual_seed(0))
    )
    with pytest.raises(DeviceMixError, match="stand-in device's generator"):
        torch.rand(3, generator=seeding.generator(stand_in, 0))
    with pytest.raises(DeviceMixError, match="CPU torch.Generator"):
        torch.ones(3, device=stand_in).uniform_(generator=torch.Generator())


def test_to_the_stand_in_keeps_gradients_flowing(stand_in):
    leaf = torch.zeros(4, requires_grad=True)
    (leaf.to(stand_in) * 3).sum().backward()
    assert leaf.grad.tolist() == [3.0] * 4


def test_metrics_bring_both_images_to_one_device(stand_in):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    noisy = (x + 0.01).to(stand_in)
    assert metrics.psnr(x, noisy) == pytest.approx(metrics.psnr(x, x + 0.01))


def test_the_budget_uses_the_stand_in_when_asked(monkeypatch):
    monkeypatch.setattr(device_check, "_ACTIVE", [])
    monkeypatch.setenv(device_check.ENV_VAR, "1")
    try:
        assert budget.budget("smoke").device == "meta"
        assert isinstance(torch.ones(2).to("meta"), StandInTensor)
    finally:
        while device_check._ACTIVE:
            device_check._ACTIVE.pop().__exit__(None, None, None)
    monkeypatch.delenv(device_check.ENV_VAR)
    assert budget.budget("smoke").device in ("cpu", "cuda")


def test_cached_models_are_saved_on_the_cpu_and_keyed_by_device(stand_in, tmp_path):
    def load_or_train(device):
        return cache.load_or_train(
            lambda: FactorizedPrior(8, 12),
            {"lambdas": [0.01]},
            lambda: ({0.01: _model(device)}, {0.01: []}),
            tmp_path,
            device,
        )

    assert not load_or_train(stand_in)[2]
    saved = torch.load(next(tmp_path.rglob("*.pt")), weights_only=True)
    assert all(type(t) is torch.Tensor for t in saved["states"][0].values())
    again, _, cached = load_or_train(stand_in)
    assert cached
    assert isinstance(next(again[0.01].parameters()), StandInTensor)
    assert not load_or_train("cpu")[2]  # another device, another key


def test_values_pytorch_makes_on_the_device_itself_are_kept(stand_in):
    y = torch.ones(2, 4, device=stand_in)
    y[:, 1:] = 0  # the scalar 0 is made by PyTorch on y's device
    y[0, 0] = 5.0
    assert y.cpu().tolist() == [[5.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    "architecture", ["mbt2018-mean", "mbt2018", "checkerboard-mean-scale"]
)
def test_the_crosscheck_runs_beside_a_model_on_another_device(stand_in, architecture):
    from lic_teach import crosscheck
    from lic_teach.models import registry

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = registry.architecture(architecture).model_class(8, 12).to(stand_in)
    report = crosscheck.crosscheck(model, torch.rand(3, 64, 64))
    assert report["same_bitstream"]
    assert report["max_diff_decoded"] < 1e-4


# Each test below failed before its fix (issue 35's list): with the bug back, it fails.


def _factorized_pair(stand_in):
    """The same small factorized prior on the CPU and on the stand-in, tables built."""
    cpu, moved = _model("cpu").eval(), _model(stand_in).eval()
    cpu.update(force=True)
    moved.update(force=True)
    return cpu, moved


def test_the_trellis_codes_and_decodes_on_the_models_device(stand_in):
    from lic_teach import rdoq, trellis

    cpu, moved = _factorized_pair(stand_in)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    streams = []
    for model, image in ((cpu, x), (moved, x.to(stand_in))):
        with torch.no_grad():
            y = model.g_a(image)
        weights = rdoq.distortion_weights(rdoq.channel_gains(model, y), 0.01)
        assert weights.device == y.device  # the gains follow the latents
        streams.append(trellis.compress_trellis(model, y, weights, 64, 64))
    assert streams[0] == streams[1]
    decoded = trellis.decompress_trellis(moved, streams[1])
    assert torch.equal(decoded.cpu(), trellis.decompress_trellis(cpu, streams[0]))


def test_the_relaxed_estimate_moves_the_images_to_the_model(stand_in):
    from lic_teach import relaxed_training

    cpu, moved = _factorized_pair(stand_in)
    images = [torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(4))]
    for relaxation in ("noise", "universal"):
        estimates = []
        for model in (moved, cpu):
            torch.manual_seed(6)  # the same noise for both
            estimates.append(
                relaxed_training.relaxed_estimate(model, images, relaxation, draws=1)
            )
        assert estimates[0] == pytest.approx(estimates[1])


def test_the_dither_and_sga_draw_on_the_datas_device(stand_in):
    from lic_teach import iterative_encoding, quantization

    assert torch.equal(
        quantization.dither((2, 3), 7, stand_in).cpu(), quantization.dither((2, 3), 7)
    )
    _, moved = _factorized_pair(stand_in)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    latents, history = iterative_encoding.sga_encode(
        moved, x, 0.01, steps=2, progress=False
    )
    assert isinstance(latents, StandInTensor)
    assert len(history) == 3


def test_distillation_follows_the_teachers_device(stand_in):
    from lic_teach import complexity, distillation
    from lic_teach.models import ScaleHyperprior

    _, teacher = _factorized_pair(stand_in)
    images = [torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))]
    g_s = distillation.student_synthesis(12, (8, 8, 8), (2, 2, 2, 2))  # on the CPU
    assert distillation.FeatureAdapters(g_s, teacher.g_s, 12).pairs
    codec, _ = distillation.distill(
        teacher, g_s, images, steps=1, feature_weight=1.0, progress=False
    )
    assert isinstance(next(g_s.parameters()), StandInTensor)  # trained on the device
    assert isinstance(
        distillation.teacher_targets(teacher, images[0])[0], StandInTensor
    )
    assert complexity.macs(teacher.g_a, images[0][:1]) > 0  # the input moved too
    assert codec.image_to_strings(images[0][:1], "ans")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        hyper = ScaleHyperprior(8, 12).to(stand_in).eval()
    hyper.update(force=True)
    student = distillation.StudentHyperprior.from_teacher(hyper, 4).eval()
    student.update(force=True)
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    assert set(distillation.rate_excess(hyper, student, photo)) >= {"real"}


def _registered(architecture: str, device):
    from lic_teach.models import registry

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = registry.architecture(architecture).model_class(8, 12)
    return model.to(device).eval()


@pytest.mark.parametrize(
    "architecture",
    ["bmshj2018-factorized", "mbt2018-mean", "mbt2018", "checkerboard-mean-scale"],
)
def test_a_bitstream_decodes_to_the_same_image_on_either_device(stand_in, architecture):
    cpu, moved = _registered(architecture, "cpu"), _registered(architecture, stand_in)
    x = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(3))
    on_cpu, on_device = cpu.compress(x), moved.compress(x)
    assert on_cpu == on_device
    assert torch.equal(moved.decompress(on_cpu).cpu(), cpu.decompress(on_device))


@pytest.mark.parametrize(
    ("architecture", "coder"),
    [("mbt2018-mean", "ans"), ("mbt2018", "ans"), ("mbt2018-mean", "readable")],
)
def test_a_stream_coded_with_other_indexes_is_refused_not_misdecoded(
    architecture, coder, monkeypatch
):
    """What a GPU's last bits can do to a CPU decoder: the encoder's ``h_s`` puts a few
    scales across a table boundary, so its indexes differ from the decoder's."""
    from lic_teach.entropy_models import GaussianConditional

    model = _registered(architecture, "cpu")
    x = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(4))
    build_indexes = GaussianConditional.build_indexes

    def other_arithmetic(self, scales):
        indexes = build_indexes(self, scales).clone()
        indexes.view(-1)[:2] += 1  # two scales on the other side of a boundary
        return indexes

    honest = model.compress(x, coder)
    monkeypatch.setattr(GaussianConditional, "build_indexes", other_arithmetic)
    elsewhere = model.compress(x, coder)
    monkeypatch.undo()
    header, strings = bitstream.unpack(honest)
    assert bitstream.unpack(elsewhere)[0].index_digest != header.index_digest
    assert model.decompress(honest).shape == (3, 48, 48)
    with pytest.raises(ValueError, match="another kind of device"):
        model.decompress(elsewhere)
    # where the coder itself notices nothing, the digest does
    header.index_digest ^= 1
    with pytest.raises(ValueError, match="index digest"):
        model.decompress(bitstream.pack(header, strings))


def test_deterministic_algorithms_hold_inside_and_are_restored_after():
    before = torch.are_deterministic_algorithms_enabled()
    with seeding.deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() == before
    with seeding.deterministic(enabled=False):
        assert torch.are_deterministic_algorithms_enabled() == before


def test_a_scalar_on_the_stand_in_formats_as_one_on_cuda(stand_in):
    value = torch.tensor(2.0, device=stand_in) / 3
    assert f"{value:.3f}" == "0.667"


def test_a_fixed_lattice_codes_beside_a_model_on_another_device(stand_in):
    """A fixed lattice's basis stays on the CPU: its D_n quadrature nodes, its cells'
    sample points and its training noise must reach the model's device."""
    from lic_teach import lattice_quantized, lattices

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    found = []
    for device in ("cpu", stand_in):
        model = _model(device).eval()
        model.update(force=True)
        lattice = lattices.checkerboard(4).with_volume(1.0)
        codec = lattice_quantized.LatticeQuantized(model, lattice, 8).to(device)
        with torch.no_grad():
            exact, _ = codec.eval().measured_bits(x.to(device))
            estimated, _ = codec.measured_bits(
                x.to(device), 8, torch.Generator().manual_seed(0), exact=False
            )
            noisy = codec.train()(x.to(device), torch.Generator().manual_seed(1))
        found.append((exact, estimated, float(noisy["x_hat"].sum().cpu())))
    assert found[0] == pytest.approx(found[1], rel=1e-6)


def test_babai_s_miss_rate_takes_a_learned_basis_from_any_device(stand_in):
    from lic_teach import lattices

    basis = torch.tensor([[1.0, 0.0], [0.9, 0.3]], dtype=torch.float64)
    moved = lattices.babai_miss_rate(basis.to(stand_in), 200)
    assert moved == lattices.babai_miss_rate(basis, 200)


def test_the_teacher_runs_once_per_listed_batch_and_keeps_no_dataset_batch(
    stand_in, monkeypatch
):
    """Moved to a device, a batch is a new tensor at every step: a memo keyed by the
    moved tensor never hits and grows by the teacher's outputs at every step (tens of
    gigabytes at the gpu budget)."""
    from lic_teach import data, distillation

    _, teacher = _factorized_pair(stand_in)
    calls, teacher_targets = [], distillation.teacher_targets

    def counted(model, x):
        calls.append(x)
        return teacher_targets(model, x)

    monkeypatch.setattr(distillation, "teacher_targets", counted)
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    g_s = distillation.student_synthesis(12, (8, 8, 8), (2, 2, 2, 2))
    distillation.distill(teacher, g_s, [batch], steps=4, progress=False)
    assert len(calls) == 1  # the listed batch moved once, its targets kept
    calls.clear()
    crops = data.RandomCropDataset([torch.rand(3, 64, 64)], 32, length=4)
    distillation.distill(teacher, g_s, crops, steps=4, batch_size=2, progress=False)
    assert len(calls) == 4  # a Dataset's batches: computed at each step, none kept


def test_a_trellis_stream_coded_with_other_tables_is_refused(monkeypatch):
    """The trellis's second quantizer's tables come from the prior's float CDF on the
    model's device: a table another device rounds otherwise must not decode."""
    from lic_teach import rdoq, trellis

    model, _ = _factorized_pair("cpu")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model.g_a(x)
    weights = rdoq.distortion_weights(rdoq.channel_gains(model, y), 0.01)
    dq_tables = trellis.dq_tables

    def rounded_otherwise(m):
        cdfs, lengths, offsets = dq_tables(m)
        row = len(cdfs) - 1  # a row of the second quantizer
        cdfs[row][1] += 1
        return cdfs, lengths, offsets

    monkeypatch.setattr(trellis, "dq_tables", rounded_otherwise)
    elsewhere = trellis.compress_trellis(model, y, weights, 64, 64)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="index digest"):
        trellis.decompress_trellis(model, elsewhere)
