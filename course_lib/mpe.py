"""ZITS's masking positional encoding (lesson 09): where in the hole each pixel is.

A convolution sees a hole pixel's neighbourhood, not how deep inside the hole it lies: a
pixel next to the known region and one in the middle of a wide hole can look the same to it
(all zeros around). ZITS (Dong et al., *Incremental Transformer Structure Enhanced Image
Inpainting with Masking Positional Encoding*, CVPR 2022) gives the network two extra inputs
for every hole pixel, computed from the mask alone:

* **distance**: how many 3x3 dilations of the known region it takes to reach the pixel, which
  is the chessboard distance to the nearest known pixel (1 for a pixel touching the known
  region). As an index for an embedding it is taken relative to half the image's short side,
  in ``bins`` steps, so the same hole drawn at another resolution gets the same indices;
* **direction**: four bits, one per quadrant (up-left, down-left, up-right, down-right): at
  the step the pixel is reached, is a pixel reached before it among its neighbours in that
  quadrant?

:func:`masking_positional_encoding` computes both; :class:`MaskPositionEmbedding` turns them
into features as ZITS does (a fixed sinusoidal table for the distance, one learned vector per
direction bit, each scaled by a learned factor that starts at 0, so a network starts as if
the encoding were not there). Pixels outside the image count as not known.

:class:`PositionedConvUNet` is lesson 03's ConvUNet with those features added to its first
layer's output, where ZITS adds them to its texture network's (after the first convolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.unet import ConvUNet
from course_lib.validate import check_known_pixels, check_mask

__all__ = [
    "QUADRANTS",
    "MaskPositionEmbedding",
    "PositionedConvUNet",
    "masking_positional_encoding",
    "sinusoid_table",
]

# 3x3 correlation kernels: the neighbours of a pixel in each quadrant (the pixel itself, which
# is not known yet when it is reached, adds nothing).
QUADRANTS = torch.tensor(
    [
        [[1, 1, 0], [1, 1, 0], [0, 0, 0]],  # up and left
        [[0, 0, 0], [1, 1, 0], [1, 1, 0]],  # down and left
        [[0, 1, 1], [0, 1, 1], [0, 0, 0]],  # up and right
        [[0, 0, 0], [0, 1, 1], [0, 1, 1]],  # down and right
    ],
    dtype=torch.float32,
)[:, None]  # (4, 1, 3, 3)


def masking_positional_encoding(
    hole: torch.Tensor, bins: int = 128
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(distance, index, direction)`` of every pixel of ``hole`` ``(B, 1, H, W)`` (1 = hole).

    ``distance`` ``(B, H, W)`` int64: 0 for known pixels, else the number of 3x3 dilations of
    the known region that reach the pixel. ``index`` ``(B, H, W)`` int64 in ``[0, bins)``:
    ``distance / (short side / 2) * bins``, truncated and clipped. ``direction``
    ``(B, 4, H, W)`` float32 in {0, 1}: the quadrants (:data:`QUADRANTS`) from which the pixel
    was reached; all 0 for known pixels. Every sample needs a known pixel.
    """
    check_mask(hole, name="hole")
    check_known_pixels(hole)
    known = 1 - hole.float()  # (B, 1, H, W)
    distance = torch.zeros_like(known, dtype=torch.long)
    direction = torch.zeros(known.shape[0], 4, *known.shape[-2:], device=known.device)
    kernels = QUADRANTS.to(known.device)
    step = 0
    while bool((known < 1).any()):
        step += 1
        grown = F.max_pool2d(known, 3, stride=1, padding=1)  # one 3x3 dilation
        reached = (grown > 0) & (known == 0)  # (B, 1, H, W): the pixels of this step
        distance[reached] = step
        from_quadrant = F.conv2d(known, kernels, padding=1) > 0  # (B, 4, H, W)
        direction[from_quadrant & reached] = 1.0
        known = grown
    short = min(hole.shape[-2:])
    index = (distance.float() / (short / 2) * bins).long().clamp(0, bins - 1)
    return distance[:, 0], index[:, 0], direction


def sinusoid_table(positions: int, channels: int) -> torch.Tensor:
    """``(positions, channels)``: position ``p``'s sines in the first half of the channels and
    its cosines in the second, at frequencies ``10000^(-2j / channels)``."""
    half = (channels + 1) // 2
    frequency = 10000 ** (-2 * torch.arange(half, dtype=torch.float64) / channels)  # (half,)
    angle = torch.arange(positions, dtype=torch.float64)[:, None] * frequency  # (P, half)
    return torch.cat([angle.sin(), angle.cos()], dim=1)[:, :channels].float()


class MaskPositionEmbedding(nn.Module):
    """Features ``(B, channels, H, W)`` from a hole's encoding, to add to a network's features.

    ``alpha_distance * table[index] + alpha_direction * sum of the vectors of the set
    direction bits``, zero at known pixels; the table is fixed (sinusoidal), the direction
    vectors are learned (normal initialisation), and both alphas start at 0.
    """

    def __init__(self, channels: int, bins: int = 128) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(
                f"MaskPositionEmbedding: channels must be a positive int, got {channels!r}."
            )
        self.bins = bins
        self.register_buffer("table", sinusoid_table(bins, channels), persistent=False)
        self.direction_vectors = nn.Parameter(torch.randn(4, channels))
        self.alpha_distance = nn.Parameter(torch.zeros(()))
        self.alpha_direction = nn.Parameter(torch.zeros(()))

    def forward(self, hole: torch.Tensor) -> torch.Tensor:
        _, index, direction = masking_positional_encoding(hole, self.bins)
        in_hole = hole.float()  # (B, 1, H, W): known pixels get no encoding
        distance = self.table[index].permute(0, 3, 1, 2) * in_hole  # (B, C, H, W)
        directions = torch.einsum("bkhw,kc->bchw", direction, self.direction_vectors)
        return self.alpha_distance * distance + self.alpha_direction * directions

    def extra_repr(self) -> str:
        return f"channels={self.table.shape[1]}, bins={self.bins}"


class PositionedConvUNet(ConvUNet):
    """:class:`~course_lib.unet.ConvUNet` told where in the hole each feature lies.

    The first layer (stride 2) turns the image into features at half resolution; their hole
    is the image's, halved by a minimum (a feature cell is known if any of its four pixels
    is), and a :class:`MaskPositionEmbedding` of that hole is added to them. Everything else
    is ConvUNet's, and since the embedding's scales start at 0 the network starts as ConvUNet
    does. ``bins``: the embedding's distance steps; the other arguments as for ConvUNet.
    """

    def __init__(self, *args: object, bins: int = 128, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.position = MaskPositionEmbedding(self.channels[0], bins)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        check_known_pixels(hole)  # a hole with no known pixel has no distance to it
        return super().forward(image, hole)

    def _first_features(self, features: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        coarse_hole = -F.max_pool2d(-hole, 2)  # (B, 1, H/2, W/2): hole where all four are
        return features + self.position(coarse_hole)  # (B, C, H/2, W/2)
