import pytest
import torch
from compressai.models import FactorizedPrior as CompressAIFactorizedPrior
from helpers import perturb

from lic_teach import bitstream, crosscheck, data
from lic_teach.models import FactorizedPrior


@pytest.mark.parametrize(
    "N, M, height, width", [(8, 12, 37, 53), (16, 24, 64, 75), (24, 16, 129, 33)]
)
def test_agrees_with_compressai_both_directions(photo, N, M, height, width):
    x = photo[:, :height, :width]
    ours = perturb(FactorizedPrior(N, M)).eval()
    report = crosscheck.crosscheck(ours, x)
    assert report["max_diff_y"] <= 1e-5
    assert report["max_diff_likelihoods"] <= 1e-5
    assert report["max_diff_x_hat"] <= 1e-5
    assert report["same_bitstream"]
    assert report["decoded_matches_forward"]
    # the other direction: start from CompressAI's weights
    torch.manual_seed(1)
    theirs = perturb(CompressAIFactorizedPrior(N, M), seed=2).eval()
    imported = crosscheck.from_compressai(theirs).eval()
    padded = torch.nn.functional.pad(
        x[None], (0, (-width) % 16, 0, (-height) % 16), mode="replicate"
    )
    a, b = imported(padded), theirs(padded)
    assert (a["x_hat"] - b["x_hat"]).abs().max() <= 1e-5
    assert (a["likelihoods"]["y"] - b["likelihoods"]["y"]).abs().max() <= 1e-5


def test_weights_survive_a_round_trip_exactly():
    ours = perturb(FactorizedPrior(8, 12))
    ours.update()
    back = crosscheck.from_compressai(crosscheck.to_compressai(ours))
    for (name, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_changed_compressai_constant_is_refused():
    theirs = CompressAIFactorizedPrior(8, 12)
    theirs.g_a[1].beta_reparam.lower_bound.bound.fill_(0.5)
    with pytest.raises(ValueError, match="beta_reparam"):
        crosscheck.from_compressai(theirs)


def test_real_bits_are_close_to_the_ideal(photo):
    model = perturb(FactorizedPrior(16, 24))
    report = crosscheck.crosscheck(model, data.center_crop(photo, 256))
    assert report["coded_bits"] <= 1.01 * report["ideal_bits"] + 8 * 8
    assert report["coded_bits"] >= 0.99 * report["ideal_bits"] - 8 * 8
    readable = crosscheck.crosscheck(
        model, data.center_crop(photo, 256), coder="readable"
    )
    assert (
        abs(readable["coded_bits"] - report["coded_bits"])
        <= 0.005 * report["coded_bits"]
    )


def test_model_contract_any_size_and_both_coders(photo):
    model = perturb(FactorizedPrior(8, 12)).eval()
    x = photo[:, 10:47, 20:91]  # 37 x 71
    out = model(x[None])
    assert set(out) == {"x_hat", "likelihoods"}
    assert set(out["likelihoods"]) == {"y"}
    ans, readable = model.compress(x), model.compress(x, coder="readable")
    decoded = model.decompress(ans)
    assert decoded.shape == x.shape
    assert torch.equal(decoded, model.decompress(readable))
    padded = torch.nn.functional.pad(x[None], (0, 9, 0, 11), mode="replicate")
    assert torch.allclose(
        decoded, model(padded)["x_hat"][0, :, :37, :71].clamp(0, 1), atol=1e-6
    )
    assert bitstream.unpack(ans)[0].coder == "ans"
    assert bitstream.unpack(readable)[0].coder == "readable"


def test_bad_images_are_refused():
    model = FactorizedPrior(8, 12)
    with pytest.raises(ValueError, match="RGB"):
        model.compress(torch.rand(1, 20, 20))
    with pytest.raises(ValueError, match="RGB"):
        model.compress(torch.rand(2, 3, 20, 20))
    with pytest.raises(ValueError, match="NaN"):
        model.compress(torch.full((3, 20, 20), float("nan")))
    with pytest.raises(ValueError, match="coder"):
        model.compress(torch.rand(3, 20, 20), coder="zip")


def test_bad_bytes_are_refused_with_clear_errors(photo):
    model = perturb(FactorizedPrior(8, 12))
    data_ = model.compress(photo[:, :40, :40])
    with pytest.raises(ValueError, match="truncated"):
        model.decompress(data_[:-10])
    with pytest.raises(ValueError, match="truncated"):
        model.decompress(data_[:6])
    altered = bytearray(data_)
    altered[len(altered) // 2] ^= 0x01
    with pytest.raises(ValueError, match="corrupted"):
        model.decompress(bytes(altered))
    with pytest.raises(ValueError, match="magic"):
        model.decompress(b"\x89PNG\r\n\x1a\n" + data_[8:])
    with pytest.raises(ValueError, match="bytes"):
        model.decompress("not bytes")
    with pytest.raises(ValueError, match=r"FactorizedPrior\(8, 12\)"):
        perturb(FactorizedPrior(8, 16)).decompress(data_)
    with pytest.raises(ValueError, match="other weights"):
        perturb(FactorizedPrior(8, 12), seed=5).decompress(data_)
    with pytest.raises(ValueError, match="unexpected bytes"):
        model.decompress(data_ + b"\x00")


def test_zoo_checkpoint_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    theirs = perturb(CompressAIFactorizedPrior(16, 24), seed=3)
    theirs.update(force=True)
    path = tmp_path / "bmshj2018-factorized-prior-test.pth.tar"
    torch.save(theirs.state_dict(), path)
    ours = crosscheck.load_checkpoint(path)
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(ours.eval()(x)["x_hat"], theirs.eval()(x)["x_hat"])
    (tmp_path / "wrong.pth.tar").write_bytes(b"")
    torch.save({"something": torch.zeros(1)}, tmp_path / "wrong.pth.tar")
    with pytest.raises(ValueError, match="not a bmshj2018-factorized checkpoint"):
        crosscheck.load_checkpoint(tmp_path / "wrong.pth.tar")


def test_zoo_pretrained_path_offline(tmp_path, monkeypatch):
    """CompressAI's real pretrained=True path, with the download served from a local
    file."""
    import compressai.zoo.image as zoo_image

    torch.manual_seed(0)
    theirs = perturb(CompressAIFactorizedPrior(128, 192), seed=4)
    theirs.update(force=True)
    state = theirs.state_dict()
    requested = []

    def fake_download(url, progress=True):
        requested.append(url)
        return state

    monkeypatch.setattr(zoo_image, "load_state_dict_from_url", fake_download)
    ours = crosscheck.load_zoo("bmshj2018-factorized", quality=2)
    assert requested
    assert requested[0].endswith(".pth.tar")
    assert "factorized-prior-2" in requested[0]
    assert (ours.N, ours.M) == (128, 192)
    assert torch.equal(ours.g_s[0].weight, theirs.g_s[0].weight)


def test_zoo_offline_is_a_clear_error(monkeypatch):
    import urllib.error

    import compressai.zoo.image as zoo_image

    def offline(url, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(zoo_image, "load_state_dict_from_url", offline)
    with pytest.raises(ConnectionError, match="offline"):
        crosscheck.load_zoo(quality=1)
    with pytest.raises(ValueError, match="architecture"):
        crosscheck.load_zoo("cheng2020-attn")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 3e7])
def test_compress_latents_refuses_latents_no_coder_codes(bad):
    model = FactorizedPrior(8, 12).eval()
    y = torch.zeros(1, 12, 2, 2)
    y[0, 3, 1, 0] = bad
    with pytest.raises(ValueError, match="not finite or exceed"):
        model.compress_latents({"y": y}, 32, 32, coder="readable")
