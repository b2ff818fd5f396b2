"""One table of models and one of coders, used everywhere they are looked up."""

import pytest
import torch

from lic_teach import bitstream, coding, crosscheck, models
from lic_teach.models import registry


def test_every_model_is_registered_once_with_its_twin():
    classes = [
        getattr(models, name)
        for name in models.__all__
        if isinstance(getattr(models, name), type)
    ]
    assert {entry.model_class for entry in registry.ARCHITECTURES.values()} == set(
        classes
    )
    for name, entry in registry.ARCHITECTURES.items():
        assert registry.architecture(name) is entry
        assert registry.architecture_of(entry.model_class) is entry
        twin = crosscheck._twin_class(entry.model_class)
        assert twin.__name__ == entry.compressai_class
        if entry.twin_transforms:  # CompressAI's codec around borrowed transforms
            assert issubclass(entry.model_class, crosscheck._lic_class(twin))
            assert all(
                isinstance(getattr(entry.model_class(8, 12), name), torch.nn.Module)
                for name in entry.twin_transforms
            )
        else:
            assert crosscheck._lic_class(twin) is entry.model_class


def test_registry_errors_are_clear():
    with pytest.raises(
        ValueError, match="unknown architecture 'jpeg'; known: bmshj2018-factorized"
    ):
        registry.architecture("jpeg")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("mbt2018")(type("Copy", (torch.nn.Module,), {}))
    with pytest.raises(ValueError, match="not a registered model"):
        registry.architecture_of(torch.nn.Module)
    with pytest.raises(ValueError, match="unknown architecture"):
        crosscheck.load_zoo("jpeg")


def test_coders_are_named_once_and_numbered_apart():
    assert set(bitstream.CODER_IDS) == set(coding.CODERS)
    assert len(set(bitstream.CODER_IDS.values())) == len(coding.CODERS)
    model = models.FactorizedPrior(8, 8).eval()
    with pytest.raises(
        ValueError, match="unknown coder 'zip'; choose one of ans, readable"
    ):
        model.compress(torch.rand(3, 16, 16), coder="zip")


def test_a_bitstream_names_the_registered_model_that_decodes_it():
    torch.manual_seed(0)
    model = models.MeanScaleHyperprior(8, 12).eval()
    data = model.compress(torch.rand(3, 40, 24))
    entry, params, layout = registry.writer_of(data)
    assert (entry.name, params, layout) == ("mbt2018-mean", (8, 12), "")
    rebuilt = entry.model_class(*params)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.decompress(data), model.decompress(data))
    header, strings = bitstream.unpack(data)
    header.model = "FactorizedPrior+DQ"
    assert registry.writer_of(bitstream.pack(header, strings))[::2] == (
        registry.architecture("bmshj2018-factorized"),
        "+DQ",
    )
    header.model = "Jpeg"
    with pytest.raises(ValueError, match="Jpeg, which is not a registered model"):
        registry.writer_of(bitstream.pack(header, strings))
    with pytest.raises(ValueError):
        registry.writer_of(data[:-3])
