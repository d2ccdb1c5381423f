"""The channel-wise fully connected layer of the Context Encoder (lesson 08).

To fill a central hole, a network must move information from the known border to the centre.
Convolutions do it a few pixels per layer; a fully connected layer does it at once, but on a
``C x h x w`` bottleneck it has ``(C h w)^2`` weights (for 512 x 4 x 4: 67 million). The
Context Encoder (Pathak et al., *Context Encoders: Feature Learning by Inpainting*, CVPR
2016) connects each channel's ``h x w`` map only to itself: ``C (h w)^2`` weights (131,072),
every location of a channel seeing every location of the same channel. A 1x1 convolution
then mixes the channels (the paper's stride-1 convolution after the layer).
:class:`ContextEncoder` is the whole network around it.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.networks import InpaintingNetwork

__all__ = ["CONFIGS", "ChannelwiseFullyConnected", "ContextEncoder"]

CONFIGS: dict[str, dict[str, int]] = {"small": {"image_size": 64, "width": 32}}
"""The course's Context Encoder: 64x64 images, a 4x4 bottleneck of 256 channels."""


class ChannelwiseFullyConnected(nn.Module):
    """``y[b, c] = W[c] @ x[b, c].flatten() + bias[c]``, reshaped back: ``(B, C, h, w)`` in and
    out, with one ``(h w) x (h w)`` matrix per channel (no mixing between channels)."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("height", height), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"ChannelwiseFullyConnected: {name} must be a positive int, got {value!r}."
                )
        self.shape = (channels, height, width)
        cells = height * width
        # Initialised like nn.Linear: uniform in +-1/sqrt(fan_in), fan_in = h * w.
        bound = cells**-0.5
        self.weight = nn.Parameter(torch.empty(channels, cells, cells).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, cells).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"ChannelwiseFullyConnected was built for maps (B, {', '.join(map(str, self.shape))}), "
                f"got {tuple(x.shape)}."
            )
        batch, channels, height, width = x.shape
        flat = x.reshape(batch, channels, height * width)  # (B, C, hw)
        out = torch.einsum("cij,bcj->bci", self.weight, flat) + self.bias  # (B, C, hw)
        return out.reshape(batch, channels, height, width)

    def extra_repr(self) -> str:
        channels, height, width = self.shape
        return f"channels={channels}, height={height}, width={width}"


class ContextEncoder(InpaintingNetwork):
    """The Context Encoder's network, at the course's scale: image with zeroed holes + mask
    ``(B, 4, S, S)`` -> prediction ``(B, 3, S, S)`` in [0, 1].

    Encoder: four 4x4 stride-2 convolutions (LeakyReLU 0.2, batch norm after the first),
    ``S`` to ``S / 16``; the channel-wise fully connected layer and a 1x1 convolution that
    mixes the channels; decoder: four 4x4 stride-2 transposed convolutions back to ``S``
    (ReLU, batch norm), a sigmoid. The paper (128x128 input, five stages, an AlexNet-like
    encoder) predicts the central 64x64 only; this one predicts every pixel, so that it fits
    the course's evaluation, and takes the mask as a fourth channel like every course network.
    """

    CONFIGS = CONFIGS

    def __init__(self, image_size: int = 64, width: int = 32) -> None:
        super().__init__()
        if image_size % 16 or image_size < 16:
            raise ValueError(
                f"ContextEncoder: image_size must be a multiple of 16, got {image_size}."
            )
        widths = [4, width, 2 * width, 4 * width, 8 * width]
        down = []
        for index, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            norm = nn.BatchNorm2d(c_out) if index else nn.Identity()
            down += [nn.Conv2d(c_in, c_out, 4, 2, 1), norm, nn.LeakyReLU(0.2, inplace=True)]
        self.encoder = nn.Sequential(*down)
        side = image_size // 16
        self.bottleneck = nn.Sequential(
            ChannelwiseFullyConnected(8 * width, side, side),
            nn.Conv2d(8 * width, 8 * width, 1),  # the channels meet here
            nn.BatchNorm2d(8 * width),
            nn.ReLU(inplace=True),
        )
        up, reversed_widths = [], [8 * width, 4 * width, 2 * width, width]
        for c_in, c_out in zip(reversed_widths[:-1], reversed_widths[1:], strict=True):
            up += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        up.append(nn.ConvTranspose2d(width, 3, 4, 2, 1))
        self.decoder = nn.Sequential(*up)
        self.image_size = image_size

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or tuple(image.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(
                f"ContextEncoder was built for {self.image_size}x{self.image_size} images, got "
                f"{tuple(image.shape)}; resize or crop first."
            )
        x = torch.cat([image * (1 - hole), hole], dim=1)  # (B, 4, S, S): holes zeroed
        return torch.sigmoid(self.decoder(self.bottleneck(self.encoder(x))))
