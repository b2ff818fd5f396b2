import pytest
import torch
from compressai import models as cai
from helpers import check_contract, perturb

from lic_teach import crosscheck, data
from lic_teach.models import MeanScaleHyperprior, ScaleHyperprior

TWINS = [
    (ScaleHyperprior, cai.ScaleHyperprior, "bmshj2018-hyperprior"),
    (MeanScaleHyperprior, cai.MeanScaleHyperprior, "mbt2018-mean"),
]


@pytest.mark.parametrize("ours_class, theirs_class, _", TWINS)
@pytest.mark.parametrize("N, M, height, width", [(8, 12, 37, 53), (16, 24, 130, 71)])
def test_agrees_with_compressai_both_directions(
    photo, ours_class, theirs_class, _, N, M, height, width
):
    x = photo[:, :height, :width]
    report = crosscheck.crosscheck(perturb(ours_class(N, M)).eval(), x)
    assert report["max_diff_y"] <= 1e-5
    assert report["max_diff_likelihoods"] <= 1e-5
    assert report["max_diff_x_hat"] <= 1e-5
    assert report["same_bitstream"]
    assert report["decoded_matches_forward"]
    torch.manual_seed(1)
    theirs = perturb(theirs_class(N, M), seed=2).eval()
    imported = crosscheck.from_compressai(theirs).eval()
    padded = torch.nn.functional.pad(
        x[None], (0, (-width) % 64, 0, (-height) % 64), mode="replicate"
    )
    a, b = imported(padded), theirs(padded)
    assert (a["x_hat"] - b["x_hat"]).abs().max() <= 1e-5
    for key in ("y", "z"):
        assert (a["likelihoods"][key] - b["likelihoods"][key]).abs().max() <= 1e-5


@pytest.mark.parametrize("ours_class, _, __", TWINS)
def test_weights_round_trip_and_real_bits_near_ideal(photo, ours_class, _, __):
    model = perturb(ours_class(16, 24))
    model.update()
    back = crosscheck.from_compressai(crosscheck.to_compressai(model))
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    report = crosscheck.crosscheck(model, data.center_crop(photo, 256))
    assert (
        abs(report["coded_bits"] - report["ideal_bits"])
        <= 0.01 * report["ideal_bits"] + 2 * 8 * 8
    )


@pytest.mark.parametrize("ours_class, _, __", TWINS)
def test_contract_any_size_both_coders_and_bad_bytes(photo, ours_class, _, __):
    other = (
        ScaleHyperprior(8, 12)
        if ours_class is MeanScaleHyperprior
        else MeanScaleHyperprior(8, 12)
    )
    check_contract(perturb(ours_class(8, 12)).eval(), photo, [other])


def test_mean_scale_rounds_around_the_predicted_means(photo):
    model = perturb(MeanScaleHyperprior(8, 12)).eval()
    x = photo[None, :, :64, :64]
    with torch.no_grad():
        y = model.g_a(x)
        z_hat, _ = model.hyperprior(model.hyper_analysis(y))
        scales, means = model.gaussian_parameters(z_hat)
        y_hat, _ = model.conditional(y, scales, means)
    assert torch.allclose(y_hat - means, torch.round(y - means))
    assert not torch.allclose(y_hat, torch.round(y))


@pytest.mark.parametrize("ours_class, theirs_class, architecture", TWINS)
def test_zoo_paths_offline(
    tmp_path, monkeypatch, ours_class, theirs_class, architecture
):
    import compressai.zoo.image as zoo_image

    torch.manual_seed(0)
    theirs = perturb(theirs_class(128, 192), seed=4)
    theirs.update(force=True)
    torch.save(theirs.state_dict(), tmp_path / "checkpoint.pth.tar")
    loaded = crosscheck.load_checkpoint(tmp_path / "checkpoint.pth.tar", architecture)
    assert isinstance(loaded, ours_class)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x)["x_hat"], theirs.eval()(x)["x_hat"])
    requested = []
    monkeypatch.setattr(
        zoo_image,
        "load_state_dict_from_url",
        lambda url, progress=True: requested.append(url) or theirs.state_dict(),
    )
    zoo_model = crosscheck.load_zoo(architecture, quality=1)
    assert requested
    assert isinstance(zoo_model, ours_class)
    with pytest.raises(ValueError, match="not a"):
        crosscheck.load_checkpoint(
            tmp_path / "checkpoint.pth.tar",
            "bmshj2018-factorized"
            if ours_class is MeanScaleHyperprior
            else "mbt2018-mean",
        )
