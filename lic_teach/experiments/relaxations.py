"""The quantization chapter's fine-tunings: copies of the end-to-end chapter's models
trained on with each relaxation of rounding, beside a control at equal steps."""
from __future__ import annotations

from .. import train
from ..budget import Budget
from ..relaxed_training import Relaxed
from .end_to_end import finetune_steps, finetuned_family


def relaxation_family(relaxations, B: Budget, progress: bool = True) -> dict:
    """``{relaxation: (models, histories)}``: the end-to-end chapter's models, each fine-tuned at its
    lambda for :func:`finetune_steps` steps (lr 3e-4) with ``relaxation`` in place of
    rounding (``relaxed_training.Relaxed``), on the end-to-end chapter's training crops. ``"noise"``
    is the control: the same extra steps with the relaxation the end-to-end chapter trained with."""
    steps = finetune_steps(B)
    families = {}
    for relaxation in relaxations:
        def tune(model, lmbda, crops, label, relaxation=relaxation):
            return train.fit(Relaxed(model, relaxation, steps), crops, steps=steps, lmbda=lmbda, lr=3e-4,
                             batch_size=B.batch_size, seed=2, device=B.device, progress=progress,
                             description=label)

        families[relaxation] = finetuned_family(B, "relaxation fine-tuning", relaxation, tune, progress)
    return families
