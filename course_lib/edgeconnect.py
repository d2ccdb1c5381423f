"""EdgeConnect's two generators (lesson 09): draw the edges first, then the colours.

*EdgeConnect: Structure Guided Image Inpainting using Edge Prediction* (Nazeri et al., 2019)
splits inpainting in two. An **edge generator** completes the edge map inside the hole from
the grey image, the known edges and the mask; an **image generator** fills the colours from
the image and the completed edges. Both have the same layout: a 7x7 convolution, two stride-2
convolutions (to a quarter of the resolution), residual blocks of two 3x3 convolutions (the
first dilated by 2) and two transposed convolutions back, with instance norm, spectral
normalisation in the edge generator, and a sigmoid at the end.

:class:`StructureGenerator` is that layout at the course's scale (``width`` 16, 4 blocks for
64x64 images; the paper: 64 and 8 at 256x256). :func:`edge_inputs` and :func:`image_inputs`
stack each generator's input from an image, its hole and edges. :class:`EdgeGuidedInpainter` is
the image generator as one of the course's inpainting networks, trained on the true edges as in
the paper (:meth:`EdgeGuidedInpainter.oracle_guidance`), or without edges for the comparison;
:class:`EdgeGenerator` is the edge generator, which completes the known edges in the hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from course_lib.edges import canny_edges, known_edges
from course_lib.networks import Configurable, InpaintingNetwork
from course_lib.validate import check_image, check_mask

__all__ = [
    "EdgeGenerator",
    "EdgeGuidedInpainter",
    "StructureGenerator",
    "edge_inputs",
    "image_inputs",
]


def _maybe_sn(layer: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(layer) if use else layer


class _ResidualBlock(nn.Module):
    """``x + IN(conv3x3(ReLU(IN(dilated conv3x3(x)))))``, reflect padding."""

    def __init__(self, channels: int, use_sn: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(2),
            _maybe_sn(nn.Conv2d(channels, channels, 3, dilation=2, bias=not use_sn), use_sn),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            _maybe_sn(nn.Conv2d(channels, channels, 3, bias=not use_sn), use_sn),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StructureGenerator(nn.Module):
    """EdgeConnect's generator layout: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``
    in [0, 1]. Any size works: the input is padded by reflection (right and bottom) to a
    multiple of 4 of at least 12 and the output cropped back. ``spectral_norm=True`` as in the edge generator."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 16,
        blocks: int = 4,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        sn = spectral_norm

        def stage(c_in: int, c_out: int, **conv: int) -> list[nn.Module]:
            layer = _maybe_sn(nn.Conv2d(c_in, c_out, bias=not sn, **conv), sn)
            return [layer, nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]

        def up(c_in: int, c_out: int) -> list[nn.Module]:
            layer = _maybe_sn(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not sn), sn)
            return [layer, nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3),
            *stage(in_channels, width, kernel_size=7),
            *stage(width, 2 * width, kernel_size=4, stride=2, padding=1),
            *stage(2 * width, 4 * width, kernel_size=4, stride=2, padding=1),
        )
        self.middle = nn.Sequential(*(_ResidualBlock(4 * width, sn) for _ in range(blocks)))
        self.decoder = nn.Sequential(
            *up(4 * width, 2 * width),
            *up(2 * width, width),
            nn.ReflectionPad2d(3),
            nn.Conv2d(width, out_channels, 7),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.encoder[1].in_channels:
            raise ValueError(
                f"StructureGenerator takes (B, {self.encoder[1].in_channels}, H, W) inputs, got "
                f"{tuple(x.shape)}; build it with the matching in_channels."
            )
        height, width = x.shape[-2:]
        # A multiple of 4, and at least 12: the dilated blocks pad by 2 at a quarter of the size.
        pad_h, pad_w = (max(-(-side // 4) * 4, 12) - side for side in (height, width))
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.decoder(self.middle(self.encoder(x)))
        return torch.sigmoid(out[..., :height, :width])


def edge_inputs(image: torch.Tensor, hole: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The edge generator's input ``(B, 3, H, W)``: the grey image and the edges, both zero in
    the hole, and the hole mask."""
    check_image(image)
    check_mask(hole, like=image)
    grey = image.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return torch.cat([grey * (1 - hole), edges * (1 - hole), hole], dim=1)


def image_inputs(image: torch.Tensor, hole: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The image generator's input ``(B, 4, H, W)``: the image, zero in the hole, and the
    (completed) edges everywhere."""
    check_image(image)
    check_mask(hole, like=image)
    return torch.cat([image * (1 - hole), edges], dim=1)


class EdgeGuidedInpainter(InpaintingNetwork):
    """EdgeConnect's image generator as an inpainting network (lesson 09): ``forward(image,
    hole, edges)`` -> prediction ``(B, 3, H, W)`` in [0, 1] from the image with zeroed holes,
    the hole mask and an edge map ``(B, 1, H, W)`` (the known edges completed in the hole).

    ``edges=False`` builds the same network without the edge input, the comparison's
    "no edges" arm. Unlike the paper's generator, both are given the hole mask, so the arm
    without edges still knows where the hole is.

    In training the network learns from the *true* edges of the whole image, as in the paper:
    :func:`course_lib.train.predict` passes :meth:`oracle_guidance` of the complete image. At
    test time the caller chooses the edges: the true ones (an oracle: what structure guidance
    is worth at best) or an edge generator's.
    """

    CONFIGS = {"small": {"width": 16, "blocks": 4}}

    def __init__(self, width: int = 16, blocks: int = 4, edges: bool = True) -> None:
        super().__init__()
        self.uses_edges = bool(edges)
        self.generator = StructureGenerator(4 + self.uses_edges, 3, width, blocks)

    def extra_repr(self) -> str:
        return f"edges={self.uses_edges}"

    def oracle_guidance(self, image: torch.Tensor) -> torch.Tensor | None:
        """What training gives the network besides the known pixels: the Canny edges of the
        whole ``image`` (hole included), or ``None`` for the network without edges."""
        return canny_edges(image) if self.uses_edges else None

    def forward(
        self, image: torch.Tensor, hole: torch.Tensor, edges: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_image(image)
        check_mask(hole, like=image)
        parts = [image * (1 - hole), hole]  # (B, 3 + 1, H, W): holes zeroed
        if self.uses_edges:
            if edges is None:
                raise ValueError(
                    "EdgeGuidedInpainter(edges=True) needs an edge map: pass edges= (B, 1, H, "
                    "W), e.g. the true Canny edges (an oracle) or an edge generator's completion "
                    "of course_lib.edges.known_edges(image, hole)."
                )
            check_image(edges, name="edges", channels=1)
            if edges.shape[0] != image.shape[0] or edges.shape[-2:] != image.shape[-2:]:
                raise ValueError(
                    f"edges {tuple(edges.shape)} must match the image {tuple(image.shape)} in "
                    "batch and size."
                )
            parts.append(edges)
        elif edges is not None:
            raise ValueError("this EdgeGuidedInpainter was built with edges=False: pass no edges.")
        return self.generator(torch.cat(parts, dim=1))


class EdgeGenerator(Configurable):
    """EdgeConnect's edge generator (lesson 09): image with zeroed holes ``(B, 3, H, W)`` and
    hole ``(B, 1, H, W)`` -> edge probability ``(B, 1, H, W)`` at every pixel.

    It finds the known edges itself (:func:`course_lib.edges.known_edges`, which ignores the
    hole's pixels, so zeroed holes give the same edges as the true image) and is spectrally
    normalised, as in the paper. :meth:`complete` keeps the known edges and takes its own in
    the hole: the map the image generator is given.
    """

    CONFIGS = {"small": {"width": 16, "blocks": 4}}

    def __init__(self, width: int = 16, blocks: int = 4) -> None:
        super().__init__()
        self.generator = StructureGenerator(3, 1, width, blocks, spectral_norm=True)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        given = known_edges(image, hole)  # (B, 1, H, W), checks both inputs
        return self.generator(edge_inputs(image, hole, given))

    @torch.no_grad()
    def complete(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The completed edge map ``(B, 1, H, W)``: the known edges outside the hole, the
        generator's probabilities inside (call ``eval()`` first)."""
        return hole * self(image, hole) + (1 - hole) * known_edges(image, hole)
