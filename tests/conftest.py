import pytest

from lic_teach import data


@pytest.fixture(scope="module")
def photo():
    """A held-out photo (skimage's astronaut, 512x512)."""
    return data.sample_images("test")["astronaut"]


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory):
    """A zoo of two families trained by ``zoo.SMOKE_RECIPE`` (seconds), and its work
    folder."""
    from lic_teach import zoo

    folder, work = tmp_path_factory.mktemp("zoo"), tmp_path_factory.mktemp("work")
    for family in ("factorized", "mean-scale"):
        zoo.train_family(family, zoo.SMOKE_RECIPE, folder, work, progress=False)
    return folder, work
