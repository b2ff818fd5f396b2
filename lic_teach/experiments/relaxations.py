"""The quantization chapter's fine-tunings: copies of the zoo's factorized models
trained on with each relaxation of rounding, beside a control at equal steps."""

from __future__ import annotations

from .. import train
from ..budget import Budget
from ..relaxed_training import Relaxed
from .end_to_end import finetuned_family


def relaxation_family(relaxations, B: Budget, progress: bool = True) -> dict:
    """``{relaxation: (models, histories)}``: the zoo's factorized models, each
    fine-tuned at its lambda for :func:`finetune_steps` steps (lr 3e-4) with
    ``relaxation`` in place of rounding (``relaxed_training.Relaxed``), on the
    end-to-end chapter's training crops. ``"noise"`` is the control: the same extra
    steps with the relaxation the zoo trained with."""
    families = {}
    for relaxation in relaxations:

        def tune(model, crops, relaxation=relaxation, **options):
            relaxed = Relaxed(model, relaxation, options["steps"])
            return train.fit(relaxed, crops, lr=3e-4, seed=2, **options)

        families[relaxation] = finetuned_family(
            B, "relaxation fine-tuning", relaxation, tune, progress
        )
    return families
