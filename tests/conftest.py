import pytest

from lic_teach import data


@pytest.fixture(scope="module")
def photo():
    """A held-out photo (skimage's astronaut, 512x512)."""
    return data.sample_images("test")["astronaut"]
