import math

import pytest
import torch
from compressai.models import FactorizedPrior

from lic_teach import data, train


def _tiny_model():
    torch.manual_seed(0)
    return FactorizedPrior(N=8, M=8)


def _patches(size=32):
    images = [data.center_crop(x, 256) for x in data.sample_images("train").values()]
    return data.RandomCropDataset(images, patch_size=size, length=64)


def test_loss_follows_compressai_convention():
    x = torch.rand(2, 3, 8, 8)
    x_hat = x + 0.01
    likelihoods = {
        "y": torch.full((2, 4, 2, 2), 0.5),
        "z": torch.full((2, 2, 1, 1), 0.25),
    }
    losses = train.RateDistortionLoss(lmbda=0.01)(
        {"x_hat": x_hat, "likelihoods": likelihoods}, x
    )
    bpp = (2 * 4 * 2 * 2 * 1 + 2 * 2 * 2) / (2 * 8 * 8)
    assert losses["bpp_loss"].item() == pytest.approx(bpp)
    assert losses["mse_loss"].item() == pytest.approx(1e-4, rel=1e-4)
    assert losses["loss"].item() == pytest.approx(0.01 * 255**2 * 1e-4 + bpp, rel=1e-4)


def test_loss_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        train.RateDistortionLoss(metric="l1")
    with pytest.raises(ValueError, match="positive"):
        train.RateDistortionLoss(lmbda=0)


def test_quantiles_go_to_the_aux_optimizer_only():
    main, aux = train.split_parameters(_tiny_model())
    assert len(aux) == 1
    assert aux[0].shape[-1] == 3
    assert all(p is not aux[0] for p in main)


def test_fit_lowers_the_loss_and_trains_quantiles():
    model = _tiny_model()
    quantiles = model.entropy_bottleneck.quantiles.detach().clone()
    history = train.fit(
        model, _patches(), steps=40, lmbda=0.01, lr=1e-3, batch_size=4, progress=False
    )
    assert len(history) == 40
    assert {"loss", "bpp", "mse", "psnr", "aux"} <= set(history[0])
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < 0.8 * first
    assert not torch.equal(quantiles, model.entropy_bottleneck.quantiles.detach())


def test_fit_is_reproducible_with_a_seed():
    runs = [
        train.fit(_tiny_model(), _patches(), steps=5, seed=3, progress=False)
        for _ in range(2)
    ]
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


def test_fit_clips_gradients(monkeypatch):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm):
        calls.append(max_norm)
        return original(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train.fit(_tiny_model(), _patches(), steps=3, clip_max_norm=0.5, progress=False)
    train.fit(_tiny_model(), _patches(), steps=3, clip_max_norm=0, progress=False)
    assert calls == [0.5, 0.5, 0.5]


def test_fit_gives_named_parameters_their_own_learning_rate():
    """``lr_of``: g_s at learning rate 0 stays put while g_a learns, clipping
    included."""
    model = _tiny_model()
    g_a, g_s = (
        [p.detach().clone() for p in part.parameters()]
        for part in (model.g_a, model.g_s)
    )
    train.fit(
        model,
        _patches(),
        steps=3,
        lr=1e-2,
        lr_of={"g_s.": 0.0},
        clip_max_norm=1.0,
        progress=False,
    )
    assert all(
        torch.equal(before, after) for before, after in zip(g_s, model.g_s.parameters())
    )
    assert not all(
        torch.equal(before, after) for before, after in zip(g_a, model.g_a.parameters())
    )


def test_fit_accepts_batches_and_stops_on_nan():
    batches = [torch.rand(2, 3, 32, 32)]
    assert len(train.fit(_tiny_model(), batches, steps=3, progress=False)) == 3
    model = _tiny_model()
    with torch.no_grad():
        model.g_s[0].weight.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="step 1"):
        train.fit(model, batches, steps=3, progress=False)
    with pytest.raises(ValueError):
        train.fit(model, batches, steps=0)


def test_the_learning_rate_drops_tenfold_at_decay_at():
    """Adam moves a parameter with a constant gradient by about ``lr`` a step."""
    parameter = torch.nn.Parameter(torch.zeros(()))

    def step_loss():
        return parameter * 1.0, {
            "bpp": float(parameter)
        }  # gradient 1, value recorded before the step

    history = train.train_steps(
        step_loss, [parameter], steps=10, lr=0.1, decay_at=0.6, progress=False
    )
    values = [h["bpp"] for h in history] + [float(parameter)]
    moves = -torch.diff(torch.tensor(values))
    assert torch.allclose(moves[:6], torch.tensor(0.1), rtol=1e-3)
    assert torch.allclose(moves[6:], torch.tensor(0.01), rtol=1e-3)


def test_the_schedule_is_one_function_of_the_step():
    """``lr`` up to ``round(decay_at * steps)``, a tenth after it, ``lr`` without."""
    rates = [train.learning_rate(t, 20, 1e-3, train.DECAY_AT) for t in range(1, 21)]
    assert rates[:18] == [1e-3] * 18
    assert rates[18:] == [1e-4] * 2
    assert train.learning_rate(20, 20, 1e-3, None) == 1e-3
    assert train.learning_rate(1, 4, 1e-3, 0.0) == 1e-4


def test_train_steps_optimizes_tensors_and_parameter_groups_on_one_schedule(
    monkeypatch,
):
    """A tensor of latents is optimized as a parameter; each group keeps its own rate
    and all drop tenfold together."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    rates = []

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            rates.append([group["lr"] for group in self.param_groups])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    train.train_steps(
        lambda: (a.sum() + b.sum(), {}),
        [{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.5}],
        steps=4,
        lr=0.1,
        decay_at=0.5,
        progress=False,
    )
    assert rates == [[1.0, 0.5], [1.0, 0.5], [0.1, 0.05], [0.1, 0.05]]
    assert bool((a < 0).all())


def test_train_steps_given_its_optimizers_continues_their_moments():
    """Two calls of 5 steps given the same two Adams are one call of 10 steps (at a
    constant rate): Adam's moments and step count carry from one call to the next,
    which two calls making their own Adams do not."""
    target = torch.linspace(-1.0, 1.0, 4)

    def train_in(calls, given):
        w, q = torch.zeros(4, requires_grad=True), torch.zeros(2, requires_grad=True)
        adams = {}
        if given:
            adams = dict(
                optimizer=torch.optim.Adam([w], lr=0.1),
                aux_optimizer=torch.optim.Adam([q], lr=1e-3),
            )
        for steps in calls:
            train.train_steps(
                lambda: (((w - target) ** 2).sum(), {}),
                [w],
                steps=steps,
                lr=0.1,
                aux_parameters=[q],
                aux_loss=lambda: ((q - 1) ** 2).sum(),
                progress=False,
                **adams,
            )
        return torch.cat([w, q]).detach()

    straight = train_in([10], given=False)
    assert torch.allclose(train_in([5, 5], given=True), straight, atol=1e-6)
    assert torch.equal(train_in([10], given=True), straight)
    assert not torch.allclose(train_in([5, 5], given=False), straight, atol=1e-3)
    other = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="does not hold"):
        train.train_steps(
            lambda: (other.sum(), {}),
            [other],
            steps=1,
            lr=0.1,
            optimizer=torch.optim.Adam([torch.zeros(1, requires_grad=True)]),
            progress=False,
        )


def test_frozen_gives_each_parameter_its_own_requires_grad_back():
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)  # the caller's choice
    with train.frozen(model.parameters()):
        assert not model.weight.requires_grad
    assert model.weight.requires_grad
    assert not model.bias.requires_grad
    with pytest.raises(RuntimeError), train.frozen(model.parameters()):
        raise RuntimeError("an error inside the block")
    assert model.weight.requires_grad


def test_rd_loss_is_the_losss_formula():
    assert train.rd_loss(0.01, 1e-4, 0.5) == pytest.approx(0.01 * 255**2 * 1e-4 + 0.5)
    assert train.rd_loss(0.01, 1e-4) == pytest.approx(0.01 * 255**2 * 1e-4)


def test_fit_family_warm_starts_and_caches(tmp_path):
    from lic_teach.models import ScaleHyperprior

    kwargs = dict(
        steps=10, batch_size=2, progress=False, cache_dir=tmp_path, cache_key="crops"
    )
    models, histories, cached = train.fit_family(
        lambda: ScaleHyperprior(8, 12), _patches(64), [0.01, 0.05, 0.02], **kwargs
    )
    assert not cached
    assert list(models) == [0.01, 0.05, 0.02]
    assert list(histories) == [
        "model, base, lambda=0.05",
        "model, lambda=0.01",
        "model, lambda=0.05",
        "model, lambda=0.02",
    ]
    assert [h["step"] for h in histories["model, lambda=0.01"]] == [
        11,
        12,
    ]  # after the base's 10
    again, histories_again, cached = train.fit_family(
        lambda: ScaleHyperprior(8, 12), _patches(64), [0.01, 0.05, 0.02], **kwargs
    )
    assert cached
    assert histories_again == histories
    x = torch.rand(1, 3, 64, 64)
    for lmbda in models:
        assert not models[lmbda].training
        assert torch.equal(models[lmbda](x)["x_hat"], again[lmbda](x)["x_hat"])
    _, _, cached = train.fit_family(
        lambda: ScaleHyperprior(8, 12),
        _patches(64),
        [0.01, 0.05, 0.02],
        **dict(kwargs, cache_key="other crops"),
    )
    assert not cached  # other data: trained again
    assert not list(tmp_path.rglob("*.partial"))


def test_fit_entropy_model_trains_only_the_entropy_model():
    from lic_teach.models import MeanScaleHyperprior

    torch.manual_seed(0)
    model = MeanScaleHyperprior(8, 12)
    with torch.no_grad():
        latents = 3 * model.g_a(torch.stack([_patches(128)[i] for i in range(16)]))
    transforms = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(("g_a.", "g_s."))
    }
    h_s = model.h_s[0].weight.clone()
    history = train.fit_entropy_model(
        model, latents, steps=60, batch_size=4, lr=3e-3, progress=False
    )
    assert len(history) == 60
    assert set(history[0]) == {
        "step",
        "loss",
        "bpp",
        "mse",
        "psnr",
        "aux",
    }
    assert history[0]["loss"] == history[0]["bpp"]
    assert history[0]["mse"] is None
    first, last = (
        sum(h["bpp"] for h in part) / 10 for part in (history[:10], history[-10:])
    )
    assert last < 0.9 * first  # the rate falls
    for key, value in transforms.items():
        assert torch.equal(model.state_dict()[key], value), (
            key
        )  # the transforms do not move
    assert not torch.equal(model.h_s[0].weight, h_s)
    assert not model.training
    assert model.conditional.has_tables()
    with pytest.raises(ValueError, match="at least 1"):
        train.fit_entropy_model(model, latents, steps=0)


@pytest.mark.parametrize("model_name", ["FactorizedPrior", "MeanScaleHyperprior"])
def test_fit_decoder_trains_only_the_decoder_on_hard_latents(model_name):
    from lic_teach import models

    torch.manual_seed(0)
    model = getattr(models, model_name)(8, 12)
    patches = _patches(64)
    train.fit(
        model, patches, steps=60, lmbda=0.01, lr=3e-3, batch_size=4, progress=False
    )
    x = torch.stack([patches[i] for i in range(8)])
    decoder_side = {
        n for n, _ in model.named_parameters() if n.startswith(("g_s.", "h_s."))
    }
    before = {n: p.clone() for n, p in model.named_parameters()}

    def hard_loss():
        with torch.no_grad():
            return train.RateDistortionLoss(0.01)(model.eval()(x), x)["loss"].item()

    start = hard_loss()
    history = train.fit_decoder(
        model, [x], steps=40, lmbda=0.01, lr=1e-3, progress=False
    )
    assert len(history) == 40
    assert hard_loss() < start
    for name, parameter in model.named_parameters():
        moved = not torch.equal(parameter, before[name])
        assert moved == (name in decoder_side), name
        assert parameter.requires_grad  # unfrozen again afterwards
    with pytest.raises(ValueError, match="at least 1"):
        train.fit_decoder(model, [x], steps=0, lmbda=0.01)
    with pytest.raises(ValueError, match="batch_loss"):
        train.fit_decoder(model, [x], steps=1)


def test_fit_decoder_keeps_what_its_caller_froze():
    from lic_teach.models import FactorizedPrior

    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    first, last = model.g_s[0].weight, model.g_s[-1].weight
    first.requires_grad_(False)
    before = first.clone(), last.clone()
    train.fit_decoder(
        model, [torch.rand(2, 3, 32, 32)], steps=2, lmbda=0.01, progress=False
    )
    assert torch.equal(first, before[0])
    assert not first.requires_grad
    assert not torch.equal(last, before[1])


def test_fit_synthesis_trains_only_g_s_on_the_latents_it_is_given():
    from lic_teach.models import FactorizedPrior

    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    patches = _patches(64)
    train.fit(
        model, patches, steps=40, lmbda=0.01, lr=3e-3, batch_size=4, progress=False
    )
    x = torch.stack([patches[i] for i in range(8)])
    before = {n: p.clone() for n, p in model.named_parameters()}
    chosen = []

    def quantize(y):  # what an encoder chose: here, rounding
        chosen.append(y.shape)
        return model.prior.hard_round(y)

    def distortion():
        with torch.no_grad():
            return float(
                ((model.g_s(model.prior.hard_round(model.g_a(x))) - x) ** 2).mean()
            )

    start = distortion()
    model.train()
    history = train.fit_synthesis(
        model, [x], quantize, steps=30, lmbda=0.01, lr=1e-3, progress=False
    )
    assert len(chosen) == 30
    assert distortion() < start
    assert all(
        h["bpp"] is None and h["loss"] == pytest.approx(0.01 * 255**2 * h["mse"])
        for h in history
    )
    for name, parameter in model.named_parameters():
        assert (not torch.equal(parameter, before[name])) == name.startswith("g_s."), (
            name
        )
        assert parameter.requires_grad
    assert not model.training  # as every fit* leaves it


def test_training_gives_the_callers_random_state_back():
    from lic_teach import seeding
    from lic_teach.models import FactorizedPrior

    model, patches = FactorizedPrior(8, 12), _patches(64)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train.fit(model, patches, steps=2, lmbda=0.01, batch_size=2, progress=False)
    assert torch.equal(torch.rand(3), expected)  # as if fit had not drawn anything
    with seeding.seeded(1):
        first = torch.rand(2)
    with seeding.seeded(1):
        assert torch.equal(torch.rand(2), first)
