"""The cache of trained models: keyed by every setting and by the source the recipe
runs."""

import os

import pytest
import torch

from lic_teach import cache


def test_load_or_train_keys_on_every_setting(tmp_path):
    from lic_teach.models import ScaleHyperprior

    calls = []

    def train_all():
        calls.append(1)
        torch.manual_seed(len(calls))
        return {0.01: ScaleHyperprior(8, 12).eval()}, {"run": [{"step": 1, "bpp": 1.0}]}

    make = lambda: ScaleHyperprior(8, 12)
    first, _, cached = cache.load_or_train(
        make, {"lambdas": [0.01], "steps": 3}, train_all, tmp_path
    )
    again, histories, cached_again = cache.load_or_train(
        make, {"lambdas": [0.01], "steps": 3}, train_all, tmp_path
    )
    assert (cached, cached_again, len(calls)) == (False, True, 1)
    assert histories == {"run": [{"step": 1, "bpp": 1.0}]}
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            first[0.01].state_dict().values(), again[0.01].state_dict().values()
        )
    )
    _, _, cached = cache.load_or_train(
        make, {"lambdas": [0.01], "steps": 4}, train_all, tmp_path
    )
    assert not cached
    assert len(calls) == 2
    _, _, cached = cache.load_or_train(
        make, {"lambdas": [0.01], "steps": 3}, train_all, None
    )
    assert not cached
    assert len(calls) == 3
    for cache_file in tmp_path.rglob("*.pt"):
        cache_file.write_bytes(b"not a checkpoint")  # a damaged file: trained again
    with pytest.warns(UserWarning, match="unreadable cache file"):
        _, _, cached = cache.load_or_train(
            make, {"lambdas": [0.01], "steps": 3}, train_all, tmp_path
        )
    assert not cached
    assert len(calls) == 4
    _, _, cached = cache.load_or_train(
        make, {"lambdas": [0.01], "steps": 3}, train_all, tmp_path
    )
    assert cached
    assert len(calls) == 4
    assert cache.tensors_fingerprint(
        {"a": torch.zeros(2)}
    ) != cache.tensors_fingerprint({"a": torch.ones(2)})


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LIC_TEACH_CACHE", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    monkeypatch.delenv("LIC_TEACH_CACHE")
    assert cache.default_cache_dir().name == "lic_teach"


def test_source_key_follows_the_modules_a_recipe_runs_and_no_others():
    recipe = cache._import_closure("lic_teach.experiments")
    assert {
        "lic_teach.train",
        "lic_teach.cache",
        "lic_teach.data",
        "lic_teach.models.factorized",
        "lic_teach.layers",
        "lic_teach.entropy_models",
        "lic_teach.relaxed_training",
    } <= recipe
    assert (
        not {
            "lic_teach.plots",
            "lic_teach.widgets",
            "lic_teach.grading",
            "lic_teach.exercises",
            "lic_teach.colab",
            "lic_teach.crosscheck",
        }
        & recipe
    )
    model = cache._import_closure("lic_teach.models.hyperprior")
    assert "lic_teach.models.factorized" in model
    assert "lic_teach.train" not in model
    assert cache.source_fingerprint("lic_teach.train") != cache.source_fingerprint(
        "lic_teach.train", "lic_teach.models.context"
    )
    assert cache.source_fingerprint(
        "lic_teach.train", "tests.not_ours"
    ) == cache.source_fingerprint("lic_teach.train")


def test_family_trains_each_lambda_in_order_and_keys_on_the_recipes_module(
    tmp_path, monkeypatch
):
    from lic_teach.models import FactorizedPrior

    trained = []

    def train_one(lmbda):
        trained.append(lmbda)
        torch.manual_seed(len(trained))
        return FactorizedPrior(8, 12).train(), {
            "base": [1],
            f"lambda={lmbda:g}": [len(trained)],
        }

    make = lambda: FactorizedPrior(8, 12)
    models, histories, cached = cache.family(
        make, {"steps": 1}, [0.01, 0.02], train_one, tmp_path
    )
    assert (trained, cached) == ([0.01, 0.02], False)
    assert list(models) == [0.01, 0.02]
    assert not any(m.training for m in models.values())
    assert histories == {"base": [1], "lambda=0.01": [1], "lambda=0.02": [2]}
    assert list(histories) == ["base", "lambda=0.01", "lambda=0.02"]
    again, histories_again, cached = cache.family(
        make, {"steps": 1}, [0.01, 0.02], train_one, tmp_path
    )
    assert cached
    assert histories_again == histories
    assert len(trained) == 2
    seen = []
    monkeypatch.setattr(
        cache, "source_fingerprint", lambda *modules: seen.extend(modules) or "x"
    )
    cache.family(make, {"steps": 1}, [0.01], train_one, None)
    assert __name__ in seen
    assert "lic_teach.cache" not in seen


def test_atomic_write_makes_files_as_open_would(tmp_path):
    mask = os.umask(0o022)
    try:
        path = cache.atomic_write(tmp_path / "record.json", "{}")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
