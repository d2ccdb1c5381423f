"""The channel-wise fully connected layer of the Context Encoder (lesson 08).

To fill a central hole, a network must move information from the known border to the centre.
Convolutions do it a few pixels per layer; a fully connected layer does it at once, but on a
``C x h x w`` bottleneck it has ``(C h w)^2`` weights (for 512 x 4 x 4: 67 million). The
Context Encoder (Pathak et al., *Context Encoders: Feature Learning by Inpainting*, CVPR
2016) connects each channel's ``h x w`` map only to itself: ``C (h w)^2`` weights (131,072),
every location of a channel seeing every location of the same channel. A 1x1 convolution
then mixes the channels (the paper's stride-1 convolution after the layer).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelwiseFullyConnected"]


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
