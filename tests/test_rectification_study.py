"""The rectifier chapter's study: an alpha search on validation photos that refuses the
held-out ones, three decoders per zoo model that all read the zoo model's bytes, records
written atomically and resumed, summaries paired by seed, and the shipped records made
by the study the code describes."""

import json
import math
from types import SimpleNamespace

import pytest

from lic_teach import data
from lic_teach.experiments import rectification


@pytest.fixture(scope="module")
def study(smoke_zoo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rectification")
    done = rectification.run_study(
        rectification.SMOKE_STUDY, folder, smoke_zoo[0], jobs=1, progress=False
    )
    return folder, done


def test_every_variant_reads_the_zoo_models_bytes(study):
    folder, done = study
    assert {(r["family"], r["quality"], r["seed"]) for r in done} == {
        ("factorized", 1, 0),
        ("factorized", 2, 0),
    }
    for record in done:
        variants = record["variants"]
        assert set(variants) == {"zoo model", *rectification.VARIANTS}
        bytes_per_image = {
            name: [v["images"][name]["bpp"] for v in variants.values()]
            for name in variants["zoo model"]["images"]
        }
        assert all(len(set(values)) == 1 for values in bytes_per_image.values()), (
            "the bitstream never changes"
        )
        for name in ("QR, alpha=0", "STP"):
            assert (
                len(variants[name]["rounded"]) == len(variants[name]["rectified"]) == 12
            )  # M of the smoke zoo
            assert variants[name]["seconds"] > 0
        assert "rounded" not in variants["control"]
        search = rectification.searches(rectification.SMOKE_STUDY, folder)["factorized"]
        assert record["alpha"] == rectification.stp_alpha(search) > 0


def test_the_study_resumes_and_ignores_records_of_another_study(study, smoke_zoo):
    folder, done = study
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert sorted(stamps) == [
        "factorized-q1-seed0.json",
        "factorized-q2-seed0.json",
        "factorized-stp.safetensors",
        "search-factorized.json",
    ]
    again = rectification.run_study(
        rectification.SMOKE_STUDY, folder, smoke_zoo[0], jobs=1, progress=False
    )
    assert again == done
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert not list(folder.glob("*.partial"))
    other = rectification.Study(**{**rectification.SMOKE_STUDY.__dict__, "steps": 3})
    assert rectification.records(other, folder) == []
    assert rectification.searches(other, folder) == {}
    (folder / "factorized-q1-seed0.json").write_text("{ damaged")
    assert len(rectification.records(rectification.SMOKE_STUDY, folder)) == 1
    (folder / "factorized-q1-seed0.json").write_text(json.dumps(done[0]))


def test_the_validation_split_holds_out_training_photos_and_refuses_test_photos():
    train_photos = data.sample_images("train")
    train, validation = rectification.validation_split(train_photos)
    assert set(train) | set(validation) == set(train_photos)
    assert not set(train) & set(validation)
    test = data.sample_images("test")
    with pytest.raises(ValueError, match="held-out photo 'astronaut'"):
        rectification.validation_split({**train_photos, "mine": test["astronaut"]})
    with pytest.raises(ValueError, match="hold out between 1 and"):
        rectification.validation_split(train_photos, len(train_photos))
    with pytest.raises(ValueError, match="held-out photo"):
        rectification.search_alpha(
            lambda alpha: None, {"crop": test["astronaut"][:, 10:74, 20:84]}
        )


@pytest.fixture
def scored_by(monkeypatch):
    """A stand-in for STP phase 2: ``train_one(alpha)`` gives a codec whose validation
    PSNR is ``psnr(alpha)``; the alphas trained, in order, go to ``tried``."""
    monkeypatch.setattr(
        rectification, "validation_psnr", lambda codec, images: codec.psnr
    )
    validation = {"crop": data.center_crop(data.sample_images("train")["coffee"], 32)}

    def search(psnr, **options):
        tried = []

        def train_one(alpha):
            tried.append(alpha)
            return SimpleNamespace(psnr=psnr(alpha))

        alpha, scores = rectification.search_alpha(train_one, validation, **options)
        return alpha, scores, tried

    return search


def test_the_alpha_search_refines_around_the_best_of_its_grid(scored_by):
    grid = {0.0: 20.0, 0.1: 21.0, 1.0: 22.0, 10.0: 21.5}
    psnr = lambda a: grid.get(a, 22.5 if a == pytest.approx(10**0.5) else 21.8)
    alpha, scores, tried = scored_by(psnr, alphas=tuple(grid))
    assert alpha == pytest.approx(10**0.5)
    assert len(scores) == 6
    assert sorted(tried) == pytest.approx(
        [0.0, 0.1, 10**-0.5, 1.0, 10**0.5, 10.0]
    )  # each trained once


def test_the_alpha_search_extends_past_the_grid_when_its_largest_value_wins(scored_by):
    psnr = lambda a: 30.0 - (math.log10(a) - 2) ** 2 if a > 0 else 20.0  # best: 100
    alpha, scores, _ = scored_by(psnr, alphas=(0.0, 0.1, 1.0, 10.0))
    assert alpha == pytest.approx(100.0)
    assert sorted(scores) == pytest.approx(
        [0.0, 0.1, 1.0, 10.0, 10**1.5, 100.0, 10**2.5, 1000.0]
    )
    alpha, scores, _ = scored_by(
        psnr, alphas=(0.0, 0.1, 1.0, 10.0), extend=0, refine=False
    )
    assert alpha == 10.0
    assert len(scores) == 4


def test_stp_takes_the_best_positive_alpha_of_the_search():
    search = {
        "alpha": 0.0,
        "scores": {"0.0": 28.2, "0.1": 28.1, "1.0": 28.15, "10.0": 28.15},
    }
    assert rectification.stp_alpha(search) == 1.0  # ties go to the smaller alpha
    assert (
        rectification.stp_alpha({"scores": {"0.0": 27.0, "3.16": 27.5, "10.0": 27.4}})
        == 3.16
    )


def test_gains_and_bd_rates_pair_variants_by_seed():
    def record(quality, seed):
        bpp = [0.2, 0.4, 0.8][quality - 1]
        psnr = 26.0 + 2 * quality
        return {
            "family": "f",
            "quality": quality,
            "seed": seed,
            "variants": {
                "zoo model": {"bpp": bpp, "psnr": psnr},
                "control": {"bpp": bpp, "psnr": psnr + 0.1 * seed},
                "STP": {"bpp": bpp, "psnr": psnr + 0.1 * seed + 0.05 * quality},
            },
        }

    done = [record(q, s) for s in (2, 0, 1) for q in (3, 1, 2)]
    assert rectification.gains(done, "f", 2, "STP", over="control") == pytest.approx(
        [0.1, 0.1, 0.1]
    )
    assert rectification.gains(done, "f", 1, "control") == pytest.approx(
        [0.0, 0.1, 0.2]
    )
    assert rectification.curve(done, "f", 1, "STP").psnr == pytest.approx(
        [28.15, 30.2, 32.25]
    )
    comparisons = rectification.bd_comparisons(done, "f", "control")
    assert [c["bd_psnr"] for c in comparisons] == pytest.approx(
        [0.0, 0.1, 0.2], abs=1e-6
    )
    assert comparisons[0]["bd_rate"] == pytest.approx(0.0, abs=1e-6)
    assert comparisons[2]["bd_rate"] < comparisons[1]["bd_rate"] < 0
    broken = [
        dict(r, variants={**r["variants"], "STP": {"bpp": 0.5, "psnr": 30.0}})
        for r in done
    ]
    assert all(c["error"] for c in rectification.bd_comparisons(broken, "f", "STP"))


def test_the_shipped_records_are_the_studys():
    shipped = rectification.records()
    assert shipped, "run `make studies` and commit lic_teach/studies/rectification"
    study = rectification.STUDY
    assert {(r["family"], r["quality"], r["seed"]) for r in shipped} == {
        (f, q, s) for f in study.families for q in study.qualities for s in study.seeds
    }
    searches = rectification.searches()
    assert set(searches) == set(study.families)
    for record in shipped:
        assert record["alpha"] == rectification.stp_alpha(searches[record["family"]])
        assert set(record["variants"]) == {"zoo model", *rectification.VARIANTS}
        assert (
            record["variants"]["STP"]["bpp"] == record["variants"]["zoo model"]["bpp"]
        )


def test_the_shipped_stp_decoders_load_and_decode_the_zoo_models_bytes(photo):
    from lic_teach import data, zoo

    x = data.center_crop(photo, 128)
    for family in rectification.STUDY.families:
        codec = rectification.trained(family)
        base = zoo.load(family, rectification.STUDY.search_quality)
        assert codec.compress(x) == base.compress(x)
        assert codec.decompress(base.compress(x)).shape == x.shape


def test_trained_refuses_a_study_without_weights(study):
    folder, _ = study
    with pytest.raises(ValueError, match="make studies"):
        rectification.trained("factorized", rectification.STUDY, folder)
