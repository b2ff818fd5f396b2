"""Helpers shared by the model tests."""
import torch


def perturb(model, seed=0):
    """Move every parameter off its initial value, so that all of them matter in a check."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_((0.02 if name.endswith("weight") else 0.05) * torch.randn_like(parameter))
    return model
