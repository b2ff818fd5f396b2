"""The zoo: models published by the recipe study's runs (``zoo_recipe.run`` and
``to_zoo``, what ``make zoo`` runs), safetensors that load only when they are the files
their manifests describe, and manifests whose figures the shipped weights
reproduce."""

import json

import pytest
import safetensors.torch
import torch
from helpers import counter

from lic_teach import baselines, crosscheck, data, evaluate, train, zoo, zoo_data
from lic_teach.experiments import evaluation, zoo_recipe
from lic_teach.models import FactorizedPrior


def test_training_writes_weights_and_manifests_that_reproduce(smoke_zoo):
    folder, study, recipes = smoke_zoo
    manifests = zoo.manifests(folder)
    assert [(m["family"], m["quality"]) for m in manifests] == [
        ("factorized", 1),
        ("factorized", 2),
        ("mean-scale", 1),
        ("mean-scale", 2),
    ]
    by_family = {r.architecture: r for r in recipes}
    for m in manifests:
        recipe = by_family[m["family"]]
        last = zoo_recipe.read_record(recipe, study)["segments"][-1]
        cooled = last["cooled_family"]["points"][str(m["lambda"])]
        assert m["steps"] == last["steps"] + cooled["steps"]
        assert m["lambda"] in (recipe.lmbda, *recipe.cooldown_lambdas)
        stored = safetensors.torch.load_file(str(folder / m["file"]))
        assert stored
        assert not any(key.endswith("quantized_cdf") for key in stored)
        assert m["sha256"] == data.sha256(folder / m["file"])
        model = zoo.load(m["family"], m["quality"], folder)
        held_out = data.held_out(recipe.eval_size)
        point = evaluate.codec_point(model, held_out, with_ms_ssim=True)
        for key in ("bpp", "psnr", "ms_ssim"):  # the manifest's, from the weights
            assert point[key] == pytest.approx(m["rd_held_out"][key], abs=1e-3)
        assert m["rd_held_out"]["ms_ssim"] is not None
        assert m["ceiling_psnr"]["held_out"] == round(
            evaluate.ceiling(model, held_out), 3
        )
        assert m["ceiling_psnr"]["train"] == round(
            evaluate.ceiling(model, zoo_data.training_photos()), 3
        )
    assert set(zoo.models(folder)) == {(m["family"], m["quality"]) for m in manifests}


def test_a_run_resumed_after_an_interruption_publishes_the_same_weights(
    smoke_zoo, tmp_path
):
    """A run stopped after its first segment and continued publishes the files of
    the run straight through, to the bit."""
    recipe = smoke_zoo.recipes[0]
    study, published = tmp_path / "study", tmp_path / "zoo"
    first = zoo_recipe.run(
        recipe, study, max_segments=1, clock=counter(), progress=False
    )
    assert len(first["segments"]) == 1
    zoo_recipe.run(recipe, study, clock=counter(), progress=False)
    again = zoo_recipe.to_zoo(recipe, study, published)
    straight = [
        m for m in zoo.manifests(smoke_zoo.folder) if m["family"] == "factorized"
    ]
    assert [m["sha256"] for m in again] == [m["sha256"] for m in straight]


def test_damaged_or_foreign_files_raise_naming_the_file(smoke_zoo, tmp_path):
    folder = smoke_zoo.folder
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
    folder = smoke_zoo.folder
    for family in ("factorized", "mean-scale"):
        report = crosscheck.crosscheck(zoo.load(family, 2, folder), photo[:, :64, :96])
        assert report["same_bitstream"], report
        assert report["max_diff_decoded"] < 1e-4, report


def test_command_line(smoke_zoo, capsys):
    assert zoo.main(["list", "--folder", str(smoke_zoo.folder)]) == 0
    assert "mean-scale q2" in capsys.readouterr().out
    for family in ("jpeg", "two-layer"):  # unknown; known, but no recipe chosen yet
        assert zoo_recipe.main(["--zoo", "--families", family]) == 2
        assert f"no zoo recipe for the family {family}" in capsys.readouterr().err
    assert zoo_recipe.main(["--families", "factorized"]) == 2
    assert "give --zoo" in capsys.readouterr().err


def test_the_zoo_is_one_recipe_a_family_of_the_study():
    recipes = {r.name: r for r in zoo_recipe.RECIPES}
    families = [recipes[name].architecture for name in zoo_recipe.ZOO]
    assert families == ["factorized", "scale", "mean-scale", "checkerboard"]
    assert all(recipes[name].cooldown_lambdas for name in zoo_recipe.ZOO)


def _training_photos(manifest: dict) -> dict:
    """The photos a shipped manifest's model trained on: those the old trainer
    named in a sentence (``lic_teach.data.sample_images('train') at scales ...``), or
    the bundled ones ``zoo_recipe.to_zoo`` names."""
    if isinstance(manifest["trained_on"], str):
        return data.sample_images("train")
    return zoo_data.training_photos()


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
            assert evaluate.ceiling(model, _training_photos(m)) == pytest.approx(
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
    recipes = zoo_recipe.RECIPES[:2]
    for quality, recipe in enumerate(recipes, start=1):
        (tmp_path / f"two-layer-q{quality}.json").write_text(
            json.dumps(
                {
                    "family": "two-layer",
                    "quality": quality,
                    "recipe": zoo_recipe.recipe_fields(recipe),
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


@pytest.fixture
def tiny_zoo_recipes(smoke_zoo, monkeypatch):
    """The command line's ``--zoo`` made of the smoke zoo's recipes, trained to their
    own budget (``ZOO_MINUTES``) by the counter clock: what ``make zoo`` does, in
    seconds."""
    recipes = smoke_zoo.recipes
    monkeypatch.setattr(zoo_recipe, "RECIPES", recipes)
    monkeypatch.setattr(zoo_recipe, "ZOO", tuple(r.name for r in recipes))
    monkeypatch.setattr(zoo_recipe, "ZOO_MINUTES", recipes[0].cpu_seconds / 60)
    run = zoo_recipe.run

    def counted(recipe, folder, **options):
        return run(recipe, folder, **{**options, "clock": counter(), "progress": False})

    monkeypatch.setattr(zoo_recipe, "run", counted)
    return recipes


def test_the_zoo_trains_on_a_folder_of_ones_own_photos(
    smoke_zoo, tiny_zoo_recipes, tmp_path
):
    photos = _photo_folder(tmp_path / "mine")
    (photos / "notes.txt").write_text("not a photo: skipped")
    mine = zoo_data.folder_photos(photos)
    # the command line, as make zoo DATA=photos/ FAMILIES=factorized runs it
    arguments = ["--zoo", "--families", "factorized", "--data", str(photos)]
    where = ["--folder", str(tmp_path / "my-zoo" / "study")]
    where += ["--to-zoo", str(tmp_path / "my-zoo")]
    assert zoo_recipe.main([*arguments, *where]) == 0
    manifests = zoo.manifests(tmp_path / "my-zoo")
    assert [m["quality"] for m in manifests] == [1, 2]
    for manifest in manifests:
        trained_on = manifest["trained_on"]
        assert trained_on["photos"] == ["chelsea.png", "coffee.jpg"]
        assert trained_on["sha256"] == zoo_data.photos_sha256(mine)
        assert trained_on["folder"] == str(photos.resolve())
        model = zoo.load("factorized", manifest["quality"], tmp_path / "my-zoo")
        ceiling = round(evaluate.ceiling(model, mine), 3)
        assert manifest["ceiling_psnr"]["train"] == ceiling
    # a run never continues on other photos: neither on the bundled ones, nor the
    # smoke zoo's run on the bundled ones on these
    recipe = tiny_zoo_recipes[0]
    with pytest.raises(ValueError, match="trained on the photos in .*mine.* not on"):
        zoo_recipe.run(recipe, tmp_path / "my-zoo" / "study")
    with pytest.raises(ValueError, match="bundled training photos .* not on .*mine"):
        zoo_recipe.run(recipe, smoke_zoo.study, photos=photos)


def test_the_zoo_trains_on_the_bundled_photos_by_default(smoke_zoo):
    for m in zoo.manifests(smoke_zoo.folder):
        assert m["trained_on"]["photos"] == list(zoo_data.training_photos())
        assert m["trained_on"]["augmentation"]["swap_channels"] == 0.0
        assert m["devices"] == ["cpu"]


def test_make_zoo_trains_the_zoos_recipes_and_publishes_them_into_the_zoo(
    tiny_zoo_recipes, tmp_path, monkeypatch, capsys
):
    """``make zoo FAMILIES=factorized``: the family's recipe of ``ZOO`` trained for
    ``ZOO_MINUTES``, then published into the shipped zoo (here a stand-in folder)."""
    monkeypatch.setattr(zoo, "FOLDER", tmp_path / "shipped")
    study = tmp_path / "study"
    arguments = ["--zoo", "--families", "factorized", "--folder", str(study)]
    assert zoo_recipe.main(arguments) == 0
    assert "factorized q2" in capsys.readouterr().out
    (record,) = zoo_recipe.records(study)
    assert record["finished"]
    assert record["segments"][-1]["cpu_seconds"] == 60 * zoo_recipe.ZOO_MINUTES
    manifests = zoo.manifests(tmp_path / "shipped")
    assert [(m["family"], m["quality"]) for m in manifests] == [
        ("factorized", 1),
        ("factorized", 2),
    ]
    assert {m["study"]["record"] for m in manifests} == {"factorized-smoke.json"}


def test_a_folder_of_photos_that_cannot_be_trained_on_is_refused(
    tiny_zoo_recipes, tmp_path, capsys
):
    with pytest.raises(FileNotFoundError, match="no folder"):
        zoo_data.folder_photos(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image file"):
        zoo_data.folder_photos(tmp_path / "empty")
    small = _photo_folder(tmp_path / "small", side=40)
    with pytest.raises(ValueError, match="chelsea.png is 40x40 pixels"):
        zoo_data.folder_photos(small, min_side=64)
    broken = _photo_folder(tmp_path / "broken")
    (broken / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="zz.png"):
        zoo_data.folder_photos(broken)
    leaked = _photo_folder(tmp_path / "leaked")
    data.to_pil(data.sample_images("test")["astronaut"]).save(leaked / "a.png")
    with pytest.raises(ValueError, match="evaluation image 'astronaut'"):
        zoo_data.folder_photos(leaked)
    arguments = ["--zoo", "--families", "factorized", "--folder", str(tmp_path / "s")]
    arguments += ["--to-zoo", str(tmp_path / "z")]
    for folder, message in [
        (leaked, "evaluation image"),
        (small, "smaller than the 64-pixel crops"),  # the recipe's patch size
        (tmp_path / "absent", "no folder of training photos"),
    ]:
        assert zoo_recipe.main([*arguments, "--data", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zoo: ")
        assert message in err
    assert not (tmp_path / "z").exists()
    # the shipped study and zoo are never overwritten by runs on someone's photos
    for where in (
        [],
        ["--folder", str(tmp_path / "s")],  # the models would go to the shipped zoo
        ["--to-zoo", str(tmp_path / "z")],  # the runs would go to the shipped study
    ):
        command = ["--zoo", "--families", "factorized", "--data", str(leaked)]
        assert zoo_recipe.main([*command, *where]) == 2
        assert "give --folder" in capsys.readouterr().err


def test_the_zoo_trains_on_another_device_to_the_same_files(
    smoke_zoo, tmp_path, monkeypatch
):
    """``make zoo DEVICE=cuda``, checked on the CPU's stand-in for a second device:
    training, measuring and saving there (and continuing from the state saved there)
    give the CPU's record points and files, to the bit."""
    from lic_teach import device_check

    recipe = smoke_zoo.recipes[0]
    trained_on = set()
    train_steps = train.train_steps

    def spied(step_loss, parameters, **options):
        trained_on.add(parameters[0].device)
        return train_steps(step_loss, parameters, **options)

    monkeypatch.setattr(train, "train_steps", spied)
    with device_check.stand_in() as device:
        for segments in (1, None):  # stopped after one segment, then continued
            moved = zoo_recipe.run(
                recipe,
                tmp_path / "study",
                device=device,
                max_segments=segments,
                clock=counter(),
                progress=False,
            )
    assert trained_on == {device}
    on_cpu = zoo_recipe.read_record(recipe, smoke_zoo.study)
    timing = ("wall_seconds", "measure_cpu_seconds", "device")
    for a, b in zip(moved["segments"], on_cpu["segments"], strict=True):
        assert a["device"] == str(device)
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }
    assert moved["weights"] == on_cpu["weights"]
    assert moved["cooled_family_weights"] == on_cpu["cooled_family_weights"]
    published = zoo_recipe.to_zoo(recipe, tmp_path / "study", tmp_path / "zoo")
    shipped = [
        m for m in zoo.manifests(smoke_zoo.folder) if m["family"] == "factorized"
    ]
    for a, b in zip(published, shipped, strict=True):
        assert a["devices"] == [str(device)]
        assert a["sha256"] == b["sha256"]
        assert a["rd_held_out"] == b["rd_held_out"]
        assert a["ceiling_psnr"] == b["ceiling_psnr"]


def test_measuring_follows_the_model_to_another_device(smoke_zoo):
    """A hyperprior model on the stand-in device measures as on the CPU: bitstreams,
    ceilings and the hyper-synthesis range."""
    from lic_teach import device_check

    recipe = smoke_zoo.recipes[1]
    held_out, training = data.held_out(recipe.eval_size), zoo_data.training_photos()
    jpeg = zoo_recipe.jpeg_curve(held_out)
    model = zoo.load("mean-scale", 1, smoke_zoo.folder)
    on_cpu = zoo_recipe.measure(model, held_out, training, jpeg)
    with device_check.stand_in() as device:
        moved = zoo_recipe.measure(model.to(device), held_out, training, jpeg)
    assert on_cpu["hyper_range_train"] is not None
    assert moved == on_cpu


def test_a_device_this_machine_lacks_is_refused_by_name(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    arguments = ["--zoo", "--families", "factorized", "--folder", "unused"]
    assert zoo_recipe.main([*arguments, "--device", "cuda"]) == 2
    assert "this machine has no CUDA GPU" in capsys.readouterr().err
    assert zoo_recipe.main([*arguments, "--device", "tpu7"]) == 2
    assert "unknown device 'tpu7'" in capsys.readouterr().err
    assert zoo_recipe.main([*arguments, "--device", "meta"]) == 2
    assert "use cpu or cuda" in capsys.readouterr().err
