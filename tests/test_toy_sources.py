import pytest
import torch

from lic_teach import toy_sources as ts


def test_sources_have_their_defined_moments():
    generator = torch.Generator().manual_seed(0)
    x = ts.banana(200_000, generator)
    assert x.shape == (200_000, 2)
    assert float(x[:, 0].var()) == pytest.approx(4.0, rel=0.03)
    assert float(x[:, 1].mean()) == pytest.approx(0.0, abs=0.02)  # 0.25 E[x1^2] - 1
    residual = x[:, 1] - 0.25 * x[:, 0] ** 2 + 1.0
    assert float(residual.std()) == pytest.approx(
        0.4, rel=0.03
    )  # the banana's thickness
    lap = ts.laplace(200_000, generator, scale=0.5)
    assert float(lap.abs().mean()) == pytest.approx(0.5, rel=0.03)
    assert float(lap.var()) == pytest.approx(0.5, rel=0.05)


@pytest.fixture(scope="module")
def universal_code():
    torch.manual_seed(0)
    model = ts.ToyTransformCode()
    history = ts.fit_toy(
        model,
        "banana",
        lmbda=1.0,
        steps=800,
        batch_size=512,
        relaxation="universal",
        progress=False,
    )
    return model, history


def test_learned_code_beats_scalar_quantization_of_the_source(universal_code):
    model, _ = universal_code
    learned = ts.rate_distortion(model, "banana")
    x = ts.banana(100_000, torch.Generator().manual_seed(1))
    scalar_costs = []
    for step in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0):  # per-coordinate ECSQ, ideal entropy
        q = torch.round(x / step)
        _, counts = torch.unique(q, dim=0, return_counts=True)
        p = counts.float() / counts.sum()
        scalar_costs.append(
            float(-(p * torch.log2(p)).sum())
            + float(((q * step - x) ** 2).sum(1).mean())
        )
    assert learned["bits"] + learned["mse"] < 0.85 * min(scalar_costs)


def test_universal_quantization_closes_the_train_test_gap(universal_code):
    model, history = universal_code
    test = ts.rate_distortion(model, "banana")
    late = history[-100:]
    train_bits = sum(h["bits"] for h in late) / len(late)
    train_mse = sum(h["mse"] for h in late) / len(late)
    assert abs(test["bits"] - train_bits) < 0.25
    assert abs(test["mse"] - train_mse) < 0.25 * train_mse


def test_dithered_decoding_matches_the_universal_training_objective(universal_code):
    """Decoded with its shared dither, the universal code is what it trained for: the
    real cost lands on the training estimate, and rounding without the dither is another
    code."""
    model, history = universal_code
    trained = ts.training_objective(history)
    assert trained["bits"] == pytest.approx(sum(h["bits"] for h in history[-80:]) / 80)
    dithered = ts.rate_distortion(model, "banana", dither_seed=12345)
    assert dithered["bits"] + dithered["mse"] == pytest.approx(
        trained["bits"] + trained["mse"], rel=0.06
    )
    assert dithered != ts.rate_distortion(model, "banana")
    assert not model.training


def test_cells_partition_the_plane_with_one_reconstruction_each(universal_code):
    model, _ = universal_code
    x = ts.banana(5000, torch.Generator().manual_seed(2))
    cell, x_hat = model.cells(x)
    count = int(cell.max()) + 1
    assert 3 <= count <= 60
    for index in range(count):
        members = x_hat[cell == index]
        assert torch.allclose(members, members[:1].expand_as(members))
    assert torch.allclose(x_hat, model.eval()(x)["x_hat"], atol=1e-5)


@pytest.mark.parametrize("relaxation", ts.RELAXATIONS)
def test_every_relaxation_trains(relaxation):
    torch.manual_seed(0)
    model = ts.ToyTransformCode(hidden=16)
    history = ts.fit_toy(
        model,
        "laplace",
        lmbda=0.5,
        steps=40,
        batch_size=256,
        relaxation=relaxation,
        progress=False,
    )
    first = history[0]["bits"] + 0.5 * history[0]["mse"]
    last = sum(h["bits"] + 0.5 * h["mse"] for h in history[-10:]) / 10
    assert last < first
    assert not model.training


def test_bad_names_are_clear_errors():
    model = ts.ToyTransformCode()
    with pytest.raises(ValueError, match="unknown source"):
        ts.fit_toy(model, "donut", steps=1)
    with pytest.raises(ValueError, match="unknown relaxation"):
        model.train()(torch.zeros(4, 2), relaxation="magic")


def test_toy_training_runs_on_one_thread_and_gives_the_threads_back():
    threads = torch.get_num_threads()
    seen = []
    model = ts.ToyTransformCode(hidden=8)
    model.g_a.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    ts.fit_toy(model, "banana", steps=2, batch_size=16, progress=False)
    ts.rate_distortion(model, count=100)
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="unknown relaxation"):
        ts.fit_toy(model, "banana", steps=1, relaxation="magic", progress=False)
    assert torch.get_num_threads() == threads
