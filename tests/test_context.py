import pytest
import torch
from compressai import models as cai
from compressai.layers import (
    CheckerboardMaskedConv2d,
)
from compressai.layers import (
    MaskedConv2d as CompressAIMaskedConv2d,
)
from helpers import check_contract, perturb

from lic_teach import crosscheck, data
from lic_teach.models import (
    CheckerboardContext,
    JointAutoregressive,
    MeanScaleHyperprior,
)
from lic_teach.models.context import (
    anchor_mask,
    checkerboard_merge,
    checkerboard_split,
    context_mask,
)

TWINS = [
    (JointAutoregressive, cai.JointAutoregressiveHierarchicalPriors),
    (CheckerboardContext, crosscheck.checkerboard_twin_class()),
]


def larger_latents(model, factor=4.0):
    """Scale g_a's output so that an untrained model codes many non-zero symbols."""
    with torch.no_grad():
        model.g_a[-1].weight.mul_(factor)
        model.g_a[-1].bias.mul_(factor)
    return model


def test_masks_equal_compressai_masks():
    raster = CompressAIMaskedConv2d(2, 2, kernel_size=5, padding=2, mask_type="A")
    board = CheckerboardMaskedConv2d(2, 2, kernel_size=5, padding=2)
    assert torch.equal(context_mask(5, "raster"), raster.mask[0, 0])
    assert torch.equal(context_mask(5, "checkerboard"), board.mask[0, 0])
    assert context_mask(5, "raster")[2, 2] == 0
    assert context_mask(5, "checkerboard")[2, 2] == 0
    with pytest.raises(ValueError, match="unknown context pattern"):
        context_mask(5, "spiral")


def test_raster_context_ignores_the_present_and_the_future():
    model = perturb(JointAutoregressive(8, 12))
    y = torch.randn(1, 12, 9, 9)
    changed = y.clone()
    changed[..., 4, 4:] += 5.0  # the centre and the rest of its row
    changed[..., 5:, :] += 5.0  # every row below
    conv = model.context_prediction
    assert torch.equal(conv(y)[..., 4, 4], conv(changed)[..., 4, 4])
    changed[..., 4, 3] += 1.0  # the left neighbour is seen
    assert not torch.equal(conv(y)[..., 4, 4], conv(changed)[..., 4, 4])


def test_checkerboard_split_merge_round_trip_and_anchor_context():
    y = torch.randn(2, 3, 6, 8)
    anchors, non_anchors = checkerboard_split(y)
    assert anchors.shape == (2, 3, 6, 4)
    assert torch.equal(anchors[..., 1, :], y[..., 1, 1::2])
    assert torch.equal(non_anchors[..., 0, :], y[..., 0, 1::2])
    assert torch.equal(checkerboard_merge(anchors, non_anchors), y)
    mask = anchor_mask(6, 8)
    assert mask[0, 0]
    assert not mask[0, 1]
    assert mask[1, 1]
    assert int(mask.sum()) == 24
    conv = perturb(CheckerboardContext(8, 12)).context_prediction
    z = torch.randn(1, 12, 6, 8)
    moved = z + 3.0 * (~mask)  # change only the non-anchors
    assert torch.equal(conv(z)[..., ~mask], conv(moved)[..., ~mask])


@pytest.mark.parametrize("ours_class, theirs_class", TWINS)
@pytest.mark.parametrize("N, M, height, width", [(8, 12, 37, 53), (16, 24, 130, 71)])
def test_agrees_with_compressai_both_directions(
    photo, ours_class, theirs_class, N, M, height, width
):
    x = photo[:, :height, :width]
    report = crosscheck.crosscheck(larger_latents(perturb(ours_class(N, M))).eval(), x)
    assert report["max_diff_y"] <= 1e-5
    assert report["max_diff_likelihoods"] <= 1e-5
    assert report["max_diff_x_hat"] <= 1e-5
    assert report["max_diff_decoded"] <= 1e-5
    assert report["same_bitstream"]
    assert report["coded_bits"] > 64 * 8
    assert report["decoded_matches_forward"] is (
        None if ours_class is JointAutoregressive else True
    )
    torch.manual_seed(1)
    theirs = perturb(theirs_class(N, M), seed=2).eval()
    imported = crosscheck.from_compressai(theirs).eval()
    assert isinstance(imported, ours_class)
    padded = torch.nn.functional.pad(
        x[None], (0, (-width) % 64, 0, (-height) % 64), mode="replicate"
    )
    a, b = imported(padded), theirs(padded)
    assert (a["x_hat"] - b["x_hat"]).abs().max() <= 1e-5
    for key in ("y", "z"):
        assert (a["likelihoods"][key] - b["likelihoods"][key]).abs().max() <= 1e-5


@pytest.mark.parametrize("ours_class, _", TWINS)
def test_weights_round_trip_and_real_bits_near_ideal(photo, ours_class, _):
    model = perturb(ours_class(16, 24))
    model.update()
    back = crosscheck.from_compressai(crosscheck.to_compressai(model))
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    if (
        ours_class is CheckerboardContext
    ):  # its eval forward is the coder's exact two passes
        report = crosscheck.crosscheck(model, data.center_crop(photo, 256))
        assert (
            abs(report["coded_bits"] - report["ideal_bits"])
            <= 0.01 * report["ideal_bits"] + 3 * 8 * 8
        )


@pytest.mark.parametrize("ours_class, _", TWINS)
def test_decoder_reproduces_exactly_the_encoders_latents(photo, ours_class, _):
    model = larger_latents(perturb(ours_class(8, 12))).eval()
    model.update()
    x = torch.nn.functional.pad(
        photo[None, :, :100, :70], (0, 58, 0, 28), mode="replicate"
    )  # 128 x 128
    captured = []
    hook = model.g_s.register_forward_pre_hook(
        lambda module, args: captured.append(args[0])
    )
    for coder in ("ans", "readable"):
        model.strings_to_image(model.image_to_strings(x, coder), (2, 2), coder)
    hook.remove()
    decoded_ans, decoded_readable = captured
    assert torch.equal(decoded_ans, decoded_readable)
    with torch.no_grad():
        y = model.g_a(x)
    assert decoded_ans.shape == y.shape
    assert (
        decoded_ans - y
    ).abs().max() <= 0.5 + 1e-4  # rounding moved each latent by <= 1/2
    assert float((decoded_ans != 0).float().mean()) > 0.3


@pytest.mark.parametrize("ours_class, _", TWINS)
def test_contract_any_size_both_coders_and_bad_bytes(photo, ours_class, _):
    other = (
        CheckerboardContext(8, 12)
        if ours_class is JointAutoregressive
        else JointAutoregressive(8, 12)
    )
    check_contract(
        larger_latents(perturb(ours_class(8, 12))).eval(),
        photo,
        [other, MeanScaleHyperprior(8, 12)],
    )


def test_training_mode_uses_noise_and_gives_gradients_to_the_context_model(photo):
    for model in (
        perturb(JointAutoregressive(8, 12)),
        perturb(CheckerboardContext(8, 12)),
    ):
        model.train()
        x = photo[None, :, :64, :64]
        torch.manual_seed(0)
        first = model(x)
        torch.manual_seed(1)
        second = model(x)
        assert not torch.equal(first["x_hat"], second["x_hat"])  # y + u, fresh noise
        bits = -torch.log2(first["likelihoods"]["y"]).sum()
        bits.backward()
        assert model.context_prediction.weight.grad.abs().sum() > 0
        assert model.entropy_parameters[0].weight.grad.abs().sum() > 0


def test_checkerboard_anchors_get_no_context_in_training(photo):
    model = perturb(CheckerboardContext(8, 12)).train()
    x = photo[None, :, :128, :128]
    with torch.no_grad():
        torch.manual_seed(0)
        base = model(x)["likelihoods"]["y"]
        model.context_prediction.weight.mul_(3.0)
        model.context_prediction.bias.add_(1.0)
        torch.manual_seed(0)
        changed = model(x)["likelihoods"]["y"]
    mask = anchor_mask(*base.shape[-2:])
    assert torch.equal(base[..., mask], changed[..., mask])
    assert not torch.equal(base[..., ~mask], changed[..., ~mask])


def test_zoo_and_checkpoint_paths_offline(tmp_path, monkeypatch):
    import compressai.zoo.image as zoo_image

    theirs = perturb(cai.JointAutoregressiveHierarchicalPriors(192, 192), seed=4)
    theirs.update(force=True)
    torch.save(theirs.state_dict(), tmp_path / "mbt2018.pth.tar")
    loaded = crosscheck.load_checkpoint(tmp_path / "mbt2018.pth.tar", "mbt2018")
    assert isinstance(loaded, JointAutoregressive)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x)["x_hat"], theirs.eval()(x)["x_hat"])
    monkeypatch.setattr(
        zoo_image,
        "load_state_dict_from_url",
        lambda url, progress=True: theirs.state_dict(),
    )
    assert isinstance(crosscheck.load_zoo("mbt2018", quality=1), JointAutoregressive)
    with pytest.raises(ValueError, match="publishes no weights"):
        crosscheck.load_zoo("checkerboard-mean-scale")
    twin = crosscheck.to_compressai(perturb(CheckerboardContext(8, 12)))
    torch.save(twin.state_dict(), tmp_path / "checkerboard.pth.tar")
    assert isinstance(
        crosscheck.load_checkpoint(
            tmp_path / "checkerboard.pth.tar", "checkerboard-mean-scale"
        ),
        CheckerboardContext,
    )
