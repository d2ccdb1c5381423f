"""Small helpers shared by the network tests (U-Nets, LaMa, masked autoencoder)."""

import torch
from torch import nn


def model(model_class: type, config: str = "small", seed: int = 0) -> nn.Module:
    """A seeded network in eval mode (deterministic batch norm)."""
    torch.manual_seed(seed)
    return model_class.from_config(config).eval()


def image_and_hole(
    batch: int, height: int, width: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images in [0, 1] and a (B, 1, H, W) hole mask of about 30% scattered holes."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=generator)
    hole = (torch.rand(batch, 1, height, width, generator=generator) < 0.3).float()
    return image, hole
