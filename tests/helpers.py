"""Helpers shared by the model tests."""

import itertools

import torch


def counter():
    """A clock that advances one second a reading: every call of
    ``zoo_recipe.CHUNK`` training steps costs one second, so runs of
    ``zoo_recipe.run`` are repeatable step for step."""
    ticks = itertools.count()
    return lambda: float(next(ticks))


def perturb(model, seed=0):
    """Move every parameter off its initial value, so that all of them matter in a
    check."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_(
                (0.02 if name.endswith("weight") else 0.05)
                * torch.randn_like(parameter)
            )
    return model


def check_contract(model, photo, other_models):
    """The model contract on a 65 x 31 crop: any size, both coders decode the same
    image, the real rate is the bytes, and bad bytes or another model's decoder raise
    a clear ``ValueError``."""
    import pytest

    from lic_teach import evaluate

    x = photo[:, 5:70, 9:40]
    ans, readable = model.compress(x), model.compress(x, coder="readable")
    decoded = model.decompress(ans)
    assert decoded.shape == x.shape
    assert torch.equal(decoded, model.decompress(readable))
    point = evaluate.codec_point(model, [x])
    assert point["bpp"] == pytest.approx(8 * len(ans) / (65 * 31))
    with pytest.raises(ValueError, match="truncated"):
        model.decompress(ans[:-3])
    altered = bytearray(ans)
    altered[-8] ^= 0x10
    with pytest.raises(ValueError, match="corrupted"):
        model.decompress(bytes(altered))
    for other in other_models:
        with pytest.raises(ValueError, match="written by"):
            other.decompress(ans)
