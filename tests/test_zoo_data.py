"""The zoo's training photos: the split against every evaluation image, and the
augmentation."""

import dataclasses
import io
from collections import Counter

import pytest
import torch
from PIL import Image

from lic_teach import data, train, zoo_data
from lic_teach.experiments import evaluation

LIKENESS = 0.9  # a resemblance above this would be a crop or downscale


@pytest.fixture(scope="module")
def photos():
    return zoo_data.training_photos()


@pytest.fixture(scope="module")
def excluded():
    return {n: data.load_image(p) for n, p in zoo_data.excluded_paths().items()}


def is_grey(x):
    return bool(torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]))


# --------------------------------------------------------------------------- the split


def test_every_bundled_image_is_trained_on_or_left_out_with_a_reason():
    trained = {p.path.rsplit("/", 1)[-1] for p in zoo_data.TRAINING_PHOTOS}
    assert not trained & set(zoo_data.LEFT_OUT)
    assert trained | set(zoo_data.LEFT_OUT) == set(zoo_data.bundled_image_files())
    assert all(reason.strip() for reason in zoo_data.LEFT_OUT.values())


def test_the_training_photos_are_colour_and_the_grey_left_out_are_grey(photos):
    assert len(photos) == 6
    assert not any(is_grey(x) for x in photos.values())
    files = zoo_data.bundled_image_files()
    for name, reason in zoo_data.LEFT_OUT.items():
        if "grey" in reason and name.endswith(".png"):
            assert is_grey(data.load_image(files[name])), name


def test_no_evaluation_image_is_trained_on_by_file(photos):
    trained, excluded = zoo_data.training_paths(), zoo_data.excluded_paths()
    assert {p.resolve() for p in trained.values()}.isdisjoint(
        p.resolve() for p in excluded.values()
    )
    assert {data.sha256(p) for p in trained.values()}.isdisjoint(
        data.sha256(p) for p in excluded.values()
    )


@pytest.mark.filterwarnings("ignore:budget .gpu. asked for")
def test_the_excluded_images_cover_the_evaluation_chapters_images(tmp_path):
    from lic_teach.budget import NAMES, budget

    excluded = set(zoo_data.excluded_paths())
    for name in NAMES:
        images, _ = evaluation.evaluation_images(budget(name), kodak_root=tmp_path)
        assert set(images) <= excluded
    assert "matplotlib grace_hopper" in excluded


def test_no_training_photo_is_an_evaluation_image_or_cut_from_one(photos, excluded):
    scores = zoo_data.resemblances(photos, excluded)
    assert max(scores.values()) < LIKENESS, max(scores, key=scores.get)
    reverse = zoo_data.resemblances(excluded, photos)
    assert max(reverse.values()) < LIKENESS, max(reverse, key=reverse.get)


def _jpeg(x, quality=60):
    buffer = io.BytesIO()
    data.to_pil(x).save(buffer, "JPEG", quality=quality)
    return data.pil_to_tensor(Image.open(buffer))


def test_the_content_check_finds_crops_downscales_and_re_encodings(excluded):
    astronaut, flower = excluded["astronaut"], excluded["flower"]
    derived = {
        "crop of a downscale": data.downscaled(astronaut, 0.6)[:, 40:240, 60:300],
        "downscale": data.downscaled(astronaut, 0.5),
        "re-encoded crop": _jpeg(data.downscaled(flower, 0.81)[:, 7:200, 33:250]),
        "itself": flower,
    }
    sources = {"astronaut": astronaut, "flower": flower}
    scores = zoo_data.resemblances(derived, sources)
    for name, source in [
        ("crop of a downscale", "astronaut"),
        ("downscale", "astronaut"),
        ("re-encoded crop", "flower"),
        ("itself", "flower"),
    ]:
        assert scores[name, source] > 0.95, name
    assert scores["crop of a downscale", "flower"] < LIKENESS


# ------------------------------------------------------------------------ augmentation


def synthetic_photos():
    generator = torch.Generator().manual_seed(0)
    return {
        "a": torch.rand(3, 90, 120, generator=generator),
        "b": torch.rand(3, 100, 80, generator=generator),
    }


def test_crops_have_the_patch_shape_and_stay_in_range(photos):
    crops = zoo_data.AugmentedCrops(photos, 64, seed=1)
    batch = crops.batch(3, 5)
    assert batch.shape == (5, 3, 64, 64)
    assert batch.dtype == torch.float32
    assert batch.min() >= 0
    assert batch.max() <= 1
    assert torch.equal(batch[0], crops[15])


def test_crops_are_repeatable_by_seed_and_index():
    photos = synthetic_photos()
    one = zoo_data.AugmentedCrops(photos, 32, seed=3)
    two = zoo_data.AugmentedCrops(photos, 32, seed=3)
    other = zoo_data.AugmentedCrops(photos, 32, seed=4)
    assert torch.equal(one[7], two[7])  # whatever was drawn before
    assert torch.equal(one.batch(2, 4), two.batch(2, 4))
    assert not torch.equal(one.batch(2, 4), other.batch(2, 4))
    assert not torch.equal(one[0], one[1])


def test_every_transform_happens():
    photos = synthetic_photos()
    crops = zoo_data.AugmentedCrops(photos, 32, min_scale=0.5)
    draws = [crops.draw(i) for i in range(400)]
    assert {d.flip for d in draws} == {False, True}
    assert {d.quarter_turns for d in draws} == {0, 1, 2, 3}
    sides = [d.side for d in draws]
    assert min(sides) <= 33
    assert max(sides) >= 60
    assert {d.photo for d in draws} == {"a", "b"}


def test_each_transform_is_what_it_says():
    photos = synthetic_photos()
    crops = zoo_data.AugmentedCrops(photos, 32)
    plain = zoo_data.Crop("a", top=5, left=7, side=32, flip=False, quarter_turns=0)
    window = photos["a"][:, 5:37, 7:39]
    assert torch.equal(crops.cut(plain), window)
    flipped = dataclasses.replace(plain, flip=True)
    assert torch.equal(crops.cut(flipped), window.flip(-1))
    turned = dataclasses.replace(plain, quarter_turns=1)
    assert torch.equal(crops.cut(turned), window.rot90(1, dims=(1, 2)))
    halved = dataclasses.replace(plain, side=64)
    expected = data.downscaled(photos["a"][:, 5:69, 7:71], 0.5)
    assert torch.equal(crops.cut(halved), expected)


def test_transforms_can_be_turned_off():
    crops = zoo_data.AugmentedCrops(
        synthetic_photos(), 32, min_scale=1.0, flip=False, rotate=False
    )
    draws = [crops.draw(i) for i in range(100)]
    assert {(d.flip, d.quarter_turns, d.side) for d in draws} == {(False, 0, 32)}


def test_channel_swaps_are_drawn_as_often_as_asked_and_leave_the_rest_alone():
    photos = synthetic_photos()
    plain = zoo_data.AugmentedCrops(photos, 32, seed=2)
    swapped = zoo_data.AugmentedCrops(photos, 32, seed=2, swap_channels=0.5)
    draws = [swapped.draw(i) for i in range(600)]
    orders = Counter(d.channels for d in draws)
    assert set(orders) == set(zoo_data.CHANNEL_ORDERS)
    assert orders[(0, 1, 2)] == pytest.approx(300, rel=0.15)
    for order in zoo_data.CHANNEL_ORDERS[1:]:
        assert orders[order] == pytest.approx(60, rel=0.4)
    # the same window, flip and turns as without the option: only the order differs
    for i in range(50):
        assert dataclasses.replace(draws[i], channels=(0, 1, 2)) == plain.draw(i)
    never = zoo_data.AugmentedCrops(photos, 32, seed=2, swap_channels=0.0)
    assert {never.draw(i).channels for i in range(200)} == {(0, 1, 2)}
    with pytest.raises(ValueError, match="swap_channels"):
        zoo_data.AugmentedCrops(photos, 32, swap_channels=1.5)


def test_a_channel_swap_permutes_the_colour_planes():
    photos = synthetic_photos()
    crops = zoo_data.AugmentedCrops(photos, 32)
    plain = zoo_data.Crop("b", top=3, left=2, side=32, flip=True, quarter_turns=3)
    swapped = dataclasses.replace(plain, channels=(2, 0, 1))
    x, y = crops.cut(plain), crops.cut(swapped)
    assert torch.equal(y[0], x[2])
    assert torch.equal(y[1], x[0])
    assert torch.equal(y[2], x[1])


def test_the_stereo_pair_shares_one_scene(photos):
    crops = zoo_data.AugmentedCrops(photos, 32)
    counts = Counter(crops.draw(i).photo for i in range(3000))
    motorcycle = counts["motorcycle_left"] + counts["motorcycle_right"]
    assert motorcycle == pytest.approx(3000 / 5, rel=0.15)
    assert counts["china"] == pytest.approx(3000 / 5, rel=0.15)
    assert counts["motorcycle_left"] == pytest.approx(motorcycle / 2, rel=0.2)


def test_the_crops_feed_the_training_loop():
    crops = zoo_data.AugmentedCrops(synthetic_photos(), 32, length=8)
    batch = next(train.batches(crops, 4, seed=0))
    assert batch.shape == (4, 3, 32, 32)


def test_the_training_ceiling_of_a_huge_photo_is_measured_on_a_central_square():
    photos = {
        "wide": torch.rand(3, 1200, 2000),
        "thin": torch.rand(3, 300, 5000),
        "small": torch.rand(3, 400, 600),
    }
    bounded = zoo_data.bounded(photos)
    assert bounded["wide"].shape == (3, 1024, 1024)
    assert bounded["thin"].shape == (3, 300, 300)
    assert bounded["small"] is photos["small"]
