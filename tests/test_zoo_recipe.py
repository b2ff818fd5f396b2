"""The zoo's recipe study: resumable segments at equal CPU time, measured records."""

import dataclasses
import json
import math
import shutil

import pytest
import torch
from helpers import counter

from lic_teach import data, evaluate, zoo
from lic_teach.experiments import zoo_recipe
from lic_teach.metrics import RDCurve

CHUNK = zoo_recipe.CHUNK
TINY = zoo_recipe.Recipe(
    "tiny",
    "factorized",
    N=8,
    M=8,
    patch_size=32,
    batch_size=2,
    cpu_seconds=10.0,
    segment_seconds=5.0,
    eval_size=64,
)


def state(folder, recipe=TINY) -> dict:
    return torch.load(
        zoo_recipe.state_path(recipe, folder), map_location="cpu", weights_only=True
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The tiny recipe trained straight through: its folder and record."""
    folder = tmp_path_factory.mktemp("straight")
    return folder, zoo_recipe.run(TINY, folder, clock=counter(), progress=False)


def test_a_run_trains_every_segment_and_records_measured_points(straight):
    folder, record = straight
    assert record["finished"]
    assert record["settings_hash"] == TINY.key()
    assert [s["segment"] for s in record["segments"]] == [1, 2]
    assert [s["steps"] for s in record["segments"]] == [5 * CHUNK, 10 * CHUNK]
    assert [s["cpu_seconds"] for s in record["segments"]] == [5.0, 10.0]
    assert [s["segment_steps"] for s in record["segments"]] == [5 * CHUNK] * 2
    for point in record["segments"]:
        assert point["bpp"] > 0
        assert math.isfinite(point["psnr"])
        assert math.isfinite(point["ceiling_held_out"])
        assert math.isfinite(point["ceiling_train"])
        assert point["hyper_range_held_out"] is None  # a factorized prior has no h_s
    assert json.loads(zoo_recipe.record_path(TINY, folder).read_text()) == record


def test_the_learning_rate_drops_at_ninety_percent_of_the_cpu_budget(straight):
    _, record = straight
    budget = TINY.cpu_seconds
    assert zoo_recipe.learning_rate(TINY, 0.89 * budget) == TINY.lr
    assert zoo_recipe.learning_rate(TINY, 0.91 * budget) == TINY.lr / 10
    assert [s["lr"] for s in record["segments"]] == [TINY.lr, TINY.lr / 10]


def test_the_weights_are_float16_safetensors_matching_the_record(straight):
    from safetensors.torch import load_file

    folder, record = straight
    path = folder / record["weights"]["file"]
    weights = load_file(str(path))
    assert weights["g_a.0.weight"].dtype == torch.float16
    model = zoo_recipe.new_model(TINY)
    zoo.load_weights(model, path, record["weights"]["sha256"])
    trained = state(folder)["model"]
    assert torch.equal(model.g_s[0].weight, trained["g_s.0.weight"].half().float())
    # the ceiling is this float16 model's continuous reconstruction of the held-out
    # photos (this early in training it may lie on either side of the coded PSNR)
    ceiling = evaluate.ceiling(model, data.held_out(TINY.eval_size))
    assert ceiling == pytest.approx(record["segments"][-1]["ceiling_held_out"])


def test_a_run_stopped_after_one_segment_continues_to_the_same_weights(
    straight, tmp_path
):
    first = zoo_recipe.run(
        TINY, tmp_path, max_segments=1, clock=counter(), progress=False
    )
    assert not first["finished"]
    assert len(first["segments"]) == 1
    second = zoo_recipe.run(TINY, tmp_path, clock=counter(), progress=False)
    assert second["finished"]
    folder, record = straight
    assert [s["steps"] for s in second["segments"]] == [5 * CHUNK, 10 * CHUNK]
    resumed, through = state(tmp_path)["model"], state(folder)["model"]
    for key in through:
        assert torch.allclose(resumed[key], through[key], atol=1e-6), key
    assert second["segments"][-1]["bpp"] == pytest.approx(
        record["segments"][-1]["bpp"], rel=1e-6
    )


def test_a_rerun_skips_finished_segments(straight):
    folder, record = straight

    def no_clock():
        raise AssertionError("a finished recipe must not train")

    again = zoo_recipe.run(TINY, folder, clock=no_clock, progress=False)
    assert again["segments"] == record["segments"]


def test_without_the_state_file_a_run_continues_from_the_half_weights(tmp_path):
    zoo_recipe.run(TINY, tmp_path, max_segments=1, clock=counter(), progress=False)
    shutil.rmtree(tmp_path / "resume")
    record = zoo_recipe.run(TINY, tmp_path, clock=counter(), progress=False)
    assert record["finished"]
    assert [s["steps"] for s in record["segments"]] == [5 * CHUNK, 10 * CHUNK]
    assert "next_resumed_from" in record["segments"][0]


def test_a_record_of_other_settings_is_refused(straight):
    folder, _ = straight
    other = dataclasses.replace(TINY, lr=3e-4)
    with pytest.raises(ValueError, match="other settings"):
        zoo_recipe.run(other, folder, clock=counter(), progress=False)


def test_jpeg_psnr_is_interpolated_linearly_in_bpp():
    curve = RDCurve(name="jpeg", bpp=[0.2, 0.4, 0.8], psnr=[28.0, 30.0, 34.0])
    assert zoo_recipe.jpeg_psnr_at(curve, 0.6) == pytest.approx(32.0)
    assert zoo_recipe.jpeg_psnr_at(curve, 0.3) == pytest.approx(29.0)
    assert zoo_recipe.jpeg_psnr_at(curve, 0.4) == pytest.approx(30.0)
    assert zoo_recipe.jpeg_psnr_at(curve, 0.1) is None
    assert zoo_recipe.jpeg_psnr_at(curve, 0.9) is None


def test_records_and_table_give_one_row_per_recipe(straight):
    folder, _ = straight
    assert [r["recipe"]["name"] for r in zoo_recipe.records(folder)] == ["tiny"]
    table = zoo_recipe.table(folder)
    assert len(table.rows) == 1
    assert table.rows[0][:2] == ["tiny", str(10 * CHUNK)]


def test_the_study_recipes_are_distinct_and_run_at_one_lambda_but_the_capacity_test():
    names = [r.name for r in zoo_recipe.RECIPES]
    assert len(set(names)) == len(names)
    lambdas = {r.name: r.lmbda for r in zoo_recipe.RECIPES}
    control = "factorized-N48-M64-p128-l0.0067-open"  # per-lambda against fine-tuned
    assert lambdas.pop(control) in next(
        r.cooldown_lambdas
        for r in zoo_recipe.RECIPES
        if r.name == "factorized-N48-M64-p128-open"
    )
    top = [name for name, lmbda in lambdas.items() if lmbda == 0.0932]
    assert [lambdas.pop(name) for name in top] == [
        0.0932,
        0.0932,
    ]  # capacity at the top
    assert max(r.cooldown_lambdas for r in zoo_recipe.RECIPES) == (
        0.0018,
        0.0067,
        0.0932,
    )
    assert set(lambdas.values()) == {0.025}
    assert {r.patch_size**2 * r.batch_size for r in zoo_recipe.RECIPES} == {131072}


def test_the_colour_swapped_ladder_differs_from_its_twins_only_in_the_swaps():
    by_name = {r.name: r for r in zoo_recipe.RECIPES}
    swapped = [r for r in zoo_recipe.RECIPES if r.swap_channels]
    assert {r.architecture for r in swapped} == {
        "factorized",
        "scale",
        "mean-scale",
        "checkerboard",
    }
    for recipe in swapped:
        twin = by_name[recipe.name.replace("-swap", "")]
        assert recipe == dataclasses.replace(
            twin,
            name=recipe.name,
            swap_channels=0.5,
            cooldown_lambdas=(0.0009, 0.0035, 0.0932, 0.25),  # 0.1 to 1 bpp
        )
        assert recipe.key() != twin.key()
    # a recipe without swaps keeps the hash its records were made with
    for recipe in zoo_recipe.RECIPES:
        record = zoo_recipe.read_record(recipe, zoo_recipe.FOLDER)  # raises if not
        assert record is None or record["settings_hash"] == recipe.key()


def test_the_command_line_refuses_an_unknown_recipe(capsys):
    assert zoo_recipe.main(["--recipes", "no-such-recipe"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


# An open-ended recipe: the trunk at lr throughout, a cooled-down copy measured at
# segments 1, 2, 4, ... and at the last.
OPEN = dataclasses.replace(TINY, name="open", cooldown=0.5)


def test_cooldowns_come_at_doublings_of_cpu_time_and_at_the_end():
    long = dataclasses.replace(OPEN, cpu_seconds=45.0)  # 9 segments of 5 s
    chosen = [s for s in range(1, 10) if zoo_recipe.cools_down(long, s)]
    assert chosen == [1, 2, 4, 8, 9]
    assert not any(zoo_recipe.cools_down(TINY, s) for s in range(1, 10))


@pytest.fixture(scope="module")
def open_ended(tmp_path_factory):
    """:data:`OPEN` trained to its budget, and a copy of it that never decays: their
    folder and the open run's record."""
    folder = tmp_path_factory.mktemp("open")
    record = zoo_recipe.run(OPEN, folder, clock=counter(), progress=False)
    never = dataclasses.replace(TINY, name="never", decay_at=2.0, cpu_seconds=20.0)
    zoo_recipe.run(never, folder, clock=counter(), progress=False)
    return folder, record


def test_an_open_ended_run_keeps_its_trunk_and_measures_cooled_copies(open_ended):
    folder, record = open_ended
    assert record["finished"]
    assert [s["lr"] for s in record["segments"]] == [OPEN.lr, OPEN.lr]
    for segment in record["segments"]:
        cooled = segment["cooled"]
        assert cooled["steps"] == max(CHUNK, CHUNK * round(0.5 * segment["steps"] / 10))
        assert cooled["cpu_seconds"] > 0
        assert math.isfinite(cooled["psnr"])
        assert math.isfinite(cooled["ceiling_held_out"])
    # the cooldowns leave the trunk as a run that never decays had it then
    never = dataclasses.replace(TINY, name="never", decay_at=2.0, cpu_seconds=20.0)
    plain = zoo_recipe.run(never, folder, clock=counter(), progress=False)
    assert plain["segments"][1]["bpp"] == record["segments"][1]["bpp"]
    # the latest cooled copy is shipped beside the trunk, float16, as recorded
    shipped = record["cooled_weights"]
    model = zoo_recipe.new_model(OPEN)
    zoo.load_weights(model, folder / shipped["file"], shipped["sha256"])
    assert shipped["segment"] == 2
    trunk = state(folder, OPEN)["model"]["g_s.0.weight"].half().float()
    assert not torch.equal(model.g_s[0].weight, trunk)
    row = next(r for r in zoo_recipe.table(folder).rows if r[0] == "open")
    assert row[3].startswith("cooled")


def test_an_open_ended_run_continues_with_a_larger_budget(open_ended, tmp_path):
    folder, first = open_ended
    for name in ("open.json", "open.safetensors", "open-cooled.safetensors"):
        shutil.copy(folder / name, tmp_path / name)
    (tmp_path / "resume").mkdir()
    shutil.copy(folder / "resume" / "open.pt", tmp_path / "resume" / "open.pt")
    longer = dataclasses.replace(OPEN, cpu_seconds=20.0)
    assert longer.key() == OPEN.key()  # the budget is not part of an open-ended run
    record = zoo_recipe.run(longer, tmp_path, clock=counter(), progress=False)
    assert record["finished"]
    assert record["segments"][:2] == first["segments"]
    assert [s["steps"] for s in record["segments"]] == [
        5 * CHUNK * i for i in (1, 2, 3, 4)
    ]
    assert ["cooled" in s for s in record["segments"]] == [True, True, False, True]
    # the continued trunk is the trunk of a run that never decays, step for step
    resumed = state(tmp_path, OPEN)["model"]
    never = state(folder, dataclasses.replace(TINY, name="never"))["model"]
    for key in never:
        assert torch.allclose(resumed[key], never[key], atol=1e-6), key


def test_the_command_line_interleaves_segments_of_several_recipes(
    tmp_path, monkeypatch
):
    recipes = tuple(dataclasses.replace(TINY, name=n) for n in ("one", "two"))
    monkeypatch.setattr(zoo_recipe, "RECIPES", recipes)
    calls, run = [], zoo_recipe.run

    def counted(recipe, folder, **options):
        calls.append((recipe.name, options.get("max_segments")))
        return run(recipe, folder, clock=counter(), progress=False, **options)

    monkeypatch.setattr(zoo_recipe, "run", counted)
    arguments = ["--recipes", "one,two", "--interleave", "--folder", str(tmp_path)]
    assert zoo_recipe.main([*arguments, "--segment-minutes", str(5 / 60)]) == 0
    assert calls == [("one", 1), ("two", 1)] * 2
    assert [len(r["segments"]) for r in zoo_recipe.records(tmp_path)] == [2, 2]


def test_cooldowns_at_other_lambdas_give_each_point_a_curve_and_leave_the_trunk(
    open_ended, tmp_path
):
    folder, open_record = open_ended
    family = dataclasses.replace(OPEN, cooldown_lambdas=(0.005,))
    assert family.key() == OPEN.key()  # measurements only: the trunk is the same
    record = zoo_recipe.run(family, tmp_path, clock=counter(), progress=False)
    for segment in record["segments"]:
        cooled = segment["cooled_family"]
        assert set(cooled["points"]) == {"0.025", "0.005"}
        assert cooled["points"]["0.025"] == segment["cooled"]
        assert cooled["points"]["0.005"]["steps"] == segment["cooled"]["steps"]
        bd_rate = cooled["bd_rate_vs_jpeg"]
        assert bd_rate is None or math.isfinite(bd_rate)
    trunk, plain = state(tmp_path, family)["model"], state(folder, OPEN)["model"]
    for key in plain:
        assert torch.equal(trunk[key], plain[key]), key
    assert [s["bpp"] for s in record["segments"]] == [
        s["bpp"] for s in open_record["segments"]
    ]
    (row,) = zoo_recipe.table(tmp_path).rows
    assert row[-1] == "not defined" or row[-1].endswith("%")


def test_a_stop_during_a_cooldown_keeps_the_trunk_and_finishes_it_later(
    open_ended, tmp_path, monkeypatch
):
    folder, straight = open_ended
    cool_down = zoo_recipe.cool_down

    def stopped(*arguments, **options):
        raise KeyboardInterrupt  # the machine is taken back mid-cooldown

    monkeypatch.setattr(zoo_recipe, "cool_down", stopped)
    with pytest.raises(KeyboardInterrupt):
        zoo_recipe.run(OPEN, tmp_path, clock=counter(), progress=False)
    saved = json.loads(zoo_recipe.record_path(OPEN, tmp_path).read_text())
    assert saved["segments"][0]["cooldown_pending"]  # the trunk's segment is kept
    monkeypatch.setattr(zoo_recipe, "cool_down", cool_down)
    first = zoo_recipe.run(
        OPEN, tmp_path, max_segments=0, clock=counter(), progress=False
    )
    assert "cooldown_pending" not in first["segments"][0]
    assert first["cooled_weights"]["segment"] == 1
    # one segment a run from here on, each restored from resume/: the cooled weights
    # stay in the record
    record = zoo_recipe.run(
        OPEN, tmp_path, max_segments=1, clock=counter(), progress=False
    )
    assert record["cooled_weights"]["segment"] == 2
    again = zoo_recipe.run(OPEN, tmp_path, clock=counter(), progress=False)
    assert again["cooled_weights"] == record["cooled_weights"]
    assert [s["cooled"]["bpp"] for s in again["segments"]] == [
        s["cooled"]["bpp"] for s in straight["segments"]
    ]


def test_the_command_line_extends_only_open_ended_recipes(tmp_path, monkeypatch):
    fixed, extended = TINY, dataclasses.replace(OPEN, name="extended")
    monkeypatch.setattr(zoo_recipe, "RECIPES", (fixed, extended))
    budgets, run = {}, zoo_recipe.run

    def counted(recipe, folder, **options):
        budgets[recipe.name] = recipe.cpu_seconds
        return run(recipe, folder, clock=counter(), progress=False, **options)

    monkeypatch.setattr(zoo_recipe, "run", counted)
    arguments = ["--recipes", "tiny,extended", "--folder", str(tmp_path)]
    assert zoo_recipe.main([*arguments, "--minutes-per-recipe", str(15 / 60)]) == 0
    assert budgets == {"tiny": TINY.cpu_seconds, "extended": 15.0}


def test_the_latest_cooled_family_is_published_into_the_zoo(open_ended, tmp_path):
    folder, _ = open_ended
    family = dataclasses.replace(OPEN, cooldown_lambdas=(0.005,))
    record = zoo_recipe.run(family, tmp_path, clock=counter(), progress=False)
    weights = record["cooled_family_weights"]
    assert sorted(weights) == ["0.005", "0.025"]
    assert weights["0.025"] == record["cooled_weights"]
    manifests = zoo_recipe.to_zoo(family, tmp_path, tmp_path / "zoo")
    assert [(m["family"], m["quality"], m["lambda"]) for m in manifests] == [
        ("factorized", 1, 0.005),
        ("factorized", 2, 0.025),
    ]
    last = record["segments"][-1]
    points = last["cooled_family"]["points"]
    held_out = data.held_out(family.eval_size)
    for m in manifests:
        cooled = points[str(m["lambda"])]
        assert m["steps"] == last["steps"] + cooled["steps"]
        assert m["training_seconds"] == round(
            last["cpu_seconds"] + cooled["cpu_seconds"], 1
        )
        assert m["study"]["segment"] == last["segment"]
        assert len(m["learning_curve"]) == len(record["segments"])
        # the zoo's model is the study's cooled copy: the same real-bitstream point
        model = zoo.load("factorized", m["quality"], tmp_path / "zoo")
        point = evaluate.codec_point(model, held_out)
        assert point["bpp"] == pytest.approx(cooled["bpp"], abs=1e-9)
        assert point["psnr"] == pytest.approx(cooled["psnr"], abs=1e-9)
        assert m["rd_held_out"]["bpp"] == pytest.approx(cooled["bpp"], abs=1e-5)
    assert [e["cooled_bd_rate_vs_jpeg"] for e in manifests[0]["learning_curve"]] == [
        s["cooled_family"]["bd_rate_vs_jpeg"] for s in record["segments"]
    ]


def test_the_command_line_publishes_into_the_zoo_or_says_why_not(
    open_ended, straight, tmp_path, monkeypatch, capsys
):
    folder, _ = open_ended
    monkeypatch.setattr(zoo_recipe, "RECIPES", (OPEN, TINY))
    arguments = ["--folder", str(folder), "--to-zoo", str(tmp_path)]
    assert zoo_recipe.main([*arguments, "--recipes", "open"]) == 0
    assert "factorized q1" in capsys.readouterr().out
    assert [m["lambda"] for m in zoo.manifests(tmp_path)] == [OPEN.lmbda]
    folder, _ = straight  # a fixed-budget run: no cooled family
    arguments = ["--folder", str(folder), "--to-zoo", str(tmp_path)]
    assert zoo_recipe.main([*arguments, "--recipes", "tiny"]) == 2
    assert "tiny" in capsys.readouterr().err


def test_the_jpeg_crossing_is_read_off_the_cooled_families():
    def curve(*points):
        return [{"cpu_seconds": s, "cooled_bd_rate_vs_jpeg": b} for s, b in points]

    crossing = zoo_recipe.jpeg_crossing(
        curve((300, None), (600, 12.0), (1200, 4.0), (2400, -4.0), (4800, -9.0))
    )
    assert crossing["bracket"] == (1200, 2400)
    assert crossing["cpu_seconds"] == pytest.approx(1200 * 2**0.5)  # halfway in log
    early = zoo_recipe.jpeg_crossing(curve((600, -3.0), (1200, -8.0)))
    assert early == {"cpu_seconds": 600, "bracket": (None, 600)}
    assert zoo_recipe.jpeg_crossing(curve((600, 5.0), (1200, 1.0))) is None
    assert zoo_recipe.jpeg_crossing([{"cpu_seconds": 300}]) is None
