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

from course_lib.unet import ConvUNet

__all__ = ["GatedConv2d", "GatedUNet"]


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


def _gated_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    norm: bool,
    activation: nn.Module | None,
) -> nn.Sequential:
    """:class:`GatedConv2d` in place of a U-Net layer's convolution: the features go through
    the layer's batch norm and activation, then are gated."""
    after = [nn.BatchNorm2d(out_channels)] if norm else []
    after += [activation] if activation is not None else []
    layer = GatedConv2d(
        in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
        activation=nn.Sequential(*after),
    )  # fmt: skip
    return nn.Sequential(layer)


class GatedUNet(ConvUNet):
    """Lesson 03's :class:`~course_lib.unet.ConvUNet` with every layer but the output one a
    gated convolution: the same widths, kernels, batch norms, activations and input (the image
    with zeroed holes and the hole mask), so that a comparison isolates the learned gates.
    Each gated layer has twice the weights of the convolution it replaces.

    :meth:`gates` returns the gates of the last call, encoder first.
    """

    block = staticmethod(_gated_block)

    def gates(self) -> list[torch.Tensor]:
        """Each gated layer's gate ``(B, C, h, w)`` from the last forward pass."""
        layers = [m for m in self.modules() if isinstance(m, GatedConv2d)]
        return [layer.last_gate for layer in layers if layer.last_gate is not None]
