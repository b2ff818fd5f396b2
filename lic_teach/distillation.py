"""Knowledge distillation: small decoders taught by a large one, reading the same bytes.

Hinton, Vinyals and Dean ("Distilling the knowledge in a neural network", 2015) train a
small *student* network on what a large *teacher* outputs. A learned image is encoded
once and decoded many times, often on weak devices, so the decoder is where a small
network pays. Here the student is a synthesis transform ``g_s`` that reads the latents
the teacher's encoder and entropy model produce: the teacher's bitstream does not
change, byte for byte (:func:`with_student`).

Fu et al. ("Fast and high-performance learned image compression with improved
checkerboard context model, deformable residual module, and knowledge distillation",
IEEE TIP 2024, sec. III-D) transfer the teacher's final *and intermediate* outputs to a
student decoder; :func:`distillation_loss` weighs the three terms, with the intermediate
features matched through 1x1 adapters (:class:`FeatureAdapters`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import metrics, seeding, train
from .layers import GDN, lower_bound
from .models.base import ImageCodec
from .models.factorized import conv, deconv
from .models.hyperprior import ScaleHyperprior
from .seeding import seeded


def student_synthesis(
    M: int, channels: Sequence[int], strides: Sequence[int]
) -> nn.Sequential:
    """A synthesis transform ``[B, M, h, w] -> [B, 3, 16h, 16w]``: one transposed
    convolution per entry of ``strides`` (their product must be 16), inverse GDN between
    them. Layer ``i`` upsamples by ``strides[i]`` with a kernel of ``2 * stride + 1`` (5
    at stride 2, as the teacher's) and has ``channels[i]`` outputs; the last has 3.

    ``channels=(N, N, N), strides=(2, 2, 2, 2)`` is the teacher's own architecture at
    width ``N``; ``strides=(4, 2, 2)`` has one layer fewer; ``strides=(8, 2)`` is a
    two-layer decoder like Yang and Mandt's (ICCV 2023)."""
    channels, strides = [int(c) for c in channels], [int(s) for s in strides]
    if len(channels) != len(strides) - 1:
        raise ValueError(
            f"{len(strides)} layers need {len(strides) - 1} hidden widths, "
            f"got {len(channels)}"
        )
    if math.prod(strides) != 16 or min(strides) < 1 or min(channels, default=1) < 1:
        raise ValueError(
            f"the strides must multiply to 16 and every width be positive: "
            f"{strides}, {channels}"
        )
    widths = [int(M), *channels, 3]
    layers = []
    for i, stride in enumerate(strides):
        layers.append(
            nn.ConvTranspose2d(
                widths[i],
                widths[i + 1],
                2 * stride + 1,
                stride=stride,
                padding=stride,
                output_padding=stride - 1,
            )
        )
        if i < len(strides) - 1:
            layers.append(GDN(widths[i + 1], inverse=True))
    return nn.Sequential(*layers)


def synthesis_features(
    g_s: nn.Sequential, y_hat: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(x_hat, features)``: the output of ``g_s`` and its intermediate features, the
    output of every inverse GDN (one per upsampling stage but the last)."""
    features, x = [], y_hat
    for layer in g_s:
        x = layer(x)
        if isinstance(layer, GDN):
            features.append(x)
    return x, features


class FeatureAdapters(nn.Module):
    """1x1 convolutions that map each student feature to the teacher feature of the same
    resolution, so features of different widths can be compared (Fu et al. 2024, sec.
    III-D). A student stage with no teacher stage at its resolution is not matched."""

    def __init__(self, student_g_s: nn.Sequential, teacher_g_s: nn.Sequential, M: int):
        super().__init__()
        probe = torch.zeros(1, M, 2, 2, device=next(teacher_g_s.parameters()).device)
        student_device = next(student_g_s.parameters()).device  # the student's own
        with torch.no_grad():
            _, student = synthesis_features(student_g_s, probe.to(student_device))
            _, teacher = synthesis_features(teacher_g_s, probe)
        by_size = {f.shape[-1]: j for j, f in enumerate(teacher)}
        self.pairs = [
            (i, by_size[f.shape[-1]])
            for i, f in enumerate(student)
            if f.shape[-1] in by_size
        ]
        self.adapters = nn.ModuleList(
            nn.Conv2d(student[i].shape[1], teacher[j].shape[1], 1)
            for i, j in self.pairs
        ).to(probe.device)

    def forward(
        self, student: list[torch.Tensor], teacher: list[torch.Tensor]
    ) -> torch.Tensor:
        """Mean over the matched stages of the MSE between adapted student and teacher
        features."""
        if not self.pairs:
            return student[0].new_zeros(()) if student else torch.zeros(())
        losses = [
            F.mse_loss(adapter(student[i]), teacher[j])
            for adapter, (i, j) in zip(self.adapters, self.pairs)
        ]
        return torch.stack(losses).mean()


def distillation_loss(
    x_hat_student: torch.Tensor,
    x_hat_teacher: torch.Tensor,
    x: torch.Tensor | None = None,
    *,
    teacher_weight: float = 1.0,
    truth_weight: float = 0.0,
    feature_loss: torch.Tensor | None = None,
    feature_weight: float = 0.0,
) -> torch.Tensor:
    """``teacher_weight * D(x_hat_student, x_hat_teacher) + truth_weight *
    D(x_hat_student, x) + feature_weight * feature_loss``, with ``D`` the mean squared
    error: the output matching of Hinton et al. (2015) for a regression, the
    ground-truth term, and the intermediate-feature term of Fu et al. (2024). Distilling
    "from the teacher only" is ``truth_weight=0``, which needs no ground truth: any
    images serve as transfer set."""
    weights = {
        "teacher_weight": teacher_weight,
        "truth_weight": truth_weight,
        "feature_weight": feature_weight,
    }
    if min(weights.values()) < 0 or not any(weights.values()):
        raise ValueError(
            f"the weights must be non-negative and not all zero: {weights}"
        )
    if truth_weight and x is None:
        raise ValueError("truth_weight > 0 needs the ground-truth images x")
    if feature_weight and feature_loss is None:
        raise ValueError("feature_weight > 0 needs the feature loss")
    loss = teacher_weight * F.mse_loss(x_hat_student, x_hat_teacher)
    if truth_weight:
        loss = loss + truth_weight * F.mse_loss(x_hat_student, x)
    if feature_weight:
        loss = loss + feature_weight * feature_loss
    return loss


def check_student(teacher: ImageCodec, g_s: nn.Module) -> None:
    """``ValueError`` unless ``g_s`` reads the teacher's ``M`` latent channels and
    returns an image 16 times the latent's size."""
    M = teacher.M
    probe = torch.zeros(1, M, 2, 3, device=next(teacher.parameters()).device)
    try:
        with torch.no_grad():
            out = g_s.to(probe.device)(probe)
    except RuntimeError as error:
        raise ValueError(
            f"the student decoder does not read the teacher's {M} latent channels: "
            f"{error}"
        ) from None
    if tuple(out.shape) != (1, 3, 32, 48):
        raise ValueError(
            f"the student decoder turns a [1, {M}, 2, 3] latent into "
            f"{list(out.shape)}, not an image [1, 3, 32, 48]"
        )


def with_student(teacher: ImageCodec, g_s: nn.Module) -> ImageCodec:
    """A codec whose ``compress`` is the teacher's, byte for byte, and whose
    ``decompress`` runs the student ``g_s``: a copy of the teacher with its synthesis
    transform replaced. Its bitstream header names the teacher's class, hyper-parameters
    and coding tables, so it reads the teacher's bitstreams and no other (the
    fingerprint check of ``ImageCodec.read_bitstream`` refuses bytes written with other
    tables)."""
    check_student(teacher, g_s)
    codec = copy.deepcopy(teacher)
    codec.g_s = g_s
    return codec.eval()


def teacher_targets(
    teacher: ImageCodec, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``(y_hat, x_hat, features)`` of the teacher on images ``x``: the latents its
    decoder really receives (eval mode: the coder's rounding, as ``decompress`` sees
    them), its reconstruction and its intermediate features. No gradients."""
    teacher.eval()
    x = x.to(next(teacher.parameters()).device)
    with torch.no_grad():
        y_hat, _ = teacher.entropy(teacher.g_a(x))
        x_hat, features = synthesis_features(teacher.g_s, y_hat)
    return y_hat, x_hat, features


def _per_batch(compute, data, device) -> tuple:
    """``(data, compute)`` for training on ``device``: a list of batches moved there
    once, with ``compute(x)`` remembered for each of its batches (cycled by
    ``train.batches``, the same tensors repeat, so the frozen teacher runs once per
    batch); a ``Dataset`` as it is, with ``compute`` run at every step, since its
    batches are too many to keep (at the ``gpu`` budget's crops, the teacher's outputs
    of all of them would take tens of gigabytes) and each is a new tensor on the
    device."""
    if not isinstance(data, (list, tuple)):
        return data, compute
    data = [x.to(device) for x in data]
    memo = {}

    def cached(x):
        if id(x) not in memo or memo[id(x)][0] is not x:
            memo[id(x)] = (x, compute(x))
        return memo[id(x)][1]

    return data, cached


def distill(
    teacher: ImageCodec,
    g_s: nn.Sequential,
    data,
    *,
    steps: int,
    teacher_weight: float = 1.0,
    truth_weight: float = 0.0,
    feature_weight: float = 0.0,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "distilling",
) -> tuple[ImageCodec, list[dict]]:
    """Train the student synthesis ``g_s`` for ``steps`` Adam steps on the teacher's
    hard latents of the images in ``data``, with :func:`distillation_loss`; the teacher
    (encoder, entropy model, decoder) stays frozen. The learning rate drops tenfold for
    the last tenth of the steps (``train.DECAY_AT``). ``data`` is a ``Dataset`` of
    images or a list of batches; a listed batch (one image to fit, as in microdosing)
    costs the teacher once. The adapters of ``feature_weight`` are drawn
    from ``seed`` apart from the data, so a run with features sees the crops of the run
    without. ``train.fit_decoder`` trains the student in the teacher's codec; returns
    ``(with_student(teacher, g_s), history)``, the history's ``psnr`` the student's
    against the images."""
    device = device or next(teacher.parameters()).device  # default: the teacher's
    teacher.to(device).eval()
    codec = with_student(teacher, g_s)
    with seeded(seed):
        adapters = (
            FeatureAdapters(g_s, teacher.g_s, teacher.M) if feature_weight else None
        )
    data, targets = _per_batch(lambda x: teacher_targets(teacher, x), data, device)

    def batch_loss(x):
        y_hat, x_teacher, teacher_features = targets(x)
        x_student, student_features = synthesis_features(g_s, y_hat)
        features = adapters(student_features, teacher_features) if adapters else None
        loss = distillation_loss(
            x_student,
            x_teacher,
            x,
            teacher_weight=teacher_weight,
            truth_weight=truth_weight,
            feature_loss=features,
            feature_weight=feature_weight,
        )
        mse = F.mse_loss(x_student.detach(), x).item()
        return loss, {"mse": mse, "psnr": metrics.psnr_from_mse(mse)}

    history = train.fit_decoder(
        codec,
        data,
        steps=steps,
        batch_loss=batch_loss,
        trained=[*g_s.parameters(), *(adapters.parameters() if adapters else ())],
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        decay_at=train.DECAY_AT,
        progress=progress,
        description=description,
    )
    return codec, history


# --- Soft targets: an entropy model distilled through its predicted distributions
# ---------


def symbol_pmf(scales: torch.Tensor, reach: int) -> torch.Tensor:
    """``[..., 2 * reach + 1]``: the probability of each symbol ``k = -reach .. reach``
    of a latent coded as ``round(y - mean)`` under ``N(0, sigma^2)`` convolved with a
    unit uniform (Ballé et al. 2018, eq. 10), scales bounded below by 0.11 as the coder
    bounds them. The tails beyond ``+-(reach + 1/2)`` are folded into the end bins, so
    each row sums to 1."""
    sigma = lower_bound(scales, 0.11)[
        ..., None
    ]  # the coder's bound; gradients still pull up
    k = torch.arange(-reach, reach + 1, dtype=sigma.dtype, device=sigma.device)
    upper, lower = (
        torch.special.ndtr((k + 0.5) / sigma),
        torch.special.ndtr((k - 0.5) / sigma),
    )
    upper = torch.cat([upper[..., :-1], torch.ones_like(upper[..., -1:])], dim=-1)
    lower = torch.cat([torch.zeros_like(lower[..., :1]), lower[..., 1:]], dim=-1)
    return (upper - lower).clamp_min(1e-12)


def soft_target_kl(
    teacher_scales: torch.Tensor, student_scales: torch.Tensor, reach: int | None = None
) -> torch.Tensor:
    """Mean over latents of ``KL(P_teacher || P_student)`` in bits, the two symbol pmfs
    of :func:`symbol_pmf`: Hinton et al.'s soft targets for an entropy model. It is the
    expected number of extra bits a latent costs when the coder uses the student's pmf
    for symbols distributed as the teacher predicts. ``reach`` defaults to eight of the
    teacher's largest scales, at most 64: the mass beyond is folded into the end bins,
    which can only lower the divergence (a coarser partition), and at most by the little
    mass that scales above 8 leave out there."""
    if teacher_scales.shape != student_scales.shape:
        raise ValueError(
            f"scales of shapes {list(teacher_scales.shape)} and "
            f"{list(student_scales.shape)}"
        )
    if reach is None:
        reach = min(64, max(2, math.ceil(8 * float(teacher_scales.detach().max()))))
    p, q = symbol_pmf(teacher_scales, reach), symbol_pmf(student_scales, reach)
    return (p * (torch.log2(p) - torch.log2(q))).sum(dim=-1).mean()


class StudentHyperprior(ScaleHyperprior):
    """A scale hyperprior (Ballé et al. 2018) whose hyper-synthesis ``h_s`` is a student
    of ``width`` channels instead of ``N``. It predicts other scales than its teacher,
    so it writes other bytes: its bitstream names its own class and ``(N, M, width)``,
    and a teacher refuses it (and it a teacher's)."""

    def __init__(self, N: int = 128, M: int = 192, width: int = 64):
        super().__init__(N, M)
        self.width = int(width)
        if self.width < 1:
            raise ValueError(f"the student's width must be positive, got {width}")
        self.h_s = nn.Sequential(
            deconv(self.N, self.width),
            nn.ReLU(inplace=True),
            deconv(self.width, self.width),
            nn.ReLU(inplace=True),
            conv(self.width, self.M, 3, 1),
            nn.ReLU(inplace=True),
        )

    def hyperparameters(self) -> tuple[int, ...]:
        return (self.N, self.M, self.width)

    @classmethod
    def from_teacher(cls, teacher: ScaleHyperprior, width: int) -> StudentHyperprior:
        """Everything but ``h_s`` copied from ``teacher`` (a ``ScaleHyperprior``, not a
        mean-scale one: its symbols ``round(y)`` do not depend on ``h_s``), and the bias
        of ``h_s``'s last layer too, so the student starts at the teacher's typical
        scales rather than behind a ReLU that passes no gradient."""
        if type(teacher) is not ScaleHyperprior:
            raise ValueError(
                f"the teacher must be a ScaleHyperprior, not {type(teacher).__name__}"
            )
        student = cls(teacher.N, teacher.M, width).to(next(teacher.parameters()).device)
        state = {
            k: v for k, v in teacher.state_dict().items() if not k.startswith("h_s.")
        }
        missing, unexpected = student.load_state_dict(state, strict=False)
        if unexpected or not all(k.startswith("h_s.") for k in missing):
            raise RuntimeError(f"weights missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            student.h_s[-2].bias.copy_(teacher.h_s[-2].bias)
        return student.eval()


def teacher_scales(
    teacher: ScaleHyperprior, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z_hat, scales)``: the hyper-latent the decoder receives (rounded) and the
    scales the teacher's ``h_s`` predicts from it. No gradients."""
    teacher.eval()
    x = x.to(next(teacher.parameters()).device)
    with torch.no_grad():
        z_hat, _ = teacher.hyperprior(teacher.hyper_analysis(teacher.g_a(x)))
        return z_hat, teacher.h_s(z_hat)


def distill_hyper_synthesis(
    teacher: ScaleHyperprior,
    student: StudentHyperprior,
    data,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 8,
    sample: int | None = 4096,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "distilling h_s",
) -> list[dict]:
    """Train the student's ``h_s`` to predict the teacher's symbol pmfs from the same
    ``z_hat``, minimizing :func:`soft_target_kl`; the rest of both models is frozen. The
    history's ``loss`` is that KL in bits per latent. ``data`` is a ``Dataset`` of
    images or a list of batches; the teacher's scales of a listed batch are computed
    once. Train on crops large enough for ``z`` to have an interior (256 pixels: 4x4):
    on 64-pixel crops ``z`` is 1x1 and ``h_s`` sees mostly its zero padding. The student
    ends in eval mode with coding tables built. Each step's KL is averaged over
    ``sample`` latents drawn at random from the batch (all of them with
    ``sample=None``): the divergence of one latent is a sum over up to 129 symbols, and
    a batch of 256-pixel crops has 100,000 latents."""
    device = device or next(teacher.parameters()).device  # default: the teacher's
    teacher.to(device).eval()
    data, scales = _per_batch(lambda x: teacher_scales(teacher, x), data, device)
    generator = seeding.generator(device, seed)

    def batch_loss(x):
        z_hat, target = scales(x)
        target, predicted = target.flatten(), student.h_s(z_hat).flatten()
        if sample and target.numel() > sample:  # an unbiased estimate of the mean KL
            index = torch.randint(
                target.numel(), (sample,), generator=generator, device=target.device
            )
            target, predicted = target[index], predicted[index]
        return soft_target_kl(target, predicted), {}

    return train.fit_decoder(
        student,
        data,
        batch_loss=batch_loss,
        trained=student.h_s.parameters(),
        steps=steps,
        lr=lr,
        decay_at=train.DECAY_AT,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        description=description,
    )


def rate_excess(
    teacher: ScaleHyperprior, student: StudentHyperprior, x: torch.Tensor
) -> dict:
    """What the student's ``h_s`` costs on images ``x`` (``[B, 3, H, W]``, padded), in
    bits: ``predicted``, the summed :func:`soft_target_kl` (the excess expected if the
    symbols followed the teacher's pmfs); ``ideal``, the excess of ``-log2`` probability
    of the symbols really coded; ``real``, the excess of the ``y`` strings the coder
    writes."""
    x = x.to(next(teacher.parameters()).device)
    z_hat, scales = teacher_scales(teacher, x)
    with torch.no_grad():
        student_scales = student.h_s(z_hat)
        y_hat = teacher.conditional.quantize(teacher.g_a(x)).float()
        count = y_hat.numel()
        predicted = float(soft_target_kl(scales, student_scales)) * count
        bits = [
            float(-torch.log2(teacher.conditional.likelihood(y_hat, s)).sum())
            for s in (scales, student_scales)
        ]
        real = [
            8
            * sum(
                len(model.image_to_strings(x[i : i + 1], "ans")[0])
                for i in range(len(x))
            )
            for model in (teacher, student)
        ]
    return {
        "predicted": predicted,
        "ideal": bits[1] - bits[0],
        "real": real[1] - real[0],
        "latents": count,
    }


# --- Prune and retrain (Fu et al. 2024), and microdosing (Helminger et al. 2021)
# -----------


def hidden_stages(g_s: nn.Sequential) -> list[int]:
    """Indices of the layers whose output channels are hidden (each followed by a
    GDN)."""
    return [i for i in range(len(g_s) - 1) if isinstance(g_s[i + 1], GDN)]


def _with_masks(g_s: nn.Sequential, y_hat: torch.Tensor, masks: dict) -> torch.Tensor:
    x = y_hat
    for i, layer in enumerate(g_s):
        x = layer(x)
        if i in masks:
            x = x * masks[i][None, :, None, None]
    return x


def channel_importance(
    g_s: nn.Sequential, y_hat: torch.Tensor, target: torch.Tensor
) -> dict[int, torch.Tensor]:
    """``{layer index: importance of each of its output channels}``: how much the MSE
    against ``target`` grows when that one channel is zeroed. Zeroing a channel before
    its GDN is exactly removing it (it adds nothing to the other channels' norms)."""
    importance = {}
    with torch.no_grad():
        base = F.mse_loss(g_s(y_hat), target)
        for i in hidden_stages(g_s):
            channels = g_s[i].out_channels
            growth = []
            for c in range(channels):
                mask = torch.ones(channels, device=y_hat.device)
                mask[c] = 0
                growth.append(
                    F.mse_loss(_with_masks(g_s, y_hat, {i: mask}), target) - base
                )
            importance[i] = torch.stack(growth)
    return importance


def prune_channels(
    g_s: nn.Sequential, y_hat: torch.Tensor, target: torch.Tensor, keep: float
) -> tuple[nn.Sequential, dict]:
    """A copy of ``g_s`` that keeps the ``keep`` fraction (at least one) of each hidden
    stage's channels, those whose removal costs most (:func:`channel_importance`), their
    weights unchanged. Fu et al. (2024, sec. III-D) prune the least useful residual
    blocks of their student and retrain it; a plain decoder's unit is the channel, so
    this prunes channels. Returns ``(pruned, {layer index: kept channel indices})``."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    pruned = copy.deepcopy(g_s)
    kept = {}
    for i, scores in channel_importance(g_s, y_hat, target).items():
        count = max(1, round(keep * len(scores)))
        index = torch.sort(torch.topk(scores, count).indices).values
        kept[i] = index.tolist()
        layer, gdn, after = pruned[i], pruned[i + 1], pruned[i + 2]
        with torch.no_grad():
            layer.weight = nn.Parameter(
                layer.weight[:, index].clone()
            )  # [in, out, k, k]
            layer.bias = nn.Parameter(layer.bias[index].clone())
            layer.out_channels = count
            gdn.beta = nn.Parameter(gdn.beta[index].clone())
            gdn.gamma = nn.Parameter(gdn.gamma[index][:, index].clone())
            after.weight = nn.Parameter(after.weight[index].clone())
            after.in_channels = count
    return pruned, kept


def quantize_weights(module: nn.Module, bits: int = 8) -> tuple[nn.Module, int]:
    """A copy of ``module`` with every parameter tensor rounded to ``bits``-bit integers
    times one scale per tensor (``max |w| / (2^(bits-1) - 1)``), and the bytes it takes
    to send: ``bits / 8`` per weight plus a 4-byte scale per tensor. Microdosing
    (Helminger et al., BMVC 2021) sends a decoder fitted to the content with the
    content; its weights count in the rate."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits}")
    quantized = copy.deepcopy(module)
    levels = 2 ** (bits - 1) - 1
    size = 0
    with torch.no_grad():
        for parameter in quantized.parameters():
            scale = parameter.abs().max().clamp_min(1e-12) / levels
            parameter.copy_(torch.round(parameter / scale) * scale)
            size += math.ceil(parameter.numel() * bits / 8) + 4
    return quantized, size
