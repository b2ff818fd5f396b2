import pytest
import torch

from lic_teach import experiments
from lic_teach.budget import budget
from lic_teach.models import MeanScaleHyperprior


def test_setup_crops_give_z_four_by_four_positions():
    for name in ("smoke", "cpu", "gpu"):
        B = budget(name)
        settings = experiments.setup(B)
        assert settings.patch_size >= 256
        assert settings.patch_size % 64 == 0
        assert 1 <= settings.crops <= 512
        assert settings.steps == max(1, B.train_steps // 4)
        assert settings.lambdas == tuple(experiments.zoo_family(B))
        assert len(settings.lambdas) == B.rd_models
        assert "lambdas" in str(settings)


def test_training_latents_are_repeatable():
    B = budget("smoke")
    settings = experiments.setup(B)
    torch.manual_seed(0)
    model = MeanScaleHyperprior(8, 12)
    a, b = (experiments.training_latents(model, settings, "cpu") for _ in range(2))
    assert a.shape == (
        settings.crops,
        12,
        settings.patch_size // 16,
        settings.patch_size // 16,
    )
    assert torch.equal(a, b)


def test_architectures_share_the_zoos_transforms_and_the_cache(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("LIC_TEACH_CACHE", str(tmp_path))
    B = budget("smoke")
    families = experiments.train_architectures(
        {"mean-scale": MeanScaleHyperprior}, B, progress=False
    )
    printed = capsys.readouterr().out
    assert "the zoo's factorized models" in printed
    assert "trained in" in printed
    assert not list(tmp_path.rglob("*factorized*"))  # chapter 3's family: not trained
    base = experiments.zoo_family(B)
    models, histories = families["mean-scale"]
    assert list(models) == list(base)
    for lmbda, model in models.items():
        assert isinstance(model, MeanScaleHyperprior)
        assert model.hyperparameters() == experiments.sizes(base)
        assert not model.training
        assert (
            len(histories[f"mean-scale, lambda={lmbda:g}"])
            == experiments.setup(B).steps
        )
        for key, value in experiments.transforms(base[lmbda]).items():
            assert torch.equal(model.state_dict()[key], value), key
    again = experiments.train_architectures(
        {"mean-scale": MeanScaleHyperprior}, B, progress=False
    )
    assert "loaded from the cache" in capsys.readouterr().out
    x = torch.rand(1, 3, 64, 64)
    for lmbda, model in again["mean-scale"][0].items():
        assert torch.equal(model(x)["x_hat"], models[lmbda](x)["x_hat"])


def test_held_out_images_follow_the_budget():
    images = experiments.held_out_images(budget("smoke"))
    assert len(images) == 1
    assert next(iter(images.values())).shape == (3, 128, 128)
    assert set(experiments.held_out_images(budget("cpu"))) == {"astronaut", "flower"}
    model = MeanScaleHyperprior(8, 12)
    assert experiments.transforms(model).keys() == {
        k for k in model.state_dict() if k.startswith(("g_a.", "g_s."))
    }


def test_relaxation_and_decoder_families_start_from_the_zoo(monkeypatch, tmp_path):
    monkeypatch.setenv("LIC_TEACH_CACHE", str(tmp_path))
    B = budget("smoke")
    base = experiments.zoo_family(B)
    relaxed = experiments.relaxation_family(["mixed"], B, progress=False)
    decoders = experiments.decoder_family(
        ["RDOQ", "noise (control)"], B, progress=False
    )
    steps = experiments.finetune_steps(B)
    for lmbda, model in base.items():
        tuned = relaxed["mixed"][0][lmbda]
        assert len(relaxed["mixed"][1][f"mixed, lambda={lmbda:g}"]) == steps
        assert not torch.equal(
            tuned.g_a[0].weight, model.g_a[0].weight
        )  # the encoder trained too
        for name, (models, histories) in decoders.items():
            state, start = models[lmbda].state_dict(), model.state_dict()
            assert len(histories[f"decoder on {name}, lambda={lmbda:g}"]) == steps
            assert all(
                torch.equal(state[k], start[k])
                for k in start
                if not k.startswith("g_s.")
            )
            assert any(
                not torch.equal(state[k], start[k])
                for k in start
                if k.startswith("g_s.")
            ), name
    lmbda, model = next(iter(base.items()))
    weights = experiments.channel_weights(model, lmbda, B)
    assert weights.shape == (experiments.sizes(base)[1],)
    assert (weights > 0).all()
    again = experiments.decoder_family(["RDOQ"], B, progress=False)  # from the cache
    for lmbda, model in again["RDOQ"][0].items():
        assert torch.equal(
            model.g_s[0].weight, decoders["RDOQ"][0][lmbda].g_s[0].weight
        )


def test_a_fine_tuning_is_cached_under_the_source_of_its_own_code(monkeypatch):
    """Editing the code a fine-tuning runs (``relaxed_training`` for the relaxations)
    must train it again, not reuse weights the old code made."""
    from lic_teach import cache
    from lic_teach.experiments import end_to_end, relaxations
    from lic_teach.models import FactorizedPrior

    B = budget("smoke")
    base = {lmbda: FactorizedPrior(8, 12) for lmbda in experiments.lambdas(B)}
    monkeypatch.setattr(end_to_end, "zoo_family", lambda *a: base)
    seen = []
    monkeypatch.setattr(
        cache, "family", lambda make, settings, *a: seen.append(settings) or ({}, {}, 0)
    )
    relaxations.relaxation_family(("noise",), B, progress=False)
    (settings,) = seen
    assert settings["tune"] == cache.source_fingerprint(relaxations.__name__)
    assert settings["tune"] == cache.function_fingerprint(relaxations.relaxation_family)
    assert "lic_teach.relaxed_training" in cache._import_closure(relaxations.__name__)


def test_a_function_outside_the_package_is_keyed_by_its_own_source():
    from lic_teach import cache

    def tune(model, crops, **options):
        return []

    def other(model, crops, **options):
        return [1]

    assert cache.function_fingerprint(tune) != cache.function_fingerprint(other)
    with pytest.raises(ValueError, match="cannot read the source"):
        cache.function_fingerprint(len)  # a builtin: no source to read


def test_the_zoo_family_spreads_the_budgets_lambdas_over_the_zoos_qualities():
    from lic_teach import zoo

    shipped = [m for m in zoo.manifests() if m["family"] == "factorized"]
    every = sorted(m["lambda"] for m in shipped)
    for name in ("smoke", "cpu"):
        B = budget(name)
        family = experiments.zoo_family(B)
        lambdas = list(family)
        assert len(lambdas) == min(B.rd_models, len(every))
        assert lambdas == sorted(lambdas)
        assert lambdas[0] == every[0]  # the lowest rate
        assert lambdas[-1] == every[-1]  # and the highest
        for lmbda, model in family.items():
            assert lmbda in every
            assert not model.training
    with pytest.raises(ValueError, match="no jpeg models"):
        experiments.zoo_family(budget("smoke"), "jpeg")
