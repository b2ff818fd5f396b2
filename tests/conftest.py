from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import counter

from lic_teach import data


@pytest.fixture(scope="module")
def photo():
    """A held-out photo (skimage's astronaut, 512x512)."""
    return data.sample_images("test")["astronaut"]


class SmokeZoo(NamedTuple):
    """A tiny zoo in ``folder``, made by the recipe study's runs in ``study`` of
    ``recipes`` (one a family)."""

    folder: Path
    study: Path
    recipes: tuple


def smoke_recipes() -> tuple:
    """Tiny open-ended recipes of the factorized and the mean-scale families: two
    segments of 20 steps by :func:`helpers.counter`'s clock, each cooled down at two
    lambdas, so that each family has two qualities."""
    from lic_teach.experiments import zoo_recipe

    return tuple(
        zoo_recipe.Recipe(
            f"{family}-smoke",
            family,
            N=8,
            M=12,
            patch_size=64,
            batch_size=2,
            cpu_seconds=4.0,
            segment_seconds=2.0,
            eval_size=192,  # above 160 pixels: MS-SSIM is measured
            cooldown=0.5,
            cooldown_lambdas=(0.005,),
        )
        for family in ("factorized", "mean-scale")
    )


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory):
    """A zoo of two families at two qualities each, trained in seconds by
    :func:`smoke_recipes` (``zoo_recipe.run``), published by ``zoo_recipe.to_zoo``."""
    from lic_teach.experiments import zoo_recipe

    folder, study = tmp_path_factory.mktemp("zoo"), tmp_path_factory.mktemp("study")
    recipes = smoke_recipes()
    for recipe in recipes:
        zoo_recipe.run(recipe, study, clock=counter(), progress=False)
        zoo_recipe.to_zoo(recipe, study, folder)
    return SmokeZoo(folder, study, recipes)
