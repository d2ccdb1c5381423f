"""A PatchGAN discriminator: one real/fake logit per image patch (lessons 04-05).

Instead of one verdict per image, a PatchGAN answers for every patch: its output is a map of
logits ``(B, 1, h, w)``, one per (overlapping) window of the input, ``receptive_field``
pixels wide. This suits inpainting, where only part of an image is made up, and lets the
losses of :mod:`course_lib.losses` tell the discriminator *which* patches of a fake are fake.

The layout is the one of pix2pix: ``layers`` 4x4 convolutions with stride 2, then two with
stride 1 (the last one gives the logit), LeakyReLU(0.2) between them. Widths double from
``width`` up to ``8 * width``. With ``layers=3`` each logit sees a 70x70 window; a 64x64
image gives a 6x6 map.

There is no batch norm: it would mix the statistics of the real and the fake batch and make
each image's logit depend on the other images, which breaks the per-image gradient the R1
penalty measures. ``spectral_norm=True`` constrains every layer instead (the SN-PatchGAN of
DeepFill v2, trained with the hinge loss); LaMa's discriminator is trained without it, with
the non-saturating loss and R1.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as add_spectral_norm

__all__ = ["PatchDiscriminator"]

KERNEL = 4  # every convolution is 4x4 with padding 1


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: images ``(B, in_channels, H, W)`` -> logits ``(B, 1, h, w)``.

    * ``width``: channels of the first layer; layer ``n`` has ``width * min(2**n, 8)``.
    * ``layers``: stride-2 convolutions (each halves the size and roughly doubles the
      receptive field).
    * ``spectral_norm``: wrap every convolution in spectral normalisation.

    A logit above 0 means "real". ``forward(x, return_features=True)`` also returns the
    activations after each LeakyReLU, for :func:`course_lib.losses.feature_matching_loss`.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 64, layers: int = 3, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("layers", layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"PatchDiscriminator: {name} must be a positive int, got {value!r}."
                )
        self.in_channels = in_channels
        self.layers = layers
        widths = [in_channels] + [width * min(2**n, 8) for n in range(layers + 1)]
        strides = [2] * layers + [1]

        def conv(c_in: int, c_out: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, KERNEL, stride=stride, padding=1)
            return add_spectral_norm(layer) if spectral_norm else layer

        # Feature blocks: conv + LeakyReLU; their outputs are what feature matching compares.
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(widths[n], widths[n + 1], strides[n]), nn.LeakyReLU(0.2))
            for n in range(layers + 1)
        )
        self.head = conv(widths[-1], 1, 1)  # one logit per patch, no activation

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input window each logit sees (70 for ``layers=3``)."""
        size = KERNEL  # what one logit sees of the head's input
        for stride in reversed([2] * self.layers + [1]):  # back through the blocks, last first
            size = (size - 1) * stride + KERNEL
        return size

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the logit map for an input of ``height x width``."""

        def through(size: int) -> int:
            for _ in range(self.layers):
                size = size // 2  # 4x4, stride 2, padding 1
            return size - 2  # two 4x4 stride-1 convolutions with padding 1 each lose 1

        return through(height), through(width)

    def forward(
        self, image: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(B, 1, h, w)``; with ``return_features``, also the block outputs."""
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError(
                "PatchDiscriminator takes images (B, C, H, W), got "
                f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image)}."
            )
        if image.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator was built for {self.in_channels} input channels, got "
                f"{tuple(image.shape)}; pass in_channels= to match (e.g. 4 for image + mask)."
            )
        if min(self.output_size(*image.shape[-2:])) < 1:
            smallest = 3 * 2**self.layers
            raise ValueError(
                f"images of {image.shape[-2]}x{image.shape[-1]} are too small for a "
                f"PatchDiscriminator with layers={self.layers}: it needs at least "
                f"{smallest}x{smallest}; use fewer layers."
            )
        features = []
        x = image
        for block in self.blocks:
            x = block(x)  # (B, C_n, H / 2**n, W / 2**n), then two stride-1 blocks
            features.append(x)
        logits = self.head(x)  # (B, 1, h, w)
        return (logits, features) if return_features else logits
