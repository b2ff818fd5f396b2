"""The zoo: resumable training at smoke sizes, safetensors that load only when they are
the files their manifests describe, and manifests whose figures the shipped weights
reproduce."""

import dataclasses
import json

import pytest
import safetensors.torch
import torch

from lic_teach import baselines, crosscheck, data, evaluate, train, zoo, zoo_data
from lic_teach.experiments import evaluation
from lic_teach.models import FactorizedPrior


def test_training_writes_weights_and_manifests_that_reproduce(smoke_zoo):
    folder, _ = smoke_zoo
    manifests = zoo.manifests(folder)
    assert [(m["family"], m["quality"]) for m in manifests] == [
        ("factorized", 1),
        ("factorized", 2),
        ("mean-scale", 1),
        ("mean-scale", 2),
    ]
    for m in manifests:
        assert m["steps"] == zoo.SMOKE_RECIPE.steps()
        assert m["lambda"] in zoo.SMOKE_RECIPE.lambdas
        stored = safetensors.torch.load_file(str(folder / m["file"]))
        assert stored
        assert not any(key.endswith("quantized_cdf") for key in stored)
        assert m["sha256"] == data.sha256(folder / m["file"])
        model = zoo.load(m["family"], m["quality"], folder)
        point = evaluate.codec_point(
            model, data.held_out(zoo.SMOKE_RECIPE.eval_size), with_ms_ssim=True
        )
        for key in (
            "bpp",
            "psnr",
            "ms_ssim",
        ):  # the manifest's figures, from the shipped weights
            assert point[key] == pytest.approx(m["rd_held_out"][key], abs=1e-3)
        held_out = data.held_out(zoo.SMOKE_RECIPE.eval_size)
        assert m["ceiling_psnr"]["held_out"] == round(
            evaluate.ceiling(model, held_out), 3
        )
        assert m["ceiling_psnr"]["train"] == round(
            evaluate.ceiling(model, zoo.training_photos()), 3
        )
    assert set(zoo.models(folder)) == {(m["family"], m["quality"]) for m in manifests}


def test_training_resumes_from_its_last_segment(smoke_zoo, tmp_path):
    folder, work = smoke_zoo
    before = data.sha256(folder / "factorized-q1.safetensors")
    stage = sorted((work).glob("factorized-*/q1-*.safetensors"))
    stage[-1].unlink()  # as if interrupted in q1's last segment
    again = zoo.train_family(
        "factorized", zoo.SMOKE_RECIPE, tmp_path, work, progress=False
    )
    assert again[0]["sha256"] == before  # the same weights as uninterrupted
    saved = sorted(work.glob("factorized-*/base-*.seconds")) + sorted(
        work.glob("factorized-*/q1-*.seconds")
    )
    assert (
        len(saved)
        == zoo.SMOKE_RECIPE.base_segments + zoo.SMOKE_RECIPE.finetune_segments
    )
    assert again[0]["training_seconds"] == pytest.approx(
        sum(float(p.read_text()) for p in saved), abs=0.3
    )


def test_damaged_or_foreign_files_raise_naming_the_file(smoke_zoo, tmp_path):
    folder, _ = smoke_zoo
    for path in folder.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    weights = tmp_path / "factorized-q1.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-5] ^= 1
    weights.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="factorized-q1.safetensors.*SHA-256"):
        zoo.load("factorized", 1, tmp_path)
    with pytest.raises(
        ValueError, match="factorized-q2.safetensors.*not a FactorizedPrior"
    ):
        zoo.load_weights(FactorizedPrior(4, 6), tmp_path / "factorized-q2.safetensors")
    with pytest.raises(ValueError, match="quality 9"):
        zoo.load("factorized", 9, tmp_path)
    with pytest.raises(ValueError, match="unknown zoo family"):
        zoo.load("jpeg", 1, tmp_path)
    manifest_path = tmp_path / "factorized-q2.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["table_fingerprint"] += 1  # as if tables were built differently here
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match="factorized-q2.safetensors differ from those it was published"
    ):
        zoo.load("factorized", 2, tmp_path)
    (tmp_path / "mean-scale-q1.json").write_text("{not json")
    with pytest.raises(ValueError, match="mean-scale-q1.json"):
        zoo.manifests(tmp_path)


def test_zoo_models_pass_the_compressai_crosscheck(smoke_zoo, photo):
    folder, _ = smoke_zoo
    for family in ("factorized", "mean-scale"):
        report = crosscheck.crosscheck(zoo.load(family, 2, folder), photo[:, :64, :96])
        assert report["same_bitstream"], report
        assert report["max_diff_decoded"] < 1e-4, report


def test_command_line(smoke_zoo, capsys):
    folder, _ = smoke_zoo
    assert zoo.main(["list", "--folder", str(folder)]) == 0
    assert "mean-scale q2" in capsys.readouterr().out
    assert zoo.main(["train", "jpeg", "--folder", str(folder)]) == 2
    assert "unknown zoo family jpeg" in capsys.readouterr().err


def test_the_shipped_zoo_is_what_its_manifests_say():
    """Hashes and each R-D point measured again from the shipped weights, and JPEG's
    PSNR at the same rate measured again (Pillow's libjpeg may differ slightly between
    builds); the ceilings on the held-out and the training photos measured again for
    each family's top quality (seconds a model: the smoke zoo's test rechecks every
    model's, made by the same code)."""
    jpeg = {}  # one JPEG curve per set of photos
    top = {m["family"]: m["quality"] for m in zoo.manifests()}
    for m in zoo.manifests():
        assert m["sha256"] == data.sha256(zoo.FOLDER / m["file"]), m["file"]
        images = data.held_out(m["recipe"]["eval_size"])
        model = zoo.load(m["family"], m["quality"])
        point = evaluate.codec_point(model, images)
        ceiling = m["ceiling_psnr"]
        if m["quality"] == top[m["family"]]:
            assert evaluate.ceiling(model, images) == pytest.approx(
                ceiling["held_out"], abs=1e-3
            ), m["file"]
            assert evaluate.ceiling(model, zoo.training_photos()) == pytest.approx(
                ceiling["train"], abs=1e-3
            ), m["file"]
        # no quantization, no loss of rate: above the coded PSNR (these models are
        # trained well enough for that, unlike a model's first steps)
        assert ceiling["held_out"] > m["rd_held_out"]["psnr"], m["file"]
        rd = m["rd_held_out"]
        assert (point["bpp"], point["psnr"]) == pytest.approx(
            (rd["bpp"], rd["psnr"]), abs=1e-3
        ), m["file"]
        if m["recipe"]["eval_size"] not in jpeg:
            jpeg[m["recipe"]["eval_size"]] = evaluate.classical_curve(
                "jpeg", images, baselines.DENSE_QUALITIES
            )
        at_equal_rate = baselines.psnr_at_rate(
            jpeg[m["recipe"]["eval_size"]], rd["bpp"]
        )
        assert rd["jpeg_psnr_at_equal_rate"] == pytest.approx(
            at_equal_rate, abs=0.05
        ), m["file"]


def test_a_manifest_and_the_evaluation_chapter_give_one_psnr_to_the_digit():
    """The evaluation chapter measures the zoo through ``evaluation.zoo_codecs`` and
    ``evaluate.evaluate_codecs``, the manifests through ``evaluate.codec_point``: both
    are ``evaluate.measure``, so the same model on the same photos gives the same
    figures, to the manifest's last digit."""
    (m,) = [m for m in zoo.manifests() if (m["family"], m["quality"]) == ("scale", 2)]
    images = data.held_out(m["recipe"]["eval_size"])
    (codec,) = evaluation.zoo_codecs(["scale"])
    result = evaluate.evaluate_codecs([codec], images, cache_dir=False, progress=False)
    chapter = result.curve(codec.name)
    at = chapter.params.index(m["quality"])
    assert round(chapter.psnr[at], 5) == m["rd_held_out"]["psnr"]
    assert round(chapter.bpp[at], 5) == m["rd_held_out"]["bpp"]


def test_every_shipped_zoo_model_crosschecks_with_compressai_both_ways(photo):
    """Each shipped model moves into CompressAI (identical latents, likelihoods and
    bytes), and back again without changing a weight."""
    shipped = zoo.manifests()
    assert {m["family"] for m in shipped} == set(zoo.FAMILIES)
    for m in shipped:
        model = zoo.load(m["family"], m["quality"])
        report = crosscheck.crosscheck(model, photo[:, 128:256, 160:352])
        assert report["same_bitstream"], (m["file"], report)
        assert report["max_diff_decoded"] < 1e-4, (m["file"], report)
        assert report["max_diff_likelihoods"] < 1e-4, (m["file"], report)
        back = crosscheck.from_compressai(crosscheck.to_compressai(model), type(model))
        for key, value in model.state_dict().items():
            assert torch.equal(back.state_dict()[key], value), (m["file"], key)


def test_the_default_family_is_the_best_by_its_manifests(tmp_path):
    def write(family, points):
        for quality, (bpp, psnr) in enumerate(points, start=1):
            (tmp_path / f"{family}-q{quality}.json").write_text(
                json.dumps(
                    {
                        "family": family,
                        "quality": quality,
                        "rd_held_out": {"bpp": bpp, "psnr": psnr},
                    }
                )
            )

    write("factorized", [(0.2, 28.0), (0.4, 30.0), (0.8, 32.0)])
    write("mean-scale", [(0.3, 28.0), (0.6, 30.0), (1.2, 32.0)])  # 50% more bits
    assert zoo.default_family(tmp_path) == "factorized"
    write("scale", [(0.15, 28.0), (0.3, 30.0), (0.6, 32.0)])  # 25% fewer
    assert zoo.default_family(tmp_path) == "scale"
    write(
        "mean-scale", [(2.0, 40.0), (3.0, 41.0), (4.0, 42.0)]
    )  # no overlap: by preference
    assert zoo.default_family(tmp_path) == "mean-scale"


def test_a_family_trained_by_two_recipes_is_refused(tmp_path):
    """A half-retrained family (some qualities by one recipe, some by another) would be
    drawn as one curve under the last recipe's name: refused with what to do."""
    for quality, recipe in ((1, zoo.RECIPE), (2, zoo.SMOKE_RECIPE)):
        (tmp_path / f"two-layer-q{quality}.json").write_text(
            json.dumps(
                {
                    "family": "two-layer",
                    "quality": quality,
                    "recipe": dataclasses.asdict(recipe),
                }
            )
        )
    with pytest.raises(ValueError, match="different recipes; train the family again"):
        zoo.curve("two-layer", {}, folder=tmp_path)


def test_lambda_of_reads_the_manifest_and_names_a_missing_model():
    (manifest,) = [
        m for m in zoo.manifests() if (m["family"], m["quality"]) == ("factorized", 2)
    ]
    assert zoo.lambda_of("factorized", 2) == manifest["lambda"]
    with pytest.raises(ValueError, match="no zoo model 'factorized' at quality 99"):
        zoo.lambda_of("factorized", 99)


def _photo_folder(folder, names=("chelsea", "coffee"), side=128):
    """A folder of a user's photos: central crops of bundled training photos, one PNG
    and one JPEG."""
    folder.mkdir()
    photos = zoo_data.training_photos()
    for number, name in enumerate(names):
        image = data.to_pil(data.center_crop(photos[name], side))
        image.save(folder / f"{name}.{'png' if number % 2 == 0 else 'jpg'}")
    return folder


def test_the_zoo_trains_on_a_folder_of_ones_own_photos(tmp_path):
    photos = _photo_folder(tmp_path / "mine")
    (photos / "notes.txt").write_text("not a photo: skipped")
    recipe = dataclasses.replace(zoo.SMOKE_RECIPE, lambdas=(0.01,))
    work = tmp_path / "work"
    (manifest,) = zoo.train_family(
        "factorized", recipe, tmp_path / "zoo", work, progress=False, data_folder=photos
    )
    mine = zoo.training_photos(photos)
    assert manifest["trained_on"]["photos"] == ["chelsea.png", "coffee.jpg"]
    assert manifest["trained_on"]["sha256"] == zoo_data.photos_sha256(mine)
    (run,) = work.iterdir()  # kept apart from a run on the bundled photos
    assert run.name.endswith(manifest["trained_on"]["sha256"][:12])
    model = zoo.load("factorized", 1, tmp_path / "zoo")
    assert manifest["ceiling_psnr"]["train"] == round(evaluate.ceiling(model, mine), 3)
    # the command line, as make zoo DATA=... runs it
    assert (
        zoo.main(
            [
                "train",
                "factorized",
                "--smoke",
                "--folder",
                str(tmp_path / "cli"),
                "--data",
                str(photos),
            ]
        )
        == 0
    )


def test_a_folder_of_photos_that_cannot_be_trained_on_is_refused(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no folder"):
        zoo.training_photos(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image file"):
        zoo.training_photos(tmp_path / "empty")
    small = _photo_folder(tmp_path / "small", side=40)
    with pytest.raises(ValueError, match="chelsea.png is 40x40 pixels"):
        zoo.training_photos(small, min_side=64)
    broken = _photo_folder(tmp_path / "broken")
    (broken / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="zz.png"):
        zoo.training_photos(broken)
    leaked = _photo_folder(tmp_path / "leaked")
    data.to_pil(data.sample_images("test")["astronaut"]).save(leaked / "a.png")
    with pytest.raises(ValueError, match="evaluation image 'astronaut'"):
        zoo.training_photos(leaked)
    arguments = ["train", "factorized", "--smoke", "--folder", str(tmp_path / "z")]
    assert zoo.main([*arguments, "--data", str(leaked)]) == 2
    assert "evaluation image" in capsys.readouterr().err
    # the shipped zoo is never overwritten by models of someone's photos
    assert zoo.main(["train", "factorized", "--smoke", "--data", str(small)]) == 2
    assert "give --folder" in capsys.readouterr().err


def test_the_training_ceiling_of_a_huge_photo_is_measured_on_a_central_square():
    photos = {
        "wide": torch.rand(3, 1200, 2000),
        "thin": torch.rand(3, 300, 5000),
        "small": torch.rand(3, 400, 600),
    }
    bounded = zoo._bounded(photos)
    assert bounded["wide"].shape == (3, 1024, 1024)
    assert bounded["thin"].shape == (3, 300, 300)
    assert bounded["small"] is photos["small"]


def test_the_zoo_trains_on_another_device_to_the_same_files(
    smoke_zoo, tmp_path, monkeypatch
):
    """``make zoo DEVICE=cuda``, checked on the CPU's stand-in for a second device:
    training, measuring and saving there give the CPU's weights to the bit."""
    from lic_teach import device_check

    folder, _ = smoke_zoo
    trained_on = []
    fit = train.fit

    def spied_fit(model, *args, **kwargs):
        trained_on.append(kwargs["device"])
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(train, "fit", spied_fit)
    with device_check.stand_in() as device:
        moved = zoo.train_family(
            "factorized",
            zoo.SMOKE_RECIPE,
            tmp_path / "zoo",
            tmp_path / "work",
            progress=False,
            device=device,
        )
    assert trained_on
    assert set(trained_on) == {device}
    on_cpu = [m for m in zoo.manifests(folder) if m["family"] == "factorized"]
    for a, b in zip(moved, on_cpu, strict=True):
        assert a["sha256"] == b["sha256"]
        assert a["rd_held_out"] == b["rd_held_out"]
        assert a["ceiling_psnr"] == b["ceiling_psnr"]


def test_a_device_this_machine_lacks_is_refused_by_name(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    arguments = ["train", "factorized", "--smoke", "--folder", "unused"]
    assert zoo.main([*arguments, "--device", "cuda"]) == 2
    assert "this machine has no CUDA GPU" in capsys.readouterr().err
    assert zoo.main([*arguments, "--device", "tpu7"]) == 2
    assert "unknown device 'tpu7'" in capsys.readouterr().err
    assert zoo.main([*arguments, "--device", "meta"]) == 2
    assert "use cpu or cuda" in capsys.readouterr().err
