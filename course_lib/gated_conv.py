"""Gated convolution (lesson 08): a mask that the network learns, per channel and location.

A partial convolution (lesson 03) decides by a rule which inputs count: a window counts in
proportion to its valid pixels, the same for every channel, and after a few layers its mask
is all ones. DeepFill v2 (Yu et al., *Free-Form Image Inpainting with Gated Convolution*,
ICCV 2019) learns that decision instead. One convolution computes features, a second one
computes a gate in (0, 1) for every output channel and location, and the layer returns

    output = activation(conv_features(x)) * sigmoid(conv_gate(x))

so each channel can switch itself off where its input is made up, or partly on near the
hole's border, and keep doing so in deep layers. Both convolutions see the same input (the
image, the mask and whatever the layers before made of them), so the gate can depend on the
mask and on the content. As in the authors' code, the two convolutions are one convolution
with twice the output channels, split in half; the activation is ELU.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GatedConv2d"]


class GatedConv2d(nn.Module):
    """``activation(features) * sigmoid(gate)``: ``(B, in_channels, H, W)`` ->
    ``(B, out_channels, H', W')`` with ``H'`` as for ``nn.Conv2d`` with the same settings.

    ``activation``: applied to the features (default ``nn.ELU()``, DeepFill v2's choice;
    ``nn.Identity()`` for none). ``padding`` defaults to the "same" padding of stride 1. After each call, :attr:`last_gate` holds the gate ``(B, out_channels, H', W')``
    (detached), for pictures of what the layer lets through.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("dilation", dilation),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GatedConv2d: {name} must be a positive int, got {value!r}.")
        if padding is None:  # "same" size at stride 1, as DeepFill's layers pad
            padding = dilation * (kernel_size - 1) // 2
        self.out_channels = out_channels
        # One convolution for both halves: features first, then gates.
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, dilation)
        self.activation = nn.ELU() if activation is None else activation
        self.last_gate: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).split(self.out_channels, dim=1)  # (B, C_out, H', W') each
        gate = torch.sigmoid(gate)
        self.last_gate = gate.detach()
        return self.activation(features) * gate

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}"
