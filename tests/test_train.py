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
    likelihoods = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.full((2, 2, 1, 1), 0.25)}
    losses = train.RateDistortionLoss(lmbda=0.01)({"x_hat": x_hat, "likelihoods": likelihoods}, x)
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
    assert len(aux) == 1 and aux[0].shape[-1] == 3
    assert all(p is not aux[0] for p in main)


def test_fit_lowers_the_loss_and_trains_quantiles():
    model = _tiny_model()
    quantiles = model.entropy_bottleneck.quantiles.detach().clone()
    history = train.fit(model, _patches(), steps=40, lmbda=0.01, lr=1e-3, batch_size=4,
                        progress=False)
    assert len(history) == 40 and {"loss", "bpp", "mse", "psnr", "aux"} <= set(history[0])
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < 0.8 * first
    assert not torch.equal(quantiles, model.entropy_bottleneck.quantiles.detach())


def test_fit_is_reproducible_with_a_seed():
    runs = [train.fit(_tiny_model(), _patches(), steps=5, seed=3, progress=False) for _ in range(2)]
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
    """``lr_of``: g_s at learning rate 0 stays put while g_a learns, clipping included."""
    model = _tiny_model()
    g_a, g_s = ([p.detach().clone() for p in part.parameters()] for part in (model.g_a, model.g_s))
    train.fit(model, _patches(), steps=3, lr=1e-2, lr_of={"g_s.": 0.0}, clip_max_norm=1.0, progress=False)
    assert all(torch.equal(before, after) for before, after in zip(g_s, model.g_s.parameters()))
    assert not all(torch.equal(before, after) for before, after in zip(g_a, model.g_a.parameters()))


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
        return parameter * 1.0, {"bpp": float(parameter)}          # gradient 1, value recorded before the step
    history = train.train_steps(step_loss, [parameter], steps=10, lr=0.1, decay_at=0.6, progress=False)
    values = [h["bpp"] for h in history] + [float(parameter)]
    moves = -torch.diff(torch.tensor(values))
    assert torch.allclose(moves[:6], torch.tensor(0.1), rtol=1e-3)
    assert torch.allclose(moves[6:], torch.tensor(0.01), rtol=1e-3)


def test_fit_family_warm_starts_and_caches(tmp_path):
    from lic_teach.models import ScaleHyperprior
    kwargs = dict(steps=10, batch_size=2, progress=False, cache_dir=tmp_path, cache_key="crops")
    models, histories, cached = train.fit_family(lambda: ScaleHyperprior(8, 12), _patches(64),
                                                 [0.01, 0.05, 0.02], **kwargs)
    assert not cached and list(models) == [0.01, 0.05, 0.02]
    assert list(histories) == ["model, base, lambda=0.05", "model, lambda=0.01", "model, lambda=0.05",
                               "model, lambda=0.02"]
    assert [h["step"] for h in histories["model, lambda=0.01"]] == [11, 12]      # after the base's 10
    again, histories_again, cached = train.fit_family(lambda: ScaleHyperprior(8, 12), _patches(64),
                                                      [0.01, 0.05, 0.02], **kwargs)
    assert cached and histories_again == histories
    x = torch.rand(1, 3, 64, 64)
    for lmbda in models:
        assert not models[lmbda].training
        assert torch.equal(models[lmbda](x)["x_hat"], again[lmbda](x)["x_hat"])
    _, _, cached = train.fit_family(lambda: ScaleHyperprior(8, 12), _patches(64), [0.01, 0.05, 0.02],
                                    **dict(kwargs, cache_key="other crops"))
    assert not cached                                          # other data: trained again
    assert not list(tmp_path.rglob("*.partial"))


def test_fit_entropy_model_trains_only_the_entropy_model():
    from lic_teach.models import MeanScaleHyperprior
    torch.manual_seed(0)
    model = MeanScaleHyperprior(8, 12)
    with torch.no_grad():
        latents = 3 * model.g_a(torch.stack([_patches(128)[i] for i in range(16)]))
    transforms = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("g_a.", "g_s."))}
    h_s = model.h_s[0].weight.clone()
    history = train.fit_entropy_model(model, latents, steps=60, batch_size=4, lr=3e-3, progress=False)
    assert len(history) == 60 and set(history[0]) == {"step", "loss", "bpp", "mse", "psnr", "aux"}
    assert history[0]["loss"] == history[0]["bpp"] and history[0]["mse"] is None
    first, last = (sum(h["bpp"] for h in part) / 10 for part in (history[:10], history[-10:]))
    assert last < 0.9 * first                                   # the rate falls
    for key, value in transforms.items():
        assert torch.equal(model.state_dict()[key], value), key  # the transforms do not move
    assert not torch.equal(model.h_s[0].weight, h_s)
    assert not model.training and model.conditional.has_tables()
    with pytest.raises(ValueError, match="at least 1"):
        train.fit_entropy_model(model, latents, steps=0)


@pytest.mark.parametrize("model_name", ["FactorizedPrior", "MeanScaleHyperprior"])
def test_fit_decoder_trains_only_the_decoder_on_hard_latents(model_name):
    from lic_teach import models
    torch.manual_seed(0)
    model = getattr(models, model_name)(8, 12)
    patches = _patches(64)
    train.fit(model, patches, steps=60, lmbda=0.01, lr=3e-3, batch_size=4, progress=False)
    x = torch.stack([patches[i] for i in range(8)])
    decoder_side = {n for n, _ in model.named_parameters() if n.startswith(("g_s.", "h_s."))}
    before = {n: p.clone() for n, p in model.named_parameters()}

    def hard_loss():
        with torch.no_grad():
            return train.RateDistortionLoss(0.01)(model.eval()(x), x)["loss"].item()

    start = hard_loss()
    history = train.fit_decoder(model, [x], steps=40, lmbda=0.01, lr=1e-3, progress=False)
    assert len(history) == 40 and hard_loss() < start            # better on the latents it really gets
    for name, parameter in model.named_parameters():
        moved = not torch.equal(parameter, before[name])
        assert moved == (name in decoder_side), name
        assert parameter.requires_grad                            # unfrozen again afterwards
    with pytest.raises(ValueError, match="at least 1"):
        train.fit_decoder(model, [x], steps=0, lmbda=0.01)


def test_fit_synthesis_trains_only_g_s_on_the_latents_it_is_given():
    from lic_teach.models import FactorizedPrior
    torch.manual_seed(0)
    model = FactorizedPrior(8, 12)
    patches = _patches(64)
    train.fit(model, patches, steps=40, lmbda=0.01, lr=3e-3, batch_size=4, progress=False)
    x = torch.stack([patches[i] for i in range(8)])
    before = {n: p.clone() for n, p in model.named_parameters()}
    chosen = []

    def quantize(y):                                    # what an encoder chose: here, rounding
        chosen.append(y.shape)
        return model.prior.hard_round(y)

    def distortion():
        with torch.no_grad():
            return float(((model.g_s(model.prior.hard_round(model.g_a(x))) - x) ** 2).mean())

    start = distortion()
    model.train()
    history = train.fit_synthesis(model, [x], quantize, steps=30, lmbda=0.01, lr=1e-3, progress=False)
    assert len(chosen) == 30 and distortion() < start
    assert all(h["bpp"] is None and h["loss"] == pytest.approx(0.01 * 255 ** 2 * h["mse"]) for h in history)
    for name, parameter in model.named_parameters():
        assert (not torch.equal(parameter, before[name])) == name.startswith("g_s."), name
        assert parameter.requires_grad
    assert not model.training                           # as every fit* leaves it


def test_training_gives_the_callers_random_state_back():
    from lic_teach import seeding
    from lic_teach.models import FactorizedPrior
    model, patches = FactorizedPrior(8, 12), _patches(64)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train.fit(model, patches, steps=2, lmbda=0.01, batch_size=2, progress=False)
    assert torch.equal(torch.rand(3), expected)         # as if fit had not drawn anything
    with seeding.seeded(1):
        first = torch.rand(2)
    with seeding.seeded(1):
        assert torch.equal(torch.rand(2), first)
