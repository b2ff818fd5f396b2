"""The training that the end-to-end, hyperprior and context-model chapters share, so
that their rate-distortion curves compare like with like.

The end-to-end chapter trains a family of factorized-prior models
(:func:`factorized_family`). The later chapters start from the zoo's factorized models
instead (:func:`zoo_family`), so that none trains that family again: the hyperprior and
context-model chapters give every architecture their transforms and train its entropy
model alone, on the same latents for the same steps (:func:`train_architectures`).
Everything is trained once: the weights are cached (``cache.family``) and reused
while the settings and the code stay the same.

One module per topic: ``end_to_end`` (the live family, and the zoo's that every later
chapter starts from),
``relaxations`` (the quantization chapter), ``decoders`` (the decoder-training chapter),
``architectures`` (the hyperprior and context-model chapters); the later chapters'
recipes are imported by their modules (``rectification``, ``lattice_vq``,
``evaluation``). A new chapter's recipe is a new module here.
"""

from .architectures import (
    Setup,
    anchor_handicap,
    setup,
    train_architectures,
    training_latents,
    transforms,
)
from .decoders import channel_weights, decoder_family, quantizers
from .end_to_end import (
    factorized_family,
    finetune_steps,
    finetuned_family,
    held_out_images,
    lambdas,
    sizes,
    training_crops,
    zoo_family,
)
from .relaxations import relaxation_family

__all__ = [
    "Setup",
    "anchor_handicap",
    "setup",
    "train_architectures",
    "training_latents",
    "transforms",
    "channel_weights",
    "decoder_family",
    "quantizers",
    "factorized_family",
    "finetune_steps",
    "finetuned_family",
    "held_out_images",
    "lambdas",
    "sizes",
    "training_crops",
    "zoo_family",
    "relaxation_family",
]
